// fuse-native glue: mounts the VFS, turns async VFS results into fuse-native callbacks (0 or
// -errno, never an Error), times and counts every op, and unmounts. Knows nothing of S3/GCS.
import { execFile } from 'node:child_process';
import Fuse from 'fuse-native';
import type { BackingFiles } from '../backing/files.js';
import { MAX_READ_BYTES } from '../config/fuse-requests.js';
import { BucketfsError, describe, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { Errno, type ErrnoName, errnoName, PosixError } from '../vfs/errno.js';
import type { Vfs } from '../vfs/vfs.js';
import { raiseEventLoopPriority } from './event-loop-priority.js';
import { setKernelReadAhead } from './kernel-read-ahead.js';
import {
  backingClose,
  backingOpen,
  backingOpenPath,
  fuseMaxReadBytes,
  fuseThreadStats,
  OPEN_DIRECT_IO,
  OPEN_KEEP_CACHE,
  OPEN_PASSTHROUGH,
  openFlagsSupported,
  passthroughAnnounced,
  patchedFuseNative,
  requestPassthrough,
} from './native.js';

export interface MountOptions {
  mountpoint: string;
  fsName: string;
  allowOther: boolean;
  allowRoot: boolean;
  /** The kernel refuses every change (mount option ro); the VFS answers EROFS too. */
  readOnly: boolean;
  /** libfuse's auto_unmount: a fusermount process unmounts once our /dev/fuse descriptor closes. */
  autoUnmount: boolean;
  /** No kernel page cache for file data: every read comes to us (mount option direct_io). */
  directIo: boolean;
  /** The kernel's read-ahead window for the mount in KiB, set once mounted; 0 leaves it alone. */
  kernelReadAheadKb: number;
  /** The nice value for the thread that answers FUSE requests, set once mounted; 0 leaves it alone. */
  eventLoopNice: number;
  /** Announce FUSE passthrough in the INIT reply, for opens the kernel reads from cached copies itself. */
  passthrough: boolean;
  /** Kernel mount restrictions (noexec, nosuid, nodev) from -o lists. */
  kernelFlags?: readonly string[];
  /** Kernel caching of attributes and names, in seconds (derived from the metadata TTLs). */
  attrTimeoutSecs: number;
  entryTimeoutSecs: number;
  negativeTimeoutSecs: number;
  /** After this, fuse-native answers ETIMEDOUT for an op we have not finished. */
  opTimeoutMs: number;
  debug: boolean;
}

/** Background FUSE requests (read-ahead) the kernel keeps in flight on the mount; see fuseOptionList. */
export const MAX_BACKGROUND = 64;
/** Background requests past which the kernel stops reading ahead: three quarters of the limit. */
export function congestionThreshold(maxBackground: number): number {
  return Math.max(1, Math.floor((maxBackground * 3) / 4));
}
export const CONGESTION_THRESHOLD = congestionThreshold(MAX_BACKGROUND);

type OpenCallback = (err: number, fd?: number, openFlags?: number, backingId?: number) => void;

/**
 * fuse-native builds its -o string from a fixed list that lacks ro, negative_timeout,
 * max_readahead and nonempty, and drops uid/gid 0. We build the string ourselves.
 */
class BucketFuse extends Fuse {
  private readonly optionString: string;
  private readonly passthrough: boolean;
  constructor(mnt: string, ops: Record<string, unknown>, timeout: number, options: string[], passthrough: boolean) {
    super(mnt, ops, { timeout });
    this.optionString = `-o${options.join(',')}`;
    this.passthrough = passthrough;
  }
  /** fuse-native calls this once its state buffer exists and before mounting: the time to ask for passthrough. */
  override _fuseOptions(): string {
    if (this.passthrough && this._thread) requestPassthrough(this._thread);
    return this.optionString;
  }
  /**
   * fuse-native's own passes on only the handle; bucketfs's build also takes open flags and a
   * backing id. A failed open passes the error alone: the native side reads a handle from any value
   * after it, and a missing one threw in the daemon (a crash, not an errno).
   */
  _op_open(signal: OpenCallback, path: string, flags: number): void {
    type OpenOp = (p: string, f: number, cb: OpenCallback) => void;
    (this.ops.open as OpenOp)(path, flags, (err, fd, openFlags, backingId) =>
      err !== 0 ? signal(err) : signal(err, fd, openFlags, backingId),
    );
  }
}

export function fuseOptionList(o: MountOptions): string[] {
  const opts = [
    `fsname=${o.fsName.replace(/[,\\]/g, '_')}`,
    'subtype=bucketfs',
    'default_permissions',
    // libfuse 2's fusermount refuses a non-empty mountpoint without this; mount-s3 allows it.
    'nonempty',
    `attr_timeout=${o.attrTimeoutSecs}`,
    `entry_timeout=${o.entryTimeoutSecs}`,
    `negative_timeout=${o.negativeTimeoutSecs}`,
    // Reads of up to 1 MiB per request: libfuse 2 grants 128 KiB at most, bucketfs's build of
    // fuse-native takes the size from here (src/fuse/native.ts), and the kernel sends requests
    // that large when its read-ahead window allows (src/fuse/kernel-read-ahead.ts).
    `max_read=${MAX_READ_BYTES}`,
    // INIT can only narrow the kernel's read-ahead window (128 KiB); widenReadAhead widens it once mounted.
    'max_readahead=131072',
    // The kernel sends read-ahead as background requests and keeps at most max_background (12 by
    // default) in flight per mount; past the congestion threshold it stops reading ahead, and
    // each file is then fetched in several smaller synchronous reads: many readers of small files
    // need more (docs/architecture.md, decision D5).
    `max_background=${MAX_BACKGROUND}`,
    `congestion_threshold=${CONGESTION_THRESHOLD}`,
  ];
  if (o.readOnly) opts.push('ro');
  else {
    // O_TRUNC arrives with the open instead of as a truncate before it: an overwrite is one
    // upload, not an empty object first. big_writes: writes of up to 128 KiB per request (libfuse
    // 2's channel buffer) instead of one page.
    // hard_remove: an unlink of an open file is an unlink, not libfuse's rename to .fuse_hiddenN
    // (which would copy the object to a visible key and delete it at the last close).
    opts.push('atomic_o_trunc', 'big_writes', `max_write=${MAX_READ_BYTES}`, 'hard_remove');
  }
  if (o.allowOther) opts.push('allow_other');
  if (o.allowRoot) opts.push('allow_root');
  if (o.autoUnmount) opts.push('auto_unmount');
  if (o.directIo) opts.push('direct_io');
  if (o.debug) opts.push('debug');
  for (const f of o.kernelFlags ?? []) opts.push(f);
  return opts;
}

const neg = (name: ErrnoName): number => -Errno[name];

export class FuseMount {
  private readonly fuse: BucketFuse;
  private readonly vfs: Vfs;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly debug: boolean;
  readonly mountpoint: string;
  private readonly readAheadKb: number;
  private readonly eventLoopNice: number;
  private unmounted = false;
  private backing: BackingFiles | undefined;

  constructor(vfs: Vfs, opts: MountOptions, metrics: Metrics, log: Logger) {
    this.vfs = vfs;
    this.metrics = metrics;
    this.log = log;
    this.debug = opts.debug;
    this.mountpoint = opts.mountpoint;
    this.readAheadKb = opts.kernelReadAheadKb;
    this.eventLoopNice = opts.eventLoopNice;
    this.fuse = new BucketFuse(opts.mountpoint, this.ops(), opts.opTimeoutMs, fuseOptionList(opts), opts.passthrough);
  }

  /**
   * The mount's backing files, once mounted and the kernel agreed to passthrough (asked on every
   * open: made once, when the INIT reply is known to have announced it).
   */
  get backingFiles(): BackingFiles | undefined {
    if (this.unmounted) return undefined;
    if (this.backing) return this.backing;
    const thread = this.fuse._thread;
    if (!thread || !passthroughAnnounced(thread)) return undefined;
    this.backing = {
      open: (fd) => backingOpen(thread, fd),
      openPath: (file, into) => backingOpenPath(thread, file, into),
      close: (id) => {
        // Not after unmount: the device is closed and the ids are gone with it.
        if (!this.unmounted) backingClose(thread, id);
      },
    };
    return this.backing;
  }

  async mount(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.fuse.mount((err) => {
        if (!err) {
          this.watchThreads();
          return resolve();
        }
        reject(new BucketfsError(ErrorCodes.MountFailed, `FUSE mount of ${this.mountpoint} failed: ${err.message}`));
      });
    });
    await this.widenReadAhead();
    await this.raisePriority();
  }

  /** Runs the thread that answers FUSE requests ahead of others on a busy machine (event-loop-priority.ts). */
  private async raisePriority(): Promise<void> {
    const outcome = await raiseEventLoopPriority(this.eventLoopNice);
    if ('raised' in outcome) this.log.info({ nice: outcome.raised }, 'event loop thread priority raised');
    else if ('refused' in outcome)
      this.log.info(
        `event loop thread left at its priority (${outcome.refused}): raising it needs root or CAP_SYS_NICE; --event-loop-nice 0 silences this`,
      );
  }

  /** Sets the kernel's read-ahead window, so that sequential reads come in requests of up to 1 MiB. */
  private async widenReadAhead(): Promise<void> {
    const kb = this.readAheadKb;
    if (kb === 0) return;
    try {
      const set = await setKernelReadAhead(this.mountpoint, kb);
      const maxRead = this.fuse._thread ? fuseMaxReadBytes(this.fuse._thread) : undefined;
      this.log.info(
        { device: set.device, readAheadKb: set.kb, maxReadKb: maxRead && maxRead / 1024 },
        'kernel read-ahead set',
      );
    } catch (err) {
      this.log.warn(
        `kernel read-ahead left at its default (128 KiB): ${describe(err)}; sequential reads reach bucketfs in 128 KiB requests. Run bucketfs as root for a ${kb} KiB window, or pass --kernel-read-ahead-kb 0 to silence this`,
      );
    }
  }

  /** Reports libfuse's threads in the metrics, or warns once that fuse-native is the stock build. */
  private watchThreads(): void {
    const state = this.fuse._thread;
    if (patchedFuseNative && state) {
      this.metrics.fuseThreads = () => fuseThreadStats(state);
      return;
    }
    this.log.warn(
      "fuse-native is the stock build, without bucketfs's patch: a busy mount slows down the longer it runs; build it with: bash scripts/build-fuse-native.sh",
    );
  }

  /** Unmounts (lazily if busy, so a stuck reader cannot keep the daemon alive). */
  async unmount(): Promise<void> {
    await this.vfs.closeAll();
    this.unmounted = true;
    await new Promise<void>((resolve) => {
      this.fuse.unmount((err) => {
        if (err) this.log.warn({ err: err.message }, 'unmount reported an error');
        resolve();
      });
    });
  }

  /** Runs one VFS call and reports its outcome to a callback the fuse-native way. */
  private run<T>(op: string, path: string, call: () => Promise<T> | T, done: (err: number, value?: T) => void): void {
    const stop = this.metrics.fuseOpSeconds.startTimer({ op });
    const finish = (err: number, value?: T, failure?: unknown): void => {
      stop();
      const result = err === 0 ? 'ok' : (Object.keys(Errno).find((k) => Errno[k as ErrnoName] === -err) ?? String(err));
      this.metrics.fuseOps.inc({ op, result });
      if (failure !== undefined) this.logFailure(op, path, result, failure);
      else if (this.debug) this.log.debug({ op, path, result }, 'fuse op');
      done(err, value);
    };
    let pending: Promise<T> | T;
    try {
      pending = call();
    } catch (e) {
      finish(neg(errnoName(e)), undefined, e);
      return;
    }
    Promise.resolve(pending).then(
      (v) => finish(0, v),
      (e: unknown) => finish(neg(errnoName(e)), undefined, e),
    );
  }

  private logFailure(op: string, path: string, errno: string, err: unknown): void {
    // Missing names are everyday traffic (shells probe for files); everything else is worth a line.
    const level = errno === 'ENOENT' || errno === 'EROFS' ? 'debug' : 'warn';
    const e = err as { code?: string; key?: string; message?: string };
    this.log[level]({ op, path, errno, code: e?.code, key: e?.key }, e?.message ?? String(err));
  }

  private ops(): Record<string, unknown> {
    const vfs = this.vfs;
    type Done = (err: number) => void;
    const unsupported =
      (op: string, errno: ErrnoName) =>
      (path: string, ...args: unknown[]) => {
        const cb = args[args.length - 1] as Done;
        this.run(op, path, () => Promise.reject(new PosixError(errno, `${op} ${path}: not supported`)), cb);
      };
    const accepted =
      (op: string) =>
      (path: string, ...args: unknown[]) =>
        this.run(op, path, () => vfs.setattrAccepted(path), args[args.length - 1] as Done);
    return {
      init: (cb: (err: number) => void) => cb(0),
      getattr: (path: string, cb: (err: number, st?: unknown) => void) =>
        this.run('getattr', path, () => vfs.getattr(path), cb),
      readdir: (path: string, cb: (err: number, names?: string[], stats?: unknown[]) => void) =>
        this.run(
          'readdir',
          path,
          () => vfs.readdir(path),
          (err, v) => cb(err, v?.names, v?.attrs),
        ),
      open: (path: string, flags: number, cb: OpenCallback) =>
        this.run(
          'open',
          path,
          () => vfs.open(path, flags),
          (err, o) => {
            if (err !== 0 || !o) return cb(err);
            if (o.backingId !== undefined) {
              this.metrics.pageCacheOpens.inc({ use: 'passthrough' });
              return cb(0, o.fh, OPEN_PASSTHROUGH, o.backingId);
            }
            // A stock fuse-native ignores the flags: counted only when the kernel is told.
            const use = openFlagsSupported ? o.pageCache : undefined;
            if (use === 'keep' || use === 'bypass') this.metrics.pageCacheOpens.inc({ use });
            cb(0, o.fh, use === 'keep' ? OPEN_KEEP_CACHE : use === 'bypass' ? OPEN_DIRECT_IO : 0);
          },
        ),
      read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) =>
        this.run(
          'read',
          path,
          // buf is the kernel's, valid until cb: the reader fills it.
          () => vfs.read(fd, pos, Math.min(len, buf.length), buf),
          (err, n) => cb(err === 0 ? (n ?? 0) : err),
        ),
      release: (path: string, fd: number, cb: (err: number) => void) =>
        this.run('release', path, () => vfs.release(fd), cb),
      statfs: (path: string, cb: (err: number, st?: unknown) => void) =>
        this.run('statfs', path, () => vfs.statfs(), cb),
      create: (path: string, _mode: number, cb: (err: number, fd?: number) => void) =>
        this.run(
          'create',
          path,
          () => vfs.create(path),
          (err, o) => (err !== 0 || !o ? cb(err) : cb(0, o.fh)),
        ),
      write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) =>
        this.run(
          'write',
          path,
          // buf is the kernel's, valid until cb: the write is staged before it.
          () => vfs.write(fd, buf.length > len ? buf.subarray(0, len) : buf, pos),
          (err, n) => cb(err === 0 ? (n ?? 0) : err),
        ),
      flush: (path: string, fd: number, cb: Done) => this.run('flush', path, () => vfs.flush(fd), cb),
      fsync: (path: string, _datasync: number, fd: number, cb: Done) =>
        this.run('fsync', path, () => vfs.fsync(fd), cb),
      truncate: (path: string, size: number, cb: Done) =>
        this.run('truncate', path, () => vfs.truncate(path, size), cb),
      ftruncate: (path: string, fd: number, size: number, cb: Done) =>
        this.run('ftruncate', path, () => vfs.ftruncate(fd, size), cb),
      unlink: (path: string, cb: Done) => this.run('unlink', path, () => vfs.unlink(path), cb),
      mkdir: (path: string, _mode: number, cb: Done) => this.run('mkdir', path, () => vfs.mkdir(path), cb),
      rmdir: (path: string, cb: Done) => this.run('rmdir', path, () => vfs.rmdir(path), cb),
      rename: (from: string, to: string, cb: Done) => this.run('rename', from, () => vfs.rename(from, to), cb),
      chmod: accepted('chmod'),
      chown: accepted('chown'),
      utimens: accepted('utimens'),
      readlink: (path: string, cb: (err: number, target?: string) => void) =>
        this.run('readlink', path, () => vfs.readlink(path), cb),
      // fuse-native's order: the link's target first, then the link's path.
      symlink: (target: string, path: string, cb: Done) =>
        this.run('symlink', path, () => vfs.symlink(target, path), cb),
      link: unsupported('link', 'EPERM'),
      mknod: unsupported('mknod', 'EPERM'),
    };
  }
}

/** Unmounts a path with fusermount, lazily as a last resort (tests, stale mounts). */
export function fusermountUnmount(path: string, lazy = false): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('fusermount', [lazy ? '-uz' : '-u', path], (err) => resolve(!err));
  });
}
