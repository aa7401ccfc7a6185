import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/config.js';
import { renderConfigDoc } from '../../src/config/doc.js';
import type { OptionFlag } from '../../src/config/options.js';
import { parseBucketUri } from '../../src/config/uri.js';
import { BucketfsError } from '../../src/errors.js';

const base = { bucketUri: 's3://bucket', mountpoint: '/mnt/x', env: {} };

function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof BucketfsError, String(err));
    assert.match(err.message, re);
    return true;
  });
}

test('bucket URIs: s3://, gs://, bare names, prefixes', () => {
  assert.deepEqual(parseBucketUri('s3://my-bucket'), { backend: 's3', bucket: 'my-bucket', prefix: '' });
  assert.deepEqual(parseBucketUri('gs://b.example/a/b'), { backend: 'gcs', bucket: 'b.example', prefix: 'a/b/' });
  assert.deepEqual(parseBucketUri('plain-bucket'), { backend: 's3', bucket: 'plain-bucket', prefix: '' });
  assert.throws(() => parseBucketUri('ftp://x'), /unknown scheme/);
  assert.throws(() => parseBucketUri('s3://UPPER'), /not a valid bucket name/);
  assert.throws(() => parseBucketUri('a/b'), /is not a bucket/);
});

test('defaults, then flags; TTL and size units', async () => {
  const c = await resolveConfig({ ...base, flags: {} });
  assert.equal(c.backend, 's3');
  assert.equal(c.region, 'us-east-1');
  assert.equal(c.statTtl, 60_000);
  assert.equal(c.fileMode, 0o644);
  assert.ok(Object.isFrozen(c));
  const d = await resolveConfig({
    ...base,
    flags: { 'stat-cache-ttl': -1, 'list-cache-ttl': 0, 'stat-cache-max-size-mb': -1 },
  });
  assert.equal(d.statTtl, Number.POSITIVE_INFINITY);
  assert.equal(d.listTtl, 0);
  assert.equal(d.statCacheBytes, Number.POSITIVE_INFINITY);
});

test('the FUSE op timeout outlasts every attempt timing out, unless set', async () => {
  const c = await resolveConfig({ ...base, flags: { 'max-attempts': 3, 'request-timeout': 10 } });
  // 3 attempts of 10 s, at most 800 + 1,600 ms of throttled backoff, 30 s margin: the store
  // answers EIO first.
  assert.equal(c.fuseOpTimeoutMs, 3 * 10_000 + 2_400 + 30_000);
  const d = await resolveConfig({ ...base, flags: { 'fuse-op-timeout': 5 } });
  assert.equal(d.fuseOpTimeoutMs, 5_000);
});

test('--metadata-ttl is an alias for both TTLs, and a specific flag wins', async () => {
  const a = await resolveConfig({ ...base, flags: { 'metadata-ttl': 'indefinite' } });
  assert.equal(a.statTtl, Number.POSITIVE_INFINITY);
  assert.equal(a.listTtl, Number.POSITIVE_INFINITY);
  const b = await resolveConfig({ ...base, flags: { 'metadata-ttl': 'minimal', 'list-cache-ttl': 30 } });
  assert.equal(b.statTtl, 0);
  assert.equal(b.listTtl, 30_000);
  await rejectsWith(resolveConfig({ ...base, flags: { 'metadata-ttl': 'soon' } }), /--metadata-ttl: must be seconds/);
});

test('YAML file under flags; unknown keys and wrong types are named', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bfs-cfg-'));
  const file = path.join(dir, 'c.yaml');
  await writeFile(file, 'metadata-cache:\n  ttl-secs: 300\nlogging:\n  level: debug\n');
  const c = await resolveConfig({ ...base, flags: { 'config-file': file, 'log-level': 'warn' } });
  assert.equal(c.statTtl, 300_000);
  assert.equal(c.logLevel, 'warn');
  await writeFile(file, 'metadata-cache:\n  ttl-sec: 3\n');
  await rejectsWith(resolveConfig({ ...base, flags: { 'config-file': file } }), /unknown key "metadata-cache.ttl-sec"/);
  await writeFile(file, 'metadata-cache:\n  ttl-secs: soon\n');
  await rejectsWith(
    resolveConfig({ ...base, flags: { 'config-file': file } }),
    /"metadata-cache.ttl-secs" must be a number/,
  );
  await writeFile(file, 'list-cache:\n  max-size-mb: -7\n');
  await rejectsWith(
    resolveConfig({ ...base, flags: { 'config-file': file } }),
    /list-cache-max-size-mb: must be at least 0/,
  );
  await writeFile(file, ': : :\n');
  await rejectsWith(resolveConfig({ ...base, flags: { 'config-file': file } }), /not valid YAML/);
});

test('options that do not apply to the backend are refused', async () => {
  await rejectsWith(
    resolveConfig({ ...base, bucketUri: 'gs://b-1', flags: { region: 'eu-west-1' } }),
    /--region: applies to s3/,
  );
  await rejectsWith(resolveConfig({ ...base, flags: { 'key-file': '/k.json' } }), /--key-file: applies to gs/);
  await rejectsWith(
    resolveConfig({ ...base, bucketUri: 's3://b-1/p/', flags: { prefix: 'q' } }),
    /either in the bucket URI or with --prefix/,
  );
});

test('docs/configuration.md is generated from the option table (npm run docs)', async () => {
  const committed = await readFile(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(committed, renderConfigDoc(), 'docs/configuration.md is stale: run npm run docs');
});

test('option names are checked by the compiler: a misspelt one does not build', () => {
  // @ts-expect-error 'max-atempts' is no option's flag
  const misspelt: OptionFlag = 'max-atempts';
  const right: OptionFlag = 'max-attempts';
  assert.notEqual(misspelt, right);
});
