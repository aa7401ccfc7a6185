// Ranged reads through bucketfs's own store adapter, no FUSE: builds compared back to back on one
// test server and one object, rounds alternating so machine noise hits them alike. What it was
// written for: the GCS adapter's reads moved from @google-cloud/storage's read streams to
// raw-http.ts, and this measures what that changed. As root, after npm run build:
//
//   node dist/bench/store-read.js [--backend gcs|minio|rclone] [--size-mb 64] [--rounds 2]
//     [--variant NAME=DIST_DIR]...
//
// DIST_DIR is a tsc output dir holding src/store/{gcs,s3}.js (default: this repo's dist, as
// "current"). Each round reads the object 4 times over in two shapes: 8 MiB parts 4 at a time (the
// prefetcher's sequential stream) and 128 KiB parts 16 at a time (many small reads at once).
// Prints MB/s and this process's CPU per variant, shape and round.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ObjectStore } from '../src/store/types.js';
import { type BackendName, startServer } from '../test/helpers/servers.js';

const MiB = 1024 * 1024;
const SHAPES: { name: string; part: number; parallel: number }[] = [
  { name: '8 MiB x4', part: 8 * MiB, parallel: 4 },
  { name: '128 KiB x16', part: 128 * 1024, parallel: 16 },
];
/** Each shape reads the object this many times over per round. */
const PASSES = 4;

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'gcs' },
    'size-mb': { type: 'string', default: '64' },
    rounds: { type: 'string', default: '2' },
    variant: { type: 'string', multiple: true, default: [] },
  },
});

type MakeStore = (endpoint: string, bucket: string) => Promise<ObjectStore>;

/** The adapter factory of the build in `dist`, configured as the tests configure it. */
async function adapterOf(dist: string, backend: BackendName): Promise<MakeStore> {
  const file = (name: string) => pathToFileURL(path.resolve(dist, 'src', 'store', name)).href;
  if (backend === 'gcs') {
    const { createGcsStore } = (await import(file('gcs.js'))) as typeof import('../src/store/gcs.js');
    return (endpoint, bucket) =>
      createGcsStore({ bucket, endpoint, anonymous: true, requestTimeoutMs: 30_000, maxSockets: 16 });
  }
  const { createS3Store } = (await import(file('s3.js'))) as typeof import('../src/store/s3.js');
  return async (endpoint, bucket) =>
    createS3Store({
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
    });
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

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `store-read: ${err instanceof Error ? (process.env.DEBUG ? err.stack : err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
