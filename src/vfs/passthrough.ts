// Passthrough opens: for a file whose cached copy is on local disk (--cache-dir), the kernel reads
// the handle's bytes from that copy itself, with no read request to bucketfs (FUSE passthrough,
// Linux 6.9 and later, root only). Epoch 2 of many small files then costs bucketfs a lookup, an
// open and a release per file, and its main thread is out of the data path.
//
// The kernel's rule for one inode: while a handle is open in passthrough, every other open of it
// must be passthrough onto the same backing file (or fails with EIO), and a handle open through
// bucketfs keeps passthrough out. So per open file (the inode: the open-handle table's entry,
// which a rename moves and an unlink detaches, as the kernel does the inode): one backing id, for
// one version, shared by its passthrough handles and given back to its source with the last (which
// may keep it registered for the path's next open: src/backing/registry.ts); an open while handles
// of the file are open through bucketfs is served through bucketfs too.

import { type BackingFiles, BackingRefused, type CopySource } from '../backing/files.js';
import type { Logger } from '../log.js';
import { type ObjectMeta, versionKey } from '../store/types.js';
import { PosixError } from './errno.js';

export interface FileBacking {
  version: string;
  /** The backing id; undefined when the copy could not be used (the opens go through bucketfs). */
  id: Promise<number | undefined>;
  handles: number;
}

/** Where an open file keeps its backing: the open-handle table's entry (open-files.ts). */
export interface BackingSlot {
  backing: FileBacking | undefined;
}

export class PassthroughOpens {
  private readonly source: CopySource;
  private readonly backing: () => BackingFiles | undefined;
  private readonly log: Logger;
  /** The kernel refused a backing file (not root, no kernel support): no more tries. */
  private off = false;

  /** `backing`: the mount's registry, once mounted with passthrough announced. */
  constructor(source: CopySource, backing: () => BackingFiles | undefined, log: Logger) {
    this.source = source;
    this.backing = backing;
    this.log = log;
  }

  /**
   * The backing id for a new handle of this version (`meta`) on the open file `file` (at `path`),
   * or undefined: serve it through bucketfs. `throughBucketfs`: handles of the file are open
   * through bucketfs now. Each handle that gets an id is given back with `released`.
   */
  async opened(
    path: string,
    file: BackingSlot,
    meta: ObjectMeta,
    throughBucketfs: boolean,
  ): Promise<number | undefined> {
    const version = versionKey(meta);
    let p = file.backing;
    if (!p) {
      const backing = this.backing();
      if (this.off || throughBucketfs || !backing) return undefined;
      p = { version, id: this.attach(backing, meta), handles: 0 };
      const mine = p;
      file.backing = mine;
      void mine.id.then((id) => {
        if (id === undefined && file.backing === mine) file.backing = undefined;
      });
    } else if (p.version !== version) {
      // The kernel takes one backing file per inode while it is open: the newer version cannot be
      // opened, through bucketfs or onto another copy, until the older one's handles are closed.
      throw new PosixError(
        'EBUSY',
        `${path} changed in the bucket while handles of its older version are open; open it again once they are closed`,
      );
    }
    p.handles++;
    const id = await p.id;
    if (id === undefined) p.handles--;
    return id;
  }

  /** A handle of `file` that `opened` gave a backing id was released. */
  released(file: BackingSlot): void {
    const p = file.backing;
    if (!p || --p.handles > 0) return;
    file.backing = undefined;
    void p.id.then((id) => {
      if (id !== undefined) this.source.release(id);
    });
  }

  /** Never rejects: whatever goes wrong, the open is served through bucketfs. */
  private async attach(backing: BackingFiles, meta: ObjectMeta): Promise<number | undefined> {
    try {
      return await this.source.attach(meta, backing);
    } catch (err) {
      if (err instanceof BackingRefused) {
        if (!this.off) {
          this.off = true;
          this.log.info(
            { errno: err.errno },
            'the kernel refused a backing file: cached files are served through bucketfs (passthrough needs root and Linux 6.9)',
          );
        }
      } else {
        this.log.warn({ key: meta.key, err: (err as Error).message }, 'cached copy not usable for passthrough');
      }
      return undefined;
    }
  }
}
