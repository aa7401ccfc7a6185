// The file cache on an in-memory store and a real temp directory: what gets cached, what a second
// reader costs, eviction, validation, corruption, restart. Real-mount behaviour on real servers is
// in test/integration/file-cache.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { planChunks } from '../../src/cache/file/download-job.js';
import { entryId, entryPaths, FORMAT_DIR } from '../../src/cache/file/layout.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ObjectMeta } from '../../src/store/types.js';
import { cachedCopy, readAll, rig, settled } from '../helpers/file-cache-rig.js';
import { sumMetric } from '../helpers/mount.js';
import { readBytes } from '../helpers/readers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dirs: string[] = [];

after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-fc-'));
  dirs.push(d);
  return path.join(d, 'cache');
}

test('chunks start at one block and double up to the chunk size', () => {
  const sizes = planChunks(20 * MiB + 5, 4 * MiB).map((c) => c.end - c.start);
  assert.deepEqual(sizes, [1, 2, 4, 4, 4, 4].map((m) => m * MiB).concat([MiB + 5]));
  assert.deepEqual(planChunks(0, 4 * MiB), []);
});

test('a first read at offset 0 caches the whole object; a second handle sends no request', async () => {
  const r = await rig(await tempDir());
  const data = randomBytes(3 * MiB + 777);
  const meta = r.store.seed('obj', data);
  assert.ok((await readAll(r.open(meta), meta.size)).equals(data));
  await settled(r.cache, r.store, meta);
  const gets = r.store.requests.GET;
  assert.equal(gets, planChunks(meta.size, 2 * MiB).length, 'one GET per chunk, nothing fetched twice');
  assert.ok((await readAll(r.open(meta), meta.size)).equals(data));
  const reader = r.open(meta);
  let served = 2 * meta.size;
  for (const off of [3 * MiB, 17, MiB - 3, 2 * MiB + 5]) {
    const got = await readBytes(reader, off, 4 * KiB);
    assert.ok(got.equals(data.subarray(off, off + 4 * KiB)), `random read at ${off}`);
    served += got.length;
  }
  assert.equal((await readBytes(reader, meta.size, 10)).length, 0);
  reader.close();
  assert.equal(r.store.requests.GET, gets);
  const text = await r.metrics.registry.metrics();
  assert.match(text, /bucketfs_cache_events_total\{cache="file",event="hit"\} 2/);
  assert.match(text, new RegExp(`bucketfs_file_cache_bytes_served_total ${served}\\n`));
  await r.cache.close();
});

test('blocks read from disk go through a few recycled buffers; every read sees its own bytes', async () => {
  const r = await rig(await tempDir());
  const { meta, data } = await cachedCopy(r, 'obj', 12 * MiB + 5);
  // From disk, in order; each read checked in the continuation that receives it.
  const seq = r.open(meta);
  for (let off = 0; off < meta.size; off += 128 * KiB) {
    const got = await readBytes(seq, off, 128 * KiB);
    assert.ok(got.equals(data.subarray(off, off + 128 * KiB)), `sequential read at ${off}`);
  }
  seq.close();
  await new Promise((resolve) => setImmediate(resolve));
  // 13 blocks read: a buffer per block would leave 13 in the pool, none recycled would leave 0. About
  // read-ahead depth (4) + the current block + those whose return was still a loop turn away, which
  // depends on when the thread pool's reads complete: 10 seen once in six runs, so the bound is 11.
  const pooled = r.cache.blockPool.pooled;
  assert.ok(pooled > 0 && pooled <= 11, `block buffers in the pool after 13 blocks: ${pooled}`);
  // Many reads at once on one handle, out of order: none sees a buffer another block was read into.
  const h = r.open(meta);
  const offsets = Array.from({ length: 64 }, (_, i) => ((i * 7919) % 97) * 128 * KiB);
  await Promise.all(
    offsets.map(async (off) => {
      const got = await readBytes(h, off, 128 * KiB);
      assert.ok(got.equals(data.subarray(off, off + 128 * KiB)), `concurrent read at ${off}`);
    }),
  );
  h.close();
  assert.equal(r.store.requests.GET, planChunks(meta.size, 2 * MiB).length, 'all from disk after the first pass');
  await r.cache.close();
});

test('block buffers count in the memory budget: 32 handles on cached copies stay within 8 MiB, every byte right', async () => {
  const limit = 8 * MiB;
  const r = await rig(await tempDir(), {}, new MemoryStore(), limit);
  const copies = [];
  for (let i = 0; i < 32; i++) copies.push(await cachedCopy(r, `many/f${String(i).padStart(2, '0')}`, 3 * MiB + i));
  // Every buffer held (readers' blocks, blocks read ahead, first blocks of the next files) is reserved.
  let worst = 0;
  const check = setInterval(() => {
    worst = Math.max(worst, r.cache.blockPool.outstanding * r.cache.blockPool.size - r.budget.used);
  }, 1);
  try {
    await Promise.all(
      copies.map(async ({ meta, data }) => assert.ok((await readAll(r.open(meta), meta.size)).equals(data), meta.key)),
    );
  } finally {
    clearInterval(check);
  }
  assert.ok(worst <= 0, `block bytes held beyond what the budget counts: ${worst}`);
  assert.ok(r.budget.peak <= limit, `budget peak ${r.budget.peak} over ${limit}`);
  assert.equal(
    r.store.requests.GET,
    copies.reduce((n, c) => n + planChunks(c.meta.size, 2 * MiB).length, 0),
  );
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(r.cache.blockPool.outstanding, 0, 'every block given back');
  await r.cache.close();
  assert.equal(r.budget.used, 0);
});

test('reads arriving out of order across block boundaries, as the kernel sends them, read each block from disk once', async () => {
  const r = await rig(await tempDir());
  const { meta, data } = await cachedCopy(r, 'obj', 8 * MiB);
  const diskBytes = async () =>
    sumMetric(await r.metrics.registry.metrics(), 'bucketfs_file_cache_disk_read_bytes_total');
  const before = await diskBytes();
  // 128 KiB reads in order, except that the first read of each block comes (and is answered)
  // before the last read of the block before: the kernel has several reads of a handle in flight.
  const h = r.open(meta);
  const check = async (off: number) => {
    const got = await readBytes(h, off, 128 * KiB);
    assert.ok(got.equals(data.subarray(off, off + 128 * KiB)), `read at ${off}`);
  };
  const slices = MiB / (128 * KiB);
  for (let block = 0; block < meta.size / MiB; block++) {
    for (let i = 1; i < slices - 1; i++) await check(block * MiB + i * 128 * KiB);
    const last = block * MiB + (slices - 1) * 128 * KiB;
    const nextFirst = (block + 1) * MiB;
    if (block === 0) await check(0);
    if (nextFirst < meta.size) await check(nextFirst);
    await check(last);
  }
  h.close();
  assert.equal((await diskBytes()) - before, meta.size, 'every block read from disk once (read-ahead kept)');
  await r.cache.close();
});

test('concurrent readers share one download, waiting only for their bytes', async () => {
  const store = new MemoryStore();
  store.delayMs = 5;
  const r = await rig(await tempDir(), { parallelThresholdBytes: Number.POSITIVE_INFINITY }, store);
  const data = randomBytes(9 * MiB);
  const meta = store.seed('obj', data);
  const results = await Promise.all(Array.from({ length: 6 }, () => readAll(r.open(meta), meta.size)));
  for (const b of results) assert.ok(b.equals(data));
  await settled(r.cache, store, meta);
  assert.equal(store.requests.GET, planChunks(meta.size, 2 * MiB).length);
  await r.cache.close();
});

test('a first read past the first part reads directly unless range reads are cached', async () => {
  const plain = await rig(await tempDir());
  const data = randomBytes(5 * MiB);
  const meta = plain.store.seed('obj', data);
  const at = 3 * MiB; // the rig's part (chunk) size is 2 MiB
  const reader = plain.open(meta);
  assert.ok((await readBytes(reader, at, 4 * KiB)).equals(data.subarray(at, at + 4 * KiB)));
  reader.close();
  assert.equal(plain.cache.size, 0);
  assert.equal(plain.store.requests.GET, 1);

  // The kernel's first reads of a file arrive together: one at 128 KiB may come before the one at 0.
  const early = plain.open(meta);
  assert.ok((await readBytes(early, 128 * KiB, 4 * KiB)).equals(data.subarray(128 * KiB, 132 * KiB)));
  early.close();
  await settled(plain.cache, plain.store, meta);
  assert.equal(plain.cache.size, 1, 'a first read within the first part caches the object');

  const ranged = await rig(await tempDir(), { cacheForRangeRead: true });
  const meta2 = ranged.store.seed('obj', data);
  const r2 = ranged.open(meta2);
  assert.ok((await readBytes(r2, at, 4 * KiB)).equals(data.subarray(at, at + 4 * KiB)));
  r2.close();
  await settled(ranged.cache, ranged.store, meta2);
  assert.equal(ranged.cache.size, 1);
  await plain.cache.close();
  await ranged.cache.close();
});

test('eviction is least recently used by bytes; an object larger than the cache is read directly', async () => {
  const r = await rig(await tempDir(), { maxBytes: 3 * MiB });
  const objs = ['a', 'b', 'c', 'd'].map((k) => ({
    k,
    data: randomBytes(MiB),
    meta: undefined as unknown as ObjectMeta,
  }));
  for (const o of objs) o.meta = r.store.seed(o.k, o.data);
  const [a, b, c, d] = objs as [(typeof objs)[0], (typeof objs)[0], (typeof objs)[0], (typeof objs)[0]];
  for (const o of [a, b, c, a, d]) {
    await readAll(r.open(o.meta), MiB);
    await settled(r.cache, r.store, o.meta);
  }
  // a was used again after b and c, so b was the oldest when d came.
  const before = r.store.requests.GET;
  for (const o of [a, c, d]) assert.ok((await readAll(r.open(o.meta), MiB)).equals(o.data));
  assert.equal(r.store.requests.GET, before, 'a, c, d are cached');
  await readAll(r.open(b.meta), MiB);
  assert.equal(r.store.requests.GET, before + 1, 'b was evicted');
  assert.ok(r.cache.bytes <= 3 * MiB);

  const big = r.store.seed('big', randomBytes(4 * MiB));
  const gets = r.store.requests.GET;
  await readAll(r.open(big), big.size);
  await readAll(r.open(big), big.size);
  assert.ok(r.store.requests.GET - gets >= 2, 'read from the store both times');
  assert.ok(r.cache.bytes <= 3 * MiB);
  await r.cache.close();
});

test('a changed object is never served from the old copy', async () => {
  const r = await rig(await tempDir());
  const v1 = r.store.seed('obj', 'version one');
  await readAll(r.open(v1), v1.size);
  await settled(r.cache, r.store, v1);
  const v2 = r.store.seed('obj', 'version two!');
  assert.equal((await readAll(r.open(v2), v2.size)).toString(), 'version two!');
  await settled(r.cache, r.store, v2);
  const gets = r.store.requests.GET;
  assert.equal((await readAll(r.open(v2), v2.size)).toString(), 'version two!');
  assert.equal(r.store.requests.GET, gets, 'the new version is cached');
  await r.cache.close();
});

test('a flipped byte or a truncated file on disk is detected, never served, and fetched again', async () => {
  const dir = await tempDir();
  const r = await rig(dir);
  const data = randomBytes(2 * MiB + 100);
  const meta = r.store.seed('obj', data);
  await readAll(r.open(meta), meta.size);
  await settled(r.cache, r.store, meta);
  const paths = entryPaths(dir, entryId('memory', r.store.bucket, 'obj'));
  const fh = await open(paths.data, 'r+');
  const one = Buffer.alloc(1);
  await fh.read(one, 0, 1, MiB + 5);
  one[0] = (one[0] as number) ^ 0xff;
  await fh.write(one, 0, 1, MiB + 5);
  await fh.close();
  const gets = r.store.requests.GET;
  assert.ok((await readAll(r.open(meta), meta.size)).equals(data), 'right bytes despite the corruption');
  assert.ok(r.store.requests.GET > gets, 'fetched from the store');
  assert.match(await r.metrics.registry.metrics(), /bucketfs_file_cache_corrupt_total 1/);
  // The next open caches it again, whole and right.
  await readAll(r.open(meta), meta.size);
  await settled(r.cache, r.store, meta);
  const again = r.store.requests.GET;
  assert.ok((await readAll(r.open(meta), meta.size)).equals(data));
  assert.equal(r.store.requests.GET, again);
  await r.cache.close();

  // Truncated between runs: dropped at load.
  await truncate(paths.data, MiB);
  const r2 = await rig(dir, {}, r.store);
  assert.equal(r2.cache.size, 0);
  await r2.cache.close();
});

test('entries survive a restart; partial and orphaned files are removed', async () => {
  const dir = await tempDir();
  const r = await rig(dir);
  const data = randomBytes(MiB + 1);
  const meta = r.store.seed('obj', data);
  await readAll(r.open(meta), meta.size);
  await settled(r.cache, r.store, meta);
  await r.cache.close();
  const v1 = path.join(dir, FORMAT_DIR);
  await writeFile(path.join(v1, 'deadbeef.partial'), 'half');
  await writeFile(path.join(v1, 'cafe.data'), 'no record');
  await writeFile(path.join(v1, 'f00d.meta'), '{"not":"a record"}');

  const r2 = await rig(dir, {}, r.store);
  assert.equal(r2.cache.size, 1);
  const gets = r.store.requests.GET;
  assert.ok((await readAll(r2.open(meta), meta.size)).equals(data));
  assert.equal(r.store.requests.GET, gets, 'served from the entry of the earlier run');
  const names = (await readdir(v1)).sort();
  assert.equal(names.length, 2, names.join(', '));
  assert.ok(names.every((n) => n.endsWith('.data') || n.endsWith('.meta')));
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  assert.equal((await stat(path.join(v1, names[0] as string))).mode & 0o777, 0o600);
  await r2.cache.close();
});

test('recency survives a restart: the entry read last before it is evicted last after it', async () => {
  const dir = await tempDir();
  const store = new MemoryStore();
  const [a, b, c] = ['a', 'b', 'c'].map((k) => store.seed(k, randomBytes(MiB))) as [ObjectMeta, ObjectMeta, ObjectMeta];
  const r1 = await rig(dir, { maxBytes: 2 * MiB }, store);
  for (const m of [a, b]) {
    await readAll(r1.open(m), MiB);
    await settled(r1.cache, store, m);
  }
  await r1.cache.close();
  // Both were used long ago, a before b.
  const metaOf = (m: ObjectMeta) => entryPaths(dir, entryId('memory', store.bucket, m.key)).meta;
  const now = Date.now() / 1000;
  await utimes(metaOf(a), now - 300, now - 300);
  await utimes(metaOf(b), now - 200, now - 200);

  const r2 = await rig(dir, { maxBytes: 2 * MiB }, store);
  await readAll(r2.open(a), MiB); // a is now the most recent
  await new Promise((res) => setTimeout(res, 50)); // its recency is written asynchronously
  await r2.cache.close();

  const r3 = await rig(dir, { maxBytes: 2 * MiB }, store);
  await readAll(r3.open(c), MiB);
  await settled(r3.cache, store, c);
  const gets = store.requests.GET;
  await readAll(r3.open(a), MiB);
  assert.equal(store.requests.GET, gets, 'a was kept');
  await readAll(r3.open(b), MiB);
  assert.ok(store.requests.GET > gets, 'b, least recently used across the restarts, was evicted for c');
  await r3.cache.close();
});

test('a store error fails the read; the failed download leaves nothing behind', async () => {
  const r = await rig(await tempDir());
  const meta = r.store.seed('obj', randomBytes(MiB));
  // One for the download, one for the direct read a handle falls back to if it comes second.
  r.store.failNext('BFS_ACCESS_DENIED', 'BFS_ACCESS_DENIED');
  await assert.rejects(readBytes(r.open(meta), 0, 128 * KiB), { code: 'BFS_ACCESS_DENIED' });
  for (let i = 0; i < 50 && r.cache.size > 0; i++) await new Promise((res) => setTimeout(res, 5));
  assert.equal(r.cache.size, 0);
  assert.equal(r.cache.bytes, 0);
  await r.cache.close();
});

test('a file adopted as a new version is served from disk with no GET, replaces the old copy, and survives a restart', async () => {
  const dir = await tempDir();
  const r = await rig(dir);
  const old = await cachedCopy(r, 'obj', 2 * MiB + 9);
  // This mount uploaded a new version; its bytes are a local file beside the cache (staging).
  const data = randomBytes(3 * MiB + 5);
  const staged = path.join(dir, 'staged-obj');
  await writeFile(staged, data);
  const meta = r.store.seed('obj', data);
  assert.notEqual(meta.etag, old.meta.etag);
  const gets = r.store.requests.GET;
  assert.equal(await r.cache.adopt(meta, staged), true);
  await assert.rejects(stat(staged), { code: 'ENOENT' }, 'moved into the cache, not copied');
  assert.ok((await readAll(r.open(meta), meta.size)).equals(data));
  assert.equal(r.store.requests.GET, gets, 'no GET for the adopted version');
  assert.equal(r.cache.completeEntry('obj')?.meta.etag, meta.etag, 'the copy of the key is the new version');
  await r.cache.close();
  const again = await rig(dir, {}, r.store);
  assert.ok((await readAll(again.open(meta), meta.size)).equals(data));
  assert.equal(r.store.requests.GET, gets, 'the record and checksums were kept on disk');
  await again.cache.close();
});

test("a download that does not match the store's whole-object CRC32C (GCS) is not kept; one that matches is", async () => {
  const r = await rig(await tempDir());
  const data = randomBytes(3 * MiB + 11);
  const seeded = r.store.seed('good', data);
  const good: ObjectMeta = { ...seeded, crc32c: crc32c(data) >>> 0 };
  assert.ok((await readAll(r.open(good), good.size)).equals(data));
  await settled(r.cache, r.store, good);
  assert.ok(r.cache.lookup(good)?.complete, 'a matching copy is kept');
  const other = randomBytes(2 * MiB);
  const seededBad = r.store.seed('bad', other);
  // The store's metadata names other bytes than those served (as when they change on the way).
  const bad: ObjectMeta = { ...seededBad, crc32c: (crc32c(other) ^ 1) >>> 0 };
  assert.ok((await readAll(r.open(bad), bad.size)).equals(other), 'the read itself is served');
  await settled(r.cache, r.store, bad);
  assert.equal(r.cache.lookup(bad), undefined, 'no copy kept');
  const text = await r.metrics.registry.metrics();
  assert.match(text, /bucketfs_file_cache_corrupt_total 1\n/);
  await r.cache.close();
});

test('a written file whose bytes do not match the CRC32C the store answered with is not adopted and stays where it is', async () => {
  const dir = await tempDir();
  const r = await rig(dir);
  const data = randomBytes(MiB + 3);
  const staged = path.join(dir, 'staged-mismatch');
  await writeFile(staged, data);
  const meta: ObjectMeta = { ...r.store.seed('w', data), crc32c: (crc32c(data) ^ 4) >>> 0 };
  assert.equal(await r.cache.adopt(meta, staged), true, 'handled: the caller must not delete it');
  assert.ok((await stat(staged)).size === data.length, 'the bytes are kept');
  assert.equal(r.cache.lookup(meta), undefined);
  await r.cache.close();
});
