// Entry point of `bucketfs`: parse, validate, then either mount in this process (--foreground)
// or start a detached daemon and return once it reports the mount live or failed.
// Every failure the user can cause ends as one line on stderr and a non-zero exit.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, fstat, writeSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type Config, resolveConfig } from '../config/config.js';
import { BucketfsError, describe, ErrorCodes } from '../errors.js';
import { createLogger } from '../log.js';
import { parseArgs } from './args.js';
import { startMount } from './daemon.js';

/** The daemon child reports on this fd: "ready" or "error <one line>". */
const READY_FD_ENV = 'BUCKETFS_READY_FD';

async function version(): Promise<string> {
  const pkg = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(await readFile(pkg, 'utf8')) as { version: string }).version;
}

function fail(err: unknown): never {
  const usage = err instanceof BucketfsError && err.code === ErrorCodes.InvalidArgument;
  const msg = err instanceof BucketfsError ? err.message : `unexpected error: ${describe(err)}`;
  reportToParent(`error ${msg}`);
  process.stderr.write(`bucketfs: ${msg}\n`);
  process.exit(usage ? 2 : 1);
}

/** Writes one line to the parent's readiness pipe, if we were started as a daemon. */
function reportToParent(line: string): void {
  const fd = Number(process.env[READY_FD_ENV]);
  if (!Number.isInteger(fd) || fd <= 2) return;
  try {
    // One short write to a pipe, once per process: sync is fine here and ordering matters.
    writeSync(fd, `${line.replace(/\n/g, ' ')}\n`);
    closeSync(fd);
  } catch {
    // The parent is gone; nothing to tell.
  }
  delete process.env[READY_FD_ENV];
}

async function runForeground(config: Readonly<Config>): Promise<void> {
  const log = createLogger(config.logLevel, config.logFormat, config.logFile ?? 2);
  let exitCode = 0;
  const running = await startMount(config, log, () => {
    log.flush?.();
    setTimeout(() => process.exit(exitCode), 50);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      void running.stop(sig);
    });
  }
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; unmounting');
    exitCode = 1;
    void running.stop('uncaughtException');
  });
  reportToParent('ready');
}

/**
 * True when our stderr is systemd's journal (a Type=forking service): JOURNAL_STREAM names the
 * device and inode of the stream systemd connected, and is inherited further than that stream may be.
 */
async function stderrIsJournal(): Promise<boolean> {
  const stream = process.env.JOURNAL_STREAM;
  if (!stream) return false;
  const st = await new Promise<{ dev: number; ino: number } | undefined>((resolve) =>
    fstat(2, (err, s) => resolve(err ? undefined : s)),
  );
  return st !== undefined && stream === `${st.dev}:${st.ino}`;
}

/**
 * Starts `bucketfs --foreground ...` detached and waits for its one-line report. The daemon's
 * output goes to --log-file, else to the journal when systemd started us, else nowhere: a terminal
 * or a pipe someone waits on (ssh, mount(8)) must not be held open by it.
 */
async function runDaemon(argv: string[], config: Readonly<Config>): Promise<void> {
  const script = fileURLToPath(new URL('../../../bin/bucketfs', import.meta.url));
  const logTarget = config.logFile ? await open(config.logFile, 'a') : undefined;
  const out = logTarget ? logTarget.fd : (await stderrIsJournal()) ? 2 : 'ignore';
  const child = spawn(process.execPath, [script, ...argv, '--foreground'], {
    detached: true,
    stdio: ['ignore', out, out, 'pipe'],
    env: { ...process.env, [READY_FD_ENV]: '3' },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let report = '';
  pipe.setEncoding('utf8');
  pipe.on('data', (d: string) => {
    report += d;
  });
  const [code] = (await Promise.race([once(pipe, 'end'), once(child, 'exit')])) as [number | null];
  await logTarget?.close();
  const line = report.trim();
  if (line === 'ready') {
    child.unref();
    (pipe as unknown as { destroy(): void }).destroy();
    process.stdout.write(
      `bucketfs: mounted ${config.backend === 'gcs' ? 'gs' : 's3'}://${config.bucket}/${config.prefix} at ${config.mountpoint} (pid ${child.pid})\n`,
    );
    process.exit(0);
  }
  const msg = line.startsWith('error ')
    ? line.slice(6)
    : `the mount process exited (${code ?? 'signal'}) before mounting; run with --foreground to see why`;
  process.stderr.write(`bucketfs: ${msg}\n`);
  process.exit(1);
}

export async function main(argv: string[]): Promise<void> {
  try {
    const parsed = await parseArgs(argv, await version());
    if (parsed === 'exit') return;
    const config = await resolveConfig(parsed);
    if (config.foreground) await runForeground(config);
    else await runDaemon(argv, config);
  } catch (err) {
    fail(err);
  }
}
