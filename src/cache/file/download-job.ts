// One download job per cached object: fetches the whole object into its partial file in chunks,
// in order, through the mount-wide RangeDownloader (so it shares --max-concurrency with every
// other read) and MemoryBudget. Chunks start small (the first byte of a small file comes fast) and
// double up to the part size; objects over the parallel threshold keep several chunks in flight.
// Readers wait only for the chunk holding the bytes they need, and never for one far ahead.
import type { FileHandle } from 'node:fs/promises';
import type { MemoryBudget } from '../../memory/budget.js';
import type { PartPool } from '../../memory/part-pool.js';
import type { RangeDownloader } from '../../read/range-downloader.js';
import { type ByteRange, type ObjectPin, versionPin } from '../../store/types.js';
import type { CacheEntry } from './entry.js';
import { BLOCK_BYTES } from './layout.js';

export interface DownloadOptions {
  /** Largest chunk (the read part size, rounded to whole blocks). */
  chunkBytes: number;
  /** Chunks in flight at once for this object. */
  parallelism: number;
  /** Recycled buffers for full-size chunks (fresh multi-MiB buffers keep V8's GC busy). */
  pool?: PartPool;
}

interface Chunk {
  start: number;
  end: number;
  /** The bytes, in memory from their arrival until a while after they are written (see `recent`). */
  data?: Buffer;
  /** On disk, checksums recorded. */
  written?: boolean;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** The largest chunk for a part size: whole blocks, at least one. */
export function chunkSize(maxBytes: number): number {
  return Math.max(BLOCK_BYTES, Math.floor(maxBytes / BLOCK_BYTES) * BLOCK_BYTES);
}

/** Chunk boundaries: 1 block, then doubling, up to `maxBytes`; all whole blocks but the last. */
export function planChunks(size: number, maxBytes: number): { start: number; end: number }[] {
  const max = chunkSize(maxBytes);
  const out: { start: number; end: number }[] = [];
  let len = BLOCK_BYTES;
  for (let start = 0; start < size; start += len, len = Math.min(len * 2, max)) {
    out.push({ start, end: Math.min(size, start + len) });
  }
  return out;
}

/** Chunks a job keeps in memory after writing them (at least; as many as it fetches at once). */
const RECENT_CHUNKS = 4;

export class DownloadJob {
  readonly entry: CacheEntry;
  /** Settles when every byte is on disk (resolves) or the job gave up (rejects with why). */
  readonly finished: Promise<void>;
  private readonly chunks: Chunk[];
  private readonly opts: DownloadOptions;
  private readonly downloader: RangeDownloader;
  private readonly budget: MemoryBudget;
  private readonly abort = new AbortController();
  private readonly pin: ObjectPin;
  private fh: FileHandle | undefined;
  private next = 0;
  private running = 0;
  private written = 0;
  private failure: unknown;
  private completing = false;
  private readonly persist: () => Promise<void>;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  /**
   * The last chunks written, still in memory with their budget reserved: the readers that waited
   * for them (epoch 1) take their bytes from here instead of reading back and checking what was
   * just written. Given back under memory pressure and when the job ends.
   */
  private readonly recent: Chunk[] = [];
  /** The furthest offset a reader has taken from memory: chunks wholly before it are done with. */
  private readFrontier = 0;
  private readonly stopListening: () => void;

  /** `persist` makes the finished download a cache entry on disk, before the job lets go of it. */
  constructor(
    entry: CacheEntry,
    downloader: RangeDownloader,
    budget: MemoryBudget,
    opts: DownloadOptions,
    persist: () => Promise<void>,
  ) {
    this.entry = entry;
    this.persist = persist;
    this.downloader = downloader;
    this.budget = budget;
    this.opts = opts;
    this.pin = versionPin(entry.meta);
    this.chunks = planChunks(entry.size, opts.chunkBytes).map(({ start, end }) => {
      const c = { start, end } as Chunk;
      c.done = new Promise<void>((resolve, reject) => {
        c.resolve = resolve;
        c.reject = reject;
      });
      c.done.catch(() => {}); // waiters see the rejection; an unwaited chunk is not an error
      return c;
    });
    this.finished = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.finished.catch(() => {});
    this.stopListening = budget.onPressure(() => this.forget(0));
  }

  /** Block `block` from a chunk still in memory, if it is one. */
  blockInMemory(block: number): Buffer | undefined {
    const at = block * BLOCK_BYTES;
    if (at > this.readFrontier) this.readFrontier = at;
    for (const c of this.recent) {
      if (c.data && at >= c.start && at < c.end)
        return c.data.subarray(at - c.start, Math.min(c.end, at + BLOCK_BYTES) - c.start);
    }
    return undefined;
  }

  /** Opens the partial file (through the entry, so readers share the handle) and starts fetching. */
  async start(createPartial: () => Promise<FileHandle>): Promise<void> {
    this.fh = await this.entry.acquire(createPartial);
    if (this.chunks.length === 0) return this.complete();
    this.pump();
    return undefined;
  }

  /**
   * Resolves once `block` is in memory (blockInMemory) or on disk. Undefined when it is further
   * ahead than the chunks in flight and the next batch: the caller reads those bytes from the
   * store instead of waiting.
   */
  waitFor(block: number): Promise<void> | undefined {
    if (this.entry.has(block)) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const at = block * BLOCK_BYTES;
    const i = this.chunks.findIndex((c) => c.end > at);
    if (i < 0 || i >= this.next + this.opts.parallelism) return undefined;
    return (this.chunks[i] as Chunk).done;
  }

  /** Bytes still to be written: disk space this job has claimed but not yet used. */
  get remainingBytes(): number {
    return this.entry.size - this.written;
  }

  /** Stops the download (unmount); waiters fail with `reason`. */
  cancel(reason: unknown): void {
    this.fail(reason);
  }

  private pump(): void {
    while (this.failure === undefined && this.running < this.opts.parallelism && this.next < this.chunks.length) {
      const chunk = this.chunks[this.next++] as Chunk;
      this.running++;
      this.fetch(chunk).then(
        () => {
          this.running--;
          chunk.resolve();
          if (this.entry.complete) void this.complete();
          else this.pump();
        },
        (err: unknown) => {
          this.running--;
          this.fail(err);
        },
      );
    }
  }

  private async fetch(c: Chunk): Promise<void> {
    const size = c.end - c.start;
    await this.budget.reserve(size, this.abort.signal);
    let kept = false;
    let data: Buffer | undefined;
    try {
      const range: ByteRange = { start: c.start, end: c.end };
      const into = this.opts.pool?.acquire(size);
      if (into) range.into = into;
      data = await this.downloader.fetch(this.entry.meta.key, range, this.pin, this.abort.signal);
      if (this.failure !== undefined) return;
      // Readers take the bytes from memory at once; the disk write does not hold them up.
      c.data = data;
      this.recent.push(c);
      kept = true;
      c.resolve();
      const fh = this.fh as FileHandle;
      for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, c.start + done);
        done += bytesWritten;
      }
      this.entry.markWritten(c.start / BLOCK_BYTES, data);
      this.written += data.length;
      c.written = true;
      this.forget(Math.max(RECENT_CHUNKS, this.opts.parallelism));
    } finally {
      if (!kept) this.giveBack(size, data);
    }
  }

  /**
   * Keeps at most `keep` chunks in memory (more while they are not yet on disk): first gives back
   * those every reader has passed, then the oldest written. `keep` 0 gives back all (job ended).
   */
  private forget(keep: number): void {
    for (let i = 0; i < this.recent.length && this.recent.length > keep; ) {
      const c = this.recent[i] as Chunk;
      // A block's worth of slack: the kernel's read-ahead sends reads a little out of order.
      if (keep === 0 || (c.written && c.end + BLOCK_BYTES <= this.readFrontier)) this.drop(i);
      else i++;
    }
    for (let i = 0; i < this.recent.length && this.recent.length > keep; ) {
      if ((this.recent[i] as Chunk).written) this.drop(i);
      else i++;
    }
  }

  private drop(i: number): void {
    const [c] = this.recent.splice(i, 1) as [Chunk];
    this.giveBack(c.end - c.start, c.data);
    c.data = undefined;
  }

  /**
   * Returns a chunk's budget, and its buffer to the pool once the event loop has turned: views of
   * it handed to readers are dead by then (they are copied into FUSE's buffer at once).
   */
  private giveBack(size: number, data: Buffer | undefined): void {
    this.budget.release(size);
    if (data) this.opts.pool?.releaseLater(data);
  }

  private async complete(): Promise<void> {
    if (this.completing) return;
    this.completing = true;
    try {
      await this.persist();
    } catch (err) {
      this.completing = false;
      this.fail(err);
      return;
    }
    this.entry.release();
    this.end();
    this.settle.resolve();
  }

  private end(): void {
    this.stopListening();
    this.forget(0);
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined || this.completing) return;
    this.failure = err;
    this.abort.abort(err);
    for (const c of this.chunks) c.reject(err);
    if (this.fh) this.entry.release();
    this.end();
    this.settle.reject(err);
  }
}
