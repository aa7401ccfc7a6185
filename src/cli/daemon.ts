// The mount process: builds store, caches, VFS and FUSE from a Config, mounts, reports
// readiness, and unmounts cleanly on SIGINT/SIGTERM or when someone else unmounts it.
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { cachedReaderFactory } from '../cache/file/cached-reader.js';
import { FileCache } from '../cache/file/file-cache.js';
import { cacheCopySource } from '../cache/file/verified-copy.js';
import type { Config } from '../config/config.js';
import { FuseMount } from '../fuse/mount.js';
import type { Logger } from '../log.js';
import { MemoryBudget } from '../memory/budget.js';
import { Metrics } from '../metrics/metrics.js';
import { type MetricsServer, startMetricsServer } from '../metrics/server.js';
import { createReaderFactory } from '../read/prefetcher.js';
import { RangeDownloader } from '../read/range-downloader.js';
import { createStore } from '../store/index.js';
import { Namespace } from '../vfs/namespace.js';
import { PassthroughOpens } from '../vfs/passthrough.js';
import { Vfs, type VfsWriting } from '../vfs/vfs.js';
import { warmMetadata } from '../vfs/warmer.js';
import { Writes } from '../vfs/writes.js';
import { recoverStaging } from '../write/recovery.js';
import { checkBucket, checkMountpoint, mountedPaths } from './preflight.js';

/** First request of a sequential stream: small, so the first byte of a small file comes fast (as Mountpoint). */
const FIRST_REQUEST_BYTES = 1024 * 1024 + 128 * 1024;
/** Forward skips within this distance of the stream are read through rather than treated as seeks. */
const FORWARD_SKIP_BYTES = 1024 * 1024;
/**
 * Reads this far past where another handle's stream of the object began fetch only their own
 * bytes: the kernel's read-ahead runs on past where an application reading its share stops.
 */
const SIBLING_SLACK_BYTES = 4 * 1024 * 1024;
/** Read buffers of a handle unused this long go back to the budget. */
const IDLE_HANDLE_MS = 10_000;

/** Kernel cache timeouts in seconds from a TTL in ms (Infinity -> a year; libfuse takes a double). */
function kernelTimeout(ttlMs: number): number {
  return Number.isFinite(ttlMs) ? ttlMs / 1000 : 365 * 24 * 3600;
}

export interface Running {
  mount: FuseMount;
  metrics: Metrics;
  metricsServer?: MetricsServer;
  stop(reason: string): Promise<void>;
}

/** Mounts; `onStopped` runs once the mount is gone, whoever unmounted it. */
export async function startMount(config: Readonly<Config>, log: Logger, onStopped: () => void): Promise<Running> {
  await checkMountpoint(config.mountpoint, log);
  const metrics = new Metrics({ processMetrics: true });
  // Data GETs plus metadata requests (lookups send two at once) without queueing for a socket.
  const maxSockets = config.maxConcurrency + Math.max(32, availableParallelism() * 8);
  // The bucket check gets a short retry budget: a wrong endpoint should fail in seconds.
  const probe = await createStore(
    config,
    { ...config.retry, maxAttempts: Math.min(2, config.retry.maxAttempts) },
    4,
    metrics,
    log,
  );
  await checkBucket(probe, config);

  const store = await createStore(config, config.retry, maxSockets, metrics, log);
  const ns = new Namespace(store, config, metrics, log);
  const downloader = new RangeDownloader(store, config.maxConcurrency);
  const budget = new MemoryBudget(config.memoryLimitBytes);
  const direct = createReaderFactory(
    downloader,
    budget,
    {
      partSize: config.readPartBytes,
      initialWindow: Math.min(config.readPartBytes, FIRST_REQUEST_BYTES),
      maxWindow: Math.max(config.prefetchMaxBytes, config.readPartBytes),
      forwardTolerance: FORWARD_SKIP_BYTES,
      siblingSlack: SIBLING_SLACK_BYTES,
      idleMs: IDLE_HANDLE_MS,
    },
    metrics,
  );
  const fileCache = config.cacheDir
    ? await FileCache.open(
        {
          dir: config.cacheDir,
          backend: config.backend,
          bucket: config.bucket,
          maxBytes: config.fileCacheMaxBytes,
          minFreeRatio: config.fileCacheMinFreeRatio,
          cacheForRangeRead: config.fileCacheForRangeRead,
          parallelThresholdBytes: config.fileCacheParallelThresholdBytes,
          parallelDownloads: config.fileCacheParallelDownloads,
          chunkBytes: config.readPartBytes,
          readAheadFiles: config.fileCacheReadAheadFiles,
          owner: {
            mountpoint: config.mountpoint,
            isMounted: async (where) => (await mountedPaths()).has(where),
          },
        },
        downloader,
        budget,
        metrics,
        log,
      )
    : undefined;
  const readers = fileCache ? cachedReaderFactory(fileCache, direct) : direct;
  const passthroughMax = config.fileCachePassthroughMaxBytes;
  // The mount's backing files exist once it is mounted; opens come only after that.
  let mount: FuseMount | undefined;
  const backingFiles = () => mount?.backingFiles;
  const passthrough =
    fileCache && passthroughMax > 0
      ? new PassthroughOpens(
          cacheCopySource(fileCache, passthroughMax, config.fileCachePassthroughKept, backingFiles, metrics, log),
          backingFiles,
          log,
        )
      : undefined;
  const staging = config.readOnly ? undefined : stagingDir(config);
  if (staging) await recoverStaging(staging, store, metrics, log);
  const writing: VfsWriting | undefined = staging
    ? {
        store,
        writes: new Writes(
          store,
          ns,
          {
            stagingDir: staging,
            maxStagedBytes: config.maxStagedBytes,
            upload: { partBytes: config.writePartBytes, concurrency: config.writePartsInFlight },
          },
          budget,
          metrics,
          log,
          fileCache,
        ),
      }
    : undefined;
  const vfs = new Vfs(ns, readers, config, metrics, log, passthrough, writing);
  let metricsServer: MetricsServer | undefined;
  try {
    if (config.metricsPort !== undefined)
      metricsServer = await startMetricsServer(metrics, config.metricsHost, config.metricsPort);
  } catch (err) {
    await fileCache?.close(); // its lock, so the next try can take the directory
    throw err;
  }
  mount = new FuseMount(
    vfs,
    {
      mountpoint: config.mountpoint,
      readOnly: config.readOnly,
      fsName: `${config.backend === 'gcs' ? 'gs' : 's3'}://${config.bucket}/${config.prefix}`,
      allowOther: config.allowOther,
      allowRoot: config.allowRoot,
      autoUnmount: config.autoUnmount,
      directIo: config.directIo,
      passthrough: passthrough !== undefined,
      kernelReadAheadKb: config.kernelReadAheadKb,
      eventLoopNice: config.eventLoopNice,
      kernelFlags: config.kernelFlags,
      attrTimeoutSecs: kernelTimeout(config.statTtl),
      entryTimeoutSecs: kernelTimeout(config.statTtl),
      negativeTimeoutSecs: kernelTimeout(config.negativeTtl),
      opTimeoutMs: config.fuseOpTimeoutMs,
      debug: config.debugFuse,
    },
    metrics,
    log,
  );
  try {
    await mount.mount();
  } catch (err) {
    await metricsServer?.close();
    await fileCache?.close();
    throw err;
  }
  const background = new AbortController();
  if (config.warmMetadata) void warmMetadata(store, ns, log, background.signal);
  log.info(
    { bucket: config.bucket, prefix: config.prefix, mountpoint: config.mountpoint, metricsPort: metricsServer?.port },
    'mounted',
  );

  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'unmounting');
      clearInterval(watch);
      background.abort();
      if ((await mountedPaths()).has(config.mountpoint)) await mount.unmount();
      // Unmounted by someone else with files still open (umount -l): what they wrote goes up now.
      else await vfs.closeAll();
      await fileCache?.close();
      await metricsServer?.close();
      onStopped();
    })();
    return stopping;
  };
  // libfuse's thread ends silently when someone runs fusermount -u; notice and exit with it.
  const watch = setInterval(() => {
    void mountedPaths().then((paths) => {
      if (!paths.has(config.mountpoint)) void stop('unmounted externally');
    });
  }, 1000);
  const running: Running = { mount, metrics, stop };
  if (metricsServer) running.metricsServer = metricsServer;
  return running;
}

/**
 * Where files being written keep their bytes: under the cache directory when there is one (its lock
 * makes it this mount's alone), else a directory in the temp dir named after the mountpoint (one
 * live mount per mountpoint). Either way the next start on the same place finds what a crash left.
 */
function stagingDir(config: Readonly<Config>): string {
  if (config.cacheDir) return path.join(config.cacheDir, 'staging');
  const name = config.mountpoint.replace(/[^A-Za-z0-9._-]+/g, '_');
  return path.join(tmpdir(), `bucketfs-${process.getuid?.() ?? 'user'}-staging`, name);
}
