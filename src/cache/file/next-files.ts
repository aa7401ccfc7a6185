// Read-ahead across files on the disk cache. A reader that opens the files of a directory in
// numbered order (frame_000123.jpg, then frame_000124.jpg; shard-9, then shard-10) would wait at
// the start of every file for the cache file to be opened and its first block read: two trips
// through libuv's thread pool, which take as long as the FUSE round trips of the whole file even
// when the bytes are in the page cache. When the last two opens in a directory were consecutive
// numbers, the first blocks of the next numbers' cached copies are read and verified now and held in
// memory (inside the memory budget, given back under pressure) until their open.
// Only files already complete in the cache are touched: this never sends a request to the store,
// and a reader in any other order (a shuffled epoch) sets nothing off.
import type { FileHandle } from 'node:fs/promises';
import type { ReservedBuffers } from '../../memory/reserved-buffers.js';
import type { CacheEntry, DiskBlock } from './entry.js';

/** What the read-ahead needs of the file cache that owns it (file-cache.ts). */
export interface NextFilesCache {
  readonly blockPool: Pick<ReservedBuffers, 'release' | 'hasRoom' | 'onPressure'>;
  /** The entry of a key whose copy is complete on disk, if any. */
  completeEntry(key: string): CacheEntry | undefined;
  /** Reads and verifies one block of an open cache file. */
  loadBlock(entry: CacheEntry, fh: FileHandle, index: number, background: boolean): Promise<DiskBlock>;
  /** Counts a file read ahead. */
  readAheadFile(): void;
}

/** Disk reads of read-ahead in flight at once, mount-wide: real reads queue with them. */
const MAX_IN_FLIGHT = 8;
/** First blocks held at once, mount-wide (block buffers: 32 MiB at most). */
const MAX_HELD = 32;
/** Directories whose last open is remembered. */
const MAX_DIRS = 4096;
/** A block read ahead this long ago and still not claimed may make room for a new one. */
const STALE_MS = 2_000;

/**
 * The name with its last number one higher, keeping a zero-padded width ("f9" → "f10",
 * "img_0099.jpg" → "img_0100.jpg"); undefined for a name without digits.
 */
export function nextName(name: string): string | undefined {
  const m = /(\d+)(\D*)$/.exec(name);
  if (!m) return undefined;
  const digits = m[1] as string;
  const next = (BigInt(digits) + 1n).toString();
  const padded = digits.startsWith('0') ? next.padStart(digits.length, '0') : next;
  return name.slice(0, m.index) + padded + (m[2] as string);
}

interface Held {
  block: Promise<DiskBlock | undefined>;
  at: number;
}

/**
 * Copies the kernel will read itself (passthrough, src/vfs/passthrough.ts): for those, reading
 * ahead is verifying the copy and registering it as a backing file, so that their open needs no
 * trip through the thread pool, and the disk works on the next files while the current ones are read.
 * The ids belong to the backing registry (src/backing/registry.ts); this only starts the work.
 */
export interface AheadAttacher {
  eligible(entry: CacheEntry): boolean;
  /** Registered already (ahead, open, or kept since its last close): nothing to do ahead of its open. */
  registered(entry: CacheEntry): boolean;
  /** Room in the registry for one more id registered ahead. */
  roomAhead(): boolean;
  /** Verifies the copy and registers it ahead of its open: whether it could. */
  attach(entry: CacheEntry): Promise<boolean>;
}

/** Room for one more first block held: a free place, or the oldest one's, dropped, if nobody claimed it lately. */
function makeRoom(held: Map<CacheEntry, Held>, drop: (entry: CacheEntry, h: Held) => void): boolean {
  if (held.size < MAX_HELD) return true;
  const [entry, oldest] = held.entries().next().value as [CacheEntry, Held];
  if (Date.now() - oldest.at < STALE_MS) return false;
  held.delete(entry);
  drop(entry, oldest);
  return true;
}

export class NextFiles {
  private readonly cache: NextFilesCache;
  /** Files after the one opened to read ahead (0: off). */
  private readonly files: number;
  /** Per directory key prefix: the name an open in order would come next. Oldest first. */
  private readonly expected = new Map<string, string>();
  /** First blocks read ahead, oldest first, until their file is opened. */
  private readonly held = new Map<CacheEntry, Held>();
  /** Copies being verified and registered ahead (passthrough), until the registry has their id. */
  private readonly registeringAhead = new Map<CacheEntry, Promise<unknown>>();
  private attacher: AheadAttacher | undefined;
  private inFlight = 0;

  constructor(cache: NextFilesCache, files: number) {
    this.cache = cache;
    this.files = files;
    // First blocks read ahead only save a disk read: a reader waiting for memory comes first.
    cache.blockPool.onPressure(() => this.dropBlocks());
  }

  private dropBlocks(): void {
    for (const [entry, h] of this.held) this.drop(entry, h);
    this.held.clear();
  }

  /** Reads ahead the copies `attacher` finds eligible by registering them as backing files. */
  usePassthrough(attacher: AheadAttacher): void {
    this.attacher = attacher;
  }

  /** A handle on `key` was opened: reads ahead when it continues a numbered run. */
  opened(key: string): void {
    if (this.files <= 0) return;
    const slash = key.lastIndexOf('/') + 1;
    const dir = key.slice(0, slash);
    const name = key.slice(slash);
    const inOrder = this.expected.get(dir) === name;
    const next = nextName(name);
    this.expected.delete(dir); // set again below, as the newest
    if (next === undefined) return;
    this.expected.set(dir, next);
    if (this.expected.size > MAX_DIRS) this.expected.delete(this.expected.keys().next().value as string);
    if (!inOrder) return;
    let n: string | undefined = next;
    for (let i = 0; i < this.files && n !== undefined; i++, n = nextName(n)) this.readAhead(dir + n);
  }

  /**
   * The first block of `entry` read ahead, if any, now the caller's (its buffer goes back to the
   * block pool through the caller). Resolves to undefined when the read failed. The cache file
   * stays open until the next turn of the event loop: a caller that acquires the entry at once
   * gets it without opening it again.
   */
  claim(entry: CacheEntry): Promise<DiskBlock | undefined> | undefined {
    const h = this.held.get(entry);
    if (!h) return undefined;
    this.held.delete(entry);
    return h.block.then((b) => {
      if (b) setImmediate(() => entry.release());
      return b;
    });
  }

  /** Settles once `entry`'s copy is registered ahead (or could not be); undefined when none is under way. */
  registering(entry: CacheEntry): Promise<unknown> | undefined {
    return this.registeringAhead.get(entry);
  }

  /** Gives every held block back (unmount; ids registered ahead go with the registry). */
  clear(): void {
    this.dropBlocks();
  }

  /** Gives a held block back, unclaimed, and lets go of its cache file. */
  private drop(entry: CacheEntry, h: Held): void {
    void h.block.then((b) => {
      if (!b) return;
      this.cache.blockPool.release(b.buf);
      entry.release();
    });
  }

  private readAhead(key: string): void {
    if (this.inFlight >= MAX_IN_FLIGHT) return;
    const entry = this.cache.completeEntry(key);
    if (!entry || entry.size === 0 || this.held.has(entry) || this.registeringAhead.has(entry)) return;
    const attacher = this.attacher;
    if (attacher?.registered(entry)) return;
    if (attacher?.eligible(entry)) {
      if (!attacher.roomAhead()) return;
      this.inFlight++;
      const done = attacher
        .attach(entry)
        .then((got) => got && this.cache.readAheadFile())
        .catch(() => {}) // the open meets it again
        .finally(() => {
          this.inFlight--;
          this.registeringAhead.delete(entry);
        });
      this.registeringAhead.set(entry, done);
      return;
    }
    if (!this.cache.blockPool.hasRoom() || !makeRoom(this.held, (e, h) => this.drop(e, h))) return;
    this.inFlight++;
    const block = this.load(entry).finally(() => this.inFlight--);
    this.held.set(entry, { block, at: Date.now() });
  }

  /**
   * Reads and verifies the first block, and keeps the cache file open with it (until claimed or
   * dropped); undefined on any failure, which the file's reader meets again.
   */
  private async load(entry: CacheEntry): Promise<DiskBlock | undefined> {
    try {
      const fh = await entry.acquire();
      try {
        // The open took a turn of the thread pool: the room seen before may be taken meanwhile.
        if (!this.cache.blockPool.hasRoom()) throw new Error('no room in the memory budget');
        const block = await this.cache.loadBlock(entry, fh, 0, true);
        this.cache.readAheadFile();
        return block;
      } catch (err) {
        entry.release();
        throw err;
      }
    } catch {
      return undefined; // gone meanwhile (evicted), or a disk problem the file's reader meets again
    }
  }
}
