// The read road's contract with the VFS: one FileReader per open handle.
import type { ObjectMeta } from '../store/types.js';

export interface FileReader {
  /**
   * Copies up to `length` bytes at `offset` into the start of `into` (the caller's: the reader
   * keeps no reference to it once the promise settles) and resolves to how many; fewer only at the
   * end of the object (0 at or past it). `into` holds at least `length` bytes.
   * Rejects with a BucketfsError (BFS_STALE_OBJECT when the object changed since open).
   */
  read(offset: number, length: number, into: Buffer): Promise<number>;
  /** Releases buffers and aborts requests in flight. Idempotent. */
  close(): void;
}

/** Makes the reader for one open handle, pinned to the object version seen at open. */
export type ReaderFactory = (meta: ObjectMeta) => FileReader;
