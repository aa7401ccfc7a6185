// What the kernel was told at mount, read back from the FUSE control file system (fusectl,
// /sys/fs/fuse/connections/<device minor>): the background-request limit that lets read-ahead of
// many files at once stay read-ahead (src/fuse/mount.ts). Kernel-facing, the same on every backend:
// tested on MinIO only. Skipped where fusectl is not mounted (scripts/setup.sh mounts it as root).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { CONGESTION_THRESHOLD, MAX_BACKGROUND } from '../../src/fuse/mount.js';
import { type Mounted, mountBucket } from '../helpers/mount.js';
import { startServer, type TestServer } from '../helpers/servers.js';

/** The fusectl directory of the FUSE connection mounted at `mountpoint`. */
async function connectionDir(mountpoint: string): Promise<string> {
  const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mountpoint);
  const minor = line?.split(' ')[2]?.split(':')[1];
  assert.ok(minor, `${mountpoint} is not in /proc/self/mountinfo`);
  return `/sys/fs/fuse/connections/${minor}`;
}

async function fusectlMounted(): Promise<boolean> {
  return (await readFile('/proc/mounts', 'utf8')).includes(' /sys/fs/fuse/connections fusectl ');
}

describe('kernel settings of a mount', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('kernel');
    await server.putObject('kernel', 'a.txt', 'a');
    m = await mountBucket(server, 'kernel');
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
  });

  test('the kernel keeps up to 64 background requests (read-ahead) in flight', async (t) => {
    if (!(await fusectlMounted())) return t.skip('fusectl is not mounted at /sys/fs/fuse/connections');
    const dir = await connectionDir(m.mountpoint);
    assert.equal((await readFile(`${dir}/max_background`, 'utf8')).trim(), String(MAX_BACKGROUND));
    assert.equal((await readFile(`${dir}/congestion_threshold`, 'utf8')).trim(), String(CONGESTION_THRESHOLD));
  });
});
