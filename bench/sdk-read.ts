// The network limit: the benchmark's bytes read straight from the store with the AWS SDK v3, no
// FUSE and no file system, in the same shapes as the fio jobs. Bodies are drained and counted,
// never copied, so this is the most the store and the network path can give a Node client.
// Usage: node dist/bench/sdk-read.js SPEC.json (a Spec); prints one JSON Result on stdout.
// Endpoint and credentials come from BENCH_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { client } from './sdk-client.js';

export type Spec =
  /** Every `rangeBytes` range of every key, `parallel` GETs in flight (sequential throughput). */
  | {
      mode: 'ranges';
      bucket: string;
      keys: string[];
      objectBytes: number;
      rangeBytes: number;
      parallel: number;
      capSeconds: number;
    }
  /** `workers` loops of ranged GETs of `blockBytes` at random aligned offsets, each in its own slice. */
  | {
      mode: 'random';
      bucket: string;
      key: string;
      objectBytes: number;
      blockBytes: number;
      workers: number;
      seconds: number;
    }
  /** The first `bytes` of each key, one after another (time to first byte). */
  | { mode: 'first'; bucket: string; keys: string[]; bytes: number; capSeconds: number }
  /** Whole objects: one worker per group, each reading its group's keys in order (small files). */
  | { mode: 'whole'; bucket: string; groups: string[][]; capSeconds: number };

export interface Result {
  bytes: number;
  requests: number;
  seconds: number;
  /** Per-request latency to the last byte, ms (p50, p90, p99), for 'first' and 'random'. */
  latencyMs?: { p50: number; p90: number; p99: number };
  /** Per-request latency to the first body byte, ms. */
  firstByteMs?: { p50: number; p90: number; p99: number };
}

interface Timing {
  bytes: number;
  firstMs: number;
  totalMs: number;
}

/** One GET (ranged when `range` is given, end exclusive), its body drained and counted. */
async function get(s3: S3Client, bucket: string, key: string, range?: [number, number]): Promise<Timing> {
  const t0 = performance.now();
  const Range = range ? `bytes=${range[0]}-${range[1] - 1}` : undefined;
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range }));
  let bytes = 0;
  let firstMs = -1;
  for await (const chunk of out.Body as Readable) {
    if (firstMs < 0) firstMs = performance.now() - t0;
    bytes += (chunk as Buffer).length;
  }
  return { bytes, firstMs: Math.max(firstMs, 0), totalMs: performance.now() - t0 };
}

function percentiles(values: number[]): { p50: number; p90: number; p99: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** Runs `workers` loops that each pull jobs from `next` until it returns undefined or time is up. */
async function pool<J>(
  workers: number,
  deadline: number,
  next: (worker: number) => J | undefined,
  run: (job: J) => Promise<Timing>,
  timings: Timing[],
): Promise<void> {
  const loop = async (w: number): Promise<void> => {
    for (let job = next(w); job !== undefined && performance.now() < deadline; job = next(w)) {
      timings.push(await run(job));
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => loop(w)));
}

async function runSpec(spec: Spec): Promise<Result> {
  const s3 = client();
  const timings: Timing[] = [];
  const t0 = performance.now();
  try {
    if (spec.mode === 'ranges') {
      const jobs: [string, number][] = [];
      for (const key of spec.keys) {
        for (let off = 0; off < spec.objectBytes; off += spec.rangeBytes) jobs.push([key, off]);
      }
      // Interleave keys so several objects progress together, as parallel readers would.
      jobs.sort((a, b) => a[1] - b[1]);
      let i = 0;
      await pool(
        spec.parallel,
        t0 + spec.capSeconds * 1000,
        () => jobs[i++],
        ([key, off]) => get(s3, spec.bucket, key, [off, Math.min(off + spec.rangeBytes, spec.objectBytes)]),
        timings,
      );
    } else if (spec.mode === 'random') {
      const slice = Math.floor(spec.objectBytes / spec.workers / spec.blockBytes);
      // Each worker visits its slice's blocks in a random order without repeats, like fio's random map.
      const orders = Array.from({ length: spec.workers }, () => shuffled(slice));
      const pos = new Array<number>(spec.workers).fill(0);
      await pool(
        spec.workers,
        t0 + spec.seconds * 1000,
        (w) => {
          const order = orders[w] as number[];
          const p = pos[w] as number;
          if (p >= order.length) return undefined;
          pos[w] = p + 1;
          return (w * slice + (order[p] as number)) * spec.blockBytes;
        },
        (off) => get(s3, spec.bucket, spec.key, [off, off + spec.blockBytes]),
        timings,
      );
    } else if (spec.mode === 'first') {
      let i = 0;
      await pool(
        1,
        t0 + spec.capSeconds * 1000,
        () => spec.keys[i++],
        (key) => get(s3, spec.bucket, key, [0, spec.bytes]),
        timings,
      );
    } else {
      const pos = new Array<number>(spec.groups.length).fill(0);
      await pool(
        spec.groups.length,
        t0 + spec.capSeconds * 1000,
        (w) => {
          const p = pos[w] as number;
          pos[w] = p + 1;
          return spec.groups[w]?.[p];
        },
        (key) => get(s3, spec.bucket, key),
        timings,
      );
    }
  } finally {
    s3.destroy();
  }
  const result: Result = {
    bytes: timings.reduce((s, t) => s + t.bytes, 0),
    requests: timings.length,
    seconds: (performance.now() - t0) / 1000,
  };
  if (spec.mode === 'first' || spec.mode === 'random') {
    result.latencyMs = percentiles(timings.map((t) => t.totalMs));
    result.firstByteMs = percentiles(timings.map((t) => t.firstMs));
  }
  return result;
}

function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j] as number, a[i] as number];
  }
  return a;
}

// Only bench.ts's type-only import reaches this module besides `node sdk-read.js`, and type
// imports are erased, so running unconditionally is safe.
runSpec(JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Spec).then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (err: Error) => {
    process.stderr.write(`sdk-read: ${err.name}: ${err.message}\n`);
    process.exit(1);
  },
);
