// GCS writes in detail, against fake-gcs-server: the resumable session behind startUpload/uploadPart/
// completeUpload (parts of whole 256 KiB blocks, a last part that is not, a part sent again), abort,
// conditions, copies pinned by generation, and how faults of the write client are classified. The
// cross-backend contract is store-writes.test.ts; this file checks what only GCS does.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ErrorCodes } from '../../src/errors.js';
import type { ObjectStore, UploadedPart } from '../../src/store/types.js';
import { freePort } from '../helpers/mount.js';
import { startServer, type TestServer } from '../helpers/servers.js';
import { storeFor } from '../helpers/stores.js';

const KIB = 1024;
const BLOCK = 256 * KIB;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const EDGE_KEYS = ['sp ace.txt', 'ünïcödé ☃.txt', 'a+b.txt', '100%.txt', '#hash.txt', 'q?x=1&y=2.txt'];

describe('GCS writes on fake-gcs-server', { concurrency: false }, () => {
  let server: TestServer;
  let store: ObjectStore;
  /**
   * fake-gcs-server applies ifGenerationMatch to resumable uploads from v1.55.0 on
   * (fsouza/fake-gcs-server#2260); measured here rather than assumed from the version.
   */
  let resumableConditions = true;

  before(async () => {
    server = await startServer('gcs');
    await server.createBucket('gw');
    store = await storeFor(server, 'gw');
    await server.putObject('gw', 'probe/taken', 'x');
    const probe = await store.startUpload('probe/taken', { ifAbsent: true });
    try {
      await store.completeUpload(probe, [await store.uploadPart(probe, 1, 0, Buffer.from('y'))]);
      resumableConditions = false;
    } catch (err) {
      assert.equal((err as { code?: string }).code, ErrorCodes.Stale);
    }
  });

  after(async () => server?.stop());

  const readAll = async (key: string): Promise<Buffer> => {
    const m = await store.head(key);
    assert.ok(m, `${key} exists`);
    return store.read(key, { start: 0, end: m.size });
  };

  /** Sends `body` in parts of `size` bytes, in order, then completes the upload. */
  const upload = async (key: string, body: Buffer, size: number) => {
    const up = await store.startUpload(key);
    const parts: UploadedPart[] = [];
    for (let n = 1, at = 0; at < body.length; n++, at += size) {
      parts.push(await store.uploadPart(up, n, at, body.subarray(at, at + size)));
    }
    return store.completeUpload(up, parts);
  };

  test('uploadShape: parts in order, of whole 256 KiB blocks, no part limit to speak of', () => {
    const shape = store.uploadShape;
    assert.equal(shape.minPartBytes, BLOCK);
    assert.equal(shape.partMultiple, BLOCK);
    assert.equal(shape.sequentialParts, true);
    assert.ok(shape.maxParts * shape.minPartBytes >= 5 * 1024 ** 4, 'parts enough for a 5 TiB object');
    assert.equal(shape.maxPutBytes, 16 * 1024 * KIB);
  });

  test('startUpload opens a resumable session: its URI is the upload id, the condition is kept', async () => {
    const up = await store.startUpload('session/a', { ifAbsent: true });
    const uri = new URL(up.id);
    assert.equal(uri.origin, server.endpoint);
    assert.equal(uri.searchParams.get('uploadType'), 'resumable');
    assert.ok(uri.searchParams.get('upload_id'));
    assert.deepEqual(up.condition, { ifAbsent: true });
    assert.equal(up.key, 'session/a');
    await store.abortUpload(up);
  });

  test('parts of whole blocks end with an empty request: the object appears only then', async () => {
    const body = randomBytes(3 * BLOCK);
    const up = await store.startUpload('blocks/exact.bin');
    const parts: UploadedPart[] = [];
    for (let n = 1; n <= 3; n++)
      parts.push(await store.uploadPart(up, n, (n - 1) * BLOCK, body.subarray((n - 1) * BLOCK, n * BLOCK)));
    assert.deepEqual(
      parts.map((p) => [p.number, p.size]),
      [
        [1, BLOCK],
        [2, BLOCK],
        [3, BLOCK],
      ],
    );
    assert.equal(await store.head('blocks/exact.bin'), undefined, 'nothing before completeUpload');
    const meta = await store.completeUpload(up, parts);
    assert.equal(meta.key, 'blocks/exact.bin');
    assert.equal(meta.size, body.length);
    assert.match(meta.generation ?? '', /^\d+$/);
    const headed = await store.head('blocks/exact.bin');
    assert.equal(headed?.generation, meta.generation);
    assert.equal(headed?.etag, meta.etag);
    assert.equal(sha(await readAll('blocks/exact.bin')), sha(body));
  });

  test('a last part that is not whole blocks: its end goes with the completing request', async () => {
    const body = randomBytes(2 * BLOCK + 300 * KIB + 7);
    const meta = await upload('blocks/tail.bin', body, 2 * BLOCK);
    assert.equal(meta.size, body.length);
    assert.equal(sha(await readAll('blocks/tail.bin')), sha(body));
    // A last part under one block: nothing goes until completeUpload.
    const small = randomBytes(BLOCK + 5);
    const up = await store.startUpload('blocks/small-tail.bin');
    const p1 = await store.uploadPart(up, 1, 0, small.subarray(0, BLOCK));
    const p2 = await store.uploadPart(up, 2, BLOCK, small.subarray(BLOCK));
    assert.equal(p2.size, 5);
    assert.equal(await store.head('blocks/small-tail.bin'), undefined);
    await store.completeUpload(up, [p1, p2]);
    assert.equal(sha(await readAll('blocks/small-tail.bin')), sha(small));
  });

  test('an object of a few bytes in parts, and an empty one', async () => {
    await upload('blocks/tiny', Buffer.from('tiny'), BLOCK);
    assert.equal((await readAll('blocks/tiny')).toString(), 'tiny');
    const up = await store.startUpload('blocks/empty');
    const meta = await store.completeUpload(up, []);
    assert.equal(meta.size, 0);
    assert.equal((await store.head('blocks/empty'))?.size, 0);
  });

  test('the part buffer may be reused once uploadPart resolved (part-pool.ts recycles them)', async () => {
    const body = randomBytes(BLOCK + 1000);
    const up = await store.startUpload('blocks/reused.bin');
    const buf = Buffer.from(body.subarray(BLOCK));
    const p1 = await store.uploadPart(up, 1, 0, body.subarray(0, BLOCK));
    const p2 = await store.uploadPart(up, 2, BLOCK, buf);
    buf.fill(0);
    await store.completeUpload(up, [p1, p2]);
    assert.equal(sha(await readAll('blocks/reused.bin')), sha(body));
  });

  test('a last part under one block sent again is harmless: it is sent once, with the total', async () => {
    const body = randomBytes(BLOCK + 999);
    const up = await store.startUpload('resend/tail.bin');
    const p1 = await store.uploadPart(up, 1, 0, body.subarray(0, BLOCK));
    await store.uploadPart(up, 2, BLOCK, body.subarray(BLOCK));
    const p2 = await store.uploadPart(up, 2, BLOCK, body.subarray(BLOCK));
    await store.completeUpload(up, [p1, p2]);
    assert.equal(sha(await readAll('resend/tail.bin')), sha(body));
  });

  test('a whole-block part sent again: fake-gcs-server appends it, and completeUpload says so', async () => {
    // GCS ignores resent bytes it already persisted (docs: resumable-uploads#resent-data), so there
    // the retry is harmless. fake-gcs-server appends every chunk whatever its Content-Range
    // (fakestorage/upload.go, uploadFileContent), and stores an object one part too long: the size
    // check of completeUpload turns that into an error instead of a quietly wrong file.
    const body = randomBytes(2 * BLOCK);
    const up = await store.startUpload('resend/block.bin');
    const p1 = await store.uploadPart(up, 1, 0, body.subarray(0, BLOCK));
    assert.deepEqual(await store.uploadPart(up, 1, 0, body.subarray(0, BLOCK)), p1, 'the resend is accepted (308)');
    const p2 = await store.uploadPart(up, 2, BLOCK, body.subarray(BLOCK));
    await assert.rejects(store.completeUpload(up, [p1, p2]), (err: Error & { code?: string }) => {
      assert.equal(err.code, ErrorCodes.Unknown);
      assert.match(err.message, /stored with 786432 bytes, 524288 were sent/);
      return true;
    });
  });

  test('parts out of shape are refused before any request', async () => {
    const up = await store.startUpload('shape/bad');
    await assert.rejects(store.uploadPart(up, 1, 0, Buffer.alloc(0)), { code: ErrorCodes.InvalidArgument });
    await store.uploadPart(up, 1, 0, randomBytes(1000));
    // A part after one that was not whole blocks: that one was not the last.
    await assert.rejects(store.uploadPart(up, 2, 1000, randomBytes(BLOCK)), { code: ErrorCodes.InvalidArgument });
    await assert.rejects(store.completeUpload(up, [{ number: 1, size: 999 }]), { code: ErrorCodes.InvalidArgument });
    await store.abortUpload(up);
  });

  test('abort: the session is dropped (499), again is no error, nothing appears', async () => {
    const up = await store.startUpload('abort/x.bin');
    await store.uploadPart(up, 1, 0, randomBytes(BLOCK));
    await store.abortUpload(up);
    await store.abortUpload(up);
    assert.equal(await store.head('abort/x.bin'), undefined);
    // A session the server does not know (404) is gone too.
    const unknown = { ...up, id: up.id.replace(/upload_id=[^&]+/, 'upload_id=nosuchupload') };
    await store.abortUpload(unknown);
    await assert.rejects(store.completeUpload(unknown, []), { code: ErrorCodes.NotFound });
    await assert.rejects(store.abortUpload({ key: 'k', id: 'not a uri' }), { code: ErrorCodes.InvalidArgument });
  });

  test('an upload if absent, or if it holds a version, is BFS_STALE_OBJECT at completion otherwise', async (t) => {
    if (!resumableConditions) {
      t.skip('this fake-gcs-server ignores ifGenerationMatch on resumable uploads (before v1.55.0)');
      return;
    }
    const v1 = await store.put('cond/up', Buffer.from('one'));
    const absent = await store.startUpload('cond/up', { ifAbsent: true }).catch((err) => err);
    if (!(absent instanceof Error)) {
      const part = await store.uploadPart(absent, 1, 0, Buffer.from('two'));
      await assert.rejects(store.completeUpload(absent, [part]), { code: ErrorCodes.Stale });
    } else assert.equal((absent as { code?: string }).code, ErrorCodes.Stale);
    await store.put('cond/up', Buffer.from('three'));
    const stale = await store.startUpload('cond/up', { ifMatch: { generation: v1.generation! } });
    const part = await store.uploadPart(stale, 1, 0, Buffer.from('four'));
    await assert.rejects(store.completeUpload(stale, [part]), { code: ErrorCodes.Stale });
    assert.equal((await readAll('cond/up')).toString(), 'three');
  });

  test('put: conditions by generation; an ETag alone cannot condition a GCS write', async () => {
    const v1 = await store.put('cond/put', Buffer.from('one'), { ifAbsent: true });
    assert.match(v1.generation ?? '', /^\d+$/);
    await assert.rejects(store.put('cond/put', Buffer.from('x'), { ifAbsent: true }), { code: ErrorCodes.Stale });
    const v2 = await store.put('cond/put', Buffer.from('two'), { ifMatch: { generation: v1.generation! } });
    assert.notEqual(v2.generation, v1.generation);
    await assert.rejects(store.put('cond/put', Buffer.from('x'), { ifMatch: { generation: v1.generation! } }), {
      code: ErrorCodes.Stale,
    });
    await assert.rejects(store.put('cond/put', Buffer.from('x'), { ifMatch: { etag: v2.etag } }), {
      code: ErrorCodes.InvalidArgument,
    });
    await assert.rejects(store.startUpload('cond/put', { ifMatch: { etag: v2.etag } }), {
      code: ErrorCodes.InvalidArgument,
    });
    assert.equal((await readAll('cond/put')).toString(), 'two');
  });

  test('put holds any bytes: a body containing what looks like a multipart boundary', async () => {
    const body = Buffer.concat([Buffer.from('\r\n--bucketfs-0000\r\n--\r\n'), randomBytes(70_000)]);
    const meta = await store.put('put/tricky', body);
    assert.equal(meta.size, body.length);
    assert.equal(sha(await readAll('put/tricky')), sha(body));
  });

  test('copy is pinned to the source generation: overwritten or deleted is BFS_STALE_OBJECT', async () => {
    const body = randomBytes(BLOCK + 3);
    const src = await store.put('copy/src', body);
    const copied = await store.copy(src, 'copy/dst');
    assert.equal(copied.key, 'copy/dst');
    assert.notEqual(copied.generation, src.generation);
    assert.equal(sha(await readAll('copy/dst')), sha(body));
    await store.put('copy/src', Buffer.from('new'));
    await assert.rejects(store.copy(src, 'copy/dst2'), { code: ErrorCodes.Stale });
    assert.equal(await store.head('copy/dst2'), undefined);
    await assert.rejects(store.copy({ ...src, generation: undefined }, 'copy/dst3'), {
      code: ErrorCodes.InvalidArgument,
    });
  });

  test('keys that need escaping, in put, copy, uploads and delete', async () => {
    for (const name of EDGE_KEYS) {
      const key = `edge/${name}`;
      const put = await store.put(key, Buffer.from(name));
      assert.equal((await readAll(key)).toString(), name, key);
      await store.copy(put, `${key}.copy`);
      assert.equal((await readAll(`${key}.copy`)).toString(), name);
      await upload(`${key}.up`, Buffer.from(name), BLOCK);
      assert.equal((await readAll(`${key}.up`)).toString(), name);
      for (const k of [key, `${key}.copy`, `${key}.up`]) await store.delete(k);
    }
    assert.deepEqual((await store.list('edge/')).objects, []);
  });

  test('delete of a missing key resolves; a write to a missing bucket is BFS_NO_SUCH_BUCKET', async () => {
    await store.delete('never/was');
    const other = await storeFor(server, 'no-such-bucket');
    await assert.rejects(other.put('k', Buffer.from('x')), { code: ErrorCodes.NoSuchBucket });
    await assert.rejects(other.startUpload('k'), { code: ErrorCodes.NoSuchBucket });
  });

  test('an unreachable endpoint is BFS_NETWORK; an aborted write is BFS_ABORTED', async () => {
    const gone = await storeFor(server, 'gw', { endpoint: `http://127.0.0.1:${await freePort()}` });
    await assert.rejects(gone.put('k', Buffer.from('x')), { code: ErrorCodes.Network });
    await assert.rejects(gone.startUpload('k'), { code: ErrorCodes.Network });
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(store.put('k', Buffer.from('x'), undefined, ac.signal), { code: ErrorCodes.Aborted });
    const up = await store.startUpload('aborted/part');
    const mid = new AbortController();
    const sending = store.uploadPart(up, 1, 0, randomBytes(64 * BLOCK), mid.signal);
    mid.abort();
    await assert.rejects(sending, { code: ErrorCodes.Aborted });
    await store.abortUpload(up);
  });

  test(
    'a server that stops answering fails a write with BFS_TIMEOUT after the request timeout',
    { timeout: 60_000 },
    async () => {
      const quick = await storeFor(server, 'gw', { requestTimeoutMs: 500 });
      const up = await quick.startUpload('stalled/x');
      await server.pause();
      try {
        const started = Date.now();
        await assert.rejects(quick.put('stalled/y', randomBytes(1000)), { code: ErrorCodes.Timeout });
        await assert.rejects(quick.uploadPart(up, 1, 0, randomBytes(8 * BLOCK)), { code: ErrorCodes.Timeout });
        assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
      } finally {
        server.resume();
      }
      await quick.abortUpload(up);
    },
  );

  test(
    'the request timeout is a stall timeout: a slow upload that keeps moving completes',
    { timeout: 60_000 },
    async () => {
      // A 32 MiB part through a proxy passing 256 KiB every 30 ms (8 MiB/s) takes 4 s, twice the
      // 2 s timeout: a deadline for the whole request would fail it. Measured here: writes are at
      // most 0.4 s apart, and what the kernels buffer (about 6 MiB) leaves in under a second after
      // the last one, so no gap comes near the timeout.
      const proxy = await throttledProxy(new URL(server.endpoint).port, BLOCK, 30);
      try {
        const slow = await storeFor(server, 'gw', {
          endpoint: `http://127.0.0.1:${proxy.port}`,
          requestTimeoutMs: 2_000,
        });
        const body = randomBytes(128 * BLOCK);
        const up = await slow.startUpload('slow/part.bin');
        const started = Date.now();
        const part = await slow.uploadPart(up, 1, 0, body);
        assert.ok(Date.now() - started > 3_000, `took only ${Date.now() - started} ms: not throttled`);
        const meta = await slow.completeUpload(up, [part]);
        assert.equal(meta.size, body.length);
        assert.equal(sha(await readAll('slow/part.bin')), sha(body));
      } finally {
        await proxy.close();
      }
    },
  );
});

/** A TCP proxy to 127.0.0.1:`port` that passes client bytes on at `bytes` per `everyMs`. */
async function throttledProxy(port: string, bytes: number, everyMs: number) {
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(port), '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    upstream.pipe(client);
    let queue = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      queue = Buffer.concat([queue, chunk]);
      if (queue.length > 4 * bytes) client.pause();
    });
    const timer = setInterval(() => {
      if (queue.length === 0) return;
      upstream.write(queue.subarray(0, bytes));
      queue = queue.subarray(bytes);
      if (queue.length <= 4 * bytes) client.resume();
    }, everyMs);
    client.on('close', () => {
      clearInterval(timer);
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    port: (proxy.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
