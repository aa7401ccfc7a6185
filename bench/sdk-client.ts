// The S3 client of the direct-SDK limits (bench/sdk-read.ts, bench/sdk-write.ts): the transport
// settings bucketfs uses (src/store/s3.ts), keep-alive and plenty of sockets, and no checksums
// the protocol does not require. Endpoint and credentials from BENCH_ENDPOINT and the AWS_* variables.
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

export function client(opts: { cacheMiddleware?: boolean } = {}): S3Client {
  const endpoint = process.env.BENCH_ENDPOINT;
  if (!endpoint) throw new Error('BENCH_ENDPOINT is not set');
  const agentOpts = { keepAlive: true, maxSockets: 64, keepAliveMsecs: 10_000 };
  return new S3Client({
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ httpAgent: agentOpts, httpsAgent: agentOpts }),
    ...(opts.cacheMiddleware ? { cacheMiddleware: true } : {}),
  });
}
