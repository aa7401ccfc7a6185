// POSIX semantics over the namespace and the read path: attributes, listings, open handles and
// reads. The only room that knows both the metadata caches and the readers. It raises
// PosixError or BucketfsError; the FUSE glue turns those into one errno each.
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/config.js';
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ReaderFactory } from '../read/types.js';
import { type ObjectMeta, type ObjectStore, versionKey } from '../store/types.js';
import { PosixError } from './errno.js';
import { baseName, joinPath, parentPath } from './names.js';
import { type Entry, linkKey, type Namespace } from './namespace.js';
import { type Handle, type OpenFile, OpenFiles } from './open-files.js';
import { type PageCacheUse, PageCacheVersions } from './page-cache.js';
import type { PassthroughOpens } from './passthrough.js';
import type { WritableFile, Writes } from './writes.js';

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
const S_IFLNK = 0o120000;
/** Link targets kept by version: the kernel asks readlink at every path walk through a link. */
const LINK_TARGETS_MAX = 10_000;
/** Longest link target taken (Linux's PATH_MAX, the most readlink(2) returns). */
const LINK_TARGET_MAX_BYTES = 4096;
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
/**
 * st_blksize, the buffer size tools such as cp and cat read with. Not the FUSE request size: the
 * kernel's read-ahead turns their sequential reads into requests of up to MAX_READ_BYTES anyway
 * (src/config/fuse-requests.ts), and a larger buffer would only cost random readers bytes.
 */
const IO_SIZE = 128 * 1024;

/** What the VFS needs to write: the store itself (deletes, copies, markers) and the open files. */
export interface VfsWriting {
  store: ObjectStore;
  writes: Writes;
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

export type VfsConfig = Pick<Config, 'uid' | 'gid' | 'fileMode' | 'dirMode' | 'directIo' | 'renameDirLimit'>;

/** Copies and deletes in flight at once when a directory is renamed. */
const RENAME_BATCH = 16;

/** Runs `task` on every item, `lanes` at a time; the first failure is thrown once all have settled. */
async function inBatches<T>(items: T[], lanes: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, items.length) }, lane));
  if (failed !== undefined) throw failed;
}

/** The error for opening what is not a file: a directory, or a link the kernel did not follow (O_NOFOLLOW). */
function notAFile(entry: Entry, path: string): PosixError {
  return entry.type === 'symlink'
    ? new PosixError('ELOOP', `is a symbolic link: ${path}`)
    : new PosixError('EISDIR', `is a directory: ${path}`);
}

export class Vfs {
  private readonly ns: Namespace;
  private readonly readers: ReaderFactory;
  private readonly config: VfsConfig;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** Every open handle, and per open file what its handles share. */
  private readonly openFiles = new OpenFiles();
  private readonly pageCache = new PageCacheVersions();
  private readonly passthrough: PassthroughOpens | undefined;
  /** Undefined on a read-only mount: every change is EROFS. */
  private readonly writing: VfsWriting | undefined;
  /** Directories have no mtime in an object store; they show the mount time. */
  private readonly mountTime = new Date();
  private readonly linkTargets = new LRUCache<string, string>({ max: LINK_TARGETS_MAX });
  /** Objects removed while open, by key: deleted at their file's last close (deleteAtClose). */
  private readonly deletingLater = new Map<string, OpenFile>();

  constructor(
    ns: Namespace,
    readers: ReaderFactory,
    config: VfsConfig,
    metrics: Metrics,
    log: Logger,
    passthrough?: PassthroughOpens,
    writing?: VfsWriting,
  ) {
    this.ns = ns;
    this.writing = writing;
    this.passthrough = passthrough;
    this.readers = readers;
    this.config = config;
    this.metrics = metrics;
    this.log = log;
  }

  async getattr(path: string): Promise<Attr> {
    const open = this.openFiles.writableAt(path);
    if (open) return this.writtenAttr(open);
    const entry = await this.ns.lookup(path);
    if (!entry) throw new PosixError('ENOENT', `no such file or directory: ${path}`);
    return this.attr(entry);
  }

  private writtenAttr(f: WritableFile): Attr {
    return this.makeAttr(S_IFREG | this.config.fileMode, this.writing?.writes.size(f) ?? 0, f.mtime);
  }

  attr(entry: Entry): Attr {
    if (entry.type === 'dir') {
      const t = this.mountTime;
      return this.makeAttr(S_IFDIR | this.config.dirMode, 4096, t);
    }
    if (entry.type === 'symlink') return this.makeAttr(S_IFLNK | 0o777, entry.meta.size, entry.meta.mtime);
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
    // Nothing open for writing (most listings): the listing is the answer, with no lookups per child.
    const writing = this.openFiles.anyWritable;
    const listed = new Set<string>();
    for (const c of children) {
      names.push(c.name);
      if (!writing) {
        attrs.push(this.attr(c.entry));
        continue;
      }
      listed.add(c.name);
      const open = this.openFiles.writableAt(joinPath(path, c.name));
      attrs.push(open ? this.writtenAttr(open) : this.attr(c.entry));
    }
    // Files created and not yet uploaded are listed too, as local file systems do.
    for (const f of this.openFiles.writableIn(path)) {
      const name = baseName(f.path);
      if (listed.has(name)) continue;
      names.push(name);
      attrs.push(this.writtenAttr(f));
    }
    return { names, attrs };
  }

  async open(path: string, flags: number): Promise<Opened> {
    if ((flags & O_ACCMODE) !== 0 || flags & (O_TRUNC | O_APPEND)) return this.openToWrite(path, flags);
    const file = this.openFiles.hold(path);
    try {
      // A file being written (perhaps not in the store yet) is read as written so far.
      if (file.writable) return this.handleOf(file, file.writable, false);
      return await this.openToRead(path, file);
    } catch (err) {
      this.openFiles.drop(file);
      throw err;
    }
  }

  private async openToRead(path: string, file: OpenFile): Promise<Opened> {
    const entry = await this.ns.lookup(path, undefined, true);
    if (!entry) throw new PosixError('ENOENT', `no such file: ${path}`);
    if (entry.type !== 'file') throw notAFile(entry, path);
    const version = versionKey(entry.meta);
    // The reader is pinned to the version seen now: a later overwrite gives ESTALE, not mixed bytes.
    // Made first, also when the kernel will read the cached copy itself: making it starts the
    // file cache's read-ahead of the next files (src/cache/file/next-files.ts).
    const reader = this.readers(entry.meta);
    let backingId: number | undefined;
    try {
      backingId = await this.passthrough?.opened(path, file, entry.meta, file.versions.size > 0);
    } catch (err) {
      reader.close();
      throw err;
    }
    const passthrough = backingId !== undefined;
    const fh = this.addHandle({
      file,
      meta: entry.meta,
      version,
      reader,
      passthrough,
      writable: undefined,
      writer: false,
    });
    file.storeReaders++;
    if (passthrough) return { fh, pageCache: 'drop', backingId };
    // With direct_io the kernel caches no pages: nothing to keep or bypass.
    const pageCache = this.config.directIo ? 'drop' : this.pageCache.opened(path, file, version);
    return { fh, pageCache };
  }

  private addHandle(h: Handle): number {
    const fh = this.openFiles.add(h);
    this.metrics.openHandles.set(this.openFiles.handleCount);
    return fh;
  }

  private handle(fh: number): Handle {
    const h = this.openFiles.handle(fh);
    if (!h) throw new PosixError('EBADF', `bad file handle ${fh}`);
    return h;
  }

  private writingOf(what: string): VfsWriting {
    if (!this.writing) throw new PosixError('EROFS', `read-only mount: ${what}`);
    return this.writing;
  }

  /** An open that may change the file: O_WRONLY, O_RDWR, O_TRUNC (the kernel sends O_APPEND writes at the end). */
  private openToWrite(path: string, flags: number): Promise<Opened> {
    const { writes } = this.writingOf(`cannot open ${path} for writing`);
    return this.openWriter(path, (flags & O_TRUNC) !== 0, async (file) => {
      if (file.writable) return file.writable;
      const entry = await this.ns.lookup(path);
      if (!entry) throw new PosixError('ENOENT', `no such file: ${path}`);
      if (entry.type !== 'file') throw notAFile(entry, path);
      const meta = await this.ns.currentFor(path, entry.meta);
      if (!meta) throw new PosixError('ENOENT', `no such file: ${path} (removed from the store)`);
      // Another open may have begun writing the file while this one asked the store.
      return file.writable ?? writes.file(path, meta.key, meta);
    });
  }

  /** create(2) of a file that does not exist (the kernel has looked): an empty object at the first flush. */
  async create(path: string): Promise<Opened> {
    const { writes } = this.writingOf(`cannot create ${path}`);
    await this.parentDir(path);
    // A new file is created only if absent: an object removed here but still read goes first.
    await this.keyFreed(this.ns.keyOf(path));
    // Until its upload the open file answers for the name (getattr, open, readdir see it first).
    return this.openWriter(
      path,
      true,
      async (file) => file.writable ?? writes.file(path, this.ns.keyOf(path), undefined),
    );
  }

  /** A writing handle on the file at `path`, whose changes `changesOf` finds or starts. */
  private async openWriter(
    path: string,
    truncate: boolean,
    changesOf: (file: OpenFile) => Promise<WritableFile>,
  ): Promise<Opened> {
    const writes = this.writing?.writes as Writes;
    const file = this.openFiles.hold(path);
    let changes: WritableFile;
    try {
      changes = await changesOf(file);
      // Its last handle was released while this open asked: this one starts afresh.
      while (changes.finished) changes = await changesOf(file);
      this.openFiles.setWritable(file, changes);
      await writes.open(changes, truncate, () => this.closed(file, changes));
    } catch (err) {
      this.openFiles.drop(file);
      throw err;
    }
    return this.handleOf(file, changes, true);
  }

  /** The last handle of `changes` is done with them: a later open of `file` starts afresh. */
  private closed(file: OpenFile, changes: WritableFile): void {
    if (file.writable === changes) this.openFiles.setWritable(file, undefined);
  }

  /**
   * A handle on a file open for writing: one that writes (its open is done), or one that reads what
   * was written so far (it holds the staged bytes too). The kernel keeps none of the file's pages
   * from an earlier open (they may be of another version).
   */
  private handleOf(file: OpenFile, changes: WritableFile, writer: boolean): Opened {
    if (!writer) this.writing?.writes.joined(changes);
    const meta = changes.base;
    const fh = this.addHandle({
      file,
      meta,
      version: meta ? versionKey(meta) : '',
      reader: undefined,
      passthrough: false,
      writable: changes,
      writer,
    });
    return { fh, pageCache: 'drop' };
  }

  private async parentDir(path: string): Promise<void> {
    const parent = await this.ns.lookup(parentPath(path));
    if (!parent) throw new PosixError('ENOENT', `no such directory: ${parentPath(path)}`);
    if (parent.type !== 'dir') throw new PosixError('ENOTDIR', `not a directory: ${parentPath(path)}`);
  }

  async write(fh: number, data: Buffer, offset: number): Promise<number> {
    const { writes, changes } = this.writerOf(fh);
    await writes.write(changes, data, offset);
    return data.length;
  }

  /** The changes a handle opened for writing makes (EBADF for other handles). */
  private writerOf(fh: number): { writes: Writes; changes: WritableFile } {
    const h = this.handle(fh);
    const writes = this.writing?.writes;
    if (!h.writer || !h.writable || !writes) {
      throw new PosixError('EBADF', `handle ${fh} of ${h.file.path} is not open for writing`);
    }
    return { writes, changes: h.writable };
  }

  /** close(2) of one descriptor: the store has the file's bytes when this resolves. */
  async flush(fh: number): Promise<void> {
    const h = this.openFiles.handle(fh);
    if (h?.writer && h.writable) await this.writing?.writes.flush(h.writable);
  }

  /** fsync(2): the store has the file when this resolves, an empty new one too. */
  async fsync(fh: number): Promise<void> {
    const h = this.openFiles.handle(fh);
    if (h?.writer && h.writable) await this.writing?.writes.flush(h.writable, true);
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const { writes, changes } = this.writerOf(fh);
    await writes.truncate(changes, size);
  }

  /** truncate(2) by path: through the open file when there is one, else opened, changed, uploaded, closed. */
  async truncate(path: string, size: number): Promise<void> {
    const { writes } = this.writingOf(`cannot truncate ${path}`);
    const open = this.openFiles.writableAt(path);
    if (open) return writes.truncate(open, size);
    const { fh } = await this.openToWrite(path, size === 0 ? O_TRUNC | 1 : 1);
    try {
      await this.ftruncate(fh, size);
      await this.flush(fh);
    } finally {
      await this.release(fh);
    }
  }

  async unlink(path: string): Promise<void> {
    const { store } = this.writingOf(`cannot remove ${path}`);
    const open = this.openFiles.writableAt(path);
    const entry = await this.ns.lookup(path);
    if (entry?.type === 'dir') throw new PosixError('EISDIR', `is a directory: ${path}`);
    if (!entry && !open) throw new PosixError('ENOENT', `no such file: ${path}`);
    const file = this.openFiles.at(path);
    this.nameTaken(path);
    if (entry?.type === 'symlink') await store.delete(entry.meta.key);
    else if (entry?.type === 'file') await this.removeObject(file, entry.meta);
    else if (open?.base) await store.delete(this.ns.keyOf(path));
    this.ns.removed(path);
  }

  /**
   * Deletes `meta`, the object `file` is read from, now, or if handles are reading it when they are
   * closed (as a local file system frees an unlinked inode then): they read their version to the end.
   */
  private async removeObject(file: OpenFile | undefined, meta: ObjectMeta): Promise<void> {
    const { store, writes } = this.writing as VfsWriting;
    if (!file || file.storeReaders === 0) return store.delete(meta.key);
    file.deletesAtClose.push(await writes.deleteLater(meta));
    this.deletingLater.set(meta.key, file);
    this.ns.deletingLater(meta.key);
  }

  /** Does the deletes `file` waits for (those of `key` alone when given): at its last close, or before something else takes the key. */
  private async deleteNow(file: OpenFile, key?: string): Promise<void> {
    const due = file.deletesAtClose.filter((p) => key === undefined || p.meta.key === key);
    file.deletesAtClose = file.deletesAtClose.filter((p) => !due.includes(p));
    for (const pending of due) {
      const k = pending.meta.key;
      if (this.deletingLater.get(k) === file) this.deletingLater.delete(k);
      try {
        await this.writing?.writes.deleteNow(pending);
      } finally {
        this.ns.deleted(k);
      }
    }
  }

  /** Before a write to `key`: the object removed there and waiting for its readers goes now. */
  private async keyFreed(key: string): Promise<void> {
    const file = this.deletingLater.get(key);
    if (file) await this.deleteNow(file, key);
  }

  /**
   * The file open at `path` (if any) no longer has that name (unlink, or a rename over it): its
   * handles keep it, and nothing of it is uploaded any more.
   */
  private nameTaken(path: string): void {
    const gone = this.openFiles.unnamed(path);
    if (gone?.writable) this.writing?.writes.unlinked(gone.writable);
  }

  /** readlink(2): the target, read from the link's object once per version. */
  async readlink(path: string): Promise<string> {
    const entry = await this.ns.lookup(path);
    if (!entry) throw new PosixError('ENOENT', `no such file or directory: ${path}`);
    if (entry.type !== 'symlink') throw new PosixError('EINVAL', `not a symbolic link: ${path}`);
    const version = `${entry.meta.key}\0${versionKey(entry.meta)}`;
    const known = this.linkTargets.get(version);
    if (known !== undefined) return known;
    if (entry.meta.size > LINK_TARGET_MAX_BYTES) {
      throw new PosixError('ENAMETOOLONG', `${path}: the link object ${entry.meta.key} is too large for a target`);
    }
    const reader = this.readers(entry.meta);
    try {
      const buf = Buffer.alloc(entry.meta.size);
      const n = await reader.read(0, buf.length, buf);
      const target = buf.toString('utf8', 0, n);
      this.linkTargets.set(version, target);
      return target;
    } finally {
      reader.close();
    }
  }

  /** symlink(2): an object holding the target, created only if nothing has the name. */
  async symlink(target: string, path: string): Promise<void> {
    const { store } = this.writingOf(`cannot make the link ${path}`);
    await this.parentDir(path);
    if (this.openFiles.writableAt(path) || (await this.ns.lookup(path)))
      throw new PosixError('EEXIST', `already exists: ${path}`);
    const body = Buffer.from(target);
    if (body.length > LINK_TARGET_MAX_BYTES) throw new PosixError('ENAMETOOLONG', `link target too long: ${path}`);
    try {
      this.ns.linkMade(path, await store.put(linkKey(this.ns.keyOf(path)), body, { ifAbsent: true }));
    } catch (err) {
      if (err instanceof BucketfsError && err.code === ErrorCodes.Stale) {
        throw new PosixError('EEXIST', `already exists: ${path}`);
      }
      throw err;
    }
  }

  async mkdir(path: string): Promise<void> {
    const { store } = this.writingOf(`cannot make directory ${path}`);
    await this.parentDir(path);
    if (this.openFiles.writableAt(path) || (await this.ns.lookup(path))) {
      throw new PosixError('EEXIST', `already exists: ${path}`);
    }
    // A marker object "dir/", as the S3 console, gcsfuse and Mountpoint's readers take it.
    try {
      await store.put(`${this.ns.keyOf(path)}/`, Buffer.alloc(0), { ifAbsent: true });
    } catch (err) {
      if (err instanceof BucketfsError && err.code === ErrorCodes.Stale) {
        throw new PosixError('EEXIST', `already exists: ${path}`);
      }
      throw err;
    }
    this.ns.dirMade(path, true);
  }

  async rmdir(path: string): Promise<void> {
    const { store } = this.writingOf(`cannot remove directory ${path}`);
    if (path === '/') throw new PosixError('EBUSY', 'cannot remove the mount root');
    const entry = await this.ns.lookup(path);
    if (!entry) throw new PosixError('ENOENT', `no such directory: ${path}`);
    if (entry.type !== 'dir') throw new PosixError('ENOTDIR', `not a directory: ${path}`);
    const marker = `${this.ns.keyOf(path)}/`;
    // Asked of the store, not the list cache: a child another client added must not be deleted with it.
    const page = await store.list(marker, { delimiter: '/', limit: 2 });
    const children = page.prefixes.length + page.objects.filter((o) => o.key !== marker).length;
    if (children > 0 || this.openFiles.writableUnder(path))
      throw new PosixError('ENOTEMPTY', `directory not empty: ${path}`);
    await store.delete(marker);
    this.ns.removed(path);
  }

  /**
   * rename(2): of a file, a server-side copy, then a delete of the source (not atomic: for a moment
   * both exist, as in gcsfuse); of a directory, the same for every object under it (renameDir).
   */
  async rename(from: string, to: string): Promise<void> {
    const { store, writes } = this.writingOf(`cannot rename ${from}`);
    await this.parentDir(to);
    const open = this.openFiles.writableAt(from);
    if (open) await writes.flush(open);
    const entry = await this.ns.lookup(from);
    if (!entry && !open) throw new PosixError('ENOENT', `no such file: ${from}`);
    if (entry?.type === 'dir') return this.renameDir(from, to);
    const target = await this.ns.lookup(to);
    if (target?.type === 'dir') throw new PosixError('EISDIR', `is a directory: ${to}`);
    // What `to` was goes, whatever it was: a link left there would be hidden by the file, a file would hide the link.
    const replaced = target && (target.type === 'symlink') !== (entry?.type === 'symlink') ? target.meta : undefined;
    if (entry?.type === 'symlink') {
      const moved = await store.copy(entry.meta, linkKey(this.ns.keyOf(to)));
      await store.delete(entry.meta.key);
      if (replaced) await store.delete(replaced.key);
      this.nameTaken(to);
      this.ns.removed(from);
      this.ns.removed(to);
      this.ns.linkMade(to, moved);
      return;
    }
    const source = await this.ns.currentFile(from);
    if (!source) throw new PosixError('ENOENT', `no such file: ${from}`);
    if (source.size > store.uploadShape.maxPutBytes) {
      throw new PosixError('EXDEV', `${from} is larger than one server-side copy takes (mv copies it instead)`);
    }
    const toKey = this.ns.keyOf(to);
    await this.keyFreed(toKey);
    const copied = await store.copy(source, toKey);
    await this.removeObject(this.openFiles.at(from), source);
    if (replaced) await store.delete(replaced.key);
    this.nameTaken(to);
    if (open) writes.moved(open, to, toKey, copied);
    this.openFiles.moved(from, to);
    this.ns.removed(from);
    if (replaced) this.ns.removed(to);
    this.ns.fileWritten(to, copied);
  }

  /**
   * rename(2) of a directory: every object under it copied, then deleted, some at a time (not atomic,
   * as gcsfuse's). Up to --rename-dir-limit objects; past it EXDEV, and mv copies file by file.
   */
  private async renameDir(from: string, to: string): Promise<void> {
    const { store } = this.writingOf(`cannot rename ${from}`);
    if (`${to}/`.startsWith(`${from}/`)) throw new PosixError('EINVAL', `cannot move ${from} into itself`);
    if (this.openFiles.writableUnder(from)) throw new PosixError('EBUSY', `files under ${from} are open for writing`);
    const target = await this.ns.lookup(to);
    if (target?.type === 'file') throw new PosixError('ENOTDIR', `not a directory: ${to}`);
    const fromPrefix = `${this.ns.keyOf(from)}/`;
    const toPrefix = `${this.ns.keyOf(to)}/`;
    if (target) {
      const page = await store.list(toPrefix, { limit: 2 });
      if (page.objects.some((o) => o.key !== toPrefix)) throw new PosixError('ENOTEMPTY', `directory not empty: ${to}`);
    }
    const limit = this.config.renameDirLimit;
    const objects: ObjectMeta[] = [];
    let token: string | undefined;
    do {
      const page = await store.list(fromPrefix, { token, limit: 1000 });
      objects.push(...page.objects);
      if (objects.length > limit) {
        throw new PosixError(
          'EXDEV',
          `${from} holds more than --rename-dir-limit (${limit}) objects: mv copies it instead`,
        );
      }
      token = page.next;
    } while (token);
    if (objects.some((o) => o.size > store.uploadShape.maxPutBytes)) {
      throw new PosixError(
        'EXDEV',
        `${from} holds a file larger than one server-side copy takes: mv copies it instead`,
      );
    }
    await inBatches(objects, RENAME_BATCH, (o) => store.copy(o, toPrefix + o.key.slice(fromPrefix.length)));
    await inBatches(objects, RENAME_BATCH, (o) => store.delete(o.key));
    this.ns.removedTree(from);
    this.ns.removedTree(to);
    this.ns.dirMade(to, false);
    // Files read under it are open there now, as the kernel sees them.
    this.openFiles.moved(from, to);
  }

  /** Object stores keep no modes, owners or times bucketfs could set: accepted and not kept (as gcsfuse). */
  async setattrAccepted(path: string): Promise<void> {
    this.writingOf(`cannot change ${path}`);
    if (!this.openFiles.writableAt(path) && !(await this.ns.lookup(path))) {
      throw new PosixError('ENOENT', `no such file or directory: ${path}`);
    }
  }

  /** Copies up to `length` bytes at `offset` of an open file into `into`: how many. */
  async read(fh: number, offset: number, length: number, into: Buffer): Promise<number> {
    const h = this.handle(fh);
    // The bytes as written so far, for every handle of a file being written.
    const writing = h.file.writable;
    const writes = this.writing?.writes;
    if (writing && writes) {
      const staged = await writes.read(writing, into, offset, length);
      if (staged !== undefined) return staged;
    }
    const meta = h.meta ?? writing?.base;
    if (!meta) return 0;
    h.reader ??= this.readers(meta);
    try {
      const copied = await h.reader.read(offset, length, into);
      this.metrics.bytesServed.inc(copied);
      return copied;
    } catch (err) {
      if ((err as { code?: string }).code === 'BFS_STALE_OBJECT' && h.file.named) this.ns.invalidate(h.file.path);
      throw err;
    }
  }

  async release(fh: number): Promise<void> {
    const h = this.openFiles.remove(fh);
    if (!h) return;
    const { file, writable } = h;
    if (!writable) file.storeReaders--;
    if (h.passthrough) this.passthrough?.released(file);
    else if (!this.config.directIo && !writable) this.pageCache.closed(file.path, file, h.version);
    h.reader?.close();
    this.metrics.openHandles.set(this.openFiles.handleCount);
    try {
      // The file stays in the table during the last upload: an open meanwhile joins its changes.
      if (writable) await this.writing?.writes.release(writable, () => this.closed(file, writable));
    } finally {
      this.openFiles.drop(file);
    }
    if (file.holders === 0 && file.deletesAtClose.length > 0) await this.deleteNow(file);
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

  /** Closes every handle (unmount), uploading what was written and not yet flushed. */
  async closeAll(): Promise<void> {
    await Promise.allSettled(this.openFiles.handleNumbers().map((fh) => this.release(fh)));
    this.log.debug('all handles closed');
  }
}
