// Google Cloud Storage adapter on @google-cloud/storage. One method call is exactly one HTTP
// request: the library's retries are off (retrying.ts owns retries, metered.ts counts requests).
// Reads pin the object generation seen at open: they read that generation, so an overwrite
// makes the next read fail with BFS_STALE_OBJECT instead of returning bytes of two versions.
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { type File, type FileMetadata, Storage, type StorageOptions } from '@google-cloud/storage';
import { BucketfsError, describe, ErrorCodes, networkErrno } from '../errors.js';
import type { ByteRange, ListOptions, ListPage, ObjectMeta, ObjectPin, ObjectStore } from './types.js';

export interface GcsStoreOptions {
  bucket: string;
  /** e.g. http://127.0.0.1:4443 for fake-gcs-server; STORAGE_EMULATOR_HOST when unset. */
  endpoint?: string;
  /** Service-account JSON key file; otherwise Application Default Credentials. */
  keyFile?: string;
  /** Send no credentials (emulators, public buckets). */
  anonymous?: boolean;
  projectId?: string;
  requestTimeoutMs: number;
}

const GCS_ENDPOINT = 'https://storage.googleapis.com';

export async function createGcsStore(opts: GcsStoreOptions, env = process.env): Promise<ObjectStore> {
  const options: StorageOptions = {
    retryOptions: { autoRetry: false },
    timeout: opts.requestTimeoutMs,
  };
  if (opts.projectId) options.projectId = opts.projectId;
  const endpoint = opts.endpoint ?? env.STORAGE_EMULATOR_HOST;
  if (endpoint) {
    // The library sends no credentials to a custom endpoint unless told to.
    options.apiEndpoint = /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`;
    options.useAuthWithCustomEndpoint = !opts.anonymous;
  } else if (opts.anonymous) {
    // Same host, spelled so the library treats it as custom: it then attaches no credentials.
    options.apiEndpoint = `${GCS_ENDPOINT}/`;
    options.useAuthWithCustomEndpoint = false;
  }
  if (opts.keyFile) options.credentials = await readKeyFile(opts.keyFile);
  // The library would also read STORAGE_EMULATOR_HOST itself, as a base URL without /storage/v1.
  const saved = env.STORAGE_EMULATOR_HOST;
  delete env.STORAGE_EMULATOR_HOST;
  try {
    return new GcsStore(new Storage(options), opts.bucket);
  } finally {
    if (saved !== undefined) env.STORAGE_EMULATOR_HOST = saved;
  }
}

async function readKeyFile(file: string): Promise<StorageOptions['credentials']> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BucketfsError(ErrorCodes.BadCredentials, `cannot read key file ${file}: ${describe(err)}`, { key: file });
  }
  let json: { client_email?: unknown; private_key?: unknown };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new BucketfsError(ErrorCodes.BadCredentials, `key file ${file} is not JSON`, { key: file });
  }
  if (typeof json.client_email !== 'string' || typeof json.private_key !== 'string') {
    throw new BucketfsError(
      ErrorCodes.BadCredentials,
      `key file ${file} is not a service-account key (no client_email/private_key)`,
      { key: file },
    );
  }
  return { client_email: json.client_email, private_key: json.private_key };
}

function toMeta(key: string, m: FileMetadata): ObjectMeta {
  const meta: ObjectMeta = {
    key,
    size: Number(m.size ?? 0),
    etag: String(m.etag ?? m.md5Hash ?? ''),
    mtime: new Date(String(m.updated ?? m.timeCreated ?? 0)),
  };
  if (m.generation !== undefined) meta.generation = String(m.generation);
  return meta;
}

class GcsStore implements ObjectStore {
  readonly kind = 'gcs' as const;
  readonly bucket: string;
  private readonly storage: Storage;

  constructor(storage: Storage, bucket: string) {
    this.storage = storage;
    this.bucket = bucket;
  }

  async head(key: string): Promise<ObjectMeta | undefined> {
    try {
      const [m] = await this.storage.bucket(this.bucket).file(key).getMetadata();
      return toMeta(key, m);
    } catch (err) {
      const e = classifyGcsError(err, key);
      if (e.code === ErrorCodes.NotFound) return undefined;
      throw e;
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    try {
      const [files, next, raw] = await this.storage.bucket(this.bucket).getFiles({
        prefix: prefix || undefined,
        delimiter: opts.delimiter,
        maxResults: opts.limit,
        pageToken: opts.token,
        startOffset: opts.startAfter,
        autoPaginate: false,
      });
      const page: ListPage = {
        objects: files.map((f: File) => toMeta(f.name, f.metadata)),
        prefixes: ((raw as { prefixes?: string[] } | undefined)?.prefixes ?? []).slice(),
      };
      const token = (next as { pageToken?: string } | null | undefined)?.pageToken;
      if (token) page.next = token;
      return page;
    } catch (err) {
      throw classifyGcsError(err, prefix, true);
    }
  }

  async read(key: string, range: ByteRange, pin: ObjectPin = {}, signal?: AbortSignal): Promise<Buffer> {
    const want = range.end - range.start;
    if (want <= 0) return Buffer.alloc(0);
    const file = this.storage
      .bucket(this.bucket)
      .file(key, pin.generation ? { generation: Number(pin.generation) } : {});
    const stream = file.createReadStream({
      start: range.start,
      end: range.end - 1,
      validation: false,
      decompress: false,
    });
    try {
      // The prefetcher may lend a recycled buffer to fill (src/read/part-pool.ts).
      const into = range.into;
      const body = await collect(stream, want, key, signal, into?.length === want ? into : undefined);
      if (body.length !== want) {
        throw new BucketfsError(
          ErrorCodes.BadResponse,
          `short read of ${key}: asked ${want} bytes at ${range.start}, got ${body.length}`,
          { key },
        );
      }
      return body;
    } catch (err) {
      const e = classifyGcsError(err, key);
      // A pinned generation that no longer exists was overwritten or deleted since open.
      if (pin.generation && e.code === ErrorCodes.NotFound) {
        throw new BucketfsError(ErrorCodes.Stale, `${key} changed since it was opened`, {
          key,
          status: e.status,
          cause: err,
        });
      }
      throw e;
    }
  }
}

async function collect(
  stream: Readable,
  expected: number,
  key: string,
  signal?: AbortSignal,
  into?: Buffer,
): Promise<Buffer> {
  const onAbort = () => stream.destroy(new BucketfsError(ErrorCodes.Aborted, 'request aborted', { key }));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const out = into ?? Buffer.allocUnsafe(expected);
    let filled = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (filled + chunk.length > expected) {
        throw new BucketfsError(ErrorCodes.BadResponse, `long read of ${key}: more than ${expected} bytes`, { key });
      }
      out.set(chunk, filled);
      filled += chunk.length;
    }
    return filled === expected ? out : out.subarray(0, filled);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}

/** Maps anything @google-cloud/storage (gaxios, google-auth-library) throws onto a BucketfsError. */
export function classifyGcsError(err: unknown, key?: string, isList = false): BucketfsError {
  if (err instanceof BucketfsError) return err;
  const e = err as {
    code?: number | string;
    status?: number;
    response?: { status?: number };
    message?: string;
    name?: string;
  };
  const status = typeof e?.code === 'number' ? e.code : typeof e?.status === 'number' ? e.status : e?.response?.status;
  const msg = (e?.message ?? String(err)).split('\n')[0] ?? 'error';
  const o = { key, status, cause: err };
  if (e?.name === 'AbortError') return new BucketfsError(ErrorCodes.Aborted, 'request aborted', o);
  const net = networkErrno(err);
  if (net && status === undefined) return new BucketfsError(ErrorCodes.Network, `${net}: ${msg}`, o);
  if (/timeout|timed out/i.test(msg) && status === undefined) return new BucketfsError(ErrorCodes.Timeout, msg, o);
  if (/invalid_grant|invalid_client|Could not load the default credentials|Could not refresh access token/i.test(msg)) {
    return new BucketfsError(ErrorCodes.BadCredentials, msg, o);
  }
  if (status === 404) {
    const bucketMissing = isList || /bucket does not exist|No such bucket/i.test(msg);
    return new BucketfsError(bucketMissing ? ErrorCodes.NoSuchBucket : ErrorCodes.NotFound, msg, o);
  }
  if (status === 412) return new BucketfsError(ErrorCodes.Stale, msg, o);
  if (status === 401) return new BucketfsError(ErrorCodes.BadCredentials, msg, o);
  if (status === 403) return new BucketfsError(ErrorCodes.AccessDenied, msg, o);
  if (status === 429) return new BucketfsError(ErrorCodes.Throttled, msg, o);
  if (status === 416) return new BucketfsError(ErrorCodes.BadResponse, msg, o);
  if (status !== undefined && status >= 500) return new BucketfsError(ErrorCodes.ServerError, msg, o);
  if (net) return new BucketfsError(ErrorCodes.Network, `${net}: ${msg}`, o);
  return new BucketfsError(ErrorCodes.Unknown, msg, o);
}
