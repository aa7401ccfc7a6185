// One Prefetcher per open file handle. Sequential reads stream through a window of parts fetched
// ahead: the first request is small (time to first byte matters for small files), and the window
// doubles each time the reader finishes a part, up to --prefetch-max-mb. Reads that arrive a little
// out of order (the kernel issues several at once) or skip a little forward stay in the stream; a
// short step back is served from the part kept behind; anything else is a seek: the stream is
// dropped and reads are fetched exactly until they have covered more than a first request's worth
// of contiguous bytes (in any order) since the seek. Only then does a new stream start: a random
// 1 MiB read arrives as eight 128 KiB requests at once, and starting a stream on the second of
// them fetched 2.3x the bytes read (the rand-1m benchmark).
// Every buffered byte is reserved in the mount-wide MemoryBudget; full-size parts are filled into
// recycled buffers (part-pool.ts), so what read() returns is valid only until the event loop turns
// (see FileReader.read).
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { MemoryBudget } from '../memory/budget.js';
import { PartPool } from '../memory/part-pool.js';
import type { Metrics } from '../metrics/metrics.js';
import { type ByteRange, type ObjectMeta, type ObjectPin, versionKey, versionPin } from '../store/types.js';
import type { RangeDownloader } from './range-downloader.js';
import { nextOrigin, type Siblings, StreamRegistry } from './stream-registry.js';
import type { FileReader, ReaderFactory } from './types.js';

const MiB = 1024 * 1024;
/** Abort reasons, made once (see close()). */
const HANDLE_CLOSED = new BucketfsError(ErrorCodes.Aborted, 'handle closed');
const PART_DROPPED = new BucketfsError(ErrorCodes.Aborted, 'read-ahead dropped');

export interface PrefetchOptions {
  /** Largest single GET. */
  partSize: number;
  /** Size of the first request of a stream. */
  initialWindow: number;
  /** Most bytes fetched ahead of the reader. */
  maxWindow: number;
  /** Forward skips up to this many bytes past the stream are read through, not treated as seeks. */
  forwardTolerance: number;
  /**
   * Reads up to this far past where another handle's stream of the object began fetch only their
   * own bytes (see ensure()); further on, the handle streams on.
   */
  siblingSlack: number;
  /** Buffers of a handle unused this long go back to the budget. */
  idleMs: number;
}

interface Part {
  start: number;
  end: number;
  data: Promise<Buffer>;
  abort: AbortController;
  reserved: number;
  /** Reads waiting on this part right now: never shed under memory pressure. */
  readers: number;
  /** The recycled buffer the store fills, if the pool had one for this size. */
  buffer: Buffer | undefined;
  /** Released from the stream: its buffer goes back to the pool once no read uses it. */
  freed: boolean;
}

interface ExactRead {
  start: number;
  end: number;
  into: Buffer;
  /** With the bytes copied into `into`. */
  resolve: (copied: number) => void;
  reject: (err: unknown) => void;
}

export class Prefetcher implements FileReader {
  private readonly meta: ObjectMeta;
  /** The object version's id in `streams`: its key and versionKey (the one rule for a version). */
  private readonly objectId: string;
  private readonly streams: StreamRegistry<Prefetcher> | undefined;
  /** The open handles of this object version, this one included (see stream-registry.ts). */
  private readonly siblings: Siblings<Prefetcher> | undefined;
  /** Where the current stream began; undefined without one. Read-ahead of sibling handles stops here. */
  private streamOrigin: number | undefined;
  private readonly pin: ObjectPin;
  private readonly downloader: RangeDownloader;
  private readonly budget: MemoryBudget;
  private readonly opts: PrefetchOptions;
  private readonly metrics: Metrics;
  private readonly pool: PartPool | undefined;
  /** Aborts every request of the handle at close (parts also have their own controllers). */
  private readonly closed = new AbortController();
  private readonly stopListening: () => void;
  /** The stream: contiguous parts in offset order. */
  private parts: Part[] = [];
  private window: number;
  /** Nothing read yet: a first read at offset 0 starts a stream at once (whole small files). */
  private fresh = true;
  /** Span of the reads since the last seek, give or take reordering: [runStart, runEnd). */
  private runStart = 0;
  private runEnd = -1;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastReadAt = 0;
  /** No part reaches past this offset (a stream that is not yet known to be one); see read(). */
  private cap = Number.POSITIVE_INFINITY;
  /** Exact reads waiting for the end of this turn of the event loop (fetchExact). */
  private batch: ExactRead[] | undefined;

  constructor(
    meta: ObjectMeta,
    downloader: RangeDownloader,
    budget: MemoryBudget,
    opts: PrefetchOptions,
    metrics: Metrics,
    pool?: PartPool,
    streams?: StreamRegistry<Prefetcher>,
  ) {
    this.meta = meta;
    this.pin = versionPin(meta);
    this.objectId = `${meta.key}\0${versionKey(meta)}`;
    this.streams = streams;
    this.siblings = streams?.join(this.objectId, this);
    this.downloader = downloader;
    this.budget = budget;
    this.opts = opts;
    this.metrics = metrics;
    this.pool = pool;
    this.window = opts.initialWindow;
    this.stopListening = budget.onPressure(() => this.shed());
  }

  get origin(): number | undefined {
    return this.streamOrigin;
  }

  async read(offset: number, length: number, into: Buffer): Promise<number> {
    if (this.closed.signal.aborted)
      throw new BucketfsError(ErrorCodes.Aborted, 'handle closed', { key: this.meta.key });
    const end = Math.min(offset + length, this.meta.size);
    if (offset >= end) return 0;
    this.touch();
    const fromStart = this.fresh && offset === 0;
    this.fresh = false;
    if (!this.inStream(offset)) {
      const first = this.parts[0];
      // A straggler of the reads that started the stream: serve it without dropping the stream.
      if (first && offset < first.start && offset >= first.start - this.opts.forwardTolerance) {
        return this.fetchExact(offset, end, into);
      }
      if (this.parts.length > 0) {
        // A seek: drop the stream, read exactly what was asked.
        this.metrics.prefetchResets.inc();
        this.reset();
      }
      const continues = offset === this.runEnd;
      if (this.extendRun(offset, end) || fromStart) {
        this.runEnd = -1; // the stream takes over from the run
      } else {
        // A read that continues the previous one exactly (the kernel's next 128 KiB of one
        // application read): fetch on to the end of a first request's worth, rounded down to a
        // MiB, with no read-ahead past it. A random 1 MiB read then costs two GETs, not eight
        // round trips, and fetches only its own bytes.
        const cap = Math.floor((this.runStart + this.opts.initialWindow) / MiB) * MiB;
        if (!continues || cap <= end) return this.fetchExact(offset, end, into);
        this.cap = cap;
      }
    } else if (end > this.cap) {
      this.cap = Number.POSITIVE_INFINITY; // read past the first request: a stream after all
    }
    const needed = this.ensure(offset, end);
    for (const p of needed) p.readers++;
    try {
      return await this.copyOut(needed, offset, end, into);
    } finally {
      for (const p of needed) {
        p.readers--;
        this.recycle(p);
      }
      this.trimBehind(offset);
    }
  }

  close(): void {
    if (this.closed.signal.aborted) return;
    // A shared reason: abort() without one builds a DOMException with a stack trace, per handle,
    // which showed in profiles of many small files.
    this.closed.abort(HANDLE_CLOSED);
    for (const p of this.parts) p.abort.abort(HANDLE_CLOSED);
    clearTimeout(this.idleTimer);
    this.stopListening();
    this.streams?.leave(this.objectId, this); // before dropStream(): it leaves our origin behind
    this.dropStream();
  }

  /**
   * Records a read outside the stream; true when the reads since the last seek now span more than
   * a first request and this one is at their forward edge: time to start a stream here.
   */
  private extendRun(offset: number, end: number): boolean {
    const tolerance = this.opts.forwardTolerance;
    if (this.runEnd >= 0 && offset >= this.runStart - tolerance && offset <= this.runEnd + tolerance) {
      this.runStart = Math.min(this.runStart, offset);
      this.runEnd = Math.max(this.runEnd, end);
    } else {
      this.runStart = offset;
      this.runEnd = end;
    }
    return end >= this.runEnd && this.runEnd - this.runStart > this.opts.initialWindow;
  }

  private inStream(offset: number): boolean {
    const first = this.parts[0];
    const last = this.parts[this.parts.length - 1];
    // The kernel's own read-ahead sends requests ahead of the reader and out of order: a jump of up
    // to a window past the stream is still the same stream.
    // A stream not yet known to be one (capped, see read()) is continued only, never skipped along.
    const tolerance = Number.isFinite(this.cap) ? 0 : Math.max(this.opts.forwardTolerance, this.window);
    return first !== undefined && last !== undefined && offset >= first.start && offset <= last.end + tolerance;
  }

  /**
   * Issues parts until [offset, end) is covered and the window is fetched ahead; returns the parts
   * covering the read. Synchronous on purpose: concurrent reads of one handle must never see a
   * half-extended stream.
   */
  private ensure(offset: number, end: number): Part[] {
    let streamEnd = this.parts.length > 0 ? (this.parts[this.parts.length - 1] as Part).end : offset;
    // Where another handle's stream of this object began, ahead of this read or a little behind its
    // end: the bytes past it are that handle's. No part crosses it, and none is fetched ahead past
    // it; reads just past it (the kernel's read-ahead runs on a little past where an application
    // stops) get exactly their bytes. A reader that really goes on streams again past the slack.
    const edge = nextOrigin(this.siblings, this, end - this.opts.siblingSlack, this.streamOrigin ?? offset);
    // Demand: the parts this read needs, reserved all at once (a read never holds half of what
    // it needs while waiting for the rest: that is how budgets deadlock).
    if (streamEnd < end) {
      const sizes: number[] = [];
      for (let at = streamEnd; at < end; at += sizes[sizes.length - 1] as number) {
        sizes.push(Math.min(this.partSize(at), (at < edge ? edge : end) - at));
      }
      const all = this.budget.reserve(
        sizes.reduce((a, b) => a + b, 0),
        this.closed.signal,
      );
      for (const size of sizes) streamEnd = this.issue(streamEnd, size, all);
    }
    // Read-ahead: only what the budget has free right now; when it is tight the window shrinks.
    const target = Math.min(this.meta.size, end + this.window, Math.max(this.cap, end), edge);
    while (streamEnd < target) {
      const size = Math.min(this.partSize(streamEnd), edge - streamEnd);
      if (!this.budget.tryReserve(size)) break;
      streamEnd = this.issue(streamEnd, size, Promise.resolve());
    }
    return this.parts.filter((p) => p.end > offset && p.start < end);
  }

  private partSize(start: number): number {
    const toCap = this.cap > start ? this.cap - start : Number.POSITIVE_INFINITY;
    return Math.min(this.opts.partSize, this.window, this.meta.size - start, toCap);
  }

  /** Appends the part [start, start + size) whose bytes are (or will be) reserved by `reserved`. */
  private issue(start: number, size: number, reserved: Promise<void>): number {
    // Its own controller, aborted on a seek or at close (close() aborts every part): cheaper than
    // AbortSignal.any per part, which Node 20 implements with weak references.
    const abort = new AbortController();
    const signal = abort.signal;
    const end = start + size;
    const part: Part = {
      start,
      end,
      data: Promise.resolve(Buffer.alloc(0)),
      abort,
      reserved: 0,
      readers: 0,
      buffer: undefined,
      freed: false,
    };
    part.data = reserved.then(() => {
      part.reserved = size;
      const range: ByteRange = { start, end };
      if (!signal.aborted) {
        part.buffer = this.pool?.acquire(size);
        if (part.buffer) range.into = part.buffer;
      }
      return this.downloader.fetch(this.meta.key, range, this.pin, signal);
    });
    part.data.catch(() => this.dropFrom(part)); // a failed part and all after it are fetched again
    if (this.parts.length === 0) this.streamOrigin = start;
    this.parts.push(part);
    this.metrics.prefetchWindowBytes.observe(this.window);
    this.reportBudget();
    return end;
  }

  /**
   * Copies [offset, end) from the parts that hold it into `into`, each part as soon as it has
   * arrived. A part's buffer goes back to the pool only after the event loop turns (recycle()), so
   * the copy in the continuation that receives it is safe.
   */
  private async copyOut(parts: Part[], offset: number, end: number, into: Buffer): Promise<number> {
    for (const p of parts) {
      const data = await p.data;
      const from = Math.max(offset, p.start);
      const to = Math.min(end, p.end);
      data.copy(into, from - offset, from - p.start, to - p.start);
    }
    return end - offset;
  }

  /** Keeps one part behind the reader for short backward seeks; frees older ones and grows the window. */
  private trimBehind(offset: number): void {
    const current = this.parts.findIndex((p) => p.end > offset);
    const drop = (current < 0 ? this.parts.length : current) - 1;
    if (drop <= 0) return;
    this.release(this.parts.splice(0, drop), false);
    this.window = Math.min(this.window * 2 ** drop, this.opts.maxWindow);
    this.reportBudget();
  }

  /**
   * An exact read outside the stream. The kernel splits one application read into 128 KiB
   * requests that arrive together: those that arrive in the same turn of the event loop and touch
   * each other are fetched with one GET (up to a part), so a random 1 MiB read costs one request,
   * not eight.
   */
  private fetchExact(start: number, end: number, into: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      if (!this.batch) {
        this.batch = [];
        setImmediate(() => this.flushExact());
      }
      this.batch.push({ start, end, into, resolve, reject });
    });
  }

  private flushExact(): void {
    const reads = (this.batch ?? []).sort((a, b) => a.start - b.start);
    this.batch = undefined;
    let group: ExactRead[] = [];
    let groupEnd = -1;
    for (const r of reads) {
      if (
        group.length > 0 &&
        r.start <= groupEnd &&
        Math.max(groupEnd, r.end) - (group[0] as ExactRead).start <= this.opts.partSize
      ) {
        group.push(r);
        groupEnd = Math.max(groupEnd, r.end);
        continue;
      }
      if (group.length > 0) void this.fetchGroup(group, groupEnd);
      group = [r];
      groupEnd = r.end;
    }
    if (group.length > 0) void this.fetchGroup(group, groupEnd);
  }

  private async fetchGroup(group: ExactRead[], end: number): Promise<void> {
    const start = (group[0] as ExactRead).start;
    const size = end - start;
    try {
      await this.budget.reserve(size, this.closed.signal);
      this.reportBudget();
      try {
        const buf = await this.downloader.fetch(this.meta.key, { start, end }, this.pin, this.closed.signal);
        for (const r of group) r.resolve(buf.copy(r.into, 0, r.start - start, r.end - start));
      } finally {
        this.budget.release(size);
        this.reportBudget();
      }
    } catch (err) {
      for (const r of group) r.reject(err);
    }
  }

  /** Drops the stream and restarts the window. */
  private reset(): void {
    this.dropStream();
    this.cap = Number.POSITIVE_INFINITY;
    this.window = this.opts.initialWindow;
    this.reportBudget();
  }

  /** Releases every part (cancelling those no read waits on) and forgets where the stream began. */
  private dropStream(): void {
    this.release(this.parts, true);
    this.parts = [];
    this.streamOrigin = undefined;
  }

  private dropFrom(part: Part, abort = false): void {
    const i = this.parts.indexOf(part);
    if (i >= 0) this.release(this.parts.splice(i), abort);
  }

  /**
   * Gives parts' bytes back to the budget once their requests settle: a concurrent read may still
   * be waiting on one, and the buffer exists until the request ends. With `abort`, requests no read
   * is waiting on are cancelled.
   */
  private release(parts: Part[], abort: boolean): void {
    for (const p of parts) {
      if (abort && p.readers === 0) p.abort.abort(PART_DROPPED);
      p.data.then(
        () => this.free(p),
        () => this.free(p),
      );
    }
  }

  /**
   * Memory pressure: keep only the parts reads are waiting on, so every reader of the mount can
   * make progress; the stream ramps up again afterwards.
   */
  private shed(): void {
    const first = this.parts.findIndex((p) => p.readers > 0);
    if (first < 0) {
      this.dropStream();
      this.window = this.opts.initialWindow;
      return;
    }
    let last = first;
    for (let i = first; i < this.parts.length; i++) if ((this.parts[i] as Part).readers > 0) last = i;
    this.release(this.parts.splice(last + 1), true);
    this.release(this.parts.splice(0, first), false);
    this.window = this.opts.initialWindow;
    this.reportBudget();
  }

  private free(p: Part): void {
    if (p.reserved > 0) this.budget.release(p.reserved);
    p.reserved = 0;
    p.freed = true;
    this.recycle(p);
    this.reportBudget();
  }

  /**
   * Returns a freed part's buffer to the pool once no read is waiting on it, and not before the
   * event loop turns: views of it handed out by copyOut() stay valid until then.
   */
  private recycle(p: Part): void {
    if (!p.freed || p.readers > 0 || !p.buffer || !this.pool) return;
    this.pool.releaseLater(p.buffer);
    p.buffer = undefined;
  }

  /**
   * Idle handles give their buffers back; the next read starts a fresh stream. One timer per
   * handle, re-armed only when it fires (not a timer per read: reads come thousands a second).
   */
  private touch(): void {
    this.lastReadAt = performance.now();
    if (this.idleTimer) return;
    const check = (): void => {
      const idle = performance.now() - this.lastReadAt;
      if (idle < this.opts.idleMs) {
        this.idleTimer = setTimeout(check, this.opts.idleMs - idle);
        this.idleTimer.unref();
        return;
      }
      this.idleTimer = undefined;
      this.reset();
    };
    this.idleTimer = setTimeout(check, this.opts.idleMs);
    this.idleTimer.unref();
  }

  private reportBudget(): void {
    this.metrics.readBufferBytes.set(this.budget.used);
  }
}

export function createReaderFactory(
  downloader: RangeDownloader,
  budget: MemoryBudget,
  opts: PrefetchOptions,
  metrics: Metrics,
): ReaderFactory {
  const pool = new PartPool(opts.partSize, budget, opts.idleMs, metrics);
  const streams = new StreamRegistry<Prefetcher>();
  return (meta) => new Prefetcher(meta, downloader, budget, opts, metrics, pool, streams);
}
