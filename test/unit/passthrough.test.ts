// PassthroughOpens: one backing id per open file, shared by its passthrough handles and given back to
// its source with the last; no passthrough beside handles open through bucketfs; EBUSY for a newer version while an
// older one is open; a kernel that refuses turns it off. The kernel side is faked here; the real
// thing is in test/integration/passthrough.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BackingFiles, BackingRefused } from '../../src/backing/files.js';
import { silentLogger } from '../../src/log.js';
import type { ObjectMeta } from '../../src/store/types.js';
import { type BackingSlot, PassthroughOpens } from '../../src/vfs/passthrough.js';

const meta = (etag: string): ObjectMeta => ({ key: 'd/f', size: 10, mtime: new Date(0), etag });

function setup(attach: (m: ObjectMeta) => Promise<number | undefined>) {
  const closed: number[] = [];
  let attaches = 0;
  const backing: BackingFiles = {
    open: () => 1,
    openPath: async () => ({ error: 0, bytes: 0, id: 1, stat: '' }),
    close: () => assert.fail('ids go back to their source'),
  };
  const p = new PassthroughOpens(
    {
      attach: (m) => {
        attaches++;
        return attach(m);
      },
      release: (id) => closed.push(id),
    },
    () => backing,
    silentLogger(),
  );
  const f: BackingSlot = { backing: undefined };
  return { p, f, closed, attaches: () => attaches };
}

test('handles of one file share one backing id, given back with the last', async () => {
  let next = 7;
  const { p, f, closed, attaches } = setup(async () => next++);
  const [a, b] = await Promise.all([p.opened('/f', f, meta('1'), false), p.opened('/f', f, meta('1'), false)]);
  assert.equal(a, 7);
  assert.equal(b, 7);
  assert.equal(await p.opened('/f', f, meta('1'), false), 7);
  assert.equal(attaches(), 1, 'verified and registered once');
  p.released(f);
  p.released(f);
  await Promise.resolve();
  assert.deepEqual(closed, []);
  p.released(f);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(closed, [7]);
  assert.equal(await p.opened('/f', f, meta('1'), false), 8, 'a fresh id after the last closed');
});

test('no passthrough beside handles open through bucketfs, nor without a usable copy', async () => {
  const { p, f, attaches } = setup(async () => undefined);
  assert.equal(await p.opened('/f', f, meta('1'), true), undefined);
  assert.equal(attaches(), 0);
  assert.equal(await p.opened('/f', f, meta('1'), false), undefined);
  assert.equal(await p.opened('/f', f, meta('1'), false), undefined, 'tried again: the copy may be complete now');
  assert.equal(attaches(), 2);
});

test('a newer version is refused with EBUSY while an older one is open in passthrough', async () => {
  const { p, f } = setup(async () => 3);
  assert.equal(await p.opened('/f', f, meta('1'), false), 3);
  await assert.rejects(p.opened('/f', f, meta('2'), false), { errno: 'EBUSY' });
  p.released(f);
  assert.equal(await p.opened('/f', f, meta('2'), false), 3);
});

test('the backing belongs to the open file, not its path: a new file at the path of an unlinked one gets its own', async () => {
  let next = 3;
  const { p, f } = setup(async () => next++);
  assert.equal(await p.opened('/f', f, meta('1'), false), 3);
  // rm /f while it is open, then a new /f: another inode for the kernel, so another backing file.
  const recreated: BackingSlot = { backing: undefined };
  assert.equal(await p.opened('/f', recreated, meta('2'), false), 4);
  p.released(f);
  p.released(recreated);
});

test('a kernel that refuses a backing file turns passthrough off', async () => {
  const { p, f, attaches } = setup(async () => {
    throw new BackingRefused(1);
  });
  assert.equal(await p.opened('/f', f, meta('1'), false), undefined);
  assert.equal(await p.opened('/g', { backing: undefined }, meta('1'), false), undefined);
  assert.equal(attaches(), 1, 'asked once');
});
