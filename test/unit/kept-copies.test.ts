// KeptCopies: a copy's backing id stays registered after its last handle closes and is taken back
// by the next open; a change to its data file on disk (seen through inotify, on a real directory
// here), its removal (a drop from the cache) or the limit closes it instead. The kernel's side is
// faked: the real thing is in test/integration/passthrough.test.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { BackingFiles } from '../../src/backing/files.js';
import { CacheEntry } from '../../src/cache/file/entry.js';
import { KeptCopies } from '../../src/cache/file/kept-copies.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-kept-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let seq = 0;
async function entry(): Promise<CacheEntry> {
  const id = `e${seq++}`;
  const base = path.join(dir, id);
  const paths = { data: `${base}.data`, meta: `${base}.meta`, partial: `${base}.partial`, metaTmp: `${base}.tmp` };
  await writeFile(paths.data, 'copy');
  const e = new CacheEntry(id, { key: id, size: 4, mtime: new Date(0), etag: '1' }, paths, new Uint32Array(1));
  e.verifiedAs = 'identity';
  return e;
}

function setup(max = 4) {
  const closed: number[] = [];
  const backing: BackingFiles = {
    open: () => assert.fail('not registered here'),
    openPath: () => assert.fail('not registered here'),
    close: (id) => closed.push(id),
  };
  const metrics = new Metrics();
  const kept = new KeptCopies(dir, max, () => backing, metrics, silentLogger());
  const gauge = async () => (await metrics.fileCachePassthroughKept.get()).values[0]?.value;
  return { kept, closed, gauge };
}

/** Lets the watch deliver what is already queued. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 20));

test('a released id is kept, and taken back by the next open of the same entry', async () => {
  const { kept, closed, gauge } = setup();
  const e = await entry();
  kept.handedOut(e, 5);
  assert.ok(kept.registered(e));
  kept.release(5);
  assert.deepEqual(closed, []);
  assert.equal(await gauge(), 1);
  assert.ok(kept.registered(e), 'nothing to read ahead for it');
  assert.equal(await kept.take(e), 5);
  assert.equal(await kept.take(e), undefined, 'taken once');
  assert.equal(await gauge(), 0);
  kept.release(5);
  assert.equal(await kept.take(e), 5, 'kept again after the next close');
  kept.stop();
});

test('a write to a kept copy on disk closes its id and forgets its verified identity', async () => {
  const { kept, closed } = setup();
  const e = await entry();
  kept.handedOut(e, 6);
  kept.release(6);
  // As for an open: the write is done, its event queued but not yet read, when take is called (from
  // the check phase, so no poll of the watch's descriptor comes between unless take makes one).
  const taken = await new Promise<number | undefined>((resolve) =>
    setImmediate(() => {
      writeFileSync(e.paths.data, 'cOpy');
      resolve(kept.take(e));
    }),
  );
  assert.equal(taken, undefined);
  assert.deepEqual(closed, [6]);
  assert.equal(e.verifiedAs, undefined, 'verified whole at its next open');
  assert.ok(!kept.registered(e));
  kept.stop();
});

test('a copy changed while open is closed at release, never kept', async () => {
  const { kept, closed } = setup();
  const e = await entry();
  kept.handedOut(e, 7);
  await truncate(e.paths.data, 1);
  await turn();
  assert.deepEqual(closed, [], 'open handles keep reading');
  kept.release(7);
  assert.deepEqual(closed, [7]);
  assert.equal(await kept.take(e), undefined);
  kept.stop();
});

test('a kept copy whose file is removed (the cache dropped it) is closed; the limit closes the least recently released', async () => {
  const { kept, closed } = setup(2);
  const [a, b, c] = [await entry(), await entry(), await entry()];
  kept.handedOut(a, 1);
  kept.handedOut(b, 2);
  kept.handedOut(c, 3);
  kept.release(1);
  kept.release(2);
  kept.release(3);
  assert.deepEqual(closed, [1], 'two kept at most');
  assert.equal(await kept.take(a), undefined);
  await unlink(b.paths.data); // as FileCache.drop does: the unlinked file's space is freed once closed
  await turn();
  assert.deepEqual(closed, [1, 2]);
  assert.equal(await kept.take(c), 3);
  kept.stop();
});

test('a limit of 0 keeps nothing', async () => {
  const { kept, closed } = setup(0);
  const e = await entry();
  kept.handedOut(e, 9);
  kept.release(9);
  assert.deepEqual(closed, [9]);
  assert.equal(await kept.take(e), undefined);
  kept.stop();
});
