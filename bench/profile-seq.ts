// Where the daemon's time goes, repeatably: one MinIO server holding one large object
// (big/obj-0.bin, 2 GiB by default; --small N adds N files of 128 KiB in each of small/d0..d15), a
// fresh bucketfs mount per run, a fio job from bench/fio/ (seq-1t by default; also seq-4t,
// rand-1m, rand-4k, small-1, small-16; seq-4obj adds big/obj-1..3 holding the same bytes) reading from child processes, and per run: MB/s, daemon
// CPU (whole process, per thread), GETs, FUSE reads, bytes fetched ÷ bytes served, and with
// --prof the daemon's --cpu-prof self time by function and by file (--perf: a perf record). Several builds can be compared back
// to back on the same server and data (--variant), alternating round by round so machine noise
// hits them alike. As root, after npm run build:
//
//   node dist/bench/profile-seq.js [--prof] [--shaped] [--sdk] [--size-mb 2048] [--rounds 2]
//     [--workload seq-1t]... [--small N] [--epochs [--warm] [--again N]] [--cap SECS] [--variant NAME=DIST_DIR[@FLAGS]]...
//     [--args 'bucketfs flags'] [--out DIR]
//
// DIST_DIR is a tsc output dir holding src/cli/main.js (default: this repo's dist); FLAGS are extra
// bucketfs flags for that variant only, where node:FLAG is a flag for node (node:--trace-gc),
// env:NAME=VALUE sets the daemon's environment (env:UV_THREADPOOL_SIZE=4), bin launches it through
// bin/bucketfs (as installed) instead of loading DIST_DIR's main.js directly, and
// ra:KB sets the mount's kernel read-ahead (/sys/class/bdi) once mounted, cpus:LIST pins every daemon
// thread to those CPUs (taskset -a), nice:N sets every daemon thread's nice value once mounted (renice), bg:N sets the FUSE connection's max_background (fusectl). --shaped puts toxiproxy (as bench/run.sh builds it) in
// front of MinIO: +20 ms per response, 100 MB/s per connection. --epochs gives each run an empty
// --cache-dir (under --out, on the machine's disk), runs the job once unmeasured (epoch 1) on a mount
// of its own, waits for the cache's downloads and unmounts, drops the page cache, then mounts again
// on that cache and measures the job (epoch 2, after a restart: a profile holds epoch 2 only;
// --warm leaves the page cache alone, so the cache files are read from RAM: the daemon without the disk;
// --again N runs the job N more times on that mount, as the benchmark's epoch 2 does, each after
// dropping the page cache unless --warm: reported beside the measured run, not profiled apart). --sdk adds the direct-SDK rate
// (4 parallel 8 MiB GETs, bench/sdk-read.ts) to each round. Every mount is unmounted and every
// process stopped at the end, also on failure or Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { congestionThreshold } from '../src/fuse/mount.js';
import { parseMountInfo } from '../src/fuse/mountinfo.js';
import { bigFile, putMany } from '../test/helpers/data.js';
import { cleanEnv, freePort, sumMetric } from '../test/helpers/mount.js';
import { startServer } from '../test/helpers/servers.js';
import type { Spec } from './sdk-read.js';

const ROOT = process.env.BUCKETFS_ROOT ?? fileURLToPath(new URL('../../', import.meta.url));
const MiB = 1024 * 1024;
const BUCKET = 'bench';
const KEY = 'big/obj-0.bin';
/** --small N: N objects of 128 KiB in each of small/d0..d15 (bench/fio/small-1.fio, small-16.fio). */
const SMALL_DIRS = 16;
const SMALL_BYTES = 128 * 1024;
/** USER_HZ, the unit of /proc/PID/stat times (100 on Linux). */
const CLK_TCK = 100;

const { values: opt } = parseArgs({
  options: {
    variant: { type: 'string', multiple: true },
    workload: { type: 'string', multiple: true },
    'size-mb': { type: 'string', default: '2048' },
    rounds: { type: 'string', default: '1' },
    prof: { type: 'boolean', default: false },
    shaped: { type: 'boolean', default: false },
    sdk: { type: 'boolean', default: false },
    args: { type: 'string', default: '' },
    out: { type: 'string', default: '/tmp/bucketfs-prof' },
    top: { type: 'string', default: '25' },
    cap: { type: 'string', default: '60' },
    'ra-kb': { type: 'string' },
    perf: { type: 'boolean', default: false },
    small: { type: 'string', default: '0' },
    epochs: { type: 'boolean', default: false },
    warm: { type: 'boolean', default: false },
    again: { type: 'string', default: '0' },
  },
});

const OUT = path.resolve(opt.out);
mkdirSync(OUT, { recursive: true });
// bench/procs.ts reads its work dir (pid files, toxiproxy config) when it is loaded.
process.env.BENCH_WORK ??= OUT;
const procs = await import('./procs.js');

interface Variant {
  name: string;
  dist: string;
  flags: string[];
  /** From tokens node:FLAG among the flags: flags for node itself (node:--trace-gc). */
  nodeFlags: string[];
  /** From the token bin among the flags: launch through bin/bucketfs (this repo's dist). */
  viaBin: boolean;
  /** From the tokens env:NAME=VALUE among the flags: the daemon's environment. */
  env: Record<string, string>;
  /** From the token ra:KB among the flags: the kernel read-ahead the script sets after mounting. */
  readAheadKb?: number;
  /** From the token cpus:LIST among the flags: the CPUs every daemon thread is pinned to (taskset -a). */
  cpus?: string;
  /** From the token nice:N among the flags: every daemon thread's nice value, set once mounted. */
  nice?: number;
  /** From the token bg:N: the FUSE connection's max_background (fusectl) the script sets after mounting. */
  maxBackground?: number;
}

/** "A=B=C" → ["A", "B=C"]: an environment value may hold "=" itself (GLIBC_TUNABLES). */
function splitOnce(word: string, sep: string): [string, string] {
  const i = word.indexOf(sep);
  return i < 0 ? [word, ''] : [word.slice(0, i), word.slice(i + sep.length)];
}

function variants(): Variant[] {
  const specs = opt.variant?.length ? opt.variant : [`current=${path.join(ROOT, 'dist')}`];
  return specs.map((s) => {
    const [head, flags = ''] = s.split('@');
    const [name = 'current', dist = path.join(ROOT, 'dist')] = (head ?? '').split('=');
    const words = flags.split(/\s+/).filter(Boolean);
    const ra = words.find((w) => w.startsWith('ra:'));
    const cpus = words.find((w) => w.startsWith('cpus:'));
    const bg = words.find((w) => w.startsWith('bg:'));
    const nice = words.find((w) => w.startsWith('nice:'));
    // The script's own tokens; every other word is a bucketfs flag.
    const consumed = new Set([ra, cpus, bg, nice, 'bin']);
    const nodeFlags = words.filter((w) => w.startsWith('node:')).map((w) => w.slice(5));
    const env = Object.fromEntries(words.filter((w) => w.startsWith('env:')).map((w) => splitOnce(w.slice(4), '=')));
    const v: Variant = {
      name,
      dist: path.resolve(dist),
      flags: words.filter((w) => !consumed.has(w) && !w.startsWith('node:') && !w.startsWith('env:')),
      viaBin: words.includes('bin'),
      nodeFlags,
      env,
    };
    if (ra) v.readAheadKb = Number(ra.slice(3));
    if (cpus) v.cpus = cpus.slice(5);
    if (bg) v.maxBackground = Number(bg.slice(3));
    if (nice) v.nice = Number(nice.slice(5));
    return v;
  });
}

function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** User+system ticks of one thread of a process (the main thread's tid is the pid). */
function threadTicks(pid: number, tid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return (f[11] ?? 0) + (f[12] ?? 0);
  } catch {
    return Number.NaN;
  }
}

/**
 * Nanoseconds the main thread has spent runnable but waiting in the run queue for a CPU
 * (/proc/.../schedstat). A main thread that waits for a CPU while the machine is full is bounded by
 * the machine, not by its own work: the V8 profile cannot tell the two apart (it counts the wait as
 * the JS it was in).
 */
function mainThreadWaitNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ')[1]);
  } catch {
    return Number.NaN;
  }
}

/** User+system ticks of every thread of a process, by thread ("main", or comm:tid). */
function ticksByThread(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const name = Number(tid) === pid ? 'main' : `${comm}:${tid}`;
      out.set(name, (out.get(name) ?? 0) + threadTicks(pid, Number(tid)));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/**
 * Sets how many background requests (read-ahead among them) the kernel keeps in flight on a FUSE
 * connection, and the congestion threshold at 3/4 of it (experiments; root, fusectl mounted).
 */
function setMaxBackground(mnt: string, n: number): void {
  const minor = mountDevice(mnt).split(':')[1];
  const dir = `/sys/fs/fuse/connections/${minor}`;
  writeFileSync(`${dir}/max_background`, String(n));
  writeFileSync(`${dir}/congestion_threshold`, String(congestionThreshold(n)));
  log(`max_background of FUSE connection ${minor} set to ${readFileSync(`${dir}/max_background`, 'utf8').trim()}`);
}

/** The device (major:minor) mounted at `mnt`, from /proc/self/mountinfo. */
function mountDevice(mnt: string): string {
  const dev = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).get(mnt);
  if (!dev) throw new Error(`${mnt} is not in /proc/self/mountinfo`);
  return dev;
}

/** Sets the kernel read-ahead of a mount's backing device info (experiments; root only). */
function setReadAhead(mnt: string, kb: number): void {
  const dev = mountDevice(mnt);
  writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kb));
  log(`read_ahead_kb of ${dev} set to ${readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim()}`);
}

/** FUSE operations whose count and mean answer time each run reports. */
const FUSE_OPS = ['lookup', 'getattr', 'open', 'read', 'flush', 'release', 'opendir', 'readdir', 'releasedir'];

async function metrics(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return {
    fuseReads: sumMetric(text, 'bucketfs_fuse_ops_total', { op: 'read' }),
    GET: sumMetric(text, 'bucketfs_store_requests_total', { kind: 'GET' }),
    bytesIn: sumMetric(text, 'bucketfs_store_bytes_in_total'),
    bytesServed: sumMetric(text, 'bucketfs_read_bytes_served_total'),
    readSeconds: sumMetric(text, 'bucketfs_fuse_op_duration_seconds_sum', { op: 'read' }),
    diskRead: sumMetric(text, 'bucketfs_file_cache_disk_read_bytes_total'),
    filesReadAhead: sumMetric(text, 'bucketfs_file_cache_read_ahead_files_total'),
    checkedFull: sumMetric(text, 'bucketfs_file_cache_passthrough_checks_total', { check: 'full' }),
    checkedUnchanged: sumMetric(text, 'bucketfs_file_cache_passthrough_checks_total', { check: 'unchanged' }),
    checkedKept: sumMetric(text, 'bucketfs_file_cache_passthrough_checks_total', { check: 'kept' }),
    ...Object.fromEntries(
      FUSE_OPS.flatMap((op) => [
        [`n:${op}`, sumMetric(text, 'bucketfs_fuse_ops_total', { op })],
        [`s:${op}`, sumMetric(text, 'bucketfs_fuse_op_duration_seconds_sum', { op })],
      ]),
    ),
  };
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
}

interface Share {
  name: string;
  pct: number;
}

interface ProfileSummary {
  file: string;
  samples: number;
  idlePct: number;
  functions: Share[];
  files: Share[];
}

function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\//, '')
    .replace(/^.*\/node_modules\//, '')
    .replace(/^.*\/(dist|prof-dist|bfs-[^/]+)\/src\//, 'src/');
}

/** Self time by function and by file, in percent of all samples (idle included). */
function summarize(file: string, top: number): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const total = prof.samples.length || 1;
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let idle = 0;
  for (const id of prof.samples) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === '(idle)') idle++;
    const url = shortUrl(frame.url);
    const fn = `${frame.functionName || '(anonymous)'}${url ? ` ${url}:${frame.lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + 1);
    const where = url || frame.functionName;
    files.set(where, (files.get(where) ?? 0) + 1);
  }
  const rank = (m: Map<string, number>): Share[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, n]) => ({ name, pct: (100 * n) / total }));
  return { file, samples: total, idlePct: (100 * idle) / total, functions: rank(fns), files: rank(files) };
}

interface RunResult {
  variant: string;
  workload: string;
  round: number;
  mbps: number;
  seconds: number;
  daemonCpu: number;
  mainThreadCpu: number;
  /** Percent of a core per thread (V8 workers, libuv workers, libfuse threads). */
  threads: Record<string, number>;
  /** % of the run the main thread spent runnable but waiting for a CPU. */
  mainThreadWaiting: number;
  serverCpu: number;
  /** Share of the machine's CPU time (all cores) that was busy, anyone's. */
  machineBusy: number;
  gets: number;
  fuseReads: number;
  fetchedPerServed: number;
  /** With --epochs: bytes read from the disk cache, and files read ahead of their open. */
  diskRead: number;
  filesReadAhead: number;
  /** Mean time the daemon took to answer one FUSE read. */
  readMs: number;
  /** With --again: MB/s of the job run again on the same mount (page cache dropped unless --warm). */
  again: number[];
  /** Per FUSE operation: how many, and the mean time the daemon took to answer one. */
  ops: Record<string, { n: number; ms: number }>;
  profile?: ProfileSummary;
}

/**
 * As bench.ts does for the small-file jobs: list the directories first, as a data loader builds
 * its file index, so fio's stat of every file is answered from the listing. Before the meters
 * start: the listing is not the job.
 */
function listSmallDirs(workload: string, mnt: string): void {
  if (workload.startsWith('small')) for (let d = 0; d < SMALL_DIRS; d++) readdirSync(path.join(mnt, 'small', `d${d}`));
}

/** fio's read side of one job file (group reporting) against the mount. */
async function fio(
  workload: string,
  mnt: string,
  sizeBytes: number,
  cap: number,
): Promise<{ mbps: number; secs: number }> {
  const out = path.join(OUT, `fio-${workload}.json`);
  const env = {
    ...process.env,
    BENCH_DIR: mnt,
    BENCH_CAP: String(cap),
    BENCH_BIG: String(sizeBytes),
    BENCH_BIG_QUARTER: String(sizeBytes / 4),
    BENCH_RAND_SECS: String(Math.min(cap, 15)),
    BENCH_SMALL_PER_DIR: String(Number(opt.small)),
    BENCH_SMALL_DIR_BYTES: String(Number(opt.small) * SMALL_BYTES),
  };
  const r = await procs.runBounded(
    'fio',
    ['--output-format=json', `--output=${out}`, path.join(ROOT, 'bench', 'fio', `${workload}.fio`)],
    { env, timeoutMs: (cap + 120) * 1000, label: `fio ${workload}` },
  );
  if (r.code !== 0) throw new Error(`fio ${workload} exited ${r.code}: ${r.stderr.trim()}`);
  const text = readFileSync(out, 'utf8');
  const job = (JSON.parse(text.slice(text.indexOf('{'))) as { jobs: { read: { bw_bytes: number; runtime: number } }[] })
    .jobs[0];
  if (!job) throw new Error(`fio ${workload}: no job`);
  return { mbps: job.read.bw_bytes / 1e6, secs: job.read.runtime / 1000 };
}

// What bin/bucketfs does, for a main.js in any dist dir.
const LAUNCH = [
  "process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';",
  "process.env.UV_THREADPOOL_SIZE ??= '32';",
  'const { main } = await import(process.argv[1]);',
  'await main(process.argv.slice(2));',
].join(' ');

async function runBucketfs(
  v: Variant,
  workload: string,
  round: number,
  ctx: { endpoint: string; env: Record<string, string>; sizeBytes: number; serverPids: (number | undefined)[] },
): Promise<RunResult> {
  const tag = `${v.name}-${workload}-r${round}`;
  const mnt = path.join(OUT, 'mnt', tag);
  const profDir = path.join(OUT, 'prof', tag);
  rmSync(profDir, { recursive: true, force: true });
  const port = await freePort();
  const nodeFlags = opt.prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const cacheDir = opt.epochs ? path.join(OUT, 'cache', tag) : undefined;
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  // --perf-basic-prof also makes V8 write an isolate log into the working directory: keep it in OUT.
  // (perf itself needs /tmp/perf-PID.map, which stays: delete it with the perf data.)
  if (opt.perf)
    nodeFlags.push('--perf-basic-prof', `--logfile=${path.join(OUT, `${tag}.v8.log`)}`, '--no-logfile-per-isolate');
  nodeFlags.push(...v.nodeFlags);
  const start = (flags: string[], port: number, label: string) =>
    procs.startFuseDaemon(
      `bucketfs ${label}`,
      [
        ...flags,
        // 'bin' (a variant flag): through bin/bucketfs, exactly as installed; else any dist dir's main.js.
        ...(v.viaBin
          ? [path.join(ROOT, 'bin', 'bucketfs')]
          : ['--input-type=module', '-e', LAUNCH, path.join(v.dist, 'src', 'cli', 'main.js')]),
        '--foreground',
        '--endpoint-url',
        ctx.endpoint,
        '--force-path-style',
        '--region',
        'us-east-1',
        '--metrics-port',
        String(port),
        '--log-file',
        path.join(OUT, `${label}.log`),
        ...opt.args.split(/\s+/).filter(Boolean),
        ...(cacheDir ? ['--cache-dir', cacheDir] : []),
        ...v.flags,
        `s3://${BUCKET}/`,
        mnt,
      ],
      cleanEnv({ ...ctx.env, ...v.env, BUCKETFS_READY_FD: '3' }),
      mnt,
      path.join(OUT, `${label}.out`),
    );
  if (cacheDir) {
    // Epoch 1 on a mount of its own, so the measured daemon (and its profile) holds epoch 2 only:
    // it finds the cache as a restart does.
    const port1 = await freePort();
    const first = await start(v.nodeFlags, port1, `${tag}-epoch1`);
    try {
      listSmallDirs(workload, mnt);
      const e1 = await fio(workload, mnt, ctx.sizeBytes, Number(opt.cap));
      log(`${tag} epoch 1: ${e1.mbps.toFixed(0)} MB/s (not measured further)`);
      await procs.downloadsSettled(port1, 300_000);
    } finally {
      await first.stop();
    }
    // Written back either way, so the measured run does not share the machine with the writeback.
    if (opt.warm) spawnSync('sync', { stdio: 'ignore' });
    else procs.dropCaches();
  }
  const daemon = await start(nodeFlags, port, tag);
  const pid = daemon.child.pid as number;
  const ra = v.readAheadKb ?? (opt['ra-kb'] ? Number(opt['ra-kb']) : undefined);
  if (ra !== undefined) setReadAhead(mnt, ra);
  if (v.maxBackground !== undefined) setMaxBackground(mnt, v.maxBackground);
  // Threads the daemon starts later (libfuse's workers) inherit the mask of the thread that starts them.
  if (v.cpus)
    await procs.runBounded('taskset', ['-a', '-c', '-p', v.cpus, String(pid)], { timeoutMs: 10_000, label: 'taskset' });
  if (v.nice !== undefined) {
    const tids = readdirSync(`/proc/${pid}/task`);
    await procs.runBounded('renice', ['-n', String(v.nice), '-p', ...tids], { timeoutMs: 10_000, label: 'renice' });
  }
  let result: RunResult;
  try {
    listSmallDirs(workload, mnt);
    const before = await metrics(port);
    const meter = procs.cpuMeter({ daemon: pid, ...Object.fromEntries(ctx.serverPids.map((p, i) => [`s${i}`, p])) });
    const threads0 = ticksByThread(pid);
    const wait0 = mainThreadWaitNs(pid);
    const perf = opt.perf
      ? spawn(
          'perf',
          ['record', '-q', '-F', '499', '-g', '-p', String(pid), '-o', path.join(OUT, `${tag}.perf.data`)],
          {
            stdio: 'ignore',
          },
        )
      : undefined;
    const t0 = performance.now();
    const r = await fio(workload, mnt, ctx.sizeBytes, Number(opt.cap));
    const secs = (performance.now() - t0) / 1000;
    if (perf) {
      perf.kill('SIGINT');
      await once(perf, 'exit');
      log(`perf data: ${path.join(OUT, `${tag}.perf.data`)}`);
    }
    const threads1 = ticksByThread(pid);
    const wait1 = mainThreadWaitNs(pid);
    const threads: Record<string, number> = {};
    for (const [name, t] of threads1) threads[name] = (100 * (t - (threads0.get(name) ?? 0))) / CLK_TCK / secs;
    const cpu = meter();
    const after = await metrics(port);
    const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    const serverCpu = Object.entries(cpu.procs)
      .filter(([k]) => k !== 'daemon')
      .reduce((s, [, x]) => s + x, 0);
    result = {
      variant: v.name,
      workload,
      round,
      mbps: r.mbps,
      seconds: r.secs,
      daemonCpu: cpu.procs.daemon ?? Number.NaN,
      mainThreadCpu: threads.main ?? Number.NaN,
      mainThreadWaiting: (100 * (wait1 - wait0)) / 1e9 / secs,
      threads,
      serverCpu,
      machineBusy: cpu.machine,
      gets: d('GET'),
      fuseReads: d('fuseReads'),
      fetchedPerServed: d('bytesIn') / Math.max(1, d('bytesServed')),
      diskRead: d('diskRead'),
      filesReadAhead: d('filesReadAhead'),
      readMs: (1000 * d('readSeconds')) / Math.max(1, d('fuseReads')),
      ops: Object.fromEntries(
        FUSE_OPS.filter((op) => d(`n:${op}`) > 0).map((op) => [
          op,
          { n: d(`n:${op}`), ms: (1000 * d(`s:${op}`)) / d(`n:${op}`) },
        ]),
      ),
      again: [],
    };
    // The benchmark's epoch 2 runs three times on one mount: what the daemon learnt in the first
    // (copies verified, say) serves the others.
    for (let i = 0; i < Number(opt.again); i++) {
      if (!opt.warm) procs.dropCaches();
      listSmallDirs(workload, mnt);
      result.again.push((await fio(workload, mnt, ctx.sizeBytes, Number(opt.cap))).mbps);
    }
    if (result.again.length) {
      const later = await metrics(port);
      const checks = (k: string) => (later[k] ?? 0) - (after[k] ?? 0);
      log(
        `${tag} again on this mount: ${result.again.map((x) => x.toFixed(0)).join(', ')} MB/s; passthrough ` +
          `copies checked in full ${checks('checkedFull')}, known unchanged ${checks('checkedUnchanged')}, ` +
          `kept registered ${checks('checkedKept')}`,
      );
    }
  } finally {
    await daemon.stop();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  }
  if (opt.prof) {
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    const newest = files.map((f) => path.join(profDir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    if (newest) result.profile = summarize(newest, Number(opt.top));
    else log(`${tag}: no CPU profile written in ${profDir}`);
  }
  return result;
}

async function runSdk(endpoint: string, env: Record<string, string>, sizeBytes: number): Promise<number> {
  const spec: Spec = {
    mode: 'ranges',
    bucket: BUCKET,
    keys: [KEY],
    objectBytes: sizeBytes,
    rangeBytes: 8 * MiB,
    parallel: 4,
    capSeconds: Number(opt.cap),
  };
  const specFile = path.join(OUT, 'sdk-spec.json');
  writeFileSync(specFile, JSON.stringify(spec));
  const r = await procs.runBounded(
    process.execPath,
    [fileURLToPath(new URL('./sdk-read.js', import.meta.url)), specFile],
    {
      env: cleanEnv({ ...env, BENCH_ENDPOINT: endpoint }),
      timeoutMs: (Number(opt.cap) + 60) * 1000,
      label: 'sdk-read',
    },
  );
  if (r.code !== 0) throw new Error(`sdk-read exited ${r.code}: ${r.stderr.trim()}`);
  const res = JSON.parse(r.stdout) as { bytes: number; seconds: number };
  return res.bytes / res.seconds / 1e6;
}

function printRun(r: RunResult): void {
  log(
    `${r.variant} ${r.workload} round ${r.round}: ${r.mbps.toFixed(0)} MB/s in ${r.seconds.toFixed(1)} s; ` +
      `daemon ${r.daemonCpu.toFixed(0)}% of a core (main thread ${r.mainThreadCpu.toFixed(0)}%, ` +
      `waiting for a CPU ${r.mainThreadWaiting.toFixed(0)}% of the time), ` +
      `store side ${r.serverCpu.toFixed(0)}%, machine ${r.machineBusy.toFixed(0)}% busy; ${r.gets} GETs, ${r.fuseReads} FUSE reads ` +
      `(${((1000 * r.seconds) / Math.max(1, r.fuseReads)).toFixed(3)} ms apart, answered in ${r.readMs.toFixed(3)} ms), ` +
      `fetched ${r.fetchedPerServed.toFixed(2)}x served` +
      (opt.epochs ? `; disk read ${(r.diskRead / 1e6).toFixed(0)} MB, ${r.filesReadAhead} files read ahead` : ''),
  );
  const threads = Object.entries(r.threads)
    .filter(([, pct]) => pct >= 0.5)
    .sort((a, b) => b[1] - a[1]);
  log(`  daemon threads (% of a core): ${threads.map(([n, pct]) => `${n} ${pct.toFixed(0)}`).join(', ')}`);
  const ops = Object.entries(r.ops).map(([op, o]) => `${op} ${o.n} (${o.ms.toFixed(3)} ms)`);
  log(`  FUSE ops (count, mean answer time): ${ops.join(', ')}`);
  if (!r.profile) return;
  const p = r.profile;
  const lines = [
    `  profile ${p.file}: ${p.samples} samples, idle ${p.idlePct.toFixed(1)}% (busy ${(100 - p.idlePct).toFixed(1)}%)`,
    '  self time by function (% of all samples):',
    ...p.functions.map((f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.name}`),
    '  self time by file:',
    ...p.files.map((f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.name}`),
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const sizeBytes = Number(opt['size-mb']) * MiB;
  const workloads = opt.workload?.length ? opt.workload : ['seq-1t'];
  const vs = variants();
  process.once('SIGINT', () => void procs.cleanupAll().then(() => process.exit(130)));
  process.once('SIGTERM', () => void procs.cleanupAll().then(() => process.exit(143)));
  log(
    `server: MinIO with one ${opt['size-mb']} MiB object; variants ${vs.map((v) => `${v.name}=${v.dist}`).join(', ')}`,
  );
  const server = await startServer('minio');
  procs.onCleanup('minio', () => server.stop());
  const minioPid = procs.findPid(['minio', new URL(server.endpoint).host]);
  await server.createBucket(BUCKET);
  const data = await bigFile(sizeBytes);
  procs.onCleanup('data', async () => rmSync(path.dirname(data.path), { recursive: true, force: true }));
  await server.putFile(BUCKET, KEY, data.path);
  // seq-4obj reads big/obj-0..3 (bench/fio/seq-4obj.fio): the same bytes under three more keys.
  if (workloads.includes('seq-4obj')) {
    for (let i = 1; i < 4; i++) await server.putFile(BUCKET, `big/obj-${i}.bin`, data.path);
  }
  if (Number(opt.small) > 0) {
    const body = randomBytes(SMALL_BYTES);
    const keys: [string, Buffer][] = [];
    for (let d = 0; d < SMALL_DIRS; d++) {
      for (let f = 0; f < Number(opt.small); f++) keys.push([`small/d${d}/f${f}`, body]);
    }
    await putMany(server, BUCKET, keys, 32);
  }
  let endpoint = server.endpoint;
  let shaperPid: number | undefined;
  if (opt.shaped) {
    const bin = path.join(os.homedir(), '.cache', 'bucketfs', 'tools', 'toxiproxy-v2.5.0', 'toxiproxy-server');
    const shaper = await procs.startShaper(bin, server.endpoint, 20, 100e6);
    endpoint = shaper.endpoint;
    shaperPid = shaper.pid;
  }
  const results: RunResult[] = [];
  const sdk: number[] = [];
  for (let round = 1; round <= Number(opt.rounds); round++) {
    if (opt.sdk) {
      const mbps = await runSdk(endpoint, server.env, sizeBytes);
      sdk.push(mbps);
      log(`direct SDK (4 parallel 8 MiB GETs) round ${round}: ${mbps.toFixed(0)} MB/s`);
    }
    for (const w of workloads) {
      // Alternate the order each round so neither variant always runs on a warmer machine.
      const order = round % 2 === 1 ? vs : [...vs].reverse();
      for (const v of order) {
        const r = await runBucketfs(v, w, round, {
          endpoint,
          env: server.env,
          sizeBytes,
          serverPids: [minioPid, shaperPid],
        });
        results.push(r);
        printRun(r);
      }
    }
  }
  const summary: string[] = ['', `summary (${opt.shaped ? 'shaped' : 'loopback'}, ${opt['size-mb']} MiB):`];
  if (sdk.length) summary.push(`  direct SDK: ${sdk.map((x) => x.toFixed(0)).join(', ')} MB/s`);
  for (const w of workloads) {
    for (const v of vs) {
      const rs = results.filter((r) => r.variant === v.name && r.workload === w);
      summary.push(
        `  ${w} ${v.name}: ${rs.map((r) => r.mbps.toFixed(0)).join(', ')} MB/s; main thread ` +
          `${rs.map((r) => r.mainThreadCpu.toFixed(0)).join(', ')}%; daemon ${rs.map((r) => r.daemonCpu.toFixed(0)).join(', ')}%; ` +
          `GETs ${rs.map((r) => r.gets).join(', ')}; fetched/served ${rs.map((r) => r.fetchedPerServed.toFixed(2)).join(', ')}` +
          (rs.some((r) => r.again.length)
            ? `; again on the same mount ${rs.map((r) => r.again.map((x) => x.toFixed(0)).join('/')).join(', ')} MB/s`
            : ''),
      );
    }
  }
  process.stdout.write(`${summary.join('\n')}\n`);
  writeFileSync(path.join(OUT, 'results.json'), JSON.stringify({ sdk, results }, null, 2));
}

try {
  await main();
} finally {
  await procs.cleanupAll();
}
