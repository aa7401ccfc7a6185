// S3 adapter on @aws-sdk/client-s3. One method call is exactly one HTTP request: the SDK's own
// retries are off (maxAttempts 1) because retrying.ts owns retries and metered.ts counts requests.
import http from 'node:http';
import https from 'node:https';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { BucketfsError, ErrorCodes, networkErrno } from '../errors.js';
import { crc32c, crc32cBase64 } from './checksum.js';
import { RawBody, RawHttpHandler } from './raw-http.js';
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
  UploadShape,
  WriteCondition,
} from './types.js';

const MiB = 1024 * 1024;

/**
 * A PUT or part that carries its CRC32C is sent with an unsigned payload: the checksum guards the
 * bytes, and the SigV4 payload hash (a SHA-256 of every byte on the daemon's one thread) is no
 * longer needed. The signer takes the x-amz-content-sha256 header as the payload's hash when it is set.
 */
function unsignedWhenChecksummed(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers?.['x-amz-checksum-crc32c']) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'bucketfsUnsignedChecksummedPayload' },
  );
}

/** S3's limits on uploads in parts (and on one PUT and one CopyObject: 5 GiB). */
const S3_UPLOAD_SHAPE: UploadShape = {
  minPartBytes: 5 * MiB,
  maxParts: 10_000,
  partMultiple: 1,
  sequentialParts: false,
  maxPutBytes: 5 * 1024 * MiB,
};

/** The S3 headers for a write condition: If-None-Match: * or If-Match: ETag. */
function conditionHeaders(c: WriteCondition | undefined): { IfNoneMatch?: string; IfMatch?: string } {
  if (!c) return {};
  if ('ifAbsent' in c) return { IfNoneMatch: '*' };
  return c.ifMatch.etag ? { IfMatch: c.ifMatch.etag } : {};
}

export interface S3StoreOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Named profile from the shared config/credentials files. */
  profile?: string;
  /** Explicit credentials (tests); otherwise the standard AWS provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Send unsigned requests (public buckets). */
  anonymous?: boolean;
  /** Per-attempt timeout for connecting and for socket inactivity. */
  requestTimeoutMs: number;
  /** Size of the keep-alive socket pool. */
  maxSockets: number;
}

export function createS3Store(opts: S3StoreOptions): ObjectStore {
  const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets, keepAliveMsecs: 10_000 };
  const config: S3ClientConfig = {
    region: opts.region,
    forcePathStyle: opts.forcePathStyle ?? false,
    maxAttempts: 1,
    // The default (WHEN_SUPPORTED) adds CRC work on every request and some S3-compatible
    // servers reject the extra headers; ranged reads carry no full-object checksum anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      connectionTimeout: opts.requestTimeoutMs,
      // Inactivity, not total time: a large part on a slow link may take long but never stalls.
      // (The handler's requestTimeout only logs a warning unless told to throw.)
      socketTimeout: opts.requestTimeoutMs,
      httpAgent: new http.Agent(agentOpts),
      httpsAgent: new https.Agent(agentOpts),
    }),
  };
  if (opts.endpoint) config.endpoint = opts.endpoint;
  if (opts.profile) config.profile = opts.profile;
  if (opts.credentials) config.credentials = opts.credentials;
  if (opts.anonymous) {
    // Unsigned requests: a signer that passes the request through untouched, and static empty
    // credentials so the provider chain is never consulted.
    config.credentials = { accessKeyId: '', secretAccessKey: '' };
    config.signer = { sign: async (request) => request };
  }
  // GETs go through a client of their own that resolves its middleware stack once instead of per
  // request (cacheMiddleware: a fifth of the SDK's CPU per small GET otherwise). The SDK caches only
  // calls made without per-request options and drops its cache on any call with them, so this
  // client never gets an abortSignal (read() aborts the body itself) and never sends HEAD or LIST.
  // Its bodies are read straight into the caller's buffer (raw-http.ts): Node's http client
  // costs an allocation and a copy per 64 KiB.
  const getHandler = new RawHttpHandler({
    maxSockets: opts.maxSockets,
    connectTimeoutMs: opts.requestTimeoutMs,
    socketTimeoutMs: opts.requestTimeoutMs,
  });
  return new S3Store(
    new S3Client(config),
    new S3Client({ ...config, cacheMiddleware: true, requestHandler: getHandler }),
    opts.bucket,
  );
}

class S3Store implements ObjectStore {
  readonly kind = 's3' as const;
  readonly uploadShape = S3_UPLOAD_SHAPE;
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly getClient: S3Client;

  constructor(client: S3Client, getClient: S3Client, bucket: string) {
    unsignedWhenChecksummed(client);
    this.client = client;
    this.getClient = getClient;
    this.bucket = bucket;
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectMeta | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      return {
        key,
        size: out.ContentLength ?? 0,
        etag: quoteEtag(out.ETag),
        mtime: out.LastModified ?? new Date(0),
      };
    } catch (err) {
      const e = classifyS3Error(err, key);
      if (e.code === ErrorCodes.NotFound) return undefined;
      throw e;
    }
  }

  async list(prefix: string, opts: ListOptions = {}, signal?: AbortSignal): Promise<ListPage> {
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix || undefined,
          Delimiter: opts.delimiter,
          ContinuationToken: opts.token,
          MaxKeys: opts.limit,
          StartAfter: opts.startAfter,
        }),
        { abortSignal: signal },
      );
      const objects: ObjectMeta[] = (out.Contents ?? []).map((o) => ({
        key: o.Key ?? '',
        size: o.Size ?? 0,
        etag: quoteEtag(o.ETag),
        mtime: o.LastModified ?? new Date(0),
      }));
      const prefixes = (out.CommonPrefixes ?? []).map((p) => p.Prefix ?? '').filter((p) => p);
      const page: ListPage = { objects, prefixes };
      if (out.IsTruncated && out.NextContinuationToken) page.next = out.NextContinuationToken;
      return page;
    } catch (err) {
      throw classifyS3Error(err, prefix, true);
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
      signal?.addEventListener('abort', onAbort, { once: true });
      // No abortSignal option (see getClient): an abort before the response headers lets the
      // request finish its headers, then drops the body.
      const out = await this.getClient.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=${range.start}-${range.end - 1}`,
          IfMatch: pin.etag,
        }),
      );
      // Every GET goes through getHandler (createS3Store), whose bodies are RawBody.
      if (!(out.Body instanceof RawBody)) {
        throw new BucketfsError(ErrorCodes.Unknown, `GET ${key}: the body did not come from raw-http.ts`, { key });
      }
      body = out.Body;
      if (signal?.aborted) {
        body.destroy();
        throw aborted();
      }
      // Some S3-compatible servers ignore If-Match (rclone does): check what actually came back.
      if (pin.etag && out.ETag && quoteEtag(out.ETag) !== pin.etag) {
        body.destroy();
        throw new BucketfsError(ErrorCodes.Stale, `${key} changed since it was opened`, { key, status: 200 });
      }
      return await readBodyInto(body, key, range);
    } catch (err) {
      const e = classifyS3Error(err, key);
      // A pinned object that is gone was deleted (or replaced by a prefix) since open.
      if (pin.etag && e.code === ErrorCodes.NotFound) {
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

  async put(key: string, body: Buffer, condition?: WriteCondition, signal?: AbortSignal): Promise<ObjectMeta> {
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ChecksumCRC32C: crc32cBase64(body),
          ...conditionHeaders(condition),
        }),
        { abortSignal: signal },
      );
      return writtenMeta(key, body.length, out.ETag);
    } catch (err) {
      throw classifyS3Error(err, key);
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    try {
      // S3 answers 204 for a key that is not there: deletes are idempotent, as retries need.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      const e = classifyS3Error(err, key);
      if (e.code !== ErrorCodes.NotFound) throw e;
    }
  }

  async copy(source: ObjectMeta, to: string, signal?: AbortSignal): Promise<ObjectMeta> {
    try {
      const out = await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: to,
          CopySource: `${this.bucket}/${encodeURIComponent(source.key).replace(/%2F/g, '/')}`,
          CopySourceIfMatch: source.etag,
        }),
        { abortSignal: signal },
      );
      const meta = writtenMeta(to, source.size, out.CopyObjectResult?.ETag);
      if (out.CopyObjectResult?.LastModified) meta.mtime = out.CopyObjectResult.LastModified;
      return meta;
    } catch (err) {
      const e = classifyS3Error(err, source.key);
      // The source is gone: for the caller, it changed since it was read.
      if (e.code === ErrorCodes.NotFound) throw new BucketfsError(ErrorCodes.Stale, e.message, { key: source.key });
      throw e;
    }
  }

  async startUpload(key: string, condition?: WriteCondition, signal?: AbortSignal): Promise<Upload> {
    try {
      const out = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ChecksumAlgorithm: crc32c && 'CRC32C' }),
        { abortSignal: signal },
      );
      if (!out.UploadId) throw new BucketfsError(ErrorCodes.BadResponse, `no UploadId for ${key}`, { key });
      // S3 checks a write condition when the upload completes, not when it starts.
      return condition ? { key, id: out.UploadId, condition } : { key, id: out.UploadId };
    } catch (err) {
      throw classifyS3Error(err, key);
    }
  }

  async uploadPart(
    upload: Upload,
    number: number,
    _offset: number,
    body: Buffer,
    signal?: AbortSignal,
  ): Promise<UploadedPart> {
    const checksum = crc32cBase64(body);
    try {
      const out = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: upload.key,
          UploadId: upload.id,
          PartNumber: number,
          Body: body,
          ChecksumCRC32C: checksum,
        }),
        { abortSignal: signal },
      );
      if (!out.ETag) throw new BucketfsError(ErrorCodes.BadResponse, `no ETag for part ${number}`, { key: upload.key });
      return checksum
        ? { number, etag: out.ETag, size: body.length, checksum }
        : { number, etag: out.ETag, size: body.length };
    } catch (err) {
      throw classifyS3Error(err, upload.key);
    }
  }

  async completeUpload(upload: Upload, parts: UploadedPart[], signal?: AbortSignal): Promise<ObjectMeta> {
    try {
      const out = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: upload.key,
          UploadId: upload.id,
          MultipartUpload: {
            Parts: parts.map((p) => ({ PartNumber: p.number, ETag: p.etag, ChecksumCRC32C: p.checksum })),
          },
          ...conditionHeaders(upload.condition),
        }),
        { abortSignal: signal },
      );
      return writtenMeta(
        upload.key,
        parts.reduce((n, p) => n + p.size, 0),
        out.ETag,
      );
    } catch (err) {
      throw classifyS3Error(err, upload.key);
    }
  }

  async abortUpload(upload: Upload, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.key, UploadId: upload.id }),
        { abortSignal: signal },
      );
    } catch (err) {
      const e = classifyS3Error(err, upload.key);
      // NoSuchUpload: already completed, aborted, or never there.
      if (e.code !== ErrorCodes.NotFound) throw e;
    }
  }
}

/**
 * The metadata of an object we just wrote. S3 answers a write with its ETag only: the size is what
 * we sent, the mtime our clock's (a LIST or HEAD later gives the store's).
 */
function writtenMeta(key: string, size: number, etag: string | undefined): ObjectMeta {
  if (!etag)
    throw new BucketfsError(ErrorCodes.BadResponse, `the store answered a write of ${key} without an ETag`, { key });
  return { key, size, etag: quoteEtag(etag), mtime: new Date() };
}

/** One spelling for ETags: some servers list them unquoted and return them quoted (rclone). */
export function quoteEtag(etag: string | undefined): string {
  if (!etag) return '';
  return `"${etag.replace(/^W\//, '').replace(/"/g, '')}"`;
}

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
  'InvalidClientTokenId',
  'AuthorizationHeaderMalformed',
]);

/** Maps anything the S3 SDK throws onto a BucketfsError code. */
export function classifyS3Error(err: unknown, key?: string, isList = false): BucketfsError {
  if (err instanceof BucketfsError) return err;
  const e = err as {
    name?: string;
    Code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    $response?: { statusCode?: number };
  };
  const name = e?.Code ?? e?.name ?? '';
  const status = e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
  const msg = e?.message && e.message !== 'UnknownError' ? e.message : `${name || 'error'} (HTTP ${status ?? '?'})`;
  const o = { key, status, cause: err };

  if (name === 'AbortError' || (err as { code?: string })?.code === 'ABORT_ERR') {
    return new BucketfsError(ErrorCodes.Aborted, 'request aborted', o);
  }
  if (name === 'NoSuchBucket') return new BucketfsError(ErrorCodes.NoSuchBucket, msg, o);
  if (CREDENTIAL_ERRORS.has(name)) return new BucketfsError(ErrorCodes.BadCredentials, msg, o);
  if (name === 'TimeoutError' || name === 'RequestTimeout') {
    return new BucketfsError(ErrorCodes.Timeout, msg, o);
  }
  const net = networkErrno(err);
  if (net && status === undefined) {
    return new BucketfsError(ErrorCodes.Network, `${net}: ${msg}`, o);
  }
  if (status === 412 || name === 'PreconditionFailed') return new BucketfsError(ErrorCodes.Stale, msg, o);
  if (status === 404 || name === 'NotFound' || name === 'NoSuchKey' || name === 'NoSuchUpload') {
    // A 404 on a LIST can only be the bucket.
    return new BucketfsError(isList ? ErrorCodes.NoSuchBucket : ErrorCodes.NotFound, msg, o);
  }
  if (status === 403 || name === 'AccessDenied') return new BucketfsError(ErrorCodes.AccessDenied, msg, o);
  if (status === 401) return new BucketfsError(ErrorCodes.BadCredentials, msg, o);
  if (status === 429 || status === 503 || name === 'SlowDown' || name === 'ThrottlingException') {
    return new BucketfsError(ErrorCodes.Throttled, msg, o);
  }
  if (status === 416 || name === 'InvalidRange') return new BucketfsError(ErrorCodes.BadResponse, msg, o);
  // Another conditional write to the key is under way; S3 says to try again.
  if (name === 'ConditionalRequestConflict') return new BucketfsError(ErrorCodes.ServerError, msg, o);
  if (status !== undefined && status >= 500) return new BucketfsError(ErrorCodes.ServerError, msg, o);
  if (net) return new BucketfsError(ErrorCodes.Network, `${net}: ${msg}`, o);
  return new BucketfsError(ErrorCodes.Unknown, msg, o);
}
