// One bucketfs process per cache directory. Two processes downloading, evicting and cleaning up
// the same files would corrupt each other's accounting, so a second one refuses with one line.
// The lock is a file holding the owner's pid, created atomically with link(2); a lock whose owner
// is gone (kill -9, crash) is taken over. File-system errors (EACCES, EROFS, ...) are thrown as
// they are: the caller decides what an unwritable directory means.
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BucketfsError, ErrorCodes } from '../../errors.js';

export interface CacheDirLock {
  release(): Promise<void>;
}

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

export async function lockCacheDir(dir: string): Promise<CacheDirLock> {
  const lockFile = path.join(dir, 'lock');
  const mine = path.join(dir, `lock.${process.pid}`);
  await writeFile(mine, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, lockFile);
        return {
          async release() {
            const owner = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
            if (owner === process.pid) await unlink(lockFile).catch(() => {});
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
      if (await isLiveBucketfs(owner)) {
        throw new BucketfsError(
          ErrorCodes.CacheDir,
          `cache directory ${dir} is in use by another bucketfs process (pid ${owner}); give each mount its own --cache-dir`,
          { key: dir },
        );
      }
      // Stale: its owner is gone.
      await unlink(lockFile).catch(() => {});
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
