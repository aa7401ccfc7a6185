// Coming back without a person: a daemon killed with SIGKILL leaves a dead mount that the next
// bucketfs clears by itself; --auto-unmount leaves none at all; an unmount followed at once by a
// mount on the same cache directory succeeds every time; the systemd unit's restart after kill -9
// finds a mount that reads. Real mounts in daemon mode (as systemd, fstab and scripts run it), on MinIO.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUCKETFS_BIN, cleanEnv, forceUnmount, isMounted, REPO_ROOT, serverArgs, sleep } from '../helpers/mount.js';
import { isAlive, run } from '../helpers/proc.js';
import { startServer, type TestServer, toolsBin } from '../helpers/servers.js';

const PAYLOAD = Buffer.alloc(3 * 1024 * 1024 + 17, 'recovery-');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  for (let waited = 0; !(await check()); waited += 100) {
    if (waited >= ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** stat's errno for a path, or undefined when it answers. */
async function statError(p: string): Promise<string | undefined> {
  return stat(p).then(
    () => undefined,
    (err: NodeJS.ErrnoException) => err.code,
  );
}

describe('recovery after a crash or an unmount', { concurrency: false }, () => {
  let server: TestServer;
  let work: string;
  let mnt: string;
  const daemons: number[] = [];

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('tree');
    await server.putObject('tree', 'data.bin', PAYLOAD);
    work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-recovery-'));
    mnt = path.join(work, 'mnt');
    await mkdir(mnt);
  });

  after(async () => {
    for (const pid of daemons) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await forceUnmount(mnt);
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** Mounts in daemon mode (the default) and returns the daemon's pid once the mount is live. */
  async function mountDaemon(args: string[], logName: string): Promise<{ pid: number; stderr: string }> {
    const r = await run(
      process.execPath,
      [BUCKETFS_BIN, ...serverArgs(server), '--log-file', path.join(work, logName), ...args, 's3://tree', mnt],
      { env: cleanEnv(server.env), timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, `mount failed: ${r.stderr.trim()}`);
    const pid = Number(/pid (\d+)/.exec(r.stdout.toString())?.[1]);
    assert.ok(pid > 0 && isAlive(pid), `the daemon runs (${r.stdout.toString().trim()})`);
    daemons.push(pid);
    return { pid, stderr: r.stderr };
  }

  async function killHard(pid: number): Promise<void> {
    process.kill(pid, 'SIGKILL');
    await waitFor('the daemon to die', () => !isAlive(pid));
  }

  async function readsRight(): Promise<void> {
    assert.equal(sha(await readFile(path.join(mnt, 'data.bin'))), sha(PAYLOAD), 'the bytes read back');
  }

  test('kill -9 leaves a dead mount; the next bucketfs clears it, says so, and mounts', async () => {
    const first = await mountDaemon([], 'first.log');
    await readsRight();
    await killHard(first.pid);
    assert.equal(await isMounted(mnt), true, 'the mount is left behind');
    await assert.rejects(readdir(mnt), { code: 'ENOTCONN' }, 'and it is dead');

    await mountDaemon([], 'second.log');
    await readsRight();
    const log = await readFile(path.join(work, 'second.log'), 'utf8');
    assert.match(log, /cleared the dead mount of a bucketfs that is gone/);
    await run('fusermount', ['-u', mnt]);
    await waitFor('the unmount', async () => !(await isMounted(mnt)));
  });

  test('a dead mount of another file system still refuses, naming the fix', async () => {
    // rclone mount of a local directory, killed: a dead fuse.rclone mount. rclone asks for
    // fusermount3, which the fuse (2) package does not name so; fusermount takes its arguments.
    const other = path.join(work, 'rclone-mnt');
    const src = path.join(work, 'rclone-src');
    const shim = path.join(work, 'shim');
    await mkdir(other, { recursive: true });
    await mkdir(src, { recursive: true });
    await mkdir(shim, { recursive: true });
    await writeFile(path.join(src, 'a'), 'a');
    await symlink('/bin/fusermount', path.join(shim, 'fusermount3'));
    const rclone = spawn(toolsBin('rclone'), ['mount', src, other], {
      env: cleanEnv({ PATH: `${shim}:${process.env.PATH ?? '/usr/bin:/bin'}` }),
      stdio: 'ignore',
    });
    try {
      await waitFor('the rclone mount', async () => isMounted(other));
      rclone.kill('SIGKILL');
      await waitFor('rclone to die', () => rclone.exitCode !== null || rclone.signalCode !== null);
      await assert.rejects(readdir(other), { code: 'ENOTCONN' });
      const r = await run(process.execPath, [BUCKETFS_BIN, ...serverArgs(server), 's3://tree', other], {
        env: cleanEnv(server.env),
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(
        r.stderr.trim(),
        /^bucketfs: mountpoint .* (is a dead FUSE mount; clear it with: fusermount -u|is already mounted; unmount it first)/,
      );
      assert.match(
        await readFile('/proc/self/mountinfo', 'utf8'),
        / - fuse\.rclone /,
        'the rclone mount is left alone',
      );
    } finally {
      rclone.kill('SIGKILL');
      await forceUnmount(other);
    }
  });

  test('with --auto-unmount, kill -9 leaves no mount', async () => {
    const d = await mountDaemon(['--auto-unmount'], 'auto.log');
    await readsRight();
    await killHard(d.pid);
    await waitFor('the kernel mount to go', async () => !(await isMounted(mnt)));
    assert.equal(await statError(mnt), undefined, 'the mountpoint is a plain directory again');
  });

  test('20 rounds of unmount and an immediate mount on one cache directory', async () => {
    const cacheDir = path.join(work, 'cache');
    for (let round = 0; round < 20; round++) {
      await mountDaemon(['--cache-dir', cacheDir], `round-${round}.log`);
      if (round % 5 === 0) await readsRight();
      const u = await run('fusermount', ['-u', mnt]);
      assert.equal(u.code, 0, u.stderr);
    }
    await waitFor('the last daemon to exit', () => daemons.slice(-1).every((pid) => !isAlive(pid)));
  });

  test('a second live mount on a cache directory in use still refuses at once', async () => {
    const cacheDir = path.join(work, 'cache-busy');
    const first = await mountDaemon(['--cache-dir', cacheDir], 'busy-first.log');
    const other = path.join(work, 'other');
    await mkdir(other, { recursive: true });
    try {
      const started = Date.now();
      const r = await run(
        process.execPath,
        [BUCKETFS_BIN, ...serverArgs(server), '--cache-dir', cacheDir, 's3://tree', other],
        { env: cleanEnv(server.env), timeoutMs: 60_000 },
      );
      assert.equal(r.code, 1);
      assert.match(
        r.stderr.trim(),
        new RegExp(`^bucketfs: cache directory .* is in use by another bucketfs process \\(pid ${first.pid}\\)`),
      );
      // At once: not the bounded wait meant for an owner whose mount is already gone (10 s).
      assert.ok(Date.now() - started < 8_000, `refused in ${Date.now() - started} ms`);
      assert.equal(await isMounted(other), false);
    } finally {
      await run('fusermount', ['-u', mnt]);
      await waitFor('the daemon to exit', () => !isAlive(first.pid));
    }
  });

  test("the systemd unit's Restart=on-failure after kill -9 brings back a mount that reads", async () => {
    // What systemd does: run ExecStart (Type=forking: it returns once mounted), and after the
    // daemon dies of SIGKILL, run it again. The unit's own flags, with its bucket and paths swapped
    // for the test server's.
    const unit = await readFile(path.join(REPO_ROOT, 'deploy/systemd/bucketfs-data.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
    assert.match(unit, /^Restart=on-failure$/m);
    const cacheDir = path.join(work, 'unit-cache');
    const flags = exec
      .slice(1, -2)
      .map((a) => (a.startsWith('/var/cache/') ? cacheDir : a))
      .filter((a) => a !== '--allow-other' || process.getuid?.() === 0);
    assert.ok(flags.includes('--cache-dir'), `the unit's flags: ${flags.join(' ')}`);
    const start = async (n: number) => (await mountDaemon(flags, `unit-${n}.log`)).pid;

    const pid = await start(1);
    await readsRight();
    await killHard(pid); // the OOM killer, or kill -9
    await sleep(200); // RestartSec, shortened
    const again = await start(2);
    assert.ok(isAlive(again), 'the service is active again');
    await readsRight();
    const u = await run('fusermount', ['-u', mnt]);
    assert.equal(u.code, 0, u.stderr);
    await waitFor('the daemon to exit', () => !isAlive(again));
  });
});
