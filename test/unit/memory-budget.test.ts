import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBudget } from '../../src/memory/budget.js';

test('pressure listeners run after reserve() returns, once per turn however many wait', async () => {
  const budget = new MemoryBudget(1024);
  await budget.reserve(1024);
  let calls = 0;
  budget.onPressure(() => calls++);
  // A caller of reserve() may be half-way through changing what it holds (the prefetcher appends
  // parts after reserving): a listener run from inside reserve() used to shed those very parts.
  const a = budget.reserve(512);
  const b = budget.reserve(512);
  assert.equal(calls, 0, 'no listener runs inside reserve()');
  await Promise.resolve();
  assert.equal(calls, 1, 'two waiters in one turn: one notice');
  budget.release(1024);
  await Promise.all([a, b]);
  assert.equal(budget.used, 1024);
});
