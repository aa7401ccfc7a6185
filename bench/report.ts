// Turns one benchmark run into docs/benchmarks.md: the machine, the method, one table per network
// condition with bucketfs ÷ min(network limit, FUSE limit), the issue's targets, store requests
// and where the CPU went. Numbers are printed as measured; nothing here adjusts them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.js';
import { existingSection } from './peers-report.js';
import type { CpuUse } from './procs.js';
import type { Kind } from './workloads.js';

export type Net = 'loopback' | 'shaped';
/** disk: the fio job on the file cache's own files, straight from the disk (file cache epoch 2). */
export type Target = 'sdk' | 'ramfs' | 'bucketfs' | 'disk';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

export interface Measure {
  workload: string;
  target: Target;
  /** The RAM file system does not touch the network: 'none'. */
  net: Net | 'none';
  bytes: number;
  seconds: number;
  /** Application reads (fio) or store requests (SDK). */
  ios: number;
  mbps: number;
  /** Seconds before fio's I/O phase: its start-up and lookups of every file (plus any listing). */
  setupSeconds?: number;
  /**
   * Measured more than once, every rate (MB/s): the FUSE limit of a sequential job twice (this
   * measure is the better run), a file cache's epoch 2 three times (this measure is the median).
   */
  runs?: number[];
  iops?: number;
  latMs?: Percentiles;
  cpu?: CpuUse;
  requests?: {
    fuseReads: number;
    GET: number;
    HEAD: number;
    LIST: number;
    bytesIn: number;
    bytesServed: number;
    /** Write workloads (absent from runs before they existed): FUSE writes, uploads by kind, bytes sent. */
    fuseWrites?: number;
    PUT?: number;
    UPLOAD_START?: number;
    UPLOAD_PART?: number;
    UPLOAD_COMPLETE?: number;
    bytesOut?: number;
  };
  /** Write workloads, bucketfs: its FUSE ops by op and store requests by kind, count and seconds in all. */
  fuseOps?: Record<string, { n: number; seconds: number }>;
  storeRequests?: Record<string, { n: number; seconds: number }>;
  /** SDK: the configuration that won, and all that were tried. */
  detail?: string;
  tried?: string[];
  top?: string;
}

export interface Facts {
  date: string;
  command: string;
  nproc: number;
  memGiB: number;
  cpu: string;
  kernel: string;
  node: string;
  fio: string;
  minio: string;
  toxiproxy: string;
  libfuse: string;
  fuseNative: string;
  awsSdk: string;
  commit: string;
  shaper: string;
  /** bucketfs ran with --direct-io and the FUSE limit with direct_io (BENCH_DIRECT_IO=1). */
  directIo?: boolean;
  layout: Layout;
  loadavg: string;
  loadavgStart: string;
  /** bucketfs's part size (--read-part-size default), bytes. */
  partSize: number;
  /** bucketfs's upload part size (--write-part-size default), bytes; runs before writes lack it. */
  writePartSize?: number;
}

export interface ProfileSummary {
  workload: string;
  net: Net;
  categories: { name: string; pct: number }[];
  functions: { name: string; pct: number }[];
}

export interface WorkloadInfo {
  name: string;
  title: string;
  kind: Kind;
  target?: 'seq85' | 'small80' | 'onePart' | 'epoch70' | 'write85' | 'smallWrite80' | undefined;
  sdkSameAs?: string | undefined;
  /** A write workload, measured in bytes (MB/s) or in files (files/s, each one write). */
  write?: 'bytes' | 'files' | undefined;
}

export interface RunReport {
  facts: Facts;
  quick: boolean;
  nets: Net[];
  workloads: WorkloadInfo[];
  measures: Measure[];
  profiles: ProfileSummary[];
  errors: string[];
  runSeconds: number;
}

const NET_TITLE: Record<Net, string> = {
  loopback: 'plain loopback',
  shaped: 'shaped like S3 over a network (toxiproxy: +20 ms per response, 100 MB/s per connection)',
};

function find(r: RunReport, workload: string, target: Target, net: Net): Measure | undefined {
  const w = r.workloads.find((x) => x.name === workload);
  const name = target === 'sdk' && w?.sdkSameAs ? w.sdkSameAs : workload;
  return r.measures.find((m) => m.workload === name && m.target === target && (target === 'ramfs' || m.net === net));
}

function num(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** Other people's processes used more than this share of the machine during the run. */
const BUSY_NEIGHBOURS = 25;

function value(kind: Kind, m: Measure | undefined): string {
  if (!m) return 'failed';
  const dagger = (m.cpu?.others ?? 0) > BUSY_NEIGHBOURS ? ' †' : '';
  if (kind === 'latency') {
    return `p50 ${num(m.latMs?.p50 ?? Number.NaN)} ms, p99 ${num(m.latMs?.p99 ?? Number.NaN)} ms${dagger}`;
  }
  if (kind === 'iops') return `${num(m.iops ?? Number.NaN)} IOPS (${num(m.mbps)} MB/s)${dagger}`;
  return `${num(m.mbps)} MB/s${dagger}`;
}

/** How close bucketfs gets to what the network and FUSE allow (1 = all of it). */
/** The ratio a workload is judged by: epoch 2 reads no network, so the FUSE limit alone. */
function shownRatio(w: WorkloadInfo, bfs?: Measure, sdk?: Measure, fuse?: Measure): number {
  if (w.target === 'epoch70') return bfs && fuse ? bfs.mbps / fuse.mbps : Number.NaN;
  return ratio(w.kind, bfs, sdk, fuse);
}

export function ratio(kind: Kind, bfs?: Measure, sdk?: Measure, fuse?: Measure): number {
  if (!bfs || !sdk || !fuse) return Number.NaN;
  if (kind === 'latency') {
    // The best latency reachable is the slower of the two limits.
    const floor = Math.max(sdk.latMs?.p50 ?? 0, fuse.latMs?.p50 ?? 0);
    return floor / (bfs.latMs?.p50 ?? Number.POSITIVE_INFINITY);
  }
  if (kind === 'iops') return (bfs.iops ?? 0) / Math.min(sdk.iops ?? 0, fuse.iops ?? 0);
  return bfs.mbps / Math.min(sdk.mbps, fuse.mbps);
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${Math.round(100 * x)}%` : 'n/a';
}

/** One decimal, so a ratio just under a threshold never prints as the threshold itself. */
function pct1(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a';
}

interface Verdict {
  text: string;
  met: boolean | undefined;
}

function verdict(r: RunReport, w: WorkloadInfo, net: Net): Verdict | undefined {
  const bfs = find(r, w.name, 'bucketfs', net);
  const sdk = find(r, w.name, 'sdk', net);
  const fuse = find(r, w.name, 'ramfs', net);
  if (w.target === 'seq85') {
    const x = ratio(w.kind, bfs, sdk, fuse);
    return { text: `≥ 85% of min(network, FUSE): ${pct1(x)}`, met: Number.isFinite(x) ? x >= 0.85 : undefined };
  }
  if (w.target === 'write85') {
    const x = ratio(w.kind, bfs, sdk, fuse);
    return {
      text: `≥ 85% of min(network, FUSE write limit): ${pct1(x)}`,
      met: Number.isFinite(x) ? x >= 0.85 : undefined,
    };
  }
  if (w.target === 'smallWrite80') {
    const x = bfs && sdk ? bfs.mbps / sdk.mbps : Number.NaN;
    return {
      text: `≥ 80% of the direct SDK's PUT rate (16 in flight): ${pct1(x)}`,
      met: Number.isFinite(x) ? x >= 0.8 : undefined,
    };
  }
  if (w.target === 'small80') {
    const x = bfs && sdk ? bfs.mbps / sdk.mbps : Number.NaN;
    return { text: `≥ 80% of the direct-SDK rate: ${pct1(x)}`, met: Number.isFinite(x) ? x >= 0.8 : undefined };
  }
  if (w.target === 'epoch70') {
    const x = shownRatio(w, bfs, sdk, fuse);
    const q = bfs?.requests;
    const asked = q ? q.GET + q.HEAD + q.LIST : Number.NaN;
    return {
      text: `≥ 70% of the FUSE limit and no store request: ${pct1(x)}, ${Number.isFinite(asked) ? asked : 'n/a'} requests`,
      met: Number.isFinite(x) && Number.isFinite(asked) ? x >= 0.7 && asked === 0 : undefined,
    };
  }
  if (w.target === 'onePart') {
    // Per FUSE read (what the daemon was asked), counted after fio has finished, so reads cut
    // off by fio's time limit are on both sides of the ratio.
    const q = bfs?.requests;
    const per = q?.fuseReads ? q.GET / q.fuseReads : Number.NaN;
    const bytes = q?.fuseReads ? q.bytesIn / q.fuseReads : Number.NaN;
    const part = r.facts.partSize;
    return {
      text: `≤ 1 part per read (at most one GET and ${mib(part)} fetched): ${per.toFixed(3)} GETs, ${num(bytes / 1024)} KiB per read`,
      met: Number.isFinite(per) ? per <= 1 && bytes <= part : undefined,
    };
  }
  return undefined;
}

function mark(v: Verdict | undefined): string {
  if (!v) return '';
  const word = v.met === undefined ? 'not measured' : v.met ? '**met**' : '**missed**';
  return `${v.text} — ${word}`;
}

function resultsTable(r: RunReport, net: Net): string[] {
  const lines = [
    '| Workload | Network limit (direct SDK) | FUSE limit (RAM fs) | bucketfs | bucketfs ÷ min(limits) | Issue target |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const w of r.workloads.filter((x) => !x.write)) {
    const bfs = find(r, w.name, 'bucketfs', net);
    const sdk = find(r, w.name, 'sdk', net);
    const fuse = find(r, w.name, 'ramfs', net);
    const sdkText = w.sdkSameAs && sdk ? `${value(w.kind, sdk)} (as ${w.sdkSameAs})` : value(w.kind, sdk);
    const x = shownRatio(w, bfs, sdk, fuse);
    lines.push(
      `| ${w.title} (\`${w.name}\`) | ${sdkText} | ${value(w.kind, fuse)} | ${value(w.kind, bfs)} | ${pct(x)}${w.target === 'epoch70' ? ' of FUSE' : ''} | ${mark(verdict(r, w, net))} |`,
    );
  }
  return lines;
}

function int(x: number): string {
  return x.toLocaleString('en-US');
}

function mib(bytes: number): string {
  return `${num(bytes / 2 ** 20)} MiB`;
}

function requestsTable(r: RunReport): string[] {
  const lines = [
    '| Workload | Network | Before I/O (s) | App reads | FUSE reads | GET | HEAD | LIST | GETs per FUSE read | Fetched | Read by the app | Fetched ÷ read | Fetched per FUSE read |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const net of r.nets) {
    for (const w of r.workloads.filter((x) => !x.write)) {
      const m = find(r, w.name, 'bucketfs', net);
      const q = m?.requests;
      if (!m || !q) continue;
      lines.push(
        `| \`${w.name}\` | ${net} | ${num(m.setupSeconds ?? Number.NaN)} | ${int(m.ios)} | ${int(q.fuseReads)} | ${int(q.GET)} | ${int(q.HEAD)} | ${int(q.LIST)} | ${num(q.GET / q.fuseReads)} | ${mib(q.bytesIn)} | ${mib(m.bytes)} | ${num(q.bytesIn / m.bytes)} | ${num(q.bytesIn / q.fuseReads / 1024)} KiB |`,
      );
    }
  }
  return lines;
}

function cpuTable(r: RunReport): string[] {
  const lines = [
    "| Workload | Network | bucketfs daemon | MinIO | toxiproxy | RAM fs daemon (same workload) | Machine busy (all cores = 100%) | Others' processes (all cores = 100%) |",
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const c = (x: number | undefined) => (x === undefined ? '–' : `${Math.round(x)}%`);
  for (const net of r.nets) {
    for (const w of r.workloads) {
      const m = find(r, w.name, 'bucketfs', net);
      if (!m?.cpu) continue;
      const fuse = find(r, w.name, 'ramfs', net);
      lines.push(
        `| \`${w.name}\` | ${net} | ${c(m.cpu.procs.daemon)} | ${c(m.cpu.procs.minio)} | ${net === 'shaped' ? c(m.cpu.procs.toxiproxy) : '–'} | ${c(fuse?.cpu?.procs.daemon)} | ${c(m.cpu.machine)} | ${c(m.cpu.others)} |`,
      );
    }
  }
  return lines;
}

function sdkDetails(r: RunReport): string[] {
  const lines: string[] = [];
  for (const net of r.nets) {
    for (const w of r.workloads) {
      const m = find(r, w.name, 'sdk', net);
      if (!m || w.sdkSameAs) continue;
      const tried = m.tried ? ` (tried: ${m.tried.join('; ')})` : '';
      const lat = m.latMs ? `; request latency p50 ${num(m.latMs.p50)} ms, p99 ${num(m.latMs.p99)} ms` : '';
      lines.push(`- \`${w.name}\`, ${net}: ${m.detail}${tried}${lat}`);
    }
  }
  return lines;
}

/**
 * Plain statements read off the data for every workload where bucketfs is below 85% of its
 * limits: how busy the daemon and the machine were, and how much more it fetched than was read.
 */
function observations(r: RunReport): string[] {
  const lines: string[] = [];
  for (const net of r.nets) {
    for (const w of r.workloads) {
      const bfs = find(r, w.name, 'bucketfs', net);
      const sdk = find(r, w.name, 'sdk', net);
      const fuse = find(r, w.name, 'ramfs', net);
      const epoch2 = w.target === 'epoch70';
      const x = shownRatio(w, bfs, sdk, fuse);
      if (!bfs || !Number.isFinite(x) || x >= 0.85) continue;
      const facts: string[] = [];
      const cpu = bfs.cpu;
      if (cpu) {
        facts.push(`daemon at ${Math.round(cpu.procs.daemon ?? 0)}% of a core`);
        facts.push(`machine ${Math.round(cpu.machine)}% busy (others' processes ${Math.round(cpu.others)}%)`);
      }
      const q = bfs.requests;
      if (q && bfs.bytes > 0 && !w.write) {
        facts.push(`fetched ${num(q.bytesIn / bfs.bytes)}× the bytes read in ${int(q.GET)} GETs`);
      }
      if (q && bfs.bytes > 0 && w.write)
        facts.push(`${uploads(q)}; sent ${num((q.bytesOut ?? 0) / bfs.bytes)}× the bytes written`);
      const bound = !epoch2 && sdk && fuse && score(w.kind, sdk) <= score(w.kind, fuse) ? 'network' : 'FUSE';
      // The two limits are each measured with the machine to themselves; bucketfs does both jobs on it.
      const source = epoch2 ? find(r, w.name, 'disk', net) : sdk;
      if (w.kind === 'throughput' && source && fuse) {
        const shared = 1 / (1 / source.mbps + 1 / fuse.mbps);
        facts.push(
          `${pct(bfs.mbps / shared)} of the shared-CPU bound 1 / (1/${epoch2 ? 'disk' : 'network'} + 1/FUSE) = ${num(shared)} MB/s`,
        );
      }
      lines.push(`- \`${w.name}\`, ${net}: ${pct(x)} of the ${bound} limit; ${facts.join('; ')}.`);
    }
  }
  return lines;
}

/** A write measure's rate: files/s (and MB/s) for small files, else MB/s. */
function writeValue(w: WorkloadInfo, m: Measure | undefined): string {
  if (!m || w.write !== 'files') return value(w.kind, m);
  const dagger = (m.cpu?.others ?? 0) > BUSY_NEIGHBOURS ? ' †' : '';
  return `${num(m.iops ?? Number.NaN)} files/s (${num(m.mbps)} MB/s)${dagger}`;
}

/** Upload requests by kind. */
function uploads(q: NonNullable<Measure['requests']>): string {
  const parts = [
    ['PUT', q.PUT],
    ['UPLOAD_START', q.UPLOAD_START],
    ['UPLOAD_PART', q.UPLOAD_PART],
    ['UPLOAD_COMPLETE', q.UPLOAD_COMPLETE],
  ] as const;
  return parts.map(([k, n]) => `${int(n ?? 0)} ${k}`).join(', ');
}

/** The Writes section: one table per network, then the requests each target made. */
function writesSection(r: RunReport): string[] {
  const writes = r.workloads.filter((w) => w.write);
  if (!writes.length) return [];
  const l = r.facts.layout;
  const part = r.facts.writePartSize ?? 8 * 2 ** 20;
  const out: string[] = [
    '## Writes',
    '',
    "New files written through the mount and closed, against the same bytes uploaded by the direct SDK (the network limit for writes) and the same fio job on the RAM file system (the FUSE write limit). bucketfs stages every write on local disk (here the machine's disk: the daemon's temp dir) and uploads while a new file is written in order, in parts of its `--write-part-size` (" +
      mib(part) +
      ", `--write-parts-in-flight` of them in flight per file, 8 by default), one PUT for a file of up to one part; `fsync` and `close` return once the object is in the store, so every rate below includes the upload finishing. MB/s is 10^6 bytes per second the application wrote, over fio's I/O phase (for the direct SDK: first request to last answer). † marks a number measured while other people's processes used more than " +
      BUSY_NEIGHBOURS +
      "% of this shared machine's CPU. On the shaped network the shaper limits every connection to 100 MB/s towards the store as well (uploads; see Method).",
    '',
  ];
  for (const net of r.nets) {
    out.push(
      `### Writes: ${NET_TITLE[net]}`,
      '',
      '| Workload | Network limit (direct SDK) | FUSE write limit (RAM fs) | bucketfs | bucketfs ÷ min(limits) | bucketfs requests | Issue target |',
      '| --- | ---: | ---: | ---: | ---: | --- | --- |',
    );
    for (const w of writes) {
      const bfs = find(r, w.name, 'bucketfs', net);
      const sdk = find(r, w.name, 'sdk', net);
      const fuse = find(r, w.name, 'ramfs', net);
      const q = bfs?.requests;
      const asked = q ? `${uploads(q)}; ${int(q.HEAD)} HEAD, ${int(q.LIST)} LIST, ${int(q.GET)} GET` : '–';
      out.push(
        `| ${w.title} (\`${w.name}\`) | ${writeValue(w, sdk)} | ${writeValue(w, fuse)} | ${writeValue(w, bfs)} | ${pct(ratio(w.kind, bfs, sdk, fuse))} | ${asked} | ${mark(verdict(r, w, net))} |`,
      );
    }
    out.push('');
  }
  out.push(
    "Requests are bucketfs's own, from its `/metrics` (`bucketfs_store_requests_total` by kind) before and after each fio run; the direct SDK's for comparison:",
    '',
  );
  for (const net of r.nets) {
    for (const w of writes) {
      const sdk = find(r, w.name, 'sdk', net);
      const bfs = find(r, w.name, 'bucketfs', net);
      const q = bfs?.requests;
      const fuse =
        bfs && q?.fuseWrites
          ? `; bucketfs got ${int(q.fuseWrites)} FUSE writes (${num(bfs.bytes / q.fuseWrites / 1024)} KiB each) and sent ${mib(q.bytesOut ?? 0)} for ${mib(bfs.bytes)} written`
          : '';
      out.push(
        `- \`${w.name}\`, ${net}: direct SDK ${sdk?.requests ? uploads(sdk.requests) : '–'} for ${sdk ? mib(sdk.bytes) : '–'}${fuse}.`,
      );
    }
  }
  out.push(
    '',
    "Where bucketfs's time went (its `/metrics` histograms over the fio run, set-up included: count × mean time; each writer waits for its FUSE ops one at a time, store requests run in parallel). Before I/O: fio's start, in which it looks up every file it will write, one after another (on bucketfs a negative lookup is a HEAD and a LIST); the requests above include those lookups, the rates do not:",
    '',
    '| Workload | Network | Before I/O (s) | fio I/O phase (s) | FUSE ops | Store requests |',
    '| --- | --- | ---: | ---: | --- | --- |',
  );
  const times = (h?: Record<string, { n: number; seconds: number }>) =>
    Object.entries(h ?? {})
      .sort((a, b) => b[1].seconds - a[1].seconds)
      .map(([k, v]) => `${k} ${int(v.n)} × ${num((1000 * v.seconds) / v.n)} ms`)
      .join(', ') || '–';
  for (const net of r.nets) {
    for (const w of writes) {
      const bfs = find(r, w.name, 'bucketfs', net);
      if (!bfs) continue;
      out.push(
        `| \`${w.name}\` | ${net} | ${num(bfs.setupSeconds ?? Number.NaN)} | ${num(bfs.seconds)} | ${times(bfs.fuseOps)} | ${times(bfs.storeRequests)} |`,
      );
    }
  }
  out.push(
    '',
    '- **Workloads** (fio job files `bench/fio/write-*.fio`: psync, `--direct=0`, `create_on_open=1` so fio creates each file when it opens it instead of laying it out with a truncate to its full size first):',
    `  - \`write-seq-1t\`: one new file of ${mib(l.bigBytes)}, 1 MiB writes, one thread, \`end_fsync=1\`; \`write-seq-4t\`: four threads, each a new file of ${mib(l.bigBytes / 4)} (${mib(l.bigBytes)} in all), each fsync'd at its end. At most ${l.capSeconds} s of writing.`,
    `  - \`write-small-16\`: ${int(l.smallDirs * l.smallPerDir)} new files of ${l.smallBytes / 1024} KiB, sixteen writers, writer N creating every file of \`dN\` (directories made before the clock starts), each file written in one write and closed before the next (no \`fsync_on_close\`: with it fio reopens every closed file at the end of the job to fsync it once more). files/s is fio's write rate (one write per file). At most ${l.capSeconds} s.`,
    '- **Network limit for writes**: `bench/sdk-write.ts`, the AWS SDK v3 with the transport settings of the read limit and its middleware stack resolved once (`cacheMiddleware`), bodies sliced from one random buffer in memory (no disk), every object new and sent with `If-None-Match: *` as bucketfs sends it. Sequential: S3 multipart uploads (CreateMultipartUpload, UploadPart, CompleteMultipartUpload) in the part size bucketfs uses, the same number of objects as the fio job, the best of 4, 8 and 16 parts in flight in all (parts of several objects interleaved); the clock covers the whole upload, start to completion. Small files: 16 workers of PutObject (16 in flight), the same files and sizes. What it wrote is deleted after the clock stops.',
    '- **FUSE write limit**: the RAM file system (`bench/ramfs.ts`) takes new files and directories; each write is one copy into its RAM buffer, `fsync` and `flush` return at once: what fio, the kernel, libfuse 2 and fuse-native cost for the same job, with no disk and no network.',
    "- **Ratios**: bucketfs ÷ min(network limit, FUSE write limit) in MB/s; the small-file target is bucketfs ÷ the direct SDK's PUT rate, as the issue states it. The FUSE write limit is measured per job at the start and after each network, best run counts (as for reads).",
    "- Objects written by a run are deleted (straight from MinIO, not measured) before the next, so every file is new and MinIO's tmpfs does not fill.",
    '',
  );
  return out;
}

/** The rates of every run behind a median (file cache epoch 2). */
function epochRuns(r: RunReport): string[] {
  const runs = (m: Measure) =>
    `${(m.runs ?? [m.mbps]).map((x) => int(Math.round(x))).join(', ')} MB/s → median ${int(Math.round(m.mbps))} MB/s`;
  const lines = r.measures
    .filter((m) => m.target === 'bucketfs' && m.runs && m.runs.length > 1)
    .map((m) => {
      const disk = m.net === 'none' ? undefined : find(r, m.workload, 'disk', m.net);
      const local = disk
        ? `; local disk: ${runs(disk)}, so bucketfs reads at ${pct(m.mbps / disk.mbps)} of the disk's rate`
        : '';
      return `- \`${m.workload}\`, ${m.net}: ${runs(m)}${local}`;
    });
  return lines.length ? ['Epoch 2 runs (bucketfs; then the local disk, see above):', '', ...lines, ''] : [];
}

/** The best of several measures of one thing (by score), if there is one. */
export function bestOf(kind: Kind, ms: Measure[]): Measure | undefined {
  return ms.reduce<Measure | undefined>((a, m) => (!a || score(kind, m) > score(kind, a) ? m : a), undefined);
}

/** Higher is better, in the workload's own unit. */
export function score(kind: Kind, m: Measure): number {
  if (kind === 'latency') return -(m.latMs?.p50 ?? Number.POSITIVE_INFINITY);
  if (kind === 'iops') return m.iops ?? 0;
  return m.mbps;
}

export function renderMarkdown(r: RunReport, chart?: string): string {
  const f = r.facts;
  const l = f.layout;
  const out: string[] = [];
  const p = (...s: string[]) => out.push(...s);
  p(
    '# Benchmarks: read throughput',
    '',
    `<!-- Generated by bench/run.sh on ${f.date}; edit bench/report.ts, not this file. -->`,
    '',
    'How fast bucketfs reads compared with the two things that bound it on the same machine: the',
    'network limit (the same bytes fetched directly with the AWS SDK v3, no file system) and the FUSE',
    'limit (a trivial fuse-native file system serving the same tree from RAM). All three read from the',
    'same MinIO server and the same objects in one run; each workload runs on plain loopback and again',
    'behind a shaper that makes the store behave like S3 over a network.',
    '',
    'How bucketfs compares with the tools a user would pick instead (rclone mount, s3fs-fuse, gcsfuse),',
    'and the training-loop simulator, is the last section ([Peers](#peers-bucketfs-against-rclone-mount-s3fs-fuse-and-gcsfuse)),',
    'made by its own run: `npm run bench:peers`.',
    '',
    ...(f.directIo
      ? [
          "**This run bypasses the kernel's page cache**: bucketfs with `--direct-io`, the FUSE limit with",
          '`direct_io`. The default configuration (page cache used) is in [../benchmarks.md](../benchmarks.md).',
          '',
        ]
      : [
          'This run uses the default configuration, with the kernel page cache. The same run with the page',
          'cache bypassed (`--direct-io`, see docs/caching.md for what that costs) is in',
          '[direct-io/benchmarks.md](direct-io/benchmarks.md) (made by `BENCH_DIRECT_IO=1 npm run bench`).',
          '',
        ]),
  );
  if (r.quick) p('> **Quick run** (BENCH_QUICK=1): small objects and short runs; numbers are indicative only.', '');
  p('## Summary', '');
  for (const w of r.workloads.filter((x) => x.target)) {
    for (const net of r.nets) {
      const v = verdict(r, w, net);
      if (v) p(`- ${w.title}, ${net}: ${mark(v)}`);
    }
  }
  p('');
  if (chart) {
    p(`![bucketfs vs. network and FUSE limits](${chart})`, '');
    p(
      '*Bars: MB/s read by the application (log scale); label on the bucketfs bar: bucketfs ÷ min(network, FUSE). Latency workload (ttfb) not shown: see the tables.*',
      '',
    );
  }
  // A run of the write workloads alone (BENCH_WORKLOADS=write-…) has no read tables.
  const reads = r.workloads.some((w) => !w.write);
  for (const net of r.nets) {
    if (reads) p(`## Results: ${NET_TITLE[net]}`, '', ...resultsTable(r, net), '');
  }
  if (reads)
    p(
      'The FUSE limit depends on neither the network nor the cache, only on the fio job: it is measured',
      "per job and serves both tables and every workload running that job (an epoch's limit is its job's);",
      'for throughput jobs it is the best of a run at the start and one after each network (JSON: `runs`). For',
      'latency (ttfb) the ratio is',
      "the slower limit's p50 ÷ bucketfs p50 (100% = as fast as the limits allow). MB/s is 10^6 bytes",
      "per second of data the application read, over fio's I/O phase. Before it, fio stats every file",
      'one after another; for the small-file workloads the driver lists the 16 directories first (as a',
      'data loader builds its file index), so those stats come from the listing. That time is in the',
      'requests table\'s "before I/O" column, not in the rates. † marks a number measured while other',
      `people's processes used more than ${BUSY_NEIGHBOURS}% of this shared machine's CPU (see the CPU section).`,
      '',
      'File cache epochs (`epoch1-*`, `epoch2-*`): bucketfs mounts with an empty `--cache-dir` on the',
      "machine's disk and runs the same fio job on that one mount four times, as a training job's epochs:",
      "the first is epoch 1; then the cache's downloads finish, and epoch 2 is the median of the next three",
      'runs, each started with dirty pages written back (`sync`) and the page cache dropped, so each reads',
      'the local disk (one run on this shared machine varies by ±15%). Until 2026-11-24 the bench dropped',
      "the cache without `sync`: epoch 1's download, still dirty in memory, was partly read from RAM and",
      'epoch 2 measured 1.3-1.6× what it does from the disk. Its limits are those of the job it repeats',
      '(`seq-1t`, `small-16`); its target is the FUSE limit alone, with no store request in any of the',
      'three runs (requests table: their total). The local disk is a third reference: the same fio job,',
      "three times, reading the cache's own files (each object's `.data` file, symlinked into the job's",
      'layout) straight from the same disk, page cache dropped: no FUSE, no checksums. The FUSE limit',
      'serves from RAM; bucketfs in epoch 2 pays for the disk and for FUSE on the same two cores.',
      '',
      ...epochRuns(r),
    );
  p(...writesSection(r));
  const obs = observations(r);
  if (obs.length) {
    p(
      '### Where bucketfs is below 85% of its limits',
      '',
      "Read off this run's data (CPU from /proc over the run; requests from /metrics). Each limit is",
      'measured with the machine to itself, while bucketfs fetches (from the network, or in epoch 2 from',
      'the disk) and serves FUSE on the same two cores. Where each job alone keeps the CPU busy, doing',
      'both at once runs at about 1 / (1/network + 1/FUSE): the shared-CPU bound quoted below (where a',
      'limit leaves the CPU partly idle, bucketfs can beat it).',
      '',
      ...obs,
      '',
    );
  }
  if (reads)
    p(
      '## Store requests made by bucketfs',
      '',
      "From the daemon's `/metrics` (`bucketfs_store_requests_total`, `bucketfs_store_bytes_in_total`),",
      'read before and after each fio run. "App reads" are fio\'s read calls; "Fetched" is what bucketfs',
      'downloaded. For random 4 KiB reads the issue asks for at most one part per read.',
      '',
      ...requestsTable(r),
      '',
    );
  p(
    '## CPU',
    '',
    "Average CPU over each bucketfs run, in percent of one core (from /proc/PID/stat); the daemon's",
    'JavaScript runs on one thread, so ~100% for the daemon means its event loop is saturated.',
    '',
    ...cpuTable(r),
    '',
  );
  if (r.profiles.length) {
    p(
      '### Daemon CPU profile',
      '',
      'Extra runs on loopback with `node --cpu-prof` on the daemon (not the runs in the tables). Self time',
      'by category and the functions with the most self time:',
      '',
    );
    for (const prof of r.profiles) {
      p(
        `**\`${prof.workload}\`** (${prof.net}): ${prof.categories.map((c) => `${c.name} ${c.pct.toFixed(0)}%`).join(', ')}`,
        '',
      );
      p('| Function (self time) | Share |', '| --- | ---: |');
      for (const fn of prof.functions) p(`| \`${fn.name.replace(/\|/g, '\\|')}\` | ${fn.pct.toFixed(1)}% |`);
      p('');
    }
  }
  const tops = r.measures.filter((m) => m.target === 'bucketfs' && m.workload === 'seq-1t' && m.top);
  for (const m of tops) {
    p(`### \`top\` during \`seq-1t\` on ${m.net}`, '', '```', m.top ?? '', '```', '');
  }
  p(
    '## Method',
    '',
    `- **Data**: bucket \`bench\` on MinIO (data on tmpfs, so dropping the page cache never sends MinIO to disk): ${l.bigCount} objects of ${mib(l.bigBytes)} (\`big/obj-N.bin\`, random bytes) and ${(l.smallDirs * l.smallPerDir).toLocaleString('en-US')} objects of ${l.smallBytes / 1024} KiB in ${l.smallDirs} directories (\`small/dD/fN\`).`,
    '- **Workloads**: fio job files in `bench/fio/` (psync, `--direct=0`, group reporting), in the style of',
    "  Mountpoint's and gcsfuse's published benchmarks:",
    `  - \`seq-1t\`: one ${mib(l.bigBytes)} object, 1 MiB reads, one thread; \`seq-4t\`: the same object, four threads each reading its own quarter; \`seq-4obj\`: ${l.bigCount} objects, one thread each. Each ends at the end of the data or after ${l.capSeconds} s.`,
    `  - \`rand-4k\`, \`rand-1m\`: random reads over one object by four threads, each over its own quarter; fio's random map never repeats a block, so no read is a page-cache hit. At most ${l.randSeconds} s.`,
    `  - \`ttfb\`: the first 4 KiB of each of ${l.ttfbFiles} files, one after another; fio's completion latency of that first read (open is not included).`,
    `  - \`small-1\`: every small file, whole, by one reader (fio \`opendir\`); \`small-16\`: sixteen readers, reader N reading \`small/dN\`. At most ${l.capSeconds} s.`,
    '- **Cold**: the page cache is dropped (`echo 3 > /proc/sys/vm/drop_caches`) before every run, and',
    '  bucketfs is mounted afresh for every workload, so neither the kernel nor bucketfs has any data',
    '  cached when a run starts. Every target is asked for the same reads.',
    '- **Network limit**: `bench/sdk-read.ts`, a Node process using the AWS SDK v3 with the same HTTP',
    '  agent settings as bucketfs; bodies are drained, not copied. Sequential workloads take the best',
    `  of 1, 4 and 8 parallel 8 MiB ranged GETs (4, 8 and 16 for four objects), each for at most ${l.sdkSeqCapSeconds} s;`,
    '  random workloads use four workers of ranged GETs, each over its own quarter; small files use 1',
    '  or 16 workers of whole-object GETs; ttfb reads the first 4 KiB of each file one after another.',
    '- **FUSE limit**: `bench/ramfs.ts`, fuse-native serving the same tree from one preallocated',
    '  buffer (every read is one copy), with the kernel-facing settings bucketfs uses by default (read-write,',
    '  reads and writes of up to 1 MiB, the same 1 MiB kernel read-ahead window, 64 background requests), in its own process.',
    '  Its main thread keeps nice 0 where bucketfs raises its own (`--event-loop-nice`): the RAM fs',
    '  read as fast either way (docs/architecture.md), so the limit is not a softer one.',
    `- **Shaped network**: ${f.shaper.replace(/^toxiproxy: /, '')}, by toxiproxy (Shopify, pinned ${f.toxiproxy}, built`,
    '  with `go install`). It listens on 127.0.0.1 in front of MinIO and runs its toxics on every TCP connection separately, so one',
    '  connection tops out at 100 MB/s and parallel connections add up, as with S3. This kernel is built',
    '  without `sch_netem` and `sch_fq` (only tbf/htb), so a veth + netem shaper is not possible here.',
    "- **Ratios**: bucketfs ÷ min(network limit, FUSE limit) in the workload's unit (MB/s, IOPS); the",
    '  small-file target is bucketfs ÷ direct SDK, as the issue states it.',
    '',
    '## Machine and versions',
    '',
    '| | |',
    '| --- | --- |',
    `| Command | \`${f.command}\` |`,
    `| Date | ${f.date} |`,
    `| Run time | ${(r.runSeconds / 60).toFixed(1)} min (${Math.round(r.runSeconds)} s; plus install and build) |`,
    `| CPUs (nproc) | ${f.nproc} × ${f.cpu} |`,
    `| Memory | ${f.memGiB.toFixed(1)} GiB |`,
    `| Kernel | ${f.kernel} |`,
    `| Load average at start / end | ${f.loadavgStart} / ${f.loadavg} |`,
    `| Node | ${f.node} |`,
    `| fio | ${f.fio} |`,
    `| libfuse | ${f.libfuse} (fuse-native ${f.fuseNative}) |`,
    `| AWS SDK | @aws-sdk/client-s3 ${f.awsSdk} |`,
    `| MinIO | ${f.minio} |`,
    `| toxiproxy | ${f.toxiproxy} |`,
    `| bucketfs | commit ${f.commit} |`,
    '',
    '## How to run',
    '',
    '```sh',
    'npm run bench              # = bash bench/run.sh; as root (FUSE mounts, drop_caches)',
    'BENCH_QUICK=1 npm run bench  # small data, short runs, report in /tmp/bucketfs-bench-quick/',
    '```',
    '',
    '`BENCH_DIRECT_IO=1 npm run bench` makes the same run with the page cache bypassed (bucketfs',
    '`--direct-io`, the FUSE limit with `direct_io`) and writes its report to `docs/direct-io/`.',
    'Other knobs: `BENCH_NETS=loopback` or `shaped`, `BENCH_WORKLOADS=seq-1t,small-16` (`write-seq-1t,write-seq-4t,write-small-16`:',
    'the write workloads alone, with no data set seeded), `BENCH_CPU_PROF=0|1`',
    '(daemon CPU profiles, on by default in full runs), `BENCH_OUT=DIR` (where the report goes),',
    '`BENCH_KEEP_LOGS=DIR` (keep daemon logs and fio output), `BENCH_ALLOW_TYPE_ERRORS=1` (benchmark',
    'what tsc emitted even if the tree has type errors). `node dist/bench/render.js bench/results/latest.json docs`',
    're-renders this page from the last run without measuring again (add',
    '`~/.cache/bucketfs/bench-venv/bin/python` as a third argument to redraw the chart too).',
    "To see where one workload's time goes, `node dist/bench/profile-seq.js` (usage in its header) runs",
    "it on fresh mounts with per-thread CPU, the main thread's wait for a CPU, FUSE op timings,",
    '`--prof`/`--perf` profiles, `--epochs` for the file cache (`--warm`: its files left in the page',
    'cache), and A/B builds compared round by round. `node dist/bench/store-read.js` does the',
    "same for the store adapters alone (ranged reads, no FUSE): it measured the GCS adapter's move to",
    '`raw-http.ts` (docs/architecture.md). `node dist/bench/warm-reread.js` re-reads files on one mount',
    "with the page cache not dropped: what keeping the kernel's pages across opens is worth (docs/caching.md).",
    '',
    'The script installs what it needs (toxiproxy via `go install`, matplotlib in a venv under',
    '`~/.cache/bucketfs/bench-venv`), builds, copies the build into a tmpfs work dir (so rebuilding',
    'during a run cannot change the code under test), and always cleans up: every mount unmounted,',
    'every process it started stopped, the tmpfs removed, even on failure or Ctrl-C; a run killed',
    'outright is cleaned up by the next one.',
    '',
    'Detailed network-limit runs:',
    '',
    ...sdkDetails(r),
    '',
  );
  if (r.errors.length) p('## Errors in this run', '', ...r.errors.map((e) => `- ${e}`), '');
  return `${out.join('\n')}\n`;
}

/**
 * Writes the run's JSON, the chart (when a Python with matplotlib is given) and the Markdown
 * report into `outDir`; returns the files written. `root` holds bench/chart.py.
 */
export function writeReport(r: RunReport, jsonFile: string, outDir: string, root: string, python?: string): string[] {
  mkdirSync(outDir, { recursive: true });
  mkdirSync(path.dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify(r, null, 1)}\n`);
  const png = path.join(outDir, 'benchmarks.png');
  let chart = false;
  // The chart shows read workloads only (bench/chart.py): none in the run, no chart.
  if (python && r.workloads.some((w) => !w.write && w.kind !== 'latency')) {
    const res = spawnSync(python, [path.join(root, 'bench', 'chart.py'), jsonFile, png], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    chart = res.status === 0;
    if (!chart) r.errors.push(`chart: ${(res.stderr || res.stdout).trim().split('\n').pop()}`);
  }
  const md = path.join(outDir, 'benchmarks.md');
  // The peer comparison's section (npm run bench:peers) is another run's: carried over as it is.
  const peers = existingSection(md);
  const text = renderMarkdown(r, chart ? 'benchmarks.png' : undefined);
  writeFileSync(md, peers ? `${text}\n${peers}` : text);
  return chart ? [md, png, jsonFile] : [md, jsonFile];
}
