// A file cache over an in-memory store and a real directory, with the reader factory a mount
// would use (tests of src/cache/file/).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cachedReaderFactory } from '../../src/cache/file/cached-reader.js';
import { FileCache, type FileCacheOptions } from '../../src/cache/file/file-cache.js';
import { silentLogger } from '../../src/log.js';
import { MemoryBudget } from '../../src/memory/budget.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createReaderFactory } from '../../src/read/prefetcher.js';
import { RangeDownloader } from '../../src/read/range-downloader.js';
import type { FileReader } from '../../src/read/types.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ObjectMeta } from '../../src/store/types.js';
import { readBytes } from './readers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface Rig {
  store: MemoryStore;
  cache: FileCache;
  budget: MemoryBudget;
  metrics: Metrics;
  open(meta: ObjectMeta): FileReader;
}

export async function rig(
  dir: string,
  over: Partial<FileCacheOptions> = {},
  store = new MemoryStore(),
  budgetBytes = 256 * MiB,
): Promise<Rig> {
  const metrics = new Metrics();
  const downloader = new RangeDownloader(store, 8);
  const budget = new MemoryBudget(budgetBytes);
  const direct = createReaderFactory(
    downloader,
    budget,
    {
      partSize: 2 * MiB,
      initialWindow: 256 * KiB,
      maxWindow: 8 * MiB,
      forwardTolerance: 256 * KiB,
      siblingSlack: 1 * MiB,
      idleMs: 60_000,
    },
    metrics,
  );
  const cache = await FileCache.open(
    {
      dir,
      backend: 'memory',
      bucket: store.bucket,
      maxBytes: Number.POSITIVE_INFINITY,
      minFreeRatio: 0.01,
      cacheForRangeRead: false,
      parallelThresholdBytes: 4 * MiB,
      parallelDownloads: 4,
      chunkBytes: 2 * MiB,
      readAheadFiles: 4,
      ...over,
    },
    downloader,
    budget,
    metrics,
    silentLogger(),
  );
  assert.ok(cache);
  return { store, cache, budget, metrics, open: cachedReaderFactory(cache, direct) };
}

/** Reads a whole object like the kernel does: 128 KiB requests, in order. */
export async function readAll(r: FileReader, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let off = 0; off < size; off += 128 * KiB) parts.push(await readBytes(r, off, 128 * KiB));
  r.close();
  return Buffer.concat(parts);
}

/** Waits for the download job of `meta` to finish. */
export async function settled(c: FileCache, rigStore: MemoryStore, meta: ObjectMeta): Promise<void> {
  for (let i = 0; i < 200 && c.runningJob(meta); i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(c.runningJob(meta), undefined, `download of ${meta.key} still running (${rigStore.requests.GET} GETs)`);
}

/** Puts `size` random bytes at `key`, reads them once through the cache and waits until cached. */
export async function cachedCopy(r: Rig, key: string, size: number): Promise<{ meta: ObjectMeta; data: Buffer }> {
  const data = randomBytes(size);
  const meta = r.store.seed(key, data);
  assert.ok((await readAll(r.open(meta), meta.size)).equals(data), `first read of ${key}`);
  await settled(r.cache, r.store, meta);
  return { meta, data };
}
