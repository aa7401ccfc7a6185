// Backing files kept registered between opens. Registering a verified copy with the kernel for
// passthrough costs a trip through the thread pool at every open (open the data file, fstat it to
// know it unchanged, the ioctl, close), and after the page cache is dropped the open's lookup in the
// cache directory and the inode come from disk again. Epoch after epoch over the same files paid
// that at each open. So the backing id of a copy is kept after its last handle closes (up to a
// limit, least recently closed out) and the next open of the same version takes it back with no I/O.
//
// What could make a kept id wrong, and what happens then:
// - Its data file changes on disk (a write, a truncation, a replacement, a removal): an inotify
//   watch on the cache's directory sees it; the id is closed (or, while open, closed at release)
//   and the entry's verified identity forgotten, so the next open verifies the copy whole again. An
//   open takes a kept id only after one turn of the event loop, so a change made before the open
//   was sent is seen first. Without the watch (inotify refused) nothing is kept.
// - The entry is dropped (evicted, corrupt, or the object changed in the bucket): the cache unlinks
//   its files, which the watch sees as above, so the kept id goes and the unlinked file's disk
//   space is freed as eviction expects. A dropped entry is never looked up again meanwhile.
import { type FSWatcher, watch } from 'node:fs';
import type { BackingFiles } from '../../backing/files.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { CacheEntry } from './entry.js';

interface Registered {
  entry: CacheEntry;
  id: number;
}

const DATA_SUFFIX = '.data';

export class KeptCopies {
  private readonly backing: () => BackingFiles | undefined;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly max: number;
  /** Ids handed out for passthrough handles and not closed, open or kept. */
  private readonly byId = new Map<number, Registered>();
  /**
   * The current one of each copy, by its file name stem (CacheEntry.id, what the watch reports).
   * One in byId but not here was changed on disk while open: it is closed at release, never kept.
   */
  private readonly byFile = new Map<string, Registered>();
  /** Kept ids with no handle open, least recently released first. */
  private readonly kept = new Map<string, Registered>();
  private watcher: FSWatcher | undefined;

  /** `dir`: the directory holding the copies' data files; `max` 0 keeps nothing. */
  constructor(dir: string, max: number, backing: () => BackingFiles | undefined, metrics: Metrics, log: Logger) {
    this.backing = backing;
    this.metrics = metrics;
    this.log = log;
    this.max = max;
    if (max > 0) this.watch(dir);
  }

  /** The id kept for exactly this entry, now the caller's; undefined if none (or it changed). */
  async take(entry: CacheEntry): Promise<number | undefined> {
    if (this.kept.get(entry.id)?.entry !== entry) return undefined;
    // A change to the file made before this open was sent is in the watch's queue: let it in first.
    await new Promise((resolve) => setImmediate(resolve));
    const r = this.kept.get(entry.id);
    if (r?.entry !== entry || entry.dropped) return undefined;
    this.kept.delete(entry.id);
    this.report();
    return r.id;
  }

  /** `id` was registered for `entry` and handed to a handle. */
  handedOut(entry: CacheEntry, id: number): void {
    const r: Registered = { entry, id };
    this.byId.set(id, r);
    const old = this.byFile.get(entry.id);
    // One path has one id at a time (passthrough.ts); an older id of the same file is stale.
    if (old && old !== r) this.forgetRegistered(old);
    this.byFile.set(entry.id, r);
  }

  /** Whether `entry`'s copy is registered now (open or kept): nothing to read ahead for it. */
  registered(entry: CacheEntry): boolean {
    return this.byFile.get(entry.id)?.entry === entry;
  }

  /** The last handle on `id` was released: kept, unless its copy went or nothing may be kept. */
  release(id: number): void {
    const r = this.byId.get(id);
    if (!r || this.byFile.get(r.entry.id) !== r || r.entry.dropped || !this.watcher) {
      if (r) this.unregister(r);
      this.backing()?.close(id);
      return;
    }
    this.kept.set(r.entry.id, r);
    if (this.kept.size > this.max) {
      const oldest = this.kept.values().next().value as Registered;
      this.close(oldest);
    }
    this.report();
  }

  /** Unmount: the ids go with the FUSE connection. */
  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.byId.clear();
    this.byFile.clear();
    this.kept.clear();
    this.report();
  }

  private watch(dir: string): void {
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (typeof name === 'string' && name.endsWith(DATA_SUFFIX)) this.changed(name.slice(0, -DATA_SUFFIX.length));
      });
      this.watcher.on('error', (err) => this.cannotWatch(err));
    } catch (err) {
      this.cannotWatch(err as Error);
    }
  }

  private cannotWatch(err: Error): void {
    this.log.warn(
      { err: err.message },
      'cannot watch the cache directory for changes: copies in passthrough are registered again at every open',
    );
    this.watcher?.close();
    this.watcher = undefined;
    for (const r of [...this.kept.values()]) this.close(r);
  }

  /** A data file in the directory was written, truncated, replaced or removed. */
  private changed(stem: string): void {
    const r = this.byFile.get(stem);
    if (!r) return;
    r.entry.verifiedAs = undefined; // verified whole at its next open
    this.forgetRegistered(r);
  }

  /** Closes `r` now if kept; if open, it is no longer current and release closes it. */
  private forgetRegistered(r: Registered): void {
    if (this.kept.get(r.entry.id) === r) this.close(r);
    else if (this.byFile.get(r.entry.id) === r) this.byFile.delete(r.entry.id);
  }

  private close(r: Registered): void {
    if (this.kept.get(r.entry.id) === r) this.kept.delete(r.entry.id);
    this.unregister(r);
    this.backing()?.close(r.id);
    this.report();
  }

  private unregister(r: Registered): void {
    if (this.byId.get(r.id) === r) this.byId.delete(r.id);
    if (this.byFile.get(r.entry.id) === r) this.byFile.delete(r.entry.id);
  }

  private report(): void {
    this.metrics.fileCachePassthroughKept.set(this.kept.size);
  }
}
