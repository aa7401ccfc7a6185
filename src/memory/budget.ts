// The mount-wide byte budget for read buffers (--memory-limit-mb). Prefetching takes only what is
// free (tryReserve) so windows shrink when memory is tight instead of the process growing; a read
// that needs bytes now waits (reserve) in FIFO order. A waiter is always served when nothing else
// is reserved, so progress never depends on the limit being larger than one part. Under pressure,
// readers are asked to give back buffers they hold speculatively: once per turn of the microtask
// queue, never from inside reserve(), whose caller may be half-way through changing what it holds
// (a prefetcher shedding its own parts inside its own reserve() left a gap in its stream, and a
// read came up short).

type Waiter = { bytes: number; resolve: () => void; reject: (err: unknown) => void };

export class MemoryBudget {
  readonly limit: number;
  private inUse = 0;
  private peakBytes = 0;
  private readonly waiters: Waiter[] = [];
  private readonly pressureListeners = new Set<() => void>();
  private pressureQueued = false;

  constructor(limitBytes: number) {
    this.limit = limitBytes;
  }

  get used(): number {
    return this.inUse;
  }

  /** Highest use seen (tests check the bound with it). */
  get peak(): number {
    return this.peakBytes;
  }

  /** Whether `bytes` would be reserved at once now (tryReserve would succeed). */
  fits(bytes: number): boolean {
    return this.waiters.length === 0 && (this.inUse + bytes <= this.limit || this.inUse === 0);
  }

  tryReserve(bytes: number): boolean {
    if (!this.fits(bytes)) return false;
    this.take(bytes);
    return true;
  }

  /** Waits until `bytes` fit (or nothing else is reserved). Rejects if `signal` aborts first. */
  reserve(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.tryReserve(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject };
      this.waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
      this.signalPressure();
    });
  }

  release(bytes: number): void {
    this.inUse -= bytes;
    while (this.waiters.length > 0) {
      const w = this.waiters[0] as Waiter;
      if (this.inUse + w.bytes > this.limit && this.inUse > 0) break;
      this.waiters.shift();
      this.take(w.bytes);
      w.resolve();
    }
  }

  /** `listener` runs when a reader is waiting for bytes: give back what you hold speculatively. */
  onPressure(listener: () => void): () => void {
    this.pressureListeners.add(listener);
    return () => this.pressureListeners.delete(listener);
  }

  private signalPressure(): void {
    if (this.pressureQueued) return;
    this.pressureQueued = true;
    queueMicrotask(() => {
      this.pressureQueued = false;
      for (const listener of this.pressureListeners) listener();
    });
  }

  private take(bytes: number): void {
    this.inUse += bytes;
    if (this.inUse > this.peakBytes) this.peakBytes = this.inUse;
  }
}
