// GCS writes for gcs.ts: put (a multipart upload), delete, copy (a rewrite) and uploads in parts (a
// resumable session), over an HTTP client for requests with a body. One call is one HTTP request;
// nothing here retries (retrying.ts does).
//
// Why not raw-http.ts: it sends no request bodies (by design: it exists to read GET bodies into the
// caller's buffer). Why node:http rather than fetch: `requests.timeout-secs` is a stall timeout
// ("to connect or between bytes"), and fetch only offers a deadline for the whole exchange, which a
// large part on a slow uplink would miss on every attempt. node:http's socket timeout measures
// idleness, and the body goes out in slices so that each one handed to the kernel restarts it: a
// write then fails only when what the kernel buffers (a few MiB) does not leave within the timeout
// (gcs-upload.test.ts: a 32 MiB part taking twice the timeout completes).
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { BucketfsError, ErrorCodes } from '../errors.js';
import { crc32cBase64 } from './checksum.js';
import type { ObjectMeta, Upload, UploadedPart, UploadShape, WriteCondition } from './types.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** GCS takes a resumable upload in chunks of multiples of 256 KiB (all but the last). */
const CHUNK_MULTIPLE = 256 * KIB;
/** Largest GCS object: 5 TiB. */
const MAX_OBJECT_BYTES = 5 * 1024 * 1024 * MIB;

/**
 * GCS resumable uploads have no part limit and take parts one after another, in order. maxParts is
 * the count a 5 TiB object has at the smallest part, i.e. no limit in practice: the part size is
 * the engine's choice (memory), not the store's. maxPutBytes: a single-request upload is sent again
 * whole when it fails, so it should be no bigger than a chunk would be; Google's clients switch to
 * resumable uploads around 8-16 MiB (gsutil's resumable_threshold is 8 MiB, the Go client sends
 * objects below its 16 MiB ChunkSize in one request). 16 MiB saves the two extra round trips of a
 * resumable upload for files up to that size.
 */
export const GCS_UPLOAD_SHAPE: UploadShape = {
  minPartBytes: CHUNK_MULTIPLE,
  maxParts: MAX_OBJECT_BYTES / CHUNK_MULTIPLE,
  partMultiple: CHUNK_MULTIPLE,
  sequentialParts: true,
  maxPutBytes: 16 * MIB,
};

/** Status of a chunk accepted into a resumable session ("Resume Incomplete"). */
const RESUME_INCOMPLETE = 308;
/** GCS answers the DELETE of a resumable session with this non-standard status. */
const SESSION_CANCELLED = 499;

/** The query parameters of a write condition: GCS conditions writes on the generation. */
function conditionQuery(condition: WriteCondition | undefined, key: string): Record<string, string> {
  if (!condition) return {};
  if ('ifAbsent' in condition) return { ifGenerationMatch: '0' };
  const generation = condition.ifMatch.generation;
  if (!generation) {
    // An ETag alone cannot condition a GCS upload; writing unconditionally would be a silent race.
    throw new BucketfsError(ErrorCodes.InvalidArgument, `a GCS write of ${key} needs a generation to match`, { key });
  }
  return { ifGenerationMatch: generation };
}

/** Content-Range of a chunk that is not the last: the total stays open until completeUpload. */
function chunkRange(offset: number, length: number): string {
  return `bytes ${offset}-${offset + length - 1}/*`;
}

/** Content-Range of the empty request that ends a session of `total` bytes. */
function finalRange(total: number): string {
  return `bytes */${total}`;
}

/**
 * Bytes the session holds, from a 308's Range header ("bytes=0-N"; none when it holds nothing).
 * Undefined when the header is there but not understood.
 */
function persistedBytes(range: string | string[] | undefined): number | undefined {
  if (range === undefined) return 0;
  const m = /^bytes=0-(\d+)$/.exec(String(range).trim());
  return m ? Number(m[1]) + 1 : undefined;
}

/** The message of a JSON API error body ({"error": {"message": ...}}), or its first line. */
export function errorText(text: string, status: number): string {
  try {
    const json = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof json.error?.message === 'string') return json.error.message;
  } catch {
    // Not JSON.
  }
  return text.split('\n')[0]?.trim() || `HTTP ${status}`;
}

interface WriteResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The whole response body (JSON metadata or an error), at most BODY_LIMIT bytes. */
  text: string;
}

/** Responses of writes are object metadata or errors: a few KiB. */
const BODY_LIMIT = MIB;
/** The request body goes out in slices: each one written restarts the stall timer. */
const SLICE = 256 * KIB;
/** A pooled socket unused this long is closed (as raw-http.ts does; servers close theirs after 5-60 s). */
const IDLE_MS = 4_000;

function timeoutError(what: string): Error {
  return Object.assign(new Error(what), { name: 'TimeoutError' });
}

export class WriteClient {
  private readonly timeoutMs: number;
  private readonly http: http.Agent;
  private readonly https: https.Agent;

  constructor(timeoutMs: number, maxSockets: number) {
    this.timeoutMs = timeoutMs;
    this.http = new http.Agent({ keepAlive: true, maxSockets, timeout: IDLE_MS });
    this.https = new https.Agent({ keepAlive: true, maxSockets, timeout: IDLE_MS });
  }

  /**
   * One request. Resolves with any HTTP status (the caller classifies it); rejects on a network
   * fault, a stall longer than the timeout (TimeoutError) or an abort (AbortError).
   */
  send(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Buffer[],
    signal?: AbortSignal,
  ): Promise<WriteResponse> {
    const secure = url.protocol === 'https:';
    const length = body.reduce((n, b) => n + b.length, 0);
    return new Promise<WriteResponse>((resolve, reject) => {
      const req = (secure ? https : http).request(
        url,
        {
          method,
          headers: { ...headers, 'content-length': String(length) },
          agent: secure ? this.https : this.http,
          timeout: this.timeoutMs,
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= BODY_LIMIT) chunks.push(chunk);
            // Not a response we can use; dropping the socket is cheaper than draining it.
            else
              req.destroy(Object.assign(new Error(`response body over ${BODY_LIMIT} bytes`), { code: 'ECONNABORTED' }));
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(timeoutError(`no progress for ${this.timeoutMs} ms: ${method} ${url.host}`)));
      req.on('error', reject);
      void (async () => {
        for (const piece of body) {
          for (let at = 0; at < piece.length; at += SLICE) {
            if (!req.write(piece.subarray(at, at + SLICE))) await once(req, 'drain');
          }
        }
        req.end();
      })().catch(reject);
    });
  }
}

/** The JSON API object resource, as far as writes read it. */
export type GcsObjectJson = { generation?: unknown } & Record<string, unknown>;

/** What the writer takes from gcs.ts (which imports this module, not the other way round). */
export interface GcsWriterDeps {
  /** e.g. https://storage.googleapis.com or http://127.0.0.1:4443 for fake-gcs-server. */
  endpoint: URL;
  bucket: string;
  client: WriteClient;
  authHeaders(): Promise<Record<string, string>>;
  /** classifyGcsError; `bucketLevel` when a 404 can only mean that the bucket is missing. */
  classify(err: unknown, key: string, bucketLevel?: boolean): BucketfsError;
  toMeta(key: string, json: GcsObjectJson): ObjectMeta;
}

/** The write half of GcsStore: put, delete, copy and resumable uploads, one request per call. */
export class GcsWriter {
  private readonly deps: GcsWriterDeps;
  private readonly client: WriteClient;
  private readonly endpoint: URL;
  private readonly bucket: string;
  /** Per session URI: the end of its last part, which GCS takes only with the total. */
  private readonly tails = new Map<string, { offset: number; bytes: Buffer }>();

  constructor(deps: GcsWriterDeps) {
    this.deps = deps;
    this.client = deps.client;
    this.endpoint = deps.endpoint;
    this.bucket = deps.bucket;
  }

  /**
   * A multipart upload: POST /upload/storage/v1/b/BUCKET/o?uploadType=multipart, the metadata and
   * the bytes as two parts of one body. Not a media upload (the bytes alone): fake-gcs-server up to
   * v1.55 ignores ifGenerationMatch on those, and honours it on multipart ones, as GCS does on both.
   */
  async put(key: string, body: Buffer, condition?: WriteCondition, signal?: AbortSignal): Promise<ObjectMeta> {
    const query = { uploadType: 'multipart', name: key, ...conditionQuery(condition, key) };
    // Random, so that no body holds it: the bytes are sent as they are, not encoded.
    const boundary = `bucketfs-${randomBytes(16).toString('hex')}`;
    // With its CRC32C in the metadata, GCS checks the bytes it got and refuses them (400) if they differ.
    const resource = JSON.stringify({ name: key, crc32c: crc32cBase64(body) });
    const head =
      `--${boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n${resource}\r\n` +
      `--${boundary}\r\ncontent-type: application/octet-stream\r\n\r\n`;
    const res = await this.write('POST', this.apiUrl(this.uploadPath(), query), key, {
      body: [Buffer.from(head), body, Buffer.from(`\r\n--${boundary}--\r\n`)],
      headers: { 'content-type': `multipart/related; boundary=${boundary}` },
      signal,
      bucketLevel: true,
    });
    return this.storedMeta(key, res);
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.write('DELETE', this.apiUrl(this.objectPath(key)), key, { signal });
    } catch (err) {
      if (!(err instanceof BucketfsError && err.code === ErrorCodes.NotFound)) throw err;
    }
  }

  /**
   * POST .../o/FROM/rewriteTo/b/BUCKET/o/TO, pinned with sourceGeneration (that version is copied)
   * and ifSourceGenerationMatch (412 when it is no longer the live one). Within one bucket a rewrite
   * is done in one call. One that must move the bytes (a large object whose storage class differs
   * from the bucket's default, which the copy takes) may answer done=false with a token to call
   * again with: only then does this one call make several requests (metered as one COPY).
   */
  async copy(source: ObjectMeta, to: string, signal?: AbortSignal): Promise<ObjectMeta> {
    const from = source.key;
    const generation = source.generation;
    if (!generation) {
      throw new BucketfsError(ErrorCodes.InvalidArgument, `a GCS copy of ${from} needs its generation`, { key: from });
    }
    const query: Record<string, string> = { sourceGeneration: generation, ifSourceGenerationMatch: generation };
    const path = `${this.objectPath(from)}/rewriteTo/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(to)}`;
    for (;;) {
      let res: WriteResponse;
      try {
        res = await this.write('POST', this.apiUrl(path, query), from, {
          body: [Buffer.from('{}')],
          headers: { 'content-type': 'application/json' },
          signal,
        });
      } catch (err) {
        // Without object versioning an overwritten or deleted generation is gone: 404, not 412.
        if (err instanceof BucketfsError && err.code === ErrorCodes.NotFound) {
          throw new BucketfsError(ErrorCodes.Stale, `${from} changed before it was copied`, {
            key: from,
            status: err.status,
            cause: err,
          });
        }
        throw err;
      }
      const json = parseJson(from, res) as { done?: unknown; rewriteToken?: unknown; resource?: GcsObjectJson };
      if (json.done === true && json.resource) return this.deps.toMeta(to, json.resource);
      if (typeof json.rewriteToken !== 'string') {
        throw new BucketfsError(ErrorCodes.BadResponse, `rewrite of ${from} answered neither done nor a token`, {
          key: from,
        });
      }
      query.rewriteToken = json.rewriteToken;
    }
  }

  /**
   * Opens a resumable session: POST ...?uploadType=resumable&name=KEY with the condition, which GCS
   * checks when the upload completes (and may check here already). The session URI (Location) is
   * the upload's id.
   */
  async startUpload(key: string, condition?: WriteCondition, signal?: AbortSignal): Promise<Upload> {
    const query = { uploadType: 'resumable', name: key, ...conditionQuery(condition, key) };
    const res = await this.write('POST', this.apiUrl(this.uploadPath(), query), key, {
      body: [Buffer.from('{}')],
      headers: {
        'content-type': 'application/json; charset=UTF-8',
        'x-upload-content-type': 'application/octet-stream',
      },
      signal,
      bucketLevel: true,
    });
    const location = res.headers.location;
    if (!location) {
      throw new BucketfsError(ErrorCodes.BadResponse, `no session URI for the upload of ${key}`, {
        key,
        status: res.status,
      });
    }
    const upload: Upload = { key, id: location };
    if (condition) upload.condition = condition;
    return upload;
  }

  /**
   * PUT to the session URI with Content-Range: bytes OFFSET-END/*; GCS answers 308 and, in Range,
   * how many bytes it holds.
   *
   * Until the total is known GCS takes only multiples of 256 KiB (a smaller chunk is refused with a
   * 400, and bytes past the last multiple are not kept). So of the last part, when it is not a
   * multiple, only its whole 256 KiB blocks are sent here; the rest (under 256 KiB, copied) waits
   * for completeUpload, which sends it with the total. A last part under 256 KiB thus sends
   * nothing: the one call that makes no request.
   *
   * A part sent again is correct as it is: GCS ignores the bytes of a chunk it has already
   * persisted (cloud.google.com/storage/docs/resumable-uploads#resent-data), so the retry of a part
   * stored whole or in part completes it. A part GCS kept only some of fails retryable
   * (BadResponse), so that the retry sends it again.
   */
  async uploadPart(
    upload: Upload,
    number: number,
    offset: number,
    body: Buffer,
    signal?: AbortSignal,
  ): Promise<UploadedPart> {
    const key = upload.key;
    if (body.length === 0)
      throw new BucketfsError(ErrorCodes.InvalidArgument, `part ${number} of ${key} is empty`, { key });
    const pending = this.tails.get(upload.id);
    if (pending && offset > pending.offset) {
      const why = `part ${number} of ${key} follows one that is not a multiple of ${CHUNK_MULTIPLE} bytes`;
      throw new BucketfsError(ErrorCodes.InvalidArgument, why, { key });
    }
    const whole = body.length - (body.length % CHUNK_MULTIPLE);
    if (whole > 0) await this.sendChunk(upload, number, offset, body.subarray(0, whole), signal);
    if (whole < body.length)
      this.tails.set(upload.id, { offset: offset + whole, bytes: Buffer.from(body.subarray(whole)) });
    else this.tails.delete(upload.id);
    return { number, size: body.length };
  }

  private async sendChunk(upload: Upload, number: number, offset: number, chunk: Buffer, signal?: AbortSignal) {
    const key = upload.key;
    const res = await this.session('PUT', upload, {
      body: [chunk],
      headers: { 'content-range': chunkRange(offset, chunk.length) },
      signal,
      ok: [RESUME_INCOMPLETE],
    });
    const held = persistedBytes(res.headers.range);
    const status = res.status;
    if (held === undefined) {
      throw new BucketfsError(ErrorCodes.BadResponse, `unreadable Range ${res.headers.range} for part ${number}`, {
        key,
      });
    }
    if (held >= offset + chunk.length) return;
    if (held >= offset) {
      const why = `GCS kept ${held - offset} of the ${chunk.length} bytes of part ${number} of ${key}`;
      throw new BucketfsError(ErrorCodes.BadResponse, why, { key, status });
    }
    // Bytes before this part are missing: sending this part again cannot fix that.
    const gap = `the upload of ${key} holds ${held} bytes, part ${number} starts at ${offset}`;
    throw new BucketfsError(ErrorCodes.Unknown, gap, { key, status });
  }

  /**
   * The request that ends the session, with the total: the bytes of the last part that waited (see
   * uploadPart), or none (Content-Range: bytes, an asterisk, /TOTAL) when the parts were all
   * multiples of 256 KiB. GCS then stores the object and answers 200 with its metadata, or 412 when
   * the condition no longer holds. Sent again after it succeeded, GCS answers the metadata again;
   * fake-gcs-server forgets a finished session (404).
   */
  async completeUpload(upload: Upload, parts: UploadedPart[], signal?: AbortSignal): Promise<ObjectMeta> {
    const key = upload.key;
    const total = parts.reduce((n, p) => n + p.size, 0);
    const tail = this.tails.get(upload.id);
    if (tail && tail.offset + tail.bytes.length !== total) {
      const why = `the parts of ${key} add up to ${total} bytes, not ${tail.offset + tail.bytes.length}`;
      throw new BucketfsError(ErrorCodes.InvalidArgument, why, { key });
    }
    const res = await this.session('PUT', upload, {
      body: tail ? [tail.bytes] : [],
      headers: { 'content-range': tail ? `bytes ${tail.offset}-${total - 1}/${total}` : finalRange(total) },
      signal,
      ok: [200, 201, RESUME_INCOMPLETE],
    });
    if (res.status === RESUME_INCOMPLETE) {
      const held = persistedBytes(res.headers.range);
      throw new BucketfsError(ErrorCodes.Unknown, `the upload of ${key} holds ${held} of ${total} bytes`, { key });
    }
    this.tails.delete(upload.id);
    const meta = this.storedMeta(key, res);
    if (meta.size !== total) {
      // A store that appended a part sent twice (fake-gcs-server does) stored something else.
      throw new BucketfsError(ErrorCodes.Unknown, `${key} was stored with ${meta.size} bytes, ${total} were sent`, {
        key,
      });
    }
    return meta;
  }

  /** DELETE of the session URI: GCS answers 499; a session already gone (404, 410) is no error. */
  async abortUpload(upload: Upload, signal?: AbortSignal): Promise<void> {
    this.tails.delete(upload.id);
    await this.session('DELETE', upload, { signal, ok: [SESSION_CANCELLED, 200, 204, 404, 410] });
  }

  /** A request to an upload's session URI. */
  private session(method: string, upload: Upload, opts: WriteOptions): Promise<WriteResponse> {
    let url: URL;
    try {
      url = new URL(upload.id);
    } catch {
      throw new BucketfsError(ErrorCodes.InvalidArgument, `not a session URI: ${upload.id}`, { key: upload.key });
    }
    // The URI itself authorizes the upload; credentials go only where the other requests go.
    return this.write(method, url, upload.key, { ...opts, auth: url.origin === this.endpoint.origin });
  }

  /** One write request; a status outside `ok` (default 2xx) becomes a BucketfsError. */
  private async write(method: string, url: URL, key: string, opts: WriteOptions = {}): Promise<WriteResponse> {
    let res: WriteResponse;
    try {
      if (opts.signal?.aborted) throw new BucketfsError(ErrorCodes.Aborted, 'request aborted', { key });
      const headers = { ...opts.headers, ...(opts.auth === false ? {} : await this.deps.authHeaders()) };
      res = await this.client.send(method, url, headers, opts.body ?? [], opts.signal);
    } catch (err) {
      throw this.deps.classify(err, key, opts.bucketLevel);
    }
    if (opts.ok ? opts.ok.includes(res.status) : res.status >= 200 && res.status <= 299) return res;
    const message = res.status < 400 ? `unexpected HTTP ${res.status}` : errorText(res.text, res.status);
    throw this.deps.classify({ code: res.status, message }, key, opts.bucketLevel);
  }

  private apiUrl(path: string, query: Record<string, string> = {}): URL {
    const url = new URL(this.endpoint.href);
    url.pathname = `${this.endpoint.pathname.replace(/\/+$/, '')}${path}`;
    url.search = Object.entries(query)
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join('&');
    return url;
  }

  private objectPath(key: string): string {
    return `/storage/v1/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(key)}`;
  }

  private uploadPath(): string {
    return `/upload/storage/v1/b/${encodeURIComponent(this.bucket)}/o`;
  }

  /** The metadata of an object as a write stored it (the JSON API answers with the object resource). */
  private storedMeta(key: string, res: WriteResponse): ObjectMeta {
    const json = parseJson(key, res) as GcsObjectJson | null;
    if (!json || typeof json !== 'object' || json.generation === undefined) {
      throw new BucketfsError(ErrorCodes.BadResponse, `no object metadata in the answer for ${key}`, { key });
    }
    return this.deps.toMeta(key, json);
  }
}

interface WriteOptions {
  /** Sent one after another, without joining them. */
  body?: Buffer[];
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Statuses that are an answer rather than an error; default 2xx. */
  ok?: number[];
  /** Send the credentials (default true). */
  auth?: boolean;
  /** A 404 means the bucket is missing (uploads name no object that could be). */
  bucketLevel?: boolean;
}

function parseJson(key: string, res: WriteResponse): unknown {
  try {
    return JSON.parse(res.text) as unknown;
  } catch {
    throw new BucketfsError(ErrorCodes.BadResponse, `HTTP ${res.status} for ${key} without JSON`, {
      key,
      status: res.status,
    });
  }
}
