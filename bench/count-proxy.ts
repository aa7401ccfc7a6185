// A counting HTTP proxy in front of a store: every request a client makes passes through it and is
// counted by kind (GET of object bytes, HEAD-like metadata reads, LIST, other), with the response
// bytes sent back. Used where the server keeps no request metrics of its own (fake-gcs-server) and
// where a per-second series is wanted (the training-loop simulator): MinIO's own metrics refresh
// only every ~10 s. The same proxy is in front of every client of a comparison, so its cost is
// shared alike.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

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
  counts(): Counts;
  stop(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 (a free port), forwarding to `upstream` (http://host:port). */
export async function startCountProxy(upstream: string): Promise<CountProxy> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const c = zeroCounts();
  const server = http.createServer((req, res) => {
    const kind = classify(req.method ?? 'GET', req.url ?? '/');
    c[kind]++;
    const fwd = http.request(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
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
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts: () => ({ ...c }),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

/** Serves the proxy's cumulative counts as JSON (GET /), for a child process to sample. */
export async function serveCounts(proxy: CountProxy): Promise<{ url: string; stop(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(proxy.counts()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
