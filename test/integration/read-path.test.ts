// The read path on a real mount of a real server (MinIO, rclone serve s3, fake-gcs-server): read
// patterns on several handles at once return exactly the object's bytes, and the requests the
// daemon sends are the ones the prefetcher promises (about size ÷ part size GETs for a sequential
// read, one GET of at most the kernel's read request for a random 4 KiB read). The mount is touched only from child
// processes: a small node script that reads (offset, length) pairs and prints a digest of them.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_READ_BYTES } from '../../src/config/fuse-requests.js';
import { type BigFile, bigFile, putMany } from '../helpers/data.js';
import { type Mounted, mountBucket, sleep, sumMetric } from '../helpers/mount.js';
import { runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PART = 8 * MiB;
const BIG = 256 * MiB;
const PATTERN_SIZE = 40 * MiB + 12_345;
/** Read in quarters by four processes at once (fio's seq-4t). */
const SHARED_SIZE = 64 * MiB;

type Pattern = [offset: number, length: number][];

/**
 * A child reads each (offset, length) with pread and prints the sha256 of what it got, in order.
 * With a barrier directory, it makes its first `before` reads, then writes ready-PID there and waits
 * for a file named go before the rest.
 */
const READER = `
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const [file, json, barrier, before] = process.argv.slice(1);
const reads = JSON.parse(json);
const fd = fs.openSync(file, 'r');
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const hash = crypto.createHash('sha256');
let total = 0;
reads.forEach(([off, len], i) => {
  if (barrier && i === Number(before)) {
    fs.writeFileSync(path.join(barrier, 'ready-' + process.pid), '');
    const deadline = Date.now() + 120000;
    while (!fs.existsSync(path.join(barrier, 'go'))) {
      if (Date.now() > deadline) throw new Error('no go after 120 s');
      pause(5);
    }
  }
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, off + got);
    if (n === 0) break;
    got += n;
  }
  hash.update(buf.subarray(0, got));
  total += got;
});
fs.closeSync(fd);
process.stdout.write(JSON.stringify({ sha256: hash.digest('hex'), bytes: total }));
`;

interface Barrier {
  dir: string;
  /** Reads made before the barrier. */
  before: number;
}

async function readInChild(
  file: string,
  reads: Pattern,
  barrier?: Barrier,
): Promise<{ sha256: string; bytes: number }> {
  const args = ['-e', READER, file, JSON.stringify(reads), ...(barrier ? [barrier.dir, String(barrier.before)] : [])];
  const out = await runOk(process.execPath, args, { timeoutMs: 300_000 });
  return JSON.parse(out) as { sha256: string; bytes: number };
}

/** What the child should print for `reads` of `data`. */
function expected(data: Buffer, reads: Pattern): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  let total = 0;
  for (const [off, len] of reads) {
    const part = data.subarray(Math.min(off, data.length), Math.min(off + len, data.length));
    hash.update(part);
    total += part.length;
  }
  return { sha256: hash.digest('hex'), bytes: total };
}

/** A small deterministic PRNG (mulberry32): patterns are the same on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function patterns(size: number): Record<string, Pattern> {
  const seq: Pattern = [];
  for (let off = 0; off < size; off += MiB) seq.push([off, MiB]);
  const strided: Pattern = [];
  for (let off = 0; off < size; off += MiB + 300 * KiB) strided.push([off, 64 * KiB]);
  // Forward in 1 MiB steps, stepping back 600 KiB every third read (served from what is kept
  // behind), then a tail read backwards from the end (every read a seek).
  const backward: Pattern = [];
  for (let off = 0, i = 0; off < size / 2; i++) {
    backward.push([off, MiB]);
    off = i % 3 === 2 ? off - 600 * KiB : off + MiB;
  }
  for (let off = size - 256 * KiB; off > size - 12 * MiB; off -= 700 * KiB) backward.push([off, 256 * KiB]);
  const r = rng(42);
  const random: Pattern = [];
  for (let i = 0; i < 120; i++) {
    const len = i % 2 === 0 ? 4 * KiB : Math.floor(r() * MiB) + 1;
    random.push([Math.floor(r() * size), len]);
  }
  // Sequential runs of a few MiB, separated by random jumps, with reads past the end.
  const mixed: Pattern = [];
  const m = rng(7);
  for (let run = 0; run < 12; run++) {
    let off = Math.floor(m() * size);
    for (let i = 0; i < 24; i++, off += 128 * KiB) mixed.push([off, 128 * KiB]);
  }
  mixed.push([size - 10, 100], [size + 5, 10]);
  return { sequential: seq, strided, backward, random, mixed };
}

async function bytesIn(m: Mounted): Promise<number> {
  return sumMetric(await m.metricsText(), 'bucketfs_store_bytes_in_total');
}

/** The local copy of the big object: made once per process (helpers/data.ts), removed at the end. */
let bigDir: string | undefined;
after(async () => {
  if (bigDir) await rm(bigDir, { recursive: true, force: true });
});

for (const backend of ALL_BACKENDS) {
  describe(`read path on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let m: Mounted;
    let big: BigFile;
    const objects: Buffer[] = [];
    const shared = randomBytes(SHARED_SIZE);

    before(async () => {
      server = await startServer(backend);
      await server.createBucket('reads');
      for (let i = 0; i < 3; i++) objects.push(randomBytes(PATTERN_SIZE + i * 1000));
      await putMany(
        server,
        'reads',
        [...objects.map((b, i): [string, Buffer] => [`p/obj${i}.bin`, b]), ['shared.bin', shared]],
        4,
      );
      big = await bigFile(BIG);
      bigDir = path.dirname(big.path);
      await server.putFile('reads', 'big.bin', big.path);
      m = await mountBucket(server, 'reads', { args: ['--read-part-size', String(PART / MiB)] });
    });

    after(async () => {
      await m?.unmount();
      await server?.stop();
    });

    test('every pattern on several handles at once returns exactly the bytes', async () => {
      const jobs: Promise<void>[] = [];
      let n = 0;
      for (const [name, reads] of Object.entries(patterns(PATTERN_SIZE))) {
        // Two handles per pattern on different objects, and every object read by several
        // patterns at once: handles of one file must not disturb each other.
        for (const which of [n % objects.length, (n + 1) % objects.length]) {
          const data = objects[which] as Buffer;
          const file = path.join(m.mountpoint, 'p', `obj${which}.bin`);
          const want = expected(data, reads);
          jobs.push(
            readInChild(file, reads).then((got) => {
              assert.deepEqual(got, want, `${name} on obj${which}.bin`);
            }),
          );
        }
        n++;
      }
      // Every reader finishes before the test does: one still reading would be counted in the
      // request counts of the next test.
      const failed = (await Promise.allSettled(jobs)).filter((r) => r.status === 'rejected');
      if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
    });

    test('a sequential read issues about size / part size GETs and fetches each byte once', async () => {
      const getsBefore = await m.requests('GET');
      const inBefore = await bytesIn(m);
      const got = await readInChild(path.join(m.mountpoint, 'big.bin'), patterns(BIG).sequential as Pattern);
      assert.equal(got.bytes, BIG);
      assert.equal(got.sha256, big.sha256);
      const gets = (await m.requests('GET')) - getsBefore;
      const fetched = (await bytesIn(m)) - inBefore;
      // The first parts are smaller while the window ramps up (1.125, 2.25, 4.5 MiB...), and how
      // many there are depends on how the reads interleave with the window's growth: 37 GETs for
      // 256 MiB when the kernel sends 128 KiB reads, 38-39 with its 1 MiB reads (MinIO, 10 passes
      // each), the same bytes fetched once either way.
      assert.ok(gets >= BIG / PART && gets <= BIG / PART + 8, `${gets} GETs for ${BIG / PART} parts`);
      assert.ok(fetched >= BIG && fetched <= BIG + PART, `fetched ${fetched} bytes for ${BIG}`);
    });

    test('four processes reading one object in quarters fetch each byte about once', async () => {
      const inBefore = await bytesIn(m);
      const quarter = SHARED_SIZE / 4;
      // All four start their stream (two reads: the second makes it one), then read on together
      // once all four have: however the machine schedules them, each stream has begun before any
      // reader gets near the next quarter.
      const barrier: Barrier = { dir: await mkdtemp(path.join(os.tmpdir(), 'bucketfs-barrier-')), before: 2 };
      const readers = [0, 1, 2, 3].map(async (q) => {
        const reads: Pattern = [];
        for (let off = q * quarter; off < (q + 1) * quarter; off += MiB) reads.push([off, MiB]);
        const got = await readInChild(path.join(m.mountpoint, 'shared.bin'), reads, barrier);
        assert.deepEqual(got, expected(shared, reads));
      });
      try {
        for (let i = 0; (await readdir(barrier.dir)).length < 4; i++) {
          assert.ok(i < 2400, 'the four readers reach the barrier within 120 s');
          await sleep(50);
        }
        await writeFile(path.join(barrier.dir, 'go'), '');
        await Promise.all(readers);
      } finally {
        await writeFile(path.join(barrier.dir, 'go'), '').catch(() => {});
        await Promise.allSettled(readers);
        await rm(barrier.dir, { recursive: true, force: true });
      }
      const fetched = (await bytesIn(m)) - inBefore;
      // Each handle's read-ahead stops where another handle's stream began; without that, each of the
      // first three asked for up to a window (here 16 MiB, its quarter) past its own quarter.
      assert.ok(fetched >= SHARED_SIZE && fetched <= SHARED_SIZE * 1.1, `fetched ${fetched} bytes for ${SHARED_SIZE}`);
    });

    test("a random 4 KiB read fetches one GET of at most the kernel's read request", async () => {
      const r = rng(99);
      const file = path.join(m.mountpoint, 'big.bin');
      const local = await open(big.path);
      try {
        for (let i = 0; i < 8; i++) {
          // Away from 0: a first read at 0 starts a sequential stream by design.
          const off = Math.floor(r() * (BIG / 4096 - 16) + 8) * 4096;
          const getsBefore = await m.requests('GET');
          const inBefore = await bytesIn(m);
          const got = await readInChild(file, [[off, 4 * KiB]]);
          const want = Buffer.alloc(4 * KiB);
          await local.read(want, 0, want.length, off);
          assert.equal(got.sha256, createHash('sha256').update(want).digest('hex'), `bytes at ${off}`);
          const gets = (await m.requests('GET')) - getsBefore;
          const fetched = (await bytesIn(m)) - inBefore;
          assert.ok(gets <= 1, `${gets} GETs for one 4 KiB read at ${off}`);
          // The kernel asks for its read-ahead window around the page (at most max_read); a part of
          // 8 MiB, or a stream's read-ahead, would be far more.
          assert.ok(fetched <= MAX_READ_BYTES, `fetched ${fetched} bytes for one 4 KiB read at ${off}`);
        }
      } finally {
        await local.close();
      }
    });
  });
}
