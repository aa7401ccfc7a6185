// Re-renders a report from a finished run's JSON, without measuring anything: for changes to the
// report's wording or layout. Usage: node dist/bench/render.js RESULTS.json OUT_DIR [PYTHON]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type RunReport, writeReport } from './report.js';

const [jsonFile, outDir, python] = process.argv.slice(2);
if (!jsonFile || !outDir) {
  process.stderr.write('usage: node dist/bench/render.js RESULTS.json OUT_DIR [PYTHON]\n');
  process.exit(2);
}
const report = JSON.parse(readFileSync(jsonFile, 'utf8')) as RunReport;
const root = fileURLToPath(new URL('../../', import.meta.url));
for (const f of writeReport(report, jsonFile, outDir, root, python)) process.stdout.write(`wrote ${f}\n`);
