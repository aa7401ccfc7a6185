// Ranged reads through bucketfs's own store adapter, no FUSE: builds compared back to back on one
// test server and one object, rounds alternating so machine noise hits them alike. What it was
// written for: the GCS adapter's reads moved from @google-cloud/storage's read streams to
// raw-http.ts, and this measures what that changed. As root, after npm run build:
//
//   node dist/bench/store-read.js [--backend gcs|minio|rclone] [--size-mb 64] [--rounds 2]
//     [--variant NAME=[undici:]DIST_DIR]...
//
// DIST_DIR is a tsc output dir holding src/store/{gcs,s3}.js (default: this repo's dist, as
// "current"). Each round reads the object 4 times over in two shapes: 8 MiB parts 4 at a time (the
// prefetcher's sequential stream) and 128 KiB parts 16 at a time (many small reads at once).
// Prints MB/s and this process's CPU per variant, shape and round.
//
// undici:DIST_DIR is that build's adapter with its GETs sent through undici's Dispatcher API
// instead of raw-http.ts, each chunk undici hands over copied into the part (issue 26's question:
// would Node's own HTTP engine do as well? docs/benchmarks.md, "HTTP engine: undici vs our
// reader"). undici is no dependency of bucketfs: BENCH_UNDICI names its entry file (a scratch
// `npm install undici`'s node_modules/undici/index.js), else `undici` is imported.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { HttpHandlerOptions, HttpRequest } from '@smithy/types';
import type { ObjectStore } from '../src/store/types.js';
import { type BackendName, startServer } from '../test/helpers/servers.js';

const MiB = 1024 * 1024;
const SHAPES: { name: string; part: number; parallel: number }[] = [
  { name: '8 MiB x4', part: 8 * MiB, parallel: 4 },
  { name: '128 KiB x16', part: 128 * 1024, parallel: 16 },
];
/** Each shape reads the object this many times over per round. */
const PASSES = 4;

type MakeStore = (endpoint: string, bucket: string) => Promise<ObjectStore>;

/** The part of undici's Dispatcher API used here (undici/types/dispatcher.d.ts). */
interface DispatchController {
  abort(reason: Error): void;
  pause(): void;
  resume(): void;
}
interface DispatchHandler {
  onRequestStart?(controller: DispatchController, context: unknown): void;
  onResponseStart?(
    controller: DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void;
  onResponseData?(controller: DispatchController, chunk: Buffer): void;
  onResponseEnd?(controller: DispatchController, trailers: unknown): void;
  onResponseError?(controller: DispatchController, error: Error): void;
}
interface Dispatcher {
  dispatch(
    opts: { origin: string; path: string; method: string; headers: Record<string, string> },
    handler: DispatchHandler,
  ): boolean;
}
interface Undici {
  Agent: new (opts: Record<string, unknown>) => Dispatcher;
}

/**
 * Sends a build's GETs through undici: an object with RawHttpHandler's handle(), whose bodies are
 * RawBody (the adapters check) with fillInto() copying each chunk undici delivers into the part.
 */
export async function undiciHandler(dist: string, maxSockets: number): Promise<object> {
  const undici = (await import(process.env.BENCH_UNDICI ?? 'undici')) as Undici;
  const rawHttp = pathToFileURL(path.resolve(dist, 'src', 'store', 'raw-http.js')).href;
  const { RawBody: Base } = (await import(rawHttp)) as typeof import('../src/store/raw-http.js');
  const { HttpResponse, buildQueryString } = await import('@smithy/core/protocols');
  const agent = new undici.Agent({
    connections: maxSockets,
    pipelining: 1,
    keepAliveTimeout: 4_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const noConn = { resume() {}, abandon() {} };

  class UndiciBody extends Base {
    controller: DispatchController | undefined;
    private target: Buffer | undefined;
    private n = 0;
    private queued: Buffer[] = [];
    private done = false;
    private flowing = false;
    private settle: ((n: number) => void) | undefined;
    private fail: ((err: unknown) => void) | undefined;

    constructor(expected: number | undefined) {
      super(noConn as never, expected);
    }

    override fillInto(into: Buffer): Promise<number> {
      return new Promise((resolve, reject) => {
        const refused = this.refusal(into);
        if (refused) return reject(refused);
        this.target = into;
        this.settle = resolve;
        this.fail = reject;
        for (const chunk of this.queued.splice(0)) this.chunk(chunk);
        if (this.done) resolve(this.n);
        else this.controller?.resume();
      });
    }

    /** undici's onResponseData: copied into the part, pushed to a stream reader, or queued (paused). */
    chunk(chunk: Buffer): void {
      if (this.target) {
        if (this.n + chunk.length > this.target.length) {
          this.destroy(new Error(`response body longer than ${this.target.length} bytes`));
          return;
        }
        chunk.copy(this.target, this.n);
        this.n += chunk.length;
      } else if (this.flowing) {
        if (!this.push(chunk)) this.controller?.pause();
      } else {
        this.queued.push(chunk);
        this.controller?.pause();
      }
    }

    finish(): void {
      this.done = true;
      if (this.target) this.settle?.(this.n);
      else if (this.flowing) this.push(null);
    }

    override _read(): void {
      if (this.target) return;
      if (!this.flowing) {
        this.flowing = true;
        for (const chunk of this.queued.splice(0)) this.push(chunk);
        if (this.done) return void this.push(null);
      }
      this.controller?.resume();
    }

    override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
      if (!this.done) this.controller?.abort(err ?? new Error('body destroyed'));
      this.fail?.(err ?? new Error('body destroyed'));
      this.settle = undefined;
      this.fail = undefined;
      cb(err);
    }
  }

  return {
    handle(request: HttpRequest, _options: HttpHandlerOptions = {}): Promise<{ response: unknown }> {
      const query = request.query ? buildQueryString(request.query) : '';
      const origin = `${request.protocol}//${request.hostname}${request.port ? `:${request.port}` : ''}`;
      return new Promise((resolve, reject) => {
        let body: UndiciBody | undefined;
        agent.dispatch(
          {
            origin,
            path: query ? `${request.path}?${query}` : request.path,
            method: request.method,
            headers: request.headers,
          },
          {
            onRequestStart(controller) {
              if (body) body.controller = controller;
            },
            onResponseStart(controller, statusCode, headers, reason) {
              const flat: Record<string, string> = {};
              for (const [k, v] of Object.entries(headers))
                if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
              const length = flat['content-length'];
              body = new UndiciBody(length === undefined ? undefined : Number(length));
              body.controller = controller;
              resolve({ response: new HttpResponse({ statusCode, reason, headers: flat, body }) });
            },
            onResponseData(_controller, chunk) {
              (body as UndiciBody).chunk(chunk);
            },
            onResponseEnd() {
              (body as UndiciBody).finish();
            },
            onResponseError(_controller, error) {
              if (body) body.destroy(error);
              else reject(error);
            },
          },
        );
      });
    },
    destroy() {},
  };
}

/** The adapter factory of the build in `dist`, configured as the tests configure it. */
async function adapterOf(dist: string, backend: BackendName): Promise<MakeStore> {
  const undici = dist.startsWith('undici:');
  if (undici) dist = dist.slice('undici:'.length);
  const file = (name: string) => pathToFileURL(path.resolve(dist, 'src', 'store', name)).href;
  // The adapters keep their GET handler in a field: undici's takes its place before the first GET
  // (the S3 GET client resolves its middleware, handler included, on its first send).
  const swap = async (store: ObjectStore): Promise<ObjectStore> => {
    if (!undici) return store;
    const handler = await undiciHandler(dist, 16);
    const inner = store as unknown as { media?: object; getClient?: { config: { requestHandler: object } } };
    if (backend === 'gcs') inner.media = handler;
    else (inner.getClient as { config: { requestHandler: object } }).config.requestHandler = handler;
    return store;
  };
  if (backend === 'gcs') {
    const { createGcsStore } = (await import(file('gcs.js'))) as typeof import('../src/store/gcs.js');
    return async (endpoint, bucket) =>
      swap(await createGcsStore({ bucket, endpoint, anonymous: true, requestTimeoutMs: 30_000, maxSockets: 16 }));
  }
  const { createS3Store } = (await import(file('s3.js'))) as typeof import('../src/store/s3.js');
  return async (endpoint, bucket) =>
    swap(
      await createS3Store({
        bucket,
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: {
          accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '',
          secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '',
        },
        requestTimeoutMs: 30_000,
        maxSockets: 16,
      }),
    );
}

async function readAll(store: ObjectStore, size: number, part: number, parallel: number): Promise<string> {
  const parts = size / part;
  let next = 0;
  let bytes = 0;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < PASSES * parts; i = next++) {
        const start = (i % parts) * part;
        // Not `bytes += await …`: that reads `bytes` before the await and loses the others' counts.
        const got = await store.read('obj.bin', { start, end: start + part });
        bytes += got.length;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  const cpuPct = ((used.user + used.system) / 1e6 / secs) * 100;
  return `${Math.round(bytes / secs / 1e6)} MB/s, client CPU ${Math.round(cpuPct)}%`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'gcs' },
      'size-mb': { type: 'string', default: '64' },
      rounds: { type: 'string', default: '2' },
      variant: { type: 'string', multiple: true, default: [] },
    },
  });
  const backend = values.backend as BackendName;
  const size = Number(values['size-mb']) * MiB;
  const rounds = Number(values.rounds);
  if (!['gcs', 'minio', 'rclone'].includes(backend) || !(size > 0) || size % (8 * MiB) !== 0 || !(rounds > 0)) {
    throw new Error('usage: --backend gcs|minio|rclone --size-mb <multiple of 8> --rounds N [--variant NAME=DIST]');
  }
  const here = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
  const variants = (values.variant.length > 0 ? values.variant : [`current=${here}`]).map((v) => {
    const [name, dist] = v.split('=', 2);
    if (!name || !dist) throw new Error(`--variant ${v}: expected NAME=DIST_DIR`);
    return { name, dist };
  });
  const server = await startServer(backend);
  try {
    await server.createBucket('bench');
    await server.putObject('bench', 'obj.bin', randomBytes(size));
    // Credentials for the S3 kinds, as the server hands them to a mount. (Not for GCS: the library
    // would take STORAGE_EMULATOR_HOST from the environment as a base URL of its own.)
    if (server.kind !== 'gcs') Object.assign(process.env, server.env);
    const stores = await Promise.all(
      variants.map(async (v) => (await adapterOf(v.dist, backend))(server.endpoint, 'bench')),
    );
    for (const shape of SHAPES) {
      for (let r = 1; r <= rounds; r++) {
        for (const [i, v] of variants.entries()) {
          const got = await readAll(stores[i] as ObjectStore, size, shape.part, shape.parallel);
          process.stdout.write(`${backend} ${shape.name} round ${r} ${v.name}: ${got}\n`);
        }
      }
    }
  } finally {
    await server.stop();
  }
}

// Imported (not run) by a preload that puts undiciHandler into a daemon: see docs/benchmarks.md,
// "HTTP engine: undici vs our reader".
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(
        `store-read: ${err instanceof Error ? (process.env.DEBUG ? err.stack : err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
