// Seeds the demo bucket with sample data: a README, a nested tree, a small dataset of shards
// and one larger file. Idempotent: objects already there are left alone.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const endpoint = process.argv[2] ?? 'http://127.0.0.1:9000';
const s3 = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
});
const Bucket = 'demo';

await s3.send(new CreateBucketCommand({ Bucket })).catch((err) => {
  if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
});
const objects = [
  ['README.txt', 'This bucket is served by a local MinIO and mounted by bucketfs.\n'],
  ['images/cat.txt', 'a picture of a cat would be here\n'],
  ['images/dog.txt', 'a picture of a dog would be here\n'],
  ['media/clip.bin', () => randomBytes(64 * 1024 * 1024)],
];
for (let i = 0; i < 16; i++) {
  objects.push([`datasets/train/shard-${String(i).padStart(4, '0')}.bin`, () => randomBytes(1024 * 1024)]);
}
for (const [Key, body] of objects) {
  const exists = await s3.send(new HeadObjectCommand({ Bucket, Key })).then(
    () => true,
    () => false,
  );
  if (!exists) await s3.send(new PutObjectCommand({ Bucket, Key, Body: typeof body === 'function' ? body() : body }));
}
console.log(`demo: bucket s3://${Bucket} at ${endpoint} has ${objects.length} sample objects`);
