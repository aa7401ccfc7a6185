// A file cache over an in-memory store and a real directory, with the reader factory a mount
// would use (tests of src/cache/file/).
import assert from 'node:assert/strict';
import { cachedReaderFactory } from '../../src/cache/file/cached-reader.js';
import { FileCache, type FileCacheOptions } from '../../src/cache/file/file-cache.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { MemoryBudget } from '../../src/read/memory-budget.js';
import { createReaderFactory } from '../../src/read/prefetcher.js';
import { RangeDownloader } from '../../src/read/range-downloader.js';
import type { FileReader } from '../../src/read/types.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ObjectMeta } from '../../src/store/types.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface Rig {
  store: MemoryStore;
  cache: FileCache;
  metrics: Metrics;
  open(meta: ObjectMeta): FileReader;
}

export async function rig(dir: string, over: Partial<FileCacheOptions> = {}, store = new MemoryStore()): Promise<Rig> {
  const metrics = new Metrics();
  const downloader = new RangeDownloader(store, 8);
  const budget = new MemoryBudget(256 * MiB);
  const direct = createReaderFactory(
    downloader,
    budget,
    { partSize: 2 * MiB, initialWindow: 256 * KiB, maxWindow: 8 * MiB, forwardTolerance: 256 * KiB, idleMs: 60_000 },
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
  return { store, cache, metrics, open: cachedReaderFactory(cache, direct) };
}
