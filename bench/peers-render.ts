// Re-renders the peers section of docs/benchmarks.md from a finished run's JSON, without measuring
// anything. Usage: node dist/bench/peers-render.js PEERS.json OUT_DIR [PYTHON]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type PeersReport, writePeersReport } from './peers-report.js';

const [jsonFile, outDir, python] = process.argv.slice(2);
if (!jsonFile || !outDir) {
  process.stderr.write('usage: node dist/bench/peers-render.js PEERS.json OUT_DIR [PYTHON]\n');
  process.exit(2);
}
const report = JSON.parse(readFileSync(jsonFile, 'utf8')) as PeersReport;
const root = fileURLToPath(new URL('../../', import.meta.url));
for (const f of writePeersReport(report, jsonFile, outDir, root, python)) process.stdout.write(`wrote ${f}\n`);
