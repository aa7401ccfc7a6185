// How an open uses the kernel's cached pages of a file (src/vfs/page-cache.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sameVersion, versionKey } from '../../src/store/types.js';
import { PageCacheVersions } from '../../src/vfs/page-cache.js';

const v1 = versionKey({ etag: '"a"', size: 10 });
const v2 = versionKey({ etag: '"b"', size: 10 });

describe('page cache across opens', () => {
  test('the same version as the last open keeps it; a first open or a new version drops it', () => {
    const p = new PageCacheVersions();
    const f = { versions: new Map<string, number>() };
    assert.equal(p.opened('/f', f, v1), 'drop', 'first open: nothing known of the pages');
    p.closed('/f', f, v1);
    assert.equal(p.opened('/f', f, v1), 'keep');
    assert.equal(p.opened('/f', f, v1), 'keep', 'two handles of one version');
    p.closed('/f', f, v1);
    p.closed('/f', f, v1);
    assert.equal(p.opened('/f', f, v2), 'drop', 'changed: the old pages go');
    p.closed('/f', f, v2);
    assert.equal(p.opened('/f', f, v2), 'keep');
    assert.equal(p.opened('/g', { versions: new Map() }, v2), 'drop', 'per path');
  });

  test('versionKey follows the one version rule (sameVersion): generation on GCS, else ETag and size', () => {
    const s3 = [
      { etag: '"a"', size: 10 },
      { etag: '"a"', size: 11 },
      { etag: '"b"', size: 10 },
    ];
    const gcs = [
      { etag: 'x', generation: '1', size: 1 },
      { etag: 'x', generation: '2', size: 1 },
      { etag: 'y', generation: '1', size: 1 },
    ];
    for (const metas of [s3, gcs])
      for (const a of metas)
        for (const b of metas) assert.equal(versionKey(a) === versionKey(b), sameVersion(a, b), JSON.stringify([a, b]));
  });

  test('while two versions are open the newer opens bypass the pages; afterwards the next open drops them', () => {
    const p = new PageCacheVersions();
    const f = { versions: new Map<string, number>() };
    assert.equal(p.opened('/f', f, v1), 'drop'); // A, still open
    assert.equal(p.opened('/f', f, v2), 'bypass', 'B: another version is open');
    p.closed('/f', f, v2); // B closes; A may still fill pages with v1
    assert.equal(p.opened('/f', f, v2), 'bypass', 'C: A (v1) is still open');
    p.closed('/f', f, v2);
    p.closed('/f', f, v1); // A closes, its pages may remain
    assert.equal(p.opened('/f', f, v2), 'drop', 'D: drops what A left');
    p.closed('/f', f, v2);
    assert.equal(p.opened('/f', f, v2), 'keep', 'E: only v2 was read since D dropped the pages');
  });

  test('an older handle closing after a newer open forgets the version', () => {
    const p = new PageCacheVersions();
    const f = { versions: new Map<string, number>() };
    p.opened('/f', f, v1);
    p.closed('/f', f, v1);
    p.opened('/f', f, v1); // A
    assert.equal(p.opened('/f', f, v2), 'bypass');
    p.closed('/f', f, v2);
    p.closed('/f', f, v1);
    assert.equal(p.opened('/f', f, v1), 'drop', 'v1 again, but v2 pages may be cached');
  });
});
