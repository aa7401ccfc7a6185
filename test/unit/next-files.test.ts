import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { nextName } from '../../src/cache/file/next-files.js';
import type { ObjectMeta } from '../../src/store/types.js';
import { readAll, rig, settled } from '../helpers/file-cache-rig.js';
import { sumMetric } from '../helpers/mount.js';

const KiB = 1024;

test('the next name has its last number one higher, zero padding kept', () => {
  const cases: [string, string | undefined][] = [
    ['f9', 'f10'],
    ['f0', 'f1'],
    ['img_0099.jpg', 'img_0100.jpg'],
    ['shard-00009-of-00100.tar', 'shard-00009-of-00101.tar'],
    ['0999', '1000'],
    ['a1b2', 'a1b3'],
    ['x99999999999999999999', 'x100000000000000000000'],
    ['README', undefined],
  ];
  for (const [name, next] of cases) assert.equal(nextName(name), next, name);
});

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A file cache holding d/f1 .. d/f12 (epoch 1 done, downloads finished). */
async function cached(readAheadFiles: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-nf-'));
  dirs.push(dir);
  const { store, cache, metrics, open } = await rig(path.join(dir, 'cache'), { readAheadFiles });
  const files = new Map<string, { meta: ObjectMeta; data: Buffer }>();
  // d/f1 .. d/f12, sizes from one block's part to three blocks.
  for (let i = 1; i <= 12; i++) {
    const data = randomBytes(100 * KiB + i * 211 * KiB);
    files.set(`d/f${i}`, { meta: store.seed(`d/f${i}`, data), data });
  }
  /** Opens, reads whole as the kernel does, and closes; checks the bytes. */
  const readFile = async (key: string): Promise<void> => {
    const f = files.get(key);
    assert.ok(f);
    assert.ok((await readAll(open(f.meta), f.meta.size)).equals(f.data), `bytes of ${key}`);
  };
  const metric = async (name: string) => sumMetric(await metrics.registry.metrics(), name);
  // Epoch 1 caches every file; waits for the downloads to finish.
  for (const key of files.keys()) await readFile(key);
  for (const f of files.values()) await settled(cache, store, f.meta);
  const totalBytes = [...files.values()].reduce((n, f) => n + f.meta.size, 0);
  return { store, cache, readFile, metric, totalBytes };
}

test('files opened in numbered order: the next files are read ahead from disk, once, and the same bytes served', async () => {
  const r = await cached(4);
  const gets = r.store.requests.GET;
  const disk = () => r.metric('bucketfs_file_cache_disk_read_bytes_total');
  const before = await disk();
  await r.readFile('d/f1');
  assert.equal(await r.metric('bucketfs_file_cache_read_ahead_files_total'), 0, 'one open is no order yet');
  await r.readFile('d/f2');
  await new Promise((resolve) => setTimeout(resolve, 50)); // f3..f6 are being read ahead
  assert.equal(await r.metric('bucketfs_file_cache_read_ahead_files_total'), 4);
  for (let i = 3; i <= 12; i++) await r.readFile(`d/f${i}`);
  assert.equal(await r.metric('bucketfs_file_cache_read_ahead_files_total'), 10, 'f3..f12, each once');
  // Every byte read from disk once: the first blocks read ahead were served from memory, not read again.
  assert.equal((await disk()) - before, r.totalBytes);
  assert.equal(r.store.requests.GET, gets, 'no request to the store');
  await r.cache.close();
});

test('files opened out of order read nothing ahead; read-ahead 0 is off', async () => {
  const shuffled = await cached(4);
  for (const i of [5, 2, 9, 1, 12, 7]) await shuffled.readFile(`d/f${i}`);
  assert.equal(await shuffled.metric('bucketfs_file_cache_read_ahead_files_total'), 0);
  await shuffled.cache.close();
  const off = await cached(0);
  for (let i = 1; i <= 12; i++) await off.readFile(`d/f${i}`);
  assert.equal(await off.metric('bucketfs_file_cache_read_ahead_files_total'), 0);
  await off.cache.close();
});

test('first blocks held ahead stay at 32 mount-wide; an unclaimed one gives way once 2 s old', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-nf-'));
  dirs.push(dir);
  const { store, cache, metrics, open } = await rig(path.join(dir, 'cache'), { readAheadFiles: 4 });
  const metas = new Map<string, ObjectMeta>();
  for (let d = 0; d <= 8; d++)
    for (let f = 1; f <= 6; f++) metas.set(`d${d}/f${f}`, store.seed(`d${d}/f${f}`, randomBytes(64 * KiB)));
  const readFile = async (key: string) => {
    const meta = metas.get(key) as ObjectMeta;
    await readAll(open(meta), meta.size);
  };
  for (const key of metas.keys()) await readFile(key);
  for (const meta of metas.values()) await settled(cache, store, meta);
  const aheadFiles = async () =>
    sumMetric(await metrics.registry.metrics(), 'bucketfs_file_cache_read_ahead_files_total');
  const until = async (n: number) => {
    for (let i = 0; i < 200 && (await aheadFiles()) < n; i++) await new Promise((r) => setTimeout(r, 10));
    return aheadFiles();
  };
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  // f1 then f2 in d0..d7: f3..f6 of each are read ahead and held, unclaimed: 32 blocks.
  for (let d = 0; d <= 7; d++) {
    await readFile(`d${d}/f1`);
    await readFile(`d${d}/f2`);
    assert.equal(await until(4 * (d + 1)), 4 * (d + 1));
  }
  // No room: all 32 are fresh.
  await readFile('d8/f1');
  await readFile('d8/f2');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await aheadFiles(), 32, 'nothing read ahead beyond 32 fresh held blocks');
  // 2 s later the oldest unclaimed ones give way: f3 in order reads f4..f6 ahead.
  t.mock.timers.tick(3000);
  await readFile('d8/f3');
  assert.equal(await until(35), 35);
  await cache.close();
});
