// An object overwritten while a handle is open: the next read that needs the store fails with
// ESTALE, never bytes of two versions; a fresh open reads the new version.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../helpers/data.js';
import { type Mounted, mountBucket } from '../helpers/mount.js';
import { runOk } from '../helpers/proc.js';
import { ALL_BACKENDS, startServer, type TestServer } from '../helpers/servers.js';

const MiB = 1024 * 1024;

// Opens a file, reads 4 KiB at 0, says "opened", waits for a line on stdin, then reads 4 KiB far
// away (beyond anything read ahead) and prints the sha256 of it or the error code.
const READER = `
const fs = require('fs');
const crypto = require('crypto');
const fd = fs.openSync(process.argv[1], 'r');
const buf = Buffer.alloc(4096);
fs.readSync(fd, buf, 0, 4096, 0);
process.stdout.write('opened ' + crypto.createHash('sha256').update(buf).digest('hex') + '\\n');
process.stdin.once('data', () => {
  try {
    const n = fs.readSync(fd, buf, 0, 4096, Number(process.argv[2]));
    process.stdout.write('read ' + crypto.createHash('sha256').update(buf.subarray(0, n)).digest('hex') + '\\n');
  } catch (err) {
    process.stdout.write('error ' + err.errno + '\\n');
  }
  process.exit(0);
});`;

for (const backend of ALL_BACKENDS) {
  describe(`overwrite while open on ${backend}`, { concurrency: false }, () => {
    let server: TestServer;
    let m: Mounted;
    const v1 = randomBytes(48 * MiB);
    const v2 = randomBytes(48 * MiB);
    const far = 40 * MiB;

    before(async () => {
      server = await startServer(backend);
      await server.createBucket('overwrite');
      await server.putObject('overwrite', 'obj.bin', v1);
      m = await mountBucket(server, 'overwrite');
    });

    after(async () => {
      await m?.unmount();
      await server?.stop();
    });

    test('the next read from the store fails with ESTALE; a new open sees the new version', async () => {
      const file = path.join(m.mountpoint, 'obj.bin');
      const child = spawn(process.execPath, ['-e', READER, file, String(far)], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        out += d;
      });
      while (!out.includes('\n')) await once(child.stdout, 'data');
      assert.equal(out.trim(), `opened ${sha256(v1.subarray(0, 4096))}`);
      await server.putObject('overwrite', 'obj.bin', v2);
      child.stdin.write('go\n');
      await once(child, 'exit');
      const answer = out.trim().split('\n')[1] ?? '';
      const oldBytes = `read ${sha256(v1.subarray(far, far + 4096))}`;
      const newBytes = `read ${sha256(v2.subarray(far, far + 4096))}`;
      assert.notEqual(answer, newBytes, 'never bytes of the new version through the old handle');
      // ESTALE is errno 116 on Linux; libuv has no name for it.
      assert.equal(answer, 'error -116', `got: ${answer} (old bytes would be ${oldBytes === answer})`);
      // A new open, after the stat TTL lets the new metadata in, reads the new version.
      const m2 = await mountBucket(server, 'overwrite');
      try {
        const sum = (await runOk('sha256sum', [path.join(m2.mountpoint, 'obj.bin')])).split(' ')[0];
        assert.equal(sum, sha256(v2));
      } finally {
        await m2.unmount();
      }
    });
  });
}
