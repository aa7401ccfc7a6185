// HTTP /metrics (Prometheus text) and /healthz for one mount.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BucketfsError, describe, ErrorCodes } from '../errors.js';
import type { Metrics } from './metrics.js';

/** A listen failure as one line that names the option and what to do. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): BucketfsError {
  const where = `${host}:${port}`;
  const msg =
    err.code === 'EADDRINUSE'
      ? `--metrics-port ${port}: ${where} is already in use; choose a free port, or 0 for any free one`
      : err.code === 'EACCES'
        ? `--metrics-port ${port}: not allowed to listen on ${where} (ports below 1024 need root); choose a port of 1024 or above`
        : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND'
          ? `--metrics-host ${host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its own addresses`
          : `cannot serve metrics on ${where} (--metrics-host, --metrics-port): ${describe(err)}`;
  return new BucketfsError(ErrorCodes.MetricsListen, msg, { key: where, cause: err });
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export function startMetricsServer(metrics: Metrics, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        },
      );
      return;
    }
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenError(err, host, port));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
