// The benchmark's data set, described once: the bucket seeding, the RAM file system (the FUSE
// limit), the direct-SDK client (the network limit) and the fio jobs all derive names and sizes
// from here, so the three targets read the same bytes under the same names.
import { randomBytes } from 'node:crypto';

const MiB = 1024 * 1024;
const KiB = 1024;

export interface Layout {
  /** Size of each large object (big/obj-N.bin). */
  bigBytes: number;
  /** How many large objects (the "4 objects in parallel" workload reads all of them). */
  bigCount: number;
  /** Small files live in `smallDirs` directories of `smallPerDir` files each. */
  smallDirs: number;
  smallPerDir: number;
  smallBytes: number;
  /** The time-to-first-byte workload reads the first 4 KiB of this many files of small/d0. */
  ttfbFiles: number;
  /** Seconds each time-bounded (random) workload runs. */
  randSeconds: number;
  /** Upper bound, in seconds, for any one size-bounded run (fio `runtime`, SDK loops). */
  capSeconds: number;
  /** Bound for each of the several SDK configurations tried for a sequential network limit. */
  sdkSeqCapSeconds: number;
}

export const FULL: Layout = {
  bigBytes: 2048 * MiB,
  bigCount: 4,
  smallDirs: 16,
  smallPerDir: 625,
  smallBytes: 128 * KiB,
  ttfbFiles: 300,
  randSeconds: 15,
  capSeconds: 30,
  sdkSeqCapSeconds: 15,
};

/** BENCH_QUICK=1: the same shapes, small enough for a few minutes' run. */
export const QUICK: Layout = {
  bigBytes: 256 * MiB,
  bigCount: 4,
  smallDirs: 16,
  smallPerDir: 64,
  smallBytes: 128 * KiB,
  ttfbFiles: 50,
  randSeconds: 5,
  capSeconds: 15,
  sdkSeqCapSeconds: 10,
};

export const BUCKET = 'bench';

export function bigKey(i: number): string {
  return `big/obj-${i}.bin`;
}

/** fio's filename_format spells these as small/d$jobnum/f$filenum, so no zero padding. */
export function smallKey(dir: number, file: number): string {
  return `small/d${dir}/f${file}`;
}

export function smallCount(l: Layout): number {
  return l.smallDirs * l.smallPerDir;
}

export function layoutFromEnv(env: NodeJS.ProcessEnv = process.env): Layout {
  return env.BENCH_QUICK === '1' ? QUICK : FULL;
}

/** The small files' keys and bodies (slices of one random pool, so seeding costs no hashing). */
export function* smallObjects(l: Layout): Generator<[string, Buffer]> {
  const pool = randomBytes(4 * 1024 * 1024);
  let n = 0;
  for (let d = 0; d < l.smallDirs; d++) {
    for (let f = 0; f < l.smallPerDir; f++) {
      const off = (n++ * 4096) % (pool.length - l.smallBytes);
      yield [smallKey(d, f), pool.subarray(off, off + l.smallBytes)];
    }
  }
}
