// Decorator that retries retryable store errors (throttling, 5xx, resets, timeouts, short
// bodies) with capped exponential backoff and full jitter. Non-retryable errors and aborts
// pass straight through. Callers see an error only once retries are exhausted.
import { setTimeout as sleep } from 'node:timers/promises';
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ByteRange, ListOptions, ListPage, ObjectMeta, ObjectPin, ObjectStore, RequestKind } from './types.js';

export interface RetryPolicy {
  /** Total attempts including the first (1 = no retry). */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 5_000 };

/** Worst-case time spent sleeping between attempts; the FUSE op timeout must exceed it. */
export function worstCaseBackoffMs(p: RetryPolicy): number {
  let total = 0;
  for (let i = 1; i < p.maxAttempts; i++) total += Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** i);
  return total;
}

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
        // Throttling deserves a longer pause than a dropped connection.
        const base = e.code === ErrorCodes.Throttled ? this.policy.baseDelayMs * 4 : this.policy.baseDelayMs;
        const delay = Math.random() * Math.min(this.policy.maxDelayMs, base * 2 ** attempt);
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
