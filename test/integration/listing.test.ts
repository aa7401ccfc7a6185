// Large directories page through LIST; a following stat of every entry costs no request.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Mounted, mountBucket } from '../helpers/mount.js';
import { runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const ENTRIES = 10_050;

for (const backend of ALL_BACKENDS) {
  describe(`directory of ${ENTRIES} entries on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let m: Mounted;

    before(async () => {
      const objects = function* (): Generator<[string, string]> {
        for (let i = 0; i < ENTRIES; i++) yield [`d/k${String(i).padStart(5, '0')}`, String(i)];
      };
      server = await startServer(backend, { bucket: 'many', objects: objects() });
      m = await mountBucket(server, 'many');
    });

    after(async () => {
      await m?.unmount();
      await server?.stop();
    });

    test('ls lists every entry, paging LIST about once per 1,000', async () => {
      const lists0 = await m.requests('LIST');
      const names = (await runOk('ls', ['-1', path.join(m.mountpoint, 'd')])).trim().split('\n');
      assert.equal(names.length, ENTRIES);
      assert.equal(names[0], 'k00000');
      assert.equal(names.at(-1), `k${ENTRIES - 1}`);
      const lists = (await m.requests('LIST')) - lists0;
      // One lookup of "d" (1 LIST) plus ceil(10,050 / 1,000) pages.
      assert.ok(lists <= Math.ceil(ENTRIES / 1000) + 2, `${lists} LISTs`);
    });

    test('ls -l afterwards issues no HEAD and no further LIST', async () => {
      const heads0 = await m.requests('HEAD');
      const lists0 = await m.requests('LIST');
      const out = (await runOk('ls', ['-l', path.join(m.mountpoint, 'd')])).trim().split('\n');
      assert.equal(out.length, ENTRIES + 1); // "total" line
      assert.equal((await m.requests('HEAD')) - heads0, 0);
      assert.equal((await m.requests('LIST')) - lists0, 0);
      assert.equal(await runOk('cat', [path.join(m.mountpoint, 'd/k01234')]), '1234');
    });
  });
}

// 100,000 objects in one directory (Mountpoint publishes 9.76 s for `ls` of 100k). On MinIO, filled
// in one request through its tar auto-extract; the listing code path is the same for every backend.
describe('directory of 100,000 entries on minio', { concurrency: false }, () => {
  const N = 100_000;
  let server: TestServer;
  let m: Mounted;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('huge');
    await server.putEmptyObjects?.(
      'huge',
      Array.from({ length: N }, (_, i) => `d/${String(i).padStart(6, '0')}`),
    );
    m = await mountBucket(server, 'huge');
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
  });

  test('ls lists all 100,000 names', async (t) => {
    const started = Date.now();
    const names = (await runOk('ls', [path.join(m.mountpoint, 'd')], { timeoutMs: 300_000 })).trim().split('\n');
    const secs = (Date.now() - started) / 1000;
    t.diagnostic(`ls of 100,000 entries: ${secs.toFixed(2)} s cold, ${await m.requests('LIST')} LISTs`);
    assert.equal(names.length, N);
    assert.equal(new Set(names).size, N);
    assert.equal(names[N - 1], String(N - 1).padStart(6, '0'));
    const again = Date.now();
    await runOk('ls', ['-l', path.join(m.mountpoint, 'd')], { timeoutMs: 300_000 });
    t.diagnostic(`ls -l of the same directory, cached: ${((Date.now() - again) / 1000).toFixed(2)} s`);
  });
});
