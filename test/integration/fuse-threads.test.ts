// libfuse's worker threads on a real mount: libfuse 2 ends a worker whenever more than ten are idle
// and starts one whenever none is, so bursts of readers start threads all the time. bucketfs's
// build of fuse-native (scripts/build-fuse-native.sh) hands each ended thread's slot (a libuv handle
// the main thread scans on every wakeup) to the next thread: the slots stay at the most threads
// busy at once instead of growing with every thread ever started (src/fuse/native.ts).
// Kernel- and FUSE-facing, the same on every backend: tested on MinIO only.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { putMany } from '../helpers/data.js';
import { type Mounted, mountBucket, sleep, sumMetric } from '../helpers/mount.js';
import { startServer, type TestServer } from '../helpers/servers.js';

const BURSTS = 8;
const READERS = 32;

describe('FUSE worker threads', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('threads');
    const files = function* (): Generator<[string, string]> {
      for (let i = 0; i < BURSTS * READERS; i++) yield [`f${i}`, `file ${i}\n`];
    };
    await putMany(server, 'threads', files());
    m = await mountBucket(server, 'threads');
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
  });

  test('threads started in bursts take over the slots of ended ones instead of adding new ones', async () => {
    // /metrics is scraped all along: the counts are read on the main thread while new FUSE threads
    // wait for it to set them up, which must not block either side.
    let scraping = true;
    const scrapes = (async () => {
      let n = 0;
      for (; scraping; n++) await m.metricsText();
      return n;
    })();
    const burst = async (b: number): Promise<void> => {
      const names = Array.from({ length: READERS }, (_, i) => `f${(b % BURSTS) * READERS + i}`);
      const texts = await Promise.all(names.map((n) => readFile(path.join(m.mountpoint, n), 'utf8')));
      assert.deepEqual(
        texts,
        names.map((n) => `file ${n.slice(1)}\n`),
      );
      await sleep(50); // the burst drains: all but ten of its threads end
    };
    const threads = async () => {
      const text = await m.metricsText();
      return {
        text,
        started: sumMetric(text, 'bucketfs_fuse_threads_started_total'),
        slots: sumMetric(text, 'bucketfs_fuse_thread_slots'),
      };
    };
    let b = 0;
    for (; b < BURSTS; b++) await burst(b);
    // How many threads libfuse ends and starts depends on how the readers are scheduled: on a
    // loaded machine they overlap less. So bursts go on (bounded) until some thread has started
    // after another ended; without the patch none ever reuses a slot (started === slots).
    let t = await threads();
    for (; t.started <= t.slots && b < BURSTS * 6; b++) {
      await burst(b);
      t = await threads();
    }
    scraping = false;
    assert.ok((await scrapes) > BURSTS, 'metrics were scraped during the bursts');
    const { text, started, slots } = t;
    assert.ok(slots > 0, `no FUSE thread slots reported (stock fuse-native build?)\n${text}`);
    assert.ok(started > slots, `${started} threads started on ${slots} slots after ${b} bursts`);
    assert.ok(slots <= READERS * 2, `${slots} slots for at most ${READERS} readers at once`);
  });
});
