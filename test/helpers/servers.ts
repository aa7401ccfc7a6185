// Real object-store servers for tests, each on a free loopback port with its own temp dir: MinIO and
// `rclone serve s3 :memory:` (S3), fake-gcs-server (GCS). Installed by scripts/install-servers.sh.
// Seeding goes through the real SDKs (@aws-sdk/client-s3, @google-cloud/storage), never mocks.
// Owns only the processes it spawned and their temp dirs; all are killed if the test process exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Storage } from '@google-cloud/storage';
import { freePort } from './mount.js';

export type BackendName = 'minio' | 'rclone' | 'gcs';

/**
 * Where a test server differs from S3/GCS, measured (docs/testing.md). Tests skip or adapt exactly
 * the assertions a quirk makes impossible, never more.
 */
export interface Quirks {
  /** A marker object "dir/" is listed as an empty object "dir", and no key can go under it (rclone). */
  markerListedAsFile: boolean;
  /**
   * What happens to a PUT of "a/b" while an object "a" exists (and of "a" while "a/b" exists):
   * 'stored' as on S3/GCS; 'refused' with a 500 InternalError (rclone); 'unlisted': both PUTs and
   * GETs succeed but LIST shows only "a" (MinIO).
   */
  fileBesidePrefix: 'stored' | 'refused' | 'unlisted';
  /** GET honours If-Match (S3) / ifGenerationMatch (GCS) with a 412. Only MinIO does. */
  conditionalRead: boolean;
  /**
   * PUT and upload completion honour If-None-Match: * / If-Match (S3), ifGenerationMatch (GCS) with a
   * 412, and a copy its source condition (x-amz-copy-source-if-match). rclone ignores them all.
   */
  conditionalWrite: boolean;
  /**
   * Upload completion honours the condition given when the upload started. fake-gcs-server v1.54
   * ignores ifGenerationMatch on resumable uploads (fixed in v1.55, #2260).
   */
  conditionalUpload: boolean;
  /**
   * A part sent again is appended instead of replacing itself: fake-gcs-server appends every chunk
   * of a resumable upload whatever its Content-Range (its PR #2056 is open). GCS ignores bytes it holds.
   */
  resentPartAppends: boolean;
  /**
   * A delimited listing repeats a common prefix on later pages: fake-gcs-server puts on every page
   * each prefix that sorts after the page token, and its maxResults counts objects only.
   */
  prefixesRepeatAcrossPages: boolean;
  /**
   * An upload in parts is answered with another ETag than HEAD then gives (rclone), so the version
   * it names is not the one a lookup finds: a copy cached under it is dropped at the first read.
   */
  completionEtagDiffers: boolean;
}

export interface TestServer {
  name: BackendName;
  kind: 's3' | 'gcs';
  quirks: Quirks;
  /** e.g. http://127.0.0.1:PORT */
  endpoint: string;
  /** For the s3 kinds; '' for gcs. */
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /**
   * What a child (the bucketfs daemon, an SDK) needs to talk to this server, and nothing inherited:
   * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION for s3; STORAGE_EMULATOR_HOST for gcs.
   */
  env: Record<string, string>;
  /** The server's stdout and stderr; deleted by stop() unless the server died by itself. */
  logFile: string;
  createBucket(name: string): Promise<void>;
  putObject(bucket: string, key: string, body: Buffer | string): Promise<void>;
  /** Uploads a local file of any size (1+ GiB) without holding it in memory: multipart on S3. */
  putFile(bucket: string, key: string, file: string): Promise<void>;
  /** Deletes an object; a missing one is not an error. */
  deleteObject(bucket: string, key: string): Promise<void>;
  /**
   * Many empty objects in one request where the server can (MinIO extracts an uploaded tar:
   * "snowball"); undefined elsewhere.
   */
  putEmptyObjects?(bucket: string, keys: string[]): Promise<void>;
  /**
   * Freezes the server process (SIGSTOP): connections hang, as with a stalled network. Resolves
   * once every thread of it is stopped: a stop is delivered to each thread as it next runs, and on
   * a loaded machine a thread already serving a request can answer one more in between.
   */
  pause(): Promise<void>;
  resume(): void;
  /** Kills the server, waits for it to exit (its port is then closed) and removes its temp dir. */
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

// rclone rejects very short access keys ("AK") as unknown: keep these long.
const ACCESS = 'bucketfs-test';
const SECRET = 'bucketfs-test-secret';
const REGION = 'us-east-1';
const READY_TIMEOUT_MS = 30_000;

// A crashed or interrupted test process must not leave servers behind holding ports, memory and
// temp dirs. 'exit' handlers must be synchronous.
const live = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of live) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  }
});

interface Proc {
  name: string;
  child: ChildProcess;
  dir: string;
  logFile: string;
  /** Set when the process exited before stop() asked it to. */
  died?: string;
  stopping: boolean;
  stopped?: Promise<void>;
}

/**
 * Spawns a server with an explicit environment: the machine's CA-bundle variables (AWS_CA_BUNDLE,
 * SSL_CERT_FILE, ...) and any AWS/GCP settings stay out. HOME is the temp dir so nothing reads or
 * writes the developer's config.
 */
async function spawnServer(
  name: string,
  cmd: string,
  args: (dir: string) => string[],
  env: Record<string, string>,
): Promise<Proc> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `bucketfs-${name}-`));
  const logFile = path.join(dir, 'server.log');
  const log = await open(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args(dir), {
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir, TMPDIR: dir, ...env },
      stdio: ['ignore', log.fd, log.fd],
    });
  } finally {
    await log.close();
  }
  const proc: Proc = { name, child, dir, logFile, stopping: false };
  live.set(child, dir);
  child.on('error', (err) => {
    proc.died = `could not start: ${err.message}`;
  });
  child.on('exit', (code, signal) => {
    live.delete(child);
    if (!proc.stopping) proc.died ??= `exited by itself (${signal ?? `code ${code}`})`;
  });
  return proc;
}

async function logTail(p: Proc): Promise<string> {
  const text = await readFile(p.logFile, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-8).join('\n');
}

/** Kills a process that failed to start, keeping its log for the error message. */
async function abandon(p: Proc, why: string): Promise<Error> {
  p.stopping = true;
  p.child.kill('SIGKILL');
  if (p.child.exitCode === null && p.child.signalCode === null && !p.died) await once(p.child, 'exit');
  await rm(path.join(p.dir, 'data'), { recursive: true, force: true });
  return new Error(`${p.name} ${why}; log kept at ${p.logFile}:\n${await logTail(p)}`);
}

/** One readiness request; a server that accepts but never answers must not stall the loop. */
async function probe(url: string): Promise<Response> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res;
}

async function waitReady(p: Proc, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.died) throw await abandon(p, p.died);
    if (await ready().catch(() => false)) return;
    await sleep(50);
  }
  throw await abandon(p, `did not answer within ${timeoutMs / 1000} s`);
}

/**
 * Starts a server on fresh free ports, again on new ports if another process took one between
 * freePort() and the server's bind (the only race left in this scheme).
 */
async function startOnFreePorts(
  start: (ports: number[]) => Promise<{ proc: Proc; ready: () => Promise<boolean> }>,
  portCount: number,
  readyTimeoutMs = READY_TIMEOUT_MS,
): Promise<{ proc: Proc; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < portCount; i++) ports.push(await freePort());
    const { proc, ready } = await start(ports);
    try {
      await waitReady(proc, ready, readyTimeoutMs);
      return { proc, ports };
    } catch (err) {
      if (attempt < 3 && /address already in use/i.test(String(err))) {
        await rm(proc.dir, { recursive: true, force: true });
        continue;
      }
      throw err;
    }
  }
}

function stopProc(p: Proc): Promise<void> {
  p.stopped ??= (async () => {
    p.stopping = true;
    if (!p.died && p.child.exitCode === null && p.child.signalCode === null) {
      const exited = once(p.child, 'exit');
      p.child.kill('SIGCONT'); // a paused server cannot act on SIGTERM
      p.child.kill('SIGTERM');
      // Unref'd: a pending grace timer must not hold the test process open after the exit.
      const grace = sleep(5000, false, { ref: false });
      if (!(await Promise.race([exited.then(() => true), grace]))) {
        p.child.kill('SIGKILL');
        await exited;
      }
    }
    if (p.died) {
      await rm(path.join(p.dir, 'data'), { recursive: true, force: true });
      process.stderr.write(`test server ${p.name} ${p.died} before stop(); log kept at ${p.logFile}\n`);
      return;
    }
    await rm(p.dir, { recursive: true, force: true });
  })();
  return p.stopped;
}

async function untilStopped(pid: number | undefined): Promise<void> {
  if (pid === undefined) throw new Error('untilStopped: the server has no pid');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const tasks = await readdir(`/proc/${pid}/task`);
    const states = await Promise.all(
      // The state is the first field after the parenthesised command name, which may hold spaces.
      tasks.map(
        async (t) => (await readFile(`/proc/${pid}/task/${t}/stat`, 'utf8').catch(() => ') T')).split(') ')[1]?.[0],
      ),
    );
    if (states.every((st) => st === 'T' || st === 't')) return;
    if (Date.now() > deadline)
      throw new Error(`server ${pid} not stopped after 10 s: thread states ${states.join('')}`);
    await sleep(5);
  }
}

function lifecycle(p: Proc): Pick<TestServer, 'logFile' | 'pause' | 'resume' | 'stop'> {
  return {
    logFile: p.logFile,
    pause: async () => {
      p.child.kill('SIGSTOP');
      await untilStopped(p.child.pid);
    },
    resume: () => p.child.kill('SIGCONT'),
    stop: () => stopProc(p),
  };
}

// ---- S3: MinIO and rclone ----

function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: REGION,
    // rclone serves path-style only by default; MinIO does both. Clients here always use path-style.
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET },
    // Newer SDKs add CRC32 checksums to every PUT; not every server accepts them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

// Big enough that a 1 GiB file is 16 parts; small enough to hold one part in memory at a time.
const PART_SIZE = 64 * 1024 * 1024;

function s3Server(name: BackendName, endpoint: string, proc: Proc, quirks: Quirks): TestServer {
  const s3 = s3Client(endpoint);
  const fail = (what: string) => (err: Error) => {
    throw new Error(`${name}: ${what} failed: ${err.name}: ${err.message} (server log ${proc.logFile})`, {
      cause: err,
    });
  };
  const server: TestServer = {
    name,
    kind: 's3',
    quirks,
    endpoint,
    accessKeyId: ACCESS,
    secretAccessKey: SECRET,
    region: REGION,
    env: { AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: REGION },
    ...lifecycle(proc),
    async createBucket(bucket) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch(fail(`create bucket ${bucket}`));
    },
    async putObject(bucket, key, body) {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      await s3
        .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: buf, ContentLength: buf.length }))
        .catch(fail(`PUT ${bucket}/${key}`));
    },
    async putFile(bucket, key, file) {
      const size = (await stat(file)).size;
      if (size <= PART_SIZE) return server.putObject(bucket, key, await readFile(file));
      const { UploadId } = await s3
        .send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
        .catch(fail(`create multipart upload ${bucket}/${key}`));
      const fh = await open(file);
      try {
        const parts: { PartNumber: number; ETag: string }[] = [];
        // A Buffer per part, not a stream: the SDK can then retry a part.
        const buf = Buffer.allocUnsafe(PART_SIZE);
        for (let n = 1, off = 0; off < size; n++, off += PART_SIZE) {
          const len = Math.min(PART_SIZE, size - off);
          const { bytesRead } = await fh.read(buf, 0, len, off);
          if (bytesRead !== len) throw new Error(`${file}: short read at ${off}`);
          const r = await s3
            .send(
              new UploadPartCommand({
                Bucket: bucket,
                Key: key,
                UploadId,
                PartNumber: n,
                Body: buf.subarray(0, len),
                ContentLength: len,
              }),
            )
            .catch(fail(`upload part ${n} of ${bucket}/${key}`));
          parts.push({ PartNumber: n, ETag: r.ETag ?? '' });
        }
        await s3
          .send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: key,
              UploadId,
              MultipartUpload: { Parts: parts },
            }),
          )
          .catch(fail(`complete multipart upload ${bucket}/${key}`));
      } catch (err) {
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => {});
        throw err;
      } finally {
        await fh.close();
      }
    },
    async deleteObject(bucket, key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(fail(`DELETE ${bucket}/${key}`));
    },
    async stop() {
      s3.destroy();
      await stopProc(proc);
    },
  };
  return server;
}

async function startMinio(): Promise<TestServer> {
  const bin = toolsBin('minio');
  const { proc, ports } = await startOnFreePorts(async ([port, consolePort]) => {
    const proc = await spawnServer(
      'minio',
      bin,
      (dir) => [
        'server',
        path.join(dir, 'data'),
        '--address',
        `127.0.0.1:${port}`,
        '--console-address',
        `127.0.0.1:${consolePort}`,
        '--quiet',
      ],
      { MINIO_ROOT_USER: ACCESS, MINIO_ROOT_PASSWORD: SECRET, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' },
    );
    return { proc, ready: async () => (await probe(`http://127.0.0.1:${port}/minio/health/live`)).ok };
  }, 2);
  const endpoint = `http://127.0.0.1:${ports[0]}`;
  const server = s3Server('minio', endpoint, proc, {
    markerListedAsFile: false,
    fileBesidePrefix: 'unlisted',
    conditionalRead: true,
    conditionalWrite: true,
    conditionalUpload: true,
    resentPartAppends: false,
    prefixesRepeatAcrossPages: false,
    completionEtagDiffers: false,
  });
  server.putEmptyObjects = (bucket, keys) => putSnowball(endpoint, bucket, keys);
  return server;
}

/** Uploads a tar of empty files that MinIO unpacks into one object per entry. */
async function putSnowball(endpoint: string, bucket: string, keys: string[]): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-snowball-'));
  const s3 = s3Client(endpoint);
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
    const [code] = (await once(tar, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`tar exited ${code}`);
    const body = await readFile(path.join(dir, 'all.tar'));
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'snowball.tar',
        Body: body,
        ContentLength: body.length,
        Metadata: { 'snowball-auto-extract': 'true' },
      }),
    );
  } finally {
    s3.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

async function startRclone(): Promise<TestServer> {
  const bin = toolsBin('rclone');
  const { proc, ports } = await startOnFreePorts(async ([port]) => {
    // :memory: keeps objects by key like a bucket; a local directory backend is worse (measured: a
    // marker "m2/" over existing keys lists "m2" as a file). --config /dev/null: no rclone.conf is
    // read or written. The VFS cache stays off so bytes go straight to the backend.
    const proc = await spawnServer(
      'rclone',
      bin,
      () => [
        'serve',
        's3',
        ':memory:',
        '--addr',
        `127.0.0.1:${port}`,
        '--auth-key',
        `${ACCESS},${SECRET}`,
        '--force-path-style=true',
        '--vfs-cache-mode',
        'off',
        '--config',
        '/dev/null',
      ],
      {},
    );
    // Any answer will do (unsigned, it is a 403): the memory backend has nothing to load.
    return { proc, ready: async () => (await probe(`http://127.0.0.1:${port}/`)).status > 0 };
  }, 1);
  return s3Server('rclone', `http://127.0.0.1:${ports[0]}`, proc, {
    markerListedAsFile: true,
    fileBesidePrefix: 'refused',
    conditionalRead: false,
    conditionalWrite: false,
    conditionalUpload: false,
    resentPartAppends: false,
    prefixesRepeatAcrossPages: false,
    completionEtagDiffers: true,
  });
}

// ---- GCS: fake-gcs-server ----

/**
 * A @google-cloud/storage client for the emulator without credentials. The library reads
 * STORAGE_EMULATOR_HOST itself and then uses it as the JSON API base URL verbatim (no /storage/v1:
 * every call 404s against fake-gcs-server), so it must not see that variable.
 */
function gcsClient(endpoint: string): Storage {
  const saved = process.env.STORAGE_EMULATOR_HOST;
  delete process.env.STORAGE_EMULATOR_HOST;
  try {
    return new Storage({ apiEndpoint: endpoint, projectId: 'test', useAuthWithCustomEndpoint: false });
  } finally {
    if (saved !== undefined) process.env.STORAGE_EMULATOR_HOST = saved;
  }
}

/**
 * A one-request media upload streamed from disk. Measured for 1 GiB on the memory backend:
 * 10 s and a 2.6 GiB server peak here; the library's multipart upload (resumable: false) took 13 s
 * and 4.7 GiB, its resumable upload 16 s and 4.3 GiB; fetch() with a stream body buffered the whole
 * file in this process.
 */
async function gcsMediaUpload(endpoint: string, bucket: string, key: string, file: string): Promise<void> {
  const size = (await stat(file)).size;
  const url = `${endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=media&name=${encodeURIComponent(key)}`;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': size } },
      resolve,
    );
    req.on('error', reject);
    pipeline(createReadStream(file), req).catch(reject);
  });
  let body = '';
  for await (const chunk of res) body += chunk;
  if (res.statusCode !== 200) throw new Error(`upload of ${bucket}/${key}: HTTP ${res.statusCode} ${body}`);
}

async function startFakeGcs(preload?: Preload): Promise<TestServer> {
  const bin = toolsBin('fake-gcs-server');
  // fake-gcs-server's memory backend scans every object on each insert, and each upload is an HTTP
  // round trip: 20,000 uploads take minutes. Objects written to a directory it loads at start-up
  // (-data: <dir>/<bucket>/<key>) are in place in a fraction of that.
  const data = preload ? await mkdtemp(path.join(os.tmpdir(), 'bucketfs-gcs-preload-')) : undefined;
  let count = 0;
  if (preload && data) {
    const { writeTree } = await import('./data.js');
    count = await writeTree(path.join(data, preload.bucket), preload.objects);
  }
  const { proc, ports } = await startOnFreePorts(
    async ([port]) => {
      // The memory backend holds a 1 GiB object fine (2.6 GiB peak); the filesystem one is no faster.
      // -public-host makes the URLs it hands out (mediaLink, upload Location) point back here.
      const proc = await spawnServer(
        'fake-gcs-server',
        bin,
        () => [
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
          ...(data ? ['-data', data] : []),
        ],
        {},
      );
      return { proc, ready: async () => (await probe(`http://127.0.0.1:${port}/storage/v1/b`)).ok };
      // Loading is quadratic in the object count too: about 50 s for 20,000 here.
    },
    1,
    READY_TIMEOUT_MS + 10 * count,
  );
  if (data) await rm(data, { recursive: true, force: true });
  const endpoint = `http://127.0.0.1:${ports[0]}`;
  const gcs = gcsClient(endpoint);
  const fail = (what: string) => (err: Error & { code?: unknown }) => {
    throw new Error(`gcs: ${what} failed: ${err.code ?? ''} ${err.message} (server log ${proc.logFile})`, {
      cause: err,
    });
  };
  return {
    name: 'gcs',
    kind: 'gcs',
    quirks: {
      markerListedAsFile: false,
      fileBesidePrefix: 'stored',
      conditionalRead: false,
      conditionalWrite: true,
      conditionalUpload: false,
      resentPartAppends: true,
      prefixesRepeatAcrossPages: true,
      completionEtagDiffers: false,
    },
    endpoint,
    accessKeyId: '',
    secretAccessKey: '',
    region: '',
    env: { STORAGE_EMULATOR_HOST: endpoint },
    ...lifecycle(proc),
    async createBucket(bucket) {
      await gcs.createBucket(bucket).catch(fail(`create bucket ${bucket}`));
    },
    async putObject(bucket, key, body) {
      await gcs
        .bucket(bucket)
        .file(key)
        .save(typeof body === 'string' ? Buffer.from(body) : body, { resumable: false })
        .catch(fail(`upload ${bucket}/${key}`));
    },
    async putFile(bucket, key, file) {
      await gcsMediaUpload(endpoint, bucket, key, file).catch(fail(`upload ${bucket}/${key} from ${file}`));
    },
    async deleteObject(bucket, key) {
      await gcs
        .bucket(bucket)
        .file(key)
        .delete({ ignoreNotFound: true })
        .catch(fail(`delete ${bucket}/${key}`));
    },
  };
}

/** A bucket to create with these objects before the server is handed out. */
export interface Preload {
  bucket: string;
  objects: Iterable<[string, Buffer | string]>;
}

/**
 * Starts a server on loopback. With `preload`, the bucket exists and holds the objects when this
 * resolves, put there the fastest way the server allows.
 */
export async function startServer(name: BackendName, preload?: Preload): Promise<TestServer> {
  if (name === 'gcs') return startFakeGcs(preload);
  const server = name === 'minio' ? await startMinio() : await startRclone();
  if (preload) {
    const { putMany } = await import('./data.js');
    await server.createBucket(preload.bucket);
    await putMany(server, preload.bucket, preload.objects, 64);
  }
  return server;
}
