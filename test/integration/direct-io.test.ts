// --direct-io: the kernel keeps no page cache for file data, so every read reaches the daemon
// (twice for a file read twice through one open file, where the default mount answers the second
// pass from the page cache; a new open drops that cache either way, as we do not set keep_cache),
// bytes are right, and both shared and private mmap read the bytes: the INIT reply of bucketfs's
// fuse-native build sets FUSE_DIRECT_IO_ALLOW_MMAP where the kernel offers it (Linux 6.6); before
// that, shared mmap fails with ENODEV. A kernel-facing option, the same on every backend: tested on
// MinIO only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../helpers/data.js';
import { type Mounted, mountBucket, sumMetric } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;

/** Reads the whole file N times through one open file and prints the sha256 of each pass. */
const CAT = `
const fs = require('node:fs');
const crypto = require('node:crypto');
const fd = fs.openSync(process.argv[1], 'r');
const size = fs.fstatSync(fd).size;
const out = [];
for (let pass = 0; pass < Number(process.argv[2]); pass++) {
  const buf = Buffer.alloc(size);
  for (let got = 0; got < size; ) got += fs.readSync(fd, buf, got, size - got, got);
  out.push(crypto.createHash('sha256').update(buf).digest('hex'));
}
process.stdout.write(out.join(' '));
`;

/** Maps the file read-only, shared or private, and prints the sha256 of the mapping or the errno name. */
const MMAP = `
import errno, hashlib, mmap, sys
with open(sys.argv[1], 'rb') as f:
    try:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ if sys.argv[2] == 'shared' else mmap.ACCESS_COPY)
        print(hashlib.sha256(m[:]).hexdigest())
    except OSError as e:
        print(errno.errorcode[e.errno])
`;

async function fuseReads(m: Mounted): Promise<number> {
  return sumMetric(await m.metricsText(), 'bucketfs_fuse_ops_total', { op: 'read' });
}

describe('--direct-io on minio', { concurrency: false }, () => {
  let server: TestServer;
  const data = randomBytes(4 * MiB + 321);
  const mounts: Mounted[] = [];

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('dio');
    await server.putObject('dio', 'obj.bin', data);
  });

  after(async () => {
    for (const m of mounts) await m.unmount();
    await server?.stop();
  });

  /** FUSE reads the daemon answered for one pass over the file, and for two through one open file. */
  async function passes(m: Mounted): Promise<[number, number]> {
    const file = path.join(m.mountpoint, 'obj.bin');
    const counts: number[] = [];
    for (const n of [1, 2]) {
      const before = await fuseReads(m);
      const got = await runOk(process.execPath, ['-e', CAT, file, String(n)]);
      assert.equal(got, Array(n).fill(sha256(data)).join(' '));
      counts.push((await fuseReads(m)) - before);
    }
    return counts as [number, number];
  }

  test('every read reaches the daemon; without the option the page cache answers a second pass', async () => {
    const direct = await mountBucket(server, 'dio', { args: ['--direct-io'] });
    mounts.push(direct);
    const [one, two] = await passes(direct);
    assert.ok(one > 0 && two >= 2 * one - 2, `FUSE reads with --direct-io: ${one} for one pass, ${two} for two`);
    const cached = await mountBucket(server, 'dio');
    mounts.push(cached);
    const [c1, c2] = await passes(cached);
    assert.ok(c1 > 0 && c2 <= c1 + 2, `FUSE reads without --direct-io: ${c1} for one pass, ${c2} for two`);
  });

  test('shared and private mmap read the bytes (shared: ENODEV before Linux 6.6)', async (t) => {
    const python = await run('python3', ['--version']);
    if (python.code !== 0) return t.skip('python3 not installed');
    const direct = mounts[0] as Mounted;
    const file = path.join(direct.mountpoint, 'obj.bin');
    const [major = 0, minor = 0] = os.release().split('.').map(Number);
    const allowMmap = major > 6 || (major === 6 && minor >= 6);
    assert.equal((await runOk('python3', ['-c', MMAP, file, 'shared'])).trim(), allowMmap ? sha256(data) : 'ENODEV');
    assert.equal((await runOk('python3', ['-c', MMAP, file, 'private'])).trim(), sha256(data));
  });
});
