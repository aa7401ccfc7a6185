// 403 from the store becomes EACCES, and anonymous access works (--no-sign-request). MinIO only:
// it is the test server that enforces bucket policies (rclone and fake-gcs-server do not).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PutBucketPolicyCommand, S3Client } from '@aws-sdk/client-s3';
import { type Mounted, mountBucket } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

describe('access denied on minio', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('policy');
    await server.putObject('policy', 'public/open.txt', 'open');
    await server.putObject('policy', 'private/secret.txt', 'secret');
    const s3 = new S3Client({
      endpoint: server.endpoint,
      region: server.region || 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    });
    // Anonymous users may list the bucket and read public/ only.
    const policy = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::policy'] },
        {
          Effect: 'Allow',
          Principal: { AWS: ['*'] },
          Action: ['s3:GetObject'],
          Resource: ['arn:aws:s3:::policy/public/*'],
        },
      ],
    };
    await s3.send(new PutBucketPolicyCommand({ Bucket: 'policy', Policy: JSON.stringify(policy) }));
    m = await mountBucket(server, 'policy', {
      args: ['--no-sign-request'],
      env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
    });
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
  });

  test('anonymous mount lists and reads what the policy allows', async () => {
    assert.deepEqual((await runOk('ls', [m.mountpoint])).trim().split('\n'), ['private', 'public']);
    assert.equal(await runOk('cat', [path.join(m.mountpoint, 'public/open.txt')]), 'open');
  });

  test('a 403 on read is EACCES, logged once with the key', async () => {
    const r = await run('cat', [path.join(m.mountpoint, 'private/secret.txt')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Permission denied/);
  });
});
