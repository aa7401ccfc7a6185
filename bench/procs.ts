// Process plumbing for the benchmark: children that are always cleaned up (pid files under the
// run's work dir, so bench/run.sh can sweep them after a crash), FUSE mounts that are always
// unmounted, CPU accounting from /proc, and the toxiproxy shaper. Touches only what it started.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { forceUnmount, freePort, isMounted, sumMetric } from '../test/helpers/mount.js';

export const WORK = process.env.BENCH_WORK ?? '';
/** The snapshot bench/run.sh copied (dist/, bin/, bench/, package.json, node_modules link). */
export const BENCH_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The compiled bench/ directory of that snapshot. */
export const DIST_BENCH = fileURLToPath(new URL('.', import.meta.url));
/** The network shaped like S3 (toxiproxy): latency per response, bandwidth per connection. */
export const S3_SHAPE = { latencyMs: 20, bytesPerSec: 100e6 };

/** A timer that never keeps the process alive (timeouts raced against events stay pending). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Cleanups run last-in first-out, once, on success, failure or a signal. */
const cleanups: { label: string; fn: () => Promise<void> }[] = [];
let stopping = false;

export function onCleanup(label: string, fn: () => Promise<void>): () => void {
  const entry = { label, fn };
  cleanups.push(entry);
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

export async function cleanupAll(): Promise<void> {
  stopping = true;
  while (cleanups.length) {
    const c = cleanups.pop();
    if (!c) break;
    await c.fn().catch((err: Error) => process.stderr.write(`bench: cleanup ${c.label}: ${err.message}\n`));
  }
}

export function assertRunning(): void {
  if (stopping) throw new Error('benchmark is stopping');
}

/** Records a child's pid where bench/run.sh's trap can find it if this process dies. */
export function recordPid(pid: number | undefined, label: string): void {
  if (!WORK || pid === undefined) return;
  mkdirSync(path.join(WORK, 'pids'), { recursive: true });
  writeFileSync(path.join(WORK, 'pids', String(pid)), `${label}\n`);
}

export function forgetPid(pid: number | undefined): void {
  if (!WORK || pid === undefined) return;
  rmSync(path.join(WORK, 'pids', String(pid)), { force: true });
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (alive(child)) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const ok = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!ok && alive(child)) {
      child.kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
    }
  }
  forgetPid(child.pid);
}

export interface RunOut {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a bounded command: killed after `timeoutMs`, killed at cleanup if still running. */
export async function runBounded(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs: number; label: string },
): Promise<RunOut> {
  assertRunning();
  const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  recordPid(child.pid, opts.label);
  const drop = onCleanup(opts.label, () => stopChild(child, 2000));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  drop();
  forgetPid(child.pid);
  return { code, stdout, stderr };
}

export interface Daemon {
  child: ChildProcess;
  mountpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts a FUSE process that reports "ready" on fd 3 (bucketfs: BUCKETFS_READY_FD, ramfs:
 * BENCH_READY_FD) and unmounts on SIGTERM. Teardown always ends with nothing mounted.
 */
export function startFuseDaemon(
  label: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  mountpoint: string,
  logFile: string,
): Promise<Daemon> {
  return startMountProcess(label, process.execPath, args, env, mountpoint, logFile, 'fd3');
}

/**
 * Starts a FUSE process, `cmd args`, ready when it says "ready" on fd 3 ('fd3') or when its mount
 * shows in /proc/mounts ('mounted': clients that report nothing, as rclone, s3fs and gcsfuse).
 * Teardown (SIGTERM, then the unmount) always ends with nothing mounted.
 */
export async function startMountProcess(
  label: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  mountpoint: string,
  logFile: string,
  ready: 'fd3' | 'mounted',
): Promise<Daemon> {
  assertRunning();
  mkdirSync(mountpoint, { recursive: true });
  const log = openSync(logFile, 'a');
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', log, log, ...(ready === 'fd3' ? ['pipe' as const] : [])];
  const child = spawn(cmd, args, { env, stdio });
  closeSync(log);
  recordPid(child.pid, label);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await stopChild(child);
      await forceUnmount(mountpoint);
      if (await isMounted(mountpoint)) throw new Error(`${mountpoint} is still mounted`);
    })();
    return stopped;
  };
  const drop = onCleanup(label, stop);
  let report = '';
  if (ready === 'fd3') {
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => {
      report += d;
    });
  }
  const up = async (): Promise<boolean> => {
    if (ready === 'mounted') {
      while (alive(child) && !(await isMounted(mountpoint))) await sleep(50);
      return alive(child);
    }
    while (!report.includes('\n') && alive(child)) await sleep(20);
    return report.trim() === 'ready';
  };
  const ok = await Promise.race([up(), sleep(90_000).then(() => false)]);
  if (!ok) {
    await stop();
    drop();
    const tail = readFileSync(logFile, 'utf8').split('\n').slice(-5).join('\n');
    throw new Error(`${label} did not mount ${mountpoint}: ${report.trim() || 'no report'}\n${tail}`);
  }
  return {
    child,
    mountpoint,
    stop: async () => {
      await stop();
      drop();
    },
  };
}

/**
 * User+system CPU ticks of one process, from /proc/PID/stat; with `reaped`, also those of its
 * children that have exited and been waited for (how fio's and the SDK reader's time shows up).
 */
function procTicks(pid: number, reaped = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    const own = (f[11] ?? 0) + (f[12] ?? 0);
    return reaped ? own + (f[13] ?? 0) + (f[14] ?? 0) : own;
  } catch {
    return Number.NaN;
  }
}

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((s, x) => s + x, 0);
  return { busy: total - idle, total };
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export interface CpuUse {
  /** Per named process: percent of one core, averaged over the run. */
  procs: Record<string, number>;
  /** Whole machine: percent of all cores busy. */
  machine: number;
  /**
   * Percent of all cores used by processes this benchmark did not start (other people's work on
   * a shared machine): machine busy time minus ours (the named processes, this driver and the
   * children it reaped during the run: fio, the SDK reader).
   */
  others: number;
}

/** Starts CPU accounting for the given processes; call the result at the end of the run. */
export function cpuMeter(pids: Record<string, number | undefined>): () => CpuUse {
  const t0 = performance.now();
  const m0 = machineTicks();
  const d0 = procTicks(process.pid, true);
  const p0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, pid ? procTicks(pid) : Number.NaN]));
  return () => {
    const secs = (performance.now() - t0) / 1000;
    const m1 = machineTicks();
    const procs: Record<string, number> = {};
    let ours = procTicks(process.pid, true) - d0;
    for (const [k, pid] of Object.entries(pids)) {
      const d = pid ? procTicks(pid) - (p0[k] as number) : Number.NaN;
      if (!Number.isFinite(d)) continue;
      procs[k] = (100 * d) / CLK_TCK / secs;
      ours += d;
    }
    // /proc/stat counts USER_HZ ticks summed over all cores, like the per-process counters.
    const total = Math.max(1, m1.total - m0.total);
    const busy = m1.busy - m0.busy;
    return { procs, machine: (100 * busy) / total, others: Math.max(0, (100 * (busy - ours)) / total) };
  };
}

/** The pid of the process whose command line contains every one of `parts` (read-only scan). */
export function findPid(parts: string[]): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (parts.every((p) => cmd.includes(p))) return Number(d);
    } catch {
      // gone already
    }
  }
  return undefined;
}

/**
 * Empties the page cache (we are root), so every run starts cold in the kernel. Dirty pages are
 * written back first: drop_caches leaves them, and their writeback (the seeded objects, a file
 * cache's 2 GiB download in epoch 1) went on during the next runs, competing for the disk and the
 * CPU: the first FUSE-limit runs after seeding measured 401-512 MB/s where later ones gave 2,015,
 * and the first two epoch-2 runs were the slowest of three in every run.
 */
export function dropCaches(): void {
  spawnSync('sync', { stdio: 'ignore' });
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

export interface Shaper {
  endpoint: string;
  pid: number | undefined;
  describe: string;
  stop(): Promise<void>;
}

/**
 * toxiproxy in front of the store on 127.0.0.1: every response is delayed by `latencyMs` and
 * every TCP connection is limited to `bytesPerSec` (toxiproxy runs its toxics per connection),
 * towards the client; with `bothWays`, towards the store as well (uploads).
 */
export async function startShaper(
  bin: string,
  upstream: string,
  latencyMs: number,
  bytesPerSec: number,
  opts: { bothWays?: boolean } = {},
): Promise<Shaper> {
  assertRunning();
  const apiPort = await freePort();
  const port = await freePort();
  const up = new URL(upstream);
  const configFile = path.join(WORK, 'toxiproxy.json');
  writeFileSync(
    configFile,
    JSON.stringify([
      { name: 'store', listen: `127.0.0.1:${port}`, upstream: `${up.hostname}:${up.port}`, enabled: true },
    ]),
  );
  const log = openSync(path.join(WORK, 'toxiproxy.log'), 'a');
  const child = spawn(bin, ['-host', '127.0.0.1', '-port', String(apiPort), '-config', configFile], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LOG_LEVEL: 'warn' },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  recordPid(child.pid, 'toxiproxy');
  const drop = onCleanup('toxiproxy', () => stopChild(child, 3000));
  const api = `http://127.0.0.1:${apiPort}`;
  for (let i = 0; ; i++) {
    const ready = await fetch(`${api}/proxies`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ready) break;
    if (i > 100 || !alive(child)) throw new Error('toxiproxy did not start; see toxiproxy.log');
    await sleep(100);
  }
  const toxics = [
    {
      name: 'latency',
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
      attributes: { latency: latencyMs, jitter: 0 },
    },
    // toxiproxy's rate unit is 1,000 bytes/s (it sleeps len/rate milliseconds per chunk).
    {
      name: 'bandwidth',
      type: 'bandwidth',
      stream: 'downstream',
      toxicity: 1,
      attributes: { rate: Math.round(bytesPerSec / 1000) },
    },
    ...(opts.bothWays
      ? [
          {
            name: 'bandwidth-up',
            type: 'bandwidth',
            stream: 'upstream',
            toxicity: 1,
            attributes: { rate: Math.round(bytesPerSec / 1000) },
          },
        ]
      : []),
  ];
  for (const t of toxics) {
    const res = await fetch(`${api}/proxies/store/toxics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(t),
    });
    if (!res.ok) throw new Error(`toxiproxy: adding ${t.name}: ${res.status} ${await res.text()}`);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pid: child.pid,
    describe: `toxiproxy: +${latencyMs} ms on every response, ${bytesPerSec / 1e6} MB/s per TCP connection${opts.bothWays ? ' each way' : ''}`,
    stop: async () => {
      await stopChild(child, 3000);
      drop();
    },
  };
}

/** Polls the daemon until no file cache download is running (a stop would cancel them). */
export async function downloadsSettled(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const n = (outcome: string) => sumMetric(text, 'bucketfs_file_cache_downloads_total', { outcome });
    if (n('started') === n('complete') + n('failed')) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`file cache downloads still running after ${timeoutMs / 1000} s`);
}
