// How the adapters classify what their SDKs throw. Shapes copied from real errors of
// @aws-sdk/client-s3 (ServiceException with $metadata) and @google-cloud/storage (ApiError, GaxiosError).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import { classifyGcsError } from '../../src/store/gcs.js';
import { classifyS3Error } from '../../src/store/s3.js';
import { type Errno, errnoName } from '../../src/vfs/errno.js';

const s3err = (name: string, status?: number) =>
  Object.assign(new Error(name), { name, $metadata: status === undefined ? {} : { httpStatusCode: status } });
const gcserr = (code: number, message = 'x') => Object.assign(new Error(message), { code });
const sockerr = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });

test('S3 errors map onto codes, and codes onto one errno each', () => {
  const cases: [unknown, string, keyof typeof Errno][] = [
    [s3err('NotFound', 404), ErrorCodes.NotFound, 'ENOENT'],
    [s3err('NoSuchKey', 404), ErrorCodes.NotFound, 'ENOENT'],
    [s3err('AccessDenied', 403), ErrorCodes.AccessDenied, 'EACCES'],
    [s3err('InvalidAccessKeyId', 403), ErrorCodes.BadCredentials, 'EACCES'],
    [s3err('SignatureDoesNotMatch', 403), ErrorCodes.BadCredentials, 'EACCES'],
    [s3err('PreconditionFailed', 412), ErrorCodes.Stale, 'ESTALE'],
    [s3err('SlowDown', 503), ErrorCodes.Throttled, 'EIO'],
    [s3err('TooManyRequests', 429), ErrorCodes.Throttled, 'EIO'],
    [s3err('InternalError', 500), ErrorCodes.ServerError, 'EIO'],
    [sockerr('ECONNRESET'), ErrorCodes.Network, 'EIO'],
    [Object.assign(new Error('aborted'), { name: 'AbortError' }), ErrorCodes.Aborted, 'EINTR'],
  ];
  for (const [err, code, errno] of cases) {
    const e = classifyS3Error(err, 'k');
    assert.equal(e.code, code, String(err));
    assert.equal(errnoName(e), errno);
  }
  assert.equal(classifyS3Error(s3err('NotFound', 404), '', true).code, ErrorCodes.NoSuchBucket);
  assert.equal(classifyS3Error(s3err('InternalError', 500)).retryable, true);
  assert.equal(classifyS3Error(s3err('AccessDenied', 403)).retryable, false);
});

test('GCS errors map onto the same codes', () => {
  const cases: [unknown, string][] = [
    [gcserr(404, 'No such object: b/k'), ErrorCodes.NotFound],
    [gcserr(404, 'The specified bucket does not exist.'), ErrorCodes.NoSuchBucket],
    [gcserr(403), ErrorCodes.AccessDenied],
    [gcserr(401), ErrorCodes.BadCredentials],
    [gcserr(412), ErrorCodes.Stale],
    [gcserr(429), ErrorCodes.Throttled],
    [gcserr(503), ErrorCodes.ServerError],
    [sockerr('ECONNREFUSED'), ErrorCodes.Network],
    [new Error('invalid_grant: Invalid JWT Signature.'), ErrorCodes.BadCredentials],
  ];
  for (const [err, code] of cases) assert.equal(classifyGcsError(err, 'k').code, code, String(err));
});
