// The one declarative table of options. It generates the command-line flags (cli/args.ts), the
// YAML keys accepted by --config-file (config/resolve.ts) and docs/configuration.md
// (scripts/gen-config-doc.ts), so --help, the file format and the docs cannot drift.
import { MAX_READ_BYTES } from './fuse-requests.js';

export type OptionType = 'string' | 'number' | 'boolean';
export type Backend = 's3' | 'gcs' | 'both';

export interface OptionSpec {
  /** Flag name without dashes; also the config key the code reads. */
  flag: string;
  /** Dotted YAML path (section.key); undefined = command line only. */
  yaml?: string;
  type: OptionType;
  /** Default value, or undefined when unset means "decide at run time" (described in `defaultText`). */
  default?: string | number | boolean;
  defaultText?: string;
  choices?: readonly string[];
  /** Numbers: allowed range (inclusive). -1 is allowed separately via `allowMinusOne`. */
  min?: number;
  max?: number;
  allowMinusOne?: boolean;
  /** Numbers that must be whole. */
  integer?: boolean;
  backend: Backend;
  group: string;
  describe: string;
  alias?: string;
}

const G_STORE = 'Bucket and endpoint:';
const G_AUTH = 'Credentials:';
const G_MOUNT = 'Mount:';
const G_META = 'Metadata caches:';
const G_NET = 'Requests:';
const G_LOG = 'Logging and metrics:';
const G_READ = 'Read throughput:';
const G_FILE = 'File cache:';

const TABLE = [
  // Bucket and endpoint
  {
    flag: 'prefix',
    yaml: 'prefix',
    type: 'string',
    backend: 'both',
    group: G_STORE,
    describe: 'Mount only keys under this prefix (a trailing "/" is added). Also given as s3://bucket/prefix/.',
  },
  {
    flag: 'endpoint-url',
    yaml: 'endpoint-url',
    type: 'string',
    backend: 'both',
    group: G_STORE,
    describe:
      'Store endpoint, e.g. http://127.0.0.1:9000 for MinIO or a GCS emulator. Default: AWS S3 for the region; for gs://, STORAGE_EMULATOR_HOST or Google Cloud Storage.',
  },
  {
    flag: 'region',
    yaml: 's3.region',
    type: 'string',
    defaultText: 'AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1',
    backend: 's3',
    group: G_STORE,
    describe: 'AWS region of the bucket.',
  },
  {
    flag: 'force-path-style',
    yaml: 's3.force-path-style',
    type: 'boolean',
    default: false,
    backend: 's3',
    group: G_STORE,
    describe: 'Address the bucket as endpoint/bucket rather than bucket.endpoint (most S3-compatible servers).',
  },
  // Credentials
  {
    flag: 'profile',
    yaml: 's3.profile',
    type: 'string',
    backend: 's3',
    group: G_AUTH,
    describe: 'Named profile from ~/.aws/config and ~/.aws/credentials. Default: the standard AWS credential chain.',
  },
  {
    flag: 'no-sign-request',
    yaml: 'no-sign-request',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_AUTH,
    describe: 'Send anonymous requests (public buckets, emulators without auth).',
  },
  {
    flag: 'key-file',
    yaml: 'gcs.key-file',
    type: 'string',
    backend: 'gcs',
    group: G_AUTH,
    describe: 'Service-account JSON key file. Default: Application Default Credentials.',
  },
  {
    flag: 'project-id',
    yaml: 'gcs.project-id',
    type: 'string',
    backend: 'gcs',
    group: G_AUTH,
    describe: 'Google Cloud project (rarely needed: buckets are global).',
  },
  // Mount
  {
    flag: 'read-only',
    yaml: 'read-only',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    describe: 'Mount read-only: every change answers EROFS (also -o ro).',
  },
  {
    flag: 'allow-delete',
    yaml: 'write.allow-delete',
    type: 'boolean',
    default: true,
    backend: 'both',
    group: G_MOUNT,
    describe: 'Accepted for mount-s3 command lines: bucketfs deletes (rm, rmdir) unless --read-only. Cannot be false.',
  },
  {
    flag: 'allow-overwrite',
    yaml: 'write.allow-overwrite',
    type: 'boolean',
    default: true,
    backend: 'both',
    group: G_MOUNT,
    describe:
      'Accepted for mount-s3 command lines: bucketfs overwrites existing files unless --read-only. Cannot be false.',
  },
  {
    flag: 'write-part-size',
    yaml: 'write.part-size-mb',
    type: 'number',
    default: 8,
    min: 5,
    max: 5120,
    backend: 'both',
    group: G_MOUNT,
    describe:
      'Part size of uploads in MiB; a file up to one part is one PUT. Grown for files that would need more than 10,000 parts.',
  },
  {
    flag: 'write-parts-in-flight',
    yaml: 'write.parts-in-flight',
    type: 'number',
    integer: true,
    default: 8,
    min: 1,
    max: 64,
    backend: 'both',
    group: G_MOUNT,
    describe:
      "Parts of one file's upload sent at once (S3; a GCS resumable upload takes them one after another). Each holds a part of memory.",
  },
  {
    flag: 'write-staging-max-mb',
    yaml: 'write.staging-max-mb',
    type: 'number',
    min: 1,
    defaultText: 'no bound but the disk',
    backend: 'both',
    group: G_MOUNT,
    describe: 'Bytes, in MiB, that files open for writing may stage on local disk at once; a write past it is ENOSPC.',
  },
  {
    flag: 'rename-dir-limit',
    yaml: 'write.rename-dir-limit',
    type: 'number',
    integer: true,
    min: 0,
    default: 1000,
    backend: 'both',
    group: G_MOUNT,
    describe:
      'Largest directory (objects under it) that rename moves, object by object; past it rename is EXDEV and mv copies instead. 0: never.',
  },
  {
    flag: 'uid',
    yaml: 'file-system.uid',
    type: 'number',
    integer: true,
    min: 0,
    max: 4294967294,
    defaultText: 'the uid running bucketfs',
    backend: 'both',
    group: G_MOUNT,
    describe: 'Owner of every file and directory.',
  },
  {
    flag: 'gid',
    yaml: 'file-system.gid',
    type: 'number',
    integer: true,
    min: 0,
    max: 4294967294,
    defaultText: 'the gid running bucketfs',
    backend: 'both',
    group: G_MOUNT,
    describe: 'Group of every file and directory.',
  },
  {
    flag: 'file-mode',
    yaml: 'file-system.file-mode',
    type: 'string',
    default: '0644',
    backend: 'both',
    group: G_MOUNT,
    describe: 'Permission bits of files, in octal.',
  },
  {
    flag: 'dir-mode',
    yaml: 'file-system.dir-mode',
    type: 'string',
    default: '0755',
    backend: 'both',
    group: G_MOUNT,
    describe: 'Permission bits of directories, in octal.',
  },
  {
    flag: 'allow-other',
    yaml: 'file-system.allow-other',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    describe: 'Let other users access the mount (needs user_allow_other in /etc/fuse.conf unless root).',
  },
  {
    flag: 'allow-root',
    yaml: 'file-system.allow-root',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    describe: 'Let root access the mount as well as the owner.',
  },
  {
    flag: 'auto-unmount',
    yaml: 'file-system.auto-unmount',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    describe:
      'Have fusermount remove the kernel mount when the daemon dies, however it dies (kill -9, OOM), instead of leaving a dead mount for the next bucketfs to clear.',
  },
  {
    flag: 'direct-io',
    yaml: 'file-system.direct-io',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    describe:
      "Bypass the kernel's page cache (FUSE direct_io; Mountpoint's default without a cache): every read reaches bucketfs, and cold reads skip filling the page cache, faster where that is costly (docs/benchmarks.md). Re-reads are not cached by the kernel; shared mmap works from Linux 6.6 (ENODEV before).",
  },
  {
    flag: 'kernel-read-ahead-kb',
    yaml: 'file-system.kernel-read-ahead-kb',
    type: 'number',
    // A window of one request: the kernel then sends sequential reads in requests of MAX_READ_BYTES.
    default: MAX_READ_BYTES / 1024,
    integer: true,
    min: 0,
    max: 65536,
    backend: 'both',
    group: G_MOUNT,
    describe:
      "The kernel's read-ahead window for this mount, in KiB (/sys/class/bdi/DEV/read_ahead_kb; needs root, otherwise one warning and the kernel's 128). At 1024 the kernel asks for sequential data in 1 MiB FUSE reads, eight times fewer round trips than at 128. 0 leaves the kernel's setting alone.",
  },
  {
    flag: 'event-loop-nice',
    yaml: 'file-system.event-loop-nice',
    type: 'number',
    default: -15,
    integer: true,
    min: -20,
    max: 0,
    backend: 'both',
    group: G_MOUNT,
    describe:
      "Nice value of the one thread that answers every FUSE request (Node's event loop), set once mounted; lower runs it sooner when the machine is busy, so readers queue less behind it. That thread only: bucketfs's other threads and the readers keep theirs. Needs root (or CAP_SYS_NICE), otherwise one info line. 0 leaves it alone.",
  },
  {
    flag: 'foreground',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    alias: 'f',
    describe: 'Stay in the foreground; unmount on SIGINT/SIGTERM. Default: return once mounted, daemon runs on.',
  },
  {
    flag: 'fuse-op-timeout',
    yaml: 'file-system.fuse-op-timeout-secs',
    type: 'number',
    min: 1,
    max: 86400,
    defaultText: 'max-attempts × request-timeout + backoff + 30 s',
    backend: 'both',
    group: G_MOUNT,
    describe: 'Seconds after which a FUSE operation still waiting answers ETIMEDOUT.',
  },
  {
    flag: 'debug-fuse',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_MOUNT,
    describe: 'Log every FUSE operation at debug level and pass -o debug to libfuse.',
  },
  {
    flag: 'config-file',
    type: 'string',
    backend: 'both',
    group: G_MOUNT,
    describe: 'YAML file of options (see docs/configuration.md); command-line flags override it.',
  },
  // Metadata caches
  {
    flag: 'metadata-ttl',
    type: 'string',
    backend: 'both',
    group: G_META,
    describe:
      'mount-s3 style alias: seconds, "indefinite" (-1) or "minimal" (0); sets both --stat-cache-ttl and --list-cache-ttl.',
  },
  {
    flag: 'stat-cache-ttl',
    yaml: 'metadata-cache.ttl-secs',
    type: 'number',
    integer: true,
    default: 60,
    min: 0,
    allowMinusOne: true,
    backend: 'both',
    group: G_META,
    describe: 'Seconds object metadata and file/dir types are trusted. 0 = revalidate every time, -1 = never expire.',
  },
  {
    flag: 'negative-ttl',
    yaml: 'metadata-cache.negative-ttl-secs',
    type: 'number',
    integer: true,
    default: 5,
    min: 0,
    allowMinusOne: true,
    backend: 'both',
    group: G_META,
    describe: 'Seconds a name found missing stays missing without asking again. 0 = off, -1 = never expire.',
  },
  {
    flag: 'stat-cache-max-size-mb',
    yaml: 'metadata-cache.stat-cache-max-size-mb',
    type: 'number',
    default: 32,
    min: 0,
    allowMinusOne: true,
    backend: 'both',
    group: G_META,
    describe: 'Memory bound of the stat cache in MiB (LRU beyond it). -1 = unbounded.',
  },
  {
    flag: 'type-cache-max-size-mb',
    yaml: 'metadata-cache.type-cache-max-size-mb',
    type: 'number',
    default: 4,
    min: 0,
    allowMinusOne: true,
    backend: 'both',
    group: G_META,
    describe: 'Memory bound of the type cache (name -> file | dir | absent) in MiB. -1 = unbounded.',
  },
  {
    flag: 'list-cache-ttl',
    yaml: 'list-cache.ttl-secs',
    type: 'number',
    integer: true,
    default: 60,
    min: 0,
    allowMinusOne: true,
    backend: 'both',
    group: G_META,
    describe: 'Seconds a directory listing is reused. 0 = list every time, -1 = never expire.',
  },
  {
    flag: 'list-cache-max-size-mb',
    yaml: 'list-cache.max-size-mb',
    type: 'number',
    default: 64,
    min: 0,
    allowMinusOne: true,
    backend: 'both',
    group: G_META,
    describe: 'Memory bound of cached listings in MiB. -1 = unbounded.',
  },
  {
    flag: 'warm-metadata',
    yaml: 'metadata-cache.warm-on-mount',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_META,
    describe:
      'At mount, fill the metadata caches in the background with flat listings (1,000 keys a request) instead of one LIST per directory. Readers never wait for it.',
  },
  // Read throughput
  {
    flag: 'read-part-size',
    yaml: 'read.part-size-mb',
    type: 'number',
    default: 8,
    min: 0.0625,
    max: 1024,
    backend: 'both',
    group: G_READ,
    describe: 'Largest single ranged GET, in MiB. Sequential reads are fetched ahead in parts of this size.',
  },
  {
    flag: 'max-concurrency',
    yaml: 'read.max-concurrency',
    type: 'number',
    integer: true,
    default: 16,
    min: 1,
    max: 1024,
    backend: 'both',
    group: G_READ,
    describe: 'Ranged GETs in flight at once for the whole mount.',
  },
  {
    flag: 'prefetch-max-mb',
    yaml: 'read.prefetch-max-mb',
    type: 'number',
    default: 128,
    min: 0,
    max: 65536,
    backend: 'both',
    group: G_READ,
    describe:
      'Most bytes fetched ahead of one sequential reader, in MiB. The window starts at 1.125 MiB and doubles as reads stay sequential.',
  },
  {
    flag: 'memory-limit-mb',
    yaml: 'read.memory-limit-mb',
    type: 'number',
    min: 16,
    max: 1048576,
    defaultText: 'a quarter of RAM',
    backend: 'both',
    group: G_READ,
    describe:
      'Bound on read buffers for the whole mount, in MiB, however many files are open: read-ahead shrinks to stay under it.',
  },
  // File cache
  {
    flag: 'cache-dir',
    yaml: 'cache-dir',
    type: 'string',
    backend: 'both',
    group: G_FILE,
    describe:
      'Keep whole objects on local disk in this directory (created 0700) and serve reads from there: a second epoch sends no request. Kept across remounts; one bucketfs process per directory. Default: off.',
  },
  {
    flag: 'file-cache-max-size-mb',
    yaml: 'file-cache.max-size-mb',
    type: 'number',
    min: 1,
    allowMinusOne: true,
    defaultText: 'no bound, but 5% of the file system is left free',
    backend: 'both',
    group: G_FILE,
    describe:
      'Bound on cached bytes in MiB; least recently used objects are evicted beyond it. -1 = no bound, but stop before the disk fills (1% left free).',
  },
  {
    flag: 'file-cache-cache-file-for-range-read',
    yaml: 'file-cache.cache-file-for-range-read',
    type: 'boolean',
    default: false,
    backend: 'both',
    group: G_FILE,
    describe:
      'Also cache an object whose first read is past its first part (random access). Off: such a handle reads straight from the store.',
  },
  {
    flag: 'file-cache-enable-parallel-downloads',
    yaml: 'file-cache.enable-parallel-downloads',
    type: 'boolean',
    default: true,
    backend: 'both',
    group: G_FILE,
    describe:
      'Download objects larger than the threshold with several ranged GETs in flight (within --max-concurrency).',
  },
  {
    flag: 'file-cache-parallel-downloads-per-file',
    yaml: 'file-cache.parallel-downloads-per-file',
    type: 'number',
    integer: true,
    default: 16,
    min: 1,
    max: 64,
    backend: 'both',
    group: G_FILE,
    describe: 'Ranged GETs in flight for one large object being cached (as gcsfuse; all within --max-concurrency).',
  },
  {
    flag: 'file-cache-parallel-download-threshold-mb',
    yaml: 'file-cache.parallel-download-threshold-mb',
    type: 'number',
    default: 64,
    min: 0,
    backend: 'both',
    group: G_FILE,
    describe: 'Objects larger than this (MiB) are cached with parallel downloads.',
  },
  {
    flag: 'file-cache-read-ahead-files',
    yaml: 'file-cache.read-ahead-files',
    type: 'number',
    integer: true,
    default: 4,
    min: 0,
    max: 64,
    backend: 'both',
    group: G_FILE,
    describe:
      'When the files of a directory are opened in numbered order (f1, f2, ...), read this many next files ahead from the cache on disk (never from the store); 0: off.',
  },
  {
    flag: 'file-cache-passthrough-max-mb',
    yaml: 'file-cache.passthrough-max-mb',
    type: 'number',
    default: 4,
    min: 0,
    backend: 'both',
    group: G_FILE,
    describe:
      'Cached files up to this size (MiB) are read by the kernel straight from their copy on disk (FUSE passthrough: Linux 6.9+, root), verified whole at their first open of a mount and again whenever their file changed; 0: off.',
  },
  {
    flag: 'file-cache-passthrough-kept',
    yaml: 'file-cache.passthrough-kept',
    type: 'number',
    integer: true,
    default: 16384,
    min: 0,
    backend: 'both',
    group: G_FILE,
    describe:
      'Copies in passthrough stay registered with the kernel after their last close, up to this many (least recently closed out), so the next open of the same version needs no disk access; a change to a kept copy on disk is seen (inotify) and it is verified whole again. 0: register at every open.',
  },
  // Requests
  {
    flag: 'max-attempts',
    yaml: 'requests.max-attempts',
    type: 'number',
    integer: true,
    default: 6,
    min: 1,
    max: 100,
    backend: 'both',
    group: G_NET,
    describe: 'Attempts per store request (throttling, 5xx, resets, timeouts) before the operation fails with EIO.',
  },
  {
    flag: 'request-timeout',
    yaml: 'requests.timeout-secs',
    type: 'number',
    default: 30,
    min: 0.1,
    max: 3600,
    backend: 'both',
    group: G_NET,
    describe: 'Seconds one request may wait to connect or between bytes before it is retried.',
  },
  // Logging and metrics
  {
    flag: 'log-level',
    yaml: 'logging.level',
    type: 'string',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    backend: 'both',
    group: G_LOG,
    describe: 'Log level.',
  },
  {
    flag: 'log-format',
    yaml: 'logging.format',
    type: 'string',
    default: 'json',
    choices: ['json', 'pretty'],
    backend: 'both',
    group: G_LOG,
    describe: 'Log format: one JSON object per line, or human-readable.',
  },
  {
    flag: 'log-file',
    yaml: 'logging.file',
    type: 'string',
    defaultText: 'stderr in the foreground; discarded by a background daemon',
    backend: 'both',
    group: G_LOG,
    describe: 'Append logs to this file.',
  },
  {
    flag: 'metrics-port',
    yaml: 'metrics.port',
    type: 'number',
    integer: true,
    min: 0,
    max: 65535,
    backend: 'both',
    group: G_LOG,
    describe: 'Serve Prometheus /metrics and /healthz on this port (0 = any free port). Default: off.',
  },
  {
    flag: 'metrics-host',
    yaml: 'metrics.host',
    type: 'string',
    default: '127.0.0.1',
    backend: 'both',
    group: G_LOG,
    describe: 'Address the metrics server listens on.',
  },
] as const satisfies readonly OptionSpec[];

export const OPTIONS: readonly OptionSpec[] = TABLE;

type Spec = (typeof TABLE)[number];
/** Every option's flag name: a misspelt one is a type error wherever an option is named. */
export type OptionFlag = Spec['flag'];
/** The flags of options of one type. */
export type FlagOf<T extends OptionType> = Extract<Spec, { type: T }>['flag'];
interface TypeOf {
  string: string;
  number: number;
  boolean: boolean;
}
/** Option values by flag, each of its option's type; absent when not given. */
export type OptionValues = { -readonly [F in OptionFlag]?: TypeOf[Extract<Spec, { flag: F }>['type']] };

/** An option's default from the table (for code outside the daemon that must match it, such as the benchmark). */
export function optionDefault(flag: OptionFlag): OptionSpec['default'] {
  const spec = OPTIONS.find((o) => o.flag === flag);
  if (!spec) throw new Error(`no option --${flag}`);
  return spec.default;
}
