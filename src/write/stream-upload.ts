// The upload of a new file while it is being written: every whole part the writer has finished
// (bytes [0, n) written, in order) is sent at once from the staged file, so that close has only the
// last part and the completion left. The object still appears only when the upload completes.
// Bytes are always staged as well: a stream that stops being sequential (a write into what was
// sent, a truncate) or whose part fails for good is abandoned, and the file is uploaded from its
// staged copy at the next flush, so nothing is lost either way.
import { rm, writeFile } from 'node:fs/promises';
import type { ObjectStore, Upload, UploadedPart, WriteCondition } from '../store/types.js';
import type { StagedFile } from './staged-file.js';
import { type Uploaded, type UploadOptions, uploadStaged } from './upload.js';

/** Part sizes double every this many parts, so that a stream of unknown length stays under the part limit. */
const PARTS_PER_SIZE = 1000;
/** Writes ahead of the contiguous end remembered before the stream gives up on order. */
const MAX_PENDING_RANGES = 64;
/** Next to a staged file: the upload in parts open for it (src/write/recovery.ts reads these). */
export const UPLOAD_JOURNAL_SUFFIX = '.upload.json';

export class StreamingUpload {
  private readonly store: ObjectStore;
  private readonly key: string;
  private readonly condition: WriteCondition | undefined;
  private readonly file: StagedFile;
  private readonly opts: UploadOptions;
  private upload: Promise<Upload> | undefined;
  private readonly parts: Promise<UploadedPart>[] = [];
  /** Bytes [0, contiguous) are written. */
  private contiguous = 0;
  /** Bytes [0, sent) belong to parts started. */
  private sent = 0;
  /** Writes past `contiguous`, by start: the kernel may hand two writes over out of order. */
  private readonly ahead = new Map<number, number>();
  private failure: unknown;
  private abandoned = false;
  /** Where the upload's id is noted while it is open, so that the next start can abort it after a crash. */
  private readonly journal: string;
  private journaled: Promise<void> | undefined;

  constructor(
    store: ObjectStore,
    key: string,
    condition: WriteCondition | undefined,
    file: StagedFile,
    opts: UploadOptions,
  ) {
    this.store = store;
    this.key = key;
    this.condition = condition;
    this.file = file;
    this.opts = opts;
    this.journal = `${file.path}${UPLOAD_JOURNAL_SUFFIX}`;
  }

  /** Still streaming: every byte written so far can go up in order. */
  get usable(): boolean {
    return !this.abandoned && this.failure === undefined;
  }

  /** Bytes [offset, end) were just written to the staged file. */
  written(offset: number, end: number): void {
    if (!this.usable) return;
    if (offset < this.sent) return void this.abandon();
    if (offset <= this.contiguous) this.contiguous = Math.max(this.contiguous, end);
    else {
      this.ahead.set(offset, Math.max(end, this.ahead.get(offset) ?? 0));
      if (this.ahead.size > MAX_PENDING_RANGES) return void this.abandon();
    }
    for (let merged = true; merged; ) {
      merged = false;
      for (const [start, stop] of this.ahead) {
        if (start <= this.contiguous) {
          this.contiguous = Math.max(this.contiguous, stop);
          this.ahead.delete(start);
          merged = true;
        }
      }
    }
    for (let size = this.nextPartSize(); this.contiguous - this.sent >= size; size = this.nextPartSize()) {
      this.startPart(this.sent, size);
      this.sent += size;
    }
  }

  /** The file stops being a stream (truncated, rewritten): what was sent is dropped. */
  async abandon(): Promise<void> {
    if (this.abandoned) return;
    this.abandoned = true;
    const upload = this.upload;
    if (!upload) return;
    await Promise.allSettled(this.parts);
    try {
      await this.store.abortUpload(await upload);
      await this.forget();
    } catch {
      // Not started, or the store is away: the journal stays for the next start to abort it.
    }
  }

  private async forget(): Promise<void> {
    await this.journaled?.catch(() => {});
    await rm(this.journal, { force: true });
  }

  /**
   * Sends what is left of the `size` bytes and completes. Undefined when the stream cannot finish
   * (abandoned, a part failed): the caller uploads the staged file instead.
   */
  async finish(size: number): Promise<Uploaded | undefined> {
    if (!this.usable || size < this.contiguous || this.ahead.size > 0) {
      await this.abandon();
      return undefined;
    }
    // Nothing sent yet: the whole file in one request or in parts, as for any staged file.
    if (!this.upload) {
      this.abandoned = true;
      return uploadStaged(this.store, this.key, this.file, this.condition, this.opts);
    }
    if (size > this.sent) this.startPart(this.sent, size - this.sent);
    this.sent = size;
    const upload = await this.upload;
    const settled = await Promise.allSettled(this.parts);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed || this.failure !== undefined) {
      await this.abandon();
      return undefined;
    }
    this.abandoned = true;
    const parts = settled.map((s) => (s as PromiseFulfilledResult<UploadedPart>).value);
    try {
      const meta = await this.store.completeUpload(upload, parts);
      await this.forget();
      return { meta, inParts: true };
    } catch (err) {
      await this.store.abortUpload(upload).then(
        () => this.forget(),
        () => {},
      );
      throw err;
    }
  }

  private nextPartSize(): number {
    const asked = Math.max(this.opts.partBytes, this.store.uploadShape.minPartBytes);
    const multiple = this.store.uploadShape.partMultiple;
    const size = asked * 2 ** Math.floor(this.parts.length / PARTS_PER_SIZE);
    return Math.ceil(size / multiple) * multiple;
  }

  private startPart(offset: number, length: number): void {
    if (!this.upload) {
      this.upload = this.store.startUpload(this.key, this.condition);
      this.journaled = this.upload.then((u) => writeFile(this.journal, JSON.stringify(u), { mode: 0o600 }));
      this.journaled.catch(() => {});
    }
    const number = this.parts.length + 1;
    const lanes = this.store.uploadShape.sequentialParts ? 1 : Math.max(1, this.opts.concurrency);
    // A part waits for the one `lanes` places before it: at most `lanes` in flight, started in order.
    const before = this.parts.length >= lanes ? this.parts[this.parts.length - lanes] : undefined;
    const upload = this.upload;
    const part = (async () => {
      await before?.catch(() => {});
      if (!this.usable) throw new Error('stream abandoned');
      const u = await upload;
      return this.opts.buffers.lend(length, async (buf) => {
        await this.file.read(buf, offset, length);
        return this.store.uploadPart(u, number, offset, buf);
      });
    })();
    part.catch((err: unknown) => {
      this.failure ??= err;
    });
    this.parts.push(part);
  }
}
