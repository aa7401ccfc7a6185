// The bare store adapter bucketfs builds for a test server (no retries, no metering), with the
// server's credentials passed explicitly rather than through the environment.
import { createGcsStore } from '../../src/store/gcs.js';
import { createS3Store } from '../../src/store/s3.js';
import type { ObjectStore } from '../../src/store/types.js';
import type { TestServer } from './servers.js';

export async function storeFor(
  server: TestServer,
  bucket: string,
  over: { endpoint?: string; accessKeyId?: string; requestTimeoutMs?: number } = {},
): Promise<ObjectStore> {
  const endpoint = over.endpoint ?? server.endpoint;
  const requestTimeoutMs = over.requestTimeoutMs ?? 10_000;
  if (server.kind === 'gcs')
    return createGcsStore({ bucket, endpoint, anonymous: true, requestTimeoutMs, maxSockets: 16 }, {});
  return createS3Store({
    bucket,
    endpoint,
    region: server.region || 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: over.accessKeyId ?? server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestTimeoutMs,
    maxSockets: 16,
  });
}
