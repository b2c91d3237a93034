/**
 * What a stranger can do to the real server (`attest-broker serve --config FILE` as a child
 * process, so its memory is its own), with loopback source addresses standing in for clients:
 * - a flood of 200,000 challenge requests from one address is answered 429, the server's RSS
 *   stays under 200 MB, and a genuine node joining from another address during the flood joins;
 * - clients that send half a body are cut off at the request timeout while /healthz answers;
 * - one address cannot hold more than maxConnectionsPerAddress connections;
 * - a 413 ends the connection cleanly, so a keep-alive client's next request works.
 * Loopback: Linux routes all of 127.0.0.0/8 to lo, so 127.0.0.2… are distinct client addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { join as joinNode } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
import { startSwtpm, type Swtpm } from '../deploy/swtpm.js';
import { makeTls, type TlsMaterial } from '../deploy/test-broker.js';
import { rawRequest, serveChild, writeConfig } from './serve-helpers.js';
import { freePort } from '../helpers/ports.js';

const ROOT = join(import.meta.dirname, '../..');
const FLOOD = 200_000;

/** `n` POST /v1/challenge from `localAddress` over `conns` keep-alive connections; status counts. */
async function flood(url: string, n: number, o: { localAddress: string; conns: number; ca?: string }): Promise<Map<number, number>> {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const agent = https
    ? new HttpsAgent({ keepAlive: true, maxSockets: o.conns, ...(o.ca ? { ca: o.ca } : {}) })
    : new HttpAgent({ keepAlive: true, maxSockets: o.conns });
  const counts = new Map<number, number>();
  let sent = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = (https ? httpsRequest : httpRequest)(
        { host: u.hostname, port: u.port, path: '/v1/challenge', method: 'POST', agent, localAddress: o.localAddress, headers: { 'content-type': 'application/json', 'content-length': '2' } },
        (res) => {
          counts.set(res.statusCode ?? 0, (counts.get(res.statusCode ?? 0) ?? 0) + 1);
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', () => {
        counts.set(0, (counts.get(0) ?? 0) + 1);
        resolve();
      });
      req.end('{}');
    });
  await Promise.all(
    Array.from({ length: o.conns }, async () => {
      while (sent < n) {
        sent++;
        await one();
      }
    }),
  );
  agent.destroy();
  return counts;
}

function policyFor(): string {
  const dev = parse(readFileSync(join(ROOT, 'deploy/policies/dev.yaml'), 'utf8')) as Record<string, unknown>;
  return stringify({ ...dev, version: 'limits-test' });
}

describe('the real server under abuse', () => {
  let dir: string;
  let tls: TlsMaterial;
  let tpm: Swtpm;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ab-limits-'));
    tls = makeTls('limits');
    tpm = await startSwtpm({ ekCert: true, ekChainInNv: true });
    writeFileSync(join(dir, 'broker.crt'), tls.leafPem + tls.caPem);
    writeFileSync(join(dir, 'broker.key'), tls.leafKeyPem);
    writeFileSync(join(dir, 'policy.yaml'), policyFor());
    writeFileSync(join(dir, 'ek-root.pem'), tpm.ekRootPem!);
  });
  afterAll(async () => {
    await tpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A config on a free port; `tls: false` for plain HTTP. */
  const start = async (over: Record<string, unknown> = {}, o: { tls?: boolean; limits?: Record<string, unknown> } = {}) => {
    const port = await freePort();
    const useTls = o.tls ?? true;
    const cfg = {
      ...config(over),
      listen: { host: '127.0.0.1', port, ...(useTls ? { tls: { certFile: join(dir, 'broker.crt'), keyFile: join(dir, 'broker.key') } } : {}) },
      ...(o.limits ? { limits: o.limits } : {}),
    };
    return serveChild(writeConfig(cfg, mkdtempSync(join(dir, 'srv-'))), `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`, useTls ? tls.caPem : undefined);
  };

  const config = (over: Record<string, unknown> = {}) => ({
    trust: {
      dir: join(dir, 'trust'),
      anchors: [{ id: 'swtpm-limits-ek-root', file: join(dir, 'ek-root.pem'), sha256: createHash('sha256').update(new X509Certificate(tpm.ekRootPem!).raw).digest('hex'), source: 'test' }],
    },
    providers: { tpm: { enabled: true, options: { ekRoots: ['swtpm-limits-ek-root'] } } },
    policy: { file: join(dir, 'policy.yaml'), watch: false },
    release: { mode: 'dev' },
    ...over,
  });

  it(`a flood of ${FLOOD.toLocaleString('en')} challenges from one address: 429s, RSS < 200 MB, and a genuine node joins meanwhile`, async () => {
    const srv = await start();
    try {
      const t0 = Date.now();
      let peakRss = srv.rssMb();
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, srv.rssMb())), 250);
      const flooding = flood(srv.url, FLOOD, { localAddress: '127.0.0.2', conns: 48, ca: tls.caPem });
      // The genuine node (from 127.0.0.1) joins while the flood runs.
      await new Promise((r) => setTimeout(r, 1000));
      const out = join(mkdtempSync(join(dir, 'node-')), 'bootstrap-kubeconfig');
      const joined = await joinNode({
        broker: srv.url,
        caPin: tls.pin,
        cluster: 'dev',
        platform: 'generic',
        out,
        deadlineMs: 60_000,
        tools: createToolRunner(tpm.env),
        eventLogPath: '',
        log: () => undefined,
      });
      expect(joined.nodeName).toMatch(/^dev-/);
      expect(readFileSync(out, 'utf8')).toMatch(/token: [a-z0-9]{6}\.[a-z0-9]{16}/);
      const counts = await flooding;
      clearInterval(sampler);
      peakRss = Math.max(peakRss, srv.rssMb());
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      expect(total).toBe(FLOOD);
      console.log(`flood: ${JSON.stringify(Object.fromEntries(counts))} in ${((Date.now() - t0) / 1000).toFixed(0)} s, peak RSS ${peakRss.toFixed(0)} MB`);
      // The default limit is 600 a minute per address: at most 600 per minute window the flood
      // spanned get a challenge, everything else is refused, nothing fails.
      const windows = Math.ceil((Date.now() - t0) / 60_000) + 1;
      expect(counts.get(201) ?? 0).toBeLessThanOrEqual(600 * windows);
      expect((counts.get(201) ?? 0) + (counts.get(429) ?? 0)).toBe(FLOOD);
      expect(peakRss).toBeLessThan(200);
      expect((await rawRequest(srv.url + '/healthz', { tls: { ca: tls.caPem } })).status).toBe(200);
    } finally {
      await srv.stop();
    }
  }, 300_000);

  it('clients trickling a body are cut off at the request timeout while /healthz answers', async () => {
    const srv = await start({}, { tls: false, limits: { requestTimeoutSeconds: 2, headersTimeoutSeconds: 2, maxConnectionsPerAddress: 600 } });
    try {
      const port = Number(new URL(srv.url).port);
      const open = (localAddress: string): Promise<Socket & { closedAt?: number }> =>
        new Promise((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port, localAddress }) as Socket & { closedAt?: number };
          s.on('error', () => undefined);
          s.resume(); // flowing, so the server's 408 and FIN are read and 'close' fires
          s.once('close', () => (s.closedAt = Date.now()));
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      const t0 = Date.now();
      const slow = await Promise.all(Array.from({ length: 500 }, () => open('127.0.0.3')));
      for (const s of slow) s.write(`POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":`);
      // /healthz from another address answers at once.
      const h0 = Date.now();
      expect((await rawRequest(srv.url + '/healthz', { localAddress: '127.0.0.1' })).status).toBe(200);
      expect(Date.now() - h0).toBeLessThan(1500);
      await new Promise((r) => setTimeout(r, 5000));
      const closed = slow.filter((s) => s.closedAt !== undefined);
      expect(closed).toHaveLength(500);
      // Cut off near the 2 s request timeout (checked every second), not held open.
      expect(Math.max(...closed.map((s) => s.closedAt! - t0))).toBeLessThan(4500);
    } finally {
      await srv.stop();
    }
  }, 60_000);

  it('one address cannot hold more than maxConnectionsPerAddress connections', async () => {
    const srv = await start({}, { tls: false, limits: { maxConnectionsPerAddress: 64, requestTimeoutSeconds: 10 } });
    try {
      const port = Number(new URL(srv.url).port);
      const socks = await Promise.all(
        Array.from(
          { length: 100 },
          () =>
            new Promise<Socket & { gone?: boolean }>((resolve) => {
              const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.4' }) as Socket & { gone?: boolean };
              s.on('error', () => undefined);
              s.resume();
              s.once('close', () => (s.gone = true));
              s.once('connect', () => resolve(s));
            }),
        ),
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(socks.filter((s) => s.gone)).toHaveLength(36);
      // Another address still connects and is served.
      expect((await rawRequest(srv.url + '/healthz', { localAddress: '127.0.0.5' })).status).toBe(200);
      for (const s of socks) s.destroy();
    } finally {
      await srv.stop();
    }
  }, 60_000);

  it('a 413 says Connection: close, so a keep-alive client sees it and its next request works', async () => {
    const srv = await start({}, { tls: false });
    try {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
      const post = (body: string) =>
        new Promise<{ status: number; connection?: string }>((resolve, reject) => {
          const req = httpRequest(srv.url + '/v1/challenge', { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
          });
          req.on('error', reject);
          req.end(body);
        });
      const big = await post(JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }));
      expect(big).toEqual({ status: 413, connection: 'close' });
      expect((await post('{}')).status).toBe(201);
      expect((await post('{}')).status).toBe(201);
      agent.destroy();
    } finally {
      await srv.stop();
    }
  }, 60_000);
});
