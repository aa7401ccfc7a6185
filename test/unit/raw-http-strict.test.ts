// What raw-http.ts refuses (issue 26): every response it does not fully understand fails as a
// connection error (code ECONNABORTED or ECONNRESET, which the retry layer treats like a reset, so
// the GET is sent again on a fresh socket), and the socket it came on is closed, never pooled. Each
// case is served on a socket the server keeps open; the request after it must get the server's
// next answer, on a new connection.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { buffer as drain } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import type { HttpRequest } from '@smithy/types';
import { type RawBody, RawHttpHandler } from '../../src/store/raw-http.js';

/** Answers the n-th request (0-based, on whichever socket) with what `answer` writes. */
type Answer = (n: number, socket: net.Socket) => void;

class Server {
  readonly server: net.Server;
  connections = 0;
  requests = 0;
  answer: Answer = (_n, s) => s.end();

  constructor() {
    this.server = net.createServer((socket) => {
      this.connections++;
      socket.on('error', () => {});
      let pending = '';
      socket.on('data', (d) => {
        pending += d.toString('latin1');
        for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
          pending = pending.slice(end + 4);
          this.answer(this.requests++, socket);
        }
      });
    });
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }
}

function request(port: number, method = 'GET'): HttpRequest {
  return { protocol: 'http:', hostname: '127.0.0.1', port, method, path: '/obj', headers: {} };
}

const GOOD = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood';

/** Reads a response as the adapters do: a 2xx into a buffer of `want` bytes, anything else as a stream. */
async function read(handler: RawHttpHandler, port: number, want: number, method = 'GET'): Promise<string> {
  const { response } = await handler.handle(request(port, method));
  if (response.statusCode >= 200 && response.statusCode < 300) {
    const into = Buffer.alloc(want);
    const n = await (response.body as RawBody).fillInto(into);
    return into.toString('latin1', 0, n);
  }
  return `${response.statusCode} ${(await drain(response.body)).toString('latin1')}`;
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  assert.ok(code === 'ECONNABORTED' || code === 'ECONNRESET', `a connection error, not ${String(err)}`);
  return true;
}

describe('raw HTTP handler: refused responses', { concurrency: false }, () => {
  const srv = new Server();
  let handler: RawHttpHandler | undefined;

  before(async () => {
    srv.server.listen(0, '127.0.0.1');
    await once(srv.server, 'listening');
  });
  after(() => {
    handler?.destroy();
    srv.server.close();
  });

  /**
   * The first request gets `bad` (a string, or pieces written 15 ms apart) on a socket the server
   * keeps open; it must fail as a connection error, and the next request must get GOOD on a new socket.
   */
  async function refuses(bad: string | string[], want = 16, method = 'GET'): Promise<void> {
    handler?.destroy();
    handler = new RawHttpHandler({ maxSockets: 1, connectTimeoutMs: 2000, socketTimeoutMs: 1000 });
    srv.connections = 0;
    srv.requests = 0;
    const pieces = typeof bad === 'string' ? [bad] : bad;
    srv.answer = (n, s) => {
      if (n > 0) return void s.write(GOOD);
      for (const [i, p] of pieces.entries()) setTimeout(() => s.write(p, 'latin1'), 15 * i);
    };
    const started = performance.now();
    await assert.rejects(read(handler, srv.port, want, method), isConnectionError);
    assert.ok(performance.now() - started < 900, 'refused at once, not after the socket timeout');
    assert.equal(await read(handler, srv.port, 4), 'good');
    assert.equal(srv.connections, 2, 'the refused response closed its socket');
  }

  test('a folded header line (obs-fold), or a line that starts with whitespace', async () => {
    await refuses('HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\n\tContent-Length: 5\r\n\r\nhello');
  });

  test('whitespace between a header name and its colon', async () => {
    await refuses('HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nContent-Length\t: 5\r\n\r\nhello');
  });

  test('a header name that is not a token, a line without a colon, control bytes in a value', async () => {
    await refuses('HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nX(a): b\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 5\r\n\r\nhello');
  });

  test('both Transfer-Encoding and Content-Length', async () => {
    await refuses(
      'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    );
    await refuses('HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 14\r\n\r\n0\r\n\r\n');
  });

  test('more than one Content-Length, equal or not, and one that is not a plain number', async () => {
    await refuses('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello!');
    await refuses('HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello');
    await refuses('HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nhello');
  });

  test('a Transfer-Encoding other than exactly chunked', async () => {
    await refuses('HTTP/1.1 500 Oops\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    await refuses('HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    await refuses('HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  });

  test('a 2xx without exactly one Content-Length: chunked, or delimited by the end of the connection', async () => {
    await refuses('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    await refuses('HTTP/1.1 206 Partial Content\r\n\r\nhello');
    // An error reply with no framing either: its end could not be told from a stall.
    await refuses('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nsomething broke');
  });

  test('a chunk size that is not strictly hex (parseInt would read 1g as 1), or its line ends in a bare LF', async () => {
    for (const size of ['1g', '0x1', '+1', '-1', ' 1', '1 ', '', '1 1']) {
      await refuses(`HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\na\r\n0\r\n\r\n`);
    }
    await refuses('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n');
    await refuses('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\n\r\n');
    await refuses('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\na\r\n0\r\n\r\n');
  });

  test('a chunk-size line over its bound, sent whole or without its end', async () => {
    await refuses(
      `HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1;x=${'y'.repeat(5000)}\r\na\r\n0\r\n\r\n`,
    );
    await refuses([
      `HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n${'0'.repeat(3000)}`,
      '0'.repeat(3000),
    ]);
  });

  test('chunk data not followed by CRLF', async () => {
    await refuses('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n');
    await refuses('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n');
    await refuses(['HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r', 'X0\r\n\r\n']);
  });

  test('a trailer over its bound, or one that is not a header line', async () => {
    const head = 'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n';
    await refuses(`${head}X-T: ${'a'.repeat(20_000)}\r\n\r\n`);
    await refuses(`${head}${'X-T: a\r\n'.repeat(3000)}\r\n`);
    await refuses(`${head}not a header\r\n\r\n`);
  });

  test('a body read as a stream (an error reply) longer than 1 MiB', async () => {
    const big = 'e'.repeat(1024 * 1024 + 1);
    await refuses(`HTTP/1.1 500 Oops\r\nContent-Length: ${big.length}\r\n\r\n${big}`);
    await refuses(
      `HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`,
    );
    const piece = 'e'.repeat(64 * 1024);
    const chunks = Array.from({ length: 17 }, () => `10000\r\n${piece}\r\n`).join('');
    await refuses(`HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`);
  });

  test('a body that ends before its Content-Length', async () => {
    handler?.destroy();
    handler = new RawHttpHandler({ maxSockets: 1, connectTimeoutMs: 2000, socketTimeoutMs: 1000 });
    srv.answer = (_n, s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    await assert.rejects(read(handler, srv.port, 10), isConnectionError);
  });

  test('bytes after the body, in the same read: the response fails', async () => {
    const evil = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil';
    await refuses(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello${evil}`, 5);
    await refuses(`HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello${evil}`);
    await refuses(`HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${evil}`);
    await refuses(`HTTP/1.1 204 No Content\r\n\r\n${evil}`);
    await refuses(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n${evil}`, 5, 'HEAD');
    await refuses(['HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhel', `lo${evil}`]);
    await refuses(['HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n', 'hello\r\n']);
  });

  test('bytes after a body read in place: that socket never carries another request', async () => {
    // The body lands in the caller's buffer, by a read sized to what is left of it, so the bytes
    // after it stay in the socket; a request waiting for the socket must not get them as its
    // response (before: it was sent on that socket at once and read "evil").
    handler?.destroy();
    handler = new RawHttpHandler({ maxSockets: 1, connectTimeoutMs: 2000, socketTimeoutMs: 1000 });
    srv.connections = 0;
    srv.requests = 0;
    const evil = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil';
    srv.answer = (n, s) => {
      if (n > 0) return void s.write(GOOD);
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
      setTimeout(() => s.write(`hello${evil}`), 30);
    };
    const { response } = await handler.handle(request(srv.port));
    const into = Buffer.alloc(5);
    const filling = (response.body as RawBody).fillInto(into);
    const next = read(handler, srv.port, 4);
    // The body was complete when it was read: the reader may have it, or an error; never more.
    const n = await filling.catch(() => 0);
    if (n > 0) assert.equal(into.toString(), 'hello');
    assert.equal(await next, 'good');
    assert.equal(srv.connections, 2);
  });

  test('still read: OWS around values, case of names, HTTP/1.0 with keep-alive, a chunked error reply with extensions and a trailer', async () => {
    handler?.destroy();
    handler = new RawHttpHandler({ maxSockets: 1, connectTimeoutMs: 2000, socketTimeoutMs: 1000 });
    srv.connections = 0;
    srv.requests = 0;
    const answers = [
      'HTTP/1.1 206 Partial Content\r\ncOnTeNt-LeNgTh: \t5 \t\r\nX-Empty:\r\nX-Obs: caf\xe9\r\n\r\nhello',
      'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi',
      'HTTP/1.1 404 Not Found\r\ntransfer-encoding: Chunked\r\n\r\n3;q=z;r\r\nabc\r\n00A ; ext\r\n0123456789\r\n0\r\nX-T: t\r\n\r\n',
      'HTTP/1.1 204 No Content\r\n\r\n',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes',
    ];
    srv.answer = (n, s) => s.write(answers[n] ?? GOOD, 'latin1');
    assert.equal(await read(handler, srv.port, 5), 'hello');
    assert.equal(await read(handler, srv.port, 2), 'hi');
    assert.equal(await read(handler, srv.port, 0), '404 abc0123456789');
    assert.equal(await read(handler, srv.port, 0), '');
    assert.equal(await read(handler, srv.port, 3), 'yes');
    assert.equal(srv.connections, 1, 'all on one socket');
  });
});
