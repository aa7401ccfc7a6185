// In-memory ObjectStore for unit tests only: S3-like listing semantics (lexicographic by UTF-8
// bytes, delimiter, paging), version pinning, and fault injection. Like GCS by default (every object
// has a generation, reads pin it); `{ style: 's3' }` is like S3: no generation, reads pin the ETag,
// and a lent buffer (`ByteRange.into`) is filled, as the S3 adapter does. Nothing that claims S3 or GCS
// behaviour rests on this alone; the conformance suite runs the real adapters.
import { createHash } from 'node:crypto';
import { BucketfsError, type ErrorCode, ErrorCodes } from '../errors.js';
import type {
  ByteRange,
  ListOptions,
  ListPage,
  ObjectMeta,
  ObjectPin,
  ObjectStore,
  RequestKind,
  Upload,
  UploadedPart,
  UploadShape,
  WriteCondition,
} from './types.js';

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
  readonly requests: Record<RequestKind, number> = {
    HEAD: 0,
    LIST: 0,
    GET: 0,
    PUT: 0,
    DELETE: 0,
    COPY: 0,
    UPLOAD_START: 0,
    UPLOAD_PART: 0,
    UPLOAD_COMPLETE: 0,
    UPLOAD_ABORT: 0,
  };
  /** Small limits, so that unit tests exercise parts without megabytes of data. */
  readonly uploadShape: UploadShape;
  private readonly uploads = new Map<string, { key: string; parts: Map<number, Buffer> }>();
  private nextUpload = 1;
  private faults: ErrorCode[] = [];
  /** Artificial latency per request, to let concurrency show in tests. */
  delayMs = 0;

  private readonly style: 'gcs' | 's3';

  constructor(bucket = 'memory', opts: { style?: 'gcs' | 's3'; uploadShape?: Partial<UploadShape> } = {}) {
    this.bucket = bucket;
    this.style = opts.style ?? 'gcs';
    this.uploadShape = {
      minPartBytes: 1024,
      maxParts: 10_000,
      partMultiple: 1,
      sequentialParts: this.style === 'gcs',
      maxPutBytes: 64 * 1024,
      ...opts.uploadShape,
    };
  }

  /** Stores an object at once, as another client would: no request counted, no fault. */
  seed(key: string, body: Buffer | string, mtime = new Date()): ObjectMeta {
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

  /** Removes an object at once, as another client would. */
  remove(key: string): void {
    this.objects.delete(key);
  }

  /** The bytes stored under a key (tests compare them). */
  bytes(key: string): Buffer | undefined {
    return this.objects.get(key)?.data;
  }

  /** Uploads started and neither completed nor aborted. */
  get openUploads(): number {
    return this.uploads.size;
  }

  /** The next requests fail with these codes, one each, in order. */
  failNext(...codes: ErrorCode[]): void {
    this.faults.push(...codes);
  }

  /** The next request of this kind fails with `code`. */
  failNextOf(kind: RequestKind, code: ErrorCode): void {
    this.faultsOf.set(kind, code);
  }
  private readonly faultsOf = new Map<RequestKind, ErrorCode>();

  private async begin(kind: RequestKind, key: string): Promise<void> {
    this.requests[kind]++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const fault = this.faults.shift() ?? this.faultsOf.get(kind);
    this.faultsOf.delete(kind);
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

  async put(key: string, body: Buffer, condition?: WriteCondition): Promise<ObjectMeta> {
    await this.begin('PUT', key);
    this.check(key, condition);
    return { ...this.seed(key, Buffer.from(body)) };
  }

  async delete(key: string): Promise<void> {
    await this.begin('DELETE', key);
    this.objects.delete(key);
  }

  async copy(source: ObjectMeta, to: string): Promise<ObjectMeta> {
    await this.begin('COPY', to);
    const o = this.objects.get(source.key);
    if (!o || (source.generation ? o.meta.generation !== source.generation : o.meta.etag !== source.etag)) {
      throw new BucketfsError(ErrorCodes.Stale, `${source.key} changed since it was read`, { key: source.key });
    }
    return { ...this.seed(to, o.data) };
  }

  async startUpload(key: string, condition?: WriteCondition): Promise<Upload> {
    await this.begin('UPLOAD_START', key);
    const id = `u${this.nextUpload++}`;
    this.uploads.set(id, { key, parts: new Map() });
    return condition ? { key, id, condition } : { key, id };
  }

  async uploadPart(upload: Upload, number: number, _offset: number, body: Buffer): Promise<UploadedPart> {
    await this.begin('UPLOAD_PART', upload.key);
    const u = this.uploads.get(upload.id);
    if (!u) throw new BucketfsError(ErrorCodes.NotFound, `no upload ${upload.id}`, { key: upload.key, status: 404 });
    u.parts.set(number, Buffer.from(body));
    return { number, etag: `"p${number}-${body.length}"`, size: body.length };
  }

  async completeUpload(upload: Upload, parts: UploadedPart[]): Promise<ObjectMeta> {
    await this.begin('UPLOAD_COMPLETE', upload.key);
    const u = this.uploads.get(upload.id);
    if (!u) throw new BucketfsError(ErrorCodes.NotFound, `no upload ${upload.id}`, { key: upload.key, status: 404 });
    const bodies = parts.map((p) => u.parts.get(p.number));
    if (bodies.some((b, i) => b?.length !== parts[i]?.size)) {
      throw new BucketfsError(ErrorCodes.BadResponse, `upload ${upload.id}: a part is missing`, { key: upload.key });
    }
    this.check(upload.key, upload.condition);
    this.uploads.delete(upload.id);
    return { ...this.seed(upload.key, Buffer.concat(bodies as Buffer[])) };
  }

  async abortUpload(upload: Upload): Promise<void> {
    await this.begin('UPLOAD_ABORT', upload.key);
    this.uploads.delete(upload.id);
  }

  private check(key: string, condition: WriteCondition | undefined): void {
    if (!condition) return;
    const o = this.objects.get(key);
    const holds =
      'ifAbsent' in condition
        ? !o
        : !!o &&
          (condition.ifMatch.generation
            ? o.meta.generation === condition.ifMatch.generation
            : o.meta.etag === condition.ifMatch.etag);
    if (!holds)
      throw new BucketfsError(ErrorCodes.Stale, `${key}: the write's precondition failed`, { key, status: 412 });
  }
}
