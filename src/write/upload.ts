// Uploads a staged file: one PUT when it fits in a part, else an upload in parts read from disk,
// several in flight where the store allows (S3) or one after another (GCS resumable). Each request
// is retried by the store stack on its own, so a failure costs a part, never the whole file. Part
// buffers are reserved in the mount-wide memory budget: uploads wait when it is spent.
import type { MemoryBudget } from '../memory/budget.js';
import { ReservedBuffers } from '../memory/reserved-buffers.js';
import type { ObjectMeta, ObjectStore, Upload, UploadedPart, UploadShape, WriteCondition } from '../store/types.js';
import type { StagedFile } from './staged-file.js';

export interface UploadOptions {
  /** The part size asked for (--write-part-size); grown so that any size fits in the store's part limit. */
  partBytes: number;
  /** Parts in flight at once for one file, where the store takes them in parallel. */
  concurrency: number;
  buffers: PartBuffers;
}

/** The part size for an object of `size` bytes: the asked size, grown to fit maxParts, on the store's multiple. */
export function partSizeFor(size: number, asked: number, shape: UploadShape): number {
  const least = Math.max(asked, shape.minPartBytes, Math.ceil(size / shape.maxParts));
  return Math.ceil(least / shape.partMultiple) * shape.partMultiple;
}

export interface Uploaded {
  meta: ObjectMeta;
  /** Sent in parts: some servers (rclone) answer the completion with another ETag than HEAD then gives. */
  inParts: boolean;
}

export async function uploadStaged(
  store: ObjectStore,
  key: string,
  file: StagedFile,
  condition: WriteCondition | undefined,
  opts: UploadOptions,
): Promise<Uploaded> {
  const size = file.size;
  const part = partSizeFor(size, opts.partBytes, store.uploadShape);
  if (size <= part && size <= store.uploadShape.maxPutBytes) {
    return opts.buffers.lend(size, async (buf) => {
      await file.read(buf, 0, size);
      return { meta: await store.put(key, buf, condition), inParts: false };
    });
  }
  const upload = await store.startUpload(key, condition);
  try {
    const count = Math.ceil(size / part);
    const parts: UploadedPart[] = new Array(count);
    const sendPart = (n: number): Promise<void> => {
      const offset = (n - 1) * part;
      const length = Math.min(part, size - offset);
      return opts.buffers.lend(length, async (buf) => {
        await file.read(buf, offset, length);
        parts[n - 1] = await store.uploadPart(upload, n, offset, buf);
      });
    };
    const lanes = store.uploadShape.sequentialParts ? 1 : Math.max(1, opts.concurrency);
    let next = 1;
    let failed: unknown;
    const lane = async (): Promise<void> => {
      while (next <= count && failed === undefined) {
        const n = next++;
        try {
          await sendPart(n);
        } catch (err) {
          failed ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(lanes, count) }, lane));
    if (failed !== undefined) throw failed;
    return { meta: await store.completeUpload(upload, parts), inParts: true };
  } catch (err) {
    await abortQuietly(store, upload);
    throw err;
  }
}

/** An upload that failed is dropped, so that its parts cost nothing; if that fails too, the store's lifecycle rules reap it. */
async function abortQuietly(store: ObjectStore, upload: Upload): Promise<void> {
  try {
    await store.abortUpload(upload);
  } catch {
    // The error that matters is the upload's.
  }
}

/** Free part buffers unused this long are dropped: an idle mount gives their memory back. */
const POOL_IDLE_MS = 10_000;

/**
 * The buffers parts are read into on their way to the store, reserved in the memory budget while
 * lent. Full parts (the asked part size: all but a file's last) reuse pooled buffers: a new multi-MiB
 * Buffer per part kept V8 in mark-compact collections for a fifth of the daemon's time on a
 * sequential write (docs/benchmarks.md). A buffer is lent again only once its request settled: a
 * store answers a part after it read the whole body, and a request given up on is destroyed with its
 * socket, so no byte of a reused buffer is sent for an old request that could still count.
 */
export class PartBuffers {
  private readonly budget: MemoryBudget;
  private readonly full: ReservedBuffers;

  constructor(partBytes: number, budget: MemoryBudget) {
    this.budget = budget;
    this.full = new ReservedBuffers(partBytes, budget, POOL_IDLE_MS);
  }

  /** Runs `use` with a buffer of `bytes`, reserved until it settles. */
  async lend<T>(bytes: number, use: (buf: Buffer) => Promise<T>): Promise<T> {
    if (bytes === this.full.size) {
      const buf = await this.full.take();
      try {
        return await use(buf);
      } finally {
        this.full.release(buf);
      }
    }
    await this.budget.reserve(bytes);
    try {
      return await use(Buffer.allocUnsafe(bytes));
    } finally {
      this.budget.release(bytes);
    }
  }

  /** Drops the free buffers (unmount). */
  clear(): void {
    this.full.clear();
  }
}
