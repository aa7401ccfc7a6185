// Decorator that retries retryable store errors (throttling, 5xx, resets, timeouts, short
// bodies) with capped exponential backoff and full jitter. Non-retryable errors and aborts
// pass straight through. Callers see an error only once retries are exhausted.
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffCeilingMs, type RetryPolicy } from '../config/retry-policy.js';
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type {
  ByteRange,
  ListOptions,
  ListPage,
  ObjectMeta,
  ObjectPin,
  ObjectStore,
  RequestKind,
  Upload,
  UploadedPart,
  WriteCondition,
} from './types.js';

export class RetryingStore implements ObjectStore {
  readonly kind;
  readonly bucket;
  readonly uploadShape;
  private readonly inner: ObjectStore;
  private readonly policy: RetryPolicy;
  private readonly metrics: Metrics;
  private readonly log: Logger;

  constructor(inner: ObjectStore, policy: RetryPolicy, metrics: Metrics, log: Logger) {
    this.inner = inner;
    this.policy = policy;
    this.metrics = metrics;
    this.log = log;
    this.kind = inner.kind;
    this.bucket = inner.bucket;
    this.uploadShape = inner.uploadShape;
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectMeta | undefined> {
    return this.attempt('HEAD', key, signal, () => this.inner.head(key, signal));
  }

  list(prefix: string, opts?: ListOptions, signal?: AbortSignal): Promise<ListPage> {
    return this.attempt('LIST', prefix, signal, () => this.inner.list(prefix, opts, signal));
  }

  read(key: string, range: ByteRange, pin?: ObjectPin, signal?: AbortSignal): Promise<Buffer> {
    return this.attempt('GET', key, signal, () => this.inner.read(key, range, pin, signal));
  }

  // Writes are retried one request at a time: a failed part is sent again, never the whole upload.
  // A conditional write whose first attempt landed but whose answer was lost fails its retry with
  // BFS_STALE_OBJECT; the uploader above checks what the store then holds (see src/write/).
  put(key: string, body: Buffer, condition?: WriteCondition, signal?: AbortSignal): Promise<ObjectMeta> {
    return this.attempt('PUT', key, signal, () => this.inner.put(key, body, condition, signal));
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.attempt('DELETE', key, signal, () => this.inner.delete(key, signal));
  }

  copy(source: ObjectMeta, to: string, signal?: AbortSignal): Promise<ObjectMeta> {
    return this.attempt('COPY', to, signal, () => this.inner.copy(source, to, signal));
  }

  startUpload(key: string, condition?: WriteCondition, signal?: AbortSignal): Promise<Upload> {
    return this.attempt('UPLOAD_START', key, signal, () => this.inner.startUpload(key, condition, signal));
  }

  uploadPart(
    upload: Upload,
    number: number,
    offset: number,
    body: Buffer,
    signal?: AbortSignal,
  ): Promise<UploadedPart> {
    return this.attempt('UPLOAD_PART', upload.key, signal, () =>
      this.inner.uploadPart(upload, number, offset, body, signal),
    );
  }

  completeUpload(upload: Upload, parts: UploadedPart[], signal?: AbortSignal): Promise<ObjectMeta> {
    return this.attempt('UPLOAD_COMPLETE', upload.key, signal, () => this.inner.completeUpload(upload, parts, signal));
  }

  abortUpload(upload: Upload, signal?: AbortSignal): Promise<void> {
    return this.attempt('UPLOAD_ABORT', upload.key, signal, () => this.inner.abortUpload(upload, signal));
  }

  private async attempt<T>(
    kind: RequestKind,
    key: string,
    signal: AbortSignal | undefined,
    call: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const e =
          err instanceof BucketfsError ? err : new BucketfsError(ErrorCodes.Unknown, String(err), { key, cause: err });
        if (!e.retryable || signal?.aborted || attempt >= this.policy.maxAttempts) throw e;
        const delay = Math.random() * backoffCeilingMs(this.policy, attempt, e.code === ErrorCodes.Throttled);
        this.metrics.storeRetries.inc({ kind, code: e.code });
        this.log.debug(
          { kind, key, attempt, code: e.code, err: e.message, delayMs: Math.round(delay) },
          'retrying store request',
        );
        try {
          await sleep(delay, undefined, signal ? { signal } : undefined);
        } catch {
          throw new BucketfsError(ErrorCodes.Aborted, 'request aborted', { key });
        }
      }
    }
  }
}
