// Decorator that retries retryable store errors (throttling, 5xx, resets, timeouts, short
// bodies) with capped exponential backoff and full jitter. Non-retryable errors and aborts
// pass straight through. Callers see an error only once retries are exhausted.
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffCeilingMs, type RetryPolicy } from '../config/retry-policy.js';
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ByteRange, ListOptions, ListPage, ObjectMeta, ObjectPin, ObjectStore, RequestKind } from './types.js';

export class RetryingStore implements ObjectStore {
  readonly kind;
  readonly bucket;
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
