// Turns one peer-comparison run (bench/peers.ts) into the "Peers" section of docs/benchmarks.md:
// per workload each client's rate and store requests, bucketfs ÷ best peer and best peer ÷
// bucketfs requests, the training-loop simulator's table and charts. The section sits between two
// markers, so the limits benchmark (bench/report.ts) and this run each rewrite only their own part.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ClientName } from './clients.js';
import type { Counts } from './count-proxy.js';
import type { Layout } from './layout.js';
import type { CpuUse } from './procs.js';
import type { Percentiles, ProfileSummary } from './report.js';
import type { TrainSet } from './train-data.js';
import type { SimResult } from './train-sim.js';

export type Scenario = 'files' | 'cached' | 'shards';
export type PeerKind = 'throughput' | 'iops' | 'latency' | 'listing';

export interface PeerMeasure {
  workload: string;
  store: 's3' | 'gcs';
  client: ClientName;
  kind: PeerKind;
  mbps?: number;
  iops?: number;
  latMs?: Percentiles;
  /** fio's I/O phase, or the whole `ls -lR`. */
  seconds: number;
  setupSeconds?: number;
  entries?: number;
  expectedEntries?: number;
  /** From the mount to the unmount (epoch 2: its run alone); undefined if never read. */
  requests: Counts | undefined;
  cpu?: CpuUse;
}

export interface SimRun {
  client: ClientName;
  net: 'loopback' | 'shaped';
  scenario: Scenario;
  result: SimResult;
}

export interface PeersReport {
  date: string;
  command: string;
  commit: string;
  quick: boolean;
  nproc: number;
  memGiB: number;
  loadavgStart: string;
  loadavgEnd: string;
  /** 'yes' when the lead's quiet-machine flag was there at the start, else why not. */
  quiet: string;
  layout: Layout;
  trees: { name: string; dirs: number; perDir: number; gcs: boolean }[];
  train: TrainSet;
  sim: {
    workers: number;
    batch: number;
    computeMs: number;
    prefetch: number;
    cachedEpochs: number;
    maxSeconds: number;
  };
  shape: string;
  versions: Record<string, string>;
  flags: Record<string, { streaming: string; cached: string }>;
  workloads: { name: string; title: string; kind: PeerKind }[];
  measures: PeerMeasure[];
  sims: SimRun[];
  /** bucketfs under node --cpu-prof on some S3 workloads (extra runs). */
  profiles?: ProfileSummary[];
  errors: string[];
  runSeconds: number;
}

export const BEGIN = '<!-- peers:begin (bench/peers-report.ts writes this section; edit that, not this) -->';
export const END = '<!-- peers:end -->';

const LABEL: Record<ClientName, string> = {
  bucketfs: 'bucketfs',
  rclone: 'rclone mount',
  s3fs: 's3fs-fuse',
  'bucketfs-gs': 'bucketfs (gs://)',
  gcsfuse: 'gcsfuse',
};

const SCENARIO: Record<Scenario, string> = {
  files: '1. small files, no cache',
  cached: '2. small files, disk cache, 3 epochs',
  shards: '3. tar shards, no cache',
};

function num(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function int(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

function total(c: Counts | undefined): number {
  return c ? c.GET + c.HEAD + c.LIST + c.OTHER : Number.NaN;
}

/** Higher is better: MB/s, IOPS, 1/latency, 1/seconds of the listing. */
export function score(m: PeerMeasure): number {
  if (m.kind === 'iops') return m.iops ?? 0;
  if (m.kind === 'latency') return 1 / (m.latMs?.p50 ?? Number.POSITIVE_INFINITY);
  if (m.kind === 'listing') return m.entries === m.expectedEntries ? 1 / m.seconds : 0;
  return m.mbps ?? 0;
}

function rate(m: PeerMeasure | undefined): string {
  if (!m) return 'failed';
  if (m.kind === 'iops') return `${num(m.iops)} IOPS`;
  if (m.kind === 'latency') return `p50 ${num(m.latMs?.p50)} ms`;
  if (m.kind === 'listing') {
    const short = m.entries !== m.expectedEntries ? ` (listed ${int(m.entries ?? 0)})` : '';
    return `${num(m.seconds)} s${short}`;
  }
  return `${num(m.mbps)} MB/s`;
}

function reqs(c: Counts | undefined): string {
  if (!c) return 'n/a';
  const parts = (['GET', 'HEAD', 'LIST', 'OTHER'] as const).filter((k) => c[k] > 0).map((k) => `${int(c[k])} ${k}`);
  return `${int(total(c))}${parts.length ? ` (${parts.join(', ')})` : ''}; ${num(c.bytesIn / 2 ** 20)} MiB`;
}

export interface Versus {
  workload: string;
  store: 's3' | 'gcs';
  /** bucketfs's score ÷ the best peer's (> 1: bucketfs ahead). */
  rateRatio: number;
  bestPeer?: ClientName;
  /** The fewest requests among peers ÷ bucketfs's (> 1: bucketfs cheaper). */
  requestRatio: number;
  leanestPeer?: ClientName;
}

export function versus(r: PeersReport, store: 's3' | 'gcs', workload: string): Versus {
  const ms = r.measures.filter((m) => m.store === store && m.workload === workload);
  const ours = ms.find((m) => m.client === 'bucketfs' || m.client === 'bucketfs-gs');
  const peers = ms.filter((m) => m !== ours && score(m) > 0);
  const best = peers.reduce<PeerMeasure | undefined>((a, m) => (!a || score(m) > score(a) ? m : a), undefined);
  const lean = peers
    .filter((m) => m.requests)
    .reduce<PeerMeasure | undefined>((a, m) => (!a || total(m.requests) < total(a.requests) ? m : a), undefined);
  const t = total(ours?.requests);
  return {
    workload,
    store,
    rateRatio: ours && best ? score(ours) / score(best) : Number.NaN,
    ...(best ? { bestPeer: best.client } : {}),
    // No request at all on both sides (an epoch 2 from cache) is a tie, not a division by zero.
    requestRatio: lean
      ? t === 0
        ? total(lean.requests) === 0
          ? 1
          : Number.POSITIVE_INFINITY
        : total(lean.requests) / t
      : Number.NaN,
    ...(lean ? { leanestPeer: lean.client } : {}),
  };
}

function ratio(x: number): string {
  if (x === Number.POSITIVE_INFINITY) return '∞ (bucketfs: none)';
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a';
}

/**
 * Epoch 1 runs whose fio job hit its time cap before reading the whole data set: their epoch 2
 * still finds uncached files, so it makes requests and reads slower, through no fault of the cache.
 */
function cutShort(r: PeersReport, store: 's3' | 'gcs'): string[] {
  const l = r.layout;
  const whole: Record<string, number> = {
    'epoch1-seq': l.bigBytes,
    'epoch1-small': l.smallDirs * l.smallPerDir * l.smallBytes,
  };
  const out: string[] = [];
  for (const m of r.measures) {
    const want = whole[m.workload];
    if (m.store !== store || !want || m.mbps === undefined) continue;
    const read = m.mbps * 1e6 * m.seconds;
    if (read < 0.98 * want) {
      out.push(
        `- \`${m.workload}\`, ${LABEL[m.client]}: read ${num(read / 2 ** 20)} of ${num(want / 2 ** 20)} MiB before fio's ${l.capSeconds} s cap, so its epoch 2 found files it had never cached.`,
      );
    }
  }
  return out.length ? ['Epoch 1 runs cut short:', '', ...out, ''] : [];
}

function storeTable(r: PeersReport, store: 's3' | 'gcs', clients: ClientName[]): string[] {
  const head = `| Workload | ${clients.map((c) => LABEL[c]).join(' | ')} | bucketfs ÷ best peer (rate) | best peer ÷ bucketfs (requests) |`;
  const lines = [head, `| --- | ${clients.map(() => '---:').join(' | ')} | ---: | ---: |`];
  for (const w of r.workloads) {
    const ms = clients.map((c) => r.measures.find((m) => m.store === store && m.workload === w.name && m.client === c));
    if (ms.every((m) => !m)) continue;
    const v = versus(r, store, w.name);
    lines.push(
      `| ${w.title} (\`${w.name}\`) | ${ms.map((m) => rate(m)).join(' | ')} | ${ratio(v.rateRatio)}${v.bestPeer ? ` (${LABEL[v.bestPeer]})` : ''} | ${ratio(v.requestRatio)}${v.leanestPeer ? ` (${LABEL[v.leanestPeer]})` : ''} |`,
    );
  }
  return lines;
}

/** One row per workload, one column per client, each cell `cell(measure)`. */
function perClientTable(
  r: PeersReport,
  store: 's3' | 'gcs',
  clients: ClientName[],
  cell: (m: PeerMeasure | undefined) => string,
): string[] {
  const lines = [
    `| Workload | ${clients.map((c) => LABEL[c]).join(' | ')} |`,
    `| --- | ${clients.map(() => '---:').join(' | ')} |`,
  ];
  for (const w of r.workloads) {
    const ms = clients.map((c) => r.measures.find((m) => m.store === store && m.workload === w.name && m.client === c));
    if (ms.every((m) => !m)) continue;
    lines.push(`| \`${w.name}\` | ${ms.map(cell).join(' | ')} |`);
  }
  return lines;
}

function requestTable(r: PeersReport, store: 's3' | 'gcs', clients: ClientName[]): string[] {
  return perClientTable(r, store, clients, (m) => (m ? reqs(m.requests) : 'failed'));
}

function cpuTable(r: PeersReport, store: 's3' | 'gcs', clients: ClientName[]): string[] {
  return perClientTable(r, store, clients, (m) =>
    m?.cpu ? `${Math.round(m.cpu.procs.daemon ?? 0)}% (machine ${Math.round(m.cpu.machine)}%)` : '–',
  );
}

/** The simulator's table: per net, scenario and client, each epoch's it/s, GPU wait and requests. */
function simTable(r: PeersReport): string[] {
  const lines = [
    '| Network | Scenario | Client | Epoch | it/s | GPU waiting | Requests (GET / HEAD / LIST) | Requests/min | Bytes in |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of r.sims) {
    for (const e of s.result.epochs) {
      const q = e.requests;
      const perMin = q ? (60 * total(q)) / e.seconds : Number.NaN;
      lines.push(
        `| ${s.net} | ${SCENARIO[s.scenario]} | ${LABEL[s.client]} | ${e.epoch} | ${num(e.itPerSec)} | ${num(e.gpuWaitPct)}% | ${q ? `${int(total(q))} (${int(q.GET)} / ${int(q.HEAD)} / ${int(q.LIST)})` : 'n/a'} | ${int(perMin)} | ${q ? `${num(q.bytesIn / 2 ** 20)} MiB` : 'n/a'} |`,
      );
    }
    if (s.result.truncated)
      lines.push(
        `| ${s.net} | ${SCENARIO[s.scenario]} | ${LABEL[s.client]} | – | stopped at the run's time bound | | | | |`,
      );
  }
  return lines;
}

const DOCS = [
  '- **rclone mount** ([rclone mount docs](https://rclone.org/commands/rclone_mount/), "VFS Chunked Reading" and "VFS File Caching"; [S3 backend](https://rclone.org/s3/) for `--use-server-modtime`): parallel chunk streams (`--vfs-read-chunk-streams 16 --vfs-read-chunk-size 4M`, the starting point its docs give for high-performance object stores), `--vfs-cache-mode off` for streaming and `full` with `--cache-dir` for the epoch workloads and the cached training scenario.',
  '- **s3fs-fuse** ([s3fs(1), 1.90](https://manpages.ubuntu.com/manpages/lunar/man1/s3fs.1.html)): `parallel_count`/`multireq_max` for parallel ranged downloads, a stat cache sized for the data set and kept for the run (`max_stat_cache_size`, `stat_cache_expire`), `enable_noobj_cache`; `use_cache=DIR` for its disk cache.',
  '- **gcsfuse** ([CLI reference](https://cloud.google.com/storage/docs/cloud-storage-fuse/cli-options), [file caching](https://cloud.google.com/storage/docs/gcsfuse-file-cache), [performance tuning](https://cloud.google.com/storage/docs/cloud-storage-fuse/performance)): metadata caches without TTL or size bound and the kernel list cache (the ML-training settings), `--enable-buffered-read` for streaming; `--cache-dir` with `--file-cache-max-size-mb -1`, `--file-cache-cache-file-for-range-read` and `--file-cache-enable-parallel-downloads` for the epochs. It reaches fake-gcs-server through `--custom-endpoint` with `--anonymous-access` and `--enable-hns=false` (the emulator has no storage-layout API; without it the mount retries forever).',
  '- **bucketfs**: its defaults; `--cache-dir` for the epochs.',
];

export function renderPeers(r: PeersReport, charts: string[]): string {
  const out: string[] = [];
  const p = (...s: string[]) => out.push(...s);
  const l = r.layout;
  p(
    BEGIN,
    '',
    '## Peers: bucketfs against rclone mount, s3fs-fuse and gcsfuse',
    '',
    `Made by \`${r.command}\` on ${r.date} (bucketfs commit ${r.commit}), in ${(r.runSeconds / 60).toFixed(1)} min on ${r.nproc} cores / ${r.memGiB.toFixed(0)} GiB.` +
      ` Load average at start / end: ${r.loadavgStart} / ${r.loadavgEnd}. Quiet machine: ${r.quiet}.`,
    '',
  );
  if (r.quick) p('**Quick run (`BENCH_QUICK=1`): tiny data, figures not meaningful.**', '');
  if (r.quiet !== 'yes') {
    p(
      `**Taken on a loaded machine** (load average ${r.loadavgStart} at the start: other work shared the ${r.nproc} cores).`,
      'Every client lost CPU to it, bucketfs (one JavaScript thread) most of all; read these figures as',
      'indicative and re-run on a quiet machine before quoting them.',
      '',
    );
  }
  p(
    'The tools a user would otherwise pick, on the same server, the same data, in the same run: every',
    'client is mounted afresh for every workload (its own caches cold) with the page cache dropped, and',
    'runs with the settings its documentation gives for high read throughput. Store requests are counted',
    'by the server side: for MinIO its own metrics (v3 `api/requests`, read once a marker request shows in',
    'them, so none is missed), for fake-gcs-server (which keeps none) a counting proxy in front of it, which',
    'every GCS client goes through alike. Requests run from the mount to the unmount, so mount-time',
    'requests count; an epoch 2 counts its own run only.',
    '',
    `Data (smaller than the limits benchmark's, so five clients fit one sitting): ${l.bigCount} objects of ${num(l.bigBytes / 2 ** 20)} MiB, ${int(l.smallDirs * l.smallPerDir)} files of ${l.smallBytes / 1024} KiB in ${l.smallDirs} directories, fio caps of ${l.capSeconds} s (random: ${l.randSeconds} s), ttfb over ${l.ttfbFiles} files; \`ls -lR\` trees of ${r.trees.map((t) => `${int(t.dirs * (t.perDir + 1))} entries`).join(' and ')}.`,
    '',
    '### Versions and settings',
    '',
    '| Client | Version | Streaming flags | Epoch (disk cache) flags |',
    '| --- | --- | --- | --- |',
  );
  const ver: Record<ClientName, string> = {
    bucketfs: `commit ${r.commit}`,
    'bucketfs-gs': `commit ${r.commit}`,
    rclone: r.versions.rclone ?? '',
    s3fs: r.versions.s3fs ?? '',
    gcsfuse: r.versions.gcsfuse ?? '',
  };
  for (const [c, f] of Object.entries(r.flags)) {
    p(`| ${LABEL[c as ClientName]} | ${ver[c as ClientName]} | \`${f.streaming || '(defaults)'}\` | \`${f.cached}\` |`);
  }
  p(
    '',
    ...DOCS,
    '',
    `Servers: MinIO ${r.versions.minio ?? ''}; fake-gcs-server ${r.versions['fake-gcs-server'] ?? ''}.`,
    "Tried and not installable from this machine's registries: Mountpoint for S3 (crates.io has only a",
    'placeholder crate), goofys and geesefs (the Go module proxy refuses both).',
    '',
    '### S3 (MinIO, plain loopback)',
    '',
    "Rate: MB/s the application read (fio's I/O phase), IOPS, p50 latency of the first 4 KiB (ttfb), or",
    'seconds of the whole `ls -lR`. Ratios above 1 mean bucketfs is ahead: faster, or fewer requests than',
    'the leanest peer.',
    '',
    ...storeTable(r, 's3', ['bucketfs', 'rclone', 's3fs']),
    '',
    ...cutShort(r, 's3'),
    'Store requests per workload and client (counted by MinIO), and the MiB MinIO sent (a client that',
    'downloads whole objects, or reads ahead far, shows it here):',
    '',
    ...requestTable(r, 's3', ['bucketfs', 'rclone', 's3fs']),
    '',
  );
  if (r.measures.some((m) => m.store === 'gcs')) {
    p(
      '### GCS (fake-gcs-server, through the counting proxy)',
      '',
      'The proxy is a Node process in the data path of both clients alike; it bounds both rates here.',
      '',
      ...storeTable(r, 'gcs', ['bucketfs-gs', 'gcsfuse']),
      '',
      ...cutShort(r, 'gcs'),
      'Store requests and MiB sent (counted by the proxy; HEAD here is an object metadata GET):',
      '',
      ...requestTable(r, 'gcs', ['bucketfs-gs', 'gcsfuse']),
      '',
    );
  }
  p(
    '### Training loop (bench/train-sim.ts)',
    '',
    `One synthetic data set, ${int(r.train.samples)} samples of ${r.train.minBytes / 1024}–${r.train.maxBytes / 1024} KiB (scaled down from the issue's 20,000 to fit the run), in three layouts: scenario 1 reads it as one object per sample with no cache; scenario 2 the same with each client's disk cache over ${r.sim.cachedEpochs} epochs; scenario 3 reads tar shards of ~${num(r.train.shardBytes / 2 ** 20)} MiB (WebDataset order: shards shuffled, samples in order within one), no cache. ${r.sim.workers} loader workers read whole samples (\`readFile\`, as \`open().read()\` in a Dataset) at most ${r.sim.prefetch} batches each ahead of a stand-in GPU that takes batches of ${r.sim.batch} and computes ${r.sim.computeMs} ms on each (so at most ${num(1000 / r.sim.computeMs)} it/s). Every scenario runs on plain loopback and shaped like S3 (${r.shape}). Requests and bytes in are counted by a proxy in front of the store (in front of toxiproxy when shaped), sampled every second.`,
    '',
  );
  for (const c of charts) p(`![${c.replace(/\.png$/, '')}](${c})`, '');
  p(...simTable(r), '');
  p(
    '### CPU per client',
    '',
    "The client daemon's CPU over each run, percent of one core (machine: all cores = 100%).",
    '',
    ...cpuTable(r, 's3', ['bucketfs', 'rclone', 's3fs']),
    '',
  );
  if (r.measures.some((m) => m.store === 'gcs')) p(...cpuTable(r, 'gcs', ['bucketfs-gs', 'gcsfuse']), '');
  if (r.profiles?.length) {
    p(
      "### Where bucketfs's time goes",
      '',
      'Extra S3 runs of bucketfs under `node --cpu-prof` (not the runs in the tables): self time of its',
      'one JavaScript thread by category, then the functions with the most self time.',
      '',
    );
    for (const prof of r.profiles) {
      p(`**\`${prof.workload}\`**: ${prof.categories.map((c) => `${c.name} ${c.pct.toFixed(0)}%`).join(', ')}`, '');
      p('| Function (self time) | Share |', '| --- | ---: |');
      for (const fn of prof.functions.slice(0, 6))
        p(`| \`${fn.name.replace(/\|/g, '\\|')}\` | ${fn.pct.toFixed(1)}% |`);
      p('');
    }
  }
  p(
    '### Left out',
    '',
    '- Write workloads: they need the writes issue, which has not landed; bucketfs mounts read-only.',
    '- `ls -lR` of 100,000 entries on GCS: fake-gcs-server loads a preloaded bucket in quadratic time.',
    '- The training loop on GCS (bucketfs gs:// against gcsfuse): not run, to keep the run in one sitting.',
    '',
    '```sh',
    'npm run bench:peers              # = BENCH_PEERS=1 bash bench/run.sh; as root',
    'BENCH_QUICK=1 npm run bench:peers  # tiny data; report in /tmp/bucketfs-bench-quick/',
    '```',
    '',
    'Knobs: `BENCH_PEERS_PARTS=s3,gcs,ls,sim` (which parts run), `BENCH_WORKLOADS=seq-1t,small-16`,',
    "`BENCH_SIM_COMPUTE_MS` (the stand-in GPU's time per batch). `node dist/bench/peers-render.js",
    'bench/results/peers.json docs [PYTHON]` re-renders this section from the last run.',
    '',
  );
  if (r.errors.length) p('Errors in this run:', '', ...r.errors.map((e) => `- ${e}`), '');
  p(END);
  return `${out.join('\n')}\n`;
}

/** `md` with its peers section replaced by `section` (appended if it has none). */
export function spliceSection(md: string, section: string): string {
  const a = md.indexOf(BEGIN);
  const b = md.indexOf(END);
  if (a >= 0 && b > a) return `${md.slice(0, a)}${section.trimEnd()}${md.slice(b + END.length)}`;
  return `${md.trimEnd()}\n\n${section}`;
}

/** The peers section of an existing docs/benchmarks.md, to carry over when the limits run rewrites it. */
export function existingSection(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const md = readFileSync(file, 'utf8');
  const a = md.indexOf(BEGIN);
  const b = md.indexOf(END);
  return a >= 0 && b > a ? `${md.slice(a, b + END.length)}\n` : undefined;
}

export function writePeersReport(
  r: PeersReport,
  jsonFile: string,
  outDir: string,
  root: string,
  python?: string,
): string[] {
  mkdirSync(outDir, { recursive: true });
  mkdirSync(path.dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify(r)}\n`);
  const written = [jsonFile];
  let charts: string[] = [];
  if (python) {
    const res = spawnSync(python, [path.join(root, 'bench', 'peers-chart.py'), jsonFile, outDir], {
      encoding: 'utf8',
      timeout: 180_000,
    });
    if (res.status === 0) {
      charts = res.stdout.trim().split('\n').filter(Boolean);
      written.push(...charts.map((c) => path.join(outDir, c)));
    } else r.errors.push(`charts: ${(res.stderr || res.stdout).trim().split('\n').pop()}`);
  }
  const md = path.join(outDir, 'benchmarks.md');
  const before = existsSync(md) ? readFileSync(md, 'utf8') : '# Benchmarks\n';
  writeFileSync(md, spliceSection(before, renderPeers(r, charts)));
  written.push(md);
  return written;
}
