// The kernel's registry of backing files for FUSE passthrough, as the FUSE glue offers it (ioctls on
// /dev/fuse, src/fuse/native.ts): what the file cache registers its verified copies with, and what
// the VFS hands to the kernel with an open.
import type { ObjectMeta } from '../store/types.js';

/** The kernel refused to register a backing file (not root, no kernel support): errno. */
export class BackingRefused extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`the kernel refused a backing file (errno ${errno})`);
    this.name = 'BackingRefused';
    this.errno = errno;
  }
}

/**
 * What BackingFiles.openPath did: `error` 0 or -errno (open, read), `id` > 0 or -errno
 * (registration), `stat` the file's identity before the read (fileIdentity), '' if unknown.
 */
export interface BackingOpenResult {
  error: number;
  bytes: number;
  id: number;
  stat: string;
}

/** The mount's registry of backing files (ioctls on /dev/fuse). */
export interface BackingFiles {
  /** Registers an open file descriptor: its backing id, or -errno. */
  open(fd: number): number;
  /**
   * Opens a file, reads it whole into `into` (nothing when empty), registers it and closes it, in
   * one trip through the thread pool.
   */
  openPath(path: string, into: Buffer): Promise<BackingOpenResult>;
  /** Drops a backing id; handles open on it keep reading. */
  close(id: number): void;
}

/** Where backing ids come from, and go back to (src/cache/file/verified-copy.ts), asked by the VFS at each open (src/vfs/passthrough.ts). */
export interface CopySource {
  /**
   * Registers exactly this version's cached copy, verified, as a backing file: its id, or undefined
   * (no usable copy). Throws BackingRefused when the kernel refuses.
   */
  attach(meta: ObjectMeta, backing: BackingFiles): Promise<number | undefined>;
  /** The last handle on `id` was released: the source closes it, or keeps it for a later attach. */
  release(id: number): void;
}
