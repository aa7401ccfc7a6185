// Faults on a real server: a stalled server is retried through (request timeout, backoff) and the
// read succeeds; a dead server surfaces EIO once retries are exhausted, and the mount recovers
// when the server is back. MinIO only: the behaviour is in bucketfs's store stack, not the server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../helpers/data.js';
import { type Mounted, mountBucket, sleep, sumMetric } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

describe('faults on minio', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;
  const files = Array.from({ length: 3 }, () => randomBytes(3 * 1024 * 1024));

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('faults');
    for (const [i, f] of files.entries()) await server.putObject('faults', `f${i}.bin`, f);
    m = await mountBucket(server, 'faults', {
      args: ['--request-timeout', '1', '--max-attempts', '4', '--metadata-ttl', 'indefinite'],
    });
    await runOk('ls', ['-l', m.mountpoint]); // metadata cached: the faults below hit reads only
  });

  after(async () => {
    server?.resume();
    await m?.unmount();
    await server?.stop();
  });

  test('a server stalled for 1.5 s is retried through: the read returns the right bytes', async () => {
    const retries0 = sumMetric(await m.metricsText(), 'bucketfs_store_retries_total');
    await server.pause();
    const reading = runOk('sha256sum', [path.join(m.mountpoint, 'f0.bin')]);
    await sleep(1500);
    server.resume();
    assert.equal((await reading).split(' ')[0], sha256(files[0] as Buffer));
    const retries = sumMetric(await m.metricsText(), 'bucketfs_store_retries_total') - retries0;
    assert.ok(retries >= 1, `expected retries after a timeout, saw ${retries}`);
  });

  test('a server that stays away gives EIO once retries are exhausted, and the mount recovers', async () => {
    const timeouts = async () =>
      sumMetric(await m.metricsText(), 'bucketfs_store_requests_total', { kind: 'GET', outcome: 'BFS_TIMEOUT' });
    const timeouts0 = await timeouts();
    await server.pause();
    try {
      const r = await run('cat', [path.join(m.mountpoint, 'f1.bin')], { timeoutMs: 60_000 });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
    } finally {
      server.resume();
    }
    // Each request in flight (the part the read needs and any read-ahead) used all 4 attempts.
    const timedOut = (await timeouts()) - timeouts0;
    assert.ok(timedOut >= 4 && timedOut % 4 === 0, `${timedOut} timed-out attempts`);
    assert.equal(
      (await runOk('sha256sum', [path.join(m.mountpoint, 'f1.bin')])).split(' ')[0],
      sha256(files[1] as Buffer),
    );
  });
});
