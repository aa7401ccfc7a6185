import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TtlCache } from '../../src/cache/meta/ttl-cache.js';
import { Metrics } from '../../src/metrics/metrics.js';

function cache(ttlMs: number, maxBytes: number) {
  return new TtlCache<string>({ name: 'stat', ttlMs, maxBytes, cost: () => 100, metrics: new Metrics() });
}

test('ttl 0 stores nothing; Infinity never expires', async () => {
  const zero = cache(0, 1e6);
  zero.set('a', 'x');
  assert.equal(zero.get('a'), undefined);
  const forever = cache(Number.POSITIVE_INFINITY, 1e6);
  forever.set('a', 'x');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(forever.get('a'), 'x');
});

test('entries expire after the TTL; per-entry TTL overrides', async () => {
  const c = cache(30, 1e6);
  c.set('a', 'x');
  c.set('b', 'y', 1000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.get('a'), undefined);
  assert.equal(c.get('b'), 'y');
});

test('the byte bound evicts least recently used first', () => {
  const c = cache(Number.POSITIVE_INFINITY, 1000);
  for (let i = 0; i < 10; i++) c.set(`k${i}`, 'v');
  c.get('k0'); // k0 becomes most recent
  c.set('k10', 'v');
  assert.equal(c.get('k0'), 'v');
  assert.equal(c.get('k1'), undefined, 'oldest unused evicted');
  assert.ok(c.bytes <= 1000);
});

test('a 1 MiB stat cache fed 50,000 entries stays within 1 MiB and keeps the newest', () => {
  const metrics = new Metrics();
  const c = new TtlCache<{ key: string; etag: string }>({
    name: 'stat',
    ttlMs: Number.POSITIVE_INFINITY,
    maxBytes: 1024 * 1024,
    cost: (k, v) => 2 * (k.length + v.key.length + v.etag.length) + 200,
    metrics,
  });
  for (let i = 0; i < 50_000; i++) {
    const key = `datasets/train/shard-${String(i).padStart(6, '0')}.bin`;
    c.set(key, { key, etag: `"${i.toString(16).padStart(32, '0')}"` });
  }
  assert.ok(c.bytes <= 1024 * 1024, `${c.bytes} bytes`);
  assert.ok(c.size > 1000 && c.size < 50_000, `${c.size} entries`);
  assert.equal(c.get('datasets/train/shard-000000.bin'), undefined, 'the oldest went first');
  assert.ok(c.get('datasets/train/shard-049999.bin'), 'the newest stayed');
});
