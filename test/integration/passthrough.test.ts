// FUSE passthrough of cached copies (src/vfs/passthrough.ts) on a real mount: the kernel reads
// small cached files itself, so epoch 2 sends bucketfs no read at all; every copy is verified in
// full at its first open in passthrough and again whenever its file changed; and the kernel's rule
// of one backing file per open inode holds with handles open through bucketfs, through
// passthrough, and across a change of the object. Needs root and Linux 6.9.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../helpers/data.js';
import {
  downloadsSettled,
  dropPageCache,
  type Mounted,
  mountBucket,
  requestCounts,
  sleep,
  sumMetric,
} from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;
const FILES = 200;

function kernelHasPassthrough(): boolean {
  const [major = 0, minor = 0] = os.release().split('.').map(Number);
  return process.getuid?.() === 0 && (major > 6 || (major === 6 && minor >= 9));
}

async function catHash(file: string): Promise<string> {
  return (await runOk('sha256sum', [file])).split(' ')[0] as string;
}

/** A child process holding `file` open for reading until it is killed. */
async function holdOpen(file: string): Promise<ChildProcess> {
  const child = spawn('sh', ['-c', 'exec 3<"$1" && echo open && exec sleep 600', 'sh', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  assert.equal(line.toString().trim(), 'open');
  return child;
}

async function release(child: ChildProcess): Promise<void> {
  child.kill('SIGKILL');
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  await sleep(200); // the kernel's RELEASE reaches bucketfs after the process is gone
}

describe('passthrough of cached copies', { skip: !kernelHasPassthrough() && 'needs root and Linux 6.9' }, () => {
  let server: TestServer;
  let work: string;
  const mounts: Mounted[] = [];
  const objects = new Map<string, Buffer>();

  const mount = async (cacheDir: string, args: string[] = []): Promise<Mounted> => {
    const m = await mountBucket(server, 'ptcache', { args: ['--cache-dir', cacheDir, ...args] });
    mounts.push(m);
    return m;
  };
  const opens = async (m: Mounted, use: string) =>
    sumMetric(await m.metricsText(), 'bucketfs_page_cache_opens_total', { use });
  const fuseReads = async (m: Mounted) => sumMetric(await m.metricsText(), 'bucketfs_fuse_ops_total', { op: 'read' });
  const file = (m: Mounted, key: string) => path.join(m.mountpoint, key);
  const want = (key: string) => sha256(objects.get(key) as Buffer);

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-pt-it-'));
    const seed: [string, Buffer][] = [];
    for (let i = 0; i < FILES; i++)
      seed.push([`small/f${String(i).padStart(3, '0')}.bin`, randomBytes(1000 + i * 700)]);
    seed.push(['mid/three-blocks.bin', randomBytes(3 * MiB + 5)]);
    seed.push(['big/over-limit.bin', randomBytes(6 * MiB)]);
    seed.push(['one/changing.txt', Buffer.from('first version')]);
    for (const [k, v] of seed) objects.set(k, v);
    server = await startServer('minio', { bucket: 'ptcache', objects: seed });
  });

  after(async () => {
    for (const m of mounts) await m.unmount();
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('epoch 2 of cached files up to the limit sends bucketfs no read and the store nothing', async () => {
    const m = await mount(await mkdtemp(path.join(work, 'cache-')));
    const keys = [...objects.keys()].filter((k) => !k.startsWith('one/'));
    for (const k of keys) assert.equal(await catHash(file(m, k)), want(k), `epoch 1: ${k}`);
    await downloadsSettled(m); // the last downloads settle
    await dropPageCache();
    const c1 = await requestCounts(m);
    const reads1 = await fuseReads(m);
    const pt1 = await opens(m, 'passthrough');
    const metric = async (name: string) => sumMetric(await m.metricsText(), name);
    const disk1 = await metric('bucketfs_file_cache_disk_read_bytes_total');
    const ahead1 = await metric('bucketfs_file_cache_read_ahead_files_total');
    const epoch2 = keys.filter((k) => !k.startsWith('big/'));
    for (const k of epoch2) assert.equal(await catHash(file(m, k)), want(k), `epoch 2: ${k}`);
    assert.equal((await requestCounts(m)).GET - c1.GET, 0, 'epoch 2 GETs');
    assert.equal((await fuseReads(m)) - reads1, 0, 'FUSE reads in epoch 2');
    assert.equal((await opens(m, 'passthrough')) - pt1, FILES + 1, 'opens in passthrough');
    // Opened in numbered order, most copies were verified and registered ahead of their open, and
    // each copy was read from disk once: at its open or ahead of it, never both.
    assert.ok((await metric('bucketfs_file_cache_read_ahead_files_total')) - ahead1 >= FILES / 2, 'registered ahead');
    const bytes = epoch2.reduce((n, k) => n + (objects.get(k) as Buffer).length, 0);
    assert.equal((await metric('bucketfs_file_cache_disk_read_bytes_total')) - disk1, bytes, 'bytes read from disk');
    // Larger than --file-cache-passthrough-max-mb (4): read through bucketfs, from the cache.
    assert.equal(await catHash(file(m, 'big/over-limit.bin')), want('big/over-limit.bin'));
    assert.ok((await fuseReads(m)) > reads1, 'the large file was read through bucketfs');
    assert.equal((await requestCounts(m)).GET - c1.GET, 0, 'no GET for it either');
  });

  test('a flipped byte in a one-block or a three-block copy is caught at open and never served', async () => {
    const cacheDir = await mkdtemp(path.join(work, 'cache-'));
    const m = await mount(cacheDir);
    const keys = ['small/f010.bin', 'mid/three-blocks.bin'];
    for (const k of keys) assert.equal(await catHash(file(m, k)), want(k));
    await downloadsSettled(m);
    const dir = path.join(cacheDir, 'v1');
    const data = (await readdir(dir)).filter((n) => n.endsWith('.data'));
    assert.equal(data.length, 2, 'both cached');
    for (const name of data) {
      const fh = await open(path.join(dir, name), 'r+');
      const { size } = await fh.stat();
      const at = size - 3; // in the last block
      const one = Buffer.alloc(1);
      await fh.read(one, 0, 1, at);
      one[0] = (one[0] as number) ^ 0x80;
      await fh.write(one, 0, 1, at);
      await fh.close();
    }
    await dropPageCache();
    const g0 = (await requestCounts(m)).GET;
    for (const k of keys) assert.equal(await catHash(file(m, k)), want(k), `${k}: the right bytes`);
    assert.ok((await requestCounts(m)).GET - g0 >= 2, 'both fetched from the store again');
    assert.equal(sumMetric(await m.metricsText(), 'bucketfs_file_cache_corrupt_total'), 2);
  });

  // Kept registered between opens (the default), a later open takes the copy back and a change on
  // disk is seen by the inotify watch; with none kept, each open registers it again and its file's
  // identity tells whether it changed.
  for (const [mode, args] of [
    ['kept', []],
    ['unchanged', ['--file-cache-passthrough-kept', '0']],
  ] as const)
    test(`a copy verified at an open is registered again unread while its file is unchanged (${mode}); a flipped byte is still caught`, async () => {
      const cacheDir = await mkdtemp(path.join(work, 'cache-'));
      const m = await mount(cacheDir, [...args]);
      const keys = ['small/f020.bin', 'mid/three-blocks.bin'];
      for (const k of keys) assert.equal(await catHash(file(m, k)), want(k), `epoch 1: ${k}`);
      await downloadsSettled(m);
      const metric = async (name: string, labels?: Record<string, string>) =>
        sumMetric(await m.metricsText(), name, labels);
      const checks = async (check: string) => metric('bucketfs_file_cache_passthrough_checks_total', { check });
      const bytes = keys.reduce((n, k) => n + (objects.get(k) as Buffer).length, 0);
      // First opens in passthrough: every block read and verified.
      let disk = await metric('bucketfs_file_cache_disk_read_bytes_total');
      for (const k of keys) assert.equal(await catHash(file(m, k)), want(k), `epoch 2: ${k}`);
      assert.equal(await checks('full'), 2, 'verified in full');
      assert.equal(await checks('unchanged'), 0);
      assert.equal((await metric('bucketfs_file_cache_disk_read_bytes_total')) - disk, bytes, 'read once to verify');
      // Later opens of the unchanged files: registered without reading them.
      disk = await metric('bucketfs_file_cache_disk_read_bytes_total');
      await dropPageCache();
      for (let epoch = 3; epoch <= 4; epoch++)
        for (const k of keys) assert.equal(await catHash(file(m, k)), want(k), `epoch ${epoch}: ${k}`);
      assert.equal(await checks(mode), 4, `known unchanged: ${mode}`);
      assert.equal(await checks(mode === 'kept' ? 'unchanged' : 'kept'), 0);
      assert.equal(await checks('full'), 2);
      await sleep(200); // the last RELEASE reaches bucketfs
      assert.equal(await metric('bucketfs_file_cache_passthrough_kept'), mode === 'kept' ? 2 : 0, 'kept after close');
      assert.equal((await metric('bucketfs_file_cache_disk_read_bytes_total')) - disk, 0, 'not read by bucketfs');
      // A byte flipped through the file system changes the file's ctime, even with the mtime put back.
      const dir = path.join(cacheDir, 'v1');
      for (const name of (await readdir(dir)).filter((n) => n.endsWith('.data'))) {
        const data = path.join(dir, name);
        const { mtimeNs } = await stat(data, { bigint: true });
        const fh = await open(data, 'r+');
        const one = Buffer.alloc(1);
        await fh.read(one, 0, 1, 0);
        one[0] = (one[0] as number) ^ 0x01;
        await fh.write(one, 0, 1, 0);
        await fh.close();
        const ns = String(mtimeNs % 1_000_000_000n).padStart(9, '0');
        await runOk('touch', ['-m', '-d', `@${mtimeNs / 1_000_000_000n}.${ns}`, data]);
        assert.equal((await stat(data, { bigint: true })).mtimeNs, mtimeNs, 'mtime put back');
      }
      await dropPageCache();
      const g0 = (await requestCounts(m)).GET;
      for (const k of keys) assert.equal(await catHash(file(m, k)), want(k), `after the flip: ${k}`);
      assert.equal(sumMetric(await m.metricsText(), 'bucketfs_file_cache_corrupt_total'), 2, 'both caught');
      assert.equal(await checks('kept'), mode === 'kept' ? 4 : 0, 'a changed copy is not taken back');
      assert.ok((await requestCounts(m)).GET - g0 >= 2, 'both fetched from the store again');
    });

  test('handles open through bucketfs and in passthrough on one file never mix: every open reads right', async () => {
    const m = await mount(await mkdtemp(path.join(work, 'cache-')));
    const k = 'small/f100.bin';
    // Opened before it is cached: this handle goes through bucketfs, and the download starts.
    const early = await holdOpen(file(m, k));
    await runOk('head', ['-c', '1', file(m, k)]);
    await downloadsSettled(m);
    // Now cached, but a handle through bucketfs is open: the kernel would refuse passthrough.
    const pt0 = await opens(m, 'passthrough');
    assert.equal(await catHash(file(m, k)), want(k));
    assert.equal((await opens(m, 'passthrough')) - pt0, 0, 'not in passthrough beside a bucketfs handle');
    await release(early);
    // Alone again: passthrough, and further opens beside it share its backing file.
    const held = await holdOpen(file(m, k));
    assert.equal((await opens(m, 'passthrough')) - pt0, 1);
    for (let i = 0; i < 3; i++) assert.equal(await catHash(file(m, k)), want(k));
    assert.equal((await opens(m, 'passthrough')) - pt0, 4);
    await release(held);
    assert.equal(await catHash(file(m, k)), want(k));
  });

  test('a newer version cannot be opened while the cached older one is open in passthrough', async () => {
    const m = await mount(await mkdtemp(path.join(work, 'cache-')), ['--metadata-ttl', '0']);
    const f = file(m, 'one/changing.txt');
    assert.equal((await runOk('cat', [f])).toString(), 'first version');
    await downloadsSettled(m);
    const held = await holdOpen(f);
    await server.putObject('ptcache', 'one/changing.txt', 'second version, longer');
    const r = await run('cat', [f]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Device or resource busy/);
    await release(held);
    assert.equal((await runOk('cat', [f])).toString(), 'second version, longer');
  });
});
