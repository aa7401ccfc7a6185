import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Namespace, type NamespaceConfig } from '../../src/vfs/namespace.js';
import { warmMetadata } from '../../src/vfs/warmer.js';

const cfg: NamespaceConfig = {
  prefix: 'root/',
  statTtl: 60_000,
  negativeTtl: 5_000,
  listTtl: 60_000,
  statCacheBytes: 64 << 20,
  typeCacheBytes: 64 << 20,
  listCacheBytes: 64 << 20,
};

function tree(): MemoryStore {
  const store = new MemoryStore();
  const keys = [
    'root/a.txt',
    'root/a-b/c.txt',
    'root/a/x.txt',
    'root/a/y/z.txt',
    'root/a/y/',
    'root/both',
    'root/both/inner',
    'root/empty/',
    'root/bad//name',
    'root/deep/1/2/3/4.txt',
    'root/',
    'other/outside.txt',
  ];
  for (let i = 0; i < 2500; i++) keys.push(`root/many/k${i}`);
  for (const k of keys) store.seed(k, k);
  return store;
}

async function walk(ns: Namespace, path: string, out: Map<string, string[]>): Promise<void> {
  const entries = await ns.readdir(path);
  out.set(path, entries.map((e) => `${e.name}:${e.entry.type}`).sort());
  for (const e of entries)
    if (e.entry.type === 'dir') await walk(ns, path === '/' ? `/${e.name}` : `${path}/${e.name}`, out);
}

test('warm-up builds the same listings as per-directory LISTs, with flat pages', async () => {
  const expected = new Map<string, string[]>();
  await walk(new Namespace(tree(), cfg, new Metrics(), silentLogger()), '/', expected);

  const store = tree();
  const ns = new Namespace(store, cfg, new Metrics(), silentLogger());
  const r = await warmMetadata(store, ns, silentLogger(), new AbortController().signal);
  assert.ok(r.complete);
  assert.equal(store.requests.LIST, Math.ceil(r.keys / 1000));
  const before = { ...store.requests };
  const warmed = new Map<string, string[]>();
  await walk(ns, '/', warmed);
  assert.deepEqual(warmed, expected);
  for (const name of ['a.txt', 'a/y/z.txt', 'many/k2499', 'both']) assert.ok(await ns.lookup(`/${name}`), name);
  assert.deepEqual(store.requests, before, 'no request after the warm-up');
});

test('an aborted warm-up caches nothing it did not finish', async () => {
  const store = tree();
  store.delayMs = 20;
  const ns = new Namespace(store, cfg, new Metrics(), silentLogger());
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 30);
  const r = await warmMetadata(store, ns, silentLogger(), ac.signal);
  assert.equal(r.complete, false);
  assert.equal(ns.lists.peek('/'), undefined);
});
