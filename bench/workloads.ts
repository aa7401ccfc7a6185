// The workloads of the limits benchmark: each is one fio job file (bench/fio/) for the two FUSE
// targets and the same reads (or writes) as direct SDK requests for the network limit.
import { optionDefault } from '../src/config/options.js';
import type { Layout } from './layout.js';
import { BUCKET, bigKey, smallKey } from './layout.js';
import type { Spec } from './sdk-read.js';
import type { WriteSpec } from './sdk-write.js';

/** What the table leads with: bandwidth, operations per second, or latency of one read. */
export type Kind = 'throughput' | 'iops' | 'latency';

export interface Workload {
  name: string;
  title: string;
  kind: Kind;
  /** The target for this workload, if it has one. */
  target?: 'seq85' | 'small80' | 'onePart' | 'epoch70' | 'write85' | 'smallWrite80';
  /** The fio job file (bench/fio/<job>.fio) when it is not named after the workload. */
  job?: string;
  /**
   * File cache epochs: bucketfs mounts with an empty --cache-dir and runs the job twice on the same
   * mount, as a training job's first and second epoch; 1 and 2 are measured as two workloads.
   */
  epoch?: 1 | 2;
  /** Candidate SDK runs for the network limit; the best one counts. Empty: reuse `sdkSameAs`. */
  sdk(l: Layout): Spec[];
  sdkSameAs?: string;
  /**
   * List small/dN before fio runs, as a data loader builds its file index: fio stats every file
   * one after another before its readers start, and without a listing each stat is a request.
   */
  listFirst?: boolean;
  /**
   * A write workload: fio writes new files into an empty directory of the mount (made by the
   * driver, with `dirs` subdirectories d0, d1, …), and the network limit is `sdkWrite`'s uploads
   * of the same bytes to fresh keys under `prefix`. What it wrote is deleted after each run.
   */
  write?: { dirs: number; sdk(l: Layout, prefix: string): WriteSpec[] };
}

const RANGE = 8 * 1024 * 1024;

function seqRanges(l: Layout, keys: string[], parallel: number): Spec {
  return {
    mode: 'ranges',
    bucket: BUCKET,
    keys,
    objectBytes: l.bigBytes,
    rangeBytes: RANGE,
    parallel,
    capSeconds: l.sdkSeqCapSeconds,
  };
}

function random(l: Layout, blockBytes: number): Spec {
  return {
    mode: 'random',
    bucket: BUCKET,
    key: bigKey(0),
    objectBytes: l.bigBytes,
    blockBytes,
    workers: 4,
    seconds: l.randSeconds,
  };
}

function smallGroups(l: Layout, readers: number): string[][] {
  if (readers === 1) {
    const all: string[] = [];
    for (let d = 0; d < l.smallDirs; d++) for (let f = 0; f < l.smallPerDir; f++) all.push(smallKey(d, f));
    return [all];
  }
  return Array.from({ length: l.smallDirs }, (_, d) => Array.from({ length: l.smallPerDir }, (_, f) => smallKey(d, f)));
}

export const WORKLOADS: Workload[] = [
  {
    name: 'seq-1t',
    title: 'Sequential read, 1 object, 1 thread',
    kind: 'throughput',
    target: 'seq85',
    sdk: (l) => [1, 4, 8].map((p) => seqRanges(l, [bigKey(0)], p)),
  },
  {
    name: 'seq-4t',
    title: 'Sequential read, 1 object, 4 threads (quarters)',
    kind: 'throughput',
    target: 'seq85',
    sdk: () => [],
    sdkSameAs: 'seq-1t',
  },
  {
    name: 'seq-4obj',
    title: 'Sequential read, 4 objects in parallel',
    kind: 'throughput',
    target: 'seq85',
    sdk: (l) => {
      const keys = Array.from({ length: l.bigCount }, (_, i) => bigKey(i));
      return [4, 8, 16].map((p) => seqRanges(l, keys, p));
    },
  },
  {
    name: 'rand-4k',
    title: 'Random 4 KiB reads, 4 threads',
    kind: 'iops',
    target: 'onePart',
    sdk: (l) => [random(l, 4096)],
  },
  {
    name: 'rand-1m',
    title: 'Random 1 MiB reads, 4 threads',
    kind: 'throughput',
    sdk: (l) => [random(l, 1024 * 1024)],
  },
  {
    name: 'ttfb',
    title: 'Time to first byte (first 4 KiB of each file)',
    kind: 'latency',
    sdk: (l) => [
      {
        mode: 'first',
        bucket: BUCKET,
        keys: Array.from({ length: l.ttfbFiles }, (_, f) => smallKey(0, f)),
        bytes: 4096,
        capSeconds: l.capSeconds,
      },
    ],
  },
  {
    name: 'small-1',
    title: 'Small files (128 KiB), 1 reader',
    kind: 'throughput',
    listFirst: true,
    sdk: (l) => [{ mode: 'whole', bucket: BUCKET, groups: smallGroups(l, 1), capSeconds: l.capSeconds }],
  },
  {
    name: 'small-16',
    title: 'Small files (128 KiB), 16 readers',
    kind: 'throughput',
    listFirst: true,
    target: 'small80',
    sdk: (l) => [{ mode: 'whole', bucket: BUCKET, groups: smallGroups(l, 16), capSeconds: l.capSeconds }],
  },
  ...epochPair('seq', 'seq-1t', 'sequential read of 1 object, 1 thread', false),
  ...epochPair('small', 'small-16', 'small files (128 KiB), 16 readers', true),
  {
    name: 'write-seq-1t',
    title: 'Sequential write, 1 new file, 1 thread',
    kind: 'throughput',
    target: 'write85',
    sdk: () => [],
    write: { dirs: 0, sdk: (l, prefix) => multipart(l, prefix, 1) },
  },
  {
    name: 'write-seq-4t',
    title: 'Sequential write, 4 new files, 4 threads (a quarter of the bytes each)',
    kind: 'throughput',
    target: 'write85',
    sdk: () => [],
    write: { dirs: 0, sdk: (l, prefix) => multipart(l, prefix, 4) },
  },
  {
    name: 'write-small-16',
    title: 'Small-file creation (128 KiB), 16 writers',
    kind: 'throughput',
    target: 'smallWrite80',
    sdk: () => [],
    write: {
      dirs: 16,
      sdk: (l, prefix) => [
        {
          mode: 'put',
          bucket: BUCKET,
          groups: Array.from({ length: 16 }, (_, d) =>
            Array.from({ length: l.smallPerDir }, (_, f) => `${prefix}d${d}/f${f}`),
          ),
          bytes: l.smallBytes,
          capSeconds: l.capSeconds,
        },
      ],
    },
  },
];

/** The part size bucketfs uploads in by default (--write-part-size, MiB). */
export const WRITE_PART_BYTES = Number(optionDefault('write-part-size')) * 1024 * 1024;

/**
 * The bytes of a sequential write workload (l.bigBytes in `files` files), as multipart uploads with
 * bucketfs's part size: 4 parts in flight (as bucketfs per file), 8 and 16; the best one counts.
 */
function multipart(l: Layout, prefix: string, files: number): WriteSpec[] {
  return [4, 8, 16].map((parallel, i) => ({
    mode: 'multipart',
    bucket: BUCKET,
    keys: Array.from({ length: files }, (_, f) => `${prefix}try${i}/f${f}`),
    objectBytes: l.bigBytes / files,
    partBytes: WRITE_PART_BYTES,
    parallel,
    capSeconds: l.capSeconds,
  }));
}

/** Epoch 1 and epoch 2 of one fio job through the file cache; their limits are the job's own. */
function epochPair(name: string, job: string, what: string, listFirst: boolean): Workload[] {
  return ([1, 2] as const).map((epoch) => ({
    name: `epoch${epoch}-${name}`,
    title: `File cache epoch ${epoch}: ${what}`,
    kind: 'throughput' as const,
    job,
    epoch,
    listFirst,
    sdk: () => [],
    sdkSameAs: job,
    ...(epoch === 2 ? { target: 'epoch70' as const } : {}),
  }));
}

/** The variables the fio job files read (fio expands ${NAME} from its environment). */
export function fioEnv(l: Layout, dir: string): Record<string, string> {
  return {
    BENCH_DIR: dir,
    BENCH_CAP: String(l.capSeconds),
    BENCH_BIG: String(l.bigBytes),
    BENCH_BIG_QUARTER: String(l.bigBytes / 4),
    BENCH_RAND_SECS: String(l.randSeconds),
    BENCH_TTFB_FILES: String(l.ttfbFiles),
    BENCH_TTFB_BYTES: String(l.ttfbFiles * 4096),
    BENCH_SMALL_PER_DIR: String(l.smallPerDir),
    BENCH_SMALL_DIR_BYTES: String(l.smallPerDir * l.smallBytes),
  };
}
