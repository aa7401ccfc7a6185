// libfuse's worker threads on a real mount: libfuse 2 ends a worker whenever more than ten are idle
// and starts one whenever none is, so bursts of readers start threads all the time. bucketfs's
// build of fuse-native (scripts/build-fuse-native.sh) hands each ended thread's slot (a libuv handle
// the main thread scans on every wakeup) to the next thread: the slots stay at the most threads
// busy at once instead of growing with every thread ever started (src/fuse/native.ts).
// Kernel- and FUSE-facing, the same on every backend: tested on MinIO only.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { putMany } from '../helpers/data.js';
import { type Mounted, mountBucket, sleep, sumMetric } from '../helpers/mount.js';
import { runOk } from '../helpers/proc.js';
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
      for (let b = 0; b < BURSTS; b++) for (let i = 0; i < READERS; i++) yield [`b${b}/r${i}/f`, `file ${b}.${i}\n`];
    };
    await putMany(server, 'threads', files());
    m = await mountBucket(server, 'threads');
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
  });

  test('threads started in bursts take over the slots of ended ones instead of adding new ones', async () => {
    // The overlap of each burst must not depend on how the machine schedules the readers: each
    // burst's readers look up names nobody has looked up yet, while the server is paused, so every
    // one of them holds a libfuse worker until the server answers. Each name is in a directory of
    // its own (the kernel sends one lookup at a time per directory: libfuse 2 does not ask for
    // parallel directory operations), and those directories are listed first, so that only the
    // last lookup of each path waits. Once resumed, all but ten of those threads end; the next
    // burst needs as many again.
    const threads = async () => {
      const text = await m.metricsText();
      return {
        text,
        started: sumMetric(text, 'bucketfs_fuse_threads_started_total'),
        slots: sumMetric(text, 'bucketfs_fuse_thread_slots'),
      };
    };
    const burst = async (b: number): Promise<void> => {
      const names = Array.from({ length: READERS }, (_, i) => `b${b}/r${i}/f`);
      await runOk('ls', [path.join(m.mountpoint, `b${b}`)]);
      const before = await threads();
      await server.pause();
      let reading: Promise<string[]>;
      try {
        reading = Promise.all(names.map((n) => runOk('cat', [path.join(m.mountpoint, n)])));
        reading.catch(() => {});
        // Every reader waits in a worker of its own: the burst has as many threads busy as readers
        // (started counts them; the first burst adds slots, later ones take over ended threads').
        for (let tries = 0; tries < 600; tries++) {
          const t = await threads();
          if (t.started - before.started >= READERS - 10 && t.slots >= READERS) break;
          await sleep(50);
        }
      } finally {
        server.resume();
      }
      assert.deepEqual(
        await reading,
        names.map((_, i) => `file ${b}.${i}\n`),
      );
    };
    // /metrics is scraped during the bursts, on the main thread, while FUSE threads start and end.
    await runOk('ls', [m.mountpoint]);
    for (let b = 0; b < BURSTS; b++) await burst(b);
    const { text, started, slots } = await threads();
    assert.ok(slots >= READERS, `no FUSE thread slots reported (stock fuse-native build?)\n${text}`);
    // Without the patch no thread ever takes over a slot: started === slots.
    assert.ok(started > slots, `${started} threads started on ${slots} slots after ${BURSTS} bursts`);
    assert.ok(slots <= READERS * 2, `${slots} slots for at most ${READERS} readers at once`);
  });
});
