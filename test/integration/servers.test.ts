// Proves the test-server helpers: each server in ALL_BACKENDS starts, takes the seeding calls, and
// answers the real SDK as other tests expect (awkward keys, markers, paging), then stop() closes
// its port and removes its temp dir. The servers' measured quirks are asserted, not skipped, so a
// new server version that changes one fails here first.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Storage } from '@google-cloud/storage';
import { putMany } from '../helpers/data.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const BUCKET = 'helpers';
const EDGE_KEYS = ['sp ace.txt', 'ünïcödé ☃.txt', 'a+b.txt', '100%.txt', '#hash.txt', 'q?x=1&y.txt', 'tab\there'];
const MANY = 2500;

interface Listing {
  keys: string[];
  prefixes: string[];
  pages: number;
}

/** Reads through the real SDK, configured only from the TestServer's public fields. */
interface Reader {
  get(key: string): Promise<Buffer>;
  list(prefix: string, pageSize: number): Promise<Listing>;
  close(): void;
}

function s3Reader(server: TestServer): Reader {
  const s3 = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    async get(key) {
      const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      return Buffer.from(await (r.Body as NonNullable<typeof r.Body>).transformToByteArray());
    },
    async list(prefix, pageSize) {
      const out: Listing = { keys: [], prefixes: [], pages: 0 };
      let token: string | undefined;
      do {
        const r = await s3.send(
          new ListObjectsV2Command({
            Bucket: BUCKET,
            Prefix: prefix,
            Delimiter: '/',
            MaxKeys: pageSize,
            ContinuationToken: token,
          }),
        );
        out.pages++;
        out.keys.push(...(r.Contents ?? []).map((o) => o.Key ?? ''));
        out.prefixes.push(...(r.CommonPrefixes ?? []).map((p) => p.Prefix ?? ''));
        token = r.NextContinuationToken;
      } while (token);
      return out;
    },
    close: () => s3.destroy(),
  };
}

function gcsReader(server: TestServer): Reader {
  const bucket = new Storage({
    apiEndpoint: server.endpoint,
    projectId: 'test',
    useAuthWithCustomEndpoint: false,
  }).bucket(BUCKET);
  return {
    async get(key) {
      return (await bucket.file(key).download())[0];
    },
    async list(prefix, pageSize) {
      const out: Listing = { keys: [], prefixes: [], pages: 0 };
      let pageToken: string | undefined;
      do {
        const [files, , resp] = await bucket.getFiles({
          prefix,
          delimiter: '/',
          maxResults: pageSize,
          autoPaginate: false,
          ...(pageToken ? { pageToken } : {}),
        });
        const r = (resp ?? {}) as { prefixes?: string[]; nextPageToken?: string };
        out.pages++;
        out.keys.push(...files.map((f) => f.name));
        out.prefixes.push(...(r.prefixes ?? []));
        pageToken = r.nextPageToken;
      } while (pageToken);
      return out;
    },
    close: () => {},
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

for (const backend of ALL_BACKENDS) {
  describe(`test server ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let reader: Reader;

    before(async () => {
      server = await startServer(backend);
      reader = server.kind === 's3' ? s3Reader(server) : gcsReader(server);
      await server.createBucket(BUCKET);
    });

    after(async () => {
      reader?.close();
      await server?.stop();
    });

    test('describes itself: loopback endpoint, credentials and a clean child env', () => {
      assert.match(server.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(existsSync(server.logFile), server.logFile);
      if (server.kind === 's3') {
        assert.ok(server.accessKeyId && server.secretAccessKey && server.region);
        assert.deepEqual(server.env, {
          AWS_ACCESS_KEY_ID: server.accessKeyId,
          AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
          AWS_REGION: server.region,
        });
      } else {
        assert.deepEqual(server.env, { STORAGE_EMULATOR_HOST: server.endpoint });
      }
    });

    test('keys with unicode, space, +, %, #, ? and tab round-trip', async () => {
      for (const k of EDGE_KEYS) await server.putObject(BUCKET, `edge/${k}`, `body of ${k}`);
      for (const k of EDGE_KEYS) assert.equal((await reader.get(`edge/${k}`)).toString(), `body of ${k}`, k);
      const listed = await reader.list('edge/', 1000);
      assert.deepEqual(listed.keys.sort(), EDGE_KEYS.map((k) => `edge/${k}`).sort());
    });

    test('a directory marker "dir/"', async () => {
      await server.putObject(BUCKET, 'mk/dir/', '');
      if (server.quirks.markerListedAsFile) {
        // rclone: the marker becomes an empty object "dir", which then blocks any key below it.
        assert.deepEqual(await reader.list('mk/', 1000), { keys: ['mk/dir'], prefixes: [], pages: 1 });
        await assert.rejects(server.putObject(BUCKET, 'mk/dir/child', 'c'), /InternalError/);
        return;
      }
      await server.putObject(BUCKET, 'mk/dir/child', 'c');
      assert.deepEqual(await reader.list('mk/', 1000), { keys: [], prefixes: ['mk/dir/'], pages: 1 });
      assert.deepEqual((await reader.list('mk/dir/', 1000)).keys, ['mk/dir/', 'mk/dir/child']);
      assert.equal((await reader.get('mk/dir/')).length, 0);
    });

    test('an object "a" beside keys under "a/"', async () => {
      await server.putObject(BUCKET, 'fp/a', 'A');
      const below = server.putObject(BUCKET, 'fp/a/b', 'B');
      switch (server.quirks.fileBesidePrefix) {
        case 'refused':
          await assert.rejects(below, /InternalError/);
          assert.deepEqual((await reader.list('fp/', 1000)).keys, ['fp/a']);
          break;
        case 'unlisted':
          await below;
          assert.equal((await reader.get('fp/a/b')).toString(), 'B');
          assert.deepEqual(await reader.list('fp/', 1000), { keys: ['fp/a'], prefixes: [], pages: 1 });
          break;
        case 'stored':
          await below;
          assert.equal((await reader.get('fp/a/b')).toString(), 'B');
          assert.deepEqual(await reader.list('fp/', 1000), { keys: ['fp/a'], prefixes: ['fp/a/'], pages: 1 });
          break;
      }
      assert.equal((await reader.get('fp/a')).toString(), 'A');
    });

    test(`a delimiter listing pages through ${MANY} keys`, async () => {
      const objects = function* (): Generator<[string, string]> {
        for (let i = 0; i < MANY; i++) yield [`many/k${String(i).padStart(5, '0')}`, String(i)];
        yield ['many/sub/x', 'x'];
      };
      await putMany(server, BUCKET, objects(), 32);
      const all = await reader.list('many/', 1000);
      assert.equal(all.keys.length, MANY);
      assert.equal(new Set(all.keys).size, MANY);
      assert.deepEqual(all.keys, [...all.keys].sort());
      assert.ok(all.pages >= 3, `${all.pages} pages of 1,000`);
      // "many/sub/" sorts after every key: S3 gives it once, on the last page.
      const repeats = server.quirks.prefixesRepeatAcrossPages ? all.pages : 1;
      assert.deepEqual(all.prefixes, Array(repeats).fill('many/sub/'));
      const small = await reader.list('many/', 700);
      assert.deepEqual(small.keys, all.keys);
      assert.ok(small.pages >= 4, `${small.pages} pages of 700`);
    });

    test('putFile streams a multi-part file; deleteObject removes it', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-servers-test-'));
      try {
        // 130 MiB: three S3 parts of 64 + 64 + 2 MiB.
        const file = path.join(dir, 'big.bin');
        const hash = createHash('sha256');
        await pipeline(
          (function* () {
            for (let i = 0; i < 65; i++) {
              const chunk = randomBytes(2 * 1024 * 1024);
              hash.update(chunk);
              yield chunk;
            }
          })(),
          createWriteStream(file),
        );
        await server.putFile(BUCKET, 'big/file.bin', file);
        const got = await reader.get('big/file.bin');
        assert.equal(got.length, 130 * 1024 * 1024);
        assert.equal(createHash('sha256').update(got).digest('hex'), hash.digest('hex'));
        await server.deleteObject(BUCKET, 'big/file.bin');
        await server.deleteObject(BUCKET, 'big/never-existed');
        assert.deepEqual((await reader.list('big/', 1000)).keys, []);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test('stop() closes the port and removes the temp dir; a second stop() is harmless', async () => {
      const port = Number(new URL(server.endpoint).port);
      assert.equal(await portOpen(port), true);
      reader.close();
      await server.stop();
      assert.equal(await portOpen(port), false);
      assert.equal(existsSync(path.dirname(server.logFile)), false);
      await server.stop();
    });
  });
}
