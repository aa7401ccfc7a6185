// Buffers of one size whose bytes count in the mount's memory budget for as long as someone holds
// them: the file cache's block buffers (blocks read from disk, first blocks read ahead, blocks a
// sequential reader keeps). Taking one reserves its bytes, waiting in the budget's queue like every
// other reader; giving it back releases them. A holder that keeps blocks only to save a disk read
// later gives them back when the budget is under pressure (MemoryBudget.onPressure), so a reader
// waiting for a buffer is never stuck behind buffers nobody needs now.
import type { Metrics } from '../metrics/metrics.js';
import type { MemoryBudget } from './budget.js';
import { PartPool } from './part-pool.js';

export class ReservedBuffers {
  readonly size: number;
  private readonly budget: MemoryBudget;
  private readonly pool: PartPool;
  private held = 0;

  constructor(size: number, budget: MemoryBudget, idleMs: number, metrics?: Metrics) {
    this.size = size;
    this.budget = budget;
    this.pool = new PartPool(size, budget, idleMs, metrics);
  }

  /** Free buffers kept for reuse (tests). */
  get pooled(): number {
    return this.pool.pooled;
  }

  /** Buffers taken and not given back (tests). */
  get outstanding(): number {
    return this.held;
  }

  /** A buffer once its bytes fit the budget (or nothing else is reserved); rejects if `signal` aborts. */
  async take(signal?: AbortSignal): Promise<Buffer> {
    await this.budget.reserve(this.size, signal);
    this.held++;
    return this.pool.take();
  }

  /**
   * Whether a take() now would get its buffer without waiting: work that may be skipped (read-ahead)
   * asks first. Holds until the caller's next await.
   */
  hasRoom(): boolean {
    return this.budget.fits(this.size);
  }

  /** `listener` runs when a reader waits for memory: give back buffers held only to save work later. */
  onPressure(listener: () => void): () => void {
    return this.budget.onPressure(listener);
  }

  /** Gives a buffer back now: nothing may read it any more. */
  release(buf: Buffer): void {
    this.held--;
    this.budget.release(this.size);
    this.pool.release(buf);
  }

  /**
   * Gives a buffer back once the event loop has turned: a read that was handed its bytes copies
   * them in the continuation that receives them, before that.
   */
  releaseLater(buf: Buffer): void {
    setImmediate(() => this.release(buf));
  }

  /** Drops the free buffers (unmount). */
  clear(): void {
    this.pool.clear();
  }
}
