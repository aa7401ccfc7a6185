// The one interface every object store adapter implements (S3, GCS, in-memory).
// Adapters translate their SDK's errors into BucketfsError codes (src/errors.ts) and make
// exactly one request per call, so the metering decorator can count requests honestly.
// Retries, timeouts and metrics are decorators (retrying.ts, metered.ts), not adapter code.

export interface ObjectMeta {
  /** Full key in the bucket (not relative to the mount prefix). */
  key: string;
  size: number;
  /** S3 ETag (quoted, as the store returns it) or GCS md5/etag. */
  etag: string;
  mtime: Date;
  /** GCS object generation; undefined on S3. */
  generation?: string;
  /** CRC32C of the whole object where the store's metadata gives one (GCS, in HEAD and LIST alike). */
  crc32c?: number;
}

type VersionFields = Pick<ObjectMeta, 'etag' | 'generation' | 'size'>;

/**
 * One rule for "the same object version", used by the file cache and the page cache: the
 * generation where the store has one (GCS), else ETag and size.
 */
export function sameVersion(a: VersionFields, b: VersionFields): boolean {
  if (a.generation !== undefined && b.generation !== undefined) return a.generation === b.generation;
  return a.etag === b.etag && a.size === b.size;
}

/** The same rule as a string, for maps: equal keys for metas of one store mean sameVersion. */
export function versionKey(meta: VersionFields): string {
  return meta.generation !== undefined ? `g:${meta.generation}` : `e:${meta.etag}:${meta.size}`;
}

/** The pin that holds a read to this version: the generation where the store has one, else the ETag. */
export function versionPin(meta: Pick<ObjectMeta, 'etag' | 'generation'>): ObjectPin {
  return meta.generation !== undefined ? { generation: meta.generation } : { etag: meta.etag };
}

export interface ListPage {
  objects: ObjectMeta[];
  /** Common prefixes (each ends with the delimiter), only when a delimiter was given. */
  prefixes: string[];
  /** Continuation token; undefined on the last page. */
  next?: string;
}

export interface ListOptions {
  delimiter?: string;
  token?: string;
  /** Maximum keys + prefixes in the page (stores cap this at 1,000). */
  limit?: number;
  /** List keys after this one (S3 StartAfter / GCS startOffset-ish). */
  startAfter?: string;
}

/** The object version a read is pinned to; a mismatch raises BFS_STALE_OBJECT. */
export interface ObjectPin {
  etag?: string;
  generation?: string;
}

/** Byte range [start, end): end is exclusive. */
export interface ByteRange {
  start: number;
  end: number;
  /**
   * A buffer of exactly end - start bytes the caller lends for the bytes (recycled part buffers,
   * see src/memory/part-pool.ts): an adapter that can fills it and returns it. Optional for adapters.
   */
  into?: Buffer;
}

export type StoreKind = 's3' | 'gcs' | 'memory';

/** Request kinds as counted in metrics. One call to an adapter method is one request. */
export type RequestKind =
  | 'HEAD'
  | 'LIST'
  | 'GET'
  | 'PUT'
  | 'DELETE'
  | 'COPY'
  | 'UPLOAD_START'
  | 'UPLOAD_PART'
  | 'UPLOAD_COMPLETE'
  | 'UPLOAD_ABORT';

/**
 * What must hold for a write to happen: the key is absent (S3 `If-None-Match: *`, GCS
 * `ifGenerationMatch=0`), or it holds the version we read (S3 `If-Match`, GCS `ifGenerationMatch`).
 * A write whose condition fails is BFS_STALE_OBJECT and changes nothing.
 */
export type WriteCondition = { ifAbsent: true } | { ifMatch: ObjectPin };

/** An upload in parts under way: the store's handle for it (S3 UploadId, GCS resumable session URI). */
export interface Upload {
  key: string;
  id: string;
  condition?: WriteCondition;
}

/** One uploaded part, as completeUpload wants it back. */
export interface UploadedPart {
  /** 1-based, in order of the bytes. */
  number: number;
  /** S3's ETag of the part; GCS has none (its session keeps the bytes). */
  etag?: string;
  size: number;
  /** The part's CRC32C (base64) where the store verifies one (S3). */
  checksum?: string;
}

/**
 * How a store takes an object in parts. S3: parts of 5 MiB to 5 GiB (the last may be smaller), up
 * to 10,000, sent in any order and in parallel. GCS resumable uploads: parts sent in order, one at a
 * time, each a multiple of 256 KiB but the last.
 */
export interface UploadShape {
  minPartBytes: number;
  maxParts: number;
  /** Parts must be multiples of this (but the last). */
  partMultiple: number;
  /** Parts must be sent one after another, in order. */
  sequentialParts: boolean;
  /** Largest object a single PUT takes. */
  maxPutBytes: number;
}

export interface ObjectStore {
  readonly kind: StoreKind;
  readonly bucket: string;
  /** Metadata of one object; undefined when there is no object with exactly this key. */
  head(key: string, signal?: AbortSignal): Promise<ObjectMeta | undefined>;
  list(prefix: string, opts?: ListOptions, signal?: AbortSignal): Promise<ListPage>;
  /**
   * Bytes [start, end) of an object, pinned to a version when `pin` says so. The whole range
   * is returned; a range past the end of the object is clamped by the store (the caller
   * never asks for one).
   */
  read(key: string, range: ByteRange, pin?: ObjectPin, signal?: AbortSignal): Promise<Buffer>;

  readonly uploadShape: UploadShape;
  /** Writes a whole object in one request; its metadata as stored. */
  put(key: string, body: Buffer, condition?: WriteCondition, signal?: AbortSignal): Promise<ObjectMeta>;
  /** Deletes an object; a key that is already gone is no error (deletes are retried). */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /**
   * Server-side copy of the version `source` describes to `to` (the bytes never come to us); the new
   * metadata. BFS_STALE_OBJECT when the source is no longer that version. Up to maxPutBytes on S3.
   */
  copy(source: ObjectMeta, to: string, signal?: AbortSignal): Promise<ObjectMeta>;
  /** Starts an upload in parts; the object appears only when it completes. */
  startUpload(key: string, condition?: WriteCondition, signal?: AbortSignal): Promise<Upload>;
  /**
   * Sends part `number`, which starts at byte `offset` of the object. A part sent again (a retry)
   * replaces the one before.
   */
  uploadPart(upload: Upload, number: number, offset: number, body: Buffer, signal?: AbortSignal): Promise<UploadedPart>;
  /** Makes the object from its parts, all of them, in order; its metadata as stored. */
  completeUpload(upload: Upload, parts: UploadedPart[], signal?: AbortSignal): Promise<ObjectMeta>;
  /** Drops an upload and its parts; one that is already gone is no error. */
  abortUpload(upload: Upload, signal?: AbortSignal): Promise<void>;
}
