// One errno for every BucketfsError code. Linux values; fuse-native wants them negated.
import { BucketfsError, type ErrorCode, ErrorCodes } from '../errors.js';

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  ETIMEDOUT: 110,
  ESTALE: 116,
} as const;

export type ErrnoName = keyof typeof Errno;

const BY_CODE: Record<ErrorCode, ErrnoName> = {
  [ErrorCodes.NotFound]: 'ENOENT',
  [ErrorCodes.AccessDenied]: 'EACCES',
  [ErrorCodes.BadCredentials]: 'EACCES',
  [ErrorCodes.NoSuchBucket]: 'EIO',
  // The object changed since the handle was opened: reopen to read the new version.
  [ErrorCodes.Stale]: 'ESTALE',
  [ErrorCodes.Throttled]: 'EIO',
  [ErrorCodes.ServerError]: 'EIO',
  [ErrorCodes.Network]: 'EIO',
  [ErrorCodes.Timeout]: 'EIO',
  [ErrorCodes.Aborted]: 'EINTR',
  [ErrorCodes.BadResponse]: 'EIO',
  [ErrorCodes.InvalidArgument]: 'EINVAL',
  [ErrorCodes.Mountpoint]: 'EIO',
  [ErrorCodes.MountFailed]: 'EIO',
  [ErrorCodes.CacheDir]: 'EIO',
  [ErrorCodes.MetricsListen]: 'EIO',
  [ErrorCodes.Unknown]: 'EIO',
};

/** A POSIX failure raised inside the VFS itself (EROFS, EISDIR, EBADF, ...). */
export class PosixError extends Error {
  readonly errno: ErrnoName;
  constructor(errno: ErrnoName, message: string) {
    super(message);
    this.name = 'PosixError';
    this.errno = errno;
  }
}

/** Errors of the local disk (staged writes) that the caller should see as they are. */
const LOCAL_DISK: ReadonlySet<string> = new Set<ErrnoName>(['ENOSPC', 'EFBIG']);

export function errnoName(err: unknown): ErrnoName {
  if (err instanceof PosixError) return err.errno;
  if (err instanceof BucketfsError) return BY_CODE[err.code];
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && LOCAL_DISK.has(code)) return code as ErrnoName;
  // A full quota is a full disk to the writer.
  if (code === 'EDQUOT') return 'ENOSPC';
  return 'EIO';
}
