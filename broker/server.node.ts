/**
 * @module broker/server.node
 *
 * The Node listeners: a Hono app on node:http or node:https with the limits a public endpoint
 * needs, and the peer information (address, verified client certificate) the app reads.
 *
 * - `headersTimeout` / `requestTimeout`: a client that trickles its headers or body is cut off
 *   (Node answers 408 and closes); half-sent bodies cannot pin connections forever.
 * - `keepAliveTimeout` and a socket idle timeout: idle connections are closed.
 * - `maxConnections` in all and `maxConnectionsPerAddress`: a connection beyond either is
 *   destroyed at once, before TLS or HTTP parsing, so one address cannot hold every socket.
 * - TLS: `certFile`/`keyFile`; with `clientCaFile` the server asks for a client certificate and
 *   verifies it against that CA only (a connection without one is still accepted: the app
 *   decides what an unauthenticated caller may do, e.g. present a bearer credential instead).
 * The files are read once at start; the server keeps serving with what it read.
 */
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { getRequestListener } from '@hono/node-server';
import type { Context } from 'hono';
import type { Peer } from './contracts.js';

export interface ServerLimits {
  headersTimeoutSeconds: number;
  requestTimeoutSeconds: number;
  keepAliveTimeoutSeconds: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headersTimeoutSeconds: 10,
  requestTimeoutSeconds: 30,
  keepAliveTimeoutSeconds: 5,
  maxConnections: 10_000,
  maxConnectionsPerAddress: 64,
};

export interface ListenOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  limits?: Partial<ServerLimits>;
}

export interface Listener {
  server: HttpServer;
  /** e.g. https://127.0.0.1:8443 */
  url: string;
  close(): Promise<void>;
}

/** The peer of a request served by `listen` (Hono's Node adapter puts the IncomingMessage in env). */
export function nodePeer(c: Context): Peer {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const sock = incoming?.socket as (Socket & Partial<TLSSocket>) | undefined;
  if (!sock) return {};
  const peer: Peer = sock.remoteAddress ? { address: sock.remoteAddress } : {};
  if (sock.encrypted && sock.authorized && typeof sock.getPeerCertificate === 'function') {
    const pc = sock.getPeerCertificate(false);
    if (pc?.raw) {
      const cert = new X509Certificate(pc.raw);
      const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
      if (cn !== undefined) peer.clientCertificate = { subject: cn, sha256: cert.fingerprint256.replace(/:/g, '').toLowerCase() };
    }
  }
  return peer;
}

export async function listen(fetch: (req: Request, env: unknown) => Response | Promise<Response>, o: ListenOptions): Promise<Listener> {
  const lim = { ...DEFAULT_SERVER_LIMITS, ...o.limits };
  const handler = getRequestListener(fetch);
  // Node enforces headersTimeout/requestTimeout when it checks its connections: check every
  // second (the default, 30 s, would let a trickling client hold a socket 30 s past its limit).
  const httpOptions = { connectionsCheckingInterval: 1000 };
  const server: HttpServer = o.tls
    ? (createHttpsServer(
        {
          ...httpOptions,
          cert: readFileSync(o.tls.certFile),
          key: readFileSync(o.tls.keyFile),
          ...(o.tls.clientCaFile ? { ca: readFileSync(o.tls.clientCaFile), requestCert: true, rejectUnauthorized: false } : {}),
          minVersion: 'TLSv1.2',
        },
        handler,
      ) as unknown as HttpServer)
    : createHttpServer(httpOptions, handler);
  server.headersTimeout = lim.headersTimeoutSeconds * 1000;
  server.requestTimeout = lim.requestTimeoutSeconds * 1000;
  server.keepAliveTimeout = lim.keepAliveTimeoutSeconds * 1000;
  server.maxConnections = lim.maxConnections;
  // An idle socket (no request in flight, e.g. a TLS handshake that never ends) is closed.
  server.setTimeout(Math.max(lim.requestTimeoutSeconds, lim.keepAliveTimeoutSeconds) * 1000 + 1000, (s: Socket) => s.destroy());

  const perAddress = new Map<string, number>();
  server.on('connection', (sock: Socket) => {
    const a = sock.remoteAddress ?? '?';
    const n = (perAddress.get(a) ?? 0) + 1;
    if (n > lim.maxConnectionsPerAddress) {
      sock.destroy();
      return;
    }
    perAddress.set(a, n);
    sock.once('close', () => {
      const left = (perAddress.get(a) ?? 1) - 1;
      if (left <= 0) perAddress.delete(a);
      else perAddress.set(a, left);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    server,
    url: `${o.tls ? 'https' : 'http'}://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections?.();
      }),
  };
}
