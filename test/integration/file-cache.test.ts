// The on-disk file cache on a real mount of every backend, judged by the bytes read back and by the
// store requests the daemon counts: epoch 2 costs nothing, eviction, TTL validation, restart and
// crash, corruption on disk, a second process, a full or read-only disk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../helpers/data.js';
import {
  BUCKETFS_BIN,
  bucketUri,
  cleanEnv,
  downloadsSettled,
  dropPageCache,
  isMounted,
  type Mounted,
  mountBucket,
  requestCounts,
  serverArgs,
  sleep,
  sumMetric,
} from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;
const EPOCH_FILES = 2000;

/** sha256 of every regular file under `dir`, read in a child process, as "hash  ./path" lines. */
async function hashTree(dir: string): Promise<string> {
  const out = await runOk('sh', ['-c', 'find . -type f -print0 | sort -z | xargs -0 sha256sum'], {
    cwd: dir,
    timeoutMs: 300_000,
  });
  return out.toString();
}

async function catHash(file: string): Promise<string> {
  return (await runOk('sha256sum', [file])).split(' ')[0] as string;
}

async function cacheFiles(cacheDir: string, suffix: string): Promise<string[]> {
  const names = await readdir(path.join(cacheDir, 'v1')).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith(suffix)).map((n) => path.join(cacheDir, 'v1', n));
}

for (const backend of ALL_BACKENDS) {
  describe(`file cache on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let work: string;
    const mounts: Mounted[] = [];
    const objects = new Map<string, Buffer>();
    let epochHashes = '';

    const mount = async (cacheDir: string, args: string[] = []): Promise<Mounted> => {
      const m = await mountBucket(server, 'cached', { args: ['--cache-dir', cacheDir, ...args] });
      mounts.push(m);
      return m;
    };
    const newCacheDir = async (): Promise<string> => mkdtemp(path.join(work, 'cache-'));

    before(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-fc-it-'));
      const seed: [string, Buffer][] = [];
      for (let i = 0; i < EPOCH_FILES; i++) {
        // 20 directories of consecutively numbered files: epoch 2 reads them in that order, as a
        // data loader walking shards does, which sets off the read-ahead across files.
        seed.push([
          `epoch/d${Math.floor(i / 100)}/s${String(i).padStart(4, '0')}.bin`,
          randomBytes(1024 + (i % 7) * 512),
        ]);
      }
      for (const k of ['a', 'b', 'c', 'd']) seed.push([`lru/${k}.bin`, randomBytes(MiB)]);
      seed.push(['lru/big.bin', randomBytes(4 * MiB)]);
      seed.push(['one/file.bin', randomBytes(3 * MiB + 11)]);
      seed.push(['one/changing.txt', Buffer.from('first version')]);
      seed.push(['large/64m.bin', randomBytes(64 * MiB)]);
      for (const [k, v] of seed) objects.set(k, v);
      server = await startServer(backend, { bucket: 'cached', objects: seed });
      const lines = seed
        .filter(([k]) => k.startsWith('epoch/'))
        .map(([k, v]) => `${sha256(v)}  ./${k.slice('epoch/'.length)}`)
        .sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : 1));
      epochHashes = `${lines.join('\n')}\n`;
    });

    after(async () => {
      for (const m of mounts) await m.unmount();
      await server?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test(`epoch 2 over ${EPOCH_FILES} files sends no GET and returns the same bytes; so does a remount`, async () => {
      const cacheDir = await newCacheDir();
      const m = await mount(cacheDir);
      const dir = path.join(m.mountpoint, 'epoch');
      assert.equal(await hashTree(dir), epochHashes, 'epoch 1 bytes');
      const e1 = await requestCounts(m);
      assert.ok(e1.GET >= EPOCH_FILES, `epoch 1 fetched every file: ${e1.GET} GETs`);
      // A dataset larger than RAM: epoch 1 is gone from the kernel's page cache when epoch 2 starts.
      await dropPageCache();
      assert.equal(await hashTree(dir), epochHashes, 'epoch 2 bytes');
      const e2 = await requestCounts(m);
      assert.equal(e2.GET - e1.GET, 0, 'epoch 2 GETs');
      const text = await m.metricsText();
      assert.match(text, new RegExp(`bucketfs_cache_events_total\\{cache="file",event="hit"\\} ${EPOCH_FILES}\\b`));
      // Opened in numbered order: most files' first blocks were read ahead of their open.
      const readAhead = sumMetric(text, 'bucketfs_file_cache_read_ahead_files_total');
      assert.ok(readAhead >= EPOCH_FILES / 2, `files read ahead in epoch 2: ${readAhead}`);
      await m.unmount();

      // Unmount and mount again on the same cache directory: still nothing to fetch.
      const again = await mount(cacheDir);
      assert.equal(await hashTree(path.join(again.mountpoint, 'epoch')), epochHashes, 'after remount');
      assert.equal(await again.requests('GET'), 0, 'GETs after remount');
      await again.unmount();
    });

    test('eviction under file-cache max-size-mb is least recently used; a larger file is read directly', async () => {
      const cacheDir = await newCacheDir();
      const m = await mount(cacheDir, ['--file-cache-max-size-mb', '3']);
      const file = (k: string) => path.join(m.mountpoint, 'lru', `${k}.bin`);
      // The second read of a is served from the pages the kernel kept; its open still counts as a use.
      for (const k of ['a', 'b', 'c', 'a', 'd']) {
        assert.equal(await catHash(file(k)), sha256(objects.get(`lru/${k}.bin`) as Buffer));
        await downloadsSettled(m); // the download settles after the read returns
      }
      // Reads that reach bucketfs, not the pages the kernel kept of them.
      await dropPageCache();
      const g0 = await m.requests('GET');
      for (const k of ['a', 'c', 'd']) await catHash(file(k));
      assert.equal((await m.requests('GET')) - g0, 0, 'a, c and d are cached');
      const metric = async (name: string, labels?: Record<string, string>) =>
        sumMetric(await m.metricsText(), name, labels);
      // Read in passthrough where the kernel allows it (root, Linux 6.9), and kept registered after
      // closing: an evicted copy's kept backing file goes with it, or its disk space would stay taken.
      const passthrough = (await metric('bucketfs_page_cache_opens_total', { use: 'passthrough' })) > 0;
      if (passthrough) assert.equal(await metric('bucketfs_file_cache_passthrough_kept'), 3, 'a, c and d kept');
      await catHash(file('b'));
      assert.equal((await m.requests('GET')) - g0, 1, 'b, least recently used, was evicted');
      await downloadsSettled(m); // b's download settles, evicting another
      if (passthrough) assert.equal(await metric('bucketfs_file_cache_passthrough_kept'), 2, 'the evicted one closed');
      const g1 = await m.requests('GET');
      for (let i = 0; i < 2; i++) {
        await dropPageCache();
        assert.equal(await catHash(file('big')), sha256(objects.get('lru/big.bin') as Buffer));
      }
      assert.ok((await m.requests('GET')) - g1 >= 2, 'a file larger than the cache is fetched each time');
      const bytes = (await cacheFiles(cacheDir, '.data')).length;
      assert.ok(bytes <= 3, `at most three 1 MiB entries on disk, found ${bytes}`);
    });

    test('ttl 0 validates each open with a HEAD and refetches only a changed object; ttl -1 asks nothing', async () => {
      const cacheDir = await newCacheDir();
      const m = await mount(cacheDir, ['--metadata-ttl', '0']);
      const file = path.join(m.mountpoint, 'one', 'changing.txt');
      assert.equal((await runOk('cat', [file])).toString(), 'first version');
      await downloadsSettled(m);
      const metaOps = async () => {
        const text = await m.metricsText();
        return ['getattr', 'open'].reduce((n, op) => n + sumMetric(text, 'bucketfs_fuse_ops_total', { op }), 0);
      };
      const c0 = await requestCounts(m);
      const o0 = await metaOps();
      for (let i = 0; i < 3; i++) {
        await sleep(200); // apart from each other by more than one system call's burst
        assert.equal((await runOk('cat', [file])).toString(), 'first version');
      }
      const c1 = await requestCounts(m);
      const ops = (await metaOps()) - o0;
      assert.equal(c1.GET - c0.GET, 0, 'unchanged: no GET');
      // Each open asks the bucket; the kernel's lookups and getattrs (of the file and of "one") ask
      // too, except those that come within a burst of the last answer for the name. How many come
      // apart depends on how the machine schedules cat, so the bound is the ops that reached us.
      const heads = c1.HEAD - c0.HEAD;
      assert.ok(heads >= 3 && heads <= ops, `HEADs for 3 opens: ${heads}, metadata ops: ${ops}`);
      await server.putObject('cached', 'one/changing.txt', 'second version, longer');
      assert.equal((await runOk('cat', [file])).toString(), 'second version, longer');
      assert.ok((await m.requests('GET')) - c1.GET >= 1, 'changed: fetched again');
      await server.putObject('cached', 'one/changing.txt', 'first version');
      await m.unmount();

      const forever = await mount(cacheDir, ['--metadata-ttl', 'indefinite']);
      const f2 = path.join(forever.mountpoint, 'one', 'file.bin');
      assert.equal(await catHash(f2), sha256(objects.get('one/file.bin') as Buffer));
      await downloadsSettled(forever);
      const d0 = await requestCounts(forever);
      for (let i = 0; i < 3; i++) await catHash(f2);
      assert.deepEqual(await requestCounts(forever), d0, 'ttl -1: no request at all');
    });

    test('kill -9 in the middle of a download: the remount serves no partial file and reads right', async () => {
      const cacheDir = await newCacheDir();
      const m = await mount(cacheDir, ['--file-cache-parallel-downloads-per-file', '1']);
      const file = path.join(m.mountpoint, 'large', '64m.bin');
      await runOk('sh', ['-c', `head -c 1000 "${file}" > /dev/null`]);
      await server.pause(); // the download stalls where it is
      try {
        await sleep(100);
        const partial = await cacheFiles(cacheDir, '.partial');
        assert.equal(partial.length, 1, 'a download is in progress');
        m.child.kill('SIGKILL');
        await m.unmount();
      } finally {
        server.resume();
      }
      const again = await mount(cacheDir);
      assert.deepEqual(await cacheFiles(cacheDir, '.partial'), [], 'the partial file was removed at start-up');
      const want = sha256(objects.get('large/64m.bin') as Buffer);
      assert.equal(await catHash(path.join(again.mountpoint, 'large', '64m.bin')), want);
      await downloadsSettled(again);
      const g = await again.requests('GET');
      assert.equal(await catHash(path.join(again.mountpoint, 'large', '64m.bin')), want);
      assert.equal((await again.requests('GET')) - g, 0, 'cached whole after the remount');
    });

    test('a byte flipped in a cached file is detected and fetched again', async () => {
      const cacheDir = await newCacheDir();
      const m = await mount(cacheDir);
      const file = path.join(m.mountpoint, 'one', 'file.bin');
      const want = sha256(objects.get('one/file.bin') as Buffer);
      assert.equal(await catHash(file), want);
      await downloadsSettled(m);
      const [data] = await cacheFiles(cacheDir, '.data');
      assert.ok(data, 'cached on disk');
      const fh = await open(data, 'r+');
      const one = Buffer.alloc(1);
      await fh.read(one, 0, 1, 2 * MiB + 3);
      one[0] = (one[0] as number) ^ 0x01;
      await fh.write(one, 0, 1, 2 * MiB + 3);
      await fh.close();
      await dropPageCache(); // the next read comes to bucketfs, which reads the disk
      const g = await m.requests('GET');
      assert.equal(await catHash(file), want, 'the right bytes, not the flipped one');
      assert.ok((await m.requests('GET')) > g, 'fetched from the store');
      assert.match(await m.metricsText(), /bucketfs_file_cache_corrupt_total 1\b/);
      assert.match(await readLog(m), /file cache entry is corrupt/);
    });

    test('a second bucketfs on the same cache directory refuses with one line; the first runs on', async () => {
      const cacheDir = await newCacheDir();
      const first = await mount(cacheDir);
      const mnt2 = path.join(work, 'second-mnt');
      await mkdir(mnt2, { recursive: true });
      const r = await run(
        process.execPath,
        [BUCKETFS_BIN, ...serverArgs(server), '--cache-dir', cacheDir, bucketUri(server, 'cached'), mnt2],
        { env: cleanEnv(server.env), timeoutMs: 60_000 },
      );
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0] as string,
        /^bucketfs: cache directory .* is in use by another bucketfs process \(pid \d+\); give each mount its own --cache-dir$/,
      );
      assert.equal(await isMounted(mnt2), false);
      assert.equal(
        await catHash(path.join(first.mountpoint, 'one', 'file.bin')),
        sha256(objects.get('one/file.bin') as Buffer),
      );
    });

    test('a disk that fills up during a download: the reader falls back to the store, no EIO', async () => {
      const disk = path.join(work, 'filling-disk');
      await mkdir(disk, { recursive: true });
      await runOk('mount', ['-t', 'tmpfs', '-o', 'size=80m', 'bucketfs-test', disk]);
      try {
        const m = await mount(path.join(disk, 'cache'), ['--file-cache-parallel-downloads-per-file', '1']);
        const file = path.join(m.mountpoint, 'large', '64m.bin');
        await runOk('sh', ['-c', `head -c 1000 "${file}" > /dev/null`]);
        await server.pause();
        try {
          // Someone else takes the rest of the disk while our download is under way.
          await run('dd', ['if=/dev/zero', `of=${path.join(disk, 'filler')}`, 'bs=1M']);
        } finally {
          server.resume();
        }
        assert.equal(await catHash(file), sha256(objects.get('large/64m.bin') as Buffer));
        assert.match(await readLog(m), /file cache cannot use its disk/);
        await m.unmount();
      } finally {
        await run('umount', [disk]);
      }
    });

    test('a full or read-only cache disk: reads go straight to the store, one warning, never EIO', async () => {
      const small = path.join(work, 'small-disk');
      const ro = path.join(work, 'ro-disk');
      await mkdir(small, { recursive: true });
      await mkdir(ro, { recursive: true });
      await runOk('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'bucketfs-test', small]);
      await runOk('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'bucketfs-test', ro]);
      try {
        // 3 MiB does not fit on a 2 MiB disk: refused up front, with a warning; 1 MiB fits.
        const full = await mount(small, ['--file-cache-max-size-mb', '-1']);
        const file = path.join(full.mountpoint, 'one', 'file.bin');
        for (let i = 0; i < 2; i++) assert.equal(await catHash(file), sha256(objects.get('one/file.bin') as Buffer));
        assert.equal(
          await catHash(path.join(full.mountpoint, 'lru', 'a.bin')),
          sha256(objects.get('lru/a.bin') as Buffer),
        );
        assert.match(await readLog(full), /file cache has no room on its disk/);
        await full.unmount();

        const readOnly = await mount(ro);
        assert.equal(
          await catHash(path.join(readOnly.mountpoint, 'one', 'file.bin')),
          sha256(objects.get('one/file.bin') as Buffer),
        );
        const log = await readLog(readOnly);
        assert.equal(log.match(/file cache disabled/g)?.length, 1, 'one warning');
        await readOnly.unmount();
      } finally {
        await run('umount', [small]);
        await run('umount', [ro]);
      }
    });
  });
}

function readLog(m: Mounted): Promise<string> {
  return readFile(m.logFile, 'utf8');
}
