import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Namespace, type NamespaceConfig } from '../../src/vfs/namespace.js';

const cfg: NamespaceConfig = {
  prefix: '',
  statTtl: 60_000,
  negativeTtl: 5_000,
  listTtl: 60_000,
  statCacheBytes: 1 << 20,
  typeCacheBytes: 1 << 20,
  listCacheBytes: 1 << 20,
};

function setup(over: Partial<NamespaceConfig> = {}) {
  const store = new MemoryStore();
  const ns = new Namespace(store, { ...cfg, ...over }, new Metrics(), silentLogger());
  return { store, ns };
}

test('lookup of an unknown name asks HEAD and LIST once, then nothing', async () => {
  const { store, ns } = setup();
  store.seed('a/b.txt', 'x');
  assert.deepEqual(await ns.lookup('/a'), { type: 'dir' });
  assert.equal(store.requests.HEAD + store.requests.LIST, 2);
  const f = await ns.lookup('/a/b.txt');
  assert.equal(f?.type, 'file');
  await ns.lookup('/a');
  await ns.lookup('/a/b.txt');
  assert.equal(store.requests.HEAD + store.requests.LIST, 4);
});

test('readdir fills the caches: stat of every entry afterwards costs nothing', async () => {
  const { store, ns } = setup();
  for (let i = 0; i < 2500; i++) store.seed(`d/f${i}`, 'x');
  store.seed('d/sub/x', 'y');
  const entries = await ns.readdir('/d');
  assert.equal(entries.length, 2501);
  assert.equal(store.requests.LIST, 3, 'paged 1,000 at a time');
  const before = { ...store.requests };
  for (const e of entries) assert.ok(await ns.lookup(`/d/${e.name}`));
  assert.equal(await ns.lookup('/d/missing'), undefined, 'absent from a cached listing');
  assert.deepEqual(store.requests, before);
});

test('a directory shadows an object of the same name; markers make empty dirs', async () => {
  const { store, ns } = setup();
  store.seed('both', 'file');
  store.seed('both/inner', 'x');
  store.seed('empty/', '');
  const root = await ns.readdir('/');
  assert.deepEqual(
    root.map((e) => [e.name, e.entry.type]),
    [
      ['both', 'dir'],
      ['empty', 'dir'],
    ],
  );
  assert.deepEqual(await ns.readdir('/empty'), []);
  const fresh = new Namespace(store, cfg, new Metrics(), silentLogger());
  assert.equal((await fresh.lookup('/both'))?.type, 'dir');
});

test('a key ending in .rclonelink is a symbolic link, in listings and cold lookups; a file of the same name hides it', async () => {
  const { store, ns } = setup();
  store.seed('d/l.rclonelink', '../t');
  store.seed('d/both.rclonelink', 'x');
  store.seed('d/both', 'file');
  const fresh = new Namespace(store, cfg, new Metrics(), silentLogger());
  const cold = await fresh.lookup('/d/l');
  assert.equal(cold?.type, 'symlink');
  assert.equal(cold && 'meta' in cold ? cold.meta.key : '', 'd/l.rclonelink');
  assert.equal((await fresh.lookup('/d/both'))?.type, 'file');
  const listed = await ns.readdir('/d');
  assert.deepEqual(listed.map((e) => [e.name, e.entry.type]).sort(), [
    ['both', 'file'],
    ['l', 'symlink'],
  ]);
  const before = { ...store.requests };
  assert.equal((await ns.lookup('/d/l'))?.type, 'symlink', 'answered by the listing');
  assert.deepEqual(store.requests, before);
});

test('negative entries live for the negative TTL only', async () => {
  const { store, ns } = setup({ negativeTtl: 40 });
  assert.equal(await ns.lookup('/nope'), undefined);
  assert.equal(await ns.lookup('/nope'), undefined);
  assert.equal(store.requests.HEAD, 2, 'the name, then its link object (nope.rclonelink)');
  await new Promise((r) => setTimeout(r, 60));
  store.seed('nope', 'now here');
  assert.equal((await ns.lookup('/nope'))?.type, 'file');
});

test('ttl 0 revalidates every time', async () => {
  const { store, ns } = setup({ statTtl: 0, listTtl: 0 });
  store.seed('f', 'x');
  await ns.lookup('/f');
  await new Promise((r) => setTimeout(r, 150));
  await ns.lookup('/f');
  assert.equal(store.requests.HEAD, 2);
});

test('ttl 0: the requests of one system call share one answer; the next call asks again', async () => {
  const { store, ns } = setup({ statTtl: 0, listTtl: 0 });
  store.seed('f', 'v1');
  await ns.lookup('/f'); // the kernel's LOOKUP
  const attr = await ns.lookup('/f'); // its GETATTRs, moments later
  assert.equal(attr?.type, 'file');
  assert.equal(store.requests.HEAD, 1);
  await ns.lookup('/f', undefined, true); // its OPEN asks: the version pinned must be current
  assert.equal(store.requests.HEAD, 2);
  store.seed('f', 'version 2');
  await new Promise((r) => setTimeout(r, 150));
  const later = await ns.lookup('/f');
  assert.equal(later?.type === 'file' && later.meta.size, 9, 'the new version, asked again');
  assert.equal(store.requests.HEAD, 3);
});

test('concurrent lookups of one name share one request pair', async () => {
  const { store, ns } = setup();
  store.delayMs = 5;
  store.seed('f', 'x');
  await Promise.all([ns.lookup('/f'), ns.lookup('/f'), ns.lookup('/f')]);
  assert.equal(store.requests.HEAD, 1);
  assert.equal(store.requests.LIST, 1);
});

test('names that cannot be POSIX names are skipped', async () => {
  const { store, ns } = setup();
  store.seed(`d/${'n'.repeat(256)}`, 'x');
  store.seed('d/a//b', 'x');
  store.seed('d/./c', 'x');
  store.seed('d/ok', 'x');
  assert.deepEqual(
    (await ns.readdir('/d')).map((e) => e.name),
    ['a', 'ok'],
  );
  assert.deepEqual(await ns.readdir('/d/a'), [], 'the empty segment under a/ is skipped');
});
