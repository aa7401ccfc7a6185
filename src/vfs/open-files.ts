// The open-handle table: every handle the kernel holds, and per file (however many handles share
// it) what the handles share — the versions they read (page-cache.ts), the backing file of those in
// passthrough (passthrough.ts), and the changes of those that write (writes.ts). Handles point at
// their file, not at a path: the kernel keeps an open file's inode across a rename (the file moves,
// with its handles and changes) and across an unlink (the name goes, the handles keep reading),
// so the file's entry moves or leaves the path table while its handles stay with it.

import type { FileReader } from '../read/types.js';
import type { ObjectMeta } from '../store/types.js';
import type { PendingDelete } from '../write/pending-delete.js';
import { parentPath } from './names.js';
import type { OpenVersions } from './page-cache.js';
import type { FileBacking } from './passthrough.js';
import type { WritableFile } from './writes.js';

/** One file some handle holds open. */
export interface OpenFile extends OpenVersions {
  /** Where it is now: moved by rename; the last path it had once it lost its name. */
  path: string;
  /** False once unlinked or replaced by a rename: the path belongs to another file (or none). */
  named: boolean;
  /** Handles on it, and opens and releases under way (an entry lives while any holds it). */
  holders: number;
  /** Handles reading the object in the store (not what is being written). */
  storeReaders: number;
  /** Objects it was read from, removed (unlink, renamed away) while read: deleted once the last holder is done. */
  deletesAtClose: PendingDelete[];
  /** The backing file its passthrough handles share. */
  backing: FileBacking | undefined;
  /** Its changes, while a handle that writes (or reads what was written) is open. */
  writable: WritableFile | undefined;
}

export interface Handle {
  file: OpenFile;
  /** The version opened; undefined for a file that had no object yet (created, or opened to write). */
  meta: ObjectMeta | undefined;
  version: string;
  /** Made at open for readers, at the first read for handles of a written file (which often never read). */
  reader: FileReader | undefined;
  /** The kernel reads this handle from a cached copy itself (passthrough.ts). */
  passthrough: boolean;
  /** The changes this handle holds, writing them or reading what was written (released with it). */
  writable: WritableFile | undefined;
  /** Opened for writing: its flush uploads the changes. */
  writer: boolean;
}

export class OpenFiles {
  private readonly handles = new Map<number, Handle>();
  private readonly byPath = new Map<string, OpenFile>();
  private nextHandle = 1;
  /** Files in the table with changes (so a listing knows at once whether to look for any). */
  private writableFiles = 0;

  /** The named file open at `path`, if any. */
  at(path: string): OpenFile | undefined {
    return this.byPath.get(path);
  }

  /** The changes of the file open at `path`, if it is open for writing. */
  writableAt(path: string): WritableFile | undefined {
    return this.byPath.get(path)?.writable;
  }

  /** The file at `path`, entered if none is open: the caller gives it back with `drop` (or a handle's release). */
  hold(path: string): OpenFile {
    let file = this.byPath.get(path);
    if (!file) {
      file = {
        path,
        named: true,
        holders: 0,
        storeReaders: 0,
        deletesAtClose: [],
        versions: new Map(),
        backing: undefined,
        writable: undefined,
      };
      this.byPath.set(path, file);
    }
    file.holders++;
    return file;
  }

  /** One holder of `file` is done with it; the last takes it out of the table. */
  drop(file: OpenFile): void {
    if (--file.holders > 0) return;
    if (file.writable) this.setWritable(file, undefined);
    if (file.named && this.byPath.get(file.path) === file) this.byPath.delete(file.path);
  }

  setWritable(file: OpenFile, writable: WritableFile | undefined): void {
    this.writableFiles += Number(writable !== undefined) - Number(file.writable !== undefined);
    file.writable = writable;
  }

  /** Whether any file open here has changes. */
  get anyWritable(): boolean {
    return this.writableFiles > 0;
  }

  /** Changes of files directly in directory `dir` (a listing shows them before they are uploaded). */
  writableIn(dir: string): WritableFile[] {
    const found: WritableFile[] = [];
    if (!this.anyWritable) return found;
    for (const f of this.byPath.values()) if (f.writable && parentPath(f.path) === dir) found.push(f.writable);
    return found;
  }

  /** Whether a file under directory `dir` has changes. */
  writableUnder(dir: string): boolean {
    if (!this.anyWritable) return false;
    const prefix = dir === '/' ? '/' : `${dir}/`;
    for (const f of this.byPath.values()) if (f.writable && f.path.startsWith(prefix)) return true;
    return false;
  }

  /** The file at `path` lost its name (unlink, or another file renamed over it): its handles keep it. */
  unnamed(path: string): OpenFile | undefined {
    const file = this.byPath.get(path);
    if (!file) return undefined;
    file.named = false;
    this.byPath.delete(path);
    return file;
  }

  /** rename(2) from → to: the file at `from`, or every file under directory `from`, now lives under `to`. */
  moved(from: string, to: string): void {
    this.unnamed(to);
    const prefix = `${from}/`;
    const moving = [...this.byPath.values()].filter((f) => f.path === from || f.path.startsWith(prefix));
    for (const f of moving) this.byPath.delete(f.path);
    for (const f of moving) {
      f.path = to + f.path.slice(from.length);
      this.unnamed(f.path);
      this.byPath.set(f.path, f);
    }
  }

  /** Enters a handle on its (held) file: its number. */
  add(handle: Handle): number {
    const fh = this.nextHandle++;
    this.handles.set(fh, handle);
    return fh;
  }

  handle(fh: number): Handle | undefined {
    return this.handles.get(fh);
  }

  /** Takes the handle out of the table (its file stays held until the caller drops it). */
  remove(fh: number): Handle | undefined {
    const h = this.handles.get(fh);
    this.handles.delete(fh);
    return h;
  }

  get handleCount(): number {
    return this.handles.size;
  }

  handleNumbers(): number[] {
    return [...this.handles.keys()];
  }
}
