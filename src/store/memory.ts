// In-memory ObjectStore for unit tests only: S3-like listing semantics (lexicographic by UTF-8
// bytes, delimiter, paging), version pinning, and fault injection. Like GCS by default (every object
// has a generation, reads pin it); `{ style: 's3' }` is like S3: no generation, reads pin the ETag,
// and a lent buffer (`ByteRange.into`) is filled, as the S3 adapter does. Nothing that claims S3 or GCS
// behaviour rests on this alone; the conformance suite runs the real adapters.
import { createHash } from 'node:crypto';
import { BucketfsError, type ErrorCode, ErrorCodes } from '../errors.js';
import type { ByteRange, ListOptions, ListPage, ObjectMeta, ObjectPin, ObjectStore, RequestKind } from './types.js';

interface Stored {
  data: Buffer;
  meta: ObjectMeta;
}

export class MemoryStore implements ObjectStore {
  readonly kind = 'memory' as const;
  readonly bucket: string;
  private readonly objects = new Map<string, Stored>();
  private generation = 1;
  /** Requests served, by kind (unit tests assert on them). */
  readonly requests: Record<RequestKind, number> = { HEAD: 0, LIST: 0, GET: 0 };
  private faults: ErrorCode[] = [];
  /** Artificial latency per request, to let concurrency show in tests. */
  delayMs = 0;

  private readonly style: 'gcs' | 's3';

  constructor(bucket = 'memory', opts: { style?: 'gcs' | 's3' } = {}) {
    this.bucket = bucket;
    this.style = opts.style ?? 'gcs';
  }

  put(key: string, body: Buffer | string, mtime = new Date()): ObjectMeta {
    const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const meta: ObjectMeta = {
      key,
      size: data.length,
      etag: `"${createHash('md5').update(data).digest('hex')}-${this.generation}"`,
      mtime,
    };
    if (this.style === 'gcs') meta.generation = String(this.generation);
    this.generation++;
    this.objects.set(key, { data, meta });
    return meta;
  }

  delete(key: string): void {
    this.objects.delete(key);
  }

  /** The next requests fail with these codes, one each, in order. */
  failNext(...codes: ErrorCode[]): void {
    this.faults.push(...codes);
  }

  private async begin(kind: RequestKind, key: string): Promise<void> {
    this.requests[kind]++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const fault = this.faults.shift();
    if (fault) throw new BucketfsError(fault, `injected ${fault}`, { key });
  }

  async head(key: string): Promise<ObjectMeta | undefined> {
    await this.begin('HEAD', key);
    const o = this.objects.get(key);
    return o ? { ...o.meta } : undefined;
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    await this.begin('LIST', prefix);
    const limit = Math.min(opts.limit ?? 1000, 1000);
    const after = opts.token ?? opts.startAfter ?? '';
    const keys = [...this.objects.keys()]
      .filter((k) => k.startsWith(prefix))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const objects: ObjectMeta[] = [];
    const prefixes: string[] = [];
    let last = '';
    for (const k of keys) {
      if (after && Buffer.compare(Buffer.from(k), Buffer.from(after)) <= 0) continue;
      if (objects.length + prefixes.length >= limit) return { objects, prefixes, next: last };
      const rest = k.slice(prefix.length);
      const cut = opts.delimiter ? rest.indexOf(opts.delimiter) : -1;
      if (cut >= 0) {
        const p = prefix + rest.slice(0, cut + 1);
        if (prefixes[prefixes.length - 1] !== p) prefixes.push(p);
        // Skip the rest of this common prefix: the token is the prefix's last possible key.
        last = `${p}\u{10ffff}`;
        continue;
      }
      objects.push({ ...(this.objects.get(k) as Stored).meta });
      last = k;
    }
    return { objects, prefixes };
  }

  async read(key: string, range: ByteRange, pin: ObjectPin = {}): Promise<Buffer> {
    await this.begin('GET', key);
    const o = this.objects.get(key);
    if (!o) throw new BucketfsError(ErrorCodes.NotFound, `no such key ${key}`, { key, status: 404 });
    if ((pin.etag && pin.etag !== o.meta.etag) || (pin.generation && pin.generation !== o.meta.generation)) {
      throw new BucketfsError(ErrorCodes.Stale, `${key} changed since it was opened`, { key, status: 412 });
    }
    const bytes = o.data.subarray(range.start, Math.min(range.end, o.data.length));
    if (this.style === 's3' && range.into?.length === bytes.length) {
      bytes.copy(range.into);
      return range.into;
    }
    return Buffer.from(bytes);
  }
}
