// Checks made before anything is mounted, so bad input fails with one clear line and leaves
// nothing behind: the mountpoint is usable, and the bucket answers with these credentials.
import { stat, statfs } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/config.js';
import { BucketfsError, describe, ErrorCodes } from '../errors.js';
import { fusermountUnmount } from '../fuse/mount.js';
import { mountEntries, mountInfo } from '../fuse/mountinfo.js';
import type { Logger } from '../log.js';
import type { ObjectStore } from '../store/types.js';

/** Mount points listed in /proc/self/mountinfo. */
export async function mountedPaths(): Promise<Set<string>> {
  return new Set((await mountInfo()).keys());
}

/** The file system type of a bucketfs mount in /proc/self/mountinfo (its -o subtype). */
const BUCKETFS_FS_TYPE = 'fuse.bucketfs';
/** How long a mount's daemon gets to answer statfs before the mount counts as live. */
const DEAD_MOUNT_PROBE_MS = 5_000;

/**
 * A mountpoint answering ENOTCONN has lost its FUSE daemon (kill -9, the OOM killer). When that
 * daemon was a bucketfs, the mount is ours to clear: lazily, since a process may still hold a
 * file or its cwd there. A dead mount of another file system is somebody else's to clear.
 */
async function clearDeadBucketfsMount(mountpoint: string, log: Logger): Promise<boolean> {
  if ((await mountEntries()).get(mountpoint)?.fsType !== BUCKETFS_FS_TYPE) return false;
  // stat may be answered from the kernel's attribute cache even on a dead mount; statfs always
  // goes to the daemon (a live bucketfs answers it without a store request). A live daemon that
  // hangs never answers: after a while the mount counts as live, and the caller refuses it.
  const dead = await Promise.race([
    statfs(mountpoint).then(
      () => false,
      (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN',
    ),
    sleep(DEAD_MOUNT_PROBE_MS, false, { ref: false }),
  ]);
  if (!dead) return false;
  if (!(await fusermountUnmount(mountpoint, true))) return false;
  log.info({ mountpoint }, 'cleared the dead mount of a bucketfs that is gone (lazy unmount)');
  return true;
}

export async function checkMountpoint(mountpoint: string, log: Logger): Promise<void> {
  const fail = (msg: string) => new BucketfsError(ErrorCodes.Mountpoint, msg, { key: mountpoint });
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw fail(`mountpoint ${mountpoint} does not exist; create it first (mkdir -p ${mountpoint})`);
    if (code === 'ENOTCONN') {
      if (await clearDeadBucketfsMount(mountpoint, log)) return checkMountpoint(mountpoint, log);
      throw fail(`mountpoint ${mountpoint} is a dead FUSE mount; clear it with: fusermount -u ${mountpoint}`);
    }
    if (code === 'EACCES') throw fail(`mountpoint ${mountpoint} is not accessible to this user`);
    throw fail(`cannot use mountpoint ${mountpoint}: ${describe(err)}`);
  }
  if (!st.isDirectory()) throw fail(`mountpoint ${mountpoint} is not a directory`);
  if ((await mountedPaths()).has(mountpoint)) {
    if (await clearDeadBucketfsMount(mountpoint, log)) return checkMountpoint(mountpoint, log);
    throw fail(`mountpoint ${mountpoint} is already mounted; unmount it first (fusermount -u ${mountpoint})`);
  }
}

function endpointName(c: Pick<Config, 'backend' | 'endpoint' | 'region'>): string {
  if (c.endpoint) return c.endpoint;
  return c.backend === 'gcs' ? 'Google Cloud Storage' : `AWS S3 (${c.region})`;
}

/** One LIST of the mount prefix; turns every way it can fail into a line that says what to do. */
export async function checkBucket(
  store: ObjectStore,
  c: Pick<Config, 'backend' | 'bucket' | 'prefix' | 'endpoint' | 'region' | 'anonymous'>,
): Promise<void> {
  try {
    await store.list(c.prefix, { delimiter: '/', limit: 1 });
  } catch (err) {
    const e = err instanceof BucketfsError ? err : new BucketfsError(ErrorCodes.Unknown, describe(err));
    const where = endpointName(c);
    const uri = `${c.backend === 'gcs' ? 'gs' : 's3'}://${c.bucket}`;
    const credHint =
      c.backend === 'gcs'
        ? 'check --key-file or GOOGLE_APPLICATION_CREDENTIALS'
        : 'check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile, or use --no-sign-request for a public bucket';
    const messages: Partial<Record<string, string>> = {
      [ErrorCodes.NoSuchBucket]: `bucket ${uri} does not exist at ${where}; check the name${c.backend === 's3' ? ', --region' : ''} and --endpoint-url`,
      [ErrorCodes.BadCredentials]: `credentials rejected by ${where} (${firstLine(e.message)}); ${credHint}`,
      [ErrorCodes.AccessDenied]: `access denied listing ${uri} at ${where}; the credentials need list and read permission on the bucket (${credHint})`,
      [ErrorCodes.Network]: `cannot reach ${where} (${firstLine(e.message)}); check --endpoint-url and the network`,
      [ErrorCodes.Timeout]: `${where} did not answer in time; check --endpoint-url and the network`,
    };
    if (/Could not load credentials/i.test(e.message)) {
      messages[ErrorCodes.BadCredentials] =
        'no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use --profile, or --no-sign-request for a public bucket';
    }
    const msg = messages[e.code] ?? `cannot list ${uri} at ${where}: ${firstLine(e.message)}`;
    throw new BucketfsError(e.code, msg, { key: c.bucket, cause: err });
  }
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? s).slice(0, 200);
}
