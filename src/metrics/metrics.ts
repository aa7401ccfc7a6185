// Every metric bucketfs exports, defined once. Rooms receive the Metrics object and only
// increment; nothing else creates metrics. One registry per mount (not prom-client's global
// one) so unit tests can build as many mounts as they like.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** libfuse's worker threads, as the FUSE glue counts them (src/fuse/native.ts). */
export interface FuseThreadStats {
  /** Slots allocated: the most worker threads ever busy at once. */
  slots: number;
  /** Worker threads that ran an operation, whether on a new slot or on one taken over. */
  started: number;
}

export class Metrics {
  readonly registry = new Registry();

  readonly storeRequests = new Counter({
    name: 'bucketfs_store_requests_total',
    help: 'Requests sent to the object store, by kind (HEAD, LIST, GET, PUT, DELETE, COPY, UPLOAD_START, UPLOAD_PART, UPLOAD_COMPLETE, UPLOAD_ABORT) and outcome (ok or an error code)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly storeRequestSeconds = new Histogram({
    name: 'bucketfs_store_request_duration_seconds',
    help: 'Latency of one store request (one attempt), by kind',
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly storeBytesIn = new Counter({
    name: 'bucketfs_store_bytes_in_total',
    help: 'Object bytes received from the store',
    registers: [this.registry],
  });
  readonly storeBytesOut = new Counter({
    name: 'bucketfs_store_bytes_out_total',
    help: 'Object bytes sent to the store (PUTs and upload parts, every attempt)',
    registers: [this.registry],
  });
  readonly storeRetries = new Counter({
    name: 'bucketfs_store_retries_total',
    help: 'Store requests retried after a retryable error, by kind and error code',
    labelNames: ['kind', 'code'] as const,
    registers: [this.registry],
  });
  readonly fuseOps = new Counter({
    name: 'bucketfs_fuse_ops_total',
    help: 'FUSE operations handled, by op and result (ok or an errno name)',
    labelNames: ['op', 'result'] as const,
    registers: [this.registry],
  });
  readonly fuseOpSeconds = new Histogram({
    name: 'bucketfs_fuse_op_duration_seconds',
    help: 'Time to answer one FUSE operation, by op',
    labelNames: ['op'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly bytesServed = new Counter({
    name: 'bucketfs_read_bytes_served_total',
    help: 'Bytes returned to FUSE read calls',
    registers: [this.registry],
  });
  readonly bytesWritten = new Counter({
    name: 'bucketfs_write_bytes_total',
    help: 'Bytes taken by FUSE write calls',
    registers: [this.registry],
  });
  readonly uploads = new Counter({
    name: 'bucketfs_uploads_total',
    help: 'Files uploaded at flush, fsync or close, by outcome (ok or an error code)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly stagedFiles = new Gauge({
    name: 'bucketfs_staged_files',
    help: 'Files being written whose bytes are staged on local disk',
    registers: [this.registry],
  });
  readonly stagedBytes = new Gauge({
    name: 'bucketfs_staged_bytes',
    help: 'Bytes staged on local disk by files open for writing (bounded by --write-staging-max-mb)',
    registers: [this.registry],
  });
  readonly stagedFilesFound = new Gauge({
    name: 'bucketfs_staged_files_found',
    help: 'Staged files found at start-up, left by an earlier run whose uploads did not finish (kept for recovery)',
    registers: [this.registry],
  });
  readonly pageCacheOpens = new Counter({
    name: 'bucketfs_page_cache_opens_total',
    help: "Opens that kept the kernel's cached pages of the file (use=keep: the version of the path's last open) or bypassed them (use=bypass: another version open), or left them to a cached copy the kernel reads itself (use=passthrough)",
    labelNames: ['use'] as const,
    registers: [this.registry],
  });
  readonly openHandles = new Gauge({
    name: 'bucketfs_open_handles',
    help: 'Open file handles',
    registers: [this.registry],
  });
  readonly cacheEvents = new Counter({
    name: 'bucketfs_cache_events_total',
    help: 'Cache lookups and evictions, by cache (stat, type, list, file; negative entries live in type) and event (hit, miss, evict)',
    labelNames: ['cache', 'event'] as const,
    registers: [this.registry],
  });
  readonly cacheEntries = new Gauge({
    name: 'bucketfs_cache_entries',
    help: 'Entries held, by cache',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });
  readonly cacheBytes = new Gauge({
    name: 'bucketfs_cache_bytes',
    help: 'Estimated bytes held, by cache',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });

  // Read path
  readonly prefetchWindowBytes = new Histogram({
    name: 'bucketfs_prefetch_window_bytes',
    help: 'Read-ahead window when a part is issued',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map((m) => m * 1024 * 1024),
    registers: [this.registry],
  });
  readonly prefetchResets = new Counter({
    name: 'bucketfs_prefetch_resets_total',
    help: 'Read-ahead streams dropped by a seek',
    registers: [this.registry],
  });
  readonly readBufferBytes = new Gauge({
    name: 'bucketfs_read_buffer_bytes',
    help: 'Bytes of read buffers reserved in the memory budget (--memory-limit-mb)',
    registers: [this.registry],
  });
  readonly readPoolBytes = new Gauge({
    name: 'bucketfs_read_pool_bytes',
    help: 'Bytes of free part buffers kept for reuse (reserved plus pooled stays within --memory-limit-mb)',
    registers: [this.registry],
  });

  // File cache (--cache-dir); hits, misses, evictions, entries and bytes are cache="file" above.
  readonly fileCacheBytesServed = new Counter({
    name: 'bucketfs_file_cache_bytes_served_total',
    help: 'Bytes returned to FUSE reads from the on-disk file cache',
    registers: [this.registry],
  });
  readonly fileCacheDiskReadBytes = new Counter({
    name: 'bucketfs_file_cache_disk_read_bytes_total',
    help: 'Bytes read from the file cache on disk, read-ahead included (well above bytes served: blocks read twice or read ahead in vain)',
    registers: [this.registry],
  });
  readonly fileCacheReadAheadFiles = new Counter({
    name: 'bucketfs_file_cache_read_ahead_files_total',
    help: 'Cached files read from disk ahead of their open, the files of their directory being opened in numbered order',
    registers: [this.registry],
  });
  readonly fileCacheDownloads = new Counter({
    name: 'bucketfs_file_cache_downloads_total',
    help: 'Whole-object download jobs of the file cache, by outcome (started, complete, failed; adopted: a file written through this mount taken as its new version, nothing downloaded)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly fileCachePassthroughChecks = new Counter({
    name: 'bucketfs_file_cache_passthrough_checks_total',
    help: 'Cached copies checked at an open in passthrough, by check: full (every block read and verified), unchanged (verified in full earlier by this mount, and its file not changed since) or kept (still registered from an earlier open, no change to its file seen)',
    labelNames: ['check'] as const,
    registers: [this.registry],
  });
  readonly fileCachePassthroughKept = new Gauge({
    name: 'bucketfs_file_cache_passthrough_kept',
    help: 'Cached copies kept registered with the kernel as backing files between opens (--file-cache-passthrough-kept)',
    registers: [this.registry],
  });
  readonly fileCacheCorrupt = new Counter({
    name: 'bucketfs_file_cache_corrupt_total',
    help: 'Cached blocks that failed their checksum or came back short; the entry is dropped and fetched again',
    registers: [this.registry],
  });

  /** The mount's FUSE thread counts (src/fuse/native.ts), once mounted on the patched fuse-native. */
  fuseThreads: (() => FuseThreadStats | undefined) | undefined;
  readonly fuseThreadsStarted = new Counter({
    name: 'bucketfs_fuse_threads_started_total',
    help: 'libfuse worker threads that ran an operation (libfuse ends one whenever more than ten are idle and starts one whenever none is)',
    registers: [this.registry],
    collect: () => {
      const s = this.fuseThreads?.();
      if (!s) return;
      this.fuseThreadsStarted.reset();
      this.fuseThreadsStarted.inc(s.started);
    },
  });
  readonly fuseThreadSlots = new Gauge({
    name: 'bucketfs_fuse_thread_slots',
    help: 'Per-thread slots fuse-native holds (a libuv handle each); ended threads hand theirs on, so this is the most threads ever busy at once',
    registers: [this.registry],
    collect: () => {
      const s = this.fuseThreads?.();
      if (s) this.fuseThreadSlots.set(s.slots);
    },
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'bucketfs_' });
  }

  /** Sum of store requests of one kind, any outcome (tests and logs use it). */
  async requestCount(kind: string): Promise<number> {
    const m = await this.storeRequests.get();
    return m.values.filter((v) => v.labels.kind === kind).reduce((s, v) => s + v.value, 0);
  }
}
