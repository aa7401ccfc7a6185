// The metadata side of a VFS over the in-memory store, for unit tests: metadata kept for an hour,
// so that only an invalidation or a write makes the VFS look at the bucket again.
import type { Logger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics/metrics.js';
import type { ObjectStore } from '../../src/store/types.js';
import { Namespace } from '../../src/vfs/namespace.js';

export function hourNamespace(store: ObjectStore, metrics: Metrics, log: Logger): Namespace {
  return new Namespace(
    store,
    {
      prefix: '',
      statTtl: 3_600_000,
      negativeTtl: 3_600_000,
      listTtl: 3_600_000,
      statCacheBytes: 1 << 20,
      typeCacheBytes: 1 << 20,
      listCacheBytes: 1 << 20,
    },
    metrics,
    log,
  );
}
