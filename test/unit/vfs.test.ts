import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryBudget } from '../../src/memory/budget.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createReaderFactory } from '../../src/read/prefetcher.js';
import { RangeDownloader } from '../../src/read/range-downloader.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Vfs } from '../../src/vfs/vfs.js';
import { hourNamespace } from '../helpers/memory-vfs.js';

const MiB = 1024 * 1024;

function setup(style: 'gcs' | 's3') {
  const store = new MemoryStore('memory', { style });
  const metrics = new Metrics();
  const log = silentLogger();
  const ns = hourNamespace(store, metrics, log);
  const readers = createReaderFactory(
    new RangeDownloader(store, 4),
    new MemoryBudget(64 * MiB),
    {
      partSize: MiB,
      initialWindow: 256 * 1024,
      maxWindow: 4 * MiB,
      forwardTolerance: 256 * 1024,
      siblingSlack: MiB,
      idleMs: 60_000,
    },
    metrics,
  );
  const vfs = new Vfs(
    ns,
    readers,
    { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755, directIo: false, renameDirLimit: 1000 },
    metrics,
    log,
  );
  return { store, vfs };
}

for (const style of ['gcs', 's3'] as const) {
  test(`a read that finds the object changed (${style}) is ESTALE, and the next stat and open see the new version at once`, async () => {
    const { store, vfs } = setup(style);
    store.seed('d/f.bin', randomBytes(8 * MiB));
    const { fh } = await vfs.open('/d/f.bin', 0);
    const into = Buffer.alloc(4096);
    assert.equal(await vfs.read(fh, 0, 4096, into), 4096);
    const newer = randomBytes(3 * MiB);
    store.seed('d/f.bin', newer);
    // Far from what the handle has read ahead: a new GET, pinned to the version opened.
    await assert.rejects(vfs.read(fh, 7 * MiB, 4096, into), { code: ErrorCodes.Stale });
    await vfs.release(fh);
    assert.equal((await vfs.getattr('/d/f.bin')).size, newer.length, 'the cached stat was dropped');
    const again = await vfs.open('/d/f.bin', 0);
    assert.equal(await vfs.read(again.fh, 0, 4096, into), 4096);
    assert.ok(into.equals(newer.subarray(0, 4096)));
    await vfs.release(again.fh);
  });
}
