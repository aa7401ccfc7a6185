import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setKernelReadAhead } from '../../src/fuse/kernel-read-ahead.js';
import { mountInfo, parseMountEntries, parseMountInfo } from '../../src/fuse/mountinfo.js';

const LINES = [
  '22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw',
  '60 22 0:53 / /mnt/with\\040space rw,nosuid,nodev,relatime shared:40 - fuse.bucketfs s3://b/ rw,user_id=0,group_id=0',
  '61 22 0:54 / /mnt/twice rw shared:41 - fuse.bucketfs s3://b/ rw',
  '62 61 0:55 / /mnt/twice rw shared:42 - fuse.bucketfs s3://c/ rw',
  '',
].join('\n');

test('mountinfo: devices by mount point, octal escapes decoded, the mount on top wins', () => {
  const mounts = parseMountInfo(LINES);
  assert.equal(mounts.get('/'), '259:1');
  assert.equal(mounts.get('/mnt/with space'), '0:53');
  assert.equal(mounts.get('/mnt/twice'), '0:55');
  assert.equal(mounts.size, 3);
});

test('mountinfo: the file system type follows the separator, after any optional fields', () => {
  const entries = parseMountEntries(`${LINES}63 22 0:56 / /mnt/plain rw - fuse.sshfs host: rw\n`);
  assert.equal(entries.get('/')?.fsType, 'ext4');
  assert.equal(entries.get('/mnt/twice')?.fsType, 'fuse.bucketfs');
  assert.equal(entries.get('/mnt/plain')?.fsType, 'fuse.sshfs');
});

test("kernel read-ahead: written to the mount's device and read back; a path not mounted is an error", async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-bdi-'));
  try {
    const device = (await mountInfo()).get('/');
    assert.ok(device, '/ is in this process mountinfo');
    await mkdir(path.join(root, device));
    await writeFile(path.join(root, device, 'read_ahead_kb'), '128\n');
    assert.deepEqual(await setKernelReadAhead('/', 1024, root), { device, kb: 1024 });
    assert.equal(await readFile(path.join(root, device, 'read_ahead_kb'), 'utf8'), '1024');
    await assert.rejects(setKernelReadAhead('/no/such/mount', 1024, root), /not in \/proc\/self\/mountinfo/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
