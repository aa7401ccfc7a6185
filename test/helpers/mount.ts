// Mounts bucketfs in a child process against a test server and tears it down without leaving a
// mount behind: SIGTERM, then fusermount -u, then lazy unmount as the last resort.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './proc.js';
import type { TestServer } from './servers.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BUCKETFS_BIN = path.join(REPO_ROOT, 'bin', 'bucketfs');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A clean environment for bucketfs children: the machine's CA-bundle variables are left out. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    // Never pick up the developer's real AWS/GCP config by accident.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  };
}

/** The command-line flags that point bucketfs at a test server. */
export function serverArgs(server: TestServer): string[] {
  return server.kind === 's3'
    ? ['--endpoint-url', server.endpoint, '--force-path-style', '--region', server.region || 'us-east-1']
    : ['--endpoint-url', server.endpoint, '--no-sign-request'];
}

export function bucketUri(server: TestServer, bucket: string, prefix = ''): string {
  return `${server.kind === 's3' ? 's3' : 'gs'}://${bucket}/${prefix}`;
}

export interface Mounted {
  mountpoint: string;
  metricsPort: number;
  logFile: string;
  child: ChildProcess;
  /** Store requests of one kind (HEAD, LIST, GET) counted by the daemon so far. */
  requests(kind: string): Promise<number>;
  metricsText(): Promise<string>;
  /** Unmounts and checks nothing is left mounted. Safe to call twice. */
  unmount(): Promise<void>;
}

export async function isMounted(mountpoint: string): Promise<boolean> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text.split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

export interface MountOpts {
  prefix?: string;
  args?: string[];
  env?: Record<string, string>;
  mountpoint?: string;
}

export async function mountBucket(server: TestServer, bucket: string, opts: MountOpts = {}): Promise<Mounted> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-test-'));
  const mountpoint = opts.mountpoint ?? path.join(work, 'mnt');
  await mkdir(mountpoint, { recursive: true });
  const metricsPort = await freePort();
  const logFile = path.join(work, 'daemon.log');
  const args = [
    BUCKETFS_BIN,
    '--foreground',
    ...serverArgs(server),
    '--metrics-port',
    String(metricsPort),
    '--log-level',
    'debug',
    '--log-file',
    logFile,
    ...(opts.args ?? []),
    bucketUri(server, bucket, opts.prefix),
    mountpoint,
  ];
  const child = spawn(process.execPath, args, {
    env: cleanEnv({ ...server.env, ...opts.env, BUCKETFS_READY_FD: '3' }),
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr += d;
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let report = '';
  pipe.setEncoding('utf8');
  pipe.on('data', (d: string) => {
    report += d;
  });
  await Promise.race([once(pipe, 'end'), once(child, 'exit')]);
  if (report.trim() !== 'ready') {
    child.kill('SIGKILL');
    await forceUnmount(mountpoint);
    throw new Error(`bucketfs did not mount: ${report.trim() || stderr.trim() || 'no report'} (log: ${logFile})`);
  }

  const metricsText = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    return res.text();
  };
  let unmounted: Promise<void> | undefined;
  return {
    mountpoint,
    metricsPort,
    logFile,
    child,
    metricsText,
    async requests(kind: string): Promise<number> {
      return sumMetric(await metricsText(), 'bucketfs_store_requests_total', { kind });
    },
    unmount(): Promise<void> {
      unmounted ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit');
          child.kill('SIGTERM');
          const ok = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
          if (!ok) child.kill('SIGKILL');
        }
        await forceUnmount(mountpoint);
        if (await isMounted(mountpoint)) throw new Error(`${mountpoint} is still mounted after teardown`);
        // BUCKETFS_TEST_KEEP_LOGS=DIR keeps each mount's daemon log there (debugging a failure).
        const keep = process.env.BUCKETFS_TEST_KEEP_LOGS;
        if (keep) await cp(logFile, path.join(keep, `${path.basename(work)}.log`)).catch(() => {});
        await rm(work, { recursive: true, force: true }).catch(() => {});
      })();
      return unmounted;
    },
  };
}

/** fusermount -u, then lazy unmount, for whatever a test or a crash left behind. */
export async function forceUnmount(mountpoint: string): Promise<void> {
  if (!(await isMounted(mountpoint))) return;
  await run('fusermount', ['-u', mountpoint]);
  if (await isMounted(mountpoint)) await run('fusermount', ['-uz', mountpoint]);
}

/**
 * Drops the kernel's clean cached pages (root), as memory pressure would: the next read of a file
 * that an open kept in the page cache (src/vfs/page-cache.ts) comes to bucketfs again.
 */
export function dropPageCache(): Promise<void> {
  return writeFile('/proc/sys/vm/drop_caches', '1');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface RequestCounts {
  HEAD: number;
  LIST: number;
  GET: number;
}

/** Store requests the daemon has counted so far, by kind (one /metrics scrape). */
export async function requestCounts(m: Mounted): Promise<RequestCounts> {
  const text = await m.metricsText();
  const c = (kind: string) => sumMetric(text, 'bucketfs_store_requests_total', { kind });
  return { HEAD: c('HEAD'), LIST: c('LIST'), GET: c('GET') };
}

/**
 * Waits until every file-cache download the daemon has started has ended (its copy complete on disk,
 * or failed), as its own counters say: what a test that reads a file and then counts requests needs,
 * however long the machine takes. Bounded: a download that never ends fails the test.
 */
export async function downloadsSettled(m: Mounted, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await m.metricsText();
    const n = (outcome: string) => sumMetric(text, 'bucketfs_file_cache_downloads_total', { outcome });
    if (n('started') === n('complete') + n('failed')) return;
    if (Date.now() > deadline) throw new Error(`file-cache downloads still running after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Sums a Prometheus counter over the series whose labels include `match`. */
export function sumMetric(text: string, name: string, match: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (!Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
