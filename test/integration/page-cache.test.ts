// The kernel's page cache kept across opens (src/vfs/page-cache.ts, fuse-native-open-flags.patch):
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
import { runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;

interface Counts {
  fuseReads: number;
  gets: number;
  kept: number;
  bypassed: number;
}

async function counts(m: Mounted): Promise<Counts> {
  const text = await m.metricsText();
  return {
    fuseReads: sumMetric(text, 'bucketfs_fuse_ops_total', { op: 'read' }),
    gets: sumMetric(text, 'bucketfs_store_requests_total', { kind: 'GET' }),
    kept: sumMetric(text, 'bucketfs_page_cache_opens_total', { use: 'keep' }),
    bypassed: sumMetric(text, 'bucketfs_page_cache_opens_total', { use: 'bypass' }),
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

interface Holder {
  child: ReturnType<typeof spawn>;
  /** Resolves once the file is open. */
  ready: Promise<void>;
  /** Sends one command and resolves to its answer line. */
  ask(cmd: string): Promise<string>;
}

function holder(file: string): Holder {
  const child = spawn(process.execPath, ['-e', HOLDER, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buffered = '';
  const stdout = child.stdout as NodeJS.ReadableStream;
  stdout.setEncoding('utf8');
  stdout.on('data', (d: string) => {
    buffered += d;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  const lineAt = async (n: number): Promise<string> => {
    while (lines.length <= n) await once(stdout, 'data');
    return lines[n] as string;
  };
  let next = 1; // line 0 is "open"
  return {
    child,
    ready: lineAt(0).then(() => undefined),
    async ask(cmd: string): Promise<string> {
      const n = next++;
      child.stdin?.write(`${cmd}\n`);
      return lineAt(n);
    },
  };
}

describe('page cache: an older handle never leaves its pages to a newer one', { concurrency: false }, () => {
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
    // Passthrough off: cached copies would be read by the kernel itself, past the page cache
    // this is about (test/integration/passthrough.test.ts).
    m = await mountBucket(server, 'pages', {
      args: ['--metadata-ttl', '0', '--cache-dir', cacheDir, '--file-cache-passthrough-max-mb', '0'],
    });
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });

  test('an old handle reading v1 after v2 was opened: the v2 handle and later opens never see its pages', async () => {
    const file = path.join(m.mountpoint, 'f.bin');
    const a = holder(file);
    let b: Holder | undefined;
    try {
      await a.ready;
      // A reads all of v1: the file cache holds it, and so do the kernel's pages.
      assert.equal(await a.ask(`read 0 ${size}`), sha256(v1));
      await server.putObject('pages', 'f.bin', v2);
      // B opens v2 while A is open: B bypasses the pages.
      const c0 = await counts(m);
      b = holder(file);
      await b.ready;
      assert.equal((await counts(m)).bypassed, c0.bypassed + 1, 'B bypasses the page cache');
      assert.equal(await b.ask('read 0 4096'), sha256(v2.subarray(0, 4096)));
      // A reads the tail again: its open dropped nothing since, but B's did, so from its own
      // version, v1, on the cache's disk; those pages are the inode's now.
      assert.equal(await a.ask(`read ${tail} ${size - tail}`), sha256(v1.subarray(tail)));
      // B reads the same tail: v2, not the pages A just left.
      assert.equal(await b.ask(`read ${tail} ${size - tail}`), sha256(v2.subarray(tail)), 'B reads v2');
      assert.equal(await b.ask('close'), 'closed');
      assert.equal(await a.ask('close'), 'closed');
      // C: the last open was v2 and so is this one, but A's v1 pages must not be served.
      assert.equal(await fileSha(file), sha256(v2), 'v2 whole: no page of v1 kept');
      // Now that only v2 was read since C's open dropped them, the next open keeps the pages.
      const before = await counts(m);
      assert.equal(await fileSha(file), sha256(v2));
      const afterRead = await counts(m);
      assert.equal(afterRead.kept, before.kept + 1);
      assert.equal(afterRead.fuseReads, before.fuseReads);
    } finally {
      a.child.kill();
      b?.child.kill();
    }
  });
});
