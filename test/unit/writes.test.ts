// The write path of the VFS over the in-memory store: what each POSIX change sends, and what is
// kept when the store refuses. The same paths run against real servers in
// test/integration/writes.test.ts; here faults and races are exact.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryBudget } from '../../src/memory/budget.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createReaderFactory } from '../../src/read/prefetcher.js';
import { RangeDownloader } from '../../src/read/range-downloader.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Vfs } from '../../src/vfs/vfs.js';
import { Writes } from '../../src/vfs/writes.js';
import { PartBuffers, partSizeFor } from '../../src/write/upload.js';
import { hourNamespace } from '../helpers/memory-vfs.js';

const KiB = 1024;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_TRUNC = 0o1000;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function setup(style: 'gcs' | 's3' = 's3', maxStagedBytes = Number.POSITIVE_INFINITY) {
  const store = new MemoryStore('memory', { style, uploadShape: { minPartBytes: 4 * KiB, maxPutBytes: 64 * KiB } });
  const metrics = new Metrics();
  const log = silentLogger();
  const ns = hourNamespace(store, metrics, log);
  const budget = new MemoryBudget(1 << 20);
  const readers = createReaderFactory(
    new RangeDownloader(store, 4),
    budget,
    {
      partSize: 64 * KiB,
      initialWindow: 16 * KiB,
      maxWindow: 256 * KiB,
      forwardTolerance: 16 * KiB,
      siblingSlack: 64 * KiB,
      idleMs: 60_000,
    },
    metrics,
  );
  const stagingDir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-unit-staging-'));
  dirs.push(stagingDir);
  const writes = new Writes(
    store,
    ns,
    { stagingDir, maxStagedBytes, upload: { partBytes: 16 * KiB, concurrency: 3 } },
    budget,
    metrics,
    log,
  );
  const vfs = new Vfs(
    ns,
    readers,
    { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755, directIo: false, renameDirLimit: 1000 },
    metrics,
    log,
    undefined,
    { store, writes },
  );
  return { store, vfs, stagingDir, budget };
}

const reset = (store: MemoryStore) => {
  for (const k of Object.keys(store.requests) as (keyof typeof store.requests)[]) store.requests[k] = 0;
};

test('a new file written in order is one PUT when small and parts when larger, within the memory budget', async () => {
  const { store, vfs, budget } = await setup();
  const small = randomBytes(10 * KiB);
  const a = await vfs.create('/small');
  await vfs.write(a.fh, small, 0);
  await vfs.flush(a.fh);
  await vfs.release(a.fh);
  assert.deepEqual(store.bytes('small'), small);
  assert.equal(store.requests.PUT, 1);
  reset(store);
  const big = randomBytes(50 * KiB + 7);
  const b = await vfs.create('/big');
  for (let off = 0; off < big.length; off += 4 * KiB) await vfs.write(b.fh, big.subarray(off, off + 4 * KiB), off);
  await vfs.release(b.fh); // release without a flush uploads too
  assert.deepEqual(store.bytes('big'), big);
  assert.deepEqual(
    [store.requests.UPLOAD_START, store.requests.UPLOAD_PART, store.requests.UPLOAD_COMPLETE],
    [1, 4, 1],
  );
  assert.equal(store.openUploads, 0);
  assert.ok(budget.peak <= 3 * 16 * KiB, `peak ${budget.peak}`);
  assert.equal(budget.used, 0);
});

test('the part size grows so that any size fits in the part limit, on the store multiple', () => {
  const shape = {
    minPartBytes: 256 * KiB,
    maxParts: 10_000,
    partMultiple: 256 * KiB,
    sequentialParts: true,
    maxPutBytes: 0,
  };
  assert.equal(partSizeFor(1, 8 << 20, shape), 8 << 20);
  const huge = 200 * 1024 ** 3;
  const p = partSizeFor(huge, 8 << 20, shape);
  assert.ok(Math.ceil(huge / p) <= 10_000 && p % (256 * KiB) === 0, String(p));
});

test('an overwrite in the middle fills the old bytes first; the upload replaces only the version opened', async () => {
  const { store, vfs } = await setup('gcs');
  const old = randomBytes(20 * KiB);
  store.seed('f', old);
  const h = await vfs.open('/f', O_RDWR);
  await vfs.write(h.fh, Buffer.from('XYZ'), 100);
  const into = Buffer.alloc(200);
  assert.equal(await vfs.read(h.fh, 0, 200, into), 200, 'the handle reads what it wrote');
  assert.equal(into.subarray(100, 103).toString(), 'XYZ');
  await vfs.flush(h.fh);
  const want = Buffer.from(old);
  want.write('XYZ', 100);
  assert.deepEqual(store.bytes('f'), want);
  // Someone else replaces the object; our next change must not overwrite theirs.
  store.seed('f', 'theirs');
  await vfs.write(h.fh, Buffer.from('again'), 0);
  await assert.rejects(vfs.flush(h.fh), { code: ErrorCodes.Stale });
  assert.equal(store.bytes('f')?.toString(), 'theirs');
  await vfs.release(h.fh);
});

test('a failed upload is an error to close, and the bytes stay on disk where the log says', async () => {
  const { store, vfs, stagingDir } = await setup();
  const body = randomBytes(5 * KiB);
  const h = await vfs.create('/lost');
  await vfs.write(h.fh, body, 0);
  store.failNext(ErrorCodes.AccessDenied);
  await assert.rejects(vfs.flush(h.fh), { code: ErrorCodes.AccessDenied });
  await vfs.release(h.fh);
  assert.equal(store.bytes('lost'), undefined);
  const kept = await readdir(stagingDir);
  assert.equal(kept.length, 1, kept.join());
  assert.deepEqual(await readFile(path.join(stagingDir, kept[0] as string)), body);
});

test('an upload in parts that fails aborts, leaving no upload behind', async () => {
  const { store, vfs } = await setup();
  // An existing file changed in place: staged, uploaded in parts at flush (no stream).
  store.seed('parts', randomBytes(40 * KiB));
  const h = await vfs.open('/parts', O_RDWR);
  await vfs.write(h.fh, Buffer.from('changed'), 100);
  store.failNextOf('UPLOAD_PART', ErrorCodes.AccessDenied);
  await assert.rejects(vfs.flush(h.fh), { code: ErrorCodes.AccessDenied });
  assert.equal(store.requests.UPLOAD_START, 1);
  assert.equal(store.requests.UPLOAD_ABORT, 1);
  assert.equal(store.openUploads, 0);
  assert.equal(store.bytes('parts')?.subarray(100, 107).toString() === 'changed', false, 'the object is as it was');
  await vfs.release(h.fh);
});

test('O_TRUNC without writes empties the file; open for writing without changes uploads nothing', async () => {
  const { store, vfs } = await setup();
  store.seed('t', 'some bytes');
  const quiet = await vfs.open('/t', O_WRONLY);
  await vfs.flush(quiet.fh);
  await vfs.release(quiet.fh);
  assert.equal(store.requests.PUT, 0);
  const t = await vfs.open('/t', O_WRONLY | O_TRUNC);
  assert.equal((await vfs.getattr('/t')).size, 0);
  await vfs.release(t.fh);
  assert.equal(store.bytes('t')?.length, 0);
});

test('unlink of a file open for writing uploads nothing more; rename moves an open file with its changes', async () => {
  const { store, vfs } = await setup();
  const a = await vfs.create('/a');
  await vfs.write(a.fh, Buffer.from('never stored'), 0);
  await vfs.unlink('/a');
  await vfs.release(a.fh);
  assert.equal(store.bytes('a'), undefined);
  const b = await vfs.create('/b');
  await vfs.write(b.fh, Buffer.from('first'), 0);
  await vfs.rename('/b', '/c');
  await vfs.write(b.fh, Buffer.from('FIRST'), 0);
  await vfs.release(b.fh);
  assert.equal(store.bytes('b'), undefined);
  assert.equal(store.bytes('c')?.toString(), 'FIRST');
  assert.deepEqual((await vfs.readdir('/')).names.sort(), ['.', '..', 'c']);
});

/** Resolves once the event loop has run what is queued (part sends read the staged file first). */
const settle = () => new Promise((r) => setTimeout(r, 20));

test('a new file written in order is uploaded while it is written; close sends only the rest', async () => {
  const { store, vfs } = await setup();
  const body = randomBytes(70 * KiB + 5);
  const h = await vfs.create('/stream');
  for (let off = 0; off < 64 * KiB; off += 4 * KiB) await vfs.write(h.fh, body.subarray(off, off + 4 * KiB), off);
  await settle();
  assert.equal(store.requests.UPLOAD_START, 1);
  assert.equal(store.requests.UPLOAD_PART, 4, '16 KiB parts sent before any flush');
  assert.equal(store.bytes('stream'), undefined, 'nothing visible yet');
  await vfs.write(h.fh, body.subarray(64 * KiB), 64 * KiB);
  await vfs.flush(h.fh);
  assert.deepEqual([store.requests.UPLOAD_PART, store.requests.UPLOAD_COMPLETE, store.requests.PUT], [5, 1, 0]);
  assert.deepEqual(store.bytes('stream'), body);
  await vfs.release(h.fh);
});

test('two writes handed over out of order still stream; a write into sent bytes falls back to the staged copy', async () => {
  const { store, vfs } = await setup();
  const body = randomBytes(40 * KiB);
  const h = await vfs.create('/swapped');
  await vfs.write(h.fh, body.subarray(8 * KiB, 16 * KiB), 8 * KiB);
  await vfs.write(h.fh, body.subarray(0, 8 * KiB), 0);
  await vfs.write(h.fh, body.subarray(16 * KiB), 16 * KiB);
  await settle();
  assert.equal(store.requests.UPLOAD_PART, 2);
  body.write('rewritten', 10);
  await vfs.write(h.fh, Buffer.from('rewritten'), 10);
  await vfs.flush(h.fh);
  assert.equal(store.requests.UPLOAD_ABORT, 1, 'the stream was dropped');
  assert.equal(store.openUploads, 0);
  assert.deepEqual(store.bytes('swapped'), body);
  await vfs.release(h.fh);
});

test('a part of the stream that fails for good leaves the staged copy to upload at close', async () => {
  const { store, vfs } = await setup();
  const body = randomBytes(48 * KiB);
  const h = await vfs.create('/retry');
  store.failNextOf('UPLOAD_PART', ErrorCodes.AccessDenied);
  await vfs.write(h.fh, body, 0);
  await settle();
  await vfs.flush(h.fh);
  assert.deepEqual(store.bytes('retry'), body);
  assert.equal(store.openUploads, 0);
  await vfs.release(h.fh);
});

test('staging is bounded: a write past --write-staging-max-mb is ENOSPC, and room comes back at close', async () => {
  const { store, vfs } = await setup('s3', 32 * KiB);
  const a = await vfs.create('/a');
  await vfs.write(a.fh, randomBytes(20 * KiB), 0);
  const b = await vfs.create('/b');
  await assert.rejects(
    vfs.write(b.fh, randomBytes(20 * KiB), 0),
    (err: unknown) => (err as { errno?: string }).errno === 'ENOSPC',
  );
  await vfs.write(b.fh, randomBytes(10 * KiB), 0);
  await vfs.release(a.fh);
  await vfs.write(b.fh, randomBytes(20 * KiB), 10 * KiB);
  await vfs.release(b.fh);
  assert.equal(store.bytes('a')?.length, 20 * KiB);
  assert.equal(store.bytes('b')?.length, 30 * KiB);
});

test('a file being written is read by other handles as written so far, before it is in the store', async () => {
  const { store, vfs } = await setup();
  const w = await vfs.create('/shared');
  await vfs.write(w.fh, Buffer.from('hello'), 0);
  const r = await vfs.open('/shared', 0);
  const into = Buffer.alloc(16);
  assert.equal(await vfs.read(r.fh, 0, 16, into), 5);
  assert.equal(into.subarray(0, 5).toString(), 'hello');
  assert.equal(store.bytes('shared'), undefined);
  // A second writer shares the staged copy: every close uploads what both wrote.
  const w2 = await vfs.open('/shared', O_WRONLY);
  await vfs.write(w2.fh, Buffer.from(' world'), 5);
  await vfs.flush(w2.fh); // close(2): FLUSH, then RELEASE
  await vfs.release(w2.fh);
  assert.equal(store.bytes('shared')?.toString(), 'hello world');
  await vfs.write(w.fh, Buffer.from('!'), 11);
  await vfs.release(w.fh);
  await vfs.release(r.fh);
  assert.equal(store.bytes('shared')?.toString(), 'hello world!');
});

test('full upload parts reuse their buffers, and every part buffer counts in the budget while lent', async () => {
  // Parts past Buffer's own small-allocation pool, which shares one ArrayBuffer among small buffers.
  const part = 64 * KiB;
  const budget = new MemoryBudget(3 * part);
  const buffers = new PartBuffers(part, budget);
  const seen = new Set<ArrayBufferLike>();
  for (let i = 0; i < 4; i++) {
    await buffers.lend(part, async (buf) => {
      assert.equal(budget.used, part);
      seen.add(buf.buffer);
    });
  }
  assert.equal(seen.size, 1, 'one buffer served four parts in turn');
  // A last, shorter part gets a buffer of its own size, reserved as well.
  await buffers.lend(100, async (buf) => {
    assert.equal(buf.length, 100);
    assert.equal(budget.used, 100);
  });
  // Parts past the budget wait for a buffer to come back.
  let inFlight = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 6 }, () =>
      buffers.lend(part, async () => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
      }),
    ),
  );
  assert.equal(most, 3);
  assert.equal(budget.used, 0);
});

test('a handle that reads a file being written keeps reading it after a rename and after the writers closed', async () => {
  const { store, vfs } = await setup();
  const w = await vfs.create('/new');
  await vfs.write(w.fh, Buffer.from('written here'), 0);
  const r = await vfs.open('/new', 0);
  const into = Buffer.alloc(32);
  const readBack = async () => into.toString('utf8', 0, await vfs.read(r.fh, 0, 32, into));
  // The kernel keeps both handles on the moved file: they follow it, not the old name.
  await vfs.rename('/new', '/moved');
  assert.equal(await readBack(), 'written here');
  await vfs.write(w.fh, Buffer.from('WRITTEN'), 0);
  assert.equal(await readBack(), 'WRITTEN here');
  await vfs.flush(w.fh);
  await vfs.release(w.fh);
  assert.equal(store.bytes('moved')?.toString(), 'WRITTEN here');
  assert.equal(await readBack(), 'WRITTEN here', 'the reader outlives the writer');
  await vfs.release(r.fh);
  assert.equal(store.bytes('new'), undefined);
});

test('an open for writing while the last close is still uploading joins the file, and its writes are uploaded too', async () => {
  const { store, vfs } = await setup();
  const a = await vfs.create('/f');
  await vfs.write(a.fh, Buffer.from('first'), 0);
  store.delayMs = 50;
  const closing = vfs.release(a.fh); // the last handle: its upload is under way
  const b = await vfs.open('/f', O_WRONLY);
  await closing;
  await vfs.write(b.fh, Buffer.from(' and second'), 5);
  await vfs.release(b.fh);
  store.delayMs = 0;
  assert.equal(store.bytes('f')?.toString(), 'first and second');
});

test('an open for writing just as the last close finishes starts afresh on the version uploaded', async () => {
  const { store, vfs } = await setup();
  const a = await vfs.create('/g');
  await vfs.write(a.fh, Buffer.from('one'), 0);
  await vfs.flush(a.fh); // uploaded: the release has only the staged copy to retire
  const closing = vfs.release(a.fh);
  const b = await vfs.open('/g', O_RDWR); // truncate(1) opens, ftruncates and closes
  await closing;
  await vfs.ftruncate(b.fh, 5);
  await vfs.flush(b.fh);
  await vfs.release(b.fh);
  assert.deepEqual(store.bytes('g'), Buffer.from('one\0\0'));
});

/** Reads a handle from `offset` to the end, a part at a time, as the kernel would. */
async function readToEnd(vfs: Vfs, fh: number, size: number): Promise<Buffer> {
  const into = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const piece = Buffer.alloc(8 * KiB);
    const n = await vfs.read(fh, done, piece.length, piece);
    if (n === 0) break;
    piece.copy(into, done, 0, n);
    done += n;
  }
  return into.subarray(0, done);
}

const isEnoent = (err: unknown) => (err as { errno?: string }).errno === 'ENOENT';

test('rm of a file open for reading: the name goes at once, the handle reads its version to the end, the object goes at its last close', async () => {
  const { store, vfs, stagingDir } = await setup();
  const body = randomBytes(40 * KiB);
  store.seed('r', body);
  const h = await vfs.open('/r', 0);
  const h2 = await vfs.open('/r', 0);
  await vfs.unlink('/r');
  await assert.rejects(vfs.getattr('/r'), isEnoent);
  assert.deepEqual((await vfs.readdir('/')).names, ['.', '..'], 'a fresh listing hides it too');
  assert.deepEqual(await readToEnd(vfs, h.fh, body.length), body);
  await vfs.release(h.fh);
  assert.ok(store.bytes('r'), 'kept while another handle reads it');
  assert.equal((await readdir(stagingDir)).filter((n) => n.endsWith('.delete.json')).length, 1, 'noted on disk');
  await vfs.release(h2.fh);
  assert.equal(store.bytes('r'), undefined);
  assert.deepEqual(await readdir(stagingDir), [], 'the note goes with the object');
});

test('a file created at the name of one removed while read replaces it at once; the old handle closing deletes nothing', async () => {
  const { store, vfs } = await setup();
  store.seed('c', randomBytes(10 * KiB));
  store.seed('d', 'old d');
  const c = await vfs.open('/c', 0);
  const d = await vfs.open('/d', 0);
  await vfs.unlink('/c');
  await vfs.unlink('/d');
  const w = await vfs.create('/c');
  await vfs.write(w.fh, Buffer.from('new c'), 0);
  await vfs.release(w.fh);
  assert.equal(store.bytes('c')?.toString(), 'new c');
  store.seed('d', 'another client wrote d'); // meanwhile, elsewhere
  await vfs.release(c.fh);
  await vfs.release(d.fh);
  assert.equal(store.bytes('c')?.toString(), 'new c');
  assert.equal(store.bytes('d')?.toString(), 'another client wrote d', 'only the version removed is deleted');
});

test('mv of a file open for reading: the handle reads its version to the end, and the source object goes at its close', async () => {
  const { store, vfs } = await setup();
  const body = randomBytes(30 * KiB);
  store.seed('m1', body);
  const h = await vfs.open('/m1', 0);
  await vfs.rename('/m1', '/m2');
  await assert.rejects(vfs.getattr('/m1'), isEnoent);
  assert.deepEqual(store.bytes('m2'), body);
  assert.deepEqual(await readToEnd(vfs, h.fh, body.length), body);
  await vfs.release(h.fh);
  assert.equal(store.bytes('m1'), undefined);
  assert.deepEqual(store.bytes('m2'), body);
});

test('an open for writing right after the lookup the kernel sends first asks the store nothing more', async () => {
  const { store, vfs } = await setup();
  store.seed('ow', 'old bytes');
  reset(store);
  await vfs.getattr('/ow'); // the kernel's LOOKUP
  const h = await vfs.open('/ow', O_WRONLY);
  assert.deepEqual([store.requests.HEAD, store.requests.LIST], [1, 1], 'the lookup gave the current version');
  await vfs.write(h.fh, Buffer.from('NEW'), 0);
  await vfs.release(h.fh);
  assert.equal(store.bytes('ow')?.toString(), 'NEW bytes');
  reset(store);
  await vfs.getattr('/ow'); // answered by the cache: the upload's own answer, just now
  const again = await vfs.open('/ow', O_WRONLY);
  assert.deepEqual([store.requests.HEAD, store.requests.LIST], [0, 0]);
  await vfs.release(again.fh);
});
