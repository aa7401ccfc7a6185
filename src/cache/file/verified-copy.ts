// A complete cached copy, verified whole and registered as the backing file of an open that the
// kernel then reads itself (FUSE passthrough, src/vfs/passthrough.ts). No read of such a handle
// comes to bucketfs to be checked, so every block is checked here, at open, against the checksums
// recorded when it was downloaded: in full at the copy's first open of each mount, and at later
// opens again whenever its file is not exactly the one verified (inode, size, mtime and ctime, taken
// before the verifying read). A write to the file, a truncation or a replacement changes that
// identity; an unchanged file is registered without reading it again, and a registered copy may
// stay registered between opens (kept-copies.ts). Reading and checksumming
// every byte at every open cost the daemon about a third of its CPU in epoch 2 of many small files
// (docs/caching.md). A copy that fails is dropped (never served) and the open is served through
// bucketfs as usual, from the store.
import type { BigIntStats } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { type BackingFiles, type BackingOpenResult, BackingRefused, type CopySource } from '../../backing/files.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { ObjectMeta } from '../../store/types.js';
import { type CacheEntry, CorruptBlockError } from './entry.js';
import { type FileCache, isDiskError } from './file-cache.js';
import { KeptCopies } from './kept-copies.js';
import { blockChecksum } from './layout.js';

/**
 * Passthrough for the cache's copies up to `maxBytes`: the source of backing ids the VFS asks at
 * each open, and the read-ahead across files set to verify and register the next files' copies,
 * where it would otherwise read their first block into memory. `backing`: the mount's, once
 * mounted with it. Up to `keep` ids stay registered between opens (kept-copies.ts).
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
  const kept = new KeptCopies(cache.copiesDir, keep, backing, metrics, log);
  cache.onClose(() => kept.stop());
  cache.nextFiles.usePassthrough({
    eligible: (entry) => eligible(entry.size),
    registered: (entry) => kept.registered(entry),
    attach: (entry) => {
      const b = backing();
      return b ? attachEntry(cache, entry, b) : Promise.resolve(undefined);
    },
    close: (id) => backing()?.close(id),
  });
  return {
    attach: async (meta, b) => (eligible(meta.size) ? attachVerifiedCopy(cache, kept, meta, b) : undefined),
    release: (id) => kept.release(id),
  };
}

/**
 * The backing id of exactly this version's cached copy, every block verified (or kept registered
 * since it was, unchanged); undefined when it is not cached, corrupt, or the disk fails. Throws
 * BackingRefused.
 */
async function attachVerifiedCopy(
  cache: FileCache,
  kept: KeptCopies,
  meta: ObjectMeta,
  backing: BackingFiles,
): Promise<number | undefined> {
  const entry = cache.lookup(meta);
  if (!entry) return undefined;
  const again = await kept.take(entry);
  if (again !== undefined) {
    cache.passthroughChecked('kept');
    cache.lookedUp(true);
    return again;
  }
  // Registered ahead, as the next file of a directory read in numbered order (next-files.ts).
  const ahead = cache.nextFiles.claimBacking(entry);
  const id = (ahead && (await ahead)) ?? (await attachEntry(cache, entry, backing));
  if (id !== undefined) {
    kept.handedOut(entry, id);
    cache.lookedUp(true);
  }
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
