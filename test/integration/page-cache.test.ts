// The kernel's page cache kept across opens (src/vfs/page-cache.ts, fuse-native-keep-cache.patch):
// a file read again, unchanged, is served by the kernel without a FUSE read or a store request; a
// changed one is read anew; pages a handle of an older version may have left never reach a newer
// open. Real mounts; request and FUSE read counts from the daemon's metrics.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../helpers/data.js';
import { type Mounted, mountBucket, sumMetric } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;

interface Counts {
  fuseReads: number;
  gets: number;
  kept: number;
}

async function counts(m: Mounted): Promise<Counts> {
  const text = await m.metricsText();
  return {
    fuseReads: sumMetric(text, 'bucketfs_fuse_ops_total', { op: 'read' }),
    gets: sumMetric(text, 'bucketfs_store_requests_total', { kind: 'GET' }),
    kept: sumMetric(text, 'bucketfs_page_cache_kept_opens_total'),
  };
}

async function fileSha(file: string): Promise<string> {
  return (await runOk('sha256sum', [file])).split(' ')[0] as string;
}

for (const backend of ALL_BACKENDS) {
  describe(`page cache kept across opens on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let m: Mounted;
    const v1 = randomBytes(3 * MiB);
    const v2 = randomBytes(3 * MiB);

    before(async () => {
      server = await startServer(backend);
      await server.createBucket('pages');
      await server.putObject('pages', 'f.bin', v1);
      // TTL 0: every open asks the store for the version, so a change is seen at the next open.
      m = await mountBucket(server, 'pages', { args: ['--metadata-ttl', '0'] });
    });

    after(async () => {
      await m?.unmount();
      await server?.stop();
    });

    test('an unchanged file read again costs no FUSE read and no GET; a changed one is read anew', async () => {
      const file = path.join(m.mountpoint, 'f.bin');
      const c0 = await counts(m);
      assert.equal(await fileSha(file), sha256(v1));
      const c1 = await counts(m);
      assert.ok(c1.fuseReads > c0.fuseReads && c1.gets > c0.gets, 'the first read comes to bucketfs');
      assert.equal(c1.kept, c0.kept, 'a first open has nothing to keep');

      assert.equal(await fileSha(file), sha256(v1));
      const c2 = await counts(m);
      assert.equal(c2.kept, c1.kept + 1, 'the second open kept the pages');
      assert.equal(c2.fuseReads, c1.fuseReads, 'served by the kernel: no FUSE read');
      assert.equal(c2.gets, c1.gets, 'no GET');

      await server.putObject('pages', 'f.bin', v2);
      assert.equal(await fileSha(file), sha256(v2), 'the new version, not the cached pages');
      const c3 = await counts(m);
      assert.equal(c3.kept, c2.kept, 'a new version drops the pages');
      assert.ok(c3.fuseReads > c2.fuseReads && c3.gets > c2.gets);

      assert.equal(await fileSha(file), sha256(v2));
      const c4 = await counts(m);
      assert.equal(c4.kept, c3.kept + 1);
      assert.equal(c4.fuseReads, c3.fuseReads);
    });
  });
}

// A handle that stays open on the old version, reading through the file cache after the object
// changed: commands on stdin ("read OFFSET LENGTH", "close"), one answer line each (sha256 or errno).
const HOLDER = `
const fs = require('fs');
const crypto = require('crypto');
const fh = fs.openSync(process.argv[1], 'r');
process.stdout.write('open\\n');
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  pending += d;
  let nl;
  while ((nl = pending.indexOf('\\n')) >= 0) {
    const [cmd, off, len] = pending.slice(0, nl).split(' ');
    pending = pending.slice(nl + 1);
    if (cmd === 'close') { fs.closeSync(fh); process.stdout.write('closed\\n'); process.exit(0); }
    try {
      const buf = Buffer.alloc(Number(len));
      const n = fs.readSync(fh, buf, 0, buf.length, Number(off));
      process.stdout.write(crypto.createHash('sha256').update(buf.subarray(0, n)).digest('hex') + '\\n');
    } catch (err) {
      process.stdout.write('error ' + err.errno + '\\n');
    }
  }
});`;

describe('page cache: an older handle never leaves its pages to a newer open', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;
  const size = 4 * MiB;
  const v1 = randomBytes(size);
  const v2 = randomBytes(size);
  const tail = size - 256 * 1024;
  let cacheDir: string;

  before(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-pages-'));
    server = await startServer('minio');
    await server.createBucket('pages');
    await server.putObject('pages', 'f.bin', v1);
    // The file cache lets the old handle go on reading its version after the object changed.
    m = await mountBucket(server, 'pages', {
      args: ['--metadata-ttl', '0', '--cache-dir', cacheDir],
    });
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });

  test('pages of v1 read by an old handle after v2 was opened are dropped at the next open', async () => {
    const file = path.join(m.mountpoint, 'f.bin');
    const holder = spawn(process.execPath, ['-e', HOLDER, file], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    let buffered = '';
    holder.stdout.setEncoding('utf8');
    holder.stdout.on('data', (d: string) => {
      buffered += d;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
    });
    const answer = async (cmd: string): Promise<string> => {
      const seen = lines.length;
      holder.stdin.write(`${cmd}\n`);
      while (lines.length <= seen) await once(holder.stdout, 'data');
      return lines[seen] as string;
    };
    try {
      while (lines.length === 0) await once(holder.stdout, 'data');
      // A reads all of v1: the file cache holds it, and so do the kernel's pages.
      assert.equal(await answer(`read 0 ${size}`), sha256(v1));
      await server.putObject('pages', 'f.bin', v2);
      // B opens v2 (the pages are dropped) and reads only the head.
      const head = await run('head', ['-c', '4096', file]);
      assert.equal(sha256(head.stdout), sha256(v2.subarray(0, 4096)));
      // A reads the tail again: not in the kernel's pages any more, so from its own version, v1,
      // on the cache's disk; those pages are the inode's now.
      assert.equal(await answer(`read ${tail} ${size - tail}`), sha256(v1.subarray(tail)));
      assert.equal(await answer('close'), 'closed');
      // C: the last open was v2 and so is this one, but A's v1 pages must not be served.
      assert.equal(await fileSha(file), sha256(v2), 'v2 whole: no page of v1 kept');
      // Now that only v2 was read since C's open dropped them, the next open keeps the pages.
      const before = await counts(m);
      assert.equal(await fileSha(file), sha256(v2));
      const afterRead = await counts(m);
      assert.equal(afterRead.kept, before.kept + 1);
      assert.equal(afterRead.fuseReads, before.fuseReads);
    } finally {
      holder.kill();
    }
  });
});
