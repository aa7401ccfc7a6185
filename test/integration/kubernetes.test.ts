// deploy/kubernetes/: every manifest validated with kubernetes-validate against the Kubernetes
// schemas it bundles (strict: an unknown field fails), and the DaemonSet's pieces checked against
// each other and against bucketfs itself: its arguments parse as bucketfs's own command line, the
// mountpoint and cache dir sit on the volumes meant for them, the probes use the metrics port and
// the mount, and the memory limit leaves room above --memory-limit-mb. No cluster is needed.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseArgs } from '../../src/cli/args.js';
import { resolveConfig } from '../../src/config/config.js';
import { REPO_ROOT } from '../helpers/mount.js';
import { run } from '../helpers/proc.js';
import { toolsBin } from '../helpers/servers.js';

const DIR = path.join(REPO_ROOT, 'deploy', 'kubernetes');
// The oldest Kubernetes release still maintained upstream, and the newest the checker bundles.
const K8S_VERSIONS = ['1.32.0', '1.37.0'];
// What the daemon holds beyond its read buffers (Node, the SDKs, metadata caches): the limit must
// leave at least this much above --memory-limit-mb (deploy/kubernetes/README.md, "Resources").
const OVERHEAD_MIB = 256;

// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
type Doc = any;

async function manifests(): Promise<string[]> {
  return (await readdir(DIR)).filter((f) => f.endsWith('.yaml')).map((f) => path.join(DIR, f));
}

async function docs(file: string): Promise<Doc[]> {
  return parseAllDocuments(await readFile(path.join(DIR, file), 'utf8')).map((d) => d.toJS());
}

function mebibytes(quantity: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(quantity);
  assert.ok(m, `memory quantity in Mi or Gi: ${quantity}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

/** Whether `p` is `dir` or under it. */
function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(`${dir.replace(/\/$/, '')}/`);
}

describe('Kubernetes manifests (deploy/kubernetes/)', () => {
  test('validate against the Kubernetes schemas (kubernetes-validate --strict)', async (t) => {
    let checker: string;
    try {
      checker = toolsBin('kubernetes-validate');
    } catch (err) {
      // CI installs it (scripts/setup.sh): there, its absence is a failure, not a skip.
      if (process.env.CI) throw err;
      t.skip((err as Error).message);
      return;
    }
    const files = await manifests();
    assert.ok(files.length >= 3, `manifests in ${DIR}`);
    for (const version of K8S_VERSIONS) {
      const r = await run(checker, ['--strict', '--quiet', '-k', version, ...files]);
      assert.equal(r.code, 0, `kubernetes-validate -k ${version}: ${r.stdout.toString()}${r.stderr}`);
    }
  });

  test('the DaemonSet runs bucketfs with arguments it accepts, on the volumes meant for them', async () => {
    const ds = (await docs('daemonset.yaml')).find((d) => d?.kind === 'DaemonSet');
    assert.ok(ds, 'daemonset.yaml has a DaemonSet');
    const pod = ds.spec.template.spec;
    const c = pod.containers.find((x: Doc) => x.name === 'bucketfs');
    const parsed = await parseArgs(c.args, '0.0.0');
    assert.notEqual(parsed, 'exit');
    if (parsed === 'exit') return;
    const config = await resolveConfig({ ...parsed, env: {} });

    const mountOf = (dir: string) =>
      c.volumeMounts.find((v: Doc) => under(dir, v.mountPath)) as { name: string; mountPropagation?: string };
    const hostPath = (name: string) => pod.volumes.find((v: Doc) => v.name === name)?.hostPath?.path as string;
    assert.equal(mountOf(config.mountpoint)?.mountPropagation, 'Bidirectional', 'the mount propagates to the host');
    assert.ok(config.cacheDir, '--cache-dir is set');
    assert.ok(hostPath(mountOf(config.cacheDir).name), 'the cache dir is a hostPath, kept across restarts');
    assert.ok(
      pod.volumes.some((v: Doc) => v.hostPath?.path === '/dev/fuse'),
      'the FUSE device is handed to the container',
    );
    assert.equal(c.securityContext.privileged, true, 'Bidirectional propagation needs a privileged container');

    const port = c.ports.find((p: Doc) => p.name === c.livenessProbe.httpGet.port)?.containerPort;
    assert.equal(port, config.metricsPort, 'the liveness probe asks the metrics server');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(config.metricsHost, '0.0.0.0', 'the kubelet reaches the metrics server');
    assert.ok(
      c.readinessProbe.exec.command.join(' ').includes(` ${config.mountpoint} fuse.bucketfs `),
      'ready once the mount is listed',
    );

    const limit = mebibytes(c.resources.limits.memory);
    const budget = config.memoryLimitBytes / 1024 / 1024;
    assert.equal(
      mebibytes(c.resources.requests.memory),
      limit,
      'requests = limits: the budget is reserved on the node',
    );
    assert.ok(
      limit >= budget + OVERHEAD_MIB,
      `memory limit ${limit} MiB leaves ${OVERHEAD_MIB} MiB above --memory-limit-mb ${budget}`,
    );
  });

  test('the workload pod mounts the DaemonSet host directory read-only with HostToContainer', async () => {
    const ds = (await docs('daemonset.yaml')).find((d) => d?.kind === 'DaemonSet');
    const dsMounts = ds.spec.template.spec.volumes.find((v: Doc) => v.name === 'mounts').hostPath.path;
    const pod = (await docs('workload.example.yaml')).find((d) => d?.kind === 'Pod');
    assert.ok(pod, 'workload.example.yaml has a Pod');
    const vol = pod.spec.volumes.find((v: Doc) => v.hostPath?.path === dsMounts);
    assert.ok(vol, `the pod mounts ${dsMounts}`);
    for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
      const m = c.volumeMounts.find((v: Doc) => v.name === vol.name);
      assert.equal(m.readOnly, true, `${c.name}: read-only`);
      assert.equal(m.mountPropagation, 'HostToContainer', `${c.name}: sees mounts made after it started`);
    }
  });
});
