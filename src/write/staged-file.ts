// One file's bytes on local disk while it is written: every change that is not a stream of a new
// file from offset 0 lands here, and the upload reads its parts from here. The file stays until the
// store has its bytes: a failed upload leaves it where the log says.
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { readFully } from '../disk.js';

export class StagedFile {
  readonly path: string;
  private readonly fh: FileHandle;
  /** Bytes of the file as written so far (writes past the end grow it, truncate sets it). */
  size = 0;

  private constructor(file: string, fh: FileHandle) {
    this.path = file;
    this.fh = fh;
  }

  /** A new empty staged file in `dir`, named after the key so that a person can tell what it holds. */
  static async create(dir: string, key: string): Promise<StagedFile> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const safe = key.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-120);
    const file = path.join(dir, `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${safe}`);
    return new StagedFile(file, await open(file, 'wx+', 0o600));
  }

  async write(data: Buffer, offset: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    this.size = Math.max(this.size, offset + data.length);
  }

  /** Copies up to `length` bytes at `offset` into `into`: how many (short at the end of the file). */
  async read(into: Buffer, offset: number, length: number): Promise<number> {
    const want = Math.min(length, into.length, Math.max(0, this.size - offset));
    const done = await readFully(this.fh, into, want, offset);
    // A hole (a write past the end, a truncate that grew the file) reads as zeros.
    if (done < want) into.fill(0, done, want);
    return want;
  }

  async truncate(size: number): Promise<void> {
    await this.fh.truncate(size);
    this.size = size;
  }

  /** Makes the bytes durable on local disk (fsync of a change whose upload failed keeps them). */
  async sync(): Promise<void> {
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }

  /** Closes and deletes: the store has the bytes, or they are no longer wanted. */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.path, { force: true });
  }
}
