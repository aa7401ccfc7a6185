// The reader of one open handle when a file cache is on. At its first read it picks its source, in
// order: a complete cached copy of the version opened; a download in progress for it; a new
// download (first read within the first part, or any offset with
// --file-cache-cache-file-for-range-read);
// else the direct reader (prefetcher). Bytes on disk are verified block by block. Whatever goes
// wrong with the disk falls back to the direct reader for the read at hand, never to an error;
// errors from the store (changed object, retries exhausted) are the read's errors as usual.
import type { FileHandle } from 'node:fs/promises';
import { ErrorCodes, hasCode } from '../../errors.js';
import type { FileReader, ReaderFactory } from '../../read/types.js';
import type { ObjectMeta } from '../../store/types.js';
import type { DownloadJob } from './download-job.js';
import { type CacheEntry, CorruptBlockError, type DiskBlock } from './entry.js';
import { type FileCache, isDiskError } from './file-cache.js';
import { BLOCK_BYTES } from './layout.js';

/** Thrown inside the reader when the bytes at hand must come from the store instead. */
class ReadDirect extends Error {}

class CachedFileReader implements FileReader {
  private readonly meta: ObjectMeta;
  private readonly cache: FileCache;
  private readonly makeDirect: () => FileReader;
  private direct: FileReader | undefined;
  private source: 'undecided' | 'cache' | 'direct' = 'undecided';
  private deciding: Promise<void> | undefined;
  private entry: CacheEntry | undefined;
  private job: DownloadJob | undefined;
  private fh: FileHandle | undefined;
  /** The cache file being opened late: the first block came read ahead (next-files.ts). */
  private opening: Promise<FileHandle> | undefined;
  /** The first block, read ahead because this file's directory is being read in numbered order. */
  private firstBlock: Promise<DiskBlock | undefined> | undefined;
  /** The last block read from disk, verified: sequential 128 KiB reads share one disk read. */
  private block: DiskBlock | undefined;
  /**
   * The block before it, kept: the kernel's read-ahead has up to four reads of one handle in
   * flight and they arrive out of order, so the last reads of a block can come after the first read
   * of the next.
   */
  private previous: DiskBlock | undefined;
  /**
   * The next blocks, being read (and verified) while the kernel is busy with the current one: a
   * sequential reader then neither waits for the disk and the checksum in turn, nor reads a cold
   * disk one block at a time. Only while reads stay sequential.
   */
  private ahead = new Map<number, Promise<DiskBlock>>();
  /** Blocks that reads are waiting for, to become `block`: other reads of one wait for the same. */
  private arriving = new Map<number, Promise<DiskBlock>>();
  private closed = false;
  private readonly stopListening: () => void;

  constructor(meta: ObjectMeta, cache: FileCache, makeDirect: () => FileReader) {
    this.meta = meta;
    this.cache = cache;
    this.makeDirect = makeDirect;
    // The blocks kept and read ahead only save disk reads: a reader waiting for memory comes first.
    this.stopListening = cache.blockPool.onPressure(() => this.shed());
  }

  /** Gives back every block held; reads waiting for one still get it (they hold the promise). */
  private shed(): void {
    if (this.block) this.cache.blockPool.releaseLater(this.block.buf);
    if (this.previous) this.cache.blockPool.releaseLater(this.previous.buf);
    this.block = undefined;
    this.previous = undefined;
    this.dropAhead();
  }

  async read(offset: number, length: number, into: Buffer): Promise<number> {
    const end = Math.min(offset + length, this.meta.size);
    if (offset >= end) return 0;
    if (this.source === 'undecided') {
      // Concurrent first reads of one handle share one decision.
      this.deciding ??= this.decide(offset);
      await this.deciding;
    }
    if (this.source === 'cache') {
      try {
        const copied = await this.fromCache(offset, end, into);
        this.cache.served(copied);
        return copied;
      } catch (err) {
        if (!(err instanceof ReadDirect)) throw err;
      }
    }
    this.direct ??= this.makeDirect();
    return this.direct.read(offset, end - offset, into);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    this.shed();
    const first = this.firstBlock;
    this.firstBlock = undefined;
    void first?.then((b) => b && this.cache.blockPool.releaseLater(b.buf));
    if (this.fh) this.entry?.release();
    this.direct?.close();
  }

  private async decide(offset: number): Promise<void> {
    const hit = this.cache.lookup(this.meta);
    let job: DownloadJob | undefined;
    if (!hit) {
      job = this.cache.runningJob(this.meta);
      // "From the start": the kernel sends a file's first reads several at once (read-ahead, large
      // application reads), so the one that arrives first need not be at offset 0.
      const fromStart = offset < this.cache.opts.chunkBytes;
      if (!job && (fromStart || this.cache.opts.cacheForRangeRead)) job = await this.cache.startJob(this.meta);
    }
    this.cache.lookedUp(hit !== undefined);
    const entry = hit ?? job?.entry;
    if (!entry || this.closed) {
      this.source = 'direct';
      return;
    }
    // Its first block is in memory already: the cache file is opened only if more is needed.
    const first = hit && this.cache.nextFiles.claim(hit);
    if (first) {
      this.firstBlock = first;
      this.entry = entry;
      this.source = 'cache';
      return;
    }
    try {
      this.fh = await entry.acquire();
    } catch (err) {
      if (!isDiskError(err)) throw err;
      this.cache.diskTrouble(err);
      if (hit) void this.cache.drop(hit, 'failed');
      this.source = 'direct';
      return;
    }
    if (this.closed) {
      entry.release();
      this.fh = undefined;
      return;
    }
    this.entry = entry;
    this.job = job;
    this.source = 'cache';
  }

  /** Starts reading the blocks after `index` that are on disk and not yet asked for. */
  private readAhead(entry: CacheEntry, index: number): void {
    for (let b = index + 1; b <= index + AHEAD_BLOCKS && b < entry.blocks && entry.has(b); b++) {
      if (this.ahead.has(b)) continue;
      // Never wait for memory to read ahead (the open cache file is there already: no await before the take).
      if (!this.cache.blockPool.hasRoom() || !this.fh) break;
      const block = this.load(entry, b, true);
      block.catch(() => {}); // a failure is met again, and handled, when the block is needed
      this.ahead.set(b, block);
    }
  }

  /** Reads and verifies one block (FileCache.loadBlock), opening the cache file if need be. */
  private async load(entry: CacheEntry, index: number, background: boolean): Promise<DiskBlock> {
    return this.cache.loadBlock(entry, this.fh ?? (await this.openLate(entry)), index, background);
  }

  /** Opens the cache file when the first block came without it (decide). */
  private openLate(entry: CacheEntry): Promise<FileHandle> {
    this.opening ??= entry.acquire().then(
      (fh) => {
        if (this.closed) {
          entry.release();
          throw new ReadDirect();
        }
        this.fh = fh;
        return fh;
      },
      (err: unknown) => {
        this.opening = undefined;
        // The cache file is gone or unreadable: this copy is no use to anyone.
        if (isDiskError(err)) void this.cache.drop(entry, 'failed');
        throw err;
      },
    );
    return this.opening;
  }

  /** The first block read ahead, if this is it: the caller's now; a failed read ahead reads it again. */
  private takeFirstBlock(entry: CacheEntry, index: number): Promise<DiskBlock> | undefined {
    const first = this.firstBlock;
    if (!first || index !== 0) return undefined;
    this.firstBlock = undefined;
    return first.then((b) => b ?? this.load(entry, index, false));
  }

  /** Forgets the blocks read ahead; their buffers go back to the pool as the reads finish. */
  private dropAhead(): void {
    const pool = this.cache.blockPool;
    for (const pending of this.ahead.values()) pending.then((b) => pool.releaseLater(b.buf)).catch(() => {});
    this.ahead.clear();
  }

  /**
   * Copies [offset, end) into `into`, block by block, each in the continuation that receives it:
   * a block's buffer goes back to the pool only after the event loop turns (PartPool.releaseLater).
   */
  private async fromCache(offset: number, end: number, into: Buffer): Promise<number> {
    const first = Math.floor(offset / BLOCK_BYTES);
    const last = Math.floor((end - 1) / BLOCK_BYTES);
    for (let b = first; b <= last; b++) {
      const data = await this.readBlock(b);
      const at = b * BLOCK_BYTES;
      const from = Math.max(offset, at);
      data.copy(into, from - offset, from - at, Math.min(end, at + data.length) - at);
    }
    return end - offset;
  }

  private async readBlock(index: number): Promise<Buffer> {
    if (this.block?.index === index) return this.block.data;
    if (this.previous?.index === index) return this.previous.data;
    const entry = this.entry as CacheEntry;
    // Just downloaded: these bytes are what is being written, no need to read them back. (Not kept
    // as `block`: a view would keep the whole chunk alive after the job gives its budget back.)
    const fresh = this.job?.blockInMemory(index);
    if (fresh) return fresh;
    if (!entry.has(index)) {
      const ready = this.job?.waitFor(index);
      if (!ready) throw new ReadDirect(); // far ahead of the download: do not wait for it
      try {
        await ready;
      } catch (err) {
        // A download stopped for the disk's sake, or cancelled (entry dropped, unmount), leaves
        // these bytes to the store; a store error is this read's error, retries already spent.
        if (isDiskError(err) || hasCode(err, ErrorCodes.Aborted)) throw new ReadDirect();
        throw err;
      }
      const arrived = this.job?.blockInMemory(index);
      if (arrived) return arrived;
    }
    try {
      // A second read of a block that is on its way waits for the same disk read.
      const joined = this.arriving.get(index);
      if (joined) return (await joined).data;
      const pending = this.ahead.get(index) ?? this.takeFirstBlock(entry, index) ?? this.load(entry, index, false);
      // Sequential: the next block, or one a little further (reads arrive out of order); the
      // blocks read ahead stay wanted.
      const sequential =
        this.block === undefined || (index > this.block.index && index <= this.block.index + AHEAD_BLOCKS);
      this.ahead.delete(index);
      if (!sequential) this.dropAhead();
      this.arriving.set(index, pending);
      let block: DiskBlock;
      try {
        block = await pending;
      } finally {
        this.arriving.delete(index);
      }
      // The block read before goes back to the pool (and this one too if the handle closed meanwhile).
      // Its buffer is reused only after the event loop turns: the readers that shared this disk read
      // wake in the same turn and copy their bytes first.
      if (this.previous) this.cache.blockPool.releaseLater(this.previous.buf);
      this.previous = this.block;
      this.block = this.closed ? undefined : block;
      if (this.closed) this.cache.blockPool.releaseLater(block.buf);
      const data = block.data;
      // While the download runs, the blocks ahead come from its memory, not the disk.
      if (sequential && entry.complete) this.readAhead(entry, index);
      return data;
    } catch (err) {
      if (err instanceof CorruptBlockError) {
        this.cache.corrupt(entry, err);
      } else if (isDiskError(err)) {
        this.cache.diskTrouble(err);
      } else {
        throw err;
      }
      this.source = 'direct';
      throw new ReadDirect();
    }
  }
}

/** Blocks read ahead of a sequential reader of the disk cache. */
const AHEAD_BLOCKS = 4;

/** Wraps the direct reader factory: every handle first tries the file cache. */
export function cachedReaderFactory(cache: FileCache, direct: ReaderFactory): ReaderFactory {
  return (meta) => {
    cache.opened(meta);
    cache.nextFiles.opened(meta.key);
    return new CachedFileReader(meta, cache, () => direct(meta));
  };
}
