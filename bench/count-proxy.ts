// A counting HTTP proxy in front of a store: every request a client makes passes through it and is
// counted by kind (GET of object bytes, HEAD-like metadata reads, LIST, other), with the response
// bytes sent back. Used where the server keeps no request metrics of its own (fake-gcs-server) and
// where a per-second series is wanted (the training-loop simulator): MinIO's own metrics refresh
// only every ~10 s. The same proxy is in front of every client of a comparison, so its cost is
// shared alike. It runs in a process of its own (node dist/bench/count-proxy.js UPSTREAM TAG): in
// the driver, a synchronous call into a mount (a directory listing) would stall the proxy the mount
// itself is waiting on.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onCleanup, recordPid, stopChild } from './procs.js';

/** The proxy's own path for its counts; no store request looks like it. */
export const COUNTS_PATH = '/__bench_counts';

export type Kind = 'GET' | 'HEAD' | 'LIST' | 'OTHER';

export interface Counts {
  GET: number;
  HEAD: number;
  LIST: number;
  OTHER: number;
  /** Response bytes (headers excluded) sent from the store to clients. */
  bytesIn: number;
}

export function zeroCounts(): Counts {
  return { GET: 0, HEAD: 0, LIST: 0, OTHER: 0, bytesIn: 0 };
}

export function diffCounts(a: Counts, b: Counts): Counts {
  return {
    GET: b.GET - a.GET,
    HEAD: b.HEAD - a.HEAD,
    LIST: b.LIST - a.LIST,
    OTHER: b.OTHER - a.OTHER,
    bytesIn: b.bytesIn - a.bytesIn,
  };
}

/**
 * What a request is, for S3 (path-style) and the GCS JSON/XML APIs: a LIST names a bucket and a
 * listing (S3 `list-type`/`prefix`/`delimiter`; GCS `/b/B/o` without an object); a GET of bytes is
 * a plain object GET (S3, GCS XML) or `alt=media`; a GCS object GET without it is a metadata
 * read, counted with HEAD as the stat it stands for.
 */
export function classify(method: string, rawUrl: string): Kind {
  const url = new URL(rawUrl, 'http://x');
  const p = url.pathname;
  if (method === 'HEAD') return 'HEAD';
  if (method !== 'GET') return 'OTHER';
  if (p.startsWith('/storage/v1/b/')) {
    const rest = p.slice('/storage/v1/b/'.length).split('/');
    if (rest.length === 2 && rest[1] === 'o') return 'LIST';
    if (rest.length >= 3 && rest[1] === 'o') return url.searchParams.get('alt') === 'media' ? 'GET' : 'HEAD';
    return 'OTHER';
  }
  if (p.startsWith('/download/storage/v1/')) return 'GET';
  const segs = p.split('/').filter(Boolean);
  // A bucket-level GET is a listing unless it asks for a bucket property (?location, ?versioning).
  if (segs.length === 1) return [...url.searchParams.keys()].some((k) => BUCKET_PROPS.has(k)) ? 'OTHER' : 'LIST';
  return segs.length === 0 ? 'OTHER' : 'GET';
}

const BUCKET_PROPS = new Set(['location', 'versioning', 'acl', 'policy', 'tagging', 'lifecycle', 'cors']);

export interface CountProxy {
  endpoint: string;
  /** Its cumulative counts, as JSON at this URL (for a child process to sample). */
  countsUrl: string;
  counts(): Promise<Counts>;
  stop(): Promise<void>;
}

/** Runs the proxy in this process until it is killed; its port goes to stdout. */
async function serve(upstream: string, rewriteHost: boolean): Promise<void> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const c = zeroCounts();
  const server = http.createServer((req, res) => {
    if (req.url === COUNTS_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(c));
      return;
    }
    const kind = classify(req.method ?? 'GET', req.url ?? '/');
    c[kind]++;
    const fwd = http.request(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: rewriteHost ? { ...req.headers, host: up.host } : req.headers,
        agent,
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.on('data', (d: Buffer) => {
          c.bytesIn += d.length;
        });
        upRes.pipe(res);
      },
    );
    fwd.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(fwd);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
}

/**
 * Starts the proxy as a child process in front of `upstream`; `tag` (a path under the run's work
 * dir) names it on its command line, so bench/run.sh's sweep knows it for ours. `rewriteHost`: send
 * the upstream's own Host header (fake-gcs-server routes XML-API paths by it); S3 clients sign the
 * Host they sent, so for MinIO it must pass unchanged.
 */
export async function startCountProxy(upstream: string, tag: string, rewriteHost = false): Promise<CountProxy> {
  const script = fileURLToPath(import.meta.url);
  const args = [script, upstream, tag, ...(rewriteHost ? ['--rewrite-host'] : [])];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  recordPid(child.pid, 'count-proxy');
  const drop = onCleanup('count-proxy', () => stopChild(child, 2000));
  let out = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    out += d;
  });
  await Promise.race([
    (async () => {
      while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 20));
    })(),
    once(child, 'exit').then(() => {
      throw new Error('the counting proxy exited at start');
    }),
  ]);
  const endpoint = `http://127.0.0.1:${out.trim()}`;
  const countsUrl = `${endpoint}${COUNTS_PATH}`;
  return {
    endpoint,
    countsUrl,
    counts: async () => (await (await fetch(countsUrl)).json()) as Counts,
    stop: async () => {
      await stopChild(child, 2000);
      drop();
    },
  };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const upstream = process.argv[2];
  if (!upstream) {
    process.stderr.write('usage: node dist/bench/count-proxy.js UPSTREAM [TAG] [--rewrite-host]\n');
    process.exit(2);
  }
  void serve(upstream, process.argv.includes('--rewrite-host'));
}
