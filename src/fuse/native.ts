// What bucketfs's build of fuse-native adds (scripts/build-fuse-native.sh, patches/): libfuse's
// worker threads as fuse-native sees them (fuse-native-thread-locals.patch), opens that keep or
// bypass the kernel's page cache (fuse-native-open-flags.patch; src/vfs/page-cache.ts), and reads
// of up to 1 MiB per request where libfuse 2 stops at 128 KiB (fuse-native-max-pages.patch).
//
// libfuse 2 starts a worker whenever none is idle and ends one whenever more than ten are: a busy
// mount starts about one thread per ten files that 16 readers open. Stock fuse-native gives every
// new thread a slot of its own (a round trip to the main thread and a libuv handle that is never
// closed), and libuv looks at every handle on each wakeup of the main thread: the RAM file system
// of the benchmark fell from about 1,000 to 580-750 MiB/s over 25 runs of small-16 (~24,000
// threads), with uv__async_io at 55% of its samples. The patched build hands the slot of an ended
// thread to the next one, so the slots stay at the most threads ever busy at once.
import { createRequire } from 'node:module';
import path from 'node:path';
import type { BackingOpenResult } from '../backing/files.js';
import { STOCK_MAX_READ_BYTES } from '../config/fuse-requests.js';
import type { FuseThreadStats } from '../metrics/metrics.js';

interface Binding {
  fuse_native_thread_stats?: (thread: Buffer, which: number) => number;
  fuse_native_open_flags_supported?: () => boolean;
  fuse_native_max_read?: (thread: Buffer) => number;
  fuse_native_want_passthrough?: (thread: Buffer) => void;
  fuse_native_passthrough?: (thread: Buffer) => number;
  fuse_native_backing_open?: (thread: Buffer, fd: number) => number;
  fuse_native_backing_close?: (thread: Buffer, id: number) => number;
  fuse_native_backing_open_path?: (
    thread: Buffer,
    path: string,
    into: Buffer,
    cb: (err: number, bytes: number, id: number, stat: string) => void,
  ) => void;
}

const require = createRequire(import.meta.url);

/** The native module fuse-native itself loads: its own node-gyp-build picks the same file. */
function loadBinding(): Binding {
  const pkg = require.resolve('fuse-native/package.json');
  return createRequire(pkg)('node-gyp-build')(path.dirname(pkg)) as Binding;
}

const binding = loadBinding();

/** Whether the loaded fuse-native is bucketfs's patched build. */
export const patchedFuseNative = typeof binding.fuse_native_thread_stats === 'function';

/** Whether an open can keep or bypass the kernel's cached pages of the file (stock fuse-native ignores it). */
export const openFlagsSupported = typeof binding.fuse_native_open_flags_supported === 'function';

/** Flags of an open's answer in bucketfs's build (fuse-native-open-flags.patch). */
export const OPEN_KEEP_CACHE = 1;
export const OPEN_DIRECT_IO = 2;
/** The kernel reads this handle's data from a backing file itself (with a backing id). */
export const OPEN_PASSTHROUGH = 4;

/** The counts of a mounted fuse-native instance (its `_thread` buffer); undefined on a stock build. */
export function fuseThreadStats(thread: Buffer): FuseThreadStats | undefined {
  const stats = binding.fuse_native_thread_stats;
  if (!stats) return undefined;
  const slots = stats(thread, 0);
  return { slots, started: slots + stats(thread, 1) };
}

/**
 * The largest read request the kernel sends a mounted instance, in bytes, as its INIT reply set
 * it: up to 1 MiB with bucketfs's build (as the max_read mount option asks), 128 KiB with stock
 * fuse-native; undefined until the kernel's INIT has been answered.
 */
export function fuseMaxReadBytes(thread: Buffer): number | undefined {
  const maxRead = binding.fuse_native_max_read;
  if (!maxRead) return STOCK_MAX_READ_BYTES;
  return maxRead(thread) || undefined;
}

/** Asks the kernel for passthrough in the INIT reply; call before the mount starts (fuse-native-max-pages.patch). */
export function requestPassthrough(thread: Buffer): boolean {
  const want = binding.fuse_native_want_passthrough;
  if (!want) return false;
  want(thread);
  return true;
}

/** Whether the INIT reply of a mounted instance announced passthrough. */
export function passthroughAnnounced(thread: Buffer): boolean {
  return (binding.fuse_native_passthrough?.(thread) ?? 0) === 1;
}

/**
 * Registers an open file descriptor as a backing file of the mount: its id (> 0), or -errno (EPERM
 * when not root). An ioctl on /dev/fuse that only takes a reference to the file: it waits for no
 * disk or network.
 */
export function backingOpen(thread: Buffer, fd: number): number {
  return binding.fuse_native_backing_open?.(thread, fd) ?? -95; // EOPNOTSUPP
}

/** Drops a backing id: 0 or -errno. Handles open on it keep reading the file. */
export function backingClose(thread: Buffer, id: number): number {
  return binding.fuse_native_backing_close?.(thread, id) ?? -95;
}

/**
 * Opens `file`, reads it whole into `into` (its first bytes; nothing when empty), registers it as a
 * backing file and closes it: one job on libuv's thread pool. The caller checks the bytes and drops
 * the id if they are wrong. `stat` is the file's identity as fstat gave it before the read.
 */
export function backingOpenPath(thread: Buffer, file: string, into: Buffer): Promise<BackingOpenResult> {
  const openPath = binding.fuse_native_backing_open_path;
  if (!openPath) return Promise.resolve({ error: 0, bytes: 0, id: -95, stat: '' });
  return new Promise((resolve) =>
    openPath(thread, file, into, (error, bytes, id, stat) => resolve({ error, bytes, id, stat })),
  );
}
