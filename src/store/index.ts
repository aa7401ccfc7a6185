// Builds the store stack a mount uses: adapter -> metered (counts each request) -> retrying.
import type { Config } from '../config/config.js';
import type { RetryPolicy } from '../config/retry-policy.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { MeteredStore } from './metered.js';
import { RetryingStore } from './retrying.js';
import type { ObjectStore } from './types.js';

export type StoreConfig = Pick<
  Config,
  | 'backend'
  | 'bucket'
  | 'endpoint'
  | 'region'
  | 'forcePathStyle'
  | 'profile'
  | 'anonymous'
  | 'keyFile'
  | 'projectId'
  | 'requestTimeoutMs'
>;

/** The bare adapter: one call, one request. Each SDK is loaded only when its backend is used. */
export async function createAdapter(c: StoreConfig, maxSockets: number): Promise<ObjectStore> {
  if (c.backend === 'gcs') {
    const { createGcsStore } = await import('./gcs.js');
    return createGcsStore({
      bucket: c.bucket,
      endpoint: c.endpoint,
      keyFile: c.keyFile,
      anonymous: c.anonymous,
      projectId: c.projectId,
      requestTimeoutMs: c.requestTimeoutMs,
      maxSockets,
    });
  }
  const { createS3Store } = await import('./s3.js');
  return createS3Store({
    bucket: c.bucket,
    region: c.region,
    endpoint: c.endpoint,
    forcePathStyle: c.forcePathStyle,
    profile: c.profile,
    anonymous: c.anonymous,
    requestTimeoutMs: c.requestTimeoutMs,
    maxSockets,
  });
}

export async function createStore(
  c: StoreConfig,
  retry: RetryPolicy,
  maxSockets: number,
  metrics: Metrics,
  log: Logger,
): Promise<ObjectStore> {
  return new RetryingStore(new MeteredStore(await createAdapter(c, maxSockets), metrics), retry, metrics, log);
}
