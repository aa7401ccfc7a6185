// Runs ranged GETs for the whole mount under one concurrency limit (--max-concurrency), so N open
// files share the connection pool instead of each opening its own flood of requests.
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { ByteRange, ObjectPin, ObjectStore } from '../store/types.js';

export class RangeDownloader {
  private readonly store: ObjectStore;
  private readonly maxConcurrency: number;
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(store: ObjectStore, maxConcurrency: number) {
    this.store = store;
    this.maxConcurrency = maxConcurrency;
  }

  /** One part, [start, end) of `key`, when a request slot is free. */
  async fetch(key: string, range: ByteRange, pin: ObjectPin, signal: AbortSignal): Promise<Buffer> {
    if (this.running >= this.maxConcurrency) {
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
    this.running++;
    try {
      if (signal.aborted) throw new BucketfsError(ErrorCodes.Aborted, 'request aborted', { key });
      return await this.store.read(key, range, pin, signal);
    } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }
}
