// Test data: large random files with known digests, and bulk seeding with bounded concurrency.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestServer } from './servers.js';

export interface BigFile {
  path: string;
  size: number;
  sha256: string;
}

const bigFiles = new Map<number, Promise<BigFile>>();
const bigFileDirs: string[] = [];
// Gigabytes each: gone when the test process ends, however it ends ('exit' handlers are synchronous).
process.once('exit', () => {
  for (const dir of bigFileDirs) rmSync(dir, { recursive: true, force: true });
});

/** A random file of `size` bytes on local disk, made once per test process per size. */
export function bigFile(size: number): Promise<BigFile> {
  let p = bigFiles.get(size);
  if (!p) {
    p = (async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-data-'));
      bigFileDirs.push(dir);
      const file = path.join(dir, `random-${size}.bin`);
      const hash = createHash('sha256');
      const out = createWriteStream(file);
      const chunk = 8 * 1024 * 1024;
      for (let done = 0; done < size; done += chunk) {
        const buf = randomBytes(Math.min(chunk, size - done));
        hash.update(buf);
        if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
      await new Promise<void>((resolve, reject) => {
        out.once('error', reject);
        out.end(() => resolve());
      });
      return { path: file, size, sha256: hash.digest('hex') };
    })();
    bigFiles.set(size, p);
  }
  return p;
}

export function sha256(buf: Buffer | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Puts many objects with at most `concurrency` uploads in flight. */
export async function putMany(
  server: TestServer,
  bucket: string,
  objects: Iterable<[string, Buffer | string]>,
  concurrency = 32,
): Promise<void> {
  const it = objects[Symbol.iterator]();
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done; n = it.next()) {
      const [key, body] = n.value;
      await server.putObject(bucket, key, body);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Writes objects as files under `dir` (key "a/b" -> dir/a/b), `concurrency` at a time; returns how many. */
export async function writeTree(
  dir: string,
  objects: Iterable<[string, Buffer | string]>,
  concurrency = 64,
): Promise<number> {
  const it = objects[Symbol.iterator]();
  let count = 0;
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done; n = it.next()) {
      count++;
      const [key, body] = n.value;
      const file = path.join(dir, key);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, body);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count;
}
