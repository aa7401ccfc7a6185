// The peer comparison driver (npm run bench:peers, started by bench/run.sh with BENCH_PEERS=1):
// bucketfs against the FUSE clients a user would pick instead — rclone mount, s3fs-fuse, and
// gcsfuse for gs:// — in one run, on the same servers and the same data:
//   read workloads     the fio jobs of the limits benchmark (bench/workloads.ts), each client
//                      mounted cold per workload, store requests counted by the server
//   epoch workloads    the same job twice on one mount with each client's own disk cache
//   ls -lR             trees of 10,000 and 100,000 entries, cold
//   training loop      bench/train-sim.ts over three layouts of one data set, on loopback and
//                      shaped like S3 (toxiproxy), through a counting proxy for per-second requests
// then writes bench/results/peers.json, the charts, and the peers section of docs/benchmarks.md.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bigFile, putMany } from '../test/helpers/data.js';
import { cleanEnv } from '../test/helpers/mount.js';
import { type Preload, startServer, type TestServer, toolsBin } from '../test/helpers/servers.js';
import { type ClientName, describeFlags, mountClient, type PeerBins, type Store } from './clients.js';
import { type CountProxy, type Counts, diffCounts, startCountProxy } from './count-proxy.js';
import { fio, fromFio, listSmall } from './fio-run.js';
import { BUCKET, bigKey, type Layout, smallObjects } from './layout.js';
import { type MinioCreds, settled } from './minio-metrics.js';
import { type PeerMeasure, type PeersReport, type Scenario, type SimRun, writePeersReport } from './peers-report.js';
import {
  assertRunning,
  BENCH_ROOT,
  cleanupAll,
  cpuMeter,
  DIST_BENCH,
  dropCaches,
  findPid,
  forgetPid,
  onCleanup,
  recordPid,
  runBounded,
  S3_SHAPE,
  type Shaper,
  sleep,
  startShaper,
  WORK,
} from './procs.js';
import { summarizeProfile } from './profile-summary.js';
import type { ProfileSummary } from './report.js';
import { FILES_ROOT, SHARDS_ROOT, sampleObjects, shardObjects, type TrainSet } from './train-data.js';
import type { SimResult, SimSpec } from './train-sim.js';
import { WORKLOADS, type Workload } from './workloads.js';

const ROOT = BENCH_ROOT;
const SHAPE = S3_SHAPE;
/** Each client's disk cache for the epoch workloads: the machine's disk, as bucketfs's in bench.ts. */
const CACHE_ROOT = process.env.BENCH_CACHE_ROOT ?? '/var/tmp/bucketfs-bench-peers-cache';
const QUICK = process.env.BENCH_QUICK === '1';

const MiB = 2 ** 20;
const KiB = 1024;

/**
 * Smaller than the limits benchmark's data (bench/layout.ts FULL): five clients, each mounted cold
 * for every workload, have to fit one sitting on this machine (docs/benchmarks.md says so).
 */
const LAYOUT: Layout = QUICK
  ? {
      bigBytes: 64 * MiB,
      bigCount: 4,
      smallDirs: 16,
      smallPerDir: 16,
      smallBytes: 128 * KiB,
      ttfbFiles: 16,
      randSeconds: 3,
      capSeconds: 5,
      sdkSeqCapSeconds: 5,
    }
  : {
      bigBytes: 512 * MiB,
      bigCount: 4,
      smallDirs: 16,
      smallPerDir: 128,
      smallBytes: 128 * KiB,
      ttfbFiles: 100,
      randSeconds: 5,
      capSeconds: 6,
      sdkSeqCapSeconds: 6,
    };

/** The ls -lR trees: name, directories, files per directory. */
const TREES = QUICK
  ? [{ name: 'ls-1k', dirs: 10, perDir: 100, gcs: true }]
  : [
      { name: 'ls-10k', dirs: 100, perDir: 100, gcs: true },
      // fake-gcs-server loads a preloaded bucket in time quadratic in its objects: 100,000 is S3 only.
      { name: 'ls-100k', dirs: 100, perDir: 1000, gcs: false },
    ];

const TRAIN: TrainSet = QUICK
  ? { samples: 300, dirs: 4, minBytes: 100 * KiB, maxBytes: 200 * KiB, shardBytes: 8 * MiB }
  : { samples: 3000, dirs: 16, minBytes: 100 * KiB, maxBytes: 200 * KiB, shardBytes: 100 * MiB };

/** The simulated job: loader workers, batch size, the "GPU"'s time per batch, epochs with a cache. */
const SIM = {
  workers: 8,
  batch: 32,
  computeMs: Number(process.env.BENCH_SIM_COMPUTE_MS ?? 50),
  prefetch: 2,
  cachedEpochs: 3,
  maxSeconds: QUICK ? 40 : 90,
};

const S3_CLIENTS: ClientName[] = ['bucketfs', 'rclone', 's3fs'];
const GCS_CLIENTS: ClientName[] = ['bucketfs-gs', 'gcsfuse'];

function log(msg: string): void {
  process.stdout.write(`[peers ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Counts requests for one store: MinIO's own metrics (settled), or the counting proxy's. */
interface Counter {
  read(): Promise<Counts>;
}

function dirBytes(dir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) n += statSync(path.join(e.parentPath, e.name)).blocks * 512;
    }
  } catch {
    // a cache dir being rewritten under us: the next poll counts it
  }
  return n;
}

/** Waits until a client's disk cache stops growing: its background downloads are done. */
async function cacheSettled(dir: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let stable = 0;
  while (Date.now() < deadline) {
    const n = dirBytes(dir);
    stable = n === last ? stable + 1 : 0;
    if (stable >= 4) return;
    last = n;
    await sleep(500);
  }
}

interface Ctx {
  bins: PeerBins;
  bucketfsBin: string;
  measures: PeerMeasure[];
  errors: string[];
}

async function attempt(ctx: Ctx, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assertRunning();
    const msg = `${what}: ${(err as Error).message.split('\n')[0]}`;
    log(`FAILED ${msg}`);
    ctx.errors.push(msg);
  }
}

/** One fio workload (or an epoch pair) on one client, mounted cold; requests counted around it. */
async function measureFio(
  ctx: Ctx,
  runs: Workload[],
  client: ClientName,
  store: Store,
  counter: Counter,
): Promise<void> {
  const name = runs.map((w) => w.name).join('+');
  const cached = runs.some((w) => w.epoch);
  const cacheDir = cached ? path.join(CACHE_ROOT, `${client}-${name}`) : undefined;
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  dropCaches();
  let c0 = await counter.read();
  const d = await mountClient(
    client,
    store,
    { tag: name, ...(cacheDir ? { cacheDir } : {}) },
    ctx.bins,
    ctx.bucketfsBin,
  );
  try {
    for (const w of runs) {
      if (w.epoch === 2 && cacheDir) {
        await cacheSettled(cacheDir);
        c0 = await counter.read();
      }
      dropCaches();
      const meter = cpuMeter({ daemon: d.child.pid });
      const listed = listSmall(w, LAYOUT, d.mountpoint);
      const run = await fio(w, LAYOUT, d.mountpoint, `${client}`);
      const cpu = meter();
      const m = fromFio(w, run, listed);
      const c1 = w.epoch === 1 ? undefined : await counter.read();
      ctx.measures.push({
        workload: w.name,
        store: store.kind,
        client,
        kind: w.kind,
        mbps: m.mbps,
        ...(m.iops !== undefined ? { iops: m.iops } : {}),
        ...(m.latMs ? { latMs: m.latMs } : {}),
        seconds: m.seconds,
        setupSeconds: m.setupSeconds ?? 0,
        requests: c1 ? diffCounts(c0, c1) : undefined,
        cpu,
      });
      if (w.epoch === 1) {
        // Epoch 1's requests include the cache's background downloads: counted once they are done.
        if (cacheDir) await cacheSettled(cacheDir);
        const c1e = await counter.read();
        const last = ctx.measures[ctx.measures.length - 1];
        if (last) last.requests = diffCounts(c0, c1e);
        c0 = c1e;
      }
    }
  } finally {
    await d.stop();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** `ls -lR` of a tree on a cold mount: every entry listed and stat'ed. */
async function measureLs(
  ctx: Ctx,
  tree: { name: string; dirs: number; perDir: number },
  client: ClientName,
  store: Store,
  counter: Counter,
): Promise<void> {
  dropCaches();
  const c0 = await counter.read();
  const d = await mountClient(client, store, { tag: tree.name }, ctx.bins, ctx.bucketfsBin);
  try {
    const meter = cpuMeter({ daemon: d.child.pid });
    const t0 = performance.now();
    const r = await runBounded('ls', ['-lR', path.join(d.mountpoint, 'ls', tree.name)], {
      timeoutMs: 600_000,
      label: `ls ${tree.name}`,
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = meter();
    if (r.code !== 0) throw new Error(`ls -lR exited ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
    const entries = r.stdout.split('\n').filter((l) => /^[-d]/.test(l)).length;
    const expected = tree.dirs * (tree.perDir + 1);
    await d.stop();
    const c1 = await counter.read();
    ctx.measures.push({
      workload: tree.name,
      store: store.kind,
      client,
      kind: 'listing',
      seconds,
      entries,
      expectedEntries: expected,
      requests: diffCounts(c0, c1),
      cpu,
    });
  } finally {
    await d.stop();
  }
}

/** One training-loop scenario on one client: a cold mount, the simulator as a child process. */
async function simulate(
  client: ClientName,
  store: Store,
  net: 'loopback' | 'shaped',
  scenario: Scenario,
  ctx: Ctx,
  statsUrl: string,
): Promise<SimRun> {
  const cacheDir = scenario === 'cached' ? path.join(CACHE_ROOT, `sim-${client}-${net}`) : undefined;
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  dropCaches();
  const tag = `sim-${net}-${scenario}`;
  const d = await mountClient(client, store, { tag, ...(cacheDir ? { cacheDir } : {}) }, ctx.bins, ctx.bucketfsBin);
  try {
    const spec: SimSpec = {
      root: path.join(d.mountpoint, scenario === 'shards' ? SHARDS_ROOT : FILES_ROOT),
      layout: scenario === 'shards' ? 'shards' : 'files',
      workers: SIM.workers,
      batch: SIM.batch,
      computeMs: SIM.computeMs,
      prefetch: SIM.prefetch,
      epochs: scenario === 'cached' ? SIM.cachedEpochs : 1,
      seed: 27,
      statsUrl,
      maxSeconds: SIM.maxSeconds,
    };
    const specFile = path.join(WORK, `sim-${client}-${tag}.json`);
    writeFileSync(specFile, JSON.stringify(spec));
    const r = await runBounded(process.execPath, [path.join(DIST_BENCH, 'train-sim.js'), specFile], {
      // libuv's pool runs each whole-file read: one thread per loader worker, as PyTorch's processes.
      env: cleanEnv({ UV_THREADPOOL_SIZE: String(SIM.workers + 2) }),
      timeoutMs: (SIM.maxSeconds + 120) * 1000,
      label: `train-sim ${client}`,
    });
    if (r.code !== 0) throw new Error(`train-sim exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
    return { client, net, scenario, result: JSON.parse(r.stdout) as SimResult };
  } finally {
    await d.stop();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** Every fio workload (epoch pairs on one mount), then the ls -lR trees, on each of `clients`. */
async function measureStore(
  ctx: Ctx,
  workloads: Workload[],
  clients: ClientName[],
  store: Store,
  counter: Counter,
  ls: boolean,
): Promise<void> {
  const where = store.kind === 's3' ? 'S3' : 'GCS';
  for (const w of workloads) {
    if (w.epoch === 2) continue;
    const second = w.epoch === 1 ? workloads.find((x) => x.epoch === 2 && x.job === w.job) : undefined;
    for (const client of clients) {
      log(`${where} ${w.name}${second ? `+${second.name}` : ''}: ${client}`);
      await attempt(ctx, `${client} ${w.name}`, () =>
        measureFio(ctx, second ? [w, second] : [w], client, store, counter),
      );
    }
  }
  if (!ls) return;
  for (const t of trees().filter((x) => store.kind === 's3' || x.gcs)) {
    for (const client of clients) {
      log(`${where} ${t.name}: ${client}`);
      await attempt(ctx, `${client} ${t.name}`, () => measureLs(ctx, t, client, store, counter));
    }
  }
}

function trees(): { name: string; keys: string[]; gcs: boolean; dirs: number; perDir: number }[] {
  return TREES.map((t) => ({
    ...t,
    keys: Array.from({ length: t.dirs * t.perDir }, (_, i) => {
      const d = Math.floor(i / t.perDir);
      return `ls/${t.name}/d${String(d).padStart(3, '0')}/f${String(i % t.perDir).padStart(4, '0')}`;
    }),
  }));
}

async function seedS3(server: TestServer, pool: Buffer): Promise<void> {
  await server.createBucket(BUCKET);
  const big = await bigFile(LAYOUT.bigBytes);
  log(`S3: seeding ${LAYOUT.bigCount} objects of ${LAYOUT.bigBytes / MiB} MiB, small files, trees, the training set`);
  await Promise.all(Array.from({ length: LAYOUT.bigCount }, (_, i) => server.putFile(BUCKET, bigKey(i), big.path)));
  await putMany(server, BUCKET, smallObjects(LAYOUT), 32);
  for (const t of trees()) {
    if (!server.putEmptyObjects) throw new Error('MinIO cannot take a snowball upload');
    await server.putEmptyObjects(BUCKET, t.keys);
  }
  await putMany(server, BUCKET, sampleObjects(TRAIN, pool), 32);
  await putMany(server, BUCKET, shardObjects(TRAIN, pool), 2);
}

async function startGcs(): Promise<TestServer> {
  const objects = function* (): Generator<[string, Buffer | string]> {
    yield* smallObjects(LAYOUT);
    for (const t of trees()) if (t.gcs) for (const k of t.keys) yield [k, ''];
  };
  const preload: Preload = { bucket: BUCKET, objects: objects() };
  const server = await startServer('gcs', preload);
  const big = await bigFile(LAYOUT.bigBytes);
  for (let i = 0; i < LAYOUT.bigCount; i++) await server.putFile(BUCKET, bigKey(i), big.path);
  rmSync(path.dirname(big.path), { recursive: true, force: true });
  return server;
}

function readPeerBins(): { bins: PeerBins; versions: Record<string, string> } {
  const text = process.env.BENCH_PEER_BINS ?? '';
  const bins: Partial<PeerBins> = {};
  const versions: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [name, bin, version] = line.trim().split(/\s+/);
    if (!name || !bin) continue;
    (bins as Record<string, string>)[name] = bin;
    versions[name] = version ?? '';
  }
  if (!bins.rclone || !bins.s3fs || !bins.gcsfuse) throw new Error('BENCH_PEER_BINS lacks a peer: run bench/run.sh');
  return { bins: bins as PeerBins, versions };
}

async function main(): Promise<void> {
  if (!WORK) throw new Error('BENCH_WORK is not set: start the benchmark with BENCH_PEERS=1 bash bench/run.sh');
  const started = performance.now();
  const loadavgStart = loadavg();
  const { bins, versions } = readPeerBins();
  const ctx: Ctx = { bins, bucketfsBin: path.join(ROOT, 'bin', 'bucketfs'), measures: [], errors: [] };
  const only = process.env.BENCH_WORKLOADS?.split(',').map((s) => s.trim());
  const parts = new Set((process.env.BENCH_PEERS_PARTS ?? 's3,gcs,ls,sim').split(','));
  const workloads = WORKLOADS.filter((w) => !only || only.includes(w.name));
  const sims: SimRun[] = [];
  const profiles: ProfileSummary[] = [];
  mkdirSync(path.join(WORK, 'logs'), { recursive: true });

  const pool = (await import('node:crypto')).randomBytes(8 * MiB);
  const minio = await startServer('minio');
  const minioPid = findPid(['minio', new URL(minio.endpoint).host]);
  recordPid(minioPid, 'minio');
  onCleanup('minio', async () => {
    await minio.stop();
    forgetPid(minioPid);
  });
  await seedS3(minio, pool);
  const creds: MinioCreds = {
    endpoint: minio.endpoint,
    accessKeyId: minio.accessKeyId,
    secretAccessKey: minio.secretAccessKey,
    region: minio.region,
  };
  const s3: Store = { kind: 's3', bucket: BUCKET, ...creds };
  const minioCounter: Counter = { read: () => settled(creds) };

  // The report is rewritten after every part (without the charts until the end), so a run cut
  // short still leaves what it measured.
  const flush = (final: boolean): void => {
    const mem = /MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    const report: PeersReport = {
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      command: process.env.BENCH_COMMAND ?? 'npm run bench:peers',
      commit: process.env.BENCH_COMMIT ?? 'unknown',
      quick: QUICK,
      nproc: os.availableParallelism(),
      memGiB: mem ? Number(mem) / 1024 / 1024 : 0,
      loadavgStart,
      loadavgEnd: loadavg(),
      quiet: process.env.BENCH_QUIET ?? 'unknown',
      layout: LAYOUT,
      trees: TREES.map(({ name, dirs, perDir, gcs }) => ({ name, dirs, perDir, gcs })),
      train: TRAIN,
      sim: SIM,
      shape: `+${SHAPE.latencyMs} ms on every response, ${SHAPE.bytesPerSec / 1e6} MB/s per TCP connection`,
      versions: { ...versions, minio: pinned('minio'), 'fake-gcs-server': pinned('fake-gcs-server') },
      flags: Object.fromEntries(
        [...S3_CLIENTS, ...GCS_CLIENTS].map((c) => [
          c,
          { streaming: describeFlags(c, false), cached: describeFlags(c, true) },
        ]),
      ),
      workloads: [
        ...workloads.map((w) => ({ name: w.name, title: w.title, kind: w.kind as PeerMeasure['kind'] })),
        ...TREES.map((t) => ({
          name: t.name,
          title: `ls -lR of ${(t.dirs * (t.perDir + 1)).toLocaleString('en-US')} entries (${t.dirs} directories)`,
          kind: 'listing' as const,
        })),
      ],
      measures: ctx.measures,
      sims,
      profiles,
      errors: ctx.errors,
      runSeconds: (performance.now() - started) / 1000,
    };
    const outDir = process.env.BENCH_OUT ?? path.join(ROOT, 'docs');
    const jsonFile = process.env.BENCH_JSON ?? path.join(ROOT, 'bench', 'results', 'peers.json');
    const written = writePeersReport(report, jsonFile, outDir, ROOT, final ? process.env.BENCH_PYTHON : undefined);
    log(`wrote ${written.join(', ')} (${report.runSeconds.toFixed(0)} s)`);
  };
  if (parts.has('s3')) {
    await measureStore(ctx, workloads, S3_CLIENTS, s3, minioCounter, parts.has('ls'));
    // Where bucketfs's time goes on the workloads peers tend to win: extra runs, not in the tables.
    for (const name of (process.env.BENCH_PEERS_PROFILE ?? 'small-16,ttfb,rand-4k').split(',')) {
      const w = workloads.find((x) => x.name === name);
      if (!w) continue;
      log(`CPU profile of bucketfs (S3): ${name}`);
      await attempt(ctx, `profile ${name}`, async () => {
        const dir = path.join(WORK, 'prof', name);
        dropCaches();
        const d = await mountClient(
          'bucketfs',
          s3,
          { tag: `prof-${name}`, nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`] },
          ctx.bins,
          ctx.bucketfsBin,
        );
        try {
          listSmall(w, LAYOUT, d.mountpoint);
          await fio(w, LAYOUT, d.mountpoint, 'bucketfs-prof');
        } finally {
          await d.stop();
        }
        const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
        if (file) profiles.push(summarizeProfile(path.join(dir, file), name, 'loopback'));
      });
    }
    flush(false);
  }

  if (parts.has('sim')) {
    let shaper: Shaper | undefined;
    const toxiproxy = process.env.BENCH_TOXIPROXY ?? '';
    for (const net of ['loopback', 'shaped'] as const) {
      if (net === 'shaped') {
        if (!toxiproxy) throw new Error('BENCH_TOXIPROXY is not set');
        shaper = await startShaper(toxiproxy, minio.endpoint, SHAPE.latencyMs, SHAPE.bytesPerSec);
      }
      const proxy: CountProxy = await startCountProxy(
        shaper?.endpoint ?? minio.endpoint,
        path.join(WORK, `proxy-${net}`),
      );
      try {
        const store: Store = { ...s3, endpoint: proxy.endpoint };
        for (const scenario of ['files', 'cached', 'shards'] as const) {
          for (const client of S3_CLIENTS) {
            log(`training loop (${net}, ${scenario}): ${client}`);
            await attempt(ctx, `train-sim ${client} ${net} ${scenario}`, async () => {
              sims.push(await simulate(client, store, net, scenario, ctx, proxy.countsUrl));
            });
          }
        }
      } finally {
        await proxy.stop();
      }
    }
    await shaper?.stop();
    flush(false);
  }

  if (parts.has('gcs')) {
    log('GCS: starting fake-gcs-server with the data preloaded');
    await attempt(ctx, 'GCS', async () => {
      const gcs = await startGcs();
      const gcsPid = findPid(['fake-gcs-server', new URL(gcs.endpoint).host]);
      recordPid(gcsPid, 'fake-gcs-server');
      onCleanup('fake-gcs-server', async () => {
        await gcs.stop();
        forgetPid(gcsPid);
      });
      const proxy = await startCountProxy(gcs.endpoint, path.join(WORK, 'proxy-gcs'), true);
      const store: Store = {
        kind: 'gcs',
        bucket: BUCKET,
        endpoint: proxy.endpoint,
        accessKeyId: '',
        secretAccessKey: '',
        region: '',
      };
      // Every response has left the proxy once the client has unmounted.
      const counter: Counter = { read: () => proxy.counts() };
      await measureStore(ctx, workloads, GCS_CLIENTS, store, counter, parts.has('ls'));
    });
  }

  flush(true);
}

/** A server's pinned version from scripts/install-servers.sh's stamp. */
function pinned(name: string): string {
  try {
    return readFileSync(path.join(path.dirname(path.dirname(toolsBin(name))), 'stamps', name), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

let exiting = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`bench:peers: ${sig}: cleaning up\n`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

main().then(
  async () => {
    await cleanupAll();
    process.exit(0);
  },
  async (err: Error) => {
    if (exiting) return;
    process.stderr.write(`bench:peers: ${err.stack ?? err.message}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
