// Bad input: each case ends with one line on stderr that says what is wrong, a non-zero exit,
// no stack trace, and nothing mounted. Runs the real CLI in daemon mode (the default), so the
// parent/daemon readiness report is exercised too.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  BUCKETFS_BIN,
  cleanEnv,
  freePort,
  isMounted,
  type Mounted,
  mountBucket,
  serverArgs,
} from '../helpers/mount.js';
import { isAlive, run } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

interface Case {
  name: string;
  args: (ctx: { mnt: string; file: string; server: TestServer; closedPort: number; work: string }) => string[];
  env?: Record<string, string>;
  message: RegExp;
  exitCode?: number;
}

const CASES: Case[] = [
  {
    name: 'unknown bucket',
    args: ({ mnt, server }) => [...serverArgs(server), 's3://no-such-bucket-here', mnt],
    message: /bucket s3:\/\/no-such-bucket-here does not exist at http:\/\/127\.0\.0\.1:\d+/,
  },
  {
    name: 'wrong credentials',
    args: ({ mnt, server }) => [...serverArgs(server), 's3://tree', mnt],
    env: { AWS_ACCESS_KEY_ID: 'wrong', AWS_SECRET_ACCESS_KEY: 'wrongwrongwrong' },
    message: /credentials rejected by http:\/\/127\.0\.0\.1:\d+ .*check AWS_ACCESS_KEY_ID/,
  },
  {
    name: 'no credentials at all',
    args: ({ mnt, server }) => [...serverArgs(server), 's3://tree', mnt],
    env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
    message: /no AWS credentials found/,
  },
  {
    name: 'unreachable endpoint',
    args: ({ mnt, closedPort }) => [
      '--endpoint-url',
      `http://127.0.0.1:${closedPort}`,
      '--force-path-style',
      's3://tree',
      mnt,
    ],
    message: /cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED/,
  },
  {
    name: 'cache dir that is a file',
    args: ({ mnt, file, server }) => [...serverArgs(server), '--cache-dir', file, 's3://tree', mnt],
    message: /cannot use --cache-dir .*file: it is not a directory; give a directory path/,
  },
  {
    name: 'metrics port in use',
    // The test server's own port is taken by definition.
    args: ({ mnt, server }) => [
      ...serverArgs(server),
      '--metrics-port',
      new URL(server.endpoint).port,
      's3://tree',
      mnt,
    ],
    message: /--metrics-port \d+: 127\.0\.0\.1:\d+ is already in use; choose a free port/,
  },
  {
    name: 'missing mountpoint',
    args: ({ mnt, server }) => [...serverArgs(server), 's3://tree', path.join(mnt, 'nope')],
    message: /mountpoint .*nope does not exist; create it first/,
  },
  {
    name: 'mountpoint is a file',
    args: ({ file, server }) => [...serverArgs(server), 's3://tree', file],
    message: /mountpoint .* is not a directory/,
  },
  {
    name: 'unknown option',
    args: ({ mnt }) => ['--no-such-option', 's3://tree', mnt],
    message: /Unknown argument: no-such-option/,
    exitCode: 2,
  },
  {
    name: 'invalid number',
    args: ({ mnt }) => ['--uid', 'abc', 's3://tree', mnt],
    message: /--uid: must be a number, got "abc"/,
    exitCode: 2,
  },
  {
    name: 'invalid choice',
    args: ({ mnt }) => ['--log-level', 'loud', 's3://tree', mnt],
    message: /log-level/,
    exitCode: 2,
  },
  {
    name: 'invalid mode',
    args: ({ mnt }) => ['--file-mode', '999', 's3://tree', mnt],
    message: /--file-mode: must be octal permission bits/,
    exitCode: 2,
  },
  {
    name: 'invalid bucket name',
    args: ({ mnt }) => ['s3://Bad_Bucket!', mnt],
    message: /is not a valid bucket name/,
    exitCode: 2,
  },
  {
    name: 'missing arguments',
    args: () => ['s3://tree'],
    message: /expected <bucket> <mountpoint>/,
    exitCode: 2,
  },
  {
    name: 'config file with an unknown key',
    args: ({ mnt, work }) => ['--config-file', path.join(work, 'unknown-key.yaml'), 's3://tree', mnt],
    message: /--config-file: .*unknown-key\.yaml: unknown key "metadata-cache\.ttl" \(see docs\/configuration\.md\)/,
    exitCode: 2,
  },
  {
    name: 'config file with a wrong type',
    args: ({ mnt, work }) => ['--config-file', path.join(work, 'wrong-type.yaml'), 's3://tree', mnt],
    message: /"list-cache\.ttl-secs" must be a number, got "soon"/,
    exitCode: 2,
  },
  {
    name: 'missing config file',
    args: ({ mnt, work }) => ['--config-file', path.join(work, 'nope.yaml'), 's3://tree', mnt],
    message: /--config-file: cannot read .*nope\.yaml/,
    exitCode: 2,
  },
  {
    name: 'negative cache size',
    args: ({ mnt }) => ['--stat-cache-max-size-mb', '-5', 's3://tree', mnt],
    message: /--stat-cache-max-size-mb: must be at least 0 \(or -1 for no limit\)/,
    exitCode: 2,
  },
];

describe('bad input gives one clear line and mounts nothing', { concurrency: false }, () => {
  let server: TestServer;
  let work: string;
  let mnt: string;
  let file: string;
  let closedPort: number;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('tree');
    await server.putObject('tree', 'hello.txt', 'hi');
    work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-cli-'));
    mnt = path.join(work, 'mnt');
    file = path.join(work, 'file');
    await run('mkdir', [mnt]);
    await writeFile(file, 'not a dir');
    await writeFile(path.join(work, 'unknown-key.yaml'), 'metadata-cache:\n  ttl: 5\n');
    await writeFile(path.join(work, 'wrong-type.yaml'), 'list-cache:\n  ttl-secs: soon\n');
    closedPort = await freePort();
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  for (const c of CASES) {
    test(c.name, async () => {
      const r = await run(process.execPath, [BUCKETFS_BIN, ...c.args({ mnt, file, server, closedPort, work })], {
        env: cleanEnv({ ...server.env, ...c.env }),
        timeoutMs: 60_000,
      });
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `exactly one line, got:\n${r.stderr}`);
      assert.match(lines[0] as string, /^bucketfs: /);
      assert.match(lines[0] as string, c.message);
      assert.doesNotMatch(r.stderr, /\n\s+at |Error:/, 'no stack trace');
      assert.equal(r.code, c.exitCode ?? 1);
      assert.equal(await isMounted(mnt), false, 'nothing mounted');
    });
  }

  test('a mountpoint that is already mounted', async () => {
    let first: Mounted | undefined;
    try {
      first = await mountBucket(server, 'tree', { mountpoint: mnt });
      const r = await run(process.execPath, [BUCKETFS_BIN, ...serverArgs(server), 's3://tree', mnt], {
        env: cleanEnv(server.env),
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr.trim(), /^bucketfs: mountpoint .* is already mounted; unmount it first/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      // The first mount is untouched.
      const ls = await run('cat', [path.join(mnt, 'hello.txt')]);
      assert.equal(ls.stdout.toString(), 'hi');
    } finally {
      await first?.unmount();
    }
  });

  test('daemon mode returns once mounted, and the daemon runs on', async () => {
    const r = await run(process.execPath, [BUCKETFS_BIN, ...serverArgs(server), 's3://tree', mnt], {
      env: cleanEnv(server.env),
    });
    try {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.toString(), /mounted s3:\/\/tree\/ at .* \(pid \d+\)/);
      assert.ok(await isMounted(mnt));
      const cat = await run('cat', [path.join(mnt, 'hello.txt')]);
      assert.equal(cat.stdout.toString(), 'hi');
    } finally {
      await run('fusermount', ['-u', mnt]);
    }
    // The daemon notices the external unmount and exits.
    const pid = Number(/pid (\d+)/.exec(r.stdout.toString())?.[1]);
    for (let i = 0; i < 50 && isAlive(pid); i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(isAlive(pid), false, 'daemon exited after fusermount -u');
  });
});

describe('bad input on gs:// gives the same kind of line', { concurrency: false }, () => {
  let server: TestServer;
  let work: string;
  let mnt: string;

  before(async () => {
    server = await startServer('gcs');
    await server.createBucket('tree');
    work = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-cli-gcs-'));
    mnt = path.join(work, 'mnt');
    await run('mkdir', [mnt]);
    await writeFile(path.join(work, 'not-json.json'), 'hello');
    await writeFile(path.join(work, 'not-sa.json'), '{"type":"authorized_user"}');
  });

  after(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('STORAGE_EMULATOR_HOST alone selects the endpoint', async () => {
    await server.putObject('tree', 'hello.txt', 'hi from gcs');
    const r = await run(process.execPath, [BUCKETFS_BIN, '--no-sign-request', 'gs://tree', mnt], {
      env: cleanEnv({ STORAGE_EMULATOR_HOST: server.endpoint }),
    });
    try {
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await run('cat', [path.join(mnt, 'hello.txt')])).stdout.toString(), 'hi from gcs');
    } finally {
      await run('fusermount', ['-u', mnt]);
    }
  });

  const cases: [string, () => string[], RegExp][] = [
    [
      'unknown bucket',
      () => [...serverArgs(server), 'gs://no-such-bucket-here', mnt],
      /bucket gs:\/\/no-such-bucket-here does not exist at http:\/\/127\.0\.0\.1:\d+/,
    ],
    [
      'missing key file',
      () => ['--endpoint-url', server.endpoint, '--key-file', path.join(work, 'nope.json'), 'gs://tree', mnt],
      /cannot read key file .*nope\.json/,
    ],
    [
      'key file that is not JSON',
      () => ['--endpoint-url', server.endpoint, '--key-file', path.join(work, 'not-json.json'), 'gs://tree', mnt],
      /key file .*not-json\.json is not JSON/,
    ],
    [
      'key file that is not a service account',
      () => ['--endpoint-url', server.endpoint, '--key-file', path.join(work, 'not-sa.json'), 'gs://tree', mnt],
      /is not a service-account key/,
    ],
    [
      'unreachable endpoint',
      () => ['--endpoint-url', 'http://127.0.0.1:1', '--no-sign-request', 'gs://tree', mnt],
      /cannot reach http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED/,
    ],
    [
      'an s3-only option',
      () => ['--region', 'eu-west-1', 'gs://tree', mnt],
      /--region: applies to s3:\/\/ buckets only/,
    ],
  ];
  for (const [name, args, message] of cases) {
    test(name, async () => {
      const r = await run(process.execPath, [BUCKETFS_BIN, ...args()], { env: cleanEnv(), timeoutMs: 60_000 });
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `exactly one line, got:\n${r.stderr}`);
      assert.match(lines[0] as string, /^bucketfs: /);
      assert.match(lines[0] as string, message);
      assert.notEqual(r.code, 0);
      assert.equal(await isMounted(mnt), false);
    });
  }
});
