// The operators' view against a live mount on MinIO: /healthz answers, every metric the Grafana
// dashboard (deploy/grafana/bucketfs.json) queries is in /metrics, and docs/metrics.md lists every
// metric bucketfs exports with the labels its series carry.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Mounted, mountBucket, REPO_ROOT } from '../helpers/mount.js';
import { runOk } from '../helpers/proc.js';
import { startServer, type TestServer } from '../helpers/servers.js';

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
}

/** Metric families in a /metrics text (# TYPE lines), with the label names their series carry. */
function families(text: string): Map<string, { type: string; labels: Set<string> }> {
  const out = new Map<string, { type: string; labels: Set<string> }>();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (m) out.set(m[1] as string, { type: m[2] as string, labels: new Set() });
  }
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)\{([^}]*)\}/.exec(line);
    if (!m) continue;
    const name = m[1] as string;
    const family = out.get(name) ?? out.get(name.replace(/_(bucket|sum|count)$/, ''));
    for (const pair of (m[2] as string).split(',')) {
      const label = pair.slice(0, pair.indexOf('='));
      if (label && label !== 'le' && label !== 'quantile') family?.labels.add(label);
    }
  }
  return out;
}

/** The family a name in a query belongs to: histograms are queried by their _bucket series. */
function familyOf(name: string, known: Map<string, unknown>): string {
  if (known.has(name)) return name;
  return name.replace(/_(bucket|sum|count)$/, '');
}

describe('metrics, /healthz, the Grafana dashboard and docs/metrics.md', { concurrency: false }, () => {
  let server: TestServer;
  let m: Mounted;
  let text: string;

  before(async () => {
    server = await startServer('minio');
    await server.createBucket('ops');
    await server.putObject('ops', 'dir/a.bin', Buffer.alloc(3 * 1024 * 1024, 7));
    await server.putObject('ops', 'b.txt', 'b');
    m = await mountBucket(server, 'ops', { args: ['--memory-limit-mb', '64'] });
    // Some traffic, so that the labelled series exist: a listing, stats, reads, a miss.
    await runOk('sh', ['-c', `cd '${m.mountpoint}' && ls -R . >/dev/null && cat dir/a.bin b.txt >/dev/null`]);
    await runOk('sh', ['-c', `stat '${m.mountpoint}/missing' 2>/dev/null || true`]);
    text = await m.metricsText();
  });

  after(async () => {
    await m?.unmount();
    await server?.stop();
  });

  test('/healthz answers 200 ok', async () => {
    const res = await fetch(`http://127.0.0.1:${m.metricsPort}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok\n');
  });

  test('every metric a dashboard panel queries is exported', async () => {
    const dash = JSON.parse(await readFile(path.join(REPO_ROOT, 'deploy/grafana/bucketfs.json'), 'utf8')) as {
      panels: Panel[];
    };
    const known = families(text);
    const panels = dash.panels.filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 6, 'the dashboard has its panels');
    for (const p of panels) {
      const exprs = (p.targets ?? []).map((t) => t.expr);
      assert.ok(exprs.length > 0, `panel "${p.title}" has a query`);
      for (const expr of exprs) {
        const names = expr.match(/\bbucketfs_[a-z0-9_]+/g) ?? [];
        for (const name of names) {
          assert.ok(known.has(familyOf(name, known)), `panel "${p.title}": ${name} is not in /metrics`);
        }
      }
    }
    // The panels the dashboard promises, by what they show.
    const all = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const name of [
      'bucketfs_store_requests_total',
      'bucketfs_store_bytes_in_total',
      'bucketfs_read_bytes_served_total',
      'bucketfs_cache_events_total',
      'bucketfs_prefetch_window_bytes_bucket',
      'bucketfs_read_buffer_bytes',
      'bucketfs_fuse_op_duration_seconds_bucket',
    ])
      assert.ok(all.includes(name), `a panel shows ${name}`);
  });

  test('docs/metrics.md lists every exported metric with the labels its series carry', async () => {
    const doc = await readFile(path.join(REPO_ROOT, 'docs/metrics.md'), 'utf8');
    const rows = new Map<string, Set<string>>();
    for (const line of doc.split('\n')) {
      const cells = line.split('|').map((c) => c.trim());
      const name = /^`(bucketfs_[a-z0-9_]+)`$/.exec(cells[1] ?? '')?.[1];
      if (name) rows.set(name, new Set((cells[3] ?? '').match(/[a-z_]+/g) ?? []));
    }
    const known = families(text);
    for (const [name, { labels }] of known) {
      // prom-client's process metrics are described as a group, by prefix.
      if (/^bucketfs_(process|nodejs)_/.test(name)) {
        const prefix = name.startsWith('bucketfs_process_') ? 'bucketfs_process_*' : 'bucketfs_nodejs_';
        assert.ok(doc.includes(prefix), `docs/metrics.md describes ${name} (${prefix})`);
        continue;
      }
      const documented = rows.get(name);
      assert.ok(documented, `docs/metrics.md has a row for ${name}`);
      for (const label of labels) assert.ok(documented.has(label), `docs/metrics.md: ${name} has label ${label}`);
    }
    for (const name of rows.keys()) assert.ok(known.has(name), `docs/metrics.md lists ${name}, which is not exported`);
  });
});
