// One object version in the file cache: which blocks are on disk, their checksums, and the one
// file handle its readers share. A reader verifies every block it reads against its checksum; an
// entry that fails is dropped by the cache, never served.
import { type FileHandle, open } from 'node:fs/promises';
import { readFully } from '../../disk.js';
import type { ObjectMeta } from '../../store/types.js';
import { BLOCK_BYTES, blockChecksum, blockCount, type EntryPaths } from './layout.js';

/** A block read back from disk did not match its checksum, or came back short. */
export class CorruptBlockError extends Error {
  readonly block: number;
  constructor(block: number, why: string) {
    super(`block ${block}: ${why}`);
    this.name = 'CorruptBlockError';
    this.block = block;
  }
}

/** A block read from disk and verified: `data` is the view of the recycled buffer `buf` holding it. */
export interface DiskBlock {
  index: number;
  data: Buffer;
  buf: Buffer;
}

/** A block's checksum is computed in slices of this size when it is read ahead. */
const CHECKSUM_SLICE_BYTES = 128 * 1024;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class CacheEntry {
  readonly id: string;
  readonly meta: ObjectMeta;
  readonly paths: EntryPaths;
  readonly blocks: number;
  readonly crcs: Uint32Array;
  /** 1 when the block is on disk and its checksum is known. */
  private readonly onDisk: Uint8Array;
  private blocksOnDisk = 0;
  /** Dropped from the cache (evicted, corrupt, failed): its files are gone or going. */
  dropped = false;
  /** The last use recorded on disk (ms; the .meta mtime): recency across restarts. */
  usedOnDisk = Date.now();
  /**
   * The identity of the data file (inode, size, mtime, ctime) when this mount last read and
   * verified the whole copy for passthrough, taken before that read (src/cache/file/verified-copy.ts).
   */
  verifiedAs: string | undefined;
  private handle: Promise<FileHandle> | undefined;
  private refs = 0;

  constructor(id: string, meta: ObjectMeta, paths: EntryPaths, crcs?: Uint32Array) {
    this.id = id;
    this.meta = meta;
    this.paths = paths;
    this.blocks = blockCount(meta.size);
    this.crcs = crcs ?? new Uint32Array(this.blocks);
    this.onDisk = new Uint8Array(this.blocks);
    if (crcs) {
      this.onDisk.fill(1);
      this.blocksOnDisk = this.blocks;
    }
  }

  get size(): number {
    return this.meta.size;
  }

  get complete(): boolean {
    return this.blocksOnDisk === this.blocks;
  }

  has(block: number): boolean {
    return this.onDisk[block] === 1;
  }

  /** Records that `data`, starting at block `first`, is now on disk. */
  markWritten(first: number, data: Buffer): void {
    for (let off = 0, b = first; off < data.length; off += BLOCK_BYTES, b++) {
      this.crcs[b] = blockChecksum(data.subarray(off, off + BLOCK_BYTES));
      if (this.onDisk[b] !== 1) {
        this.onDisk[b] = 1;
        this.blocksOnDisk++;
      }
    }
  }

  blockLength(block: number): number {
    return Math.min(BLOCK_BYTES, this.meta.size - block * BLOCK_BYTES);
  }

  /**
   * Shares one handle among readers. The download opens the partial file read-write (`create`);
   * later readers open whatever path the data has. An unlinked file stays readable through it.
   */
  async acquire(create?: () => Promise<FileHandle>): Promise<FileHandle> {
    this.refs++;
    this.handle ??= create ? create() : open(this.complete ? this.paths.data : this.paths.partial, 'r');
    try {
      return await this.handle;
    } catch (err) {
      this.handle = undefined;
      this.release();
      throw err;
    }
  }

  release(): void {
    if (--this.refs > 0 || !this.handle) return;
    const h = this.handle;
    this.handle = undefined;
    void h.then((fh) => fh.close()).catch(() => {});
  }

  /**
   * Reads one whole block into `into` (at least a block long: a recycled buffer) and checks it;
   * returns the view of `into` holding it. Throws CorruptBlockError when it does not match.
   * `background` (a block read ahead): the checksum is computed a slice at a time, letting FUSE
   * requests in between, so the reader being served now never waits behind it.
   */
  async readBlock(fh: FileHandle, block: number, into: Buffer, background = false): Promise<Buffer> {
    const len = this.blockLength(block);
    const buf = into.subarray(0, len);
    const got = await readFully(fh, buf, len, block * BLOCK_BYTES);
    if (got < len) throw new CorruptBlockError(block, `short: ${got} of ${len} bytes on disk`);
    let crc = 0;
    for (let off = 0; off < len; off += CHECKSUM_SLICE_BYTES) {
      if (background && off > 0) await yieldToEventLoop();
      crc = blockChecksum(buf.subarray(off, off + CHECKSUM_SLICE_BYTES), crc);
    }
    if (crc !== this.crcs[block]) throw new CorruptBlockError(block, 'checksum mismatch');
    return buf;
  }
}
