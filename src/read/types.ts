// The read road's contract with the VFS: one FileReader per open handle.
import type { ObjectMeta } from '../store/types.js';

export interface FileReader {
  /**
   * Up to `length` bytes at `offset`; fewer only at the end of the object (0 at or past it).
   * Rejects with a BucketfsError (BFS_STALE_OBJECT when the object changed since open).
   * The Buffer may be a view of memory the reader reuses: it is valid until the event loop turns
   * (the next macrotask). Use it in the continuation that receives it (FUSE copies it into the
   * kernel's buffer at once) or copy it; never keep it across I/O.
   */
  read(offset: number, length: number): Promise<Buffer>;
  /** Releases buffers and aborts requests in flight. Idempotent. */
  close(): void;
}

/** Makes the reader for one open handle, pinned to the object version seen at open. */
export type ReaderFactory = (meta: ObjectMeta) => FileReader;
