// The FUSE limit: a trivial fuse-native file system serving the benchmark's tree (bench/layout.ts)
// from one preallocated buffer. Every read is one copy out of RAM, so what fio measures here is
// fuse-native + libfuse 2 + the kernel, with no network and no caching logic. It takes writes as
// well (the FUSE write limit): new files and directories anywhere, each write one copy into the
// same buffer (at its offset, wrapped to the buffer's size: the bytes are not kept, the sizes are),
// fsync and flush answered at once.
// Runs in its own process: node dist/bench/ramfs.js MOUNTPOINT (layout in BENCH_LAYOUT).
// Writes "ready\n" to fd 3 when mounted and unmounts on SIGTERM/SIGINT.
import { randomFillSync } from 'node:crypto';
import { writeSync } from 'node:fs';
import Fuse from 'fuse-native';
import { MAX_READ_BYTES } from '../src/config/fuse-requests.js';
import { optionDefault } from '../src/config/options.js';
import { setKernelReadAhead } from '../src/fuse/kernel-read-ahead.js';
import { CONGESTION_THRESHOLD, MAX_BACKGROUND } from '../src/fuse/mount.js';
import { bigKey, type Layout, layoutFromEnv, smallKey } from './layout.js';

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const O_TRUNC = 0o1000;

interface Node {
  dir: boolean;
  size: number;
  /** Where the file's bytes start in the shared buffer. */
  base: number;
  children?: string[];
  /** Made by a write: the RAM fs takes writes into it. */
  written?: boolean;
}

function buildTree(l: Layout): Map<string, Node> {
  const tree = new Map<string, Node>();
  const dir = (path: string, children: string[]) => tree.set(path, { dir: true, size: 0, base: 0, children });
  dir('/', ['big', 'small']);
  const bigs: string[] = [];
  for (let i = 0; i < l.bigCount; i++) {
    const name = bigKey(i).split('/')[1] as string;
    bigs.push(name);
    // Every large object aliases the same buffer: content does not matter for throughput.
    tree.set(`/big/${name}`, { dir: false, size: l.bigBytes, base: 0 });
  }
  dir('/big', bigs);
  const dirs: string[] = [];
  let n = 0;
  for (let d = 0; d < l.smallDirs; d++) {
    const files: string[] = [];
    for (let f = 0; f < l.smallPerDir; f++) {
      const key = smallKey(d, f);
      files.push(key.split('/')[2] as string);
      const base = (n++ * l.smallBytes) % Math.max(1, l.bigBytes - l.smallBytes);
      tree.set(`/${key}`, { dir: false, size: l.smallBytes, base });
    }
    dirs.push(`d${d}`);
    dir(`/small/d${d}`, files);
  }
  dir('/small', dirs);
  return tree;
}

function attr(node: Node): Record<string, unknown> {
  const now = new Date(0);
  return {
    mtime: now,
    atime: now,
    ctime: now,
    size: node.size,
    mode: node.dir ? S_IFDIR | (node.written ? 0o755 : 0o555) : S_IFREG | (node.written ? 0o644 : 0o444),
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    nlink: node.dir ? 2 : 1,
    blocks: Math.ceil(node.size / 512),
    blksize: 128 * 1024,
  };
}

/**
 * The kernel-facing options bucketfs passes by default (src/fuse/mount.ts fuseOptionList): a
 * read-write mount with reads and writes of up to 1 MiB (with the kernel's read-ahead widened as
 * bucketfs widens it by default), 64 background requests. Names and sizes change only through this
 * mount, so the kernel may cache them for a minute.
 */
const OPTIONS = [
  'fsname=bench-ramfs',
  'subtype=ramfs',
  'default_permissions',
  'attr_timeout=60',
  'entry_timeout=60',
  `max_read=${MAX_READ_BYTES}`,
  'max_readahead=131072',
  `max_background=${MAX_BACKGROUND}`,
  `congestion_threshold=${CONGESTION_THRESHOLD}`,
  'atomic_o_trunc',
  'big_writes',
  `max_write=${MAX_READ_BYTES}`,
  // As bucketfs --direct-io, when the run measures that (BENCH_DIRECT_IO=1).
  ...(process.env.BENCH_DIRECT_IO === '1' ? ['direct_io'] : []),
];

class RamFuse extends Fuse {
  override _fuseOptions(): string {
    return `-o${OPTIONS.join(',')}`;
  }
}

function main(): void {
  const mnt = process.argv[2];
  if (!mnt) throw new Error('usage: ramfs.js MOUNTPOINT');
  const layout = process.env.BENCH_LAYOUT ? (JSON.parse(process.env.BENCH_LAYOUT) as Layout) : layoutFromEnv();
  const ram = Buffer.allocUnsafe(layout.bigBytes);
  // Real bytes in every page: an untouched zero page would make copies look faster than RAM.
  for (let off = 0; off < ram.length; off += 64 * 1024 * 1024) {
    randomFillSync(ram, off, Math.min(64 * 1024 * 1024, ram.length - off));
  }
  const tree = buildTree(layout);
  const handles = new Map<number, Node>();
  let nextFd = 1;
  const ENOENT = -2;
  const EBADF = -9;
  const EEXIST = -17;
  const ENOTEMPTY = -39;
  const parentOf = (p: string): [Node | undefined, string] => {
    const i = p.lastIndexOf('/');
    return [tree.get(i === 0 ? '/' : p.slice(0, i)), p.slice(i + 1)];
  };
  /** Adds a new node at `p` under its parent directory; 0 or -errno. */
  const add = (p: string, node: Node): number => {
    const [parent, name] = parentOf(p);
    if (!parent?.children) return ENOENT;
    if (tree.has(p)) return EEXIST;
    tree.set(p, node);
    parent.children.push(name);
    return 0;
  };
  const remove = (p: string): void => {
    const [parent, name] = parentOf(p);
    tree.delete(p);
    if (parent?.children) parent.children = parent.children.filter((c) => c !== name);
  };
  const ok = (...args: unknown[]) => (args[args.length - 1] as (err: number) => void)(0);
  const ops = {
    init: (cb: (err: number) => void) => cb(0),
    getattr: (path: string, cb: (err: number, st?: unknown) => void) => {
      const node = tree.get(path);
      if (!node) return cb(ENOENT);
      cb(0, attr(node));
    },
    readdir: (path: string, cb: (err: number, names?: string[]) => void) => {
      const node = tree.get(path);
      if (!node?.children) return cb(ENOENT);
      cb(0, node.children);
    },
    open: (path: string, flags: number, cb: (err: number, fd?: number) => void) => {
      const node = tree.get(path);
      if (!node || node.dir) return cb(ENOENT);
      if (node.written && flags & O_TRUNC) node.size = 0;
      const fd = nextFd++;
      handles.set(fd, node);
      cb(0, fd);
    },
    read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      const node = handles.get(fd);
      if (!node) return cb(EBADF);
      const end = Math.min(pos + len, node.size);
      if (pos >= end) return cb(0);
      cb(ram.copy(buf, 0, node.base + pos, node.base + end));
    },
    release: (_path: string, fd: number, cb: (err: number) => void) => {
      handles.delete(fd);
      cb(0);
    },
    create: (path: string, _mode: number, cb: (err: number, fd?: number) => void) => {
      let node = tree.get(path);
      if (!node) {
        node = { dir: false, size: 0, base: 0, written: true };
        const err = add(path, node);
        if (err) return cb(err);
      }
      const fd = nextFd++;
      handles.set(fd, node);
      cb(0, fd);
    },
    write: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      const node = handles.get(fd);
      if (!node) return cb(EBADF);
      // One copy into RAM, as a read is one copy out of it; past the buffer's end it wraps around.
      const at = pos + len <= ram.length ? pos : pos % Math.max(1, ram.length - len);
      buf.copy(ram, at, 0, len);
      node.size = Math.max(node.size, pos + len);
      cb(len);
    },
    truncate: (path: string, size: number, cb: (err: number) => void) => {
      const node = tree.get(path);
      if (!node || node.dir) return cb(ENOENT);
      node.size = size;
      cb(0);
    },
    ftruncate: (_path: string, fd: number, size: number, cb: (err: number) => void) => {
      const node = handles.get(fd);
      if (!node) return cb(EBADF);
      node.size = size;
      cb(0);
    },
    mkdir: (path: string, _mode: number, cb: (err: number) => void) =>
      cb(add(path, { dir: true, size: 0, base: 0, children: [], written: true })),
    unlink: (path: string, cb: (err: number) => void) => {
      if (!tree.get(path) || tree.get(path)?.dir) return cb(ENOENT);
      remove(path);
      cb(0);
    },
    rmdir: (path: string, cb: (err: number) => void) => {
      const node = tree.get(path);
      if (!node?.dir) return cb(ENOENT);
      if (node.children?.length) return cb(ENOTEMPTY);
      remove(path);
      cb(0);
    },
    flush: ok,
    fsync: ok,
    utimens: ok,
    chmod: ok,
    chown: ok,
  };
  const fuse = new RamFuse(mnt, ops, { timeout: false });
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(`ramfs: mount failed: ${err.message}\n`);
      process.exit(1);
    }
    setKernelReadAhead(mnt, Number(optionDefault('kernel-read-ahead-kb'))).then(
      () => {
        if (process.env.BENCH_READY_FD) writeSync(Number(process.env.BENCH_READY_FD), 'ready\n');
      },
      (e: Error) => {
        process.stderr.write(`ramfs: cannot set the kernel's read-ahead: ${e.message}\n`);
        fuse.unmount(() => process.exit(1));
      },
    );
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    fuse.unmount(() => process.exit(0));
    setTimeout(() => process.exit(1), 10_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
