// The raw HTTP/1.1 handler the S3 adapter's GETs go through (src/store/raw-http.ts), against a
// local TCP server that answers with exactly the bytes each test wants. Real S3 servers (MinIO,
// rclone) exercise it in the store contract and fault tests; these cover the framings, failures
// and pool behaviour those servers seldom produce on demand.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buffer as drain } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { HttpRequest } from '@smithy/types';
import { RawBody, RawHttpHandler } from '../../src/store/raw-http.js';

/** What the server does with one request (its head as text) on a socket. */
type Answer = (head: string, socket: net.Socket) => void;

class Server {
  readonly server: net.Server;
  connections = 0;
  open = 0;
  mostOpen = 0;
  requests: string[] = [];
  answer: Answer = (_h, s) => s.end();

  constructor() {
    this.server = net.createServer((socket) => {
      this.connections++;
      this.open++;
      this.mostOpen = Math.max(this.mostOpen, this.open);
      socket.on('close', () => this.open--);
      socket.on('error', () => {});
      let pending = '';
      socket.on('data', (d) => {
        pending += d.toString('latin1');
        for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
          const head = pending.slice(0, end);
          pending = pending.slice(end + 4);
          this.requests.push(head);
          this.answer(head, socket);
        }
      });
    });
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }
}

function request(port: number, path = '/obj', method = 'GET', headers: Record<string, string> = {}): HttpRequest {
  return { protocol: 'http:', hostname: '127.0.0.1', port, method, path, query: { 'x-id': 'GetObject' }, headers };
}

function lengthResponse(body: Buffer, status = '206 Partial Content'): Buffer {
  return Buffer.concat([Buffer.from(`HTTP/1.1 ${status}\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
}

describe('raw HTTP handler', { concurrency: false }, () => {
  const srv = new Server();
  let handler: RawHttpHandler;
  const opts = { maxSockets: 2, connectTimeoutMs: 2000, socketTimeoutMs: 500 };

  before(async () => {
    srv.server.listen(0, '127.0.0.1');
    await once(srv.server, 'listening');
  });
  after(async () => {
    handler?.destroy();
    srv.server.close();
  });

  const fresh = () => {
    handler?.destroy();
    handler = new RawHttpHandler(opts);
    srv.connections = 0;
    srv.mostOpen = srv.open;
    srv.requests = [];
  };

  test('reads a Content-Length body into the caller buffer, in pieces, on one kept-alive socket', async () => {
    fresh();
    const data = randomBytes(3 * 1024 * 1024 + 5);
    srv.answer = (_h, s) => {
      const bytes = lengthResponse(data);
      // The head alone first, then the body in uneven writes.
      s.write(bytes.subarray(0, 40));
      setTimeout(() => s.write(bytes.subarray(40, 70_000)), 5);
      setTimeout(() => s.write(bytes.subarray(70_000)), 10);
    };
    for (let i = 0; i < 3; i++) {
      const { response } = await handler.handle(request(srv.port));
      assert.equal(response.statusCode, 206);
      assert.equal(response.headers['content-length'], String(data.length));
      assert.ok(response.body instanceof RawBody);
      const into = Buffer.alloc(data.length);
      assert.equal(await response.body.fillInto(into), data.length);
      assert.ok(into.equals(data));
    }
    assert.equal(srv.connections, 1, 'one socket for three requests');
    assert.match(srv.requests[0] ?? '', /^GET \/obj\?x-id=GetObject HTTP\/1\.1\r\n/);
    assert.match(srv.requests[0] ?? '', /\r\nhost: 127\.0\.0\.1:\d+/);
  });

  test('a body read as a stream: chunked; one delimited by the end of the connection is refused', async () => {
    fresh();
    srv.answer = (_h, s) =>
      s.write(
        'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '5\r\n<Erro\r\n' +
          'a;ext=1\r\nr><Code>No\r\n' +
          '10\r\nSuchKey</Code></\r\n6\r\nError>\r\n0\r\nX-Trailer: t\r\n\r\n',
      );
    const chunked = await handler.handle(request(srv.port));
    assert.equal(chunked.response.statusCode, 404);
    assert.equal((await drain(chunked.response.body)).toString(), '<Error><Code>NoSuchKey</Code></Error>');

    // Its end could not be told from a stall cut short (raw-http-strict.test.ts has the other refusals).
    srv.answer = (_h, s) => s.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nsomething broke');
    await assert.rejects(handler.handle(request(srv.port)), { code: 'ECONNABORTED' });
  });

  test('a body read as a stream over many socket reads keeps its bytes (found by raw-http-fuzz.test.ts)', async () => {
    // Each read lands in the socket's one scratch buffer: a stream that kept views of it, not
    // copies, saw its earlier pieces overwritten by later reads.
    fresh();
    const data = randomBytes(200_000);
    srv.answer = (_h, s) => {
      const bytes = lengthResponse(data, '503 Slow Down');
      s.write(bytes.subarray(0, 100));
      setTimeout(() => s.write(bytes.subarray(100)), 5);
    };
    const { response } = await handler.handle(request(srv.port));
    assert.equal(response.statusCode, 503);
    assert.ok((await drain(response.body)).equals(data));
  });

  test('a pooled socket the server closes as the next request arrives: sent again on a new one', async () => {
    fresh();
    const served = new WeakSet<net.Socket>();
    // Each socket answers one request and drops the next unanswered, as a server does whose idle
    // timeout struck just as the request was sent.
    srv.answer = (_h, s) => {
      if (served.has(s)) return void s.destroy();
      served.add(s);
      s.write(lengthResponse(Buffer.from('hello'), '200 OK'));
    };
    for (let i = 0; i < 3; i++) {
      const { response } = await handler.handle(request(srv.port));
      const into = Buffer.alloc(5);
      await (response.body as RawBody).fillInto(into);
      assert.equal(into.toString(), 'hello');
    }
    assert.equal(srv.connections, 3);
    assert.equal(srv.requests.length, 5, 'requests 2 and 3 each sent twice');
  });

  test('a response that stalls fails with a TimeoutError and frees its socket slot', async () => {
    fresh();
    srv.answer = (_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    const { response } = await handler.handle(request(srv.port));
    const started = performance.now();
    await assert.rejects(response.body.fillInto(Buffer.alloc(10)), { name: 'TimeoutError' });
    assert.ok(performance.now() - started < 2000);
    srv.answer = (_h, s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const next = await handler.handle(request(srv.port));
    assert.equal((await drain(next.response.body)).toString(), 'ok');
  });

  test('no more sockets than maxSockets; a body dropped half-way costs its socket, not the process', async () => {
    fresh();
    const data = randomBytes(256 * 1024);
    srv.answer = (_h, s) => setTimeout(() => s.write(lengthResponse(data)), 20);
    const reads = Array.from({ length: 6 }, async () => {
      const { response } = await handler.handle(request(srv.port));
      const into = Buffer.alloc(data.length);
      await (response.body as RawBody).fillInto(into);
      return into.equals(data);
    });
    assert.deepEqual(await Promise.all(reads), [true, true, true, true, true, true]);
    assert.ok(srv.mostOpen <= 2, `at most 2 sockets open at once, saw ${srv.mostOpen}`);

    srv.answer = (_h, s) => s.write(lengthResponse(data).subarray(0, 1000));
    const { response } = await handler.handle(request(srv.port));
    const filling = (response.body as RawBody).fillInto(Buffer.alloc(data.length));
    response.body.destroy(new Error('reader gave up'));
    await assert.rejects(filling, /reader gave up/);
    // Destroyed with an error before anyone read it (an abort right after the response head):
    // the error must not surface as an unhandled 'error' event, which would end the process.
    srv.answer = (_h, s) => s.write(lengthResponse(data).subarray(0, 1000));
    const unread = await handler.handle(request(srv.port));
    unread.response.body.destroy(new Error('aborted before reading'));
    await new Promise((r) => setImmediate(r));
    srv.answer = (_h, s) => s.write(lengthResponse(Buffer.from('fine'), '200 OK'));
    const again = await handler.handle(request(srv.port));
    assert.equal((await drain(again.response.body)).toString(), 'fine');
  });

  test('a request waiting for a socket leaves the queue when aborted; the sockets go to those still waiting', async () => {
    fresh();
    // Answers wait until released: both sockets (maxSockets 2) stay busy meanwhile.
    const held: (() => void)[] = [];
    srv.answer = (_h, s) => held.push(() => s.write(lengthResponse(Buffer.from('ok'), '200 OK')));
    const body = async (p: ReturnType<RawHttpHandler['handle']>) => (await drain((await p).response.body)).toString();
    const busy = [body(handler.handle(request(srv.port))), body(handler.handle(request(srv.port)))];
    const gaveUp = new AbortController();
    const abandoned = handler.handle(request(srv.port), { abortSignal: gaveUp.signal });
    const waiting = body(handler.handle(request(srv.port)));
    await new Promise((r) => setTimeout(r, 50));
    gaveUp.abort();
    await assert.rejects(abandoned, { name: 'AbortError' });
    assert.equal(srv.requests.length, 2, 'the aborted request was never sent');
    for (const release of held.splice(0)) release();
    assert.deepEqual(await Promise.all(busy), ['ok', 'ok']);
    // The next socket given back goes to the request still waiting, not to the aborted one.
    await new Promise((r) => setTimeout(r, 50));
    for (const release of held.splice(0)) release();
    assert.equal(await waiting, 'ok');
    assert.equal(srv.requests.length, 3);
    // An already aborted signal fails at once, sending nothing.
    await assert.rejects(handler.handle(request(srv.port), { abortSignal: AbortSignal.abort() }), {
      name: 'AbortError',
    });
    assert.equal(srv.requests.length, 3);
  });

  test('refused: a body longer than the buffer, a header with a line break, a head without an end', async () => {
    fresh();
    srv.answer = (_h, s) => s.write(lengthResponse(Buffer.alloc(100)));
    const { response } = await handler.handle(request(srv.port));
    await assert.rejects((response.body as RawBody).fillInto(Buffer.alloc(50)), /does not fit/);

    await assert.rejects(handler.handle(request(srv.port, '/x', 'GET', { 'x-a': 'b\r\nx-evil: 1' })), /line break/);

    srv.answer = (_h, s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}`);
    await assert.rejects(handler.handle(request(srv.port)), /response head longer than/);
  });

  test('HEAD: the Content-Length is the object size, and no body follows', async () => {
    fresh();
    srv.answer = (_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nETag: "e"\r\n\r\n');
    for (let i = 0; i < 2; i++) {
      const { response } = await handler.handle(request(srv.port, '/obj', 'HEAD'));
      assert.equal(response.headers.etag, '"e"');
      assert.equal((await drain(response.body)).length, 0);
    }
    assert.equal(srv.connections, 1);
  });

  test('an interim 100 Continue before the response is skipped', async () => {
    fresh();
    srv.answer = (_h, s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes');
    const { response } = await handler.handle(request(srv.port));
    assert.equal(response.statusCode, 200);
    assert.equal((await drain(response.body)).toString(), 'yes');
  });
});

describe('raw HTTP handler over TLS', () => {
  test('a body read into the caller buffer through tls.connect with onread, on one kept-alive socket', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bucketfs-tls-'));
    let server: https.Server | undefined;
    const handler = new RawHttpHandler({ maxSockets: 2, connectTimeoutMs: 5000, socketTimeoutMs: 5000 });
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      await promisify(execFile)('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ]);
      const data = randomBytes(5 * 1024 * 1024 + 3);
      let connections = 0;
      server = https.createServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) => {
        res.setHeader('content-length', data.length);
        res.end(data);
      });
      server.on('secureConnection', () => connections++);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as net.AddressInfo).port;
      const tlsHandler = new RawHttpHandler({
        maxSockets: 2,
        connectTimeoutMs: 5000,
        socketTimeoutMs: 5000,
        ca: await readFile(cert, 'utf8'),
      });
      try {
        for (let i = 0; i < 2; i++) {
          const { response } = await tlsHandler.handle({ ...request(port), protocol: 'https:' });
          assert.equal(response.statusCode, 200);
          const into = Buffer.alloc(data.length);
          assert.equal(await (response.body as RawBody).fillInto(into), data.length);
          assert.ok(into.equals(data));
        }
        assert.equal(connections, 1);
      } finally {
        tlsHandler.destroy();
      }
      // Without the certificate: the TLS error, not a hang.
      await assert.rejects(handler.handle({ ...request(port), protocol: 'https:' }), /self.signed/);
    } finally {
      handler.destroy();
      server?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
