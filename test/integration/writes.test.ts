// Writes through a real mount of each real server, by the tools people use (cp, shell redirects,
// dd, truncate, mv, rm, mkdir), checked against what the store then holds: sha256 of the object
// read through the adapter, listings, and the requests the daemon counted.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ObjectStore } from '../../src/store/types.js';
import { sha256 } from '../helpers/data.js';
import { dropPageCache, type Mounted, mountBucket, sumMetric } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';
import { storeFor } from '../helpers/stores.js';

const MiB = 1024 * 1024;

/**
 * A node script in a child process that prints a line once it has done its first steps: `ready`
 * resolves then, however slowly a loaded machine runs it (and rejects if it exits first); `exited`
 * gives its exit code and everything it printed.
 */
function stepwise(
  source: string,
  args: string[],
): { ready: Promise<void>; exited: Promise<{ code: number | null; out: string }> } {
  const child = spawn(process.execPath, ['-e', source, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  const exit = once(child, 'exit');
  // A child that ended before its line (an open that failed) must not leave the test writing to a
  // fifo nobody will open: that would hang.
  const ready = Promise.race([
    new Promise<void>((resolve) =>
      child.stdout.on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve();
      }),
    ),
    exit.then(([code]) => {
      throw new Error(`the script exited (${code}) before it got there: ${out}`);
    }),
  ]);
  return { ready, exited: exit.then(([code]) => ({ code: code as number | null, out })) };
}

for (const backend of ALL_BACKENDS) {
  describe(`writes on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let store: ObjectStore;
    let m: Mounted;
    let work: string;
    const at = (p: string) => path.join(m.mountpoint, p);

    before(async () => {
      server = await startServer(backend);
      await server.createBucket('writes');
      await server.putObject('writes', 'old.txt', 'old content\n');
      await server.putObject('writes', 'patch.bin', Buffer.alloc(3 * MiB, 1));
      // Directories put by another client, without markers (rclone takes no keys under a marker).
      for (const f of ['a.txt', 'sub/b.txt', 'sub/deeper/c.txt']) await server.putObject('writes', `tree1/${f}`, f);
      await server.putObject('writes', 'many/seed', '');
      await server.putObject('writes', 'doomed-open.txt', 'old');
      await server.putObject('writes', 'rw.txt', '0123456789');
      store = await storeFor(server, 'writes');
      m = await mountBucket(server, 'writes', { args: ['--write-part-size', '5'] });
      work = path.join(os.tmpdir(), `bucketfs-writes-${process.pid}-${backend}`);
      await runOk('mkdir', ['-p', work]);
    });

    after(async () => {
      await m?.unmount();
      await server?.stop();
      if (work) await runOk('rm', ['-rf', work]);
    });

    /**
     * The object once it is there: an empty new file is uploaded at its release, which the kernel
     * sends just after close returns (src/vfs/writes.ts, flush).
     */
    const eventually = async (key: string): Promise<Buffer | undefined> => {
      for (let i = 0; i < 200; i++) {
        const got = await stored(key);
        if (got) return got;
        await new Promise((r) => setTimeout(r, 25));
      }
      return undefined;
    };
    const stored = async (key: string): Promise<Buffer | undefined> => {
      const meta = await store.head(key);
      return meta ? store.read(key, { start: 0, end: meta.size }) : undefined;
    };
    const counts = async () => {
      const text = await m.metricsText();
      const kinds = ['PUT', 'UPLOAD_START', 'UPLOAD_PART', 'UPLOAD_COMPLETE', 'DELETE', 'COPY'] as const;
      return Object.fromEntries(kinds.map((k) => [k, sumMetric(text, 'bucketfs_store_requests_total', { kind: k })]));
    };
    const delta = (a: Record<string, number>, b: Record<string, number>) =>
      Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));

    test('cp of a small file is one PUT; the store holds its bytes once cp returns', async () => {
      const body = randomBytes(100_000);
      await writeFile(path.join(work, 'small.bin'), body);
      const c0 = await counts();
      await runOk('cp', [path.join(work, 'small.bin'), at('small.bin')]);
      assert.equal(sha256((await stored('small.bin')) ?? ''), sha256(body));
      const d = delta(c0, await counts());
      assert.equal(d.PUT, 1, JSON.stringify(d));
      assert.equal(d.UPLOAD_START, 0, JSON.stringify(d));
      assert.equal(
        sha256(await runOk('cat', [at('small.bin')], {}).then(() => readFile(at('small.bin')))),
        sha256(body),
      );
    });

    test('cp of a file larger than a part is an upload in parts of --write-part-size', async () => {
      const body = randomBytes(12 * MiB + 4321);
      await writeFile(path.join(work, 'big.bin'), body);
      const c0 = await counts();
      await runOk('cp', [path.join(work, 'big.bin'), at('big.bin')]);
      assert.equal(sha256((await stored('big.bin')) ?? ''), sha256(body));
      const d = delta(c0, await counts());
      // 5 MiB parts: 12 MiB and a bit is three.
      assert.deepEqual([d.UPLOAD_START, d.UPLOAD_PART, d.UPLOAD_COMPLETE, d.PUT], [1, 3, 1, 0], JSON.stringify(d));
      assert.equal((await runOk('sha256sum', [at('big.bin')])).split(' ')[0], sha256(body));
    });

    test('writes reach the daemon in requests of up to 1 MiB', async () => {
      const ops = async () => sumMetric(await m.metricsText(), 'bucketfs_fuse_ops_total', { op: 'write' });
      const before = await ops();
      await runOk('dd', ['if=/dev/zero', `of=${at('dd.bin')}`, 'bs=1M', 'count=8', 'status=none']);
      const writes = (await ops()) - before;
      // libfuse 2 alone stops at 128 KiB a request: 64 of them.
      assert.ok(writes <= 16, `${writes} write requests for 8 MiB`);
      assert.equal((await store.head('dd.bin'))?.size, 8 * MiB);
    });

    test('cp -r of a tree (1,000 small files and a large one) reads back whole through a second mount', async (t) => {
      if (server.quirks.markerListedAsFile) {
        t.skip(`${backend} takes no keys under the marker cp -r's mkdir makes`);
        return;
      }
      const src = path.join(work, 'tree-src');
      // 2 GiB where the server keeps objects on disk (MinIO); smaller elsewhere (fake-gcs-server holds
      // them in memory, rclone's copy is slow), which exercises the same paths.
      const bigSize = backend === 'minio' ? 2 * 1024 * MiB : 256 * MiB;
      await runOk('sh', [
        '-c',
        `mkdir -p '${src}' && cd '${src}' && for d in 0 1 2 3 4 5 6 7 8 9; do mkdir d$d; for f in $(seq 0 99); do head -c $((d * 100 + f + 1)) /dev/urandom > d$d/f$f; done; done && head -c ${bigSize} /dev/urandom > big.bin`,
      ]);
      const hashes = async (dir: string) =>
        (
          await runOk('sh', ['-c', `cd '${dir}' && find . -type f -print0 | sort -z | xargs -0 sha256sum`], {
            timeoutMs: 600_000,
          })
        )
          .trim()
          .split('\n');
      const want = await hashes(src);
      assert.equal(want.length, 1001);
      await runOk('cp', ['-r', src, at('tree-copy')], { timeoutMs: 900_000 });
      const second = await mountBucket(server, 'writes');
      try {
        assert.deepEqual(await hashes(path.join(second.mountpoint, 'tree-copy')), want);
      } finally {
        await second.unmount();
      }
      assert.equal((await store.head('tree-copy/big.bin'))?.size, bigSize);
      assert.equal(sha256((await stored('tree-copy/d9/f99')) ?? ''), sha256(await readFile(path.join(src, 'd9/f99'))));
      await runOk('rm', ['-rf', src]);
    });

    test('touch makes an empty object; a redirect overwrites; >> appends', async () => {
      await runOk('touch', [at('touched')]);
      assert.equal((await eventually('touched'))?.length, 0);
      await runOk('sh', ['-c', `printf 'new content\\n' > '${at('old.txt')}'`]);
      assert.equal((await stored('old.txt'))?.toString(), 'new content\n');
      await runOk('sh', ['-c', `printf 'more\\n' >> '${at('old.txt')}'`]);
      assert.equal((await stored('old.txt'))?.toString(), 'new content\nmore\n');
      assert.equal(await readFile(at('old.txt'), 'utf8'), 'new content\nmore\n');
    });

    test('a write in the middle of an object keeps the bytes around it', async () => {
      await runOk('sh', ['-c', `printf 'XYZ' | dd of='${at('patch.bin')}' bs=1 seek=1048576 conv=notrunc status=none`]);
      const want = Buffer.alloc(3 * MiB, 1);
      want.write('XYZ', MiB);
      assert.equal(sha256((await stored('patch.bin')) ?? ''), sha256(want));
    });

    test('truncate shrinks and grows (with zeros)', async () => {
      await runOk('sh', ['-c', `printf 'abcdef' > '${at('trunc.txt')}'`]);
      await runOk('truncate', ['-s', '3', at('trunc.txt')]);
      assert.equal((await stored('trunc.txt'))?.toString(), 'abc');
      await runOk('truncate', ['-s', '5', at('trunc.txt')]);
      assert.deepEqual(await stored('trunc.txt'), Buffer.from('abc\0\0'));
      assert.equal((await runOk('stat', ['-c', '%s', at('trunc.txt')])).trim(), '5');
    });

    test('rm deletes the object; mkdir makes a marker; rmdir refuses a non-empty directory', async () => {
      await runOk('sh', ['-c', `echo x > '${at('gone.txt')}'`]);
      await runOk('rm', [at('gone.txt')]);
      assert.equal(await store.head('gone.txt'), undefined);
      assert.ok(!(await readdir(m.mountpoint)).includes('gone.txt'));
      await runOk('mkdir', [at('newdir')]);
      assert.ok(await store.head('newdir/'), 'a marker object newdir/');
      assert.match((await run('mkdir', [at('newdir')])).stderr, /File exists/);
      // rclone refuses keys under a marker (Quirks.markerListedAsFile): nothing can go in the directory there.
      if (!server.quirks.markerListedAsFile) {
        await runOk('sh', ['-c', `echo inside > '${at('newdir/f.txt')}'`]);
        assert.match((await run('rmdir', [at('newdir')])).stderr, /Directory not empty/);
        await runOk('rm', [at('newdir/f.txt')]);
      }
      await runOk('rmdir', [at('newdir')]);
      assert.equal(await store.head('newdir/'), undefined);
      assert.deepEqual((await store.list('newdir/')).objects, []);
    });

    test('mv of a file is a server-side copy and a delete; the bytes never come back through the mount', async () => {
      const body = randomBytes(2 * MiB);
      await writeFile(path.join(work, 'tomove.bin'), body);
      await runOk('cp', [path.join(work, 'tomove.bin'), at('tomove.bin')]);
      const get0 = await m.requests('GET');
      const c0 = await counts();
      await runOk('mv', [at('tomove.bin'), at('moved.bin')]);
      const d = delta(c0, await counts());
      assert.deepEqual([d.COPY, d.DELETE, d.PUT], [1, 1, 0], JSON.stringify(d));
      assert.equal(await m.requests('GET'), get0, 'no GET');
      assert.equal(await store.head('tomove.bin'), undefined);
      assert.equal(sha256((await stored('moved.bin')) ?? ''), sha256(body));
      const names = await readdir(m.mountpoint);
      assert.ok(names.includes('moved.bin') && !names.includes('tomove.bin'), names.join());
    });

    test('an upload the store never takes is an error to close, and the bytes stay on disk where the log says', async () => {
      const quick = await mountBucket(server, 'writes', { args: ['--max-attempts', '2', '--request-timeout', '1'] });
      try {
        const body = randomBytes(200_000);
        await writeFile(path.join(work, 'doomed.bin'), body);
        // The listing, cached, answers cp's lookups of the name: the store is needed only to upload.
        await runOk('ls', [quick.mountpoint]);
        await server.pause();
        let r: Awaited<ReturnType<typeof run>>;
        try {
          r = await run('cp', [path.join(work, 'doomed.bin'), path.join(quick.mountpoint, 'doomed.bin')]);
        } finally {
          server.resume();
        }
        assert.notEqual(r.code, 0, 'cp fails');
        assert.match(r.stderr, /failed to close.*Input\/output error/);
        // A request the paused server had taken in may still land once it resumes: then it is whole.
        const landed = await stored('doomed.bin');
        if (landed) assert.equal(sha256(landed), sha256(body));
        const log = await readFile(quick.logFile, 'utf8');
        const kept = /its bytes are kept in (\S+)"/.exec(log)?.[1];
        assert.ok(kept, 'the log names where the bytes are');
        assert.equal(sha256(await readFile(kept)), sha256(body));
        assert.ok(sumMetric(await quick.metricsText(), 'bucketfs_uploads_total', { outcome: 'BFS_TIMEOUT' }) >= 1);
      } finally {
        await quick.unmount();
      }
    });

    test('mv of a directory moves every object under it; past --rename-dir-limit mv copies it instead', async () => {
      const c0 = await counts();
      await runOk('mv', [at('tree1'), at('tree2')]);
      const d = delta(c0, await counts());
      assert.equal(d.PUT, 0, `server-side: ${JSON.stringify(d)}`);
      assert.ok(d.COPY >= 3, JSON.stringify(d));
      assert.deepEqual((await store.list('tree1/')).objects, []);
      for (const f of ['a.txt', 'sub/b.txt', 'sub/deeper/c.txt']) {
        assert.equal((await stored(`tree2/${f}`))?.toString(), f);
        assert.equal(await readFile(at(`tree2/${f}`), 'utf8'), f);
      }
      assert.ok(!(await readdir(m.mountpoint)).includes('tree1'));
      // mv's copy makes each directory first, and rclone then takes no keys under its marker.
      if (server.quirks.markerListedAsFile) return;
      const small = await mountBucket(server, 'writes', { args: ['--rename-dir-limit', '2'] });
      try {
        const c1 = await small.metricsText();
        await runOk('mv', [path.join(small.mountpoint, 'tree2'), path.join(small.mountpoint, 'tree3')]);
        const copies = sumMetric(await small.metricsText(), 'bucketfs_store_requests_total', { kind: 'COPY' });
        assert.equal(copies - sumMetric(c1, 'bucketfs_store_requests_total', { kind: 'COPY' }), 0, 'EXDEV: mv copied');
        for (const f of ['a.txt', 'sub/b.txt', 'sub/deeper/c.txt']) {
          assert.equal((await stored(`tree3/${f}`))?.toString(), f);
          assert.equal(await store.head(`tree2/${f}`), undefined);
        }
      } finally {
        await small.unmount();
      }
    });

    test('rm of a file open for writing deletes it; its last close uploads nothing and leaves no hidden object', async () => {
      const fifo = path.join(work, 'rm-go');
      await runOk('mkfifo', [fifo]);
      const source = `const fs = require('node:fs');
        const [file, fifo] = process.argv.slice(1);
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, Buffer.from('new bytes'), 0, 9, 0);
        process.stdout.write('written\\n');
        fs.readFileSync(fifo);
        fs.writeSync(fd, Buffer.from('more'), 0, 4, 9);
        fs.closeSync(fd);`;
      const writer = stepwise(source, [at('doomed-open.txt'), fifo]);
      await writer.ready; // opened and written
      await runOk('rm', [at('doomed-open.txt')]);
      assert.equal(await store.head('doomed-open.txt'), undefined);
      await writeFile(fifo, 'go\n');
      const done = await writer.exited;
      assert.equal(done.code, 0, done.out);
      assert.equal(await store.head('doomed-open.txt'), undefined, 'not uploaded again at close');
      const hidden = (await store.list('')).objects.filter((o) => o.key.includes('.fuse_hidden'));
      assert.deepEqual(hidden, []);
      assert.ok(!(await readdir(m.mountpoint)).some((n) => n.startsWith('.fuse_hidden') || n === 'doomed-open.txt'));
    });

    test('a descriptor open on a file being written reads it as written after mv, and after the writer closed', async () => {
      const fifo = path.join(work, 'follow-go');
      await runOk('mkfifo', [fifo]);
      const source = `const fs = require('node:fs');
        const [file, fifo] = process.argv.slice(1);
        const w = fs.openSync(file, 'w');
        fs.writeSync(w, Buffer.from('written here'), 0, 12, 0);
        const r = fs.openSync(file, 'r');
        process.stdout.write('open\\n');
        fs.readFileSync(fifo);
        const read = () => { const b = Buffer.alloc(64); return b.toString('utf8', 0, fs.readSync(r, b, 0, 64, 0)); };
        const seen = [read()];
        fs.writeSync(w, Buffer.from('WRITTEN'), 0, 7, 0);
        fs.closeSync(w);
        seen.push(read());
        fs.closeSync(r);
        process.stdout.write(seen.join('|') + '\\n');`;
      const child = stepwise(source, [at('follow.txt'), fifo]);
      await child.ready; // both descriptors open, nothing uploaded yet
      await runOk('mv', [at('follow.txt'), at('followed.txt')]);
      await writeFile(fifo, 'go\n');
      const { code, out } = await child.exited;
      assert.equal(code, 0, out);
      assert.equal(out.trim().split('\n').at(-1), 'written here|WRITTEN here');
      assert.equal((await stored('followed.txt'))?.toString(), 'WRITTEN here');
      assert.equal(await store.head('follow.txt'), undefined);
    });

    test('files created in a directory made here cost one PUT each and no lookup request', async (t) => {
      if (server.quirks.markerListedAsFile) {
        t.skip(`${backend} takes no keys under a marker`);
        return;
      }
      await runOk('mkdir', [at('fresh')]);
      const lookups = async () => {
        const text = await m.metricsText();
        return ['HEAD', 'LIST'].map((kind) => sumMetric(text, 'bucketfs_store_requests_total', { kind }));
      };
      const [head0, list0] = await lookups();
      const c0 = await counts();
      await runOk('sh', [
        '-c',
        `cd '${at('fresh')}' && for i in $(seq 1 50); do echo $i > f$i; done && ls -l > /dev/null`,
      ]);
      for (let i = 0; i < 200 && delta(c0, await counts()).PUT < 50; i++) await new Promise((r) => setTimeout(r, 25));
      const [head1, list1] = await lookups();
      // One each: the shell's redirect flushes an empty file first, which is not uploaded.
      assert.equal(delta(c0, await counts()).PUT, 50);
      assert.deepEqual([head1 - head0, list1 - list0], [0, 0], 'the listing of a directory made here answers');
      assert.equal((await stored('fresh/f50'))?.toString(), '50\n');
    });

    test('symlinks: ln -s makes an rclone-style link object, read back cold by a second mount; mv and rm of a link', async () => {
      await writeFile(at('link-target.txt'), 'through the link\n');
      await runOk('ln', ['-s', 'link-target.txt', at('ln1')]);
      assert.equal(
        (await stored('ln1.rclonelink'))?.toString(),
        'link-target.txt',
        'the link is an object named with .rclonelink holding the target',
      );
      assert.equal(await store.head('ln1'), undefined);
      // A link made by another client (the object alone) is a link here too.
      await store.put('ln2.rclonelink', Buffer.from('old.txt'));
      const other = await mountBucket(server, 'writes');
      try {
        const cold = path.join(other.mountpoint, 'ln1');
        assert.equal((await runOk('readlink', [cold])).trim(), 'link-target.txt', 'a cold lookup finds the link');
        // The kernel asks readlink at every path walk through a link (libfuse 2 does not let it cache targets).
        const g0 = await other.requests('GET');
        for (let i = 0; i < 3; i++) assert.equal((await runOk('readlink', [cold])).trim(), 'link-target.txt');
        assert.equal((await other.requests('GET')) - g0, 0, 'the target is read once per version');
        assert.equal(await readFile(cold, 'utf8'), 'through the link\n');
        assert.match(await runOk('ls', ['-l', other.mountpoint]), /ln2 -> old\.txt/);
        assert.ok(
          !(await readdir(other.mountpoint)).includes('ln1.rclonelink'),
          'the link object is not listed as a file',
        );
        // (The first mount's listing of the root, cached before ln2 was put, does not show it yet.)
        await runOk('rm', [path.join(other.mountpoint, 'ln2')]);
      } finally {
        await other.unmount();
      }
      await runOk('mv', [at('ln1'), at('ln3')]);
      assert.equal((await stored('ln3.rclonelink'))?.toString(), 'link-target.txt');
      assert.equal(await store.head('ln1.rclonelink'), undefined);
      assert.equal((await runOk('readlink', [at('ln3')])).trim(), 'link-target.txt');
      assert.match((await run('ln', ['-s', 'x', at('ln3')])).stderr, /File exists/);
      await runOk('rm', [at('ln3')]);
      assert.equal(await store.head('ln3.rclonelink'), undefined);
      assert.equal(await store.head('ln2.rclonelink'), undefined);
      assert.equal(
        await readFile(at('link-target.txt'), 'utf8'),
        'through the link\n',
        'rm of a link leaves its target',
      );
    });

    test('rename over an existing file replaces it; O_EXCL on an existing name is EEXIST', async () => {
      await runOk('sh', ['-c', `echo one > '${at('r1')}' && echo two > '${at('r2')}'`]);
      await runOk('mv', [at('r1'), at('r2')]);
      assert.equal((await stored('r2'))?.toString(), 'one\n');
      assert.equal(await store.head('r1'), undefined);
      const r = await run('sh', ['-c', `set -C; echo three > '${at('r2')}'`]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /exists/);
      assert.equal((await stored('r2'))?.toString(), 'one\n');
    });

    test('8 writers at once create 200 small files, every byte in the store', async () => {
      const script = `const fs = require('node:fs'); const crypto = require('node:crypto');
        const [dir, w] = process.argv.slice(1);
        for (let i = 0; i < 25; i++) {
          const body = crypto.createHash('sha256').update(w + ':' + i).digest('hex').repeat(100);
          fs.writeFileSync(dir + '/w' + w + '-' + i + '.txt', body);
        }`;
      await Promise.all(
        Array.from({ length: 8 }, (_, w) => runOk(process.execPath, ['-e', script, at('many'), String(w)])),
      );
      const { createHash } = await import('node:crypto');
      const keys = [];
      let token: string | undefined;
      do {
        const page = await store.list('many/', { token });
        keys.push(...page.objects.map((o) => o.key));
        token = page.next;
      } while (token);
      assert.equal(keys.filter((k) => k !== 'many/seed').length, 200);
      for (let w = 0; w < 8; w++) {
        for (let i = 0; i < 25; i++) {
          const want = createHash('sha256').update(`${w}:${i}`).digest('hex').repeat(100);
          assert.equal((await stored(`many/w${w}-${i}.txt`))?.toString(), want);
        }
      }
      assert.equal((await readdir(at('many'))).length, 201);
    });

    test('a handle reads what it wrote before close; an object changed by another client meanwhile makes close ESTALE', async (t) => {
      const source = `const fs = require('node:fs');
        const [file, fifo] = process.argv.slice(1);
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, Buffer.from('MINE'), 0, 4, 2);
        const back = Buffer.alloc(10);
        fs.readSync(fd, back, 0, 10, 0);
        process.stdout.write(back.toString() + '\\n');
        if (fifo) fs.readFileSync(fifo);
        try { fs.closeSync(fd); } catch (err) { process.stdout.write('close: ' + err.code + '\\n'); process.exit(3); }`;
      assert.equal((await runOk(process.execPath, ['-e', source, at('rw.txt')])).trim(), '01MINE6789');
      assert.equal((await stored('rw.txt'))?.toString(), '01MINE6789');
      if (!server.quirks.conditionalWrite) {
        t.diagnostic(`${backend} ignores write conditions: the ESTALE half is not checked`);
        return;
      }
      const fifo = path.join(work, 'stale-go');
      await runOk('mkfifo', [fifo]);
      // The other client writes once the writer has opened, written and read back (its first line
      // out), however slowly the machine runs it; then the writer closes.
      const writer = stepwise(source, [at('rw.txt'), fifo]);
      await writer.ready;
      await server.putObject('writes', 'rw.txt', 'theirs');
      await writeFile(fifo, 'go\n');
      const { code, out } = await writer.exited;
      assert.equal(code, 3, `close fails: ${out}`);
      // Node names errno 116 only by its number.
      assert.match(out, /close: (ESTALE|Unknown system error -116)/);
      assert.equal((await stored('rw.txt'))?.toString(), 'theirs', "the other client's object is intact");
    });

    test('with --cache-dir a file written and closed is the cached copy of its new version: reading it back costs no GET, after a remount too', async () => {
      const cacheDir = path.join(work, 'adopt-cache');
      const small = randomBytes(300_000);
      const big = randomBytes(11 * MiB + 77);
      await writeFile(path.join(work, 'adopt-big.src'), big);
      const gets = (w: Mounted) => w.requests('GET');
      const first = await mountBucket(server, 'writes', { args: ['--cache-dir', cacheDir, '--write-part-size', '5'] });
      try {
        // One PUT, and an upload in parts streamed while written.
        await runOk('cp', [path.join(work, 'adopt-big.src'), path.join(first.mountpoint, 'adopt-big.bin')]);
        await writeFile(path.join(first.mountpoint, 'adopt-small.bin'), small);
        const adopted = async () =>
          sumMetric(await first.metricsText(), 'bucketfs_file_cache_downloads_total', { outcome: 'adopted' });
        // The copy is taken at the release, which the kernel sends just after close returns.
        for (let i = 0; i < 200 && (await adopted()) < 2; i++) await new Promise((r) => setTimeout(r, 25));
        assert.equal(await adopted(), 2, 'both files taken into the cache');
        const g0 = await gets(first);
        await dropPageCache(); // the reads reach the daemon
        assert.equal(sha256(await readFile(path.join(first.mountpoint, 'adopt-small.bin'))), sha256(small));
        assert.equal((await gets(first)) - g0, 0, 'read back from the cache');
        assert.equal(sha256(await readFile(path.join(first.mountpoint, 'adopt-big.bin'))), sha256(big));
        if (!server.quirks.completionEtagDiffers) assert.equal((await gets(first)) - g0, 0, 'read back from the cache');
      } finally {
        await first.unmount();
      }
      const again = await mountBucket(server, 'writes', { args: ['--cache-dir', cacheDir] });
      try {
        assert.equal(sha256(await readFile(path.join(again.mountpoint, 'adopt-small.bin'))), sha256(small));
        assert.equal(await gets(again), 0, 'read from the copy kept in --cache-dir');
        assert.equal(sha256(await readFile(path.join(again.mountpoint, 'adopt-big.bin'))), sha256(big));
        // Where the upload's answer named another version (rclone), the big file was downloaded above.
        if (!server.quirks.completionEtagDiffers) assert.equal(await gets(again), 0, 'read from the copies kept');
      } finally {
        await again.unmount();
      }
    });

    test('kill -9 during an upload leaves no object; the next mount aborts the upload and reports the staged bytes', async () => {
      const cacheDir = path.join(work, 'crash-cache');
      const first = await mountBucket(server, 'writes', { args: ['--cache-dir', cacheDir, '--write-part-size', '5'] });
      const f = path.join(first.mountpoint, 'crashed.bin');
      const script = `const fs = require('node:fs');
        const fd = fs.openSync(process.argv[1], 'w');
        fs.writeSync(fd, Buffer.alloc(${11 * MiB}, 3));
        setTimeout(() => {}, 600000);`;
      const writer = spawn(process.execPath, ['-e', script, f], { stdio: 'ignore' });
      const writerGone = once(writer, 'exit');
      const parts = async () =>
        sumMetric(await first.metricsText(), 'bucketfs_store_requests_total', { kind: 'UPLOAD_PART', outcome: 'ok' });
      for (let i = 0; i < 1200 && (await parts()) < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await parts(), 2, 'two parts sent while the file is open');
      first.child.kill('SIGKILL');
      writer.kill('SIGKILL');
      await writerGone;
      await first.unmount();
      assert.equal(await store.head('crashed.bin'), undefined, 'no object');
      const again = await mountBucket(server, 'writes', { args: ['--cache-dir', cacheDir] });
      try {
        const log = await readFile(again.logFile, 'utf8');
        assert.match(log, /aborted the unfinished upload of crashed\.bin/);
        const reported = /"staged":"([^"]+)".*holds the bytes of a file an earlier run was writing/.exec(log);
        assert.ok(reported, 'the staged file is named in the log');
        assert.equal((await readFile(reported[1] as string)).length, 11 * MiB, 'and kept');
        assert.equal(sumMetric(await again.metricsText(), 'bucketfs_staged_files_found'), 1);
        assert.equal(await store.head('crashed.bin'), undefined);
      } finally {
        await again.unmount();
      }
    });

    test('rm of a file open for reading: the reader reads it to the end, the object goes at its close, or at the next mount after kill -9', async () => {
      const body = randomBytes(24 * MiB + 3);
      await writeFile(at('held.bin'), body);
      await store.put('held2.bin', Buffer.from('read while removed')); // before the second mount lists
      const fifo = path.join(work, 'held-go');
      await runOk('mkfifo', [fifo]);
      // Reads a first MiB, says so, waits for the fifo, then reads the rest and prints the sha256.
      const source = `const fs = require('node:fs');
        const crypto = require('node:crypto');
        const [file, fifo] = process.argv.slice(1);
        const fd = fs.openSync(file, 'r');
        const hash = crypto.createHash('sha256');
        const buf = Buffer.alloc(${MiB});
        let n = fs.readSync(fd, buf, 0, buf.length, null);
        hash.update(buf.subarray(0, n));
        process.stdout.write('started\\n');
        if (fifo) fs.readFileSync(fifo);
        while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
        fs.closeSync(fd);
        process.stdout.write(hash.digest('hex') + '\\n');`;
      const reader = stepwise(source, [at('held.bin'), fifo]);
      await reader.ready;
      await runOk('rm', [at('held.bin')]);
      assert.ok(!(await readdir(m.mountpoint)).includes('held.bin'), 'the name is gone at once');
      await writeFile(fifo, 'go\n');
      const { code, out } = await reader.exited;
      assert.equal(code, 0, out);
      assert.equal(out.trim().split('\n').at(-1), sha256(body), 'read to the end after the rm');
      // The release that deletes it reaches the daemon just after close returns.
      for (let i = 0; i < 400 && (await store.head('held.bin')); i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(await store.head('held.bin'), undefined, 'deleted at the last close');

      // A daemon killed while such a delete waits: the next mount on its cache dir does it.
      const cacheDir = path.join(work, 'held-cache');
      const first = await mountBucket(server, 'writes', { args: ['--cache-dir', cacheDir] });
      const never = path.join(work, 'held-never');
      await runOk('mkfifo', [never]); // nobody writes to it: the reader holds the file open until killed
      const held = spawn(process.execPath, ['-e', source, path.join(first.mountpoint, 'held2.bin'), never], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      const heldGone = once(held, 'exit');
      await once(held.stdout, 'data'); // open, and its first read done
      await runOk('rm', [path.join(first.mountpoint, 'held2.bin')]);
      first.child.kill('SIGKILL');
      held.kill('SIGKILL');
      await heldGone;
      await first.unmount();
      assert.ok(await store.head('held2.bin'), 'still there: its reader never closed');
      const again = await mountBucket(server, 'writes', { args: ['--cache-dir', cacheDir] });
      try {
        assert.match(
          await readFile(again.logFile, 'utf8'),
          /deleted held2\.bin, which an earlier run removed while it was open/,
        );
        assert.equal(await store.head('held2.bin'), undefined);
      } finally {
        await again.unmount();
      }
    });

    test('a new file is uploaded while it is written: listed at once, in the store only once closed', async () => {
      const fifo = path.join(work, 'go');
      await runOk('mkfifo', [fifo]);
      const f = at('inflight.bin');
      const size = 12 * MiB + 1000;
      // One process, one descriptor (a shell's dup'd descriptors would each flush at their close):
      // writes in 1 MiB pieces, then waits for a line on the fifo before closing.
      const script = `const fs = require('node:fs');
        const fd = fs.openSync(process.argv[1], 'w');
        const piece = Buffer.alloc(${MiB}, 7);
        for (let off = 0; off < ${size}; off += piece.length) fs.writeSync(fd, piece, 0, Math.min(piece.length, ${size} - off));
        process.stdout.write('written\\n');
        fs.readFileSync(process.argv[2]);
        fs.closeSync(fd);`;
      const c0 = await counts();
      const writer = stepwise(script, [f, fifo]);
      await writer.ready; // every byte written, the file still open
      const until = async (what: () => Promise<boolean>) => {
        for (let i = 0; i < 1200 && !(await what()); i++) await new Promise((r) => setTimeout(r, 50));
      };
      await until(async () => (await readdir(m.mountpoint)).includes('inflight.bin'));
      assert.ok((await readdir(m.mountpoint)).includes('inflight.bin'), 'listed while open');
      // Two whole 5 MiB parts are sent before the writer closes.
      await until(async () => delta(c0, await counts()).UPLOAD_PART === 2);
      assert.equal(delta(c0, await counts()).UPLOAD_PART, 2, JSON.stringify(delta(c0, await counts())));
      assert.equal((await runOk('stat', ['-c', '%s', f])).trim(), String(size));
      assert.equal(await store.head('inflight.bin'), undefined, 'not in the store while open');
      await writeFile(fifo, 'go\n');
      assert.equal((await writer.exited).code, 0);
      assert.equal((await store.head('inflight.bin'))?.size, size);
      assert.equal(sha256((await stored('inflight.bin')) ?? ''), sha256(Buffer.alloc(size, 7)));
      const d = delta(c0, await counts());
      assert.deepEqual([d.UPLOAD_START, d.UPLOAD_PART, d.UPLOAD_COMPLETE, d.PUT], [1, 3, 1, 0], JSON.stringify(d));
    });
  });
}
