// --memory-limit-mb bounds the daemon's memory, however many files are open: 64 handles at once,
// half on copies in the file cache (read from disk through block buffers, blocks read ahead, first
// blocks of the next files) and half on objects not cached yet (downloaded into the cache as they
// are read), with the daemon's resident set sampled throughout. One backend: the
// buffers are the same whichever store fills them.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dropPageCache, type Mounted, mountBucket } from '../helpers/mount.js';
import { runOk } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;
const LIMIT_MB = 64;
/**
 * What the daemon holds beyond the budget's data buffers with 64 reads in flight: libfuse's worker
 * threads (a request buffer of max_read each, and their stacks), V8's heap growing with the
 * requests and handles, sockets' buffers. The figure measured here is in docs/testing.md.
 */
const MARGIN_BYTES = 128 * MiB;
const FILES = 32;

async function status(pid: number): Promise<{ rss: number; threads: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { rss: field('VmRSS') * 1024, threads: field('Threads') };
}

async function rssBytes(pid: number): Promise<number> {
  return (await status(pid)).rss;
}

/** Samples a process's resident set every few milliseconds until stopped: the highest seen. */
function sampleRss(pid: number): { stop(): Promise<{ rss: number; threads: number }> } {
  const peak = { rss: 0, threads: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const now = await status(pid).catch(() => peak);
      peak.rss = Math.max(peak.rss, now.rss);
      peak.threads = Math.max(peak.threads, now.threads);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

describe('memory limit on minio', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;
  let cacheDir: string;
  const digests = new Map<string, string>();

  before(async () => {
    const objects: [string, Buffer][] = [];
    for (let i = 0; i < FILES; i++) {
      objects.push([`cached/c${i}.bin`, randomBytes(8 * MiB + i)]);
      objects.push([`streamed/s${i}.bin`, randomBytes(12 * MiB + i)]);
    }
    for (const [key, body] of objects) digests.set(key, createHash('sha256').update(body).digest('hex'));
    server = await startServer('minio', { bucket: 'mem', objects });
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-mem-cache-'));
    m = await mountBucket(server, 'mem', {
      args: [
        '--memory-limit-mb',
        String(LIMIT_MB),
        '--cache-dir',
        cacheDir,
        // Reads of cached copies come to the daemon (through its block buffers), not to the kernel.
        '--file-cache-passthrough-max-mb',
        '0',
      ],
    });
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  test(`64 handles at once, on cached copies and on objects not cached yet, keep the daemon within ${LIMIT_MB} MiB plus a constant`, async (t) => {
    const pid = m.child.pid as number;
    const file = (key: string) => path.join(m.mountpoint, key);
    const sha = async (key: string) => (await runOk('sha256sum', [file(key)], { timeoutMs: 600_000 })).split(' ')[0];
    const idle = await rssBytes(pid);
    // Epoch 1 of the cached files fills the cache.
    for (let i = 0; i < FILES; i++) assert.equal(await sha(`cached/c${i}.bin`), digests.get(`cached/c${i}.bin`));
    await new Promise((r) => setTimeout(r, 1000)); // downloads settle after the reads return
    await dropPageCache(); // the next reads reach the daemon, not the kernel's pages
    const gets0 = await m.requests('GET');

    const sampler = sampleRss(pid);
    let peak: { rss: number; threads: number };
    try {
      const reads: Promise<void>[] = [];
      for (let i = 0; i < FILES; i++) {
        reads.push(sha(`cached/c${i}.bin`).then((h) => assert.equal(h, digests.get(`cached/c${i}.bin`))));
        reads.push(sha(`streamed/s${i}.bin`).then((h) => assert.equal(h, digests.get(`streamed/s${i}.bin`))));
      }
      await Promise.all(reads);
    } finally {
      peak = await sampler.stop();
    }
    const gets = (await m.requests('GET')) - gets0;
    const bound = idle + LIMIT_MB * MiB + MARGIN_BYTES;
    const mb = (n: number) => (n / MiB).toFixed(0);
    t.diagnostic(
      `daemon RSS: idle ${mb(idle)} MiB, peak ${mb(peak.rss)} MiB with 64 handles (${peak.threads} threads at most), ${gets} GETs`,
    );
    assert.ok(
      peak.rss <= bound,
      `daemon RSS peaked at ${mb(peak.rss)} MiB: idle ${mb(idle)} + limit ${LIMIT_MB} + margin ${mb(MARGIN_BYTES)} = ${mb(bound)} MiB`,
    );
    // The new files came from the store, the cached ones from disk.
    assert.ok(gets >= FILES, `${gets} GETs for ${FILES} new files`);
  });
});
