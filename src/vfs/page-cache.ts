// How an open uses the kernel's page cache of a file. FUSE drops a file's cached pages at every
// open unless the open says keep_cache: a file read twice would come to bucketfs (and the disk or
// the store) twice. Keeping them is right only when every page the kernel may hold is of the
// version this open reads. Pages come only from reads through open handles, and each handle reads
// the version it opened (src/vfs/vfs.ts), so per path we remember the version of the last open,
// and forget it whenever handles of another version were open at the same time: such a handle may
// fill pages with its older bytes (it reads them from the file cache), and the next open then drops
// them again. While two versions are open at once, the newer opens bypass the page cache
// (direct_io for that handle alone), so they never read a page an older handle left.
import { LRUCache } from 'lru-cache';

/** Paths whose last open is remembered; one forgotten is only an open that drops the cache. */
const MAX_PATHS = 100_000;

/** keep: the cached pages are this version's; drop: start afresh; bypass: another version is open. */
export type PageCacheUse = 'keep' | 'drop' | 'bypass';

/** A file's open handles by version (versionKey): kept by the open-handle table (open-files.ts). */
export interface OpenVersions {
  versions: Map<string, number>;
}

export class PageCacheVersions {
  /** Per path: the version the kernel's cached pages hold, when that is known to be the only one. */
  private readonly cached = new LRUCache<string, string>({ max: MAX_PATHS });

  /** A handle of `version` is being opened on `file`, now at `path`: how it uses the cached pages. */
  opened(path: string, file: OpenVersions, version: string): PageCacheUse {
    const handles = file.versions;
    handles.set(version, (handles.get(version) ?? 0) + 1);
    if (handles.size > 1) {
      // Another version is open too: whatever it reads goes into the same pages.
      this.cached.delete(path);
      return 'bypass';
    }
    const keep = this.cached.get(path) === version;
    this.cached.set(path, version);
    return keep ? 'keep' : 'drop';
  }

  /** A handle of `version` on `file`, now at `path`, was released. */
  closed(path: string, file: OpenVersions, version: string): void {
    const handles = file.versions;
    const n = handles.get(version);
    if (n === undefined) return;
    if (n > 1) handles.set(version, n - 1);
    else handles.delete(version);
    // An older version's handle may have left its pages behind.
    if (this.cached.peek(path) !== version) this.cached.delete(path);
  }
}
