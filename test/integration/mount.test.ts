// The FUSE integration suite: a real mount of a real server, touched from other processes.
// Runs once per backend in ALL_BACKENDS (MinIO, rclone serve s3, fake-gcs-server).
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bigFile, putMany, sha256 } from '../helpers/data.js';
import { isMounted, type Mounted, mountBucket, sleep } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const LONG_NAME = 'L'.repeat(300);

const EDGE_FILES: Record<string, string> = {
  'edge/sp ace.txt': 'space',
  'edge/ünïcödé ☃.txt': 'unicode',
  'edge/a+b.txt': 'plus',
  'edge/100%.txt': 'percent',
  'edge/#hash.txt': 'hash',
  'edge/quote\'s "double".txt': 'quotes',
};
/** Keys that cannot be POSIX names: skipped with one warning each. */
const SKIPPED_KEYS = [`edge/${LONG_NAME}`, 'edge/dots/./x.txt', 'edge/dots/../y.txt', 'edge/double//slash.txt'];

for (const backend of ALL_BACKENDS) {
  describe(`read-only mount on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let m: Mounted;
    let big: Awaited<ReturnType<typeof bigFile>>;
    const par: Buffer[] = [];
    let fileAndPrefix = false;
    const storedSkipped: string[] = [];
    const uploadedAt = new Date();

    before(async () => {
      server = await startServer(backend);
      await server.createBucket('tree');
      // Markers first: rclone refuses a marker PUT for a directory that already exists.
      await server.putObject('tree', 'marker/', '');
      // rclone turns a marker into an empty object, after which no key can go under it.
      if (!server.quirks.markerListedAsFile) await server.putObject('tree', 'withmarker/', '');
      const objects: [string, Buffer | string][] = [
        ['hello.txt', 'hello world\n'],
        ['dir/a.txt', 'aaa'],
        ['dir/sub/b.txt', 'bbb'],
        ['implicit/deep/c.txt', 'ccc'],
        ['withmarker/m.txt', 'mmm'],
        ['empty.bin', ''],
        ...Object.entries(EDGE_FILES),
      ];
      for (let i = 0; i < 8; i++) {
        par.push(Buffer.from((await import('node:crypto')).randomBytes(4 * MiB + i * 1000)));
        objects.push([`par/f${i}.bin`, par[i] as Buffer]);
      }
      await putMany(server, 'tree', objects, 8);
      // Keys that cannot be names: not every server stores them (MinIO refuses "//", "." and
      // ".." segments and segments over 255 bytes); we test the ones it took.
      for (const key of SKIPPED_KEYS) {
        if (
          await server.putObject('tree', key, 'skipped').then(
            () => true,
            () => false,
          )
        )
          storedSkipped.push(key);
      }
      // A key that is both an object and a prefix; not every server can hold both.
      await server.putObject('tree', 'both/inner.txt', 'inner');
      fileAndPrefix = await server.putObject('tree', 'both', 'file').then(
        () => true,
        () => false,
      );
      big = await bigFile(GiB);
      await server.putFile('tree', 'big/1g.bin', big.path);
      m = await mountBucket(server, 'tree', { args: ['--read-only'] });
      // MinIO accepts the second PUT but replaces the prefix with the object: then there is no conflict.
      fileAndPrefix &&= (await run('ls', [path.join(m.mountpoint, 'both', 'inner.txt')])).code === 0;
    });

    after(async () => {
      await m?.unmount();
      await server?.stop();
    });

    test('lists the tree, with implicit directories and markers', async (t) => {
      const root = (await runOk('ls', ['-1a', m.mountpoint])).trim().split('\n');
      for (const name of [
        '.',
        '..',
        'big',
        'dir',
        'edge',
        'empty.bin',
        'hello.txt',
        'implicit',
        'marker',
        'par',
        'withmarker',
      ]) {
        assert.ok(root.includes(name), `${name} missing from ${root.join(' ')}`);
      }
      const found = (await runOk('find', ['.', '-type', 'f'], { cwd: m.mountpoint })).trim().split('\n').sort();
      const expected = [
        './big/1g.bin',
        './dir/a.txt',
        './dir/sub/b.txt',
        './empty.bin',
        './hello.txt',
        './implicit/deep/c.txt',
        './withmarker/m.txt',
        ...Object.keys(EDGE_FILES).map((k) => `./${k}`),
        ...(server.quirks.markerListedAsFile ? ['./marker'] : []),
        ...par.map((_, i) => `./par/f${i}.bin`),
        ...(fileAndPrefix ? ['./both/inner.txt'] : []),
      ].sort();
      const foundNoBoth = fileAndPrefix ? found : found.filter((f) => !f.startsWith('./both'));
      assert.deepEqual(
        foundNoBoth,
        expected.filter((f) => fileAndPrefix || !f.startsWith('./both')),
      );
      const dirs = (await runOk('find', ['.', '-type', 'd'], { cwd: m.mountpoint })).trim().split('\n');
      for (const d of ['./implicit', './implicit/deep', './withmarker', './dir/sub']) assert.ok(dirs.includes(d), d);
      if (server.quirks.markerListedAsFile) {
        t.diagnostic(`${backend} lists the marker "marker/" as an empty object "marker": it shows as an empty file`);
        return;
      }
      assert.equal((await runOk('ls', ['-A', path.join(m.mountpoint, 'marker')])).trim(), '');
      for (const d of ['./marker']) assert.ok(dirs.includes(d), d);
    });

    test('stat shows right sizes, types, modes and mtimes', async () => {
      const st = await stat(path.join(m.mountpoint, 'big/1g.bin'));
      assert.equal(st.size, GiB);
      assert.ok(st.isFile());
      assert.equal(st.mode & 0o777, 0o644);
      assert.ok(Math.abs(st.mtimeMs - uploadedAt.getTime()) < 15 * 60_000, `mtime ${st.mtime.toISOString()}`);
      const d = await stat(path.join(m.mountpoint, 'implicit'));
      assert.ok(d.isDirectory());
      assert.equal(d.mode & 0o777, 0o755);
      assert.equal((await stat(path.join(m.mountpoint, 'empty.bin'))).size, 0);
      const out = await runOk('stat', ['-c', '%s %F', path.join(m.mountpoint, 'hello.txt')]);
      assert.equal(out.trim(), '12 regular file');
    });

    test('reads small files and edge-case names byte for byte', async () => {
      assert.equal(await runOk('cat', [path.join(m.mountpoint, 'hello.txt')]), 'hello world\n');
      assert.equal(await runOk('cat', [path.join(m.mountpoint, 'dir/sub/b.txt')]), 'bbb');
      for (const [key, body] of Object.entries(EDGE_FILES)) {
        assert.equal(await runOk('cat', [path.join(m.mountpoint, key)]), body, key);
      }
      assert.equal((await run('cat', [path.join(m.mountpoint, 'empty.bin')])).stdout.length, 0);
    });

    test('skips keys that cannot be names, warning once per key', async (t) => {
      if (storedSkipped.length === 0) {
        t.skip(`${backend} refuses to store every one of these keys`);
        return;
      }
      t.diagnostic(`keys stored by ${backend}: ${storedSkipped.map((k) => k.slice(0, 30)).join(', ')}`);
      const edge = (await runOk('ls', ['-1a', path.join(m.mountpoint, 'edge')])).trim().split('\n').sort();
      // "dots" and "double" are real directories; only their unnameable children are skipped.
      const parents = [
        ...new Set(storedSkipped.filter((k) => !k.includes(LONG_NAME)).map((k) => k.split('/')[1] as string)),
      ];
      assert.deepEqual(edge, ['.', '..', ...parents, ...Object.keys(EDGE_FILES).map((k) => k.slice(5))].sort());
      for (const p of parents) assert.equal((await runOk('ls', ['-A', path.join(m.mountpoint, 'edge', p)])).trim(), '');
      await runOk('ls', ['-1a', path.join(m.mountpoint, 'edge')]); // listing again must not warn again
      const log = await readFile(m.logFile, 'utf8');
      const warnings = log.split('\n').filter((l) => l.includes('skipping key'));
      if (storedSkipped.includes(`edge/${LONG_NAME}`)) {
        assert.equal(warnings.filter((l) => l.includes(LONG_NAME)).length, 1, 'one warning for the over-long name');
      }
      for (const prefix of ['edge/dots/./', 'edge/dots/../', 'edge/double//']) {
        assert.equal(warnings.filter((l) => l.includes(`"key":"${prefix}"`)).length <= 1, true, prefix);
      }
    });

    test('a key that is both an object and a prefix shows as the directory', async (t) => {
      if (!fileAndPrefix) {
        t.skip(
          `${backend} cannot store "both" and "both/inner.txt" together (MinIO replaces one with the other, rclone refuses the second)`,
        );
        return;
      }
      assert.ok((await stat(path.join(m.mountpoint, 'both'))).isDirectory());
      assert.equal(await runOk('cat', [path.join(m.mountpoint, 'both/inner.txt')]), 'inner');
    });

    test('reads a 1 GiB object back byte for byte', async (t) => {
      const started = Date.now();
      const gets0 = await m.requests('GET');
      const out = await runOk('sha256sum', [path.join(m.mountpoint, 'big/1g.bin')], { timeoutMs: 600_000 });
      assert.equal(out.split(' ')[0], big.sha256);
      const gets = (await m.requests('GET')) - gets0;
      const secs = (Date.now() - started) / 1000;
      t.diagnostic(`1 GiB via mount: ${secs.toFixed(1)} s (${(1024 / secs).toFixed(0)} MiB/s), ${gets} GETs`);
      // Never one GET per 128 KiB kernel read.
      assert.ok(gets <= 1024, `${gets} GETs for 1 GiB`);
    });

    test('8 concurrent readers of different files get the right bytes', async () => {
      const sums = await Promise.all(par.map((_, i) => runOk('sha256sum', [path.join(m.mountpoint, `par/f${i}.bin`)])));
      for (const [i, s] of sums.entries()) assert.equal(s.split(' ')[0], sha256(par[i] as Buffer), `par/f${i}.bin`);
    });

    test('reads at and past EOF are short or empty', async () => {
      const file = path.join(m.mountpoint, 'par/f1.bin');
      const size = (par[1] as Buffer).length;
      const script = `
        const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'r'); const b = Buffer.alloc(4096);
        const at = (p) => fs.readSync(fd, b, 0, 4096, p);
        console.log([at(${size - 10}), at(${size}), at(${size + 5000}), at(0)].join(','));`;
      const out = await runOk(process.execPath, ['-e', script, file]);
      assert.equal(out.trim(), '10,0,0,4096');
      const tail = (await run('tail', ['-c', '100', file])).stdout;
      assert.deepEqual(tail, (par[1] as Buffer).subarray(size - 100));
    });

    test('a missing name is ENOENT', async () => {
      const r = await run('stat', [path.join(m.mountpoint, 'no-such-file')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /No such file or directory/);
      const c = await run('cat', [path.join(m.mountpoint, 'dir/nope.txt')]);
      assert.match(c.stderr, /No such file or directory/);
    });

    test('writes answer EROFS', async () => {
      for (const [cmd, args] of [
        ['touch', [path.join(m.mountpoint, 'new.txt')]],
        ['sh', ['-c', `echo x > '${path.join(m.mountpoint, 'hello.txt')}'`]],
        ['mkdir', [path.join(m.mountpoint, 'newdir')]],
        ['rm', ['-f', path.join(m.mountpoint, 'hello.txt')]],
        ['mv', [path.join(m.mountpoint, 'hello.txt'), path.join(m.mountpoint, 'moved.txt')]],
      ] as const) {
        const r = await run(cmd, [...args]);
        assert.notEqual(r.code, 0, `${cmd} should fail`);
        assert.match(r.stderr, /Read-only file system/, `${cmd}: ${r.stderr}`);
      }
      assert.equal(await runOk('cat', [path.join(m.mountpoint, 'hello.txt')]), 'hello world\n');
    });

    test('SIGTERM unmounts cleanly and the daemon exits 0', async () => {
      const second = await mountBucket(server, 'tree');
      assert.ok(await isMounted(second.mountpoint));
      const exited = new Promise<number | null>((r) => second.child.once('exit', (code) => r(code)));
      second.child.kill('SIGTERM');
      assert.equal(await exited, 0);
      await sleep(100);
      assert.equal(await isMounted(second.mountpoint), false);
      await second.unmount();
    });
  });
}
