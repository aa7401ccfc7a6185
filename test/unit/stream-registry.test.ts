import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextOrigin, type StreamMember, StreamRegistry } from '../../src/read/stream-registry.js';

const member = (origin?: number): { origin: number | undefined } => ({ origin });

test('the nearest origin of another stream at or after a point; none for the handle itself', () => {
  const reg = new StreamRegistry<StreamMember>();
  const a = member(0);
  const b = member(100);
  const c = member(300);
  const s = reg.join('k\0e1', a);
  reg.join('k\0e1', b);
  reg.join('k\0e1', c);
  reg.join('k\0e2', member(50)); // another version of the object: not a sibling
  assert.equal(nextOrigin(s, a, 10, 0), 100);
  assert.equal(nextOrigin(s, a, 100, 0), 100);
  assert.equal(nextOrigin(s, a, 101, 0), 300);
  assert.equal(nextOrigin(s, c, 301, 300), Number.POSITIVE_INFINITY);
  // Streams that began at or before this one's origin are not ahead of it (two readers of a file).
  assert.equal(nextOrigin(s, b, 0, 100), 300);
  reg.join('k\0e1', member(0)); // a second reader from the start does not bound a
  assert.equal(nextOrigin(s, a, 0, 0), 100);
});

test('a closed handle leaves its origin while others are open; the last close drops the object', () => {
  const reg = new StreamRegistry<StreamMember>();
  const a = member(0);
  const d = member(300);
  const s = reg.join('k', a);
  reg.join('k', d);
  reg.leave('k', d);
  assert.equal(nextOrigin(s, a, 10, 0), 300);
  reg.leave('k', d); // twice: no effect
  assert.equal(s.ended.length, 1);
  reg.leave('k', a);
  assert.equal(reg.objects, 0);
  // One long-lived handle beside many short ones: only the latest origins are kept.
  const s2 = reg.join('k2', member(0));
  for (let i = 1; i < 100; i++) {
    const m = member(i);
    reg.join('k2', m);
    reg.leave('k2', m);
  }
  assert.equal(s2.ended.length, 64);
  assert.equal(s2.ended[0], 36);
});
