// An HTTP/1.1 request handler for the S3 client's GETs that reads response bodies straight into
// the caller's buffer. The SDK still builds, signs and deserializes every request (endpoints,
// credentials, error codes); only the bytes on the wire are handled here.
//
// Why: Node's http client hands a body over as a new 64 KiB Buffer per socket read, to be copied
// into the part; those allocations, their page faults and the major GCs they set off cost more than
// the download itself (docs/architecture.md, decision D2). Here a socket reads with `onread` into the
// destination itself (RawBody.fillInto), so a body costs the kernel's one copy.
//
// Scope: requests without a body (GET, HEAD), HTTP/1.1 keep-alive without pipelining, bodies
// delimited by Content-Length, chunked encoding or the end of the connection. A pooled socket that
// the server closed while idle is detected and the request sent again once on a new one.
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { buildQueryString, HttpResponse } from '@smithy/core/protocols';
import type { HttpHandlerOptions, HttpRequest, RequestHandler } from '@smithy/types';

/** Largest response head accepted (status line and headers). */
const HEAD_LIMIT = 64 * 1024;
/** Reads that have no destination of their own land here first. */
const SCRATCH_BYTES = 64 * 1024;
/** A pooled socket unused this long is closed (servers close theirs after 5-60 s). */
const IDLE_MS = 4_000;
const CRLF2 = Buffer.from('\r\n\r\n');

export interface RawHttpOptions {
  /** Sockets per origin (host and port). */
  maxSockets: number;
  connectTimeoutMs: number;
  /** A response that stalls this long fails with a TimeoutError. */
  socketTimeoutMs: number;
  /** Certificates to trust instead of Node's (tests: a self-signed server). */
  ca?: string;
}

function abortError(): Error {
  const e = new Error('request aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * The connection broke or carried something that is not HTTP: a network fault to the layers
 * above (errors.ts networkErrno), retried like a reset.
 */
function connectionError(what: string, code: 'ECONNRESET' | 'ECONNABORTED'): Error {
  return Object.assign(new Error(what), { code });
}

function timeoutError(what: string): Error {
  const e = new Error(what);
  e.name = 'TimeoutError';
  return e;
}

/** The SDK's HttpHandler interface (@smithy/types), for requests without a body. */
export class RawHttpHandler implements RequestHandler<HttpRequest, HttpResponse, HttpHandlerOptions> {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  private readonly opts: RawHttpOptions;
  private readonly pools = new Map<string, Pool>();

  constructor(opts: RawHttpOptions) {
    this.opts = opts;
  }

  async handle(request: HttpRequest, options: HttpHandlerOptions = {}): Promise<{ response: HttpResponse }> {
    // Node's AbortSignal (the SDK's type also allows a legacy shape it no longer produces).
    const signal = options.abortSignal as AbortSignal | undefined;
    if (request.body !== undefined && request.body !== null && request.body !== '') {
      throw new Error(`RawHttpHandler sends no request body (${request.method} ${request.path})`);
    }
    if (signal?.aborted) throw abortError(); // before it takes a socket
    const head = requestHead(request);
    const headOnly = request.method === 'HEAD';
    const pool = this.pool(request);
    // A socket from the pool may have been closed by the server a moment ago: such a request
    // fails before any byte of a response came back, and is sent once more on a new socket.
    for (let attempt = 0; ; attempt++) {
      const conn = await pool.acquire(signal, attempt > 0);
      try {
        const response = await conn.send(head, headOnly, signal);
        return { response };
      } catch (err) {
        if (!(err instanceof StaleSocketError) || attempt > 0) throw err instanceof StaleSocketError ? err.cause : err;
      }
    }
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {
    for (const pool of this.pools.values()) pool.destroy();
    this.pools.clear();
  }

  private pool(request: HttpRequest): Pool {
    const secure = request.protocol === 'https:';
    let host = request.hostname;
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    const port = request.port ?? (secure ? 443 : 80);
    const key = `${secure ? 'https' : 'http'}://${host}:${port}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool({ host, port, secure }, this.opts);
      this.pools.set(key, pool);
    }
    return pool;
  }
}

function requestHead(request: HttpRequest): string {
  const query = request.query ? buildQueryString(request.query) : '';
  let target = request.path || '/';
  if (query) target += `?${query}`;
  let head = `${request.method} ${target} HTTP/1.1\r\n`;
  let hasHost = false;
  for (const [name, value] of Object.entries(request.headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`header ${name} holds a line break`);
    if (name.toLowerCase() === 'host') hasHost = true;
    head += `${name}: ${value}\r\n`;
  }
  if (!hasHost) head += `host: ${request.hostname}${request.port ? `:${request.port}` : ''}\r\n`;
  return `${head}\r\n`;
}

interface Origin {
  host: string;
  port: number;
  secure: boolean;
}

class Pool {
  private readonly origin: Origin;
  private readonly opts: RawHttpOptions;
  private readonly idle: Conn[] = [];
  private readonly waiting: ((conn: Conn | undefined) => void)[] = [];
  private open = 0;

  constructor(origin: Origin, opts: RawHttpOptions) {
    this.origin = origin;
    this.opts = opts;
  }

  /** A connected socket: an idle one (unless `fresh`), a new one, or the next one given back. */
  async acquire(signal: AbortSignal | undefined, fresh: boolean): Promise<Conn> {
    for (;;) {
      if (!fresh) {
        const conn = this.idle.pop();
        if (conn) {
          conn.wake();
          return conn;
        }
      }
      // A resend after a stale socket may go one over the limit rather than queue again.
      if (this.open < this.opts.maxSockets || fresh) {
        this.open++;
        try {
          return await Conn.connect(this.origin, this.opts, this, signal);
        } catch (err) {
          this.open--;
          this.wakeOne();
          throw err;
        }
      }
      const conn = await this.waitForSocket(signal);
      if (conn) {
        conn.wake();
        return conn;
      }
    }
  }

  /**
   * Waits for a socket given back, or for a free slot (undefined). An abort leaves the queue at
   * once: a read the prefetcher gave up on does not hold its place, nor take a socket later.
   */
  private waitForSocket(signal: AbortSignal | undefined): Promise<Conn | undefined> {
    if (signal?.aborted) return Promise.reject(abortError());
    return new Promise((resolve, reject) => {
      const waiter = (conn: Conn | undefined): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(conn);
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** A socket whose exchange is over and that can carry another. */
  giveBack(conn: Conn): void {
    const waiter = this.waiting.shift();
    if (waiter) {
      waiter(conn);
      return;
    }
    conn.sleep(IDLE_MS);
    this.idle.push(conn);
  }

  /** A socket that closed: its slot is free. */
  closed(conn: Conn): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.open--;
    this.wakeOne();
  }

  destroy(): void {
    for (const conn of this.idle.splice(0)) conn.destroy();
  }

  private wakeOne(): void {
    this.waiting.shift()?.(undefined);
  }
}

/** A pooled socket failed before any byte of the response: the request may be sent again. */
class StaleSocketError extends Error {
  constructor(cause: unknown) {
    super('pooled socket closed', { cause });
  }
}

type Framing = { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'none' };

/** One socket and the exchange on it. */
class Conn {
  private readonly socket: net.Socket;
  private readonly opts: RawHttpOptions;
  private readonly pool: Pool;
  private readonly scratch: Buffer;
  /** Bytes of the response head in scratch so far. */
  private headBytes = 0;
  private exchanges = 0;
  private phase: 'idle' | 'head' | 'body' = 'idle';
  private gotBytes = false;
  private onHead: ((res: HttpResponse) => void) | undefined;
  private onFail: ((err: unknown) => void) | undefined;
  private body: RawBody | undefined;
  private framing: Framing = { kind: 'none' };
  private chunks = new ChunkedDecoder();
  private reusable = true;
  private dead = false;
  /** The request was a HEAD: the response has no body whatever its headers say. */
  private headOnly = false;

  private constructor(socket: net.Socket, scratch: Buffer, opts: RawHttpOptions, pool: Pool) {
    this.socket = socket;
    this.scratch = scratch;
    this.opts = opts;
    this.pool = pool;
  }

  static connect(origin: Origin, opts: RawHttpOptions, pool: Pool, signal: AbortSignal | undefined): Promise<Conn> {
    let conn: Conn | undefined;
    // The socket asks for its first buffer before `conn` exists.
    const scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
    const onread = {
      buffer: () => (conn ? conn.nextBuffer() : scratch),
      callback: (n: number, buf: Uint8Array) => conn?.received(n, buf) ?? false,
    };
    const socket = origin.secure
      ? tls.connect({
          host: origin.host,
          port: origin.port,
          ...(net.isIP(origin.host) ? {} : { servername: origin.host }),
          ALPNProtocols: ['http/1.1'],
          ...(opts.ca ? { ca: opts.ca } : {}),
          // Supported by tls.connect since Node 15 (nodejs/node#35753), missing from its types.
          onread,
        } as tls.ConnectionOptions)
      : net.connect({ host: origin.host, port: origin.port, onread });
    conn = new Conn(socket, scratch, opts, pool);
    const c = conn;
    return new Promise((resolve, reject) => {
      const fail = (err: unknown) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(err);
      };
      const onAbort = () => fail(abortError());
      const timer = setTimeout(
        () => fail(timeoutError(`connecting to ${origin.host}:${origin.port} took over ${opts.connectTimeoutMs} ms`)),
        opts.connectTimeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', fail);
      socket.once(origin.secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', fail);
        c.attach();
        resolve(c);
      });
    });
  }

  private attach(): void {
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 10_000);
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => {
      this.dead = true;
      // A body that ends with the connection is complete now.
      if (this.phase === 'body' && this.framing.kind === 'close') this.finishBody();
      this.fail(connectionError('socket closed by the server', 'ECONNRESET'));
      this.pool.closed(this);
    });
    this.socket.on('timeout', () => {
      if (this.phase === 'idle') this.socket.destroy();
      else this.fail(timeoutError(`no response data for ${this.opts.socketTimeoutMs} ms`));
    });
  }

  /** Out of the pool for an exchange. */
  wake(): void {
    this.socket.setTimeout(this.opts.socketTimeoutMs);
  }

  /** Into the pool: closed after `ms` unused. */
  sleep(ms: number): void {
    this.socket.setTimeout(ms);
  }

  destroy(): void {
    this.socket.destroy();
  }

  send(head: string, headOnly: boolean, signal: AbortSignal | undefined): Promise<HttpResponse> {
    this.exchanges++;
    this.headOnly = headOnly;
    this.phase = 'head';
    this.gotBytes = false;
    this.headBytes = 0;
    this.reusable = true;
    this.socket.setTimeout(this.opts.socketTimeoutMs);
    return new Promise((resolve, reject) => {
      const onAbort = () => this.fail(abortError());
      const settle = () => {
        this.onHead = undefined;
        this.onFail = undefined;
        signal?.removeEventListener('abort', onAbort);
      };
      this.onHead = (res) => {
        settle();
        resolve(res);
      };
      this.onFail = (err) => {
        settle();
        // Nothing came back on a socket that had carried a response before: the server closed it.
        reject(this.exchanges > 1 && !this.gotBytes ? new StaleSocketError(err) : err);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.resume();
      this.socket.write(head);
    });
  }

  /** Where the socket's next read goes: straight into the body's destination when it has one. */
  private nextBuffer(): Uint8Array {
    if (this.phase === 'body' && this.framing.kind === 'length') {
      const into = this.body?.destination();
      if (into && into.length > 0) return into.subarray(0, Math.min(into.length, this.framing.remaining));
    }
    if (this.phase === 'head') return this.scratch.subarray(this.headBytes);
    return this.scratch;
  }

  /** onread: `n` bytes arrived in `buf` (a buffer nextBuffer() gave). False pauses the socket. */
  private received(n: number, buf: Uint8Array): boolean {
    try {
      return this.receivedBytes(n, buf);
    } catch (err) {
      // A malformed response (bad chunk framing): this exchange fails, the socket is closed.
      this.fail(err);
      return false;
    }
  }

  private receivedBytes(n: number, buf: Uint8Array): boolean {
    this.gotBytes = true;
    if (this.phase === 'head') {
      // Reads land where nextBuffer() said, right after the head so far; anything else is copied there.
      if (buf.buffer !== this.scratch.buffer || buf.byteOffset !== this.scratch.byteOffset + this.headBytes) {
        if (this.headBytes + n > this.scratch.length) {
          this.fail(connectionError(`response head longer than ${HEAD_LIMIT} bytes`, 'ECONNABORTED'));
          return false;
        }
        this.scratch.set(buf.subarray(0, n), this.headBytes);
      }
      this.headBytes += n;
      return this.parseHead();
    }
    if (this.phase === 'body') {
      if (buf.buffer !== this.scratch.buffer) {
        // Read in place (nextBuffer gave the destination).
        (this.body as RawBody).filled(n);
        return this.consumed(n);
      }
      return this.bodyBytes(this.scratch.subarray(0, n));
    }
    // Bytes while idle: the server broke the protocol; never reuse this socket.
    this.socket.destroy();
    return false;
  }

  private parseHead(): boolean {
    const end = this.scratch.subarray(0, this.headBytes).indexOf(CRLF2);
    if (end < 0) {
      if (this.headBytes >= HEAD_LIMIT || this.headBytes >= this.scratch.length) {
        this.fail(connectionError(`response head longer than ${HEAD_LIMIT} bytes`, 'ECONNABORTED'));
        return false;
      }
      return true;
    }
    const lines = this.scratch.toString('latin1', 0, end).split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (!status) {
      this.fail(
        connectionError(`not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`, 'ECONNABORTED'),
      );
      return false;
    }
    const statusCode = Number(status[2]);
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const rest = this.scratch.subarray(end + 4, this.headBytes);
    if (statusCode >= 100 && statusCode < 200) {
      // An interim response (100 Continue): the real one follows.
      rest.copy(this.scratch);
      this.headBytes = rest.length;
      return rest.length > 0 ? this.parseHead() : true;
    }
    const connection = (headers.connection ?? '').toLowerCase();
    this.reusable = status[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const length = headers['content-length'];
    if (this.headOnly || statusCode === 204 || statusCode === 304) this.framing = { kind: 'none' };
    else if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      this.framing = { kind: 'chunked' };
      this.chunks = new ChunkedDecoder();
    } else if (length !== undefined && /^\d+$/.test(length))
      this.framing = { kind: 'length', remaining: Number(length) };
    else {
      this.framing = { kind: 'close' };
      this.reusable = false;
    }
    const expected = this.framing.kind === 'length' ? this.framing.remaining : undefined;
    this.body = new RawBody(this, expected);
    this.phase = 'body';
    this.onHead?.(new HttpResponse({ statusCode, reason: status[3], headers, body: this.body }));
    if (this.framing.kind === 'none' || (this.framing.kind === 'length' && this.framing.remaining === 0)) {
      this.finishBody();
      return true;
    }
    // The bytes of the body that came with the head: kept until the body has a reader.
    if (rest.length > 0) this.bodyBytes(Buffer.from(rest));
    // No reader yet: wait for one (RawBody._read or fillInto resume the socket).
    return false;
  }

  /** Body bytes that arrived outside the destination (in scratch, or with the head). */
  private bodyBytes(bytes: Buffer): boolean {
    const body = this.body as RawBody;
    if (this.framing.kind === 'chunked') {
      for (const piece of this.chunks.feed(bytes)) body.add(piece);
      if (this.chunks.done) this.finishBody();
      return body.wantsMore();
    }
    if (this.framing.kind === 'length') {
      const take = bytes.subarray(0, this.framing.remaining);
      if (take.length < bytes.length) this.reusable = false; // bytes past the body: the server misbehaves
      body.add(take);
      return this.consumed(take.length);
    }
    body.add(bytes);
    return body.wantsMore();
  }

  private consumed(n: number): boolean {
    if (this.framing.kind !== 'length') return true;
    this.framing.remaining -= n;
    if (this.framing.remaining <= 0) {
      this.finishBody();
      return true;
    }
    return (this.body as RawBody).wantsMore();
  }

  private finishBody(): void {
    const body = this.body;
    this.body = undefined;
    this.phase = 'idle';
    body?.end();
    if (this.dead) return;
    if (this.reusable) this.pool.giveBack(this);
    else this.socket.destroy();
  }

  /** Resumes reading for a body that now has a reader. */
  resume(): void {
    if (!this.dead) this.socket.resume();
  }

  /** The body's reader gave up (aborted, destroyed): the rest of the body is never read. */
  abandon(): void {
    if (this.phase !== 'body') return;
    this.body = undefined;
    this.phase = 'idle';
    this.socket.destroy();
  }

  private fail(err: unknown): void {
    if (this.phase === 'head') {
      this.phase = 'idle';
      this.socket.destroy();
      this.onFail?.(err);
    } else if (this.phase === 'body') {
      const body = this.body;
      this.body = undefined;
      this.phase = 'idle';
      this.socket.destroy();
      body?.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

/**
 * A response body. Read as a stream it is a plain Readable (the SDK reads error bodies so);
 * fillInto() instead has the socket read the bytes straight into the caller's buffer.
 */
export class RawBody extends Readable {
  private readonly conn: Conn;
  /** Content-Length, when the response has one. */
  readonly expected: number | undefined;
  private into: Buffer | undefined;
  private intoFilled = 0;
  private resolveFill: ((n: number) => void) | undefined;
  private rejectFill: ((err: unknown) => void) | undefined;
  /** Bytes that came before fillInto(), or all of them when read as a stream. */
  private early: Buffer[] = [];
  private ended = false;
  /** Read as a stream (_read was called): bytes are pushed, not kept. */
  private streaming = false;

  constructor(conn: Conn, expected: number | undefined) {
    super();
    this.conn = conn;
    this.expected = expected;
    // A body that fails before anyone reads it (or one read with fillInto, whose promise carries
    // the error) must not crash the process with an unhandled 'error' event; stream readers still
    // get it through their own listeners.
    this.on('error', () => {});
  }

  /**
   * Reads the whole body into `into` and resolves with the number of bytes (fewer than
   * into.length when the body is shorter). A body longer than `into` fails.
   */
  fillInto(into: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.destroyed) return reject(this.errored ?? new Error('body destroyed'));
      if (this.expected !== undefined && this.expected > into.length) {
        const err = new Error(`response body of ${this.expected} bytes does not fit in ${into.length}`);
        this.destroy(err);
        return reject(err);
      }
      this.into = into;
      this.resolveFill = resolve;
      this.rejectFill = reject;
      for (const piece of this.early.splice(0)) this.add(piece);
      if (this.ended) this.settleFill();
      else this.conn.resume();
    });
  }

  /** Where the socket may read next: the unfilled rest of the destination. */
  destination(): Buffer | undefined {
    return this.into?.subarray(this.intoFilled);
  }

  /** `n` bytes were read into destination() in place. */
  filled(n: number): void {
    this.intoFilled += n;
  }

  /** Bytes read elsewhere: copied into the destination, queued, or pushed to a stream reader. */
  add(bytes: Buffer): void {
    if (this.into) {
      if (this.intoFilled + bytes.length > this.into.length) {
        this.destroy(connectionError(`response body longer than ${this.into.length} bytes`, 'ECONNABORTED'));
        return;
      }
      bytes.copy(this.into, this.intoFilled);
      this.intoFilled += bytes.length;
    } else if (this.streaming) {
      this.push(bytes);
    } else {
      this.early.push(bytes);
    }
  }

  /** False when nobody reads yet: the socket pauses. */
  wantsMore(): boolean {
    return this.into !== undefined || this.streaming;
  }

  end(): void {
    this.ended = true;
    if (this.into) this.settleFill();
    else if (this.streaming) this.push(null);
  }

  override _read(): void {
    if (this.into) return;
    if (!this.streaming) {
      this.streaming = true;
      for (const piece of this.early.splice(0)) this.push(piece);
      if (this.ended) {
        this.push(null);
        return;
      }
    }
    this.conn.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.ended) this.conn.abandon();
    const reject = this.rejectFill;
    this.resolveFill = undefined;
    this.rejectFill = undefined;
    reject?.(err ?? new Error('body destroyed'));
    cb(err);
  }

  private settleFill(): void {
    const resolve = this.resolveFill;
    this.resolveFill = undefined;
    this.rejectFill = undefined;
    resolve?.(this.intoFilled);
  }
}

/** Decodes a chunked body as its bytes arrive. */
class ChunkedDecoder {
  done = false;
  private size = -1;
  private line = '';
  /** After a chunk's data: its CRLF is still to come. */
  private crlf = 0;
  private trailer = false;

  feed(bytes: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < bytes.length && !this.done) {
      if (this.crlf > 0) {
        const skip = Math.min(this.crlf, bytes.length - at);
        this.crlf -= skip;
        at += skip;
        continue;
      }
      if (this.size > 0) {
        const take = Math.min(this.size, bytes.length - at);
        out.push(bytes.subarray(at, at + take));
        this.size -= take;
        at += take;
        if (this.size === 0) {
          this.size = -1;
          this.crlf = 2;
        }
        continue;
      }
      // A size line, or after the last chunk the trailer's lines until an empty one.
      const nl = bytes.indexOf(10, at);
      if (nl < 0) {
        this.line += bytes.toString('latin1', at);
        at = bytes.length;
        break;
      }
      const line = (this.line + bytes.toString('latin1', at, nl)).replace(/\r$/, '');
      this.line = '';
      at = nl + 1;
      if (this.trailer) {
        if (line === '') this.done = true;
        continue;
      }
      const size = Number.parseInt(line.split(';')[0] ?? '', 16);
      if (!Number.isFinite(size) || size < 0)
        throw connectionError(`bad chunk size line: ${JSON.stringify(line)}`, 'ECONNABORTED');
      if (size === 0) this.trailer = true;
      else this.size = size;
    }
    return out;
  }
}
