// Reads a ranged GET's body (raw-http.ts) into a part buffer: the adapters' shared last step.
import { BucketfsError, ErrorCodes } from '../errors.js';
import type { RawBody } from './raw-http.js';
import type { ByteRange } from './types.js';

/**
 * The body of a GET of `range`, read straight into `into` when the caller lends a buffer of the
 * range's size (the prefetcher's recycled parts, src/memory/part-pool.ts), else into a new one.
 * A body longer or shorter than the range fails with BFS_BAD_RESPONSE (retried).
 */
export async function readBodyInto(body: RawBody, key: string, range: ByteRange): Promise<Buffer> {
  const want = range.end - range.start;
  if (body.expected !== undefined && body.expected > want) {
    body.destroy();
    throw new BucketfsError(ErrorCodes.BadResponse, `long read of ${key}: ${body.expected} bytes, asked ${want}`, {
      key,
    });
  }
  const out = range.into?.length === want ? range.into : Buffer.allocUnsafe(want);
  const n = await body.fillInto(out);
  if (n !== want) {
    throw new BucketfsError(
      ErrorCodes.BadResponse,
      `short read of ${key}: asked ${want} bytes at ${range.start}, got ${n}`,
      { key },
    );
  }
  return out;
}
