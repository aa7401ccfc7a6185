// All bucketfs errors, in one file. Callers branch on `code`, never on messages.
// The CLI turns an error into one line for a person; the VFS turns it into one errno.

export const ErrorCodes = {
  /** The object or prefix does not exist. */
  NotFound: 'BFS_NOT_FOUND',
  /** The store refused the request (403) for this key or bucket. */
  AccessDenied: 'BFS_ACCESS_DENIED',
  /** The credentials themselves were rejected (unknown key id, bad signature, bad key file). */
  BadCredentials: 'BFS_BAD_CREDENTIALS',
  /** The bucket does not exist. */
  NoSuchBucket: 'BFS_NO_SUCH_BUCKET',
  /** A read pinned to an ETag/generation found a different object (412): it changed under us. */
  Stale: 'BFS_STALE_OBJECT',
  /** The store asked us to slow down (429/503 SlowDown). Retryable. */
  Throttled: 'BFS_THROTTLED',
  /** 5xx from the store. Retryable. */
  ServerError: 'BFS_SERVER_ERROR',
  /** Connection refused/reset, DNS failure, socket timeout. Retryable. */
  Network: 'BFS_NETWORK',
  /** One attempt took longer than the request timeout. Retryable. */
  Timeout: 'BFS_TIMEOUT',
  /** The caller aborted (handle closed, unmount). Not retried. */
  Aborted: 'BFS_ABORTED',
  /** The store answered something we cannot use (short body, bad range). */
  BadResponse: 'BFS_BAD_RESPONSE',
  /** A configuration value or command-line argument is wrong. */
  InvalidArgument: 'BFS_INVALID_ARGUMENT',
  /** The mountpoint cannot be used (missing, not a directory, already mounted). */
  Mountpoint: 'BFS_MOUNTPOINT',
  /** FUSE itself failed to mount. */
  MountFailed: 'BFS_MOUNT_FAILED',
  /** The file cache directory cannot be used (not a directory, or another process holds it). */
  CacheDir: 'BFS_CACHE_DIR',
  /** The metrics server cannot listen where --metrics-host/--metrics-port say. */
  MetricsListen: 'BFS_METRICS_LISTEN',
  /** Anything else from a store we could not classify. */
  Unknown: 'BFS_UNKNOWN',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCodes.Throttled,
  ErrorCodes.ServerError,
  ErrorCodes.Network,
  ErrorCodes.Timeout,
  ErrorCodes.BadResponse,
]);

export class BucketfsError extends Error {
  readonly code: ErrorCode;
  /** The object key or path the error concerns, when there is one. */
  readonly key: string | undefined;
  /** HTTP status of the store response, when there was one. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { key?: string; status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BucketfsError';
    this.code = code;
    this.key = opts.key;
    this.status = opts.status;
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

export function isBucketfsError(err: unknown): err is BucketfsError {
  return err instanceof BucketfsError;
}

export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof BucketfsError && err.code === code;
}

export function invalidArgument(option: string, message: string): BucketfsError {
  return new BucketfsError(ErrorCodes.InvalidArgument, `${option}: ${message}`, { key: option });
}

/** Network-level error codes from Node sockets and DNS that deserve a retry. */
const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Finds a Node/socket error code anywhere in an error's cause chain. */
export function networkErrno(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 6; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_ERRNOS.has(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Short description of an unknown thrown value, for one-line messages. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
