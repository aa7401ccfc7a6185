import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import { MemoryBudget } from '../../src/memory/budget.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createReaderFactory, type PrefetchOptions } from '../../src/read/prefetcher.js';
import { RangeDownloader } from '../../src/read/range-downloader.js';
import type { FileReader } from '../../src/read/types.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ByteRange, ObjectPin } from '../../src/store/types.js';
import { readBytes } from '../helpers/readers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const OPTS: PrefetchOptions = {
  partSize: 1 * MiB,
  initialWindow: 256 * KiB,
  maxWindow: 8 * MiB,
  forwardTolerance: 256 * KiB,
  siblingSlack: 1 * MiB,
  idleMs: 60_000,
};

function setup(size: number, budgetBytes = 256 * MiB, opts = OPTS, style: 'gcs' | 's3' = 'gcs') {
  const store = new MemoryStore('memory', { style });
  const data = randomBytes(size);
  const meta = store.seed('obj', data);
  const budget = new MemoryBudget(budgetBytes);
  const readers = createReaderFactory(new RangeDownloader(store, 8), budget, opts, new Metrics());
  return { store, data, meta, budget, open: () => readers(meta) };
}

/** `r` seen from `base` on: offset 0 is `base` in the object. */
function bytesFrom(r: Pick<FileReader, 'read'>, base = 0): Pick<FileReader, 'read'> {
  return { read: (o, l, into) => r.read(base + o, l, into) };
}

/** Reads like the kernel: 128 KiB requests, `depth` of them in flight at once. */
async function readSequential(r: Pick<FileReader, 'read'>, size: number, depth = 4): Promise<Buffer> {
  const out = Buffer.alloc(size);
  const chunk = 128 * KiB;
  for (let base = 0; base < size; base += chunk * depth) {
    const reads = [];
    for (let i = 0; i < depth && base + i * chunk < size; i++) {
      const off = base + i * chunk;
      reads.push(readBytes(r, off, chunk).then((b) => b.copy(out, off)));
    }
    await Promise.all(reads.reverse()); // completion order does not matter
  }
  return out;
}

test('a sequential read returns exact bytes with about size / part size GETs', async () => {
  const size = 64 * MiB + 12_345;
  const { store, data, open } = setup(size);
  const r = open();
  assert.deepEqual(await readSequential(r, size), data);
  r.close();
  // The window ramps up (256K, 512K, 1M...) then parts are 1 MiB.
  assert.ok(store.requests.GET <= Math.ceil(size / MiB) + 4, `${store.requests.GET} GETs`);
  assert.ok(store.requests.GET >= Math.ceil(size / MiB), `${store.requests.GET} GETs`);
});

test('a random 4 KiB read fetches exactly its bytes, never a part', async () => {
  const size = 32 * MiB;
  const { store, data, open } = setup(size);
  const r = open();
  for (const off of [7 * MiB + 3, 1 * MiB, 20 * MiB + 100, 5]) {
    const before = store.requests.GET;
    assert.deepEqual(await readBytes(r, off, 4096), data.subarray(off, off + 4096));
    assert.equal(store.requests.GET - before, 1);
  }
  r.close();
});

test('strided, backward and mixed patterns on many handles return exact bytes', async () => {
  const size = 16 * MiB + 777;
  const { data, open } = setup(size);
  const patterns: ((r: ReturnType<typeof open>) => Promise<void>)[] = [
    async (r) => {
      for (let off = 0; off < size; off += 300 * KiB)
        assert.deepEqual(await readBytes(r, off, 64 * KiB), data.subarray(off, off + 64 * KiB));
    },
    async (r) => {
      await readBytes(r, 0, 128 * KiB);
      await readBytes(r, 128 * KiB, 128 * KiB);
      assert.deepEqual(await readBytes(r, 64 * KiB, 128 * KiB), data.subarray(64 * KiB, 192 * KiB), 'short step back');
      assert.deepEqual(await readBytes(r, 10 * MiB, 100), data.subarray(10 * MiB, 10 * MiB + 100), 'seek');
      assert.deepEqual(
        await readBytes(r, 10 * MiB + 100, 200 * KiB),
        data.subarray(10 * MiB + 100, 10 * MiB + 100 + 200 * KiB),
      );
    },
    async (r) => {
      let x = 12345;
      for (let i = 0; i < 200; i++) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        const off = x % size;
        const len = 1 + (x % (300 * KiB));
        assert.deepEqual(await readBytes(r, off, len), data.subarray(off, Math.min(off + len, size)));
      }
    },
    async (r) => assert.deepEqual(await readSequential(r, size, 8), data),
  ];
  await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const r = open();
      await (patterns[i % patterns.length] as (r: ReturnType<typeof open>) => Promise<void>)(r);
      r.close();
    }),
  );
});

test('reads at and past EOF are short or empty', async () => {
  const { data, open } = setup(1000);
  const r = open();
  assert.deepEqual(await readBytes(r, 990, 100), data.subarray(990));
  assert.equal((await readBytes(r, 1000, 100)).length, 0);
  assert.equal((await readBytes(r, 5000, 100)).length, 0);
  r.close();
});

test('32 handles reading at once stay within the memory budget', async () => {
  const size = 8 * MiB;
  const limit = 12 * MiB;
  const { data, budget, open } = setup(size, limit);
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      const r = open();
      assert.deepEqual(await readSequential(r, size), data);
      r.close();
    }),
  );
  assert.ok(budget.peak <= limit, `peak ${budget.peak} > ${limit}`);
  assert.equal(budget.used, 0, 'everything given back');
});

test('a stale object fails the read that needs it; close aborts and frees', async () => {
  const size = 8 * MiB;
  const { store, budget, open } = setup(size);
  const r = open();
  await readBytes(r, 0, 128 * KiB);
  store.seed('obj', randomBytes(size)); // overwritten: the pinned etag no longer matches
  await assert.rejects(readBytes(r, 6 * MiB, 4096), { code: ErrorCodes.Stale });
  r.close();
  await assert.rejects(readBytes(r, 0, 10), { code: ErrorCodes.Aborted });
  await new Promise((res) => setTimeout(res, 10));
  assert.equal(budget.used, 0);
});

test('on an S3-style store (no generation: reads pin the ETag, lent parts filled in place) reads are whole and an overwrite is stale', async () => {
  const size = 64 * MiB;
  const { store, data, meta, budget, open } = setup(size, 256 * MiB, OPTS, 's3');
  assert.equal(meta.generation, undefined);
  const r = open();
  // Full-size parts are pooled buffers the store fills: every byte must still come out right.
  assert.ok((await readSequential(r, 16 * MiB)).equals(data.subarray(0, 16 * MiB)));
  store.seed('obj', randomBytes(size)); // same key and size, a new ETag
  // A seek past the read-ahead: a new GET, pinned to the ETag seen at open.
  await assert.rejects(readBytes(r, 60 * MiB, 4096), { code: ErrorCodes.Stale });
  r.close();
  await new Promise((res) => setTimeout(res, 10));
  assert.equal(budget.used, 0);
});

/** Makes the memory store fill the buffers the prefetcher lends (as S3Store and GcsStore do); counts bytes. */
function likeS3(store: MemoryStore): { fetched: () => number } {
  const read = store.read.bind(store);
  let fetched = 0;
  store.read = async (key: string, range: ByteRange, pin?: ObjectPin) => {
    const got = await read(key, range, pin);
    fetched += got.length;
    const into = range.into;
    if (!into) return got;
    assert.equal(into.length, got.length, 'a lent buffer has exactly the range size');
    got.copy(into);
    return into;
  };
  return { fetched: () => fetched };
}

/**
 * One application read as the kernel sends it: 128 KiB requests, all at once in some order (a
 * read-ahead of 1 MiB or more), or one after another (random advice, 128 KiB read-ahead).
 */
async function kernelRead(
  r: Pick<FileReader, 'read'>,
  off: number,
  len: number,
  order: ((n: number) => number[]) | 'serial',
): Promise<Buffer> {
  const out = Buffer.alloc(len);
  const pieces = Math.ceil(len / (128 * KiB));
  const one = async (i: number) => {
    const at = i * 128 * KiB;
    const b = await readBytes(r, off + at, Math.min(128 * KiB, len - at));
    b.copy(out, at);
  };
  if (order === 'serial') for (let i = 0; i < pieces; i++) await one(i);
  else await Promise.all(order(pieces).map(one));
  return out;
}

test('random 1 MiB reads, sent as 128 KiB requests at once or one by one, fetch what they read in two GETs', async () => {
  const size = 64 * MiB;
  const { store, data, open } = setup(size, 256 * MiB, { ...OPTS, initialWindow: 1 * MiB + 128 * KiB });
  const bytes = likeS3(store);
  const r = open();
  const orders: (((n: number) => number[]) | 'serial')[] = [
    'serial',
    (n) => [...Array(n).keys()],
    (n) => [...Array(n).keys()].reverse(),
    (n) => [...Array(n).keys()].sort((a, b) => ((a * 5) % n) - ((b * 5) % n)),
  ];
  let x = 99;
  for (let i = 0; i < 24; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const off = (x % (size / MiB - 1)) * MiB;
    const before = store.requests.GET;
    const got = await kernelRead(r, off, MiB, orders[i % orders.length] as (n: number) => number[]);
    assert.deepEqual(got, data.subarray(off, off + MiB));
    // The first request alone, then the rest of the MiB in one; or all together in one.
    assert.ok(store.requests.GET - before <= 2, `${store.requests.GET - before} GETs for read ${i}`);
  }
  r.close();
  assert.equal(bytes.fetched(), 24 * MiB, `fetched ${bytes.fetched() / MiB} MiB for 24 MiB read`);
});

test('after a seek, sequential reads start a new stream once they span more than a first request', async () => {
  const size = 64 * MiB;
  const { store, data, open } = setup(size);
  const bytes = likeS3(store);
  const r = open();
  const from = 20 * MiB + 4096;
  const got = await readSequential(bytesFrom(r, from), 24 * MiB);
  assert.deepEqual(got, data.subarray(from, from + 24 * MiB));
  r.close();
  // A few exact 128 KiB GETs until the reads span more than 256 KiB, then the stream: parts that
  // ramp up to 1 MiB, reaching up to the 8 MiB window past the last read.
  assert.ok(store.requests.GET <= 3 + 6 + 24 + 8, `${store.requests.GET} GETs`);
  assert.ok(bytes.fetched() <= 24 * MiB + OPTS.maxWindow + OPTS.partSize, `fetched ${bytes.fetched()}`);
});

test('recycled part buffers never leak bytes between handles or parts', async () => {
  const size = 24 * MiB + 5000;
  const { store, data, budget, open } = setup(size, 6 * MiB);
  likeS3(store);
  await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const r = open();
      const start = i % 2 === 0 ? 0 : (i * 3 * MiB) % (size / 2);
      const got = await readSequential(bytesFrom(r, start), size - start, 3);
      // equals(), not deepEqual: a diff of two 24 MiB buffers runs the test process out of memory.
      assert.ok(got.equals(data.subarray(start)), `bytes read by handle ${i} from ${start}`);
      r.close();
    }),
  );
  assert.ok(budget.peak <= 6 * MiB, `peak ${budget.peak}`);
});

/** Counts the bytes asked of the store, at the time of asking (a read-ahead aborted later still cost them). */
function countRequested(store: MemoryStore): { bytes: number } {
  const count = { bytes: 0 };
  const read = store.read.bind(store);
  store.read = (key: string, range: ByteRange, pin?: ObjectPin) => {
    count.bytes += range.end - range.start;
    return read(key, range, pin);
  };
  return count;
}

test('handles reading one object in quarters fetch each byte about once, not a window past each quarter', async () => {
  const size = 32 * MiB;
  const quarter = size / 4;
  const { store, data, open } = setup(size);
  const fetched = countRequested(store);
  const handles = Array.from({ length: 4 }, () => open());
  await Promise.all(
    handles.map(async (r, i) => {
      const start = i * quarter;
      const got = await readSequential(bytesFrom(r, start), quarter);
      assert.ok(got.equals(data.subarray(start, start + quarter)), `quarter ${i}`);
      r.close(); // as fio's jobs do when done: a closed handle's origin still bounds the others
    }),
  );
  // Without the shared origins each of the first three handles asked for up to a window (8 MiB
  // here) past its quarter: up to 1.75x the object.
  assert.ok(fetched.bytes <= size * 1.05, `${fetched.bytes} bytes asked for ${size}`);
});

test('a reader that runs on into where another handle started reads exact bytes, in parts', async () => {
  const size = 32 * MiB;
  const { store, data, open } = setup(size);
  const other = open();
  // 1 MiB in order from 16 MiB: more than a first request's worth, so a stream begins there.
  const first = await readSequential(bytesFrom(other, 16 * MiB), MiB);
  assert.ok(first.equals(data.subarray(16 * MiB, 17 * MiB)));
  const before = store.requests.GET;
  const r = open();
  assert.ok((await readSequential(r, size)).equals(data));
  r.close();
  other.close();
  // Up to 16 MiB and again past 17 MiB (the slack) the reader streams in parts (1 MiB here); a
  // reader held at the other's origin would have made a GET per 128 KiB read from there on.
  const gets = store.requests.GET - before;
  assert.ok(gets <= size / MiB + 16, `${gets} GETs`);
});

test('two handles reading one object from the start both stream from the first read', async () => {
  const size = 8 * MiB;
  const { store, data, open } = setup(size);
  const [a, b] = [open(), open()];
  const [ga, gb] = await Promise.all([readSequential(a, size), readSequential(b, size)]);
  assert.deepEqual(ga, data);
  assert.deepEqual(gb, data);
  a.close();
  b.close();
  // Each handle streams (about size / part size GETs each); bounding each other at offset 0 would
  // have fetched the first MiBs one 128 KiB read at a time (8 GETs per MiB).
  assert.ok(store.requests.GET <= 2 * (size / MiB + 4), `${store.requests.GET} GETs`);
});

test('a read that needs memory while the budget is full gets all its bytes', async () => {
  const size = 4 * MiB;
  const { data, budget, open } = setup(size, 512 * KiB);
  const r = open();
  // A stream from 0: the first part and its read-ahead fill the budget (256 + 256 KiB).
  assert.ok((await readBytes(r, 0, 128 * KiB)).equals(data.subarray(0, 128 * KiB)));
  assert.equal(budget.used, 512 * KiB);
  // Half in the stream, half past it: the read must wait for memory for its second half. When the
  // budget told its listeners from inside reserve(), this handle shed its own stream there and the
  // read came back with the wrong bytes.
  const got = await readBytes(r, 384 * KiB, 256 * KiB);
  assert.ok(got.equals(data.subarray(384 * KiB, 640 * KiB)), `${got.length} bytes`);
  r.close();
});
