// Metadata caches on a real mount, judged by the store requests the daemon counts.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Mounted, mountBucket, type RequestCounts, requestCounts, sleep, sumMetric } from '../helpers/mount.js';
import { run, runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const DIRS = 20;
const PER_DIR = 1000;

function diff(a: RequestCounts, b: RequestCounts) {
  return { HEAD: b.HEAD - a.HEAD, LIST: b.LIST - a.LIST, GET: b.GET - a.GET };
}

async function lsR(dir: string): Promise<number> {
  const out = await runOk('ls', ['-lR', dir], { timeoutMs: 300_000 });
  return out.split('\n').filter((l) => l.startsWith('-')).length;
}

for (const backend of ALL_BACKENDS) {
  describe(`metadata caches on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    const mounts: Mounted[] = [];
    const mount = async (args: string[]): Promise<Mounted> => {
      const m = await mountBucket(server, 'meta', { args });
      mounts.push(m);
      return m;
    };

    before(async () => {
      const objects = function* (): Generator<[string, string]> {
        for (let d = 0; d < DIRS; d++) {
          for (let i = 0; i < PER_DIR; i++)
            yield [`tree/d${String(d).padStart(2, '0')}/f${String(i).padStart(4, '0')}`, 'x'];
        }
        yield ['small/a.txt', 'a'];
        yield ['small/sub/b.txt', 'b'];
        yield ['changing.txt', 'v1'];
      };
      server = await startServer(backend, { bucket: 'meta', objects: objects() });
    });

    after(async () => {
      for (const m of mounts) await m.unmount();
      await server?.stop();
    });

    test('cold ls -lR of 20,000 objects issues LISTs only; a second one within the TTL issues none', async () => {
      const m = await mount([]);
      const c0 = await requestCounts(m);
      assert.equal(await lsR(m.mountpoint), DIRS * PER_DIR + 3);
      const cold = diff(c0, await requestCounts(m));
      assert.equal(cold.HEAD, 0, `HEADs: ${JSON.stringify(cold)}`);
      // One listing page per directory (a second when a server reports a full page of exactly
      // 1,000 as truncated): root, tree, 20 leaves, small, small/sub.
      assert.ok(cold.LIST >= DIRS + 4 && cold.LIST <= 2 * DIRS + 4, `LISTs: ${JSON.stringify(cold)}`);
      const c1 = await requestCounts(m);
      assert.equal(await lsR(m.mountpoint), DIRS * PER_DIR + 3);
      assert.deepEqual(diff(c1, await requestCounts(m)), { HEAD: 0, LIST: 0, GET: 0 });
    });

    test('the stat cache stays within its byte bound and evicts', async () => {
      const m = await mount(['--stat-cache-max-size-mb', '1']);
      await lsR(path.join(m.mountpoint, 'tree'));
      const text = await m.metricsText();
      const bytes = sumMetric(text, 'bucketfs_cache_bytes', { cache: 'stat' });
      assert.ok(bytes > 0 && bytes <= 1024 * 1024, `stat cache holds ${bytes} bytes`);
      assert.ok(sumMetric(text, 'bucketfs_cache_events_total', { cache: 'stat', event: 'evict' }) > 0);
    });

    test('ttl 0 revalidates every time', async () => {
      const m = await mount(['--metadata-ttl', 'minimal']);
      const dir = path.join(m.mountpoint, 'small');
      await lsR(dir);
      const c0 = await requestCounts(m);
      await lsR(dir);
      const again = diff(c0, await requestCounts(m));
      assert.ok(again.LIST >= 2, `ttl 0 must list again: ${JSON.stringify(again)}`);
    });

    test('ttl -1 never revalidates', async () => {
      const m = await mount(['--metadata-ttl', 'indefinite']);
      const dir = path.join(m.mountpoint, 'small');
      await lsR(dir);
      await sleep(2500);
      const c0 = await requestCounts(m);
      await lsR(dir);
      await stat(path.join(dir, 'a.txt'));
      assert.deepEqual(diff(c0, await requestCounts(m)), { HEAD: 0, LIST: 0, GET: 0 });
    });

    test('a changed object is seen after the TTL and not before; listings refresh too', async () => {
      const ttlMs = 3000;
      const m = await mount(['--stat-cache-ttl', String(ttlMs / 1000), '--list-cache-ttl', String(ttlMs / 1000)]);
      const file = path.join(m.mountpoint, 'changing.txt');
      const readStart = Date.now();
      assert.equal(await readFile(file, 'utf8'), 'v1');
      const readEnd = Date.now();
      await server.putObject('meta', 'changing.txt', 'version 2');
      const size = (await stat(file)).size;
      // Only if the stat surely came inside the TTL of what the read cached (a loaded machine can
      // take longer than the TTL to get here): otherwise either size is right.
      if (Date.now() - readStart < ttlMs) assert.equal(size, 2, 'old size inside the TTL');
      await sleep(readEnd + ttlMs + 500 - Date.now());
      assert.equal((await stat(file)).size, 9, 'new size after the TTL');
      assert.equal(await readFile(file, 'utf8'), 'version 2');
      await server.putObject('meta', 'changing.txt', 'v1');
      const c0 = await requestCounts(m);
      await lsR(path.join(m.mountpoint, 'small'));
      assert.ok(diff(c0, await requestCounts(m)).LIST >= 1, 'an expired listing is fetched again');
    });

    test('a missing name stat-ed twice costs one lookup within the negative TTL', async () => {
      const m = await mount(['--negative-ttl', '30']);
      const c0 = await requestCounts(m);
      for (let i = 0; i < 2; i++) {
        const r = await run('stat', [path.join(m.mountpoint, 'small/nope.txt')]);
        assert.notEqual(r.code, 0);
      }
      const d = diff(c0, await requestCounts(m));
      // A miss is a HEAD and a LIST, then the HEAD of a link object (nope.txt.rclonelink); the lookup
      // of "small" itself may cost a HEAD and a LIST too.
      assert.ok(d.HEAD <= 3 && d.LIST <= 2, JSON.stringify(d));
      const c1 = await requestCounts(m);
      await run('stat', [path.join(m.mountpoint, 'small/nope.txt')]);
      assert.deepEqual(diff(c1, await requestCounts(m)), { HEAD: 0, LIST: 0, GET: 0 });
    });

    test('--warm-metadata fills the caches with flat listings; ls -lR afterwards costs nothing', async () => {
      const m = await mount(['--warm-metadata']);
      let log = '';
      for (let i = 0; i < 300 && !log.includes('metadata warm-up finished'); i++) {
        await sleep(100);
        log = await readFile(m.logFile, 'utf8');
      }
      assert.match(log, /metadata warm-up finished/);
      const warm = await requestCounts(m);
      const keys = DIRS * PER_DIR + 3;
      assert.ok(warm.LIST <= Math.ceil(keys / 1000) + 3, `warm-up LISTs: ${warm.LIST}`);
      assert.equal(await lsR(m.mountpoint), keys);
      assert.deepEqual(diff(warm, await requestCounts(m)), { HEAD: 0, LIST: 0, GET: 0 });
    });
  });
}
