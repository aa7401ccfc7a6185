// Summarizes a V8 CPU profile of the daemon (node --cpu-prof): self time by category (bucketfs,
// the AWS SDK, fuse-native, Node core, idle, GC) and the functions with the most self time. Shared
// by the limits benchmark and the peer comparison.
import { readFileSync } from 'node:fs';
import type { Net, ProfileSummary } from './report.js';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  samples: number[];
}

function category(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle (waiting for FUSE or the network)';
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(program)') return 'native (libuv, libfuse glue, V8 internals)';
  if (url.includes('@aws-sdk') || url.includes('@smithy')) return 'AWS SDK';
  if (url.includes('fuse-native')) return 'fuse-native (JS)';
  if (url.includes('/dist/src/')) return 'bucketfs';
  if (url.includes('node_modules')) return 'other dependencies';
  if (url.startsWith('node:') || url === '') return 'Node core (http, streams, buffers)';
  return 'other';
}

export function summarizeProfile(file: string, workload: string, net: Net): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const counts = new Map<number, number>();
  for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const total = prof.samples.length || 1;
  const cats = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, n] of counts) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const cat = category(url, functionName);
    cats.set(cat, (cats.get(cat) ?? 0) + n);
    const where = url
      ? ` ${url.replace(/^.*\/(node_modules|dist)\//, '').replace(/^file:\/\//, '')}:${lineNumber + 1}`
      : '';
    const name = `${functionName || '(anonymous)'}${where}`;
    fns.set(name, (fns.get(name) ?? 0) + n);
  }
  const top = (m: Map<string, number>, k: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, n]) => ({ name, pct: (100 * n) / total }));
  return { workload, net, categories: top(cats, 8), functions: top(fns, 10) };
}
