// `-o` option lists, the way mount(8) hands them over. An fstab line
//   s3://my-bucket/train /mnt/train fuse.bucketfs _netdev,allow_other,cache_dir=/var/cache/bucketfs 0 0
// makes mount run /sbin/mount.fuse, which runs
//   bucketfs s3://my-bucket/train /mnt/train -o rw,allow_other,cache_dir=/var/cache/bucketfs,dev,suid
// Every bucketfs option can be written there by its name (underscores for dashes, as fstab options
// are usually spelled); mount(8)'s generic options are accepted and mostly mean nothing to a
// FUSE daemon (ro is --read-only); the restricting ones (noexec, nosuid, nodev) go on to the kernel mount.
import { OPTIONS, type OptionSpec } from '../config/options.js';
import { BucketfsError, ErrorCodes } from '../errors.js';

/** Kernel mount flags passed on to FUSE: they restrict the mount, so dropping them would be unsafe. */
const KERNEL_FLAGS = new Set(['noexec', 'nosuid', 'nodev']);

/**
 * Generic options with nothing to do here: handled by mount(8) or systemd before we run (noauto,
 * _netdev, nofail, user), the defaults mount adds to every mount (rw, dev, suid, exec, async: a
 * FUSE mount is nosuid,nodev anyway), or moot for an object store (atime, sync: close and fsync
 * upload anyway). `rw` is the default.
 */
const IGNORED = new Set([
  'rw',
  'defaults',
  'auto',
  'noauto',
  'user',
  'users',
  'nouser',
  'owner',
  'group',
  '_netdev',
  'nofail',
  'dev',
  'suid',
  'exec',
  'async',
  'sync',
  'dirsync',
  'atime',
  'noatime',
  'relatime',
  'norelatime',
  'strictatime',
  'nostrictatime',
  'lazytime',
  'nolazytime',
  'diratime',
  'nodiratime',
  'silent',
  'loud',
]);

const BY_NAME = new Map<string, OptionSpec>(OPTIONS.map((o) => [o.flag, o]));

export interface ExpandedArgs {
  /** The command line with every -o list replaced by the flags it names. */
  argv: string[];
  /** noexec, nosuid, nodev as given in -o lists, for the kernel mount. */
  kernelFlags: string[];
}

function mountOptionError(message: string): BucketfsError {
  return new BucketfsError(
    ErrorCodes.InvalidArgument,
    `${message}; -o takes bucketfs options by name, e.g. -o allow_other,cache_dir=/var/cache/bucketfs (bucketfs --help lists them)`,
  );
}

/** One item of a -o list as a flag (`--cache-dir=/x`), undefined when there is nothing to pass on. */
function itemToFlag(item: string, kernelFlags: string[]): string | undefined {
  const eq = item.indexOf('=');
  const name = eq < 0 ? item : item.slice(0, eq);
  const value = eq < 0 ? undefined : item.slice(eq + 1);
  if (KERNEL_FLAGS.has(name) && value === undefined) {
    if (!kernelFlags.includes(name)) kernelFlags.push(name);
    return undefined;
  }
  if (name === 'ro' && value === undefined) return '--read-only';
  // x-systemd.*, x-gvfs-*: userspace options meant for other readers of fstab.
  if ((IGNORED.has(name) && value === undefined) || name.startsWith('x-') || name === 'comment') return undefined;
  const flag = name.replace(/_/g, '-');
  const spec = BY_NAME.get(flag);
  if (!spec) throw mountOptionError(`unknown mount option "${name}" in -o`);
  if (spec.type === 'boolean') {
    if (value === undefined) return `--${flag}`;
    if (value !== 'true' && value !== 'false')
      throw mountOptionError(`mount option "${name}" is on or off: write "${name}" or "${name}=false", not "${item}"`);
    return `--${flag}=${value}`;
  }
  if (value === undefined || value === '') throw mountOptionError(`mount option "${name}" needs a value: ${name}=...`);
  return `--${flag}=${value}`;
}

/**
 * Replaces each `-o LIST` (or `-oLIST`) in argv with the flags it names. Items are separated by
 * commas; a value holding a comma is written with a backslash before it (prefix=a\,b).
 */
export function expandMountOptions(argv: readonly string[]): ExpandedArgs {
  const out: string[] = [];
  const kernelFlags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg !== '-o' && !(arg.startsWith('-o') && !arg.startsWith('--'))) {
      out.push(arg);
      continue;
    }
    const list = arg === '-o' ? argv[++i] : arg.slice(2);
    if (list === undefined || list === '') throw mountOptionError('-o needs a list of options');
    for (const raw of list.split(/(?<!\\),/)) {
      const item = raw.replace(/\\,/g, ',').trim();
      if (item === '') continue;
      const flag = itemToFlag(item, kernelFlags);
      if (flag !== undefined) out.push(flag);
    }
  }
  return { argv: out, kernelFlags };
}
