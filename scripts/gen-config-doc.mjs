// Writes docs/configuration.md from the option table (run after `npm run build`).
import { writeFile } from 'node:fs/promises';
import { renderConfigDoc } from '../dist/src/config/doc.js';

await writeFile(new URL('../docs/configuration.md', import.meta.url), renderConfigDoc());
