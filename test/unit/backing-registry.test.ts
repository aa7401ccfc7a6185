// BackingRegistry, the one owner of backing ids: registered ahead and taken by the open, kept after
// the last close and taken back by the next open; a change to a copy's data file on disk (seen by
// the cache's watch, copy-watch.ts, on a real directory here), its removal (a drop from the cache)
// or a limit closes it instead. The kernel's side is faked: the real thing is in
// test/integration/passthrough.test.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { BackingFiles } from '../../src/backing/files.js';
import { BackingRegistry } from '../../src/backing/registry.js';
import { watchCopies } from '../../src/cache/file/copy-watch.js';
import { CacheEntry } from '../../src/cache/file/entry.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-backing-'));
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

function setup(keep = 4, ahead = { max: 4, staleMs: 60_000 }) {
  const closed: number[] = [];
  const backing: BackingFiles = {
    open: () => assert.fail('not registered here'),
    openPath: () => assert.fail('not registered here'),
    close: (id) => closed.push(id),
  };
  const metrics = new Metrics();
  const registry = new BackingRegistry<CacheEntry>(
    () => backing,
    { keep, ahead: ahead.max, aheadStaleMs: ahead.staleMs },
    metrics,
  );
  const watch = watchCopies(dir, registry, silentLogger());
  const gauge = async () => (await metrics.fileCachePassthroughKept.get()).values[0]?.value;
  return { registry, closed, gauge, stop: () => watch.close() };
}

/** Lets the watch deliver what is already queued. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 20));

test('a released id is kept, and taken back by the next open of the same copy', async () => {
  const { registry, closed, gauge, stop } = setup();
  const e = await entry();
  registry.addOpen(e, 5);
  assert.ok(registry.registered(e));
  registry.release(5);
  assert.deepEqual(closed, []);
  assert.equal(await gauge(), 1);
  assert.ok(registry.registered(e), 'nothing to read ahead for it');
  assert.ok(registry.isKept(e));
  assert.equal(registry.take(e), 5);
  assert.equal(registry.take(e), undefined, 'taken once');
  assert.equal(await gauge(), 0);
  registry.release(5);
  assert.equal(registry.take(e), 5, 'kept again after the next close');
  stop();
});

test('a write to a kept copy on disk closes its id and forgets its verified identity', async () => {
  const { registry, closed, stop } = setup();
  const e = await entry();
  registry.addOpen(e, 6);
  registry.release(6);
  writeFileSync(e.paths.data, 'cOpy');
  await turn();
  assert.equal(registry.take(e), undefined);
  assert.deepEqual(closed, [6]);
  assert.equal(e.verifiedAs, undefined, 'verified whole at its next open');
  assert.ok(!registry.registered(e));
  stop();
});

test('a copy changed while open is closed at release, never kept', async () => {
  const { registry, closed, stop } = setup();
  const e = await entry();
  registry.addOpen(e, 7);
  await truncate(e.paths.data, 1);
  await turn();
  assert.deepEqual(closed, [], 'open handles keep reading');
  registry.release(7);
  assert.deepEqual(closed, [7]);
  assert.equal(registry.take(e), undefined);
  stop();
});

test('a kept copy whose file is removed (the cache dropped it) is closed; the limit closes the least recently released', async () => {
  const { registry, closed, stop } = setup(2);
  const [a, b, c] = [await entry(), await entry(), await entry()];
  registry.addOpen(a, 1);
  registry.addOpen(b, 2);
  registry.addOpen(c, 3);
  registry.release(1);
  registry.release(2);
  registry.release(3);
  assert.deepEqual(closed, [1], 'two kept at most');
  assert.equal(registry.take(a), undefined);
  await unlink(b.paths.data); // as FileCache.drop does: the unlinked file's space is freed once closed
  await turn();
  assert.deepEqual(closed, [1, 2]);
  assert.equal(registry.take(c), 3);
  stop();
});

test('a limit of 0 keeps nothing; a dropped copy is never kept or taken', async () => {
  const { registry, closed, stop } = setup(0);
  const e = await entry();
  registry.addOpen(e, 9);
  registry.release(9);
  assert.deepEqual(closed, [9]);
  assert.equal(registry.take(e), undefined);
  stop();
  const kept = setup(4);
  const d = await entry();
  kept.registry.addAhead(d, 10);
  d.dropped = true;
  assert.equal(kept.registry.take(d), undefined);
  kept.stop();
});

test('an id registered ahead is taken by the open; a newer registration of the same copy closes it', async () => {
  const { registry, closed, stop } = setup();
  const e = await entry();
  registry.addAhead(e, 11);
  assert.ok(registry.registered(e));
  assert.ok(!registry.isKept(e));
  assert.equal(registry.take(e), 11);
  registry.release(11);
  assert.ok(registry.isKept(e));
  registry.addOpen(e, 12); // registered again (verified afresh): the kept one is stale
  assert.deepEqual(closed, [11]);
  stop();
});

test('room ahead: full until the oldest unclaimed one is stale, which is then closed; a changed one closes at once', async () => {
  const fresh = setup(4, { max: 2, staleMs: 60_000 });
  const [a, b, c] = [await entry(), await entry(), await entry()];
  fresh.registry.addAhead(a, 21);
  fresh.registry.addAhead(b, 22);
  assert.equal(fresh.registry.roomAhead(), false, 'both claimed lately');
  fresh.registry.addAhead(c, 23); // finished together with the others: the oldest makes room
  assert.deepEqual(fresh.closed, [21]);
  writeFileSync(b.paths.data, 'changed');
  await turn();
  assert.deepEqual(fresh.closed, [21, 22], 'an id ahead is no use once its file changed');
  fresh.stop();

  const stale = setup(4, { max: 1, staleMs: 0 });
  const d = await entry();
  stale.registry.addAhead(d, 31);
  assert.equal(stale.registry.roomAhead(), true);
  assert.deepEqual(stale.closed, [31]);
  stale.stop();
});
