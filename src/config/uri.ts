// Parses the <bucket> argument: s3://bucket[/prefix], gs://bucket[/prefix] or a bare S3 bucket name.
import { invalidArgument } from '../errors.js';

export interface BucketUri {
  backend: 's3' | 'gcs';
  bucket: string;
  /** '' or a prefix ending with '/'. */
  prefix: string;
}

// S3 and GCS rules overlap: lowercase letters, digits, dots, dashes (GCS also allows _), 3-63
// characters (GCS up to 222 with dots), starting and ending alphanumeric. We check the common
// shape and leave finer rules to the store, which answers NoSuchBucket.
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export function parseBucketUri(arg: string): BucketUri {
  const m = /^([a-z0-9]+):\/\/([^/]*)(?:\/(.*))?$/.exec(arg);
  let backend: 's3' | 'gcs' = 's3';
  let bucket = arg;
  let prefix = '';
  if (m) {
    const scheme = m[1];
    if (scheme === 's3') backend = 's3';
    else if (scheme === 'gs') backend = 'gcs';
    else throw invalidArgument('<bucket>', `unknown scheme "${scheme}://"; use s3://bucket or gs://bucket`);
    bucket = m[2] ?? '';
    prefix = (m[3] ?? '').replace(/^\/+/, '');
  } else if (arg.includes('/')) {
    throw invalidArgument('<bucket>', `"${arg}" is not a bucket; use s3://bucket/prefix/ or gs://bucket/prefix/`);
  }
  if (!BUCKET_RE.test(bucket)) {
    throw invalidArgument(
      '<bucket>',
      `"${bucket}" is not a valid bucket name (3-63 lowercase letters, digits, dots and dashes)`,
    );
  }
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  return { backend, bucket, prefix };
}
