import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBudget } from '../../src/memory/budget.js';
import { PartPool } from '../../src/memory/part-pool.js';
import { Metrics } from '../../src/metrics/metrics.js';

const MiB = 1024 * 1024;

test('only full-size parts are pooled, and a released buffer is handed out again', () => {
  const pool = new PartPool(MiB, new MemoryBudget(8 * MiB), 60_000);
  assert.equal(pool.acquire(MiB - 1), undefined, 'a smaller part gets its own buffer from the store');
  const a = pool.acquire(MiB) as Buffer;
  assert.equal(a.length, MiB);
  pool.release(a);
  assert.equal(pool.pooled, 1);
  assert.equal(pool.acquire(MiB), a);
  assert.equal(pool.pooled, 0);
  pool.release(a.subarray(0, 100));
  assert.equal(pool.pooled, 0, 'a view is not a pool buffer');
  pool.clear();
});

test('reserved plus pooled bytes stay within the budget limit', async () => {
  const budget = new MemoryBudget(4 * MiB);
  const metrics = new Metrics();
  const pool = new PartPool(MiB, budget, 60_000, metrics);
  await budget.reserve(3 * MiB);
  const bufs = [pool.acquire(MiB), pool.acquire(MiB), pool.acquire(MiB)] as Buffer[];
  budget.release(2 * MiB);
  for (const b of bufs) pool.release(b);
  // 1 MiB still reserved: room for three free buffers, not more.
  assert.equal(pool.pooled, 3);
  budget.release(MiB);
  assert.equal((await metrics.readPoolBytes.get()).values[0]?.value, 3 * MiB);
  pool.clear();
  assert.equal((await metrics.readPoolBytes.get()).values[0]?.value, 0);
});

test('a reader waiting for memory empties the pool; so does a while without use', async () => {
  const budget = new MemoryBudget(2 * MiB);
  const pool = new PartPool(MiB, budget, 30);
  pool.release(pool.acquire(MiB) as Buffer);
  assert.equal(pool.pooled, 1);
  await budget.reserve(2 * MiB);
  const waiting = budget.reserve(MiB); // pressure: listeners give back what they hold
  await Promise.resolve(); // they are told in a microtask, not inside reserve()
  assert.equal(pool.pooled, 0);
  budget.release(2 * MiB);
  await waiting;
  budget.release(MiB);
  pool.release(pool.acquire(MiB) as Buffer);
  assert.equal(pool.pooled, 1);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(pool.pooled, 0, 'dropped after idleMs');
});

test('releaseLater hands a buffer back only once the event loop has turned', async () => {
  const pool = new PartPool(MiB, new MemoryBudget(8 * MiB), 60_000);
  const a = pool.take();
  assert.equal(a.length, MiB);
  pool.releaseLater(a);
  // A view of `a` returned by a read is still being used in this turn (FileReader.read).
  assert.equal(pool.pooled, 0, 'not before the turn ends');
  assert.notEqual(pool.take(), a, 'a buffer taken in the same turn is another one');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(pool.pooled, 1);
  assert.equal(pool.take(), a);
  pool.clear();
});
