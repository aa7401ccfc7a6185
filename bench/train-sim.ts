// The training-loop simulator: a data loader and a stand-in GPU over a mounted data set, as a
// PyTorch job would drive a file system. N loader workers read samples (a whole-file read per
// sample, as `Dataset.__getitem__` with `open().read()` does; or, for tar shards, each worker reads
// one shard front to back as WebDataset does), at most `prefetch` batches ahead; the "GPU" takes a
// batch when one is ready and computes for a fixed time. Every second it records iterations, the
// time the GPU waited, and (from the counting proxy in front of the store) requests by kind and
// bytes in. Usage: node dist/bench/train-sim.js SPEC.json  → result JSON on stdout.
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type Counts, diffCounts } from './count-proxy.js';

export interface SimSpec {
  /** The data set's root on the mount: files/dNN/sample-N.bin, or shards/shard-N.tar. */
  root: string;
  layout: 'files' | 'shards';
  workers: number;
  batch: number;
  computeMs: number;
  /** Batches each worker may have ready ahead of the GPU (PyTorch's prefetch_factor). */
  prefetch: number;
  epochs: number;
  seed: number;
  /** The counting proxy's JSON counts (GET → Counts), sampled each second. */
  statsUrl?: string;
  /** The whole run stops after this long, whatever epoch it is in. */
  maxSeconds: number;
}

export interface SimSecond {
  /** Seconds since the run started (end of this one-second window). */
  t: number;
  epoch: number;
  iters: number;
  /** Milliseconds of the window the GPU spent waiting for a batch. */
  waitMs: number;
  counts?: Counts;
}

export interface SimEpoch {
  epoch: number;
  seconds: number;
  iters: number;
  itPerSec: number;
  gpuWaitPct: number;
  requests?: Counts;
}

export interface SimResult {
  samples: number;
  /** Building the index: listing the data set's directories, before epoch 1. */
  listSeconds: number;
  epochs: SimEpoch[];
  series: SimSecond[];
  /** The run hit maxSeconds before its last epoch ended. */
  truncated: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A small deterministic PRNG (mulberry32): the same shuffle for every client. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(xs: T[], rand: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/** The data set's index, as a Dataset builds it: a listing of every directory. */
function index(spec: SimSpec): string[] {
  if (spec.layout === 'shards') {
    return readdirSync(spec.root)
      .filter((f) => f.endsWith('.tar'))
      .sort()
      .map((f) => path.join(spec.root, f));
  }
  const out: string[] = [];
  for (const d of readdirSync(spec.root).sort()) {
    for (const f of readdirSync(path.join(spec.root, d))) out.push(path.join(spec.root, d, f));
  }
  return out;
}

/** Streams one tar shard front to back; `onSample` runs as each regular member's data ends. */
async function readShard(file: string, onSample: () => Promise<void>, stopped: () => boolean): Promise<void> {
  // A tar is 512-byte headers, each followed by its data padded to 512; zero blocks end it.
  let pending = Buffer.alloc(0);
  let skip = 0;
  let isSample = false;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    if (stopped()) return;
    let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    pending = Buffer.alloc(0);
    while (buf.length) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length);
        skip -= n;
        buf = buf.subarray(n);
        if (skip === 0 && isSample) await onSample();
        continue;
      }
      if (buf.length < 512) {
        pending = Buffer.from(buf);
        break;
      }
      const header = buf.subarray(0, 512);
      buf = buf.subarray(512);
      if (header.every((b) => b === 0)) continue;
      const size = Number.parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim(), 8) || 0;
      // Only regular members are samples; anything else (a pax header) is skipped as data.
      const type = header[156] ?? 0;
      isSample = type === 0x30 || type === 0;
      skip = Math.ceil(size / 512) * 512;
      if (skip === 0 && isSample) await onSample();
    }
  }
}

export async function simulate(spec: SimSpec): Promise<SimResult> {
  const started = performance.now();
  const now = () => (performance.now() - started) / 1000;
  const stats = async (): Promise<Counts | undefined> => {
    if (!spec.statsUrl) return undefined;
    return (await (await fetch(spec.statsUrl)).json()) as Counts;
  };
  // Epoch 1's requests include building the index (the listings), as a job's first epoch would.
  const atStart = await stats();
  const items = index(spec);
  const listSeconds = now();
  const rand = rng(spec.seed);
  const epochs: SimEpoch[] = [];
  const series: SimSecond[] = [];
  const bound = spec.workers * spec.prefetch * spec.batch;
  let ready = 0;
  let epoch = 0;
  let iters = 0;
  let waitMs = 0;
  let waitingSince: number | undefined;
  let wake: (() => void) | undefined;
  let sampling = true;
  /** Set when an epoch's GPU work is over (or the run is out of time): loaders stop taking work. */
  let draining = false;
  let truncated = false;
  const notifyReady = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // One sample is in memory: count it, then wait while the loader is `prefetch` batches ahead.
  // Several workers may wait at once; each wake-up lets all of them look again.
  const waiters: (() => void)[] = [];
  const produced = async () => {
    ready++;
    notifyReady();
    while (ready >= bound && !draining) await new Promise<void>((r) => waiters.push(r));
  };
  const freeSpace = () => {
    for (const w of waiters.splice(0)) w();
  };

  const sampler = (async () => {
    let lastIters = 0;
    let lastWait = 0;
    let next = 1;
    while (sampling) {
      await sleep(Math.max(0, started + next * 1000 - performance.now()));
      const w = waitMs + (waitingSince === undefined ? 0 : performance.now() - waitingSince);
      const counts = await stats().catch(() => undefined);
      series.push({ t: next, epoch, iters: iters - lastIters, waitMs: w - lastWait, ...(counts ? { counts } : {}) });
      lastIters = iters;
      lastWait = w;
      next++;
    }
  })();

  for (epoch = 1; epoch <= spec.epochs && !truncated; epoch++) {
    const t0 = now();
    const iters0 = iters;
    const wait0 = waitMs;
    const c0 = epoch === 1 ? atStart : await stats();
    const order = shuffled(items, rand);
    let nextItem = 0;
    let loading = true;
    ready = 0;
    draining = false;
    const perEpoch = spec.layout === 'files' ? Math.floor(items.length / spec.batch) : Number.POSITIVE_INFINITY;
    const worker = async () => {
      for (let i = nextItem++; i < order.length && !draining; i = nextItem++) {
        const item = order[i] as string;
        if (spec.layout === 'files') {
          await readFile(item);
          await produced();
        } else {
          await readShard(item, produced, () => truncated);
        }
      }
    };
    const loaders = Promise.all(Array.from({ length: spec.workers }, worker)).then(() => {
      loading = false;
      notifyReady();
    });
    for (let done = 0; done < perEpoch; done++) {
      if (ready < spec.batch) {
        waitingSince = performance.now();
        while (ready < spec.batch && loading) {
          await new Promise<void>((r) => {
            wake = r;
          });
        }
        waitMs += performance.now() - waitingSince;
        waitingSince = undefined;
        // A shard epoch ends when its samples do (the last partial batch dropped).
        if (ready < spec.batch) break;
      }
      ready -= spec.batch;
      freeSpace();
      await sleep(spec.computeMs);
      iters++;
      if (now() > spec.maxSeconds) {
        truncated = true;
        break;
      }
    }
    // The epoch's leftovers (fewer than a batch: drop_last) go; the loaders finish and stop.
    draining = true;
    freeSpace();
    await loaders;
    const c1 = await stats();
    const seconds = now() - t0;
    const n = iters - iters0;
    epochs.push({
      epoch,
      seconds,
      iters: n,
      itPerSec: n / seconds,
      gpuWaitPct: (100 * (waitMs - wait0)) / (seconds * 1000),
      ...(c0 && c1 ? { requests: diffCounts(c0, c1) } : {}),
    });
  }
  sampling = false;
  await sampler;
  return { samples: items.length, listSeconds, epochs, series, truncated };
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${path.resolve(process.argv[1])}`).href;
if (isMain) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/train-sim.js SPEC.json\n');
    process.exit(2);
  }
  const spec = JSON.parse(readFileSync(file, 'utf8')) as SimSpec;
  simulate(spec).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (err: Error) => {
      process.stderr.write(`train-sim: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
