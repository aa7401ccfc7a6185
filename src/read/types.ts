// The read road's contract with the VFS: one FileReader per open handle.
import type { ObjectMeta } from '../store/types.js';

export interface FileReader {
  /**
   * Up to `length` bytes at `offset`; fewer only at the end of the object (0 at or past it).
   * Rejects with a BucketfsError (BFS_STALE_OBJECT when the object changed since open).
   */
  read(offset: number, length: number): Promise<Buffer>;
  /** Releases buffers and aborts requests in flight. Idempotent. */
  close(): void;
}

/** Makes the reader for one open handle, pinned to the object version seen at open. */
export type ReaderFactory = (meta: ObjectMeta) => FileReader;
