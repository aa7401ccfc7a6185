// Files open for writing, one per open file however many handles share it (the open-handle table in
// open-files.ts holds it beside the file's other state): where their bytes are staged, the version
// they replace, and the upload that makes them durable. A change is staged on local disk
// (src/write/staged-file.ts) and uploaded at flush (every close(2)), fsync and the last release;
// close and fsync return only once the store has the object. Conditional writes make a lost update
// an error instead of a silent overwrite: a new file is created only if absent, a changed one
// replaces only the version it was opened on (ESTALE otherwise, as gcsfuse's precondition errors).
import type { FileCache } from '../cache/file/file-cache.js';
import { BucketfsError, describe, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { MemoryBudget } from '../memory/budget.js';
import type { Metrics } from '../metrics/metrics.js';
import { type ObjectMeta, type ObjectStore, versionPin, type WriteCondition } from '../store/types.js';
import { deleteLater, deleteNow, type PendingDelete } from '../write/pending-delete.js';
import { StagedFile } from '../write/staged-file.js';
import { StreamingUpload } from '../write/stream-upload.js';
import { PartBuffers, partSizeFor, type UploadOptions, uploadStaged } from '../write/upload.js';
import { PosixError } from './errno.js';
import type { Namespace } from './namespace.js';

/** Old bytes are read into the staged file in pieces of this size. */
const FILL_BYTES = 8 * 1024 * 1024;

export interface WritableFile {
  path: string;
  key: string;
  /** The version this file replaces; undefined while no object has the key (a new file). */
  base: ObjectMeta | undefined;
  /** Its bytes, once a change needed them (or at once for new and truncated files). */
  stage: StagedFile | undefined;
  /** The upload under way while a new (or emptied) file is written in order. */
  stream: StreamingUpload | undefined;
  /** Changed since the last upload. */
  dirty: boolean;
  /** Written or truncated through a handle since it was opened (the open's own truncate aside). */
  written: boolean;
  /** Removed by unlink or replaced by a rename while open: nothing is uploaded any more. */
  unlinked: boolean;
  /** The last upload failed: the release keeps the staged bytes instead of trying again. */
  failed: boolean;
  /** Handles that write it, or read what was written: the staged copy lives until the last is released. */
  handles: number;
  /** Its last handle was released: an open from now on starts afresh instead of joining it. */
  finished: boolean;
  mtime: Date;
  /** Staging and uploads of this file, one at a time. */
  queue: Promise<unknown>;
}

export interface WritesConfig {
  stagingDir: string;
  /** Bytes all open files may stage at once (--write-staging-max-mb); past it a write is ENOSPC. */
  maxStagedBytes: number;
  upload: Omit<UploadOptions, 'buffers'>;
}

export class Writes {
  private readonly store: ObjectStore;
  private readonly ns: Namespace;
  private readonly config: WritesConfig;
  private readonly budget: MemoryBudget;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly partBuffers: PartBuffers;
  /** Takes the staged copy of a file once uploaded, as its new version's cached copy (--cache-dir). */
  private readonly fileCache: FileCache | undefined;
  /** Bytes staged by the files open now (a file's bytes kept after a failed upload no longer count). */
  private stagedBytes = 0;

  constructor(
    store: ObjectStore,
    ns: Namespace,
    config: WritesConfig,
    budget: MemoryBudget,
    metrics: Metrics,
    log: Logger,
    fileCache?: FileCache,
  ) {
    this.fileCache = fileCache;
    this.store = store;
    this.ns = ns;
    this.config = config;
    this.budget = budget;
    this.metrics = metrics;
    this.log = log;
    this.partBuffers = new PartBuffers(partSizeFor(0, config.upload.partBytes, store.uploadShape), budget);
  }

  /**
   * The changes to be made to `path` (object `key`), with no handle yet. `base` is the object there
   * now (undefined: a new file, which is created even if nothing is written).
   */
  file(path: string, key: string, base: ObjectMeta | undefined): WritableFile {
    return {
      path,
      key,
      base,
      stage: undefined,
      stream: undefined,
      dirty: base === undefined,
      written: false,
      unlinked: false,
      failed: false,
      handles: 0,
      finished: false,
      mtime: new Date(),
      queue: Promise.resolve(),
    };
  }

  /**
   * A new handle writing `f`; `truncate` drops its bytes (O_TRUNC). Released with `release`; if the
   * open fails, it is released here (`closed` as for release).
   */
  async open(f: WritableFile, truncate: boolean, closed: () => void): Promise<void> {
    const fresh = f.handles === 0 && !f.stage;
    f.handles++;
    try {
      // A new file starts empty; a file already open here keeps what its other handles wrote.
      if ((fresh && f.base === undefined) || truncate) {
        await this.truncate(f, 0);
        // An empty file, new or emptied, opened by nobody else yet: stream it if it is written in order.
        if (f.handles === 1 && f.stage && f.stage.size === 0 && !f.stream) {
          f.stream = new StreamingUpload(this.store, f.key, this.conditionFor(f), f.stage, this.uploadOptions());
        }
      }
    } catch (err) {
      await this.release(f, closed);
      throw err;
    }
  }

  /** A new handle reading `f` as written so far: its staged bytes stay until this one is released too. */
  joined(f: WritableFile): void {
    f.handles++;
  }

  size(f: WritableFile): number {
    return f.stage ? f.stage.size : (f.base?.size ?? 0);
  }

  async write(f: WritableFile, data: Buffer, offset: number): Promise<void> {
    // A write that covers every old byte needs none of them.
    const stage = await this.staged(f, !(offset === 0 && data.length >= (f.base?.size ?? 0)));
    await this.resized(f, stage, Math.max(stage.size, offset + data.length), () => stage.write(data, offset));
    f.stream?.written(offset, offset + data.length);
    this.changed(f);
    this.metrics.bytesWritten.inc(data.length);
  }

  async truncate(f: WritableFile, size: number): Promise<void> {
    const stage = await this.staged(f, size > 0);
    if (size === stage.size && !(size === 0 && f.base && f.base.size > 0)) return;
    this.dropStream(f);
    await this.resized(f, stage, size, () => stage.truncate(size));
    this.changed(f);
  }

  /** Reads the file as written so far; undefined when nothing is staged (the object is the file). */
  async read(f: WritableFile, into: Buffer, offset: number, length: number): Promise<number | undefined> {
    if (!f.stage) return undefined;
    return f.stage.read(into, offset, length);
  }

  /**
   * Uploads the file if it changed; resolves once the store has it. Except a new file nothing was
   * written to yet, at a flush that is not the last: a shell's `> f` opens f, moves the descriptor
   * (a close, so a flush) and only then writes, and an empty object uploaded at that first flush
   * would be a second PUT for every redirect. Such a file is uploaded at its next flush or at release.
   */
  flush(f: WritableFile, last = false): Promise<void> {
    if (!last && f.base === undefined && !f.written) return Promise.resolve();
    return this.serially(f, () => this.upload(f));
  }

  /**
   * A handle of `f` is released. The last one uploads what is left, then forgets the file (its staged
   * bytes too, unless kept), calling `closed` first, at once: from then on no handle may join it. A
   * handle opened while that upload ran keeps the file going instead.
   */
  async release(f: WritableFile, closed: () => void): Promise<void> {
    f.handles--;
    if (f.handles > 0) return;
    try {
      if (f.dirty && !f.failed && !f.unlinked) await this.flush(f, true);
    } catch {
      // flush logged it and marked the file failed: keep its bytes below.
    }
    await f.queue;
    if (f.handles > 0) return;
    f.finished = true;
    closed();
    if (f.dirty && !f.unlinked && f.stage) {
      await f.stage.sync().catch(() => {});
      await f.stage.close();
      this.log.error(
        { key: f.key, staged: f.stage.path },
        `${f.path} was closed with changes the store does not have: its bytes are kept in ${f.stage.path}`,
      );
    } else if (f.stage) {
      await this.retire(f, f.stage);
    }
    if (f.stage) {
      this.metrics.stagedFiles.dec();
      this.account(-f.stage.size);
    }
  }

  /**
   * The staged copy of a file nobody has open any more: the file cache's copy of the version just
   * uploaded, when there is a cache (reading back what was written then costs no GET), else deleted.
   */
  private async retire(f: WritableFile, stage: StagedFile): Promise<void> {
    const uploaded = !f.dirty && !f.unlinked ? f.base : undefined;
    if (this.fileCache && uploaded && uploaded.size === stage.size) {
      await stage.close();
      if (await this.fileCache.adopt(uploaded, stage.path).catch(() => false)) return;
    }
    await stage.discard();
  }

  /** Notes that `meta` is to be deleted once the handles reading it are closed (pending-delete.ts). */
  deleteLater(meta: ObjectMeta): Promise<PendingDelete> {
    return deleteLater(this.config.stagingDir, meta);
  }

  /** Does a delete noted by `deleteLater`: whether it was done. */
  deleteNow(pending: PendingDelete): Promise<boolean> {
    return deleteNow(this.store, pending, this.log);
  }

  /** Runs `change`, which makes `stage` `size` bytes long, within the staging bound. */
  private async resized(f: WritableFile, stage: StagedFile, size: number, change: () => Promise<void>): Promise<void> {
    const growth = size - stage.size;
    if (growth > 0 && this.stagedBytes + growth > this.config.maxStagedBytes) {
      throw new PosixError(
        'ENOSPC',
        `${f.path}: staging is full (${Math.round(this.stagedBytes / 2 ** 20)} MiB of --write-staging-max-mb staged by open files)`,
      );
    }
    const before = stage.size;
    this.account(growth);
    try {
      await change();
    } finally {
      this.account(stage.size - before - growth);
    }
  }

  private account(delta: number): void {
    this.stagedBytes += delta;
    this.metrics.stagedBytes.set(this.stagedBytes);
  }

  /** The file is gone from its path (unlink, or another file renamed over it): nothing more is uploaded. */
  unlinked(f: WritableFile): void {
    f.unlinked = true;
    this.dropStream(f);
  }

  private dropStream(f: WritableFile): void {
    const stream = f.stream;
    f.stream = undefined;
    if (stream) void stream.abandon();
  }

  private conditionFor(f: WritableFile): WriteCondition {
    return f.base ? { ifMatch: versionPin(f.base) } : { ifAbsent: true };
  }

  private uploadOptions() {
    return { ...this.config.upload, buffers: this.partBuffers };
  }

  /** The file now lives at `path`/`key` as `meta` (a rename moved it there). */
  moved(f: WritableFile, path: string, key: string, meta: ObjectMeta | undefined): void {
    f.path = path;
    f.key = key;
    f.base = meta;
  }

  private changed(f: WritableFile): void {
    f.dirty = true;
    f.written = true;
    f.failed = false;
    f.mtime = new Date();
  }

  /** The staged bytes of `f`, made (and filled from the object when `needOld`) on first use. */
  private staged(f: WritableFile, needOld: boolean): Promise<StagedFile> {
    if (f.stage) return Promise.resolve(f.stage);
    return this.serially(f, async () => {
      if (f.stage) return f.stage;
      const stage = await StagedFile.create(this.config.stagingDir, f.key);
      this.metrics.stagedFiles.inc();
      try {
        if (needOld && f.base && f.base.size > 0) await this.fill(f, stage, f.base);
      } catch (err) {
        this.account(-stage.size);
        await stage.discard();
        this.metrics.stagedFiles.dec();
        throw err;
      }
      f.stage = stage;
      return stage;
    });
  }

  /** Copies the version `base` into the staged file (pinned: a newer version makes this ESTALE). */
  private async fill(f: WritableFile, stage: StagedFile, base: ObjectMeta): Promise<void> {
    const pin = versionPin(base);
    for (let start = 0; start < base.size; start += FILL_BYTES) {
      const end = Math.min(base.size, start + FILL_BYTES);
      await this.budget.reserve(end - start);
      try {
        const bytes = await this.store.read(base.key, { start, end }, pin);
        await this.resized(f, stage, end, () => stage.write(bytes, start));
      } finally {
        this.budget.release(end - start);
      }
    }
  }

  private async upload(f: WritableFile): Promise<void> {
    if (!f.dirty || f.unlinked) return;
    const stage = f.stage ?? (await StagedFile.create(this.config.stagingDir, f.key));
    if (!f.stage) {
      f.stage = stage;
      this.metrics.stagedFiles.inc();
    }
    const condition = this.conditionFor(f);
    // Writes that arrive while the upload runs mark the file changed again, for the next flush.
    f.dirty = false;
    const stream = f.stream;
    f.stream = undefined;
    try {
      const { meta, inParts } =
        (await stream?.finish(stage.size)) ??
        (await uploadStaged(this.store, f.key, stage, condition, this.uploadOptions()));
      this.metrics.uploads.inc({ outcome: 'ok' });
      f.base = meta;
      this.ns.fileWritten(f.path, inParts ? undefined : meta);
    } catch (err) {
      f.dirty = true;
      f.failed = true;
      const code = err instanceof BucketfsError ? err.code : ErrorCodes.Unknown;
      this.metrics.uploads.inc({ outcome: code });
      const why =
        code === ErrorCodes.Stale
          ? 'the object changed in the store since it was opened (another client wrote it)'
          : describe(err);
      this.log.error(
        { key: f.key, staged: stage.path, code },
        `upload of ${f.path} failed: ${why}; its bytes are kept in ${stage.path}`,
      );
      throw err;
    }
  }

  private serially<T>(f: WritableFile, task: () => Promise<T>): Promise<T> {
    const run = f.queue.then(task);
    f.queue = run.catch(() => {});
    return run;
  }
}
