// Reusable buffers of one size: the prefetcher's parts, the file cache's download chunks and,
// through ReservedBuffers, its block buffers. A fresh multi-MiB Buffer per part lives long enough to
// reach V8's old generation and keeps it in mark-compact collections at a few hundred MB/s
// (docs/architecture.md, decision D1); recycled, they cost nothing.
// A buffer goes back to the pool only when its part is dropped, no read waits on it, and the event
// loop has turned since: a read copies its bytes in the continuation that receives them, before that.
// Only full-size parts are pooled (ramp-up and tail parts are rare and get their own buffer), so
// a pooled buffer is exactly the bytes its part reserved. Free buffers are kept only while reserved
// plus pooled bytes fit the mount's MemoryBudget limit, dropped when a reader has to wait for
// memory, and dropped after a while without use, so an idle mount gives its memory back.
import type { Metrics } from '../metrics/metrics.js';
import type { MemoryBudget } from './budget.js';

export class PartPool {
  readonly partSize: number;
  private readonly budget: MemoryBudget;
  private readonly idleMs: number;
  private readonly metrics: Metrics | undefined;
  private readonly free: Buffer[] = [];
  private lastUse = 0;
  private trimTimer: NodeJS.Timeout | undefined;

  constructor(partSize: number, budget: MemoryBudget, idleMs: number, metrics?: Metrics) {
    this.partSize = partSize;
    this.budget = budget;
    this.idleMs = idleMs;
    this.metrics = metrics;
    budget.onPressure(() => this.clear());
  }

  /** Free buffers held for reuse (tests). */
  get pooled(): number {
    return this.free.length;
  }

  /**
   * A buffer for a part of `size` bytes that the caller has already reserved in the budget;
   * undefined when the pool does not hold that size (the store then allocates one).
   */
  acquire(size: number): Buffer | undefined {
    return size === this.partSize ? this.take() : undefined;
  }

  /** A buffer of exactly `partSize` bytes: a free one, or a new one. */
  take(): Buffer {
    this.lastUse = performance.now();
    const buf = this.free.pop();
    if (!buf) return Buffer.allocUnsafeSlow(this.partSize);
    this.report();
    return buf;
  }

  /**
   * Gives back a buffer once the event loop has turned: views of it that a read returned are used
   * in the continuation that received them, and dead by then (FileReader.read). What every holder
   * of a buffer that reads have seen calls.
   */
  releaseLater(buf: Buffer): void {
    setImmediate(() => this.release(buf));
  }

  /** Gives back a buffer from take() or acquire() now: nothing may read it any more. */
  release(buf: Buffer): void {
    if (buf.length !== this.partSize || buf.byteOffset !== 0 || buf.buffer.byteLength !== this.partSize) return;
    if (this.budget.used + (this.free.length + 1) * this.partSize > this.budget.limit) return;
    this.free.push(buf);
    this.report();
    this.scheduleTrim();
  }

  /** Drops every free buffer (unmount, tests). */
  clear(): void {
    this.free.length = 0;
    clearTimeout(this.trimTimer);
    this.trimTimer = undefined;
    this.report();
  }

  private report(): void {
    this.metrics?.readPoolBytes.set(this.free.length * this.partSize);
  }

  private scheduleTrim(): void {
    if (this.trimTimer) return;
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined;
      if (performance.now() - this.lastUse >= this.idleMs) this.clear();
      else if (this.free.length > 0) this.scheduleTrim();
    }, this.idleMs);
    this.trimTimer.unref();
  }
}
