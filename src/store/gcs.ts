// Google Cloud Storage adapter. One method call is exactly one HTTP request: the library's retries
// are off (retrying.ts owns retries, metered.ts counts requests). HEAD and LIST go through
// @google-cloud/storage; reads are JSON API media downloads sent through raw-http.ts, with the
// library's credentials.
// Why not the library's createReadStream: a read stream destroyed before its body ended (every
// seek and close of the prefetcher does that) broke other requests on the library's keep-alive
// sockets: "socket hang up" on new GETs, and now and then a GET that never answered, which left a
// FUSE read waiting until the op timeout (ETIMEDOUT). Reproduced outside the mount with 16
// concurrent ranged reads against fake-gcs-server, one in four aborted after 2 ms. raw-http.ts
// drops the socket of a body abandoned half-way, times out a stalled response, and reads bodies
// into the caller's buffer (part-pool.ts) as the S3 adapter does.
// Reads pin the object generation seen at open: they read that generation, so an overwrite
// makes the next read fail with BFS_STALE_OBJECT instead of returning bytes of two versions.
// Writes are JSON API requests made by gcs-upload.ts (raw-http.ts sends no bodies): multipart
// uploads, deletes, rewrites, and resumable sessions for uploads in parts.
import { readFile } from 'node:fs/promises';
import { type File, type FileMetadata, Storage, type StorageOptions } from '@google-cloud/storage';
import type { HttpRequest } from '@smithy/types';
import { BucketfsError, describe, ErrorCodes, networkErrno } from '../errors.js';
import { errorText, GCS_UPLOAD_SHAPE, GcsWriter, WriteClient } from './gcs-upload.js';
import { type RawBody, RawHttpHandler } from './raw-http.js';
import { readBodyInto } from './read-body.js';
import type {
  ByteRange,
  ListOptions,
  ListPage,
  ObjectMeta,
  ObjectPin,
  ObjectStore,
  Upload,
  UploadedPart,
  WriteCondition,
} from './types.js';

export interface GcsStoreOptions {
  bucket: string;
  /** e.g. http://127.0.0.1:4443 for fake-gcs-server; STORAGE_EMULATOR_HOST when unset. */
  endpoint?: string;
  /** Service-account JSON key file; otherwise Application Default Credentials. */
  keyFile?: string;
  /** Send no credentials (emulators, public buckets). */
  anonymous?: boolean;
  projectId?: string;
  /** Per-attempt timeout for connecting and for a response that stalls. */
  requestTimeoutMs: number;
  /** Sockets for reads. */
  maxSockets: number;
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
    const storage = new Storage(options);
    const media = new RawHttpHandler({
      maxSockets: opts.maxSockets,
      connectTimeoutMs: opts.requestTimeoutMs,
      socketTimeoutMs: opts.requestTimeoutMs,
    });
    const writes = new WriteClient(opts.requestTimeoutMs, opts.maxSockets);
    return new GcsStore(storage, media, writes, opts.bucket, !opts.anonymous);
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
  // Base64 of the big-endian CRC32C of the whole object.
  const crc = typeof m.crc32c === 'string' ? Buffer.from(m.crc32c, 'base64') : undefined;
  if (crc?.length === 4) meta.crc32c = crc.readUInt32BE(0);
  return meta;
}

class GcsStore implements ObjectStore {
  readonly kind = 'gcs' as const;
  readonly bucket: string;
  private readonly storage: Storage;
  private readonly media: RawHttpHandler;
  private readonly writer: GcsWriter;
  private readonly endpoint: URL;
  /**
   * Whether reads carry the library's credentials. Like the library, a read goes without them
   * when no default credentials exist at all (emulators, public buckets); remembered, since the
   * library looks them up again (files and the metadata server) on every request.
   */
  private sendAuth: boolean;

  readonly uploadShape = GCS_UPLOAD_SHAPE;

  constructor(storage: Storage, media: RawHttpHandler, writes: WriteClient, bucket: string, sendAuth: boolean) {
    this.storage = storage;
    this.media = media;
    this.endpoint = new URL(storage.apiEndpoint);
    this.bucket = bucket;
    this.sendAuth = sendAuth;
    this.writer = new GcsWriter({
      endpoint: this.endpoint,
      bucket,
      client: writes,
      authHeaders: () => this.authHeaders(),
      classify: (err, key, bucketLevel) => classifyGcsError(err, key, bucketLevel),
      toMeta: (key, json) => toMeta(key, json as FileMetadata),
    });
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
    const aborted = () => new BucketfsError(ErrorCodes.Aborted, 'request aborted', { key });
    let body: RawBody | undefined;
    const onAbort = () => body?.destroy(aborted());
    try {
      if (signal?.aborted) throw aborted();
      const request = await this.mediaRequest(key, range, pin);
      const { response } = await this.media.handle(request, { abortSignal: signal });
      body = response.body as RawBody;
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      if (response.statusCode < 200 || response.statusCode > 299) {
        const message = await errorMessage(body, response.statusCode);
        throw classifyGcsError({ code: response.statusCode, message }, key);
      }
      return await readBodyInto(body, key, range);
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
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  put(key: string, body: Buffer, condition?: WriteCondition, signal?: AbortSignal): Promise<ObjectMeta> {
    return this.writer.put(key, body, condition, signal);
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.writer.delete(key, signal);
  }

  copy(source: ObjectMeta, to: string, signal?: AbortSignal): Promise<ObjectMeta> {
    return this.writer.copy(source, to, signal);
  }

  startUpload(key: string, condition?: WriteCondition, signal?: AbortSignal): Promise<Upload> {
    return this.writer.startUpload(key, condition, signal);
  }

  uploadPart(
    upload: Upload,
    number: number,
    offset: number,
    body: Buffer,
    signal?: AbortSignal,
  ): Promise<UploadedPart> {
    return this.writer.uploadPart(upload, number, offset, body, signal);
  }

  completeUpload(upload: Upload, parts: UploadedPart[], signal?: AbortSignal): Promise<ObjectMeta> {
    return this.writer.completeUpload(upload, parts, signal);
  }

  abortUpload(upload: Upload, signal?: AbortSignal): Promise<void> {
    return this.writer.abortUpload(upload, signal);
  }

  /** GET {endpoint}/storage/v1/b/BUCKET/o/KEY?alt=media, as the library sends it. */
  private async mediaRequest(key: string, range: ByteRange, pin: ObjectPin): Promise<HttpRequest> {
    const url = this.endpoint;
    const base = url.pathname.replace(/\/+$/, '');
    const query: Record<string, string> = { alt: 'media' };
    if (pin.generation) query.generation = pin.generation;
    const headers: Record<string, string> = {
      host: url.host,
      range: `bytes=${range.start}-${range.end - 1}`,
      // The stored bytes, never decompressed on the way: sizes and ranges are those of the object.
      'accept-encoding': 'gzip',
      ...(await this.authHeaders()),
    };
    return {
      method: 'GET',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: `${base}/storage/v1/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(key)}`,
      query,
      headers,
    };
  }

  private async authHeaders(): Promise<Record<string, string>> {
    if (!this.sendAuth) return {};
    try {
      // Cached by the library until shortly before the token expires.
      const headers = await this.storage.authClient.getRequestHeaders();
      return { ...headers };
    } catch (err) {
      if (/Could not load the default credentials/.test((err as Error)?.message ?? '')) {
        this.sendAuth = false;
        return {};
      }
      throw err;
    }
  }
}

/** The message of a JSON API error body, read (at most 16 KiB of it) off the socket. */
async function errorMessage(body: RawBody, status: number): Promise<string> {
  let text = '';
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      text += chunk.toString('utf8');
      if (text.length > 16_384) break;
    }
  } catch {
    // The status says enough.
  }
  body.destroy();
  return errorText(text, status);
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
  if ((e?.name === 'TimeoutError' || /timeout|timed out/i.test(msg)) && status === undefined) {
    return new BucketfsError(ErrorCodes.Timeout, msg, o);
  }
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
