// One bucketfs process per cache directory. Two processes downloading, evicting and cleaning up
// the same files would corrupt each other's accounting, so a second one refuses with one line.
// The lock is a file holding the owner's pid and mountpoint, created atomically with link(2); a
// lock whose owner is gone (kill -9, crash) is taken over. An owner that is alive but whose mount
// is already gone is on its way out (fusermount -u returns before the daemon notices and lets
// go), so it is waited for, a bounded time, instead of refused: `umount; mount` in a script works.
// File-system errors (EACCES, EROFS, ...) are thrown as they are: the caller decides what an
// unwritable directory means.
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BucketfsError, ErrorCodes } from '../../errors.js';

export interface CacheDirLock {
  release(): Promise<void>;
}

/** Who takes the lock: the mount it serves, and how to tell whether a path is still mounted. */
export interface LockOwner {
  mountpoint: string;
  isMounted(mountpoint: string): Promise<boolean>;
}

/**
 * How long an owner whose mount is gone gets to exit. Its daemon looks for its mount once a
 * second and then closes the cache; the rest is slack for a loaded machine.
 */
export const OWNER_EXIT_WAIT_MS = 10_000;
const POLL_MS = 50;

/** True when `pid` is a live process that looks like bucketfs (pids get reused). */
async function isLiveBucketfs(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes('bucketfs');
}

/** The lock file's owner: its pid, and its mountpoint when it recorded one. */
async function readOwner(lockFile: string): Promise<{ pid: number; mountpoint: string }> {
  const [pid = '', mountpoint = ''] = (await readFile(lockFile, 'utf8').catch(() => '')).split('\n');
  return { pid: Number(pid.trim()), mountpoint };
}

export async function lockCacheDir(dir: string, me?: LockOwner): Promise<CacheDirLock> {
  const lockFile = path.join(dir, 'lock');
  const mine = path.join(dir, `lock.${process.pid}`);
  await writeFile(mine, `${process.pid}\n${me?.mountpoint ?? ''}\n`, { mode: 0o600 });
  const waitUntil = Date.now() + OWNER_EXIT_WAIT_MS;
  try {
    for (let takeovers = 0; takeovers < 3; ) {
      try {
        await link(mine, lockFile);
        return {
          async release() {
            if ((await readOwner(lockFile)).pid === process.pid) await unlink(lockFile).catch(() => {});
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = await readOwner(lockFile);
      if (await isLiveBucketfs(owner.pid)) {
        const leaving = me !== undefined && owner.mountpoint !== '' && !(await me.isMounted(owner.mountpoint));
        if (leaving && Date.now() < waitUntil) {
          await sleep(POLL_MS);
          continue;
        }
        throw new BucketfsError(
          ErrorCodes.CacheDir,
          leaving
            ? `cache directory ${dir} is still held by bucketfs pid ${owner.pid}, whose mount ${owner.mountpoint} is gone but which has not exited in ${OWNER_EXIT_WAIT_MS / 1000} s; stop it (kill ${owner.pid}) and mount again`
            : `cache directory ${dir} is in use by another bucketfs process (pid ${owner.pid}); give each mount its own --cache-dir`,
          { key: dir },
        );
      }
      // Stale: its owner is gone.
      await unlink(lockFile).catch(() => {});
      takeovers++;
    }
    throw new BucketfsError(
      ErrorCodes.CacheDir,
      `cannot lock cache directory ${dir}: another process keeps taking it`,
      {
        key: dir,
      },
    );
  } finally {
    await unlink(mine).catch(() => {});
  }
}
