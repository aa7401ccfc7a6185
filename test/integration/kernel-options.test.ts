// What the kernel was told at mount, read back from the kernel: the background-request limit that
// lets read-ahead of many files at once stay read-ahead (fusectl, /sys/fs/fuse/connections/<minor>),
// the read-ahead window and request size that let a sequential read arrive in 1 MiB requests
// (/sys/class/bdi/<device>, src/fuse/kernel-read-ahead.ts), and the scheduler's priority of the
// thread that answers FUSE requests (/proc/PID/task, src/fuse/event-loop-priority.ts). Kernel-facing, the same on every
// backend: tested on MinIO only. Skipped where fusectl is not mounted or the tests are not root
// (scripts/setup.sh mounts fusectl as root; only root may widen read-ahead).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CONGESTION_THRESHOLD, MAX_BACKGROUND } from '../../src/fuse/mount.js';
import { mountInfo } from '../../src/fuse/mountinfo.js';
import { sha256 } from '../helpers/data.js';
import { forceUnmount, type Mounted, mountBucket, sleep, sumMetric } from '../helpers/mount.js';
import { startServer, type TestServer } from '../helpers/servers.js';

/** The device (major:minor) of the mount at `mountpoint`. */
async function deviceOf(mountpoint: string): Promise<string> {
  const device = (await mountInfo()).get(mountpoint);
  assert.ok(device, `${mountpoint} is not in /proc/self/mountinfo`);
  return device;
}

async function fusectlMounted(): Promise<boolean> {
  return (await readFile('/proc/mounts', 'utf8')).includes(' /sys/fs/fuse/connections fusectl ');
}

async function readAheadKb(mountpoint: string): Promise<number> {
  return Number((await readFile(`/sys/class/bdi/${await deviceOf(mountpoint)}/read_ahead_kb`, 'utf8')).trim());
}

/** Reads a file front to back in 1 MiB reads (through the page cache) and returns its SHA-256. */
async function readSequentially(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The nice value of every thread of a process, by thread id (field 19 of /proc/PID/task/TID/stat). */
async function threadNices(pid: number): Promise<Map<number, number>> {
  const nices = new Map<number, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined);
    if (!stat) continue; // the thread ended meanwhile
    // After "pid (comm)" the fields run from state (3rd) on: nice is the 19th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    nices.set(Number(tid), Number(fields[19 - 3]));
  }
  return nices;
}

const fuseReads = async (m: Mounted) => sumMetric(await m.metricsText(), 'bucketfs_fuse_ops_total', { op: 'read' });

const BIG = 16 * 1024 * 1024;

describe('kernel settings of a mount', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;
  let narrow: Mounted;
  const big = randomBytes(BIG);

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('kernel');
    await server.putObject('kernel', 'a.txt', 'a');
    await server.putObject('kernel', 'big.bin', big);
    m = await mountBucket(server, 'kernel');
    narrow = await mountBucket(server, 'kernel', { args: ['--kernel-read-ahead-kb', '0', '--event-loop-nice', '0'] });
  });

  after(async () => {
    await m?.unmount();
    await narrow?.unmount();
    await server?.stop();
  });

  test('the kernel keeps up to 64 background requests (read-ahead) in flight', async (t) => {
    if (!(await fusectlMounted())) return t.skip('fusectl is not mounted at /sys/fs/fuse/connections');
    const dir = `/sys/fs/fuse/connections/${(await deviceOf(m.mountpoint)).split(':')[1]}`;
    assert.equal((await readFile(`${dir}/max_background`, 'utf8')).trim(), String(MAX_BACKGROUND));
    assert.equal((await readFile(`${dir}/congestion_threshold`, 'utf8')).trim(), String(CONGESTION_THRESHOLD));
  });

  test('a sequential read reaches bucketfs in 1 MiB requests: a 1 MiB read-ahead window and 1 MiB reads', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('only root may widen the kernel read-ahead');
    assert.equal(await readAheadKb(m.mountpoint), 1024);
    const before = await fuseReads(m);
    assert.equal(await readSequentially(path.join(m.mountpoint, 'big.bin')), sha256(big));
    const reads = (await fuseReads(m)) - before;
    // 16 reads of 1 MiB, and a few smaller ones while the kernel's window grows from the first read.
    assert.ok(reads >= BIG / (1024 * 1024) && reads <= 24, `${reads} FUSE reads for 16 MiB`);
  });

  test('--kernel-read-ahead-kb 0 leaves the kernel its 128 KiB window, and reads come in 128 KiB', async () => {
    assert.equal(await readAheadKb(narrow.mountpoint), 128);
    const before = await fuseReads(narrow);
    assert.equal(await readSequentially(path.join(narrow.mountpoint, 'big.bin')), sha256(big));
    const reads = (await fuseReads(narrow)) - before;
    assert.ok(reads >= BIG / (128 * 1024), `${reads} FUSE reads for 16 MiB`);
  });

  test('the thread that answers FUSE requests runs at nice -15 and no other thread does; --event-loop-nice 0 leaves it at 0', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('only root may raise a thread priority');
    // Something to read first: libfuse starts its workers with the first requests.
    assert.equal(await readFile(path.join(m.mountpoint, 'a.txt'), 'utf8'), 'a');
    const pid = m.child.pid as number;
    const nices = await threadNices(pid);
    assert.equal(nices.get(pid), -15, 'the main thread (the event loop)');
    const others = [...nices].filter(([tid]) => tid !== pid);
    // libuv's pool (32 threads), libfuse's, V8's: all started at the normal priority.
    assert.ok(others.length >= 32, `${others.length} other threads`);
    assert.deepEqual(
      others.filter(([, nice]) => nice !== 0),
      [],
      'threads other than the event loop keep nice 0',
    );
    const left = await threadNices(narrow.child.pid as number);
    assert.deepEqual([...new Set(left.values())], [0], '--event-loop-nice 0: every thread at 0');
  });

  test('a mountpoint named through a symlink: the daemon finds its mount, stays up and widens its read-ahead', async () => {
    const real = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-real-'));
    const link = `${real}-link`;
    await mkdir(path.join(real, 'mnt'));
    await symlink(real, link);
    const viaLink = await mountBucket(server, 'kernel', { mountpoint: path.join(link, 'mnt') });
    try {
      await sleep(2500); // past the daemon's once-a-second look for an external unmount
      assert.equal(viaLink.child.exitCode, null, 'the daemon is still running');
      assert.equal(await readFile(path.join(link, 'mnt', 'a.txt'), 'utf8'), 'a');
      if (process.getuid?.() === 0) assert.equal(await readAheadKb(path.join(real, 'mnt')), 1024);
    } finally {
      await viaLink.unmount();
      await forceUnmount(path.join(real, 'mnt'));
      await rm(link, { force: true });
      await rm(real, { recursive: true, force: true });
    }
  });
});
