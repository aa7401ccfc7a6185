// The single typed Config: defaults <- YAML file (--config-file) <- command-line flags.
// Values are validated once here, against the option table, and the result is frozen.
import { readFile, realpath } from 'node:fs/promises';
import { totalmem } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BucketfsError, describe, ErrorCodes, invalidArgument } from '../errors.js';
import type { LogFormat, LogLevel } from '../log.js';
import { type FlagOf, OPTIONS, type OptionFlag, type OptionSpec, type OptionValues } from './options.js';
import { DEFAULT_RETRY, type RetryPolicy, worstCaseBackoffMs } from './retry-policy.js';
import { parseBucketUri } from './uri.js';

/** A TTL in milliseconds: 0 = revalidate every use, Infinity = never expire. */
export type Ttl = number;

export interface Config {
  backend: 's3' | 'gcs';
  bucket: string;
  /** Key prefix of the mount root: '' or ending with '/'. */
  prefix: string;
  mountpoint: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  profile?: string;
  anonymous: boolean;
  keyFile?: string;
  projectId?: string;

  readOnly: boolean;
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
  allowOther: boolean;
  /** Kernel mount restrictions given in -o lists (noexec, nosuid, nodev). */
  kernelFlags: string[];
  /** FUSE direct_io: no kernel page cache for file data. */
  directIo: boolean;
  /** The kernel's read-ahead window for the mount in KiB; 0 leaves it alone (src/fuse/kernel-read-ahead.ts). */
  kernelReadAheadKb: number;
  /** Nice value of the event loop's thread once mounted; 0 leaves it alone (src/fuse/event-loop-priority.ts). */
  eventLoopNice: number;
  allowRoot: boolean;
  /** libfuse's auto_unmount: fusermount unmounts when the daemon's /dev/fuse descriptor closes. */
  autoUnmount: boolean;
  foreground: boolean;
  fuseOpTimeoutMs: number;
  debugFuse: boolean;

  statTtl: Ttl;
  negativeTtl: Ttl;
  listTtl: Ttl;
  /** Byte bounds of the metadata caches; Infinity = unbounded. */
  statCacheBytes: number;
  typeCacheBytes: number;
  listCacheBytes: number;
  warmMetadata: boolean;

  readPartBytes: number;
  /** Upload part size asked for (--write-part-size). */
  writePartBytes: number;
  /** Bytes open files may stage (--write-staging-max-mb); Infinity: the disk's room. */
  maxStagedBytes: number;
  /** Parts of one file's upload in flight (--write-parts-in-flight). */
  writePartsInFlight: number;
  /** Objects under a directory that rename moves one by one (--rename-dir-limit). */
  renameDirLimit: number;
  maxConcurrency: number;
  prefetchMaxBytes: number;
  memoryLimitBytes: number;

  /** The file cache is on when this is set (absolute path). */
  cacheDir?: string;
  /** Bound on cached bytes; Infinity = bounded by free space only. */
  fileCacheMaxBytes: number;
  /** Share of the cache's file system always left free. */
  fileCacheMinFreeRatio: number;
  fileCacheForRangeRead: boolean;
  /** Ranged GETs in flight for one large object being cached (1 = sequential). */
  fileCacheParallelDownloads: number;
  fileCacheParallelThresholdBytes: number;
  /** Cached files up to this size are opened in passthrough (src/vfs/passthrough.ts); 0: never. */
  fileCachePassthroughMaxBytes: number;
  /** Backing files kept registered between opens (src/backing/registry.ts); 0: none. */
  fileCachePassthroughKept: number;
  /** Next files (numbered order) whose cached copies are read ahead from disk; 0 = off. */
  fileCacheReadAheadFiles: number;

  retry: RetryPolicy;
  requestTimeoutMs: number;

  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
  metricsPort?: number;
  metricsHost: string;
}

const MiB = 1024 * 1024;

type Value = string | number | boolean;
/** Values by flag, typed per option (options.ts): reading a flag that does not exist fails to compile. */
type Raw = OptionValues;

const BY_FLAG = new Map(OPTIONS.map((o) => [o.flag, o]));

/** Stores a value already checked against its option's spec. */
function put(raw: Raw, spec: OptionSpec, v: Value): void {
  (raw as Record<string, Value>)[spec.flag] = v;
}
const BY_YAML = new Map(OPTIONS.filter((o) => o.yaml).map((o) => [o.yaml as string, o]));

/** Reads --config-file into flag-keyed values; unknown keys and wrong types are errors. */
export async function loadConfigFile(file: string): Promise<Raw> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw invalidArgument('--config-file', `cannot read ${file}: ${describe(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw invalidArgument('--config-file', `${file} is not valid YAML: ${describe(err).split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw invalidArgument('--config-file', `${file} must be a mapping of keys to values`);
  }
  const out: Raw = {};
  const walk = (obj: Record<string, unknown>, at: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const key = at ? `${at}.${k}` : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
        walk(v as Record<string, unknown>, key);
        continue;
      }
      const spec = BY_YAML.get(key);
      if (!spec) throw invalidArgument('--config-file', `${file}: unknown key "${key}" (see docs/configuration.md)`);
      if (typeof v !== spec.type) {
        throw invalidArgument('--config-file', `${file}: "${key}" must be a ${spec.type}, got ${JSON.stringify(v)}`);
      }
      put(out, spec, v as Value);
    }
  };
  walk(doc as Record<string, unknown>, '');
  return out;
}

function checkValue(spec: OptionSpec, v: string | number | boolean, where: string): void {
  const name = `${where}${spec.flag}`;
  if (spec.type === 'number') {
    if (typeof v !== 'number' || Number.isNaN(v)) throw invalidArgument(name, `must be a number, got "${v}"`);
    if (spec.allowMinusOne && v === -1) return;
    if (spec.integer && !Number.isInteger(v)) throw invalidArgument(name, `must be a whole number, got ${v}`);
    if (spec.min !== undefined && v < spec.min) {
      const extra = spec.allowMinusOne ? ' (or -1 for no limit)' : '';
      throw invalidArgument(name, `must be at least ${spec.min}${extra}, got ${v}`);
    }
    if (spec.max !== undefined && v > spec.max) throw invalidArgument(name, `must be at most ${spec.max}, got ${v}`);
  }
  if (spec.choices && !spec.choices.includes(String(v))) {
    throw invalidArgument(name, `must be one of ${spec.choices.join(', ')}; got "${v}"`);
  }
}

function parseMode(option: string, v: string): number {
  if (!/^0?[0-7]{3,4}$/.test(v))
    throw invalidArgument(`--${option}`, `must be octal permission bits like 0644, got "${v}"`);
  return Number.parseInt(v, 8) & 0o7777;
}

function ttlMs(secs: number): Ttl {
  return secs === -1 ? Number.POSITIVE_INFINITY : secs * 1000;
}

function sizeBytes(mb: number): number {
  return mb === -1 ? Number.POSITIVE_INFINITY : Math.floor(mb * 1024 * 1024);
}

/** mount-s3's --metadata-ttl: seconds | indefinite | minimal. */
function parseMetadataTtl(v: string): number {
  if (v === 'indefinite') return -1;
  if (v === 'minimal') return 0;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
    throw invalidArgument('--metadata-ttl', `must be seconds, "indefinite" or "minimal"; got "${v}"`);
  }
  return n;
}

export interface ResolveInput {
  bucketUri: string;
  mountpoint: string;
  /** Only the flags the user actually gave (no defaults filled in), by flag name. */
  flags: Readonly<Record<string, Value | undefined>>;
  env?: NodeJS.ProcessEnv;
  /** From -o lists: noexec, nosuid, nodev. */
  kernelFlags?: string[];
}

/**
 * The mountpoint as the kernel lists it in /proc/self/mountinfo, where the daemon looks for its own
 * mount (to notice an external unmount, to find its device): absolute, symlinks resolved. A path
 * that cannot be resolved (missing, a dead mount) stays as given, for checkMountpoint to report.
 */
async function realMountpoint(given: string): Promise<string> {
  const abs = path.resolve(given);
  return realpath(abs).catch(() => abs);
}

export async function resolveConfig(input: ResolveInput): Promise<Readonly<Config>> {
  const env = input.env ?? process.env;
  const configFile = input.flags['config-file' satisfies OptionFlag];
  const fileValues: Raw = typeof configFile === 'string' ? await loadConfigFile(configFile) : {};
  const raw: Raw = {};
  for (const spec of OPTIONS) if (spec.default !== undefined) put(raw, spec, spec.default);
  for (const [k, v] of Object.entries(fileValues)) {
    const spec = BY_FLAG.get(k) as OptionSpec;
    checkValue(spec, v as Value, 'config file: ');
    put(raw, spec, v as Value);
  }
  /** Flags the user gave, checked against their spec (unknown names were refused by the parser). */
  const given: Raw = {};
  for (const [k, v] of Object.entries(input.flags)) {
    if (v === undefined) continue;
    const spec = BY_FLAG.get(k);
    if (!spec) continue;
    checkValue(spec, v, '--');
    put(raw, spec, v);
    put(given, spec, v);
  }
  if (typeof raw['metadata-ttl'] === 'string') {
    const secs = parseMetadataTtl(raw['metadata-ttl']);
    // The alias sets both TTLs unless the specific flag was also given.
    if (given['stat-cache-ttl'] === undefined) raw['stat-cache-ttl'] = secs;
    if (given['list-cache-ttl'] === undefined) raw['list-cache-ttl'] = secs;
  }

  const uri = parseBucketUri(input.bucketUri);
  let prefix = uri.prefix;
  if (typeof raw.prefix === 'string' && raw.prefix !== '') {
    if (prefix)
      throw invalidArgument('--prefix', 'give the prefix either in the bucket URI or with --prefix, not both');
    prefix = raw.prefix.replace(/^\/+/, '');
    if (!prefix.endsWith('/')) prefix += '/';
  }

  const str = (k: FlagOf<'string'>): string | undefined => {
    const v = raw[k];
    return v === undefined || v === '' ? undefined : v;
  };
  /** A number that has a default (or was checked as given before this is read). */
  const num = (k: FlagOf<'number'>): number => raw[k] as number;
  const bool = (k: FlagOf<'boolean'>): boolean => raw[k] === true;

  const retry: RetryPolicy = { ...DEFAULT_RETRY, maxAttempts: num('max-attempts') };
  const requestTimeoutMs = Math.round(num('request-timeout') * 1000);
  const fuseOpTimeoutMs =
    raw['fuse-op-timeout'] !== undefined
      ? Math.round(num('fuse-op-timeout') * 1000)
      : // Long enough for the store layer to exhaust its own retries and answer EIO itself: every
        // attempt timing out, the backoff between them, and a margin for waiting on a free slot.
        retry.maxAttempts * requestTimeoutMs + worstCaseBackoffMs(retry) + 30_000;

  const config: Config = {
    backend: uri.backend,
    bucket: uri.bucket,
    prefix,
    mountpoint: await realMountpoint(input.mountpoint),
    endpoint: str('endpoint-url'),
    region: str('region') ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: bool('force-path-style'),
    profile: str('profile'),
    anonymous: bool('no-sign-request'),
    keyFile: str('key-file'),
    projectId: str('project-id'),
    readOnly: bool('read-only'),
    uid: raw.uid !== undefined ? num('uid') : (process.getuid?.() ?? 0),
    gid: raw.gid !== undefined ? num('gid') : (process.getgid?.() ?? 0),
    fileMode: parseMode('file-mode', String(raw['file-mode'])),
    dirMode: parseMode('dir-mode', String(raw['dir-mode'])),
    allowOther: bool('allow-other'),
    kernelFlags: input.kernelFlags ?? [],
    directIo: bool('direct-io'),
    kernelReadAheadKb: num('kernel-read-ahead-kb'),
    eventLoopNice: num('event-loop-nice'),
    allowRoot: bool('allow-root'),
    autoUnmount: bool('auto-unmount'),
    foreground: bool('foreground'),
    fuseOpTimeoutMs,
    debugFuse: bool('debug-fuse'),
    statTtl: ttlMs(num('stat-cache-ttl')),
    negativeTtl: ttlMs(num('negative-ttl')),
    listTtl: ttlMs(num('list-cache-ttl')),
    statCacheBytes: sizeBytes(num('stat-cache-max-size-mb')),
    typeCacheBytes: sizeBytes(num('type-cache-max-size-mb')),
    listCacheBytes: sizeBytes(num('list-cache-max-size-mb')),
    warmMetadata: bool('warm-metadata'),
    readPartBytes: Math.floor(num('read-part-size') * MiB),
    writePartBytes: Math.floor(num('write-part-size') * MiB),
    maxStagedBytes:
      raw['write-staging-max-mb'] !== undefined
        ? Math.floor(num('write-staging-max-mb') * MiB)
        : Number.POSITIVE_INFINITY,
    renameDirLimit: num('rename-dir-limit'),
    writePartsInFlight: num('write-parts-in-flight'),
    maxConcurrency: num('max-concurrency'),
    prefetchMaxBytes: Math.floor(num('prefetch-max-mb') * MiB),
    memoryLimitBytes:
      raw['memory-limit-mb'] !== undefined ? Math.floor(num('memory-limit-mb') * MiB) : Math.floor(totalmem() / 4),
    cacheDir: str('cache-dir') === undefined ? undefined : path.resolve(str('cache-dir') as string),
    fileCacheMaxBytes:
      raw['file-cache-max-size-mb'] !== undefined ? sizeBytes(num('file-cache-max-size-mb')) : Number.POSITIVE_INFINITY,
    // Default: leave 5% free, as the issue asks of an unset bound; with a bound or -1, never fill the disk.
    fileCacheMinFreeRatio: raw['file-cache-max-size-mb'] !== undefined ? 0.01 : 0.05,
    fileCacheForRangeRead: bool('file-cache-cache-file-for-range-read'),
    fileCacheParallelDownloads: bool('file-cache-enable-parallel-downloads')
      ? num('file-cache-parallel-downloads-per-file')
      : 1,
    fileCacheParallelThresholdBytes: Math.floor(num('file-cache-parallel-download-threshold-mb') * MiB),
    fileCachePassthroughMaxBytes: Math.floor(num('file-cache-passthrough-max-mb') * MiB),
    fileCachePassthroughKept: num('file-cache-passthrough-kept'),
    fileCacheReadAheadFiles: num('file-cache-read-ahead-files'),
    retry,
    requestTimeoutMs,
    logLevel: raw['log-level'] as LogLevel,
    logFormat: raw['log-format'] as LogFormat,
    logFile: str('log-file'),
    metricsPort: raw['metrics-port'] !== undefined ? num('metrics-port') : undefined,
    metricsHost: String(raw['metrics-host']),
  };
  for (const flag of ['allow-delete', 'allow-overwrite'] as const satisfies OptionFlag[]) {
    if (raw[flag] === false) {
      throw invalidArgument(
        `--${flag}`,
        'bucketfs always allows this on a writable mount; use --read-only to refuse every change',
      );
    }
  }
  if (config.allowOther && config.allowRoot) {
    throw invalidArgument('--allow-root', 'cannot be combined with --allow-other (allow-other already includes root)');
  }
  if (config.backend === 'gcs') {
    for (const flag of ['region', 'profile', 'force-path-style'] as const satisfies OptionFlag[]) {
      if (given[flag] !== undefined || fileValues[flag] !== undefined) {
        throw invalidArgument(`--${flag}`, 'applies to s3:// buckets only');
      }
    }
  } else if (config.keyFile || config.projectId) {
    throw invalidArgument(config.keyFile ? '--key-file' : '--project-id', 'applies to gs:// buckets only');
  }
  return Object.freeze(config);
}

export function isConfigError(err: unknown): boolean {
  return err instanceof BucketfsError && err.code === ErrorCodes.InvalidArgument;
}
