// Watches the cache directory for changes to the data files of copies registered as backing files
// (src/backing/registry.ts): a write, a truncation, a replacement or a removal of a copy's file
// makes its registration stale (closed, or closed at release if open) and its verified identity
// forgotten, so its next open verifies it whole again. The cache's own unlink of an entry it drops
// (evicted, corrupt, changed in the bucket) is such a change too, so a kept id goes with its entry
// and the unlinked file's disk space is freed as eviction expects. An open takes a kept id only
// after one turn of the event loop (verified-copy.ts), so a change made before the open was sent,
// already queued on the watch's descriptor, is seen first. Without the watch (inotify refused)
// nothing is kept.
import { type FSWatcher, watch } from 'node:fs';
import type { BackingRegistry } from '../../backing/registry.js';
import type { Logger } from '../../log.js';
import type { CacheEntry } from './entry.js';

const DATA_SUFFIX = '.data';

/** Starts watching `dir`; close() stops. */
export function watchCopies(dir: string, registry: BackingRegistry<CacheEntry>, log: Logger): { close(): void } {
  let watcher: FSWatcher | undefined;
  const cannotWatch = (err: Error): void => {
    log.warn(
      { err: err.message },
      'cannot watch the cache directory for changes: copies in passthrough are registered again at every open',
    );
    watcher?.close();
    watcher = undefined;
    registry.stopKeeping();
  };
  try {
    watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (typeof name !== 'string' || !name.endsWith(DATA_SUFFIX)) return;
      const copy = registry.changed(name.slice(0, -DATA_SUFFIX.length));
      if (copy) copy.verifiedAs = undefined; // verified whole at its next open
    });
    watcher.on('error', cannotWatch);
  } catch (err) {
    cannotWatch(err as Error);
  }
  return {
    close() {
      watcher?.close();
      watcher = undefined;
    },
  };
}
