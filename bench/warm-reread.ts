// Re-reading files on one mount while they are still in RAM, the page cache not dropped: what
// keeping the kernel's page cache across opens (src/vfs/page-cache.ts) is worth, against the stock
// fuse-native build, on which every open drops the pages and each re-read comes to bucketfs (from
// its disk cache). MinIO on loopback, N files of 128 KiB in 16 directories, --cache-dir, three
// passes of 16 parallel `cat`s per mount, two mounts of each build alternating. As root, after
// npm run build:
//
//   node dist/bench/warm-reread.js [--files 2000]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { putMany } from '../test/helpers/data.js';
import { mountBucket, sumMetric } from '../test/helpers/mount.js';
import { startServer } from '../test/helpers/servers.js';

const { values: opt } = parseArgs({ options: { files: { type: 'string', default: '2000' } } });
const files = Number(opt.files);
const FILE_BYTES = 128 * 1024;

/** Reads every file under `dir` with 16 cats at once, in a child process; seconds taken. */
async function readAll(dir: string): Promise<number> {
  const t0 = performance.now();
  const child = spawn('sh', ['-c', 'find . -type f | xargs -P16 -n 64 cat > /dev/null'], {
    cwd: dir,
    stdio: 'inherit',
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`reading ${dir} failed (${code})`);
  return (performance.now() - t0) / 1000;
}

const server = await startServer('minio');
try {
  await server.createBucket('reread');
  const body = randomBytes(FILE_BYTES);
  await putMany(
    server,
    'reread',
    (function* (): Generator<[string, Buffer]> {
      for (let i = 0; i < files; i++) yield [`d${i % 16}/f${i}`, body];
    })(),
  );
  const builds: [string, Record<string, string>][] = [
    ['patched', {}],
    ['stock', { PREBUILDS_ONLY: '1' }],
  ];
  for (let round = 0; round < 2; round++) {
    for (const [name, env] of builds) {
      const cacheDir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-reread-'));
      const m = await mountBucket(server, 'reread', { args: ['--cache-dir', cacheDir], env });
      try {
        const passes: string[] = [];
        for (let pass = 1; pass <= 3; pass++) {
          const secs = await readAll(m.mountpoint);
          const text = await m.metricsText();
          const mbps = (files * FILE_BYTES) / 1e6 / secs;
          const gets = sumMetric(text, 'bucketfs_store_requests_total', { kind: 'GET' });
          const reads = sumMetric(text, 'bucketfs_fuse_ops_total', { op: 'read' });
          passes.push(`pass ${pass} ${mbps.toFixed(0)} MB/s (GETs ${gets}, FUSE reads ${reads} so far)`);
        }
        console.log(`${name}: ${passes.join('; ')}`);
      } finally {
        await m.unmount();
        await rm(cacheDir, { recursive: true, force: true });
      }
    }
  }
} finally {
  await server.stop();
}
