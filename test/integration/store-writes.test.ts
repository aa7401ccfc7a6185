// The write half of the store contract: every adapter, against every server. Each case checks what
// the server then holds (read back through the adapter and listed), not only what the call returned.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { crc32c } from '@node-rs/crc32';
import { ErrorCodes } from '../../src/errors.js';
import { type ObjectMeta, type ObjectStore, type UploadedPart, versionPin } from '../../src/store/types.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';
import { storeFor } from '../helpers/stores.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

for (const backend of ALL_BACKENDS) {
  describe(`store writes on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let store: ObjectStore;

    before(async () => {
      server = await startServer(backend);
      await server.createBucket('writes');
      store = await storeFor(server, 'writes');
    });

    after(async () => server?.stop());

    const readAll = async (key: string): Promise<Buffer> => {
      const m = await store.head(key);
      assert.ok(m, `${key} exists`);
      return store.read(key, { start: 0, end: m.size });
    };
    const listed = async (prefix: string): Promise<string[]> =>
      (await store.list(prefix)).objects.map((o) => o.key).sort();

    test('put stores the bytes; its answer is the version head and list then see', async () => {
      const body = randomBytes(100_003);
      const m = await store.put('put/a.bin', body);
      assert.equal(m.key, 'put/a.bin');
      assert.equal(m.size, body.length);
      const headed = await store.head('put/a.bin');
      assert.ok(headed);
      assert.equal(headed.etag, m.etag);
      assert.equal(headed.generation, m.generation);
      assert.equal(sha(await readAll('put/a.bin')), sha(body));
      assert.deepEqual(await listed('put/'), ['put/a.bin']);
      const empty = await store.put('put/empty', Buffer.alloc(0));
      assert.equal(empty.size, 0);
      assert.equal((await store.head('put/empty'))?.size, 0);
    });

    test('S3 uploads carry a CRC32C the server checks and keeps: one for a PUT, one per part', async (t) => {
      if (backend !== 'minio') {
        t.skip(`${backend} keeps no checksums (GCS uploads are checked by their own protocol)`);
        return;
      }
      const sdk = new S3Client({
        endpoint: server.endpoint,
        region: server.region,
        forcePathStyle: true,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      });
      const stored = async (key: string) =>
        (await sdk.send(new HeadObjectCommand({ Bucket: 'writes', Key: key, ChecksumMode: 'ENABLED' }))).ChecksumCRC32C;
      const b64 = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(n >>> 0);
        return b.toString('base64');
      };
      const body = randomBytes(200_001);
      await store.put('sum/put.bin', body);
      assert.equal(await stored('sum/put.bin'), b64(crc32c(body)));
      const a = randomBytes(5 * 1024 * 1024);
      const b = randomBytes(1000);
      const upload = await store.startUpload('sum/parts.bin');
      const parts = [await store.uploadPart(upload, 1, 0, a), await store.uploadPart(upload, 2, a.length, b)];
      assert.deepEqual(
        parts.map((p) => p.checksum),
        [b64(crc32c(a)), b64(crc32c(b))],
      );
      await store.completeUpload(upload, parts);
      assert.equal(sha(await readAll('sum/parts.bin')), sha(Buffer.concat([a, b])));
      // A checksum of the part checksums, S3's composite form.
      assert.match((await stored('sum/parts.bin')) ?? '', /-2$/);
      sdk.destroy();
    });

    test('put if absent: the first wins, the second is BFS_STALE_OBJECT and changes nothing', async (t) => {
      if (!server.quirks.conditionalWrite) {
        t.skip(`${backend} ignores write conditions`);
        return;
      }
      await store.put('cond/new', Buffer.from('first'), { ifAbsent: true });
      await assert.rejects(store.put('cond/new', Buffer.from('second'), { ifAbsent: true }), {
        code: ErrorCodes.Stale,
      });
      assert.equal((await readAll('cond/new')).toString(), 'first');
    });

    test('put if it holds the version read: an older version is BFS_STALE_OBJECT', async (t) => {
      if (!server.quirks.conditionalWrite) {
        t.skip(`${backend} ignores write conditions`);
        return;
      }
      const v1 = await store.put('cond/match', Buffer.from('one'));
      const v2 = await store.put('cond/match', Buffer.from('two'), { ifMatch: versionPin(v1) });
      await assert.rejects(store.put('cond/match', Buffer.from('three'), { ifMatch: versionPin(v1) }), {
        code: ErrorCodes.Stale,
      });
      assert.equal((await readAll('cond/match')).toString(), 'two');
      await store.put('cond/match', Buffer.from('four'), { ifMatch: versionPin(v2) });
      assert.equal((await readAll('cond/match')).toString(), 'four');
    });

    test('delete removes the object; a key already gone is no error', async () => {
      await store.put('del/x', Buffer.from('x'));
      await store.delete('del/x');
      assert.equal(await store.head('del/x'), undefined);
      await store.delete('del/x');
      await store.delete('del/never-there');
      assert.deepEqual(await listed('del/'), []);
    });

    test('copy makes the same bytes under a new key, pinned to the version read', async () => {
      const body = randomBytes(300_000);
      const src = await store.put('copy/src', body);
      const copied = await store.copy(src, 'copy/dst');
      assert.equal(copied.key, 'copy/dst');
      assert.equal(copied.size, body.length);
      assert.equal((await store.head('copy/dst'))?.etag, copied.etag);
      assert.equal(sha(await readAll('copy/dst')), sha(body));
      await store.put('copy/src', Buffer.from('changed'));
      if (server.quirks.conditionalWrite) {
        await assert.rejects(store.copy(src, 'copy/dst2'), { code: ErrorCodes.Stale });
        assert.equal(await store.head('copy/dst2'), undefined);
      }
      await store.delete('copy/src');
      await assert.rejects(store.copy(src, 'copy/dst3'), { code: ErrorCodes.Stale });
    });

    /** Sends `body` in parts of the store's smallest size, in the order (or all at once) the store allows. */
    const uploadParts = async (
      key: string,
      body: Buffer,
      resend: number[] = [],
      before?: ObjectMeta,
    ): Promise<UploadedPart[]> => {
      const upload = await store.startUpload(key);
      const size = store.uploadShape.minPartBytes;
      const send = (n: number) => store.uploadPart(upload, n, (n - 1) * size, body.subarray((n - 1) * size, n * size));
      const count = Math.ceil(body.length / size);
      const numbers = Array.from({ length: count }, (_, i) => i + 1);
      let parts: UploadedPart[] = [];
      if (store.uploadShape.sequentialParts) {
        for (const n of numbers) {
          parts.push(await send(n));
          if (resend.includes(n)) parts[parts.length - 1] = await send(n);
        }
      } else {
        parts = await Promise.all(numbers.map(send));
        for (const n of resend) parts[n - 1] = await send(n);
      }
      assert.equal((await store.head(key))?.etag, before?.etag, 'the object is as it was until the upload completes');
      assert.deepEqual(await listed(key), before ? [key] : [], 'nothing new is listed before the upload completes');
      const meta = await store.completeUpload(upload, parts);
      assert.equal(meta.size, body.length);
      return parts;
    };

    test('an upload in parts appears whole, and only once complete; a part sent again replaces itself', async () => {
      const size = store.uploadShape.minPartBytes;
      const body = randomBytes(3 * size + 12_345);
      const parts = await uploadParts('mpu/whole.bin', body, server.quirks.resentPartAppends ? [] : [2]);
      assert.equal(parts.length, 4);
      const headed = await store.head('mpu/whole.bin');
      assert.equal(headed?.size, body.length);
      assert.equal(sha(await readAll('mpu/whole.bin')), sha(body));
    });

    test('an upload if absent fails at completion when the key appeared meanwhile, leaving it as it was', async (t) => {
      if (!server.quirks.conditionalUpload) {
        t.skip(`${backend} ignores conditions on uploads in parts`);
        return;
      }
      const upload = await store.startUpload('mpu/raced', { ifAbsent: true });
      const part = await store.uploadPart(upload, 1, 0, Buffer.from('mine'));
      await store.put('mpu/raced', Buffer.from('theirs'));
      await assert.rejects(store.completeUpload(upload, [part]), { code: ErrorCodes.Stale });
      assert.equal((await readAll('mpu/raced')).toString(), 'theirs');
      await store.abortUpload(upload);
    });

    test('an aborted upload leaves nothing; aborting it again is no error', async () => {
      const upload = await store.startUpload('mpu/aborted');
      await store.uploadPart(upload, 1, 0, randomBytes(store.uploadShape.minPartBytes));
      await store.abortUpload(upload);
      await store.abortUpload(upload);
      assert.equal(await store.head('mpu/aborted'), undefined);
      assert.deepEqual(await listed('mpu/aborted'), []);
    });

    test('an overwrite in parts replaces the object; readers pinned to the old version see it stale', async () => {
      const old: ObjectMeta = await store.put('mpu/over', Buffer.from('old bytes'));
      const body = randomBytes(store.uploadShape.minPartBytes + 1);
      await uploadParts('mpu/over', body, [], old);
      assert.equal(sha(await readAll('mpu/over')), sha(body));
      if (server.quirks.conditionalRead) {
        await assert.rejects(store.read('mpu/over', { start: 0, end: 3 }, versionPin(old)), {
          code: ErrorCodes.Stale,
        });
      }
    });
  });
}
