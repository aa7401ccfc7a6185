// Real object-store servers for tests, each on a free loopback port with its own temp data dir:
// MinIO and `rclone serve s3` (S3) and fake-gcs-server (GCS). Installed by scripts/install-servers.sh.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { freePort, sleep } from './mount.js';

// The AWS SDK warns on stderr about Node < 22; tests read stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export type BackendName = 'minio' | 'rclone' | 'gcs';

/**
 * Where a test server differs from S3/GCS, measured (see docs/testing.md). Tests skip exactly the
 * assertions a quirk makes impossible, never more.
 */
export interface Quirks {
  /** A marker object "dir/" is listed as an empty object "dir" (rclone: markers become directories). */
  markerListedAsFile: boolean;
}

export interface TestServer {
  name: BackendName;
  quirks: Quirks;
  kind: 's3' | 'gcs';
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** What a bucketfs child needs to talk to this server, and nothing inherited. */
  env: Record<string, string>;
  createBucket(name: string): Promise<void>;
  putObject(bucket: string, key: string, body: Buffer | string): Promise<void>;
  /** Streams a large local file up (multipart on S3). */
  putFile(bucket: string, key: string, file: string): Promise<void>;
  deleteObject(bucket: string, key: string): Promise<void>;
  /**
   * Many empty objects in one request where the server can (MinIO extracts an uploaded tar:
   * "snowball"); undefined elsewhere.
   */
  putEmptyObjects?(bucket: string, keys: string[]): Promise<void>;
  /** Freezes the server process (SIGSTOP): connections hang, as with a stalled network. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export const ALL_BACKENDS: BackendName[] = (process.env.BUCKETFS_TEST_BACKENDS ?? 'minio,rclone,gcs')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is BackendName => s === 'minio' || s === 'rclone' || s === 'gcs');

const TOOLS = process.env.BUCKETFS_TOOLS ?? path.join(os.homedir(), '.cache', 'bucketfs', 'tools');

/** Path of an installed test tool; a clear error when scripts/install-servers.sh has not run. */
export function toolsBin(name: string): string {
  const p = path.join(TOOLS, 'bin', name);
  if (!existsSync(p)) throw new Error(`${p} is missing: run bash scripts/install-servers.sh (or scripts/setup.sh)`);
  return p;
}

const ACCESS = 'bucketfs-test';
const SECRET = 'bucketfs-test-secret';

interface Proc {
  child: ChildProcess;
  dir: string;
  logFile: string;
}

async function startProc(cmd: string, args: string[], env: Record<string, string>): Promise<Proc> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-server-'));
  const logFile = path.join(dir, 'server.log');
  const log = await open(logFile, 'a');
  const child = spawn(
    cmd,
    args.map((a) => a.replace('{dir}', dir)),
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env },
      stdio: ['ignore', log.fd, log.fd],
    },
  );
  await log.close();
  return { child, dir, logFile };
}

async function waitReady(p: Proc, probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (p.child.exitCode !== null) throw new Error(`${what} exited (${p.child.exitCode}); see ${p.logFile}`);
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} did not become ready in 30 s; see ${p.logFile}`);
}

async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) {
    const exited = once(p.child, 'exit');
    p.child.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
    if (!done) {
      p.child.kill('SIGKILL');
      await exited;
    }
  }
  await rm(p.dir, { recursive: true, force: true });
}

function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

const NO_QUIRKS: Quirks = { markerListedAsFile: false };

function s3Server(name: BackendName, endpoint: string, proc: Proc, quirks = NO_QUIRKS): TestServer {
  const s3 = s3Client(endpoint);
  return {
    name,
    quirks,
    kind: 's3',
    endpoint,
    accessKeyId: ACCESS,
    secretAccessKey: SECRET,
    region: 'us-east-1',
    env: { AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1' },
    async createBucket(bucket) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    },
    async putObject(bucket, key, body) {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      await s3
        .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: buf, ContentLength: buf.length }))
        .catch((err) => {
          throw new Error(`${name}: PUT ${bucket}/${key} failed: ${err.name}: ${err.message}`, { cause: err });
        });
    },
    async putFile(bucket, key, file) {
      const size = (await stat(file)).size;
      const part = 64 * 1024 * 1024;
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const parts: { PartNumber: number; ETag: string }[] = [];
      const fh = await open(file);
      try {
        for (let n = 0; n * part < size; n++) {
          const len = Math.min(part, size - n * part);
          const buf = Buffer.allocUnsafe(len);
          await fh.read(buf, 0, len, n * part);
          const r = await s3.send(
            new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n + 1, Body: buf }),
          );
          parts.push({ PartNumber: n + 1, ETag: r.ETag ?? '' });
        }
      } finally {
        await fh.close();
      }
      await s3.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
      );
    },
    async deleteObject(bucket, key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    pause: () => proc.child.kill('SIGSTOP'),
    resume: () => proc.child.kill('SIGCONT'),
    async stop() {
      s3.destroy();
      proc.child.kill('SIGCONT');
      await stopProc(proc);
    },
  };
}

async function startMinio(): Promise<TestServer> {
  const port = await freePort();
  const proc = await startProc(
    toolsBin('minio'),
    [
      'server',
      '{dir}/data',
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${await freePort()}`,
      '--quiet',
    ],
    { MINIO_ROOT_USER: ACCESS, MINIO_ROOT_PASSWORD: SECRET, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  await waitReady(proc, async () => (await fetch(`${endpoint}/minio/health/live`)).ok, 'minio');
  const server = s3Server('minio', endpoint, proc);
  server.putEmptyObjects = async (bucket, keys) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-snowball-'));
    try {
      for (let i = 0; i < keys.length; i += 1000) {
        await Promise.all(
          keys.slice(i, i + 1000).map(async (k) => {
            await mkdir(path.dirname(path.join(dir, 'tree', k)), { recursive: true });
            await writeFile(path.join(dir, 'tree', k), '');
          }),
        );
      }
      const tar = spawn('tar', ['cf', path.join(dir, 'all.tar'), '-C', path.join(dir, 'tree'), '.'], {
        stdio: 'ignore',
      });
      const [code] = (await once(tar, 'exit')) as [number];
      if (code !== 0) throw new Error(`tar exited ${code}`);
      const body = await readFile(path.join(dir, 'all.tar'));
      const s3 = s3Client(endpoint);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'snowball.tar',
          Body: body,
          ContentLength: body.length,
          Metadata: { 'snowball-auto-extract': 'true' },
        }),
      );
      s3.destroy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  return server;
}

async function startRclone(): Promise<TestServer> {
  const port = await freePort();
  // :memory: keeps objects by key like a real bucket (a local directory could not hold "a" and "a/b").
  const proc = await startProc(
    toolsBin('rclone'),
    [
      'serve',
      's3',
      ':memory:',
      '--addr',
      `127.0.0.1:${port}`,
      '--auth-key',
      `${ACCESS},${SECRET}`,
      '--config',
      '{dir}/rclone.conf',
    ],
    {},
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const s3 = s3Client(endpoint);
  await waitReady(
    proc,
    async () => {
      await s3.send(new CreateBucketCommand({ Bucket: 'ready-probe' }));
      return true;
    },
    'rclone serve s3',
  );
  s3.destroy();
  return s3Server('rclone', endpoint, proc, { markerListedAsFile: true });
}

async function startFakeGcs(): Promise<TestServer> {
  const port = await freePort();
  const proc = await startProc(
    toolsBin('fake-gcs-server'),
    [
      '-scheme',
      'http',
      '-host',
      '127.0.0.1',
      '-port',
      String(port),
      '-backend',
      'memory',
      '-public-host',
      `127.0.0.1:${port}`,
      '-log-level',
      'warn',
    ],
    {},
  );
  const endpoint = `http://127.0.0.1:${port}`;
  await waitReady(proc, async () => (await fetch(`${endpoint}/storage/v1/b`)).ok, 'fake-gcs-server');
  const api = `${endpoint}/storage/v1`;
  const upload = async (bucket: string, key: string, body: Buffer | string | NodeJS.ReadableStream, size?: number) => {
    const res = await fetch(
      `${endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=media&name=${encodeURIComponent(key)}`,
      {
        method: 'POST',
        body: body as unknown as Blob,
        headers: {
          'content-type': 'application/octet-stream',
          ...(size !== undefined ? { 'content-length': String(size) } : {}),
        },
        ...(typeof body === 'object' && !Buffer.isBuffer(body) ? { duplex: 'half' } : {}),
      } as RequestInit,
    );
    if (!res.ok) throw new Error(`fake-gcs upload ${key}: ${res.status} ${await res.text()}`);
  };
  return {
    name: 'gcs',
    quirks: NO_QUIRKS,
    kind: 'gcs',
    endpoint,
    accessKeyId: '',
    secretAccessKey: '',
    region: '',
    env: { STORAGE_EMULATOR_HOST: endpoint },
    async createBucket(bucket) {
      const res = await fetch(`${api}/b?project=test`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: bucket }),
      });
      if (!res.ok) throw new Error(`fake-gcs create bucket ${bucket}: ${res.status} ${await res.text()}`);
    },
    async putObject(bucket, key, body) {
      await upload(bucket, key, typeof body === 'string' ? Buffer.from(body) : body);
    },
    async putFile(bucket, key, file) {
      const size = (await stat(file)).size;
      const { Readable } = await import('node:stream');
      await upload(bucket, key, Readable.toWeb(createReadStream(file)) as unknown as NodeJS.ReadableStream, size);
    },
    async deleteObject(bucket, key) {
      const res = await fetch(`${api}/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(key)}`, {
        method: 'DELETE',
      });
      if (!res.ok && res.status !== 404) throw new Error(`fake-gcs delete ${key}: ${res.status}`);
    },
    pause: () => proc.child.kill('SIGSTOP'),
    resume: () => proc.child.kill('SIGCONT'),
    stop: () => {
      proc.child.kill('SIGCONT');
      return stopProc(proc);
    },
  };
}

export function startServer(name: BackendName): Promise<TestServer> {
  if (name === 'minio') return startMinio();
  if (name === 'rclone') return startRclone();
  return startFakeGcs();
}
