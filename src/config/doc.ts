// Renders docs/configuration.md from the option table (npm run docs). A unit test fails when the
// committed file differs, so the reference cannot drift from --help and the YAML keys.
import { OPTIONS, type OptionSpec } from './options.js';

function defaultOf(o: OptionSpec): string {
  if (o.default !== undefined) return `\`${String(o.default)}\``;
  return o.defaultText ?? 'unset';
}

function backendOf(o: OptionSpec): string {
  return o.backend === 'both' ? 's3, gcs' : o.backend;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export function renderConfigDoc(): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/options.ts by `npm run docs`; do not edit by hand. -->',
    '',
    'Every option can be given on the command line (`--flag value`) and, where a YAML key is listed,',
    'in the file named by `--config-file`. Precedence: built-in defaults, then the YAML file, then flags.',
    'Unknown YAML keys and values of the wrong type are rejected with the key named.',
    'In an fstab line or `mount -t fuse.bucketfs`, options go in the `-o` list by name:',
    '`-o allow_other,cache_dir=/var/cache/bucketfs` (docs/deployment.md).',
    '',
    'TTLs follow gcsfuse: `0` revalidates on every use, `-1` never expires, `N` is seconds.',
    'Sizes are MiB; `-1` means no bound.',
    '',
  ];
  const groups = [...new Set(OPTIONS.map((o) => o.group))];
  for (const g of groups) {
    out.push(
      `## ${g.replace(/:$/, '')}`,
      '',
      '| flag | YAML key | backends | default | description |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const o of OPTIONS.filter((x) => x.group === g)) {
      const flag = `\`--${o.flag}\`${o.alias ? ` (\`-${o.alias}\`)` : ''}`;
      const choices = o.choices ? ` One of: ${o.choices.map((c) => `\`${c}\``).join(', ')}.` : '';
      out.push(
        `| ${flag} | ${o.yaml ? `\`${o.yaml}\`` : '—'} | ${backendOf(o)} | ${cell(defaultOf(o))} | ${cell(o.describe + choices)} |`,
      );
    }
    out.push('');
  }
  out.push(
    '## Example file',
    '',
    '```yaml',
    'endpoint-url: http://127.0.0.1:9000',
    's3:',
    '  region: us-east-1',
    '  force-path-style: true',
    'metadata-cache:',
    '  ttl-secs: 300',
    '  negative-ttl-secs: 10',
    'list-cache:',
    '  ttl-secs: 300',
    'logging:',
    '  level: info',
    '```',
    '',
  );
  return out.join('\n');
}
