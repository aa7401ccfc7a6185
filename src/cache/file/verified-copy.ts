// A complete cached copy, verified whole and registered as the backing file of an open that the
// kernel then reads itself (FUSE passthrough, src/vfs/passthrough.ts). No read of such a handle
// comes to bucketfs to be checked, so every block is checked here, at open, against the checksums
// recorded when it was downloaded: in full at the copy's first open of each mount, and at later
// opens again whenever its file is not exactly the one verified (inode, size, mtime and ctime, taken
// before the verifying read). A write to the file, a truncation or a replacement changes that
// identity; an unchanged file is registered without reading it again, and a registered copy may
// stay registered between opens (src/backing/registry.ts, which owns every backing id; copy-watch.ts
// sees the changes on disk). Verifying every byte at every open would cost a third of the daemon's
// CPU in an epoch of many small files (docs/architecture.md, decision D8). A copy that fails is dropped (never served) and the open is served through
// bucketfs as usual, from the store.
import type { BigIntStats } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { type BackingFiles, type BackingOpenResult, BackingRefused, type CopySource } from '../../backing/files.js';
import { BackingRegistry } from '../../backing/registry.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { ObjectMeta } from '../../store/types.js';
import { watchCopies } from './copy-watch.js';
import { type CacheEntry, CorruptBlockError } from './entry.js';
import { type FileCache, isDiskError } from './file-cache.js';
import { blockChecksum } from './layout.js';

/**
 * Passthrough for the cache's copies up to `maxBytes`: the source of backing ids the VFS asks at
 * each open, and the read-ahead across files set to verify and register the next files' copies,
 * where it would otherwise read their first block into memory. `backing`: the mount's, once
 * mounted with it. Up to `keep` ids stay registered between opens (src/backing/registry.ts).
 */
export function cacheCopySource(
  cache: FileCache,
  maxBytes: number,
  keep: number,
  backing: () => BackingFiles | undefined,
  metrics: Metrics,
  log: Logger,
): CopySource {
  const eligible = (size: number): boolean => size <= maxBytes && backing() !== undefined;
  const registry = new BackingRegistry<CacheEntry>(
    backing,
    { keep, ahead: AHEAD_IDS, aheadStaleMs: AHEAD_STALE_MS },
    metrics,
  );
  const watch = keep > 0 ? watchCopies(cache.copiesDir, registry, log) : undefined;
  cache.onClose(() => {
    watch?.close();
    registry.clear();
  });
  cache.nextFiles.usePassthrough({
    eligible: (entry) => eligible(entry.size),
    registered: (entry) => registry.registered(entry),
    roomAhead: () => registry.roomAhead(),
    attach: async (entry) => {
      const b = backing();
      const id = b && (await attachEntry(cache, entry, b));
      if (id === undefined) return false;
      registry.addAhead(entry, id);
      return true;
    },
  });
  return {
    attach: async (meta, b) => (eligible(meta.size) ? attachVerifiedCopy(cache, registry, meta, b) : undefined),
    release: (id) => registry.release(id),
  };
}

/** Backing ids registered ahead at once, mount-wide (next-files.ts). */
const AHEAD_IDS = 32;
/** An id registered ahead this long ago and still not claimed may make room for a new one. */
const AHEAD_STALE_MS = 2_000;

/**
 * The backing id of exactly this version's cached copy, every block verified (or registered since
 * it was, unchanged: kept, or registered ahead); undefined when it is not cached, corrupt, or the
 * disk fails. Throws BackingRefused.
 */
async function attachVerifiedCopy(
  cache: FileCache,
  registry: BackingRegistry<CacheEntry>,
  meta: ObjectMeta,
  backing: BackingFiles,
): Promise<number | undefined> {
  const entry = cache.lookup(meta);
  if (!entry) return undefined;
  // Being registered ahead, as the next file of a directory read in numbered order (next-files.ts).
  const registering = cache.nextFiles.registering(entry);
  if (registering) await registering;
  if (registry.isKept(entry)) {
    // A change to the file made before this open was sent is in the watch's queue: let it in first.
    await new Promise((resolve) => setImmediate(resolve));
    const again = registry.take(entry);
    if (again !== undefined) {
      cache.passthroughChecked('kept');
      cache.lookedUp(true);
      return again;
    }
  }
  const ahead = registry.take(entry);
  const id = ahead ?? (await attachEntry(cache, entry, backing));
  if (id === undefined) return undefined;
  if (ahead === undefined) registry.addOpen(entry, id);
  cache.lookedUp(true);
  return id;
}

/**
 * Verifies a complete entry's copy and registers it as a backing file: its id, or undefined (the
 * copy is dropped when corrupt). Throws BackingRefused.
 */
async function attachEntry(cache: FileCache, entry: CacheEntry, backing: BackingFiles): Promise<number | undefined> {
  let id: number | undefined;
  try {
    if (entry.verifiedAs !== undefined) {
      const unchanged = await attachUnchanged(cache, entry, backing);
      if (unchanged !== undefined) return unchanged;
    }
    // The first block may be in memory already, verified, with the file open (next-files.ts).
    const first = await cache.nextFiles.claim(entry);
    if (first) cache.blockPool.releaseLater(first.buf);
    if (entry.blocks === 1 && !first) {
      // One block: open, read, register and close in one trip through the thread pool.
      const buf = await cache.blockPool.take();
      try {
        const r = await backing.openPath(entry.paths.data, buf.subarray(0, entry.size));
        id = registered(r);
        if (r.bytes !== entry.size) throw new CorruptBlockError(0, `short: ${r.bytes} of ${entry.size} bytes on disk`);
        if (blockChecksum(buf.subarray(0, entry.size)) !== entry.crcs[0])
          throw new CorruptBlockError(0, 'checksum mismatch');
        cache.diskRead(r.bytes);
        verified(cache, entry, r.stat);
      } finally {
        cache.blockPool.releaseLater(buf);
      }
    } else {
      const fh = await entry.acquire();
      try {
        // A first block read ahead was read before this identity was taken: it is not this file's.
        const identity = first ? '' : fileIdentity(await fh.stat({ bigint: true }));
        for (let b = first ? 1 : 0; b < entry.blocks; b++) {
          const block = await cache.loadBlock(entry, fh, b, false);
          cache.blockPool.releaseLater(block.buf);
        }
        const got = backing.open(fh.fd);
        if (got < 0) throw new BackingRefused(-got);
        id = got;
        verified(cache, entry, identity);
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

/** No bytes: an open that takes the file's identity and registers it, reading nothing. */
const NOTHING = Buffer.alloc(0);

/**
 * A data file's identity, in the format the native open gives it (BackingOpenResult.stat, the
 * job's stat_key in patches/fuse-native-max-pages.patch): inode, size, and mtime and ctime to the
 * nanosecond. Multi-block copies take theirs here; if the two formats parted, those copies would
 * be verified whole at every open (passthrough.test.ts's three-block copy fails then).
 */
export function fileIdentity(st: BigIntStats): string {
  const time = (ns: bigint): string => `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;
  return `${st.ino}:${st.size}:${time(st.mtimeNs)}:${time(st.ctimeNs)}`;
}

/** The backing id openPath registered; throws its open or read error, or BackingRefused. */
function registered(r: BackingOpenResult): number {
  if (r.error < 0)
    throw Object.assign(new Error(`cache file: errno ${-r.error}`), { code: getSystemErrorName(r.error) });
  if (r.id < 0) throw new BackingRefused(-r.id);
  return r.id;
}

/** Every block of `entry` checked, read from the file known by `identity` ('' if unknown). */
function verified(cache: FileCache, entry: CacheEntry, identity: string): void {
  entry.verifiedAs = identity === '' ? undefined : identity;
  cache.passthroughChecked('full');
}

/**
 * Registers a copy this mount verified in full before, without reading it, when its file is still
 * the one verified; undefined (nothing registered) when it is not, and it is verified again. The
 * ctime catches what changes the file through the file system, even a write that puts the mtime
 * back. Corruption beneath the file system leaves the identity alone: such a copy is caught at its
 * first open of the next mount.
 */
async function attachUnchanged(
  cache: FileCache,
  entry: CacheEntry,
  backing: BackingFiles,
): Promise<number | undefined> {
  const r = await backing.openPath(entry.paths.data, NOTHING);
  const id = registered(r);
  if (r.stat !== '' && r.stat === entry.verifiedAs) {
    cache.passthroughChecked('unchanged');
    return id;
  }
  backing.close(id);
  entry.verifiedAs = undefined;
  return undefined;
}
