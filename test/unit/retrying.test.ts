import assert from 'node:assert/strict';
import { test } from 'node:test';
import { worstCaseBackoffMs } from '../../src/config/retry-policy.js';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MeteredStore } from '../../src/store/metered.js';
import { RetryingStore } from '../../src/store/retrying.js';

const policy = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 };

function stack() {
  const mem = new MemoryStore();
  const metrics = new Metrics();
  const store = new RetryingStore(new MeteredStore(mem, metrics), policy, metrics, silentLogger());
  return { mem, metrics, store };
}

test('retries throttling, 5xx and resets, counting every attempt', async () => {
  const { mem, metrics, store } = stack();
  mem.seed('k', 'value');
  mem.failNext(ErrorCodes.Throttled, ErrorCodes.ServerError, ErrorCodes.Network);
  const buf = await store.read('k', { start: 0, end: 5 });
  assert.equal(buf.toString(), 'value');
  assert.equal(await metrics.requestCount('GET'), 4);
});

test('gives up after maxAttempts with the last error', async () => {
  const { mem, store } = stack();
  mem.seed('k', 'value');
  mem.failNext(...Array(4).fill(ErrorCodes.ServerError));
  await assert.rejects(store.read('k', { start: 0, end: 5 }), { code: ErrorCodes.ServerError });
  assert.equal(mem.requests.GET, 4);
});

test('does not retry what a retry cannot fix', async () => {
  const { mem, store } = stack();
  mem.failNext(ErrorCodes.AccessDenied);
  await assert.rejects(store.head('k'), { code: ErrorCodes.AccessDenied });
  assert.equal(mem.requests.HEAD, 1);
  mem.seed('k', 'v1');
  const pin = { etag: (await mem.head('k'))?.etag };
  mem.seed('k', 'v2');
  await assert.rejects(store.read('k', { start: 0, end: 2 }, pin), { code: ErrorCodes.Stale });
  assert.equal(mem.requests.GET, 1);
});

test('an abort stops the retry loop', async () => {
  const { mem } = stack();
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
  // Stopped in a pause, not after the last of its ten attempts.
  assert.ok(mem.requests.HEAD < 10, `${mem.requests.HEAD} attempts`);
});

test('worst-case backoff bounds the FUSE op timeout: every failure a throttle, at its longest pause', () => {
  assert.equal(worstCaseBackoffMs({ maxAttempts: 1, baseDelayMs: 100, maxDelayMs: 5000 }), 0);
  // Throttling pauses from 4 x the base: 800, 1,600, 3,200 ms, each under the 5 s cap.
  assert.equal(worstCaseBackoffMs({ maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 5000 }), 800 + 1600 + 3200);
  assert.equal(worstCaseBackoffMs({ maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 }), 800 + 1000 + 1000);
});

test('no pause of a throttled store is longer than the worst case allows for', async () => {
  const { mem } = stack();
  const policy = { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 1000 };
  const store = new RetryingStore(mem, policy, new Metrics(), silentLogger());
  const random = Math.random;
  // The longest pause jitter can draw, every time.
  Math.random = () => 0.999_999;
  let slept: number;
  try {
    mem.failNext(ErrorCodes.Throttled, ErrorCodes.Throttled);
    mem.seed('k', 'v');
    const started = performance.now();
    await store.head('k');
    slept = performance.now() - started;
  } finally {
    Math.random = random;
  }
  // Pauses of 4 x 5 x 2 and 4 x 5 x 4 ms: 120 ms in all, which a bound of base x 2^i (10 + 20 ms)
  // would not cover. A load only lengthens them; a timer may fire a millisecond early (Node counts
  // whole milliseconds), so the check leaves room below 120 and stays far above 30.
  assert.ok(slept >= 110, `slept ${slept} ms`);
  assert.equal(worstCaseBackoffMs(policy), 40 + 80);
});
