// A complete cached copy, verified whole and registered as the backing file of an open that the
// kernel then reads itself (FUSE passthrough, src/vfs/passthrough.ts). No read of such a handle
// comes to bucketfs to be checked, so every block is checked here, at each open, against the
// checksums recorded when it was downloaded. A copy that fails is dropped (never served) and the
// open is served through bucketfs as usual, from the store.
import { getSystemErrorName } from 'node:util';
import type { Logger } from '../../log.js';
import type { ObjectMeta } from '../../store/types.js';
import { type BackingFiles, BackingRefused, PassthroughOpens } from '../../vfs/passthrough.js';
import { type CacheEntry, CorruptBlockError } from './entry.js';
import { type FileCache, isDiskError } from './file-cache.js';
import { blockChecksum } from './layout.js';

/**
 * Passthrough for the cache's copies up to `maxBytes`: the registry the VFS asks at each open, and
 * the read-ahead across files set to verify and register the next files' copies, where it would
 * otherwise read their first block into memory. `backing`: the mount's, once mounted with it.
 */
export function cachePassthrough(
  cache: FileCache,
  maxBytes: number,
  backing: () => BackingFiles | undefined,
  log: Logger,
): PassthroughOpens {
  const eligible = (size: number): boolean => size <= maxBytes && backing() !== undefined;
  cache.nextFiles.usePassthrough({
    eligible: (entry) => eligible(entry.size),
    attach: (entry) => {
      const b = backing();
      return b ? attachEntry(cache, entry, b) : Promise.resolve(undefined);
    },
    close: (id) => backing()?.close(id),
  });
  return new PassthroughOpens(
    async (meta, b) => (eligible(meta.size) ? attachVerifiedCopy(cache, meta, b) : undefined),
    backing,
    log,
  );
}

/**
 * The backing id of exactly this version's cached copy, every block verified; undefined when it is
 * not cached, corrupt, or the disk fails. Throws BackingRefused.
 */
async function attachVerifiedCopy(
  cache: FileCache,
  meta: ObjectMeta,
  backing: BackingFiles,
): Promise<number | undefined> {
  const entry = cache.lookup(meta);
  if (!entry) return undefined;
  // Registered ahead, as the next file of a directory read in numbered order (next-files.ts).
  const ahead = cache.nextFiles.claimBacking(entry);
  const id = (ahead && (await ahead)) ?? (await attachEntry(cache, entry, backing));
  if (id !== undefined) cache.lookedUp(true);
  return id;
}

/**
 * Verifies a complete entry's copy and registers it as a backing file: its id, or undefined (the
 * copy is dropped when corrupt). Throws BackingRefused.
 */
async function attachEntry(cache: FileCache, entry: CacheEntry, backing: BackingFiles): Promise<number | undefined> {
  let id: number | undefined;
  try {
    // The first block may be in memory already, verified, with the file open (next-files.ts).
    const first = await cache.nextFiles.claim(entry);
    if (first) cache.blockPool.releaseLater(first.buf);
    if (entry.blocks === 1 && !first) {
      // One block: open, read, register and close in one trip through the thread pool.
      const buf = cache.blockPool.take();
      try {
        const r = await backing.openPath(entry.paths.data, buf.subarray(0, entry.size));
        if (r.error < 0)
          throw Object.assign(new Error(`cache file: errno ${-r.error}`), { code: getSystemErrorName(r.error) });
        if (r.id < 0) throw new BackingRefused(-r.id);
        id = r.id;
        if (r.bytes !== entry.size) throw new CorruptBlockError(0, `short: ${r.bytes} of ${entry.size} bytes on disk`);
        if (blockChecksum(buf.subarray(0, entry.size)) !== entry.crcs[0])
          throw new CorruptBlockError(0, 'checksum mismatch');
        cache.diskRead(r.bytes);
      } finally {
        cache.blockPool.releaseLater(buf);
      }
    } else {
      const fh = await entry.acquire();
      try {
        for (let b = first ? 1 : 0; b < entry.blocks; b++) {
          const block = await cache.loadBlock(entry, fh, b, false);
          cache.blockPool.releaseLater(block.buf);
        }
        const got = backing.open(fh.fd);
        if (got < 0) throw new BackingRefused(-got);
        id = got;
      } finally {
        entry.release();
      }
    }
    return id;
  } catch (err) {
    if (id !== undefined) backing.close(id);
    if (err instanceof CorruptBlockError) cache.corrupt(entry, err);
    else if (isDiskError(err)) {
      cache.diskTrouble(err);
      void cache.drop(entry, 'failed');
    } else throw err;
    return undefined;
  }
}
