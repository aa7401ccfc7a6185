// The cache directory's lock: one live bucketfs per directory; a dead owner's lock is taken over;
// an owner whose mount is already gone (fusermount -u returned, the daemon not yet out) is waited
// for instead of refused. Owners are real processes with "bucketfs" in their command line.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { lockCacheDir } from '../../src/cache/file/lock.js';

let dir: string;
const owners: ChildProcess[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-lock-'));
});
after(async () => {
  for (const o of owners) o.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** A live process that looks like a bucketfs daemon, holding the lock for `mountpoint`. */
async function liveOwner(mountpoint: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'bucketfs'], { stdio: 'ignore' });
  owners.push(child);
  await once(child, 'spawn');
  await writeFile(path.join(dir, 'lock'), `${child.pid}\n${mountpoint}\n`);
  return child;
}

const mounted = (paths: string[]) => ({
  mountpoint: '/mnt/new',
  isMounted: async (p: string) => paths.includes(p),
});

test('an owner whose mount is live refuses at once', async () => {
  const owner = await liveOwner('/mnt/old');
  const started = Date.now();
  await assert.rejects(
    lockCacheDir(dir, mounted(['/mnt/old'])),
    new RegExp(`in use by another bucketfs process \\(pid ${owner.pid}\\)`),
  );
  assert.ok(Date.now() - started < 2_000);
  owner.kill('SIGKILL');
  await once(owner, 'exit');
  await unlink(path.join(dir, 'lock'));
});

test('an owner whose mount is gone is waited for, and the lock is taken once it lets go', async () => {
  const owner = await liveOwner('/mnt/old');
  const started = Date.now();
  setTimeout(() => {
    void unlink(path.join(dir, 'lock')).then(() => owner.kill('SIGTERM'));
  }, 400);
  const lock = await lockCacheDir(dir, mounted([]));
  assert.ok(Date.now() - started >= 350, 'it waited for the owner');
  await lock.release();
});

test("a dead owner's lock is taken over; a live lock without a mountpoint is not waited for", async () => {
  const owner = await liveOwner('/mnt/old');
  owner.kill('SIGKILL');
  await once(owner, 'exit');
  const lock = await lockCacheDir(dir, mounted([]));
  await lock.release();

  const older = await liveOwner(''); // a lock file of the pid-only format
  await assert.rejects(lockCacheDir(dir, mounted([])), /in use by another bucketfs process/);
  older.kill('SIGKILL');
  await once(older, 'exit');
});
