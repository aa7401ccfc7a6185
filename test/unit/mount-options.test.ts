// -o option lists as mount(8) and mount.fuse pass them (src/cli/mount-options.ts).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseArgs } from '../../src/cli/args.js';
import { expandMountOptions } from '../../src/cli/mount-options.js';
import { REPO_ROOT } from '../helpers/mount.js';

describe('-o option lists', () => {
  test('what mount.fuse passes for an fstab line becomes flags', () => {
    const r = expandMountOptions([
      's3://b/p',
      '/mnt/x',
      '-o',
      'rw,allow_other,cache_dir=/var/cache/b,max_concurrency=16,metadata_ttl=indefinite,dev,suid',
    ]);
    assert.deepEqual(r.argv, [
      's3://b/p',
      '/mnt/x',
      '--allow-other',
      '--cache-dir=/var/cache/b',
      '--max-concurrency=16',
      '--metadata-ttl=indefinite',
    ]);
    assert.deepEqual(r.kernelFlags, []);
  });

  test('restricting kernel flags are kept for the mount; generic ones dropped', () => {
    const r = expandMountOptions(['-orw,nosuid,noatime,noexec,nodev,nofail,_netdev,x-systemd.automount,comment=x']);
    assert.deepEqual(r.argv, []);
    assert.deepEqual(r.kernelFlags, ['nosuid', 'noexec', 'nodev']);
  });

  test('ro is --read-only; rw is the default', () => {
    assert.deepEqual(expandMountOptions(['-o', 'ro,noatime']).argv, ['--read-only']);
  });

  test('dashes or underscores, booleans on or off, commas escaped in values, several -o', () => {
    const r = expandMountOptions(['-o', 'direct-io=false,prefix=a\\,b', '-o', 'foreground', '--', '-o']);
    assert.deepEqual(r.argv, ['--direct-io=false', '--prefix=a,b', '--foreground', '--', '-o']);
  });

  test('mistakes are one line each', () => {
    assert.throws(
      () => expandMountOptions(['-o', 'cache_size=5']),
      /^BucketfsError: unknown mount option "cache_size" in -o; -o takes/,
    );
    assert.throws(
      () => expandMountOptions(['-o', 'cache_dir']),
      /mount option "cache_dir" needs a value: cache_dir=\.\.\./,
    );
    assert.throws(
      () => expandMountOptions(['-o', 'allow_other=yes']),
      /is on or off: write "allow_other" or "allow_other=false"/,
    );
    assert.throws(() => expandMountOptions(['-o']), /-o needs a list of options/);
  });

  test('parseArgs takes -o after the positionals, as mount.fuse places it', async () => {
    const parsed = await parseArgs(['s3://b', '/mnt/x', '-o', 'rw,uid=1000,noexec,read_part_size=8'], '0.0.0');
    assert.ok(parsed !== 'exit');
    assert.equal(parsed.flags.uid, 1000);
    assert.equal(parsed.flags['read-part-size'], 8);
    assert.deepEqual(parsed.kernelFlags, ['noexec']);
  });

  test('every option in deploy/fstab.example is one bucketfs knows', async () => {
    const text = await readFile(path.join(REPO_ROOT, 'deploy/fstab.example'), 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    assert.ok(lines.length >= 2);
    for (const line of lines) {
      const [source, target, type, options] = line.split(/\s+/);
      assert.equal(type, 'fuse.bucketfs');
      const parsed = await parseArgs([source as string, target as string, '-o', options as string], '0.0.0');
      assert.ok(parsed !== 'exit');
    }
  });
});
