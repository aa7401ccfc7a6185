// The yargs command line, generated from the option table. Numbers are taken as strings and
// checked by config/config.ts, so a bad value is reported as the user typed it.
import yargs, { type Argv } from 'yargs';
import { OPTIONS } from '../config/options.js';
import { BucketfsError, ErrorCodes, invalidArgument } from '../errors.js';
import { expandMountOptions } from './mount-options.js';

function usageError(message: string): BucketfsError {
  return new BucketfsError(ErrorCodes.InvalidArgument, message);
}

export interface ParsedArgs {
  bucketUri: string;
  mountpoint: string;
  /** Only flags present on the command line, keyed by option flag name, typed by the table. */
  flags: Record<string, string | number | boolean | undefined>;
  /** Kernel mount restrictions from -o lists (noexec, nosuid, nodev). */
  kernelFlags: string[];
}

export const USAGE = `bucketfs [options] <bucket> <mountpoint>

Mount an S3 or Google Cloud Storage bucket as a directory (read-write; --read-only for reads only).

  <bucket>      s3://bucket[/prefix/], gs://bucket[/prefix/], or a bare S3 bucket name
  <mountpoint>  an existing, empty or non-empty directory

Options may also be given as -o name[=value],... (fstab, mount -t fuse.bucketfs): -o allow_other,cache_dir=/x.

Unmount with: fusermount -u <mountpoint>   (or umount as root)`;

export function buildParser(argv: string[], version: string): Argv {
  let y = yargs(argv)
    .scriptName('bucketfs')
    .usage(USAGE)
    .version(version)
    .help('help')
    .alias('help', 'h')
    .strictOptions()
    // "--no-sign-request" is an option of its own, not the negation of "--sign-request".
    // Values stay strings (no 'parse-numbers'): numbers are checked, as typed, by config.ts.
    .parserConfiguration({ 'boolean-negation': false, 'camel-case-expansion': false, 'parse-numbers': false })
    .wrap(Math.min(110, process.stdout.columns || 100))
    .example('bucketfs s3://my-bucket /mnt/data', 'mount a bucket in the background')
    .example('bucketfs --foreground gs://my-bucket/images/ /mnt/images', 'mount a prefix, stay in the foreground')
    .example(
      'bucketfs --endpoint-url http://127.0.0.1:9000 --force-path-style s3://demo /mnt/demo',
      'mount a bucket on MinIO',
    )
    .example('bucketfs --cache-dir /var/cache/bucketfs s3://my-bucket /mnt/data', 'keep what is read on local disk')
    .epilog('Options can also come from a YAML file (--config-file); see docs/configuration.md.');
  for (const o of OPTIONS) {
    const dflt =
      o.default !== undefined ? `[default: ${String(o.default)}]` : o.defaultText ? `[default: ${o.defaultText}]` : '';
    const scope = o.backend === 'both' ? '' : `[${o.backend === 's3' ? 's3:// only' : 'gs:// only'}]`;
    // A number is parsed as a string (config.ts checks it and reports it as typed), but labelled
    // [number] in --help: yargs' own label would say [string].
    const numeric = o.type === 'number';
    y = y.option(o.flag, {
      ...(numeric ? { requiresArg: true } : { type: o.type === 'boolean' ? 'boolean' : 'string' }),
      describe: [o.describe, scope, dflt, numeric ? '[number]' : ''].filter(Boolean).join(' '),
      group: o.group,
      ...(o.alias ? { alias: o.alias } : {}),
      ...(o.choices ? { choices: o.choices } : {}),
    });
  }
  return y;
}

/** Parses argv; throws BucketfsError(InvalidArgument) with one line on any mistake. */
export async function parseArgs(given: string[], version: string): Promise<ParsedArgs | 'exit'> {
  const { argv, kernelFlags } = expandMountOptions(given);
  let failure: string | undefined;
  const parser = buildParser(argv, version).fail((msg, err) => {
    failure = msg ?? err?.message ?? 'invalid arguments';
  });
  let exited = false;
  const parsed = await parser.exitProcess(false).parseAsync(argv, {}, (err, _argv, output) => {
    if (output && !err) {
      process.stdout.write(`${output}\n`);
      exited = true;
    }
  });
  if (failure)
    throw usageError(
      `${failure.replace(/:?\s*\n\s*/g, ': ').replace(/[.:]\s*$/, '')}. Run bucketfs --help for the options.`,
    );
  if (exited || parsed.help || parsed.version) return 'exit';
  const positional = parsed._.map(String);
  if (positional.length !== 2) {
    throw usageError(
      `expected <bucket> <mountpoint>, got ${positional.length} argument(s). Run bucketfs --help for usage.`,
    );
  }
  const flags: ParsedArgs['flags'] = {};
  for (const o of OPTIONS) {
    const v = parsed[o.flag] as unknown;
    if (v === undefined) continue;
    if (Array.isArray(v)) throw invalidArgument(`--${o.flag}`, 'given more than once');
    if (o.type === 'number') {
      const s = String(v).trim();
      const n = s === '' ? Number.NaN : Number(s);
      if (Number.isNaN(n)) throw invalidArgument(`--${o.flag}`, `must be a number, got "${s}"`);
      flags[o.flag] = n;
    } else {
      flags[o.flag] = v as string | boolean;
    }
  }
  return { bucketUri: positional[0] as string, mountpoint: positional[1] as string, flags, kernelFlags };
}
