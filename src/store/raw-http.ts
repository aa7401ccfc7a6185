// An HTTP/1.1 request handler for the S3 client's GETs that reads response bodies straight into
// the caller's buffer. The SDK still builds, signs and deserializes every request (endpoints,
// credentials, error codes); only the bytes on the wire are handled here.
//
// Why: Node's http client hands a body over as a new 64 KiB Buffer per socket read, to be copied
// into the part; those allocations, their page faults and the major GCs they set off cost more than
// the download itself (docs/architecture.md, decision D2). Here a socket reads with `onread` into the
// destination itself (RawBody.fillInto), so a body costs the kernel's one copy.
//
// Scope: requests without a body (GET, HEAD), HTTP/1.1 keep-alive without pipelining. A pooled
// socket that the server closed while idle is detected and the request sent again once on a new one.
//
// Strict (issue 26): a socket that got out of step with its responses could hand one GET another's
// bytes, which the file cache would then keep under a fresh CRC. So a response is read only when it
// is fully understood: a 2xx with exactly one Content-Length (204, 304 and HEAD: no body), or an
// error reply with one Content-Length or a well-formed chunked body, headers and chunk framing as
// RFC 9112 has them without its leniencies (no obs-fold, no whitespace before a colon, strict hex
// chunk sizes, CRLF after chunk data), within bounds, and nothing after its end. Anything else
// fails as a connection error (retried on a new socket) and closes its socket.
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { buildQueryString, HttpResponse } from '@smithy/core/protocols';
import type { HttpHandlerOptions, HttpRequest, RequestHandler } from '@smithy/types';

/** Largest response head accepted (status line and headers). */
const HEAD_LIMIT = 64 * 1024;
/** Largest body read as a stream (error replies: the SDK and gcs.ts read those so). */
const STREAM_BODY_LIMIT = 1024 * 1024;
/** Longest chunk-size line, extensions included, without its CRLF. */
const CHUNK_LINE_LIMIT = 1024;
/** Largest trailer section after the last chunk, its lines' CRLFs included. */
const TRAILER_LIMIT = 8 * 1024;
/** Interim (1xx) responses accepted before the final one. */
const INTERIM_LIMIT = 8;
/** Reads that have no destination of their own land here first. */
const SCRATCH_BYTES = 64 * 1024;
/** A pooled socket unused this long is closed (servers close theirs after 5-60 s). */
const IDLE_MS = 4_000;
const CRLF2 = Buffer.from('\r\n\r\n');
/** status-line (RFC 9112 4): HTTP/1.x, a 3-digit code, an optional reason of visible text. */
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t \x21-\x7e\x80-\xff]*))?$/;
/**
 * field-line (RFC 9112 5): a token, a colon right after it, a value of visible text and inner
 * whitespace. A line that starts with whitespace (obs-fold) or has any before the colon fails.
 */
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*([\t \x21-\x7e\x80-\xff]*?)[\t ]*$/;
/** chunk-size [chunk-ext] (RFC 9112 7.1): hex digits only (12 at most), extensions ignored. */
const CHUNK_SIZE_LINE = /^([0-9A-Fa-f]{1,12})(?:[\t ]*;[\t \x21-\x7e\x80-\xff]*)?$/;
/** A Content-Length that is one decimal number (15 digits at most: a safe integer). */
const CONTENT_LENGTH = /^\d{1,15}$/;

/** A response the reader does not fully understand: a connection error, so it is sent again. */
function refused(what: string): Error {
  return connectionError(`refused response: ${what}`, 'ECONNABORTED');
}

/** Whether the comma-separated header value `list` holds `token` (case-insensitive). */
function hasToken(list: string | undefined, token: string): boolean {
  return (list ?? '').split(',').some((t) => t.trim().toLowerCase() === token);
}

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

type Framing = { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'none' };

/** One socket and the exchange on it. */
class Conn {
  private readonly socket: net.Socket;
  private readonly opts: RawHttpOptions;
  private readonly pool: Pool;
  private readonly scratch: Buffer;
  /** Bytes of the response head in scratch so far. */
  private headBytes = 0;
  private exchanges = 0;
  /**
   * 'tail': the body is complete but not yet handed over as ended (read as a stream), and the
   * socket not yet back in the pool: a turn of the event loop in which bytes past the end show.
   */
  private phase: 'idle' | 'head' | 'body' | 'tail' = 'idle';
  /** Interim responses before this exchange's final one. */
  private interim = 0;
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
      // The server closed after a complete body (Connection: close): nothing came after it.
      if (this.phase === 'tail') this.release();
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
    this.interim = 0;
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
    if (this.phase === 'tail') {
      // Bytes past the end of a body not handed over yet: it fails, and so does the socket.
      const body = this.body;
      this.body = undefined;
      this.phase = 'idle';
      this.socket.destroy();
      body?.destroy(refused('bytes past the end of the body'));
      return false;
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
    const status = STATUS_LINE.exec(lines[0] ?? '');
    if (!status) {
      this.fail(
        connectionError(`not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`, 'ECONNABORTED'),
      );
      return false;
    }
    const statusCode = Number(status[2]);
    const headers: Record<string, string> = {};
    let lengths = 0;
    let codings = 0;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const field = FIELD_LINE.exec(line);
      if (!field) {
        const what = /^[\t ]/.test(line) ? 'folded header line' : 'malformed header line';
        this.fail(refused(`${what} ${JSON.stringify(line.slice(0, 80))}`));
        return false;
      }
      const name = (field[1] as string).toLowerCase();
      const value = field[2] as string;
      if (name === 'content-length') lengths++;
      else if (name === 'transfer-encoding') codings++;
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const rest = this.scratch.subarray(end + 4, this.headBytes);
    if (statusCode < 200) {
      // An interim response (100 Continue): the real one follows. 101 would switch protocols.
      if (statusCode === 101 || ++this.interim > INTERIM_LIMIT) {
        this.fail(refused(statusCode === 101 ? '101 Switching Protocols' : `over ${INTERIM_LIMIT} interim responses`));
        return false;
      }
      rest.copy(this.scratch);
      this.headBytes = rest.length;
      return rest.length > 0 ? this.parseHead() : true;
    }
    const framing = this.framingOf(statusCode, headers, lengths, codings);
    if (typeof framing === 'string') {
      this.fail(refused(framing));
      return false;
    }
    // More bytes than the body holds came with the head: the server and this reader disagree.
    const holds = framing.kind === 'none' ? 0 : framing.kind === 'length' ? framing.remaining : Infinity;
    if (rest.length > holds) {
      this.fail(refused('bytes past the end of the response'));
      return false;
    }
    this.framing = framing;
    if (framing.kind === 'chunked') this.chunks = new ChunkedDecoder();
    this.reusable =
      status[1] === '1' ? !hasToken(headers.connection, 'close') : hasToken(headers.connection, 'keep-alive');
    const expected = framing.kind === 'length' ? framing.remaining : undefined;
    this.body = new RawBody(this, expected);
    this.phase = 'body';
    this.onHead?.(new HttpResponse({ statusCode, reason: status[3], headers, body: this.body }));
    if (framing.kind === 'none' || (framing.kind === 'length' && framing.remaining === 0)) {
      this.finishBody();
      return true;
    }
    // The bytes of the body that came with the head: kept until the body has a reader. Without
    // one the socket pauses (RawBody._read or fillInto resume it), unless the body is complete.
    return rest.length > 0 ? this.bodyBytes(rest) : false;
  }

  /** How the body of a final response is delimited, or why it is refused. */
  private framingOf(
    statusCode: number,
    headers: Record<string, string>,
    lengths: number,
    codings: number,
  ): Framing | string {
    const length = headers['content-length'];
    const coding = headers['transfer-encoding'];
    if (lengths > 1) return 'more than one Content-Length';
    if (codings > 1) return 'more than one Transfer-Encoding';
    if (lengths > 0 && codings > 0) return 'both Transfer-Encoding and Content-Length';
    if (coding !== undefined && coding.toLowerCase() !== 'chunked')
      return `Transfer-Encoding ${JSON.stringify(coding)}`;
    if (length !== undefined && !CONTENT_LENGTH.test(length)) return `Content-Length ${JSON.stringify(length)}`;
    if (this.headOnly || statusCode === 204 || statusCode === 304) return { kind: 'none' };
    if (statusCode < 300) {
      // A part is read into a buffer of its size: its length must be known, and said once.
      if (length === undefined) return `a ${statusCode} without a Content-Length`;
      return { kind: 'length', remaining: Number(length) };
    }
    if (coding !== undefined) return { kind: 'chunked' };
    if (length !== undefined) return { kind: 'length', remaining: Number(length) };
    // Delimited by the end of the connection: a stall could not be told from the end.
    return `a ${statusCode} without a Content-Length or chunked body`;
  }

  /**
   * Body bytes that arrived outside the destination (in scratch, or with the head): a view of
   * scratch, which the next read overwrites, so whatever keeps them copies them (RawBody.add).
   */
  private bodyBytes(bytes: Buffer): boolean {
    const body = this.body as RawBody;
    if (this.framing.kind === 'chunked') {
      for (const piece of this.chunks.feed(bytes)) {
        body.add(piece);
        if (this.body !== body) return false; // the body failed (too long): so did the socket
      }
      if (this.chunks.done) {
        // Reading on: bytes past the end show while it is in 'tail', or in the pool.
        this.finishBody();
        return true;
      }
      return body.wantsMore();
    }
    // Length-delimited. Bytes past the body: the server and this reader disagree on where it ends.
    if (this.framing.kind !== 'length' || bytes.length > this.framing.remaining) {
      throw refused('bytes past the end of the body');
    }
    body.add(bytes);
    if (this.body !== body) return false;
    return this.consumed(bytes.length);
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
    if (!body) return;
    if (body.end()) {
      // Read into the caller's buffer: handed over now. Bytes after it that are already in the
      // socket are read before a request waiting for it can be sent (and close it, while idle).
      this.body = undefined;
      this.release();
      return;
    }
    // Read as a stream, or not read yet: ended a turn later, once no bytes came past its end.
    this.phase = 'tail';
    setImmediate(() => {
      if (this.phase === 'tail') this.release();
    });
  }

  /** The exchange is over: the body (if still held) ends, the socket goes back or is closed. */
  private release(): void {
    const body = this.body;
    this.body = undefined;
    this.phase = 'idle';
    body?.confirmEnd();
    if (this.dead) return;
    if (this.reusable) this.pool.giveBack(this);
    else this.socket.destroy();
  }

  /** `body` was complete before its reader came, and is read into a buffer: no need to wait. */
  claimed(body: RawBody): void {
    if (this.phase === 'tail' && this.body === body) this.release();
  }

  /** Resumes reading for a body that now has a reader. */
  resume(): void {
    if (!this.dead) this.socket.resume();
  }

  /** The reader of `body` gave up (aborted, destroyed): the rest of it is never read. */
  abandon(body: RawBody): void {
    if (this.body !== body) return; // over already: the socket may carry another exchange
    if (this.phase === 'tail') {
      // The body was complete: the socket is fine.
      this.body = undefined;
      return;
    }
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
    } else if (this.phase === 'tail') {
      // The body was complete: it stands, but the socket is not used again.
      this.reusable = false;
      this.release();
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
  /** Bytes (copies) that came before fillInto() or _read(). */
  private early: Buffer[] = [];
  /** All its bytes arrived (the framing says so). */
  private ended = false;
  /** And none came after them: a stream reader may see the end (Conn.finishBody). */
  private confirmed = false;
  /** Read as a stream (_read was called): bytes are pushed, not kept. */
  private streaming = false;
  /** Bytes pushed to a stream reader so far. */
  private streamed = 0;

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
   * Why the body cannot be read into `into` (it failed already, or its declared length does not
   * fit, which fails it), or undefined.
   */
  protected refusal(into: Buffer): Error | undefined {
    if (this.destroyed) return this.errored ?? new Error('body destroyed');
    if (this.expected === undefined || this.expected <= into.length) return undefined;
    const err = new Error(`response body of ${this.expected} bytes does not fit in ${into.length}`);
    this.destroy(err);
    return err;
  }

  /**
   * Reads the whole body into `into` and resolves with the number of bytes (fewer than
   * into.length when the body is shorter). A body longer than `into` fails.
   */
  fillInto(into: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const refused = this.refusal(into);
      if (refused) return reject(refused);
      this.into = into;
      this.resolveFill = resolve;
      this.rejectFill = reject;
      for (const piece of this.early.splice(0)) this.add(piece);
      if (this.destroyed) return;
      if (this.ended) {
        this.settleFill();
        this.conn.claimed(this);
      } else this.conn.resume();
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

  /**
   * Bytes read elsewhere (a view of the socket's scratch buffer, valid until its next read):
   * copied into the destination, or copied to the queue or to a stream reader.
   */
  add(bytes: Buffer): void {
    if (this.into) {
      if (this.intoFilled + bytes.length > this.into.length) {
        this.destroy(connectionError(`response body longer than ${this.into.length} bytes`, 'ECONNABORTED'));
        return;
      }
      bytes.copy(this.into, this.intoFilled);
      this.intoFilled += bytes.length;
    } else if (this.streaming) {
      this.pushBounded(Buffer.from(bytes));
    } else {
      this.early.push(Buffer.from(bytes));
    }
  }

  /** To a stream reader (bytes of its own), up to STREAM_BODY_LIMIT bytes in all. */
  private pushBounded(bytes: Buffer): void {
    this.streamed += bytes.length;
    if (this.streamed > STREAM_BODY_LIMIT) {
      this.destroy(refused(`a body read as a stream longer than ${STREAM_BODY_LIMIT} bytes`));
      return;
    }
    this.push(bytes);
  }

  /** False when nobody reads yet: the socket pauses. */
  wantsMore(): boolean {
    return this.into !== undefined || this.streaming;
  }

  /**
   * All bytes arrived. True when that is the end of it (read into the caller's buffer, which now
   * has them); false when the end waits for confirmEnd().
   */
  end(): boolean {
    this.ended = true;
    if (!this.into) return false;
    this.confirmed = true;
    this.settleFill();
    return true;
  }

  /** No bytes came after the end: a stream reader sees it too. */
  confirmEnd(): void {
    if (this.destroyed) return;
    this.ended = true;
    this.confirmed = true;
    if (this.into) this.settleFill();
    else if (this.streaming) this.push(null);
  }

  override _read(): void {
    if (this.into) return;
    if (!this.streaming) {
      this.streaming = true;
      if (this.expected !== undefined && this.expected > STREAM_BODY_LIMIT) {
        this.destroy(refused(`a body read as a stream longer than ${STREAM_BODY_LIMIT} bytes`));
        return;
      }
      for (const piece of this.early.splice(0)) {
        this.pushBounded(piece);
        if (this.destroyed) return;
      }
      if (this.confirmed) {
        this.push(null);
        return;
      }
    }
    if (!this.ended) this.conn.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.conn.abandon(this);
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

/** A trailer line as RFC 9112 7.1.2 has it: a field line. */
const TRAILER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t \x21-\x7e\x80-\xff]*$/;

/**
 * Decodes a chunked body as its bytes arrive, strictly: hex sizes, CRLF line ends and CRLF after
 * each chunk's data, bounded size lines and trailer, nothing after the end. Throws on anything else.
 */
class ChunkedDecoder {
  done = false;
  private state: 'size' | 'data' | 'cr' | 'lf' | 'trailer' = 'size';
  /** Bytes of the current chunk's data still to come. */
  private size = 0;
  /** A size or trailer line so far (latin1), its LF not seen yet. */
  private line = '';
  private trailerBytes = 0;

  feed(bytes: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (this.done) throw refused('bytes past the end of the chunked body');
      if (this.state === 'data') {
        const take = Math.min(this.size, bytes.length - at);
        out.push(bytes.subarray(at, at + take));
        this.size -= take;
        at += take;
        if (this.size === 0) this.state = 'cr';
        continue;
      }
      if (this.state === 'cr' || this.state === 'lf') {
        if (bytes[at] !== (this.state === 'cr' ? 13 : 10)) throw refused('chunk data not followed by CRLF');
        at++;
        this.state = this.state === 'cr' ? 'lf' : 'size';
        continue;
      }
      // A size line, or after the last chunk the trailer's lines until an empty one.
      const nl = bytes.indexOf(10, at);
      const stop = nl < 0 ? bytes.length : nl;
      const room = this.state === 'size' ? CHUNK_LINE_LIMIT + 1 : TRAILER_LIMIT - this.trailerBytes;
      if (this.line.length + (stop - at) > room) {
        throw refused(this.state === 'size' ? 'chunk-size line too long' : `trailer over ${TRAILER_LIMIT} bytes`);
      }
      this.line += bytes.toString('latin1', at, stop);
      at = stop;
      if (nl < 0) break;
      at++;
      const raw = this.line;
      this.line = '';
      if (!raw.endsWith('\r')) throw refused('a chunked-body line ending in a bare LF');
      const line = raw.slice(0, -1);
      if (this.state === 'trailer') {
        this.trailerBytes += raw.length + 1;
        if (this.trailerBytes > TRAILER_LIMIT) throw refused(`trailer over ${TRAILER_LIMIT} bytes`);
        if (line === '') this.done = true;
        else if (!TRAILER_LINE.test(line)) throw refused(`malformed trailer line ${JSON.stringify(line.slice(0, 80))}`);
        continue;
      }
      const m = CHUNK_SIZE_LINE.exec(line);
      if (!m) throw refused(`bad chunk-size line ${JSON.stringify(line.slice(0, 80))}`);
      const size = Number.parseInt(m[1] as string, 16);
      if (size === 0) this.state = 'trailer';
      else {
        this.size = size;
        this.state = 'data';
      }
    }
    return out;
  }
}
