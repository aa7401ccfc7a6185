// Running one fio job file against a mounted directory and reading its result: shared by the
// limits benchmark (bench/bench.ts) and the peer comparison (bench/peers.ts), so both measure a
// workload the same way.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Layout } from './layout.js';
import { runBounded, WORK } from './procs.js';
import type { Measure } from './report.js';
import { fioEnv, type Workload } from './workloads.js';

/** The snapshot bench/run.sh copied (its bench/fio/ holds the job files). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface FioRead {
  io_bytes: number;
  bw_bytes: number;
  iops: number;
  runtime: number;
  total_ios: number;
  clat_ns: { mean: number; percentile?: Record<string, number> };
}

export interface FioRun {
  /** The side the workload measures: fio's read side, or its write side for a write workload. */
  read: FioRead;
  /** fio's whole run, start to exit: includes the set-up phase in which it looks up every file. */
  wallSeconds: number;
}

/**
 * Runs one fio job file against a mounted directory (a write workload: an empty directory of the
 * mount); returns its (group-reported) read side, or write side for a write workload.
 */
export async function fio(w: Workload, l: Layout, dir: string, tag: string): Promise<FioRun> {
  const out = path.join(WORK, 'fio', `${tag}-${w.name}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  const jobFile = path.join(ROOT, 'bench', 'fio', `${w.job ?? w.name}.fio`);
  // fio's runtime bounds its I/O phase only; looking up the files comes before it. Before a
  // small-file write job fio looks up each of the files it will create, one after another, and on
  // bucketfs each is a negative lookup in the store (HEAD and LIST: 53 ms a file when shaped).
  const lookups = w.write?.dirs ? l.smallDirs * l.smallPerDir * 0.1 : 0;
  const bound = 3 * Math.max(l.capSeconds, l.randSeconds) + 120 + lookups;
  const t0 = performance.now();
  const r = await runBounded('fio', ['--output-format=json', `--output=${out}`, jobFile], {
    env: { ...process.env, ...fioEnv(l, dir) },
    timeoutMs: bound * 1000,
    label: `fio ${w.name}`,
  });
  if (r.code !== 0) throw new Error(`fio ${w.name} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  const text = readFileSync(out, 'utf8');
  const json = JSON.parse(text.slice(text.indexOf('{'))) as {
    jobs: { read: FioRead; write: FioRead; error: number }[];
  };
  const job = json.jobs[0];
  if (!job) throw new Error(`fio ${w.name}: no job in output`);
  if (job.error) throw new Error(`fio ${w.name}: job error ${job.error}`);
  return { read: w.write ? job.write : job.read, wallSeconds: (performance.now() - t0) / 1000 };
}

function pct(read: FioRead): { p50: number; p90: number; p99: number } {
  const p = read.clat_ns.percentile ?? {};
  const ms = (k: string) => (p[k] ?? 0) / 1e6;
  return { p50: ms('50.000000'), p90: ms('90.000000'), p99: ms('99.000000') };
}

/** The measure of one fio run: fio's own I/O phase, plus how long fio took before it. */
export function fromFio(w: Workload, run: FioRun, listSeconds = 0): Omit<Measure, 'workload' | 'target' | 'net'> {
  const { read } = run;
  return {
    bytes: read.io_bytes,
    seconds: read.runtime / 1000,
    ios: read.total_ios,
    mbps: read.bw_bytes / 1e6,
    iops: read.iops,
    setupSeconds: Math.max(0, run.wallSeconds - read.runtime / 1000) + listSeconds,
    ...(w.kind === 'latency' || w.kind === 'iops' ? { latMs: pct(read) } : {}),
  };
}

/** Lists every small/dN directory of a mount (see Workload.listFirst); returns the seconds it took. */
export function listSmall(w: Workload, l: Layout, dir: string): number {
  if (!w.listFirst) return 0;
  const t0 = performance.now();
  for (let d = 0; d < l.smallDirs; d++) readdirSync(path.join(dir, 'small', `d${d}`));
  return (performance.now() - t0) / 1000;
}
