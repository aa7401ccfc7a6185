// The FUSE clients of the peer comparison (npm run bench:peers), each mounted cold with its own
// documented high-throughput settings for the workload: bucketfs itself (s3:// and gs://), rclone
// mount, s3fs-fuse and gcsfuse. Every mount is stopped and unmounted by its stop(), and at cleanup
// if the run dies first; nothing here touches a mount it did not make.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanEnv } from '../test/helpers/mount.js';
import { type Daemon, startFuseDaemon, startMountProcess, WORK } from './procs.js';

export type ClientName = 'bucketfs' | 'rclone' | 's3fs' | 'bucketfs-gs' | 'gcsfuse';

export interface Store {
  kind: 's3' | 'gcs';
  /** Where the client sends its requests (MinIO, toxiproxy, or the counting proxy). */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface MountRequest {
  /** An empty directory for the client's own disk cache (epoch workloads); none: streaming. */
  cacheDir?: string;
  /** A label for the mountpoint and log names. */
  tag: string;
  /** bucketfs only: flags for its node process (a CPU profile). */
  nodeFlags?: string[];
}

export interface PeerBins {
  rclone: string;
  s3fs: string;
  gcsfuse: string;
}

/** What each client runs with, for the report: the flags beyond the store's address. */
export function describeFlags(name: ClientName, cached: boolean): string {
  return flags(name, cached, '<cache>').join(' ');
}

/**
 * The settings each client's documentation gives for high read throughput (cited in
 * docs/benchmarks.md), plus a read-only mount and, for the epoch workloads, its disk cache.
 */
function flags(name: ClientName, cached: boolean, cacheDir: string): string[] {
  switch (name) {
    case 'bucketfs':
    case 'bucketfs-gs':
      // Its defaults are its high-throughput settings; the file cache is --cache-dir.
      return cached ? ['--cache-dir', cacheDir] : [];
    case 'rclone':
      return [
        '--read-only',
        // S3 modtimes from the listing, not a HEAD per object (rclone's S3 docs).
        '--use-server-modtime',
        // "VFS Chunked Reading": parallel chunk streams for high-performance object stores.
        '--vfs-read-chunk-streams',
        '16',
        '--vfs-read-chunk-size',
        '4M',
        '--buffer-size',
        '16M',
        '--dir-cache-time',
        '1h',
        '--attr-timeout',
        '1h',
        '--vfs-cache-mode',
        cached ? 'full' : 'off',
        ...(cached ? ['--cache-dir', cacheDir, '--vfs-cache-max-size', '100G', '--vfs-cache-max-age', '24h'] : []),
      ];
    case 's3fs':
      return [
        'ro',
        // Parallel ranged GETs per file, a large stat cache kept for the run, negative lookups cached.
        'parallel_count=16',
        'multireq_max=32',
        'max_stat_cache_size=200000',
        'stat_cache_expire=3600',
        'enable_noobj_cache',
        ...(cached ? [`use_cache=${cacheDir}`] : []),
      ].flatMap((o) => ['-o', o]);
    case 'gcsfuse':
      return [
        '-o',
        'ro',
        '--implicit-dirs',
        // Cache metadata for the whole run (the ML-training settings of its performance guide).
        '--metadata-cache-ttl-secs',
        '-1',
        '--stat-cache-max-size-mb',
        '-1',
        '--type-cache-max-size-mb',
        '-1',
        '--kernel-list-cache-ttl-secs',
        '-1',
        // Asynchronous parallel prefetch for sequential reads (its CLI reference); the file cache
        // takes over that job in the epoch workloads.
        ...(cached ? [] : ['--enable-buffered-read']),
        ...(cached
          ? [
              '--cache-dir',
              cacheDir,
              '--file-cache-max-size-mb',
              '-1',
              '--file-cache-cache-file-for-range-read',
              '--file-cache-enable-parallel-downloads',
            ]
          : []),
      ];
  }
}

/** Mounts `name` on a fresh mountpoint under the run's work dir. */
export async function mountClient(
  name: ClientName,
  store: Store,
  req: MountRequest,
  bins: PeerBins,
  bucketfsBin: string,
): Promise<Daemon> {
  const dir = path.join(WORK, 'mnt', `${name}-${req.tag}`);
  const logs = path.join(WORK, 'logs');
  mkdirSync(logs, { recursive: true });
  const log = path.join(logs, `${name}-${req.tag}.log`);
  const cached = req.cacheDir !== undefined;
  const f = flags(name, cached, req.cacheDir ?? '');
  if (req.cacheDir) mkdirSync(req.cacheDir, { recursive: true });
  const home = path.join(WORK, 'home', name);
  mkdirSync(home, { recursive: true });
  switch (name) {
    case 'bucketfs':
    case 'bucketfs-gs': {
      const s3 = store.kind === 's3';
      const env: Record<string, string> = s3
        ? {
            AWS_ACCESS_KEY_ID: store.accessKeyId,
            AWS_SECRET_ACCESS_KEY: store.secretAccessKey,
            AWS_REGION: store.region,
          }
        : {};
      return startFuseDaemon(
        `${name} ${req.tag}`,
        [
          ...(req.nodeFlags ?? []),
          bucketfsBin,
          '--foreground',
          '--endpoint-url',
          store.endpoint,
          ...(s3 ? ['--force-path-style', '--region', store.region] : ['--no-sign-request']),
          '--log-file',
          log,
          ...f,
          `${s3 ? 's3' : 'gs'}://${store.bucket}/`,
          dir,
        ],
        cleanEnv({ ...env, BUCKETFS_READY_FD: '3' }),
        dir,
        `${log}.out`,
      );
    }
    case 'rclone':
      return startMountProcess(
        `rclone ${req.tag}`,
        bins.rclone,
        [
          'mount',
          `:s3:${store.bucket}`,
          dir,
          '--config',
          '/dev/null',
          '--s3-provider',
          'Minio',
          '--s3-endpoint',
          store.endpoint,
          '--s3-access-key-id',
          store.accessKeyId,
          '--s3-secret-access-key',
          store.secretAccessKey,
          '--s3-region',
          store.region,
          '--s3-force-path-style=true',
          '--log-file',
          log,
          '--log-level',
          'NOTICE',
          ...f,
        ],
        { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
        dir,
        `${log}.out`,
        'mounted',
      );
    case 's3fs': {
      const passwd = path.join(home, 'passwd-s3fs');
      writeFileSync(passwd, `${store.accessKeyId}:${store.secretAccessKey}\n`, { mode: 0o600 });
      return startMountProcess(
        `s3fs ${req.tag}`,
        bins.s3fs,
        [
          store.bucket,
          dir,
          '-f',
          '-o',
          `url=${store.endpoint}`,
          '-o',
          'use_path_request_style',
          '-o',
          `endpoint=${store.region}`,
          '-o',
          `passwd_file=${passwd}`,
          '-o',
          'dbglevel=warn',
          ...f,
        ],
        { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
        dir,
        log,
        'mounted',
      );
    }
    case 'gcsfuse':
      return startMountProcess(
        `gcsfuse ${req.tag}`,
        bins.gcsfuse,
        [
          '--foreground',
          '--custom-endpoint',
          `${store.endpoint}/storage/v1/`,
          '--anonymous-access',
          // The emulator has no hierarchical-namespace (gRPC control) API: without this the
          // mount retries its storage-layout call forever.
          '--enable-hns=false',
          '--log-file',
          log,
          '--log-severity',
          'warning',
          ...f,
          store.bucket,
          dir,
        ],
        { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
        dir,
        `${log}.out`,
        'mounted',
      );
  }
}
