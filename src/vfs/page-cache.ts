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

export class PageCacheVersions {
  /** Per path: the version the kernel's cached pages hold, when that is known to be the only one. */
  private readonly cached = new LRUCache<string, string>({ max: MAX_PATHS });
  /** Per path: open handles by version. */
  private readonly open = new Map<string, Map<string, number>>();

  /** A handle of `version` (versionKey) is being opened on `path`: how it uses the cached pages. */
  opened(path: string, version: string): PageCacheUse {
    let handles = this.open.get(path);
    if (!handles) {
      handles = new Map();
      this.open.set(path, handles);
    }
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

  /** Whether handles of `path` are open (through bucketfs). */
  isOpen(path: string): boolean {
    return this.open.has(path);
  }

  /** A handle of `version` on `path` was released. */
  closed(path: string, version: string): void {
    const handles = this.open.get(path);
    const n = handles?.get(version);
    if (!handles || n === undefined) return;
    if (n > 1) handles.set(version, n - 1);
    else handles.delete(version);
    if (handles.size === 0) this.open.delete(path);
    // An older version's handle may have left its pages behind.
    if (this.cached.peek(path) !== version) this.cached.delete(path);
  }
}
