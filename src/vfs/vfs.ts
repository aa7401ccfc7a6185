// POSIX semantics over the namespace and the read path: attributes, listings, open handles and
// reads. The only room that knows both the metadata caches and the readers. It raises
// PosixError or BucketfsError; the FUSE glue turns those into one errno each.
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { FileReader, ReaderFactory } from '../read/types.js';
import { type ObjectMeta, versionKey } from '../store/types.js';
import { PosixError } from './errno.js';
import type { Entry, Namespace } from './namespace.js';
import { type PageCacheUse, PageCacheVersions } from './page-cache.js';
import type { PassthroughOpens } from './passthrough.js';

export interface Attr {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  mtime: Date;
  atime: Date;
  ctime: Date;
  blocks: number;
  blksize: number;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
/**
 * st_blksize, the buffer size tools such as cp and cat read with. Not the FUSE request size: the
 * kernel's read-ahead turns their sequential reads into requests of up to MAX_READ_BYTES anyway
 * (src/config/fuse-requests.ts), and a larger buffer would only cost random readers bytes.
 */
const IO_SIZE = 128 * 1024;

interface Handle {
  path: string;
  meta: ObjectMeta;
  version: string;
  reader: FileReader;
  /** The kernel reads this handle from a cached copy itself (passthrough.ts). */
  passthrough: boolean;
}

/**
 * An open file: its handle number, and how it uses the kernel's cached pages of the file, or the
 * backing id of the cached copy the kernel reads instead (passthrough).
 */
export interface Opened {
  fh: number;
  pageCache: PageCacheUse;
  backingId?: number;
}

export type VfsConfig = Pick<Config, 'uid' | 'gid' | 'fileMode' | 'dirMode' | 'directIo'>;

export class Vfs {
  private readonly ns: Namespace;
  private readonly readers: ReaderFactory;
  private readonly config: VfsConfig;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private readonly pageCache = new PageCacheVersions();
  private readonly passthrough: PassthroughOpens | undefined;
  /** Directories have no mtime in an object store; they show the mount time. */
  private readonly mountTime = new Date();

  constructor(
    ns: Namespace,
    readers: ReaderFactory,
    config: VfsConfig,
    metrics: Metrics,
    log: Logger,
    passthrough?: PassthroughOpens,
  ) {
    this.ns = ns;
    this.passthrough = passthrough;
    this.readers = readers;
    this.config = config;
    this.metrics = metrics;
    this.log = log;
  }

  async getattr(path: string): Promise<Attr> {
    const entry = await this.ns.lookup(path);
    if (!entry) throw new PosixError('ENOENT', `no such file or directory: ${path}`);
    return this.attr(entry);
  }

  attr(entry: Entry): Attr {
    if (entry.type === 'dir') {
      const t = this.mountTime;
      return this.makeAttr(S_IFDIR | this.config.dirMode, 4096, t);
    }
    return this.makeAttr(S_IFREG | this.config.fileMode, entry.meta.size, entry.meta.mtime);
  }

  private makeAttr(mode: number, size: number, mtime: Date): Attr {
    return {
      mode,
      uid: this.config.uid,
      gid: this.config.gid,
      size,
      nlink: 1,
      mtime,
      atime: mtime,
      ctime: mtime,
      blocks: Math.ceil(size / 512),
      blksize: IO_SIZE,
    };
  }

  async readdir(path: string): Promise<{ names: string[]; attrs: Attr[] }> {
    const entry = await this.ns.lookup(path);
    if (!entry) throw new PosixError('ENOENT', `no such directory: ${path}`);
    if (entry.type !== 'dir') throw new PosixError('ENOTDIR', `not a directory: ${path}`);
    const children = await this.ns.readdir(path);
    const names = ['.', '..'];
    const dirAttr = this.attr(entry);
    const attrs = [dirAttr, dirAttr];
    for (const c of children) {
      names.push(c.name);
      attrs.push(this.attr(c.entry));
    }
    return { names, attrs };
  }

  async open(path: string, flags: number): Promise<Opened> {
    if ((flags & O_ACCMODE) !== 0 || flags & (O_TRUNC | O_APPEND)) {
      throw new PosixError('EROFS', `read-only mount: cannot open ${path} for writing`);
    }
    const entry = await this.ns.lookup(path, undefined, true);
    if (!entry) throw new PosixError('ENOENT', `no such file: ${path}`);
    if (entry.type !== 'file') throw new PosixError('EISDIR', `is a directory: ${path}`);
    const version = versionKey(entry.meta);
    // The reader is pinned to the version seen now: a later overwrite gives ESTALE, not mixed bytes.
    // Made first, also when the kernel will read the cached copy itself: making it starts the
    // file cache's read-ahead of the next files (src/cache/file/next-files.ts).
    const reader = this.readers(entry.meta);
    let backingId: number | undefined;
    try {
      backingId = await this.passthrough?.opened(path, entry.meta, this.pageCache.isOpen(path));
    } catch (err) {
      reader.close();
      throw err;
    }
    const fh = this.nextHandle++;
    const passthrough = backingId !== undefined;
    this.handles.set(fh, { path, meta: entry.meta, version, reader, passthrough });
    this.metrics.openHandles.set(this.handles.size);
    if (passthrough) return { fh, pageCache: 'drop', backingId };
    // With direct_io the kernel caches no pages: nothing to keep or bypass.
    const pageCache = this.config.directIo ? 'drop' : this.pageCache.opened(path, version);
    return { fh, pageCache };
  }

  /** Copies up to `length` bytes at `offset` of an open file into `into`: how many. */
  async read(fh: number, offset: number, length: number, into: Buffer): Promise<number> {
    const h = this.handles.get(fh);
    if (!h) throw new PosixError('EBADF', `bad file handle ${fh}`);
    try {
      const copied = await h.reader.read(offset, length, into);
      this.metrics.bytesServed.inc(copied);
      return copied;
    } catch (err) {
      if ((err as { code?: string }).code === 'BFS_STALE_OBJECT') this.ns.invalidate(h.path);
      throw err;
    }
  }

  async release(fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    if (h.passthrough) this.passthrough?.released(h.path);
    else if (!this.config.directIo) this.pageCache.closed(h.path, h.version);
    h.reader.close();
    this.metrics.openHandles.set(this.handles.size);
  }

  /** Object stores have no capacity; report a large, stable, mostly free filesystem. */
  statfs(): StatFs {
    const blocks = 0xffff_ffff;
    return {
      bsize: IO_SIZE,
      frsize: 4096,
      blocks,
      bfree: blocks,
      bavail: blocks,
      files: 0xffff_ffff,
      ffree: 0xffff_ffff,
      favail: 0xffff_ffff,
      namemax: 255,
    };
  }

  /** Closes every handle (unmount). */
  closeAll(): void {
    for (const fh of [...this.handles.keys()]) void this.release(fh);
    this.log.debug('all handles closed');
  }
}
