// Store requests counted by MinIO itself, per S3 API, from its metrics v3 endpoint
// (/minio/metrics/v3/api/requests). MinIO caches its metrics between refreshes (the v2 cluster
// endpoint lagged 6 s here), so a reading taken right after a workload can miss its last requests:
// settled() first makes one marker request no client makes (ListBuckets) and reads until the marker
// shows, so every request made before it is in the reading too.
import { createHmac } from 'node:crypto';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import type { Counts } from './count-proxy.js';
import { sleep } from './procs.js';

export interface MinioCreds {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** The bearer token `mc admin prometheus generate` makes: a JWT signed with the secret key. */
function token(c: MinioCreds): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS512', typ: 'JWT' });
  const body = b64({ exp: Math.floor(Date.now() / 1000) + 24 * 3600, sub: c.accessKeyId, iss: 'prometheus' });
  const sig = createHmac('sha512', c.secretAccessKey).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** Per-API request totals and the bytes MinIO sent, as it reports them now. */
export async function readApiCounts(c: MinioCreds): Promise<{ byApi: Record<string, number>; sent: number }> {
  const res = await fetch(`${c.endpoint}/minio/metrics/v3/api/requests`, {
    headers: { authorization: `Bearer ${token(c)}` },
  });
  if (!res.ok) throw new Error(`MinIO metrics: HTTP ${res.status}`);
  const byApi: Record<string, number> = {};
  let sent = 0;
  for (const line of (await res.text()).split('\n')) {
    const m = /^minio_api_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (m) {
      const name = /name="([^"]+)"/.exec(m[1] ?? '')?.[1] ?? '?';
      byApi[name] = (byApi[name] ?? 0) + Number(m[2]);
      continue;
    }
    const t = /^minio_api_requests_traffic_sent_bytes\{([^}]*)\}\s+(\S+)/.exec(line);
    if (t) sent += Number(t[2]);
  }
  return { byApi, sent };
}

/** The S3 APIs folded into the kinds the report shows. */
export function toCounts(byApi: Record<string, number>, sent: number): Counts {
  const c: Counts = { GET: 0, HEAD: 0, LIST: 0, OTHER: 0, bytesIn: sent };
  for (const [api, n] of Object.entries(byApi)) {
    if (api === 'GetObject') c.GET += n;
    else if (api === 'HeadObject' || api === 'HeadBucket') c.HEAD += n;
    else if (api.startsWith('ListObjects')) c.LIST += n;
    else if (api !== MARKER) c.OTHER += n;
  }
  return c;
}

const MARKER = 'ListBuckets';

/** Requests counted by MinIO once every request made so far is in its metrics. */
export async function settled(c: MinioCreds, timeoutMs = 30_000): Promise<Counts> {
  const before = (await readApiCounts(c)).byApi[MARKER] ?? 0;
  const s3 = new S3Client({
    endpoint: c.endpoint,
    region: c.region,
    forcePathStyle: true,
    credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
  });
  try {
    await s3.send(new ListBucketsCommand({}));
  } finally {
    s3.destroy();
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await readApiCounts(c);
    if ((now.byApi[MARKER] ?? 0) > before) return toCounts(now.byApi, now.sent);
    if (Date.now() > deadline) throw new Error('MinIO metrics did not show the marker request');
    await sleep(500);
  }
}
