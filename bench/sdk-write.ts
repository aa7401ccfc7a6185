// The network limit for writes: the bytes the write workloads write, uploaded straight to the
// store with the AWS SDK v3, no FUSE and no staging: S3 multipart uploads with `parallel` parts in
// flight (sequential writes), or PutObject by `groups.length` workers (small files). Every object
// is new and sent as bucketfs sends one (If-None-Match: *). The bodies are slices of one random
// buffer made before the clock starts, so nothing is read from a disk. Objects written are deleted
// after the clock stops. Mode 'delete' only deletes what is under a prefix (the driver's cleanup of
// what bucketfs wrote).
// Usage: node dist/bench/sdk-write.js SPEC.json (a WriteSpec); prints one JSON Result on stdout.
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { client } from './sdk-client.js';
import type { Result } from './sdk-read.js';

export type WriteSpec =
  /** Each key a new object of `objectBytes`, in `partBytes` parts, `parallel` parts in flight in all. */
  | {
      mode: 'multipart';
      bucket: string;
      keys: string[];
      objectBytes: number;
      partBytes: number;
      parallel: number;
      capSeconds: number;
    }
  /** One worker per group, each putting its group's keys in order, `bytes` each (small files). */
  | { mode: 'put'; bucket: string; groups: string[][]; bytes: number; capSeconds: number }
  /** Deletes every object under `prefix` (not measured). */
  | { mode: 'delete'; bucket: string; prefix: string };

/** Random bytes in every page: a zero page would cost the client nothing to send. */
function pool(bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let off = 0; off < b.length; off += 64 * 1024 * 1024)
    randomFillSync(b, off, Math.min(64 * 2 ** 20, b.length - off));
  return b;
}

interface Part {
  key: number;
  number: number;
  bytes: number;
}

async function multipart(s3: S3Client, spec: Extract<WriteSpec, { mode: 'multipart' }>): Promise<Result> {
  const body = pool(spec.partBytes);
  const partsPerKey = Math.ceil(spec.objectBytes / spec.partBytes);
  let requests = 0;
  let bytes = 0;
  const t0 = performance.now();
  const deadline = t0 + spec.capSeconds * 1000;
  if (partsPerKey <= 1) {
    // One part or less: one PUT per object, as bucketfs does.
    let i = 0;
    const loop = async () => {
      for (let k = i++; k < spec.keys.length && performance.now() < deadline; k = i++) {
        const Body = body.subarray(0, spec.objectBytes);
        await s3.send(new PutObjectCommand({ Bucket: spec.bucket, Key: spec.keys[k], Body, IfNoneMatch: '*' }));
        requests++;
        bytes += Body.length;
      }
    };
    await Promise.all(Array.from({ length: spec.parallel }, loop));
    return { bytes, requests, seconds: (performance.now() - t0) / 1000 };
  }
  const ids = await Promise.all(
    spec.keys.map(async (Key) => {
      const out = await s3.send(new CreateMultipartUploadCommand({ Bucket: spec.bucket, Key }));
      requests++;
      if (!out.UploadId) throw new Error(`no UploadId for ${Key}`);
      return out.UploadId;
    }),
  );
  // Parts of every key interleaved, so several objects progress together as parallel writers would.
  const jobs: Part[] = [];
  for (let n = 0; n < partsPerKey; n++) {
    for (let k = 0; k < spec.keys.length; k++) {
      jobs.push({ key: k, number: n + 1, bytes: Math.min(spec.partBytes, spec.objectBytes - n * spec.partBytes) });
    }
  }
  const etags: { PartNumber: number; ETag: string }[][] = spec.keys.map(() => []);
  let j = 0;
  const loop = async () => {
    // Past the cap, no new part starts; the upload is completed with the parts sent.
    for (let job = jobs[j++]; job && performance.now() < deadline; job = jobs[j++]) {
      const out = await s3.send(
        new UploadPartCommand({
          Bucket: spec.bucket,
          Key: spec.keys[job.key],
          UploadId: ids[job.key],
          PartNumber: job.number,
          Body: body.subarray(0, job.bytes),
        }),
      );
      requests++;
      bytes += job.bytes;
      if (!out.ETag) throw new Error(`no ETag for part ${job.number}`);
      etags[job.key]?.push({ PartNumber: job.number, ETag: out.ETag });
    }
  };
  await Promise.all(Array.from({ length: spec.parallel }, loop));
  await Promise.all(
    spec.keys.map(async (Key, k) => {
      const Parts = (etags[k] ?? []).sort((a, b) => a.PartNumber - b.PartNumber);
      // A part cut off by the cap leaves a gap: S3 completes only consecutive parts, so abort then.
      const whole = Parts.every((p, i) => p.PartNumber === i + 1);
      if (!Parts.length || !whole) {
        await s3.send(new AbortMultipartUploadCommand({ Bucket: spec.bucket, Key, UploadId: ids[k] }));
      } else {
        await s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: spec.bucket,
            Key,
            UploadId: ids[k],
            MultipartUpload: { Parts },
            IfNoneMatch: '*',
          }),
        );
      }
      requests++;
    }),
  );
  return { bytes, requests, seconds: (performance.now() - t0) / 1000 };
}

async function puts(s3: S3Client, spec: Extract<WriteSpec, { mode: 'put' }>): Promise<Result> {
  const body = pool(Math.max(spec.bytes, 4 * 2 ** 20));
  let requests = 0;
  let bytes = 0;
  const t0 = performance.now();
  const deadline = t0 + spec.capSeconds * 1000;
  const loop = async (keys: string[], w: number) => {
    for (let i = 0; i < keys.length && performance.now() < deadline; i++) {
      // Each file its own bytes (a different slice of the pool), as the fio writers' are.
      const off = ((w * keys.length + i) * 4096) % (body.length - spec.bytes + 1);
      const Body = body.subarray(off, off + spec.bytes);
      await s3.send(new PutObjectCommand({ Bucket: spec.bucket, Key: keys[i], Body, IfNoneMatch: '*' }));
      requests++;
      bytes += Body.length;
    }
  };
  await Promise.all(spec.groups.map(loop));
  return { bytes, requests, seconds: (performance.now() - t0) / 1000 };
}

/** Deletes every object under `prefix`, 1,000 a request. */
async function deletePrefix(s3: S3Client, bucket: string, prefix: string): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length) {
      const out = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
      const [failed] = out.Errors ?? [];
      if (failed) throw new Error(`deleting ${failed.Key}: ${failed.Code} ${failed.Message}`);
      n += keys.length;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return n;
}

async function runSpec(spec: WriteSpec): Promise<Result> {
  // The middleware stack resolved once, not per request: the most a Node client gets out of the SDK.
  const s3 = client({ cacheMiddleware: true });
  try {
    if (spec.mode === 'delete') {
      const n = await deletePrefix(s3, spec.bucket, spec.prefix);
      return { bytes: 0, requests: n, seconds: 0 };
    }
    const r = spec.mode === 'multipart' ? await multipart(s3, spec) : await puts(s3, spec);
    const keys = spec.mode === 'multipart' ? spec.keys : spec.groups.flat();
    const prefix = commonPrefix(keys);
    if (prefix) await deletePrefix(s3, spec.bucket, prefix);
    return r;
  } finally {
    s3.destroy();
  }
}

/** The keys' longest common prefix up to a '/', so that the cleanup never reaches past them. */
function commonPrefix(keys: string[]): string {
  const [first = ''] = keys;
  let p = first;
  for (const k of keys) while (!k.startsWith(p)) p = p.slice(0, -1);
  return p.slice(0, p.lastIndexOf('/') + 1);
}

runSpec(JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as WriteSpec).then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (err: Error) => {
    process.stderr.write(`sdk-write: ${err.name}: ${err.message}\n`);
    process.exit(1);
  },
);
