// The ways bucketfs is run besides a shell: an fstab line through mount(8) and /sbin/mount.fuse
// (-o option lists), a systemd service (Type=forking: logs to the journal stream, SIGTERM
// unmounts), and the example files in deploy/ checked by systemd's own tools. Real mounts on MinIO.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, open, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUCKETFS_BIN, cleanEnv, forceUnmount, freePort, isMounted, REPO_ROOT, sleep } from '../helpers/mount.js';
import { isAlive, run } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

const FSTAB_GENERATOR = '/lib/systemd/system-generators/systemd-fstab-generator';

/** The /proc/mounts line of a mountpoint: [source, target, type, options]. */
async function mountLine(mountpoint: string): Promise<string[] | undefined> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[1] === mountpoint);
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  for (let waited = 0; !(await check()); waited += 100) {
    if (waited >= ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

describe('fstab, mount(8) and systemd', { concurrency: false }, () => {
  let server: TestServer;
  let work: string;
  let mnt: string;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('tree');
    await server.putObject('tree', 'hello.txt', 'hi');
    await server.putObject('tree', 'bin/tool.sh', '#!/bin/sh\necho ran\n');
    work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-deploy-'));
    mnt = path.join(work, 'mnt');
    await mkdir(mnt);
  });

  after(async () => {
    await forceUnmount(mnt);
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** The -o list that points bucketfs at the test server, as an fstab line would. */
  function serverOptions(metricsPort: number): string {
    return [
      `endpoint_url=${server.endpoint}`,
      'force_path_style',
      `region=${server.region || 'us-east-1'}`,
      `metrics_port=${metricsPort}`,
      'file_mode=0755',
    ].join(',');
  }

  test('an fstab line mounts through mount(8) and mount.fuse, with -o options and noexec', async () => {
    const metricsPort = await freePort();
    const fstab = path.join(work, 'fstab');
    // mount.fuse runs the program named before '#' (a path here: this checkout, whatever is
    // installed); mount(8) drops _netdev, nofail and x-* itself and adds dev,suid; ro is --read-only.
    const options = `${serverOptions(metricsPort)},ro,noexec,_netdev,nofail,x-systemd.automount,noatime`;
    await writeFile(fstab, `${BUCKETFS_BIN}#s3://tree ${mnt} fuse ${options} 0 0\n`);
    // mount(8) gives helpers no PATH of their own: mount.fuse finds /usr/bin/node through sh's default.
    const r = await run('mount', ['-T', fstab, mnt], { env: cleanEnv(server.env) });
    try {
      assert.equal(r.code, 0, r.stderr);
      const line = await mountLine(mnt);
      assert.ok(line, 'mounted');
      assert.equal(line[2], 'fuse.bucketfs');
      const flags = (line[3] as string).split(',');
      assert.ok(flags.includes('ro'), `read-only: ${line[3]}`);
      assert.ok(flags.includes('noexec'), `noexec reached the kernel: ${line[3]}`);
      assert.equal(await readFile(path.join(mnt, 'hello.txt'), 'utf8'), 'hi');
      // file_mode=0755 reached bucketfs; noexec reached the kernel.
      assert.equal((await stat(path.join(mnt, 'bin/tool.sh'))).mode & 0o777, 0o755);
      const exec = await run(path.join(mnt, 'bin/tool.sh'), []).catch((e: NodeJS.ErrnoException) => e);
      assert.equal((exec as NodeJS.ErrnoException).code, 'EACCES', 'exec refused on a noexec mount');
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /bucketfs_store_requests_total/);
    } finally {
      const u = await run('umount', [mnt]);
      assert.equal(u.code, 0, u.stderr);
      await forceUnmount(mnt);
    }
    assert.equal(await isMounted(mnt), false);
  });

  test('mount -t fuse.bucketfs finds the installed bucketfs', async (t) => {
    const installed = await realpath('/usr/local/bin/bucketfs').catch(() => undefined);
    if (installed !== (await realpath(BUCKETFS_BIN))) {
      t.skip(`/usr/local/bin/bucketfs is not this checkout (scripts/setup.sh links it): ${installed ?? 'missing'}`);
      return;
    }
    const metricsPort = await freePort();
    const r = await run('mount', ['-t', 'fuse.bucketfs', 's3://tree', mnt, '-o', serverOptions(metricsPort)], {
      env: cleanEnv(server.env),
    });
    try {
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await mountLine(mnt))?.[0], 's3://tree/');
      assert.equal(await readFile(path.join(mnt, 'hello.txt'), 'utf8'), 'hi');
    } finally {
      await run('umount', [mnt]);
      await forceUnmount(mnt);
    }
  });

  test('a wrong -o option: one line through mount(8), nothing mounted', async () => {
    const direct = await run(process.execPath, [BUCKETFS_BIN, 's3://tree', mnt, '-o', 'rw,cache_size=5'], {
      env: cleanEnv(server.env),
    });
    assert.equal(direct.code, 2);
    assert.equal(
      direct.stderr.trim(),
      'bucketfs: unknown mount option "cache_size" in -o; -o takes bucketfs options by name, e.g. -o allow_other,cache_dir=/var/cache/bucketfs (bucketfs --help lists them)',
    );
    const viaMount = await run('mount', ['-t', 'fuse', `${BUCKETFS_BIN}#s3://tree`, mnt, '-o', 'max_concurrency'], {
      env: cleanEnv(server.env),
    });
    assert.notEqual(viaMount.code, 0);
    assert.match(viaMount.stderr, /bucketfs: mount option "max_concurrency" needs a value: max_concurrency=\.\.\./);
    assert.doesNotMatch(viaMount.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await isMounted(mnt), false);
  });

  test('under systemd (Type=forking) the daemon logs to the journal stream and SIGTERM unmounts', async () => {
    // systemd connects the service's stderr to the journal and names it in JOURNAL_STREAM
    // (device:inode). A file stands in for the journal's socket here.
    const journal = path.join(work, 'journal');
    const fh = await open(journal, 'w');
    const st = await fh.stat();
    const metricsPort = await freePort();
    let pid = 0;
    try {
      const child = spawn(
        process.execPath,
        [
          BUCKETFS_BIN,
          '--endpoint-url',
          server.endpoint,
          '--force-path-style',
          '--metrics-port',
          String(metricsPort),
        ].concat(['s3://tree', mnt]),
        {
          env: cleanEnv({ ...server.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` }),
          stdio: ['ignore', 'pipe', fh.fd],
        },
      );
      let out = '';
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (d: string) => {
        out += d;
      });
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, 'the starting process returns once mounted, as Type=forking expects');
      pid = Number(/pid (\d+)/.exec(out)?.[1]);
      assert.ok(isAlive(pid), 'the daemon runs on');
      assert.equal(await readFile(path.join(mnt, 'hello.txt'), 'utf8'), 'hi');
      await waitFor('the mount to be logged', async () => /"msg":"mounted/.test(await readFile(journal, 'utf8')));
      process.kill(pid, 'SIGTERM'); // systemctl stop
      await waitFor('the daemon to exit', () => !isAlive(pid));
      assert.equal(await isMounted(mnt), false, 'SIGTERM unmounted');
      const lines = (await readFile(journal, 'utf8')).trim().split('\n');
      assert.ok(
        lines.every((l) => JSON.parse(l).name === 'bucketfs'),
        'only the daemon JSON log lines',
      );
      assert.ok(
        lines.some((l) => /unmount/i.test(JSON.parse(l).msg)),
        'the unmount is logged',
      );
    } finally {
      if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
      await fh.close();
      await forceUnmount(mnt);
    }
  });

  test('without the journal the daemon holds no stream of its caller', async () => {
    // A terminal, ssh, or mount(8) reading our output would otherwise wait for the daemon's end.
    // JOURNAL_STREAM naming another stream than our stderr (inherited from a service) is no journal.
    const args = [BUCKETFS_BIN, '--endpoint-url', server.endpoint, '--force-path-style', 's3://tree', mnt];
    const started = run(process.execPath, args, { env: cleanEnv({ ...server.env, JOURNAL_STREAM: '1:1' }) });
    try {
      const r = await Promise.race([started, sleep(30_000).then(() => undefined)]);
      assert.ok(r, "the caller's pipes reached end-of-file while the daemon runs on");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.ok(await isMounted(mnt));
    } finally {
      await run('fusermount', ['-u', mnt]);
      await forceUnmount(mnt);
    }
  });

  test('deploy/systemd/bucketfs-data.service passes systemd-analyze verify', async (t) => {
    if (!(await exists('/usr/bin/systemd-analyze'))) {
      t.skip('systemd-analyze is not installed (package systemd)');
      return;
    }
    const r = await run('systemd-analyze', ['verify', path.join(REPO_ROOT, 'deploy/systemd/bucketfs-data.service')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings');
  });

  test('deploy/fstab.example becomes systemd mount units after the network', async (t) => {
    if (!(await exists(FSTAB_GENERATOR))) {
      t.skip(`${FSTAB_GENERATOR} is not installed (package systemd)`);
      return;
    }
    const out = path.join(work, 'generated');
    await mkdir(out);
    const r = await run(FSTAB_GENERATOR, [out, out, out], {
      env: { ...cleanEnv(), SYSTEMD_FSTAB: path.join(REPO_ROOT, 'deploy/fstab.example') },
    });
    assert.equal(r.code, 0, r.stderr);
    const unit = await readFile(path.join(out, 'mnt-train.mount'), 'utf8');
    assert.match(unit, /^What=s3:\/\/my-bucket\/train$/m);
    assert.match(unit, /^Type=fuse\.bucketfs$/m);
    assert.match(unit, /^Options=_netdev,nofail,allow_other,cache_dir=\/var\/cache\/bucketfs\/train$/m);
    await access(path.join(out, 'remote-fs.target.wants/mnt-train.mount'));
    await access(path.join(out, 'remote-fs.target.wants/mnt-media.mount'));
  });
});
