// raiseEventLoopPriority's outcomes. The real thing, read back from /proc for every thread of a
// mounted daemon, is in test/integration/kernel-options.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { raiseEventLoopPriority } from '../../src/fuse/event-loop-priority.js';

test('sets the nice value asked for', async () => {
  const set: number[] = [];
  assert.deepEqual(await raiseEventLoopPriority(-10, (p) => set.push(p)), { raised: -10 });
  assert.deepEqual(set, [-10]);
});

test('0 leaves the priority alone', async () => {
  assert.deepEqual(await raiseEventLoopPriority(0, () => assert.fail('setPriority called')), { left: true });
});

test('a refusal (not root) is reported, never thrown', async () => {
  const outcome = await raiseEventLoopPriority(-10, () => {
    throw Object.assign(new Error('A system error occurred: uv_os_setpriority returned EACCES (permission denied)'), {
      code: 'ERR_SYSTEM_ERROR',
    });
  });
  assert.ok('refused' in outcome && /EACCES/.test(outcome.refused), JSON.stringify(outcome));
});
