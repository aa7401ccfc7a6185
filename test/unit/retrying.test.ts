import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MeteredStore } from '../../src/store/metered.js';
import { RetryingStore, worstCaseBackoffMs } from '../../src/store/retrying.js';

const policy = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 };

function stack() {
  const mem = new MemoryStore();
  const metrics = new Metrics();
  const store = new RetryingStore(new MeteredStore(mem, metrics), policy, metrics, silentLogger());
  return { mem, metrics, store };
}

test('retries throttling, 5xx and resets, counting every attempt', async () => {
  const { mem, metrics, store } = stack();
  mem.put('k', 'value');
  mem.failNext(ErrorCodes.Throttled, ErrorCodes.ServerError, ErrorCodes.Network);
  const buf = await store.read('k', { start: 0, end: 5 });
  assert.equal(buf.toString(), 'value');
  assert.equal(await metrics.requestCount('GET'), 4);
});

test('gives up after maxAttempts with the last error', async () => {
  const { mem, store } = stack();
  mem.put('k', 'value');
  mem.failNext(...Array(4).fill(ErrorCodes.ServerError));
  await assert.rejects(store.read('k', { start: 0, end: 5 }), { code: ErrorCodes.ServerError });
  assert.equal(mem.requests.GET, 4);
});

test('does not retry what a retry cannot fix', async () => {
  const { mem, store } = stack();
  mem.failNext(ErrorCodes.AccessDenied);
  await assert.rejects(store.head('k'), { code: ErrorCodes.AccessDenied });
  assert.equal(mem.requests.HEAD, 1);
  mem.put('k', 'v1');
  const pin = { etag: (await mem.head('k'))?.etag };
  mem.put('k', 'v2');
  await assert.rejects(store.read('k', { start: 0, end: 2 }, pin), { code: ErrorCodes.Stale });
  assert.equal(mem.requests.GET, 1);
});

test('an abort stops the retry loop', async () => {
  const { mem, store } = stack();
  const slow = new RetryingStore(
    mem,
    { maxAttempts: 10, baseDelayMs: 1000, maxDelayMs: 1000 },
    new Metrics(),
    silentLogger(),
  );
  // Every attempt fails: with full jitter one backoff may be shorter than the 20 ms before the
  // abort (2% of runs with a single failure, where a retry then succeeded), nine in a row may not.
  mem.failNext(...Array(10).fill(ErrorCodes.ServerError));
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(slow.head('k', ac.signal), { code: ErrorCodes.Aborted });
  assert.ok(store);
});

test('worst-case backoff bounds the FUSE op timeout', () => {
  assert.equal(worstCaseBackoffMs({ maxAttempts: 1, baseDelayMs: 100, maxDelayMs: 5000 }), 0);
  assert.equal(worstCaseBackoffMs({ maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 500 }), 200 + 400 + 500);
});
