// Decorator that counts every request an adapter makes, by kind and outcome, with its latency
// and the bytes it brought in. It wraps the adapter directly (inside the retry decorator),
// so each attempt is one counted request.
import { BucketfsError } from '../errors.js';
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

export class MeteredStore implements ObjectStore {
  readonly kind;
  readonly bucket;
  readonly uploadShape;
  private readonly inner: ObjectStore;
  private readonly metrics: Metrics;

  constructor(inner: ObjectStore, metrics: Metrics) {
    this.inner = inner;
    this.metrics = metrics;
    this.kind = inner.kind;
    this.bucket = inner.bucket;
    this.uploadShape = inner.uploadShape;
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectMeta | undefined> {
    return this.count('HEAD', () => this.inner.head(key, signal));
  }

  list(prefix: string, opts?: ListOptions, signal?: AbortSignal): Promise<ListPage> {
    return this.count('LIST', () => this.inner.list(prefix, opts, signal));
  }

  async read(key: string, range: ByteRange, pin?: ObjectPin, signal?: AbortSignal): Promise<Buffer> {
    const buf = await this.count('GET', () => this.inner.read(key, range, pin, signal));
    this.metrics.storeBytesIn.inc(buf.length);
    return buf;
  }

  async put(key: string, body: Buffer, condition?: WriteCondition, signal?: AbortSignal): Promise<ObjectMeta> {
    this.metrics.storeBytesOut.inc(body.length);
    return this.count('PUT', () => this.inner.put(key, body, condition, signal));
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.count('DELETE', () => this.inner.delete(key, signal));
  }

  copy(source: ObjectMeta, to: string, signal?: AbortSignal): Promise<ObjectMeta> {
    return this.count('COPY', () => this.inner.copy(source, to, signal));
  }

  startUpload(key: string, condition?: WriteCondition, signal?: AbortSignal): Promise<Upload> {
    return this.count('UPLOAD_START', () => this.inner.startUpload(key, condition, signal));
  }

  uploadPart(
    upload: Upload,
    number: number,
    offset: number,
    body: Buffer,
    signal?: AbortSignal,
  ): Promise<UploadedPart> {
    this.metrics.storeBytesOut.inc(body.length);
    return this.count('UPLOAD_PART', () => this.inner.uploadPart(upload, number, offset, body, signal));
  }

  completeUpload(upload: Upload, parts: UploadedPart[], signal?: AbortSignal): Promise<ObjectMeta> {
    return this.count('UPLOAD_COMPLETE', () => this.inner.completeUpload(upload, parts, signal));
  }

  abortUpload(upload: Upload, signal?: AbortSignal): Promise<void> {
    return this.count('UPLOAD_ABORT', () => this.inner.abortUpload(upload, signal));
  }

  private async count<T>(kind: RequestKind, call: () => Promise<T>): Promise<T> {
    const stop = this.metrics.storeRequestSeconds.startTimer({ kind });
    try {
      const out = await call();
      this.metrics.storeRequests.inc({ kind, outcome: 'ok' });
      return out;
    } catch (err) {
      const outcome = err instanceof BucketfsError ? err.code : 'BFS_UNKNOWN';
      this.metrics.storeRequests.inc({ kind, outcome });
      throw err;
    } finally {
      stop();
    }
  }
}
