/**
 * @module deploy/node/client/http.node
 *
 * HTTPS to the broker with its CA pinned by hash — the node has nothing else to trust: its
 * user-data carries only the broker URL, the pin and the cluster name.
 *
 * The pin is `sha256:<64 hex>` over the DER SubjectPublicKeyInfo of the broker's CA
 * certificate — the same form as kubeadm's `--discovery-token-ca-cert-hash`, so operators
 * compute it the same way:
 *   openssl x509 -in ca.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
 *
 * How a connection is trusted (two steps, both over TLS):
 * 1. Discovery: one handshake without verification, only to read the chain the broker serves;
 *    the certificate whose SPKI hash equals the pin (compared in constant time) is taken as the
 *    only trust anchor. Nothing is sent on this connection. The broker MUST serve its CA
 *    certificate in its chain (it is public; serving it costs nothing) — otherwise the client
 *    fails with JOIN_TLS_PIN_MISMATCH.
 * 2. Every request then runs over Node's normal verification (`rejectUnauthorized`, chain
 *    signatures, validity dates, hostname / IP SAN per RFC 9525) with `ca` set to that single
 *    certificate, and `checkServerIdentity` re-checks that the verified chain contains the pinned
 *    key. An attacker who replays the public CA certificate in a chain of their own fails here,
 *    because their leaf is not signed by it.
 *
 * Plain `http:` is refused: a pin over cleartext means nothing.
 */
import * as https from 'node:https';
import * as tls from 'node:tls';
import { isIP } from 'node:net';
import { X509Certificate, createHash } from 'node:crypto';
import type { PeerCertificate, DetailedPeerCertificate } from 'node:tls';
import { timingSafeEqual } from '../../../providers/common/ct.js';
import { fromHex } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';

/** Responses above this are refused (the protocol caps bodies at 1 MiB; a release is far smaller). */
export const MAX_RESPONSE_BYTES = 1 << 20;

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
}

/** A request failure, classified by whether the request may have reached the broker. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    message: string,
    /** True when the request body was fully written before the failure (outcome unknown). */
    readonly sent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface BrokerTransport {
  /** POSTs JSON to `path` (relative to the broker URL); throws TransportError or AttestError. */
  postJson(path: string, body: unknown, opts: { timeoutMs: number }): Promise<HttpResponse>;
  close(): void;
}

export function parsePin(pin: string): Uint8Array {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(pin.trim());
  if (!m) throw joinError(JoinCodes.USAGE, '--ca-pin must be sha256:<64 hex digits> (SHA-256 of the CA certificate SubjectPublicKeyInfo)');
  return fromHex(m[1]!.toLowerCase());
}

/** SHA-256 of a certificate's DER SubjectPublicKeyInfo. */
export function spkiSha256(certDer: Uint8Array): Uint8Array {
  const cert = new X509Certificate(certDer);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return new Uint8Array(createHash('sha256').update(spki).digest());
}

/** Walks a peer chain (leaf first), stopping at self-issued loops; at most 10 certificates. */
function chainOf(leaf: DetailedPeerCertificate | PeerCertificate): Uint8Array[] {
  const out: Uint8Array[] = [];
  let c: DetailedPeerCertificate | undefined = leaf as DetailedPeerCertificate;
  const seen = new Set<string>();
  while (c && c.raw && out.length < 10) {
    const fp = c.fingerprint256;
    if (seen.has(fp)) break;
    seen.add(fp);
    out.push(new Uint8Array(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}

function findPinned(chain: Uint8Array[], pin: Uint8Array): Uint8Array | undefined {
  let found: Uint8Array | undefined;
  for (const der of chain) {
    let h: Uint8Array;
    try {
      h = spkiSha256(der);
    } catch {
      continue;
    }
    if (timingSafeEqual(h, pin) && !found) found = der;
  }
  return found;
}

function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** Step 1: read the served chain and pick the pinned certificate. */
export async function discoverPinnedCa(url: URL, pin: Uint8Array, timeoutMs: number): Promise<string> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const chain = await new Promise<Uint8Array[]>((resolve, reject) => {
    const sock = tls.connect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(() => sock.destroy(new Error(`TLS handshake timed out after ${timeoutMs} ms`)), timeoutMs);
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      const peer = sock.getPeerCertificate(true);
      sock.end();
      resolve(chainOf(peer));
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(new TransportError(`cannot reach broker at ${host}:${port}: ${e.message}`, false, { cause: e }));
    });
  });
  const ca = findPinned(chain, pin);
  if (!ca) {
    throw joinError(
      JoinCodes.TLS_PIN_MISMATCH,
      `no certificate in the broker's TLS chain (${chain.length} served) matches --ca-pin; is the pin right, and does the broker serve its CA certificate?`,
    );
  }
  return derToPem(ca);
}

export interface PinnedTransportOptions {
  brokerUrl: URL;
  pin: Uint8Array;
}

/**
 * The transport used by the join client. The pinned CA is discovered lazily on first use and
 * kept for the life of the transport (one join).
 */
export function createPinnedTransport(o: PinnedTransportOptions): BrokerTransport {
  if (o.brokerUrl.protocol !== 'https:') {
    throw joinError(JoinCodes.USAGE, `--broker must be an https:// URL, got ${o.brokerUrl.protocol}`);
  }
  let agent: https.Agent | undefined;
  let caPem: string | undefined;

  const ensureAgent = async (timeoutMs: number): Promise<https.Agent> => {
    if (agent) return agent;
    caPem ??= await discoverPinnedCa(o.brokerUrl, o.pin, timeoutMs);
    agent = new https.Agent({
      ca: [caPem],
      rejectUnauthorized: true,
      // A fresh connection per request (three or four per join): a stale keep-alive socket
      // would fail *after* the body was written and turn a harmless reset into an
      // outcome-unknown attest.
      keepAlive: false,
      maxSockets: 2,
      checkServerIdentity: (host, cert) => {
        const err = tls.checkServerIdentity(host, cert);
        if (err) return err;
        if (!findPinned(chainOf(cert), o.pin)) return new Error('verified chain does not contain the pinned CA key');
        return undefined;
      },
    });
    return agent;
  };

  return {
    async postJson(path, body, { timeoutMs }) {
      const ag = await ensureAgent(timeoutMs);
      const target = new URL(path.replace(/^\//, ''), o.brokerUrl.href.endsWith('/') ? o.brokerUrl : new URL(o.brokerUrl.href + '/'));
      const payload = Buffer.from(JSON.stringify(body));
      return await new Promise<HttpResponse>((resolve, reject) => {
        let sent = false;
        const req = https.request(
          target,
          {
            method: 'POST',
            agent: ag,
            headers: {
              'content-type': 'application/json',
              accept: 'application/json, application/problem+json',
              'content-length': String(payload.length),
              'user-agent': 'attest-broker-join/1',
            },
            timeout: timeoutMs,
          },
          (res) => {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (c: Buffer) => {
              size += c.length;
              if (size > MAX_RESPONSE_BYTES) {
                res.destroy();
                reject(joinError(JoinCodes.BAD_RESPONSE, `broker response exceeds ${MAX_RESPONSE_BYTES} bytes`));
                return;
              }
              chunks.push(c);
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: new Uint8Array(Buffer.concat(chunks)) }));
            res.on('error', (e) => reject(new TransportError(`reading broker response failed: ${e.message}`, true, { cause: e })));
          },
        );
        // `timeout` above bounds idle time; this bounds the whole exchange (a trickling peer).
        const overall = setTimeout(() => req.destroy(new Error(`request exceeded ${timeoutMs} ms`)), timeoutMs);
        overall.unref();
        req.on('close', () => clearTimeout(overall));
        req.on('timeout', () => req.destroy(new Error(`request timed out after ${timeoutMs} ms`)));
        req.on('error', (e: NodeJS.ErrnoException) => {
          if (isTlsVerifyError(e)) {
            reject(joinError(JoinCodes.TLS_VERIFY_FAILED, `broker TLS verification against the pinned CA failed: ${e.message}`, { cause: e }));
            return;
          }
          reject(new TransportError(`request to ${target.pathname} failed: ${e.message}`, sent, { cause: e }));
        });
        req.end(payload, () => {
          sent = true;
        });
      });
    },
    close() {
      agent?.destroy();
    },
  };
}

function isTlsVerifyError(e: NodeJS.ErrnoException): boolean {
  const c = String(e.code ?? '');
  return (
    c.startsWith('ERR_TLS_') ||
    c.includes('CERT') ||
    c === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    c === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    c === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    e.message.includes('pinned CA key')
  );
}

