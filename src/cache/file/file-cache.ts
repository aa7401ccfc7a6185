// The on-disk file cache (--cache-dir): an index of cached object versions, LRU by bytes, bounded by
// --file-cache-max-size-mb and by the free space of its file system; one download job per object;
// entries that survive unmount, crash and restart (revalidated lazily: an entry is used only for
// the exact ETag/generation a lookup returns). Disk trouble never fails a read: the cache steps
// aside with one warning and reads go straight to the store.
import {
  chmod,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  statfs,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { readFully } from '../../disk.js';
import { BucketfsError, describe, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { MemoryBudget } from '../../memory/budget.js';
import { PartPool } from '../../memory/part-pool.js';
import { ReservedBuffers } from '../../memory/reserved-buffers.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { RangeDownloader } from '../../read/range-downloader.js';
import { crc32c } from '../../store/checksum.js';
import { type ObjectMeta, sameVersion } from '../../store/types.js';
import { chunkSize, DownloadJob } from './download-job.js';
import { CacheEntry, type DiskBlock } from './entry.js';
import {
  BLOCK_BYTES,
  blockChecksum,
  blockCount,
  decodeChecksums,
  type EntryRecord,
  encodeChecksums,
  entryId,
  entryPaths,
  FORMAT_DIR,
  parseRecord,
} from './layout.js';
import { type CacheDirLock, type LockOwner, lockCacheDir } from './lock.js';
import { NextFiles } from './next-files.js';

export interface FileCacheOptions {
  dir: string;
  backend: string;
  bucket: string;
  /** Bound on cached bytes; Infinity = only the file system's free space bounds it. */
  maxBytes: number;
  /** Share of the file system always left free. */
  minFreeRatio: number;
  /** Cache an object when its first read is past its first part (`chunkBytes`). */
  cacheForRangeRead: boolean;
  /** Objects larger than this download with `parallelDownloads` chunks in flight. */
  parallelThresholdBytes: number;
  parallelDownloads: number;
  chunkBytes: number;
  /** Files after one opened in numbered order whose cached copies are read ahead (next-files.ts). */
  readAheadFiles: number;
  /** The mount that takes the directory's lock (lock.ts). */
  owner?: LockOwner;
}

/** File-system errors that mean "this disk cannot take it now", not "the read failed". */
const DISK_ERRNOS = new Set([
  'ENOSPC',
  'EDQUOT',
  'EACCES',
  'EPERM',
  'EROFS',
  'EIO',
  'EFBIG',
  'ENOENT',
  'EMFILE',
  'ENFILE',
]);

export function isDiskError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && DISK_ERRNOS.has(code);
}

/** After a write fails, new downloads pause this long before the cache tries the disk again. */
const DISK_PAUSE_MS = 30_000;
/** Free chunk buffers are dropped after this long without a download. */
const POOL_IDLE_MS = 10_000;
/** Recency is written to disk (the .meta mtime) at most this often per entry. */
const TOUCH_EVERY_MS = 60_000;

export class FileCache {
  readonly opts: FileCacheOptions;
  private readonly downloader: RangeDownloader;
  private readonly budget: MemoryBudget;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly lock: CacheDirLock;
  /** Complete entries and downloads in progress, least recently used first. */
  private readonly entries = new Map<string, CacheEntry>();
  private readonly jobs = new Map<string, DownloadJob>();
  /** Recent keys' entry ids (idOf). */
  private readonly ids = new LRUCache<string, string>({ max: 4096 });
  private readonly starting = new Map<string, Promise<DownloadJob | undefined>>();
  /** Files of dropped entries still being unlinked, by id: a new download of the id waits for them. */
  private readonly removing = new Map<string, Promise<void>>();
  private readonly chunkPool: PartPool;
  /**
   * The buffers readers read blocks from disk into (cached-reader.ts), recycled (a fresh 1 MiB
   * Buffer per block read kept V8 in mark-compact collections) and counted in the memory budget
   * while held.
   */
  readonly blockPool: ReservedBuffers;
  /** Reads ahead the cached copies of the next files of a directory opened in numbered order. */
  readonly nextFiles: NextFiles;
  /** Told once the cache closes (unmount). */
  private readonly closeListeners: (() => void)[] = [];
  private usedBytes = 0;
  private diskPausedUntil = 0;
  private noRoomWarnedAt = Number.NEGATIVE_INFINITY;
  private closed = false;

  private constructor(
    opts: FileCacheOptions,
    lock: CacheDirLock,
    downloader: RangeDownloader,
    budget: MemoryBudget,
    metrics: Metrics,
    log: Logger,
  ) {
    this.opts = opts;
    this.lock = lock;
    this.downloader = downloader;
    this.budget = budget;
    this.metrics = metrics;
    this.log = log;
    // Only whole chunks of the largest size are pooled (download-job.ts plans them block-aligned).
    this.chunkPool = new PartPool(chunkSize(opts.chunkBytes), budget, POOL_IDLE_MS);
    this.blockPool = new ReservedBuffers(BLOCK_BYTES, budget, POOL_IDLE_MS);
    this.nextFiles = new NextFiles(this, opts.readAheadFiles);
  }

  /**
   * Reads and verifies one block of `entry` into a buffer from blockPool (waiting for room in the
   * memory budget), which goes back on failure; the caller gives it back (releaseLater) when done
   * with the block. Read-ahead asks blockPool.hasRoom() first, so that it never waits.
   */
  async loadBlock(entry: CacheEntry, fh: FileHandle, index: number, background: boolean): Promise<DiskBlock> {
    const buf = await this.blockPool.take();
    try {
      const data = await entry.readBlock(fh, index, buf, background);
      this.diskRead(data.length);
      return { index, data, buf };
    } catch (err) {
      this.blockPool.releaseLater(buf);
      throw err;
    }
  }

  /** A complete cached copy for this key, any version (read-ahead across files; see lookup). */
  completeEntry(key: string): CacheEntry | undefined {
    const e = this.entries.get(this.idOf(key));
    return e?.complete && !e.dropped && !this.closed ? e : undefined;
  }

  /**
   * Opens (creating 0700) and locks the directory, loads the entries a previous run left, and
   * removes what a crash left half-written. A directory that cannot be written gives one warning
   * and no cache (undefined); one that cannot be a cache at all is an error.
   */
  static async open(
    opts: FileCacheOptions,
    downloader: RangeDownloader,
    budget: MemoryBudget,
    metrics: Metrics,
    log: Logger,
  ): Promise<FileCache | undefined> {
    const st = await stat(opts.dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : err));
    if (st instanceof Error || (st && !st.isDirectory())) {
      const why = st instanceof Error ? describe(st) : 'it is not a directory';
      throw new BucketfsError(
        ErrorCodes.CacheDir,
        `cannot use --cache-dir ${opts.dir}: ${why}; give a directory path (it is created if missing)`,
        { key: opts.dir },
      );
    }
    let lock: CacheDirLock;
    try {
      await mkdir(path.join(opts.dir, FORMAT_DIR), { recursive: true, mode: 0o700 });
      if (!st) await chmod(opts.dir, 0o700); // mkdir's mode is filtered by the umask
      lock = await lockCacheDir(opts.dir, opts.owner);
    } catch (err) {
      if (err instanceof BucketfsError) throw err;
      if (!isDiskError(err)) throw err;
      log.warn(
        { dir: opts.dir, err: describe(err) },
        'file cache disabled: its directory cannot be written; reading straight from the store',
      );
      return undefined;
    }
    const cache = new FileCache(opts, lock, downloader, budget, metrics, log);
    await cache.load();
    return cache;
  }

  /** A complete cached copy of exactly this version, or undefined. Counts as a use. */
  lookup(meta: ObjectMeta): CacheEntry | undefined {
    const id = this.idOf(meta.key);
    const e = this.entries.get(id);
    if (!e || !e.complete) return undefined;
    if (!sameVersion(e.meta, meta)) {
      // The object changed since it was cached: the old copy is never served again.
      this.drop(e, 'changed');
      return undefined;
    }
    this.touch(e);
    return e;
  }

  /**
   * An open of this version: a use of its cached copy, also when the kernel then serves every byte
   * from the pages it kept (src/vfs/page-cache.ts) and no read comes here. Without it a file hot in
   * the page cache would age out of the disk cache.
   */
  opened(meta: ObjectMeta): void {
    const e = this.entries.get(this.idOf(meta.key));
    if (e?.complete && !e.dropped && sameVersion(e.meta, meta)) this.touch(e);
  }

  /** The download in progress for exactly this version, if any. */
  runningJob(meta: ObjectMeta): DownloadJob | undefined {
    const job = this.jobs.get(this.idOf(meta.key));
    return job && sameVersion(job.entry.meta, meta) ? job : undefined;
  }

  /**
   * Starts caching an object (or joins the download another handle started). Undefined when it
   * cannot be cached now: larger than the cache, no room on disk, the disk failing, unmounting.
   */
  startJob(meta: ObjectMeta): Promise<DownloadJob | undefined> {
    const running = this.runningJob(meta);
    if (running) return Promise.resolve(running);
    const id = this.idOf(meta.key);
    let p = this.starting.get(id);
    if (!p) {
      p = this.begin(id, meta).finally(() => this.starting.delete(id));
      this.starting.set(id, p);
    }
    return p.then((job) => (job && sameVersion(job.entry.meta, meta) ? job : undefined));
  }

  /**
   * Removes an entry and its files (evicted, corrupt, changed, failed); resolves once the files are
   * gone. Readers holding its handle keep reading the unlinked file; nobody new finds it.
   */
  drop(e: CacheEntry, reason: 'evict' | 'corrupt' | 'changed' | 'failed'): Promise<void> {
    if (e.dropped) return this.removing.get(e.id) ?? Promise.resolve();
    e.dropped = true;
    if (this.entries.get(e.id) === e) {
      this.entries.delete(e.id);
      this.usedBytes -= e.size;
    }
    const job = this.jobs.get(e.id);
    if (job?.entry === e) {
      this.jobs.delete(e.id);
      job.cancel(new BucketfsError(ErrorCodes.Aborted, `cache entry of ${e.meta.key} dropped (${reason})`));
    }
    if (reason === 'evict') this.metrics.cacheEvents.inc({ cache: 'file', event: 'evict' });
    if (reason === 'corrupt') this.metrics.fileCacheCorrupt.inc();
    this.report();
    const gone = Promise.all([e.paths.data, e.paths.meta, e.paths.partial].map((p) => unlink(p).catch(() => {}))).then(
      () => {
        if (this.removing.get(e.id) === gone) this.removing.delete(e.id);
      },
    );
    this.removing.set(e.id, gone);
    return gone;
  }

  /** Calls `listener` when the cache closes (unmount). */
  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** The directory holding the copies' files (layout.ts). */
  get copiesDir(): string {
    return path.join(this.opts.dir, FORMAT_DIR);
  }

  /** Cancels downloads and releases the directory (unmount). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stop = new BucketfsError(ErrorCodes.Aborted, 'unmounting');
    for (const job of this.jobs.values()) job.cancel(stop);
    await Promise.all([...this.jobs.values()].map((j) => j.finished.catch(() => {})));
    this.nextFiles.clear();
    for (const listener of this.closeListeners) listener();
    this.chunkPool.clear();
    this.blockPool.clear();
    await this.lock.release();
  }

  get bytes(): number {
    return this.usedBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Counts a read served from disk. */
  served(bytes: number): void {
    this.metrics.fileCacheBytesServed.inc(bytes);
  }

  /** Counts bytes read from the cache's disk. */
  diskRead(bytes: number): void {
    this.metrics.fileCacheDiskReadBytes.inc(bytes);
  }

  /** Counts a copy checked at an open in passthrough (src/cache/file/verified-copy.ts). */
  passthroughChecked(check: 'full' | 'unchanged' | 'kept'): void {
    this.metrics.fileCachePassthroughChecks.inc({ check });
  }

  /** Counts a file whose first block was read ahead of its open. */
  readAheadFile(): void {
    this.metrics.fileCacheReadAheadFiles.inc();
  }

  /** Counts one handle's choice: a complete cached copy (hit) or not (miss). */
  lookedUp(hit: boolean): void {
    this.metrics.cacheEvents.inc({ cache: 'file', event: hit ? 'hit' : 'miss' });
  }

  /** A block on disk failed its check: the entry goes, and the next open fetches it again. */
  corrupt(e: CacheEntry, err: Error): void {
    if (!e.dropped) {
      this.log.warn(
        { key: e.meta.key, file: e.paths.data, err: err.message },
        'file cache entry is corrupt; dropped, reading from the store',
      );
    }
    void this.drop(e, 'corrupt');
  }

  /** A disk error during a read or a download: pause new downloads, warn once per pause. */
  diskTrouble(err: unknown): void {
    const now = Date.now();
    if (now >= this.diskPausedUntil) {
      this.log.warn(
        { dir: this.opts.dir, err: describe(err) },
        'file cache cannot use its disk; reading straight from the store for now',
      );
    }
    this.diskPausedUntil = now + DISK_PAUSE_MS;
  }

  /** Nothing left to evict and the disk still too full: say so, once in a while. */
  private noRoom(size: number, free: number): void {
    const now = Date.now();
    if (now < this.noRoomWarnedAt + DISK_PAUSE_MS) return;
    this.noRoomWarnedAt = now;
    this.log.warn(
      { dir: this.opts.dir, needBytes: size, freeBytes: free, minFreeRatio: this.opts.minFreeRatio },
      'file cache has no room on its disk; reading straight from the store',
    );
  }

  /**
   * An open asks for its key's id several times (the open itself, the first read, the next files
   * read ahead), and each is a SHA-256: the recent ones are remembered.
   */
  private idOf(key: string): string {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = entryId(this.opts.backend, this.opts.bucket, key);
      this.ids.set(key, id);
    }
    return id;
  }

  private async begin(id: string, meta: ObjectMeta): Promise<DownloadJob | undefined> {
    if (this.closed || Date.now() < this.diskPausedUntil) return undefined;
    const old = this.entries.get(id);
    if (old) void this.drop(old, sameVersion(old.meta, meta) ? 'evict' : 'changed');
    await this.removing.get(id);
    if (!(await this.makeRoom(meta.size))) return undefined;
    if (this.closed || this.entries.has(id)) return undefined;
    const entry = new CacheEntry(id, meta, entryPaths(this.opts.dir, id));
    const parallel = meta.size > this.opts.parallelThresholdBytes ? this.opts.parallelDownloads : 1;
    const job = new DownloadJob(
      entry,
      this.downloader,
      this.budget,
      { chunkBytes: this.opts.chunkBytes, parallelism: parallel, pool: this.chunkPool },
      async () => {
        await this.verifyWhole(entry, entry.paths.partial);
        await this.persist(entry);
      },
    );
    this.entries.set(id, entry);
    this.usedBytes += entry.size;
    this.jobs.set(id, job);
    this.metrics.fileCacheDownloads.inc({ outcome: 'started' });
    this.report();
    job.finished.then(
      () => {
        this.jobs.delete(id);
        this.metrics.fileCacheDownloads.inc({ outcome: 'complete' });
      },
      (err: unknown) => {
        if (this.jobs.get(id) === job) this.jobs.delete(id);
        this.metrics.fileCacheDownloads.inc({ outcome: 'failed' });
        if (isDiskError(err)) this.diskTrouble(err);
        void this.drop(entry, 'failed');
      },
    );
    try {
      await job.start(() => open(entry.paths.partial, 'w+', 0o600));
    } catch (err) {
      job.cancel(err);
      return undefined;
    }
    return job;
  }

  /**
   * Takes `file`, the bytes of the version `meta` this mount has just uploaded, as that version's
   * cached copy: moved in (a rename; staging lives under the cache directory) with the checksums of
   * its blocks, so that reading back what was written costs no GET. The copy it replaces is dropped.
   * False when it cannot be taken (no room, a download of the key under way, the disk in trouble,
   * another file system): the caller still owns `file`. A file whose bytes do not match the checksum
   * the store gave for the version is left where it is and logged.
   */
  async adopt(meta: ObjectMeta, file: string): Promise<boolean> {
    if (this.closed || Date.now() < this.diskPausedUntil || meta.size === 0) return false;
    const id = this.idOf(meta.key);
    if (this.jobs.has(id) || this.starting.has(id)) return false;
    // A read of the key meanwhile joins this instead of starting a download into the same files.
    let adopted!: () => void;
    const adopting = new Promise<undefined>((resolve) => {
      adopted = () => resolve(undefined);
    });
    this.starting.set(id, adopting);
    try {
      return await this.adoptAs(id, meta, file);
    } finally {
      if (this.starting.get(id) === adopting) this.starting.delete(id);
      adopted();
    }
  }

  private async adoptAs(id: string, meta: ObjectMeta, file: string): Promise<boolean> {
    const old = this.entries.get(id);
    if (old) void this.drop(old, sameVersion(old.meta, meta) ? 'evict' : 'changed');
    await this.removing.get(id);
    if (!(await this.makeRoom(meta.size))) return false;
    if (this.closed || this.entries.has(id) || this.jobs.has(id)) return false;
    let crcs: Uint32Array;
    try {
      crcs = await this.checksums(file, meta.size);
    } catch (err) {
      if (isDiskError(err)) this.diskTrouble(err);
      return false;
    }
    if (this.closed || this.entries.has(id)) return false;
    const entry = new CacheEntry(id, meta, entryPaths(this.opts.dir, id), crcs);
    try {
      await this.verifyWhole(entry, file);
    } catch (err) {
      // The store says it holds other bytes than these: they may be the only right copy. Kept.
      this.log.error({ key: meta.key, staged: file }, `${describe(err)}; the bytes written are kept in ${file}`);
      return true;
    }
    try {
      await rename(file, entry.paths.partial);
    } catch {
      return false; // another file system (EXDEV), or gone: the caller's to discard
    }
    try {
      await this.persist(entry);
    } catch (err) {
      if (isDiskError(err)) this.diskTrouble(err);
      await Promise.all(
        [entry.paths.partial, entry.paths.data, entry.paths.metaTmp].map((f) => unlink(f).catch(() => {})),
      );
      return true; // the file is gone either way
    }
    // Found by readers only once its data and record are in place.
    if (this.closed || this.entries.has(id)) {
      await Promise.all([unlink(entry.paths.data).catch(() => {}), unlink(entry.paths.meta).catch(() => {})]);
      return true;
    }
    this.entries.set(id, entry);
    this.usedBytes += entry.size;
    this.metrics.fileCacheDownloads.inc({ outcome: 'adopted' });
    this.report();
    return true;
  }

  /** The block checksums of a local file of `size` bytes, read through block buffers of the budget. */
  private async checksums(file: string, size: number): Promise<Uint32Array> {
    const crcs = new Uint32Array(blockCount(size));
    await this.scan(file, size, (block, data) => {
      crcs[block] = blockChecksum(data);
    });
    return crcs;
  }

  /** Reads a local file of `size` bytes block by block, in order, into a block buffer of the budget. */
  private async scan(file: string, size: number, visit: (block: number, data: Buffer) => void): Promise<void> {
    const fh = await open(file, 'r');
    const buf = await this.blockPool.take();
    try {
      for (let b = 0; b * BLOCK_BYTES < size; b++) {
        const want = Math.min(BLOCK_BYTES, size - b * BLOCK_BYTES);
        if ((await readFully(fh, buf, want, b * BLOCK_BYTES)) < want) {
          throw Object.assign(new Error(`${file} is shorter than ${size} bytes`), { code: 'EIO' });
        }
        visit(b, buf.subarray(0, want));
      }
    } finally {
      this.blockPool.release(buf);
      await fh.close();
    }
  }

  /**
   * Checks a downloaded copy against the whole-object CRC32C the store keeps (GCS): bytes that
   * changed on the way (a proxy, a bad NIC, a bug of ours) never become a cached copy that every
   * later read would trust. Ranged reads have no such checksum to check against (docs/caching.md).
   */
  private async verifyWhole(e: CacheEntry, file: string): Promise<void> {
    const want = e.meta.crc32c;
    if (want === undefined || !crc32c) return;
    const crc = crc32c;
    let got = 0;
    await this.scan(file, e.size, (_block, data) => {
      got = crc(data, got);
    });
    if (got !== want) {
      this.metrics.fileCacheCorrupt.inc();
      this.log.warn({ key: e.meta.key, want, got }, "a download does not match the store's CRC32C: not cached");
      throw new BucketfsError(
        ErrorCodes.BadResponse,
        `download of ${e.meta.key} does not match the CRC32C the store keeps (${want.toString(16)}, got ${got.toString(16)}): not cached`,
        { key: e.meta.key },
      );
    }
  }

  /** Writes the record of a finished download, after its data is in place. */
  private async persist(e: CacheEntry): Promise<void> {
    const record: EntryRecord = {
      v: 1,
      backend: this.opts.backend,
      bucket: this.opts.bucket,
      key: e.meta.key,
      size: e.size,
      etag: e.meta.etag,
      mtime: e.meta.mtime.toISOString(),
      blockBytes: BLOCK_BYTES,
      crc: encodeChecksums(e.crcs),
    };
    if (e.meta.generation !== undefined) record.generation = e.meta.generation;
    // Data before record: a record on disk always describes complete data. No fsync: a process
    // crash keeps the page cache, and after a power loss the checksums catch torn data.
    await rename(e.paths.partial, e.paths.data);
    await writeFile(e.paths.metaTmp, JSON.stringify(record), { mode: 0o600 });
    await rename(e.paths.metaTmp, e.paths.meta);
    e.usedOnDisk = Date.now();
  }

  /**
   * Reserves room for `size` more bytes: evicts least recently used complete entries until the
   * cache's bound and the file system's free space (less what running downloads will still
   * write, less the share always left free) both allow it. False when they cannot.
   */
  private async makeRoom(size: number): Promise<boolean> {
    if (size > this.opts.maxBytes) return false;
    const evictable = (): CacheEntry | undefined => {
      for (const e of this.entries.values()) if (e.complete && !this.jobs.has(e.id)) return e;
      return undefined;
    };
    while (this.usedBytes + size > this.opts.maxBytes) {
      const victim = evictable();
      if (!victim) return false;
      void this.drop(victim, 'evict');
    }
    for (;;) {
      let fs: Awaited<ReturnType<typeof statfs>>;
      try {
        fs = await statfs(this.opts.dir);
      } catch (err) {
        this.diskTrouble(err);
        return false;
      }
      const total = fs.blocks * fs.bsize;
      const pending = [...this.jobs.values()].reduce((s, j) => s + j.remainingBytes, 0);
      const free = fs.bavail * fs.bsize - pending - Math.ceil(total * this.opts.minFreeRatio);
      if (free >= size) return true;
      const victim = evictable();
      if (!victim) {
        this.noRoom(size, fs.bavail * fs.bsize);
        return false;
      }
      // Unlinks are asynchronous: wait for this one before asking the file system again.
      await this.drop(victim, 'evict');
    }
  }

  private touch(e: CacheEntry): void {
    this.entries.delete(e.id);
    this.entries.set(e.id, e);
    const now = Date.now();
    // The .meta mtime carries recency across restarts; written at most once a minute per entry,
    // however often it is read.
    if (now - e.usedOnDisk > TOUCH_EVERY_MS) {
      e.usedOnDisk = now;
      void utimes(e.paths.meta, now / 1000, now / 1000).catch(() => {});
    }
  }

  /** Loads entries left by earlier runs, oldest use first; removes partial and orphaned files. */
  private async load(): Promise<void> {
    const dir = path.join(this.opts.dir, FORMAT_DIR);
    const names = await readdir(dir);
    const present = new Set(names);
    const found: { entry: CacheEntry; used: number }[] = [];
    const removed: string[] = [];
    const remove = (name: string): Promise<void> => {
      removed.push(name);
      return unlink(path.join(dir, name)).catch(() => {});
    };
    const loadOne = async (name: string): Promise<void> => {
      if (name.endsWith('.partial') || name.endsWith('.tmp')) return remove(name);
      const id = name.replace(/\.(data|meta)$/, '');
      if (name.endsWith('.data')) {
        if (!present.has(`${id}.meta`)) await remove(name);
        return;
      }
      if (!name.endsWith('.meta')) return;
      const paths = entryPaths(this.opts.dir, id);
      const [text, dataStat, metaStat] = await Promise.all([
        readFile(paths.meta, 'utf8').catch(() => ''),
        stat(paths.data).catch(() => undefined),
        stat(paths.meta).catch(() => undefined),
      ]);
      const r = parseRecord(text);
      const crcs = r && decodeChecksums(r.crc, blockCount(r.size));
      const ours = r && r.backend === this.opts.backend && id === entryId(r.backend, r.bucket, r.key);
      if (!r || !crcs || !ours || !dataStat || dataStat.size !== r.size || !metaStat) {
        // A truncated or foreign entry is never served.
        await Promise.all([remove(`${id}.meta`), present.has(`${id}.data`) ? remove(`${id}.data`) : undefined]);
        return;
      }
      const meta: ObjectMeta = { key: r.key, size: r.size, etag: r.etag, mtime: new Date(r.mtime) };
      if (r.generation !== undefined) meta.generation = r.generation;
      // Another bucket's entry is kept and counted (it shares the disk); its id never matches here.
      const entry = new CacheEntry(id, meta, paths, crcs);
      entry.usedOnDisk = metaStat.mtimeMs;
      found.push({ entry, used: metaStat.mtimeMs });
    };
    // Bounded concurrency: a large cache has tens of thousands of entries.
    const queue = names.filter((n) => n !== 'lock');
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let n = queue.pop(); n !== undefined; n = queue.pop()) await loadOne(n);
      }),
    );
    found.sort((a, b) => a.used - b.used);
    for (const { entry } of found) {
      this.entries.set(entry.id, entry);
      this.usedBytes += entry.size;
    }
    while (this.usedBytes > this.opts.maxBytes) {
      const oldest = this.entries.values().next().value as CacheEntry;
      void this.drop(oldest, 'evict');
    }
    this.report();
    this.log.info(
      { dir: this.opts.dir, entries: this.entries.size, bytes: this.usedBytes, removed: removed.length },
      'file cache loaded',
    );
  }

  private report(): void {
    this.metrics.cacheEntries.set({ cache: 'file' }, this.entries.size);
    this.metrics.cacheBytes.set({ cache: 'file' }, this.usedBytes);
  }
}
