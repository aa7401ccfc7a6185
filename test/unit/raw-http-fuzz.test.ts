// Property-based test of raw-http.ts's reader (issue 26): generated responses (random status,
// headers in random case and order, bodies by Content-Length or chunked with random chunk splits,
// interim responses, trailers), some mutated on the wire (bytes flipped, inserted or deleted,
// headers duplicated or bent, framings made to conflict, bad chunk sizes, wrong lengths, bytes
// after the end, truncation), served over loopback in random pieces, several on one keep-alive
// socket. Each request must yield exactly the body the generator meant, or fail with an error:
// never other bytes, never a hang. A response that was not mutated, after none that were, must
// be read.
//
// Random byte edits spare the bytes whose change makes another valid response with other content
// (body bytes, status digits, Content-Length digits, chunk-size digits): no reader could tell
// those apart; the wrong-length and bad-chunk-size mutations change those on purpose, to values
// the framing must catch. A 2xx is read as the adapters read it (read-body.ts): into a buffer of
// the size asked for, a different count failing.
//
// CI runs BUCKETFS_FUZZ_RUNS (default 150) cases from the fixed seed BUCKETFS_FUZZ_SEED (26);
// a soak run sets more, and another seed (docs/testing.md, "The HTTP reader").
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { buffer as drain } from 'node:stream/consumers';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { type RawBody, RawHttpHandler } from '../../src/store/raw-http.js';

const RUNS = Number(process.env.BUCKETFS_FUZZ_RUNS ?? 150);
const SEED = Number(process.env.BUCKETFS_FUZZ_SEED ?? 26);
/** The server closes a socket that got no new request this long after a response's last byte. */
const LINGER_MS = 40;
/** A case (all its requests) that takes longer hangs. */
const CASE_MS = 8_000;

// ---------------------------------------------------------------------------------------------
// What the generator makes

const EXTRA_NAMES = ['ETag', 'x-amz-request-id', 'Date', 'Content-Type', 'Last-Modified', 'Server', 'x-goog-hash'];
const TRAILER_NAMES = ['X-Checksum', 'Server-Timing'];
const VALUE_CHARS = 'abcXYZ019 \t"=/;,:-_\x80\xe9\xff';
const STATUSES = [200, 206, 204, 403, 404, 412, 500, 503];

type Mutation =
  | { kind: 'flip'; at: number; byte: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'conflict' }
  | { kind: 'fold'; at: number }
  | { kind: 'spaceColon'; at: number }
  | { kind: 'chunkedSuccess' }
  | { kind: 'badSize'; at: number; how: number }
  | { kind: 'length'; delta: number }
  | { kind: 'extra'; how: number }
  | { kind: 'truncate'; at: number };

interface Exchange {
  status: number;
  /** Small bodies come from fast-check; large ones (past the 64 KiB read buffer) from a seed. */
  small: Uint8Array;
  large: { size: number; seed: number } | null;
  chunked: boolean;
  chunkSizes: number[];
  sizeStyle: number;
  extensions: boolean;
  trailers: [string, string][];
  extras: [string, string][];
  /** Bits: which letters of each header name are upper case. */
  caseBits: number;
  /** Seed of the header order. */
  order: number;
  ows: [number, number];
  http10: boolean;
  close: boolean;
  interim: boolean;
  reason: string;
  /** Write boundaries (as fractions of the bytes before the end) and the pause before each write. */
  cuts: number[];
  pauses: number[];
  mutation: Mutation | null;
}

const header = fc.tuple(
  fc.constantFrom(...EXTRA_NAMES),
  fc.string({ unit: fc.constantFrom(...VALUE_CHARS.split('')), minLength: 1, maxLength: 12 }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('conflict' as const) }),
  fc.record({ kind: fc.constant('fold' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('spaceColon' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('chunkedSuccess' as const) }),
  fc.record({ kind: fc.constant('badSize' as const), at: fc.nat(), how: fc.nat(9) }),
  fc.record({ kind: fc.constant('length' as const), delta: fc.constantFrom(-3, -2, -1, 1, 2, 3) }),
  fc.record({ kind: fc.constant('extra' as const), how: fc.nat(3) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

const exchange: fc.Arbitrary<Exchange> = fc.record({
  status: fc.constantFrom(...STATUSES),
  small: fc.uint8Array({ maxLength: 600 }),
  large: fc.oneof(
    { weight: 7, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.record({ size: fc.integer({ min: 1, max: 150_000 }), seed: fc.nat() }) },
  ),
  chunked: fc.boolean(),
  chunkSizes: fc.array(fc.integer({ min: 1, max: 40_000 }), { maxLength: 6 }),
  sizeStyle: fc.nat(2),
  extensions: fc.boolean(),
  trailers: fc.array(fc.tuple(fc.constantFrom(...TRAILER_NAMES), fc.constantFrom('abc', 'x=1, y=2')), {
    maxLength: 2,
  }),
  extras: fc.array(header, { maxLength: 4 }),
  caseBits: fc.nat(),
  order: fc.nat(),
  ows: fc.tuple(fc.nat(3), fc.nat(3)),
  http10: fc.boolean(),
  close: fc.boolean(),
  interim: fc.boolean(),
  reason: fc.constantFrom('', 'OK', 'Partial Content', 'Not Found', 'Oh no \xe9'),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
  pauses: fc.array(fc.nat(3), { minLength: 5, maxLength: 5 }),
  mutation: fc.option(mutation, { freq: 2 }),
});

// ---------------------------------------------------------------------------------------------
// Building the bytes of a response

/** A run of wire bytes; `fixed` ones carry content another valid response could have instead. */
interface Segment {
  bytes: Buffer;
  fixed: boolean;
}

const seg = (s: string | Buffer, fixed = false): Segment => ({
  bytes: typeof s === 'string' ? Buffer.from(s, 'latin1') : s,
  fixed,
});

function bodyOf(ex: Exchange): Buffer {
  if (ex.status === 204) return Buffer.alloc(0);
  if (!ex.large) return Buffer.from(ex.small);
  // xorshift32: a large body without asking fast-check for 150,000 numbers.
  const out = Buffer.allocUnsafe(ex.large.size);
  let x = ex.large.seed | 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function mixCase(name: string, bits: number): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as string;
    out += (bits >>> (i % 31)) & 1 ? c.toUpperCase() : c.toLowerCase();
  }
  return out;
}

const OWS = ['', ' ', '\t', ' \t '];

interface Wire {
  bytes: Buffer;
  /** Per byte: 1 where a random edit must not land (Segment.fixed). */
  fixed: Uint8Array;
  /** Where the response ends as its (possibly mutated) framing says; later bytes are written with the end. */
  end: number;
  body: Buffer;
  mutated: boolean;
  /** The server closes the socket after it (Connection: close). */
  close: boolean;
}

function build(ex: Exchange): Wire {
  const body = bodyOf(ex);
  const m = ex.mutation;
  const success = ex.status < 300;
  const chunked = ex.status !== 204 && ((!success && ex.chunked) || m?.kind === 'chunkedSuccess');
  // Header lines: [name, value segments].
  const lines: Segment[][] = [];
  const field = (name: string, value: Segment[]): Segment[] => [
    seg(`${mixCase(name, ex.caseBits)}:${OWS[ex.ows[0]]}`),
    ...value,
    seg(`${OWS[ex.ows[1]]}\r\n`),
  ];
  for (const [name, value] of ex.extras) lines.push(field(name, [seg(value)]));
  if (ex.http10) lines.push(field('Connection', [seg('keep-alive')]));
  else if (ex.close) lines.push(field('Connection', [seg('close')]));
  let length = body.length;
  if (m?.kind === 'length' && !chunked) length = Math.max(0, length + m.delta);
  if (chunked) lines.push(field('Transfer-Encoding', [seg('chunked')]));
  else if (ex.status !== 204) lines.push(field('Content-Length', [seg(String(length), true)]));
  if (m?.kind === 'conflict') {
    lines.push(
      chunked
        ? field('Content-Length', [seg(String(body.length), true)])
        : field('Transfer-Encoding', [seg('chunked')]),
    );
  }
  // Random order (Fisher-Yates from the seed).
  let r = ex.order;
  for (let i = lines.length - 1; i > 0; i--) {
    r = (r * 1103515245 + 12345) >>> 0;
    const j = r % (i + 1);
    [lines[i], lines[j]] = [lines[j] as Segment[], lines[i] as Segment[]];
  }
  if (lines.length > 0) {
    const at = (n: number) => n % lines.length;
    if (m?.kind === 'duplicate') lines.splice(at(m.at), 0, lines[at(m.at)] as Segment[]);
    if (m?.kind === 'fold') lines.splice(at(m.at) + 1, 0, [seg(' folded value\r\n')]);
    if (m?.kind === 'spaceColon') {
      const line = lines[at(m.at)] as Segment[];
      const first = line[0] as Segment;
      lines[at(m.at)] = [seg(first.bytes.toString('latin1').replace(':', ' :')), ...line.slice(1)];
    }
  }
  const segments: Segment[] = [];
  if (ex.interim) segments.push(seg('HTTP/1.1 '), seg('100', true), seg(' Continue\r\n\r\n'));
  segments.push(seg(ex.http10 ? 'HTTP/1.0 ' : 'HTTP/1.1 '), seg(String(ex.status), true));
  segments.push(seg(ex.reason ? ` ${ex.reason}\r\n` : '\r\n'));
  for (const line of lines) segments.push(...line);
  segments.push(seg('\r\n'));
  const headEnd = segments.reduce((n, s) => n + s.bytes.length, 0);
  if (chunked) {
    const chunks: Buffer[] = [];
    let at = 0;
    for (const size of ex.chunkSizes) {
      if (at >= body.length) break;
      chunks.push(body.subarray(at, at + size));
      at += size;
    }
    if (at < body.length) chunks.push(body.subarray(at));
    const hex = (n: number) =>
      ex.sizeStyle === 0 ? n.toString(16) : ex.sizeStyle === 1 ? n.toString(16).toUpperCase() : `00${n.toString(16)}`;
    const bad = m?.kind === 'badSize' ? m.at % (chunks.length + 1) : -1;
    const sizeOf = (i: number, n: number): Segment => {
      if (i !== bad || m?.kind !== 'badSize') return seg(hex(n), true);
      const h = n.toString(16);
      const forms = [`${h}g`, `0x${h}`, `-${h}`, `+${h}`, ` ${h}`, `${h} `, (n + 1).toString(16), '', 'fffffffffffff'];
      // n - 1 for the last chunk (0) would be -1: bigger instead.
      forms.push(n > 0 ? (n - 1).toString(16) : '1');
      return seg(forms[m.how] as string, true);
    };
    for (const [i, c] of chunks.entries()) {
      segments.push(sizeOf(i, c.length), seg(ex.extensions ? ';q=z;name="v v"\r\n' : '\r\n'));
      segments.push(seg(c, true), seg('\r\n'));
    }
    segments.push(sizeOf(chunks.length, 0), seg('\r\n'));
    for (const [name, value] of ex.trailers) segments.push(seg(`${name}: ${value}\r\n`));
    segments.push(seg('\r\n'));
  } else {
    segments.push(seg(body, true));
  }
  let bytes = Buffer.concat(segments.map((s) => s.bytes));
  let fixed = new Uint8Array(bytes.length);
  let o = 0;
  for (const s of segments) {
    if (s.fixed) fixed.fill(1, o, o + s.bytes.length);
    o += s.bytes.length;
  }
  let end = bytes.length;
  if (m?.kind === 'length' && !chunked) end = Math.min(bytes.length, headEnd + length);
  // Random byte edits, where they cannot make another valid response (see the top).
  if (m?.kind === 'flip' || m?.kind === 'delete') {
    const free = [...fixed.keys()].filter((i) => fixed[i] === 0);
    const i = free[m.at % free.length] as number;
    if (m.kind === 'flip') bytes[i] = m.byte;
    else {
      bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
      fixed = Uint8Array.from([...fixed.subarray(0, i), ...fixed.subarray(i + 1)]);
    }
    end = bytes.length;
  } else if (m?.kind === 'insert') {
    // Between two free bytes, or before the first.
    const gaps = [...fixed.keys()].filter((i) => fixed[i] === 0 && (i === 0 || fixed[i - 1] === 0));
    const i = gaps[m.at % gaps.length] as number;
    bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([m.byte]), bytes.subarray(i)]);
    fixed = Uint8Array.from([...fixed.subarray(0, i), 0, ...fixed.subarray(i)]);
    end = bytes.length;
  } else if (m?.kind === 'extra') {
    const extras = [
      'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil',
      '\r\n',
      'x',
      `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\n\r\n`,
    ];
    bytes = Buffer.concat([bytes, Buffer.from(extras[m.how] as string, 'latin1')]);
  } else if (m?.kind === 'truncate') {
    end = m.at % bytes.length;
    bytes = bytes.subarray(0, end);
  }
  return { bytes, fixed, end, body, mutated: m !== null, close: ex.close && !ex.http10 };
}

// ---------------------------------------------------------------------------------------------
// The server: GET /c<case>/<n> is answered with that case's n-th response

interface Served {
  wire: Wire;
  ex: Exchange;
}

const cases = new Map<number, Served[]>();

function serve(socket: net.Socket, served: Served, closeTimer: { t?: NodeJS.Timeout }): void {
  const { wire, ex } = served;
  // Write boundaries only before the end: the bytes after it go in one write with the last byte
  // before it, of at most 1000 bytes besides them (one loopback segment), so they are in the
  // socket when the end is read. (Arriving later, they would be the next response's first bytes
  // to any reader: HTTP/1.1 cannot tell.)
  const end = Math.max(1, wire.end);
  const cuts = ex.cuts.map((f) => 1 + Math.floor(f * (end - 1))).filter((c) => c < end);
  if (end > 1000) cuts.push(end - 1000);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const c of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (c >= wire.bytes.length) break;
    pieces.push(wire.bytes.subarray(at, c));
    at = c;
  }
  pieces.push(wire.bytes.subarray(at));
  const write = (i: number): void => {
    if (socket.destroyed || socket.writableEnded) return;
    socket.write(pieces[i] as Buffer);
    if (i === pieces.length - 1) {
      // Armed with the last byte, before the client can send its next request (which disarms it).
      if (wire.close) socket.end();
      // No next request soon: the client waits for bytes that will not come (or is done).
      else closeTimer.t = setTimeout(() => socket.end(), LINGER_MS);
      return;
    }
    const pause = ex.pauses[i % ex.pauses.length] ?? 0;
    if (pause === 0) write(i + 1);
    else if (pause === 1) setImmediate(() => write(i + 1));
    else setTimeout(() => write(i + 1), pause - 1);
  };
  write(0);
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const closeTimer: { t?: NodeJS.Timeout } = {};
  let pending = '';
  socket.on('data', (d) => {
    clearTimeout(closeTimer.t);
    pending += d.toString('latin1');
    for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
      const target = /^GET \/c(\d+)\/(\d+)/.exec(pending);
      pending = pending.slice(end + 4);
      const served = target ? cases.get(Number(target[1]))?.[Number(target[2])] : undefined;
      if (served) serve(socket, served, closeTimer);
      else socket.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The client side: each request read as the adapters read it

async function fetchOne(handler: RawHttpHandler, port: number, id: number, n: number, want: number) {
  const { response } = await handler.handle({
    protocol: 'http:',
    hostname: '127.0.0.1',
    port,
    method: 'GET',
    path: `/c${id}/${n}`,
    headers: {},
  });
  let body: Buffer;
  if (response.statusCode >= 200 && response.statusCode < 300) {
    const into = Buffer.alloc(want);
    const got = await (response.body as RawBody).fillInto(into);
    if (got !== want) throw new Error(`short read: ${got} of ${want} bytes`);
    body = into;
  } else {
    body = await drain(response.body);
  }
  return { status: response.statusCode, body };
}

let port = 0;
let nextCase = 0;

before(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as net.AddressInfo).port;
});
after(() => server.close());

test(`fuzz: generated and mutated responses yield their body or an error (${RUNS} cases, seed ${SEED})`, async () => {
  let mutated = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(exchange, { minLength: 1, maxLength: 4 }), async (exchanges) => {
      const id = nextCase++;
      const served = exchanges.map((ex) => ({ ex, wire: build(ex) }));
      cases.set(id, served);
      const handler = new RawHttpHandler({ maxSockets: 1, connectTimeoutMs: 2000, socketTimeoutMs: 5000 });
      let timer: NodeJS.Timeout | undefined;
      try {
        const run = async () => {
          let spoiled = false;
          for (const [n, { ex, wire }] of served.entries()) {
            spoiled ||= wire.mutated;
            if (wire.mutated) mutated++;
            let got: { status: number; body: Buffer } | undefined;
            let error: unknown;
            try {
              got = await fetchOne(handler, port, id, n, wire.body.length);
            } catch (err) {
              error = err;
            }
            if (got) {
              assert.equal(got.status, ex.status, `response ${n}: status`);
              assert.ok(
                got.body.equals(wire.body),
                `response ${n}: ${got.body.length} bytes read, not the ${wire.body.length} meant`,
              );
            } else {
              assert.ok(error instanceof Error, `response ${n}: failed with a non-Error ${String(error)}`);
              assert.ok(spoiled, `response ${n} was not mutated, nor any before it, yet failed: ${error.message}`);
              refused++;
            }
          }
        };
        await Promise.race([
          run(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`case hung for over ${CASE_MS} ms`)), CASE_MS);
          }),
        ]);
      } finally {
        clearTimeout(timer);
        handler.destroy();
        cases.delete(id);
      }
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: process.env.BUCKETFS_FUZZ_SHRINK !== '1' },
  );
  process.stdout.write(`# fuzz: ${RUNS} cases, ${mutated} mutated responses, ${refused} requests failed\n`);
});
