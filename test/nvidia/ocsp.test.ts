/**
 * OCSP (providers/nvidia/ocsp.ts) against real `openssl ocsp` responders: NVIDIA's responder
 * cannot be reached offline and no NVIDIA OCSP response exists in any public repository, so the
 * test builds its own P-384 PKI with openssl (root → intermediates, a delegated OCSP signer, a
 * rogue signer) and runs three responders on loopback:
 * - `delegated`: index file for the root, answers signed by a root-issued id-kp-OCSPSigning cert;
 * - `direct`: the same index, answers signed by the root itself;
 * - `rogue`: the same index, answers signed by a self-signed cert the root never authorized.
 * Cases: good, revoked (keyCompromise and certificateHold), unknown serial, unauthorized signer,
 * unreachable responder, garbled body, HTTP 500, stale and future responses, the cache (one
 * request for repeated checks), and the three modes applied to a chain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OcspChecker, ocspTargets, type OcspCheckerOptions } from '../../providers/nvidia/ocsp.js';
import { parsePemCertificates, type Certificate } from '../../providers/common/x509.js';
import { freePort } from '../helpers/ports.js';
import { describeVectors, readVectorText } from '../helpers/vectors.js';
import { codeOfAsync, SAMPLES } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'nv-ocsp-'));
const procs: ChildProcess[] = [];
let server: Server | undefined;
const urls: Record<'delegated' | 'direct' | 'rogue' | 'garbled' | 'error500' | 'closed', string> = {
  delegated: '',
  direct: '',
  rogue: '',
  garbled: '',
  error500: '',
  closed: '',
};
const certs: Record<string, Certificate> = {};

function ossl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}
const EXT = `[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
[ocsp]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=OCSPSigning
`;

function issue(name: string, subject: string, issuer: string, ext: 'ca' | 'leaf' | 'ocsp'): void {
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '3650', '-sha384', '-extfile', 'ext.cnf', '-extensions', ext);
}
function serialOf(name: string): string {
  return execFileSync('openssl', ['x509', '-in', `${name}.pem`, '-noout', '-serial'], { cwd: dir, encoding: 'utf8' }).trim().split('=')[1] as string;
}
const load = (name: string): Certificate => parsePemCertificates(readFileSync(join(dir, `${name}.pem`), 'utf8'))[0]!;

async function responder(signer: string): Promise<string> {
  const port = await freePort();
  const p = spawn('openssl', ['ocsp', '-index', 'index.txt', '-CA', 'root.pem', '-rsigner', `${signer}.pem`, '-rkey', `${signer}.key`, '-port', String(port), '-nmin', '10', '-ignore_err'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('openssl ocsp did not start')), 10_000);
    const onData = (d: Buffer): void => {
      if (d.toString().includes('waiting for OCSP client connections')) {
        clearTimeout(t);
        resolve();
      }
    };
    p.stdout?.on('data', onData);
    p.stderr?.on('data', onData);
    p.on('exit', (code) => reject(new Error(`openssl ocsp exited with ${code}`)));
  });
  return `http://127.0.0.1:${port}/`;
}

beforeAll(async () => {
  writeFileSync(join(dir, 'ext.cnf'), EXT);
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-subj', '/CN=Test OCSP Root', '-days', '3650', '-sha384', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  issue('good', '/CN=Good ICA', 'root', 'ca');
  issue('revoked', '/CN=Revoked ICA', 'root', 'ca');
  issue('held', '/CN=Held ICA', 'root', 'ca');
  issue('unlisted', '/CN=Unlisted ICA', 'root', 'ca');
  issue('leaf', '/CN=Leaf', 'good', 'leaf');
  issue('rleaf', '/CN=Leaf of the revoked ICA', 'revoked', 'leaf');
  issue('rsigner', '/CN=Test OCSP Signer', 'root', 'ocsp');
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.pem', '-subj', '/CN=Rogue OCSP Signer', '-days', '3650', '-sha384', '-addext', 'extendedKeyUsage=OCSPSigning');
  const exp = '351231235959Z';
  const rev = '240101000000Z';
  writeFileSync(
    join(dir, 'index.txt'),
    [
      `V\t${exp}\t\t${serialOf('good')}\tunknown\t/CN=Good ICA`,
      `R\t${exp}\t${rev},keyCompromise\t${serialOf('revoked')}\tunknown\t/CN=Revoked ICA`,
      `R\t${exp}\t${rev},certificateHold\t${serialOf('held')}\tunknown\t/CN=Held ICA`,
      `V\t${exp}\t\t${serialOf('rsigner')}\tunknown\t/CN=Test OCSP Signer`,
    ].join('\n') + '\n',
  );
  for (const n of ['root', 'good', 'revoked', 'held', 'unlisted', 'leaf', 'rleaf']) certs[n] = load(n);
  urls.delegated = await responder('rsigner');
  urls.direct = await responder('root');
  urls.rogue = await responder('rogue');
  server = createServer((req, res) => {
    if (req.url === '/garbled') res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(Buffer.from('30820000deadbeef', 'hex'));
    else res.writeHead(500).end('no');
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  const base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  urls.garbled = `${base}/garbled`;
  urls.error500 = `${base}/500`;
  urls.closed = `http://127.0.0.1:${await freePort()}/`;
}, 60_000);

afterAll(async () => {
  for (const p of procs) p.kill();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

let requests = 0;
const countingFetch: typeof fetch = (input, init) => {
  requests++;
  return fetch(input, init);
};
function checker(url: string, over: Partial<OcspCheckerOptions> = {}): OcspChecker {
  return new OcspChecker({ fetch: countingFetch, url, timeoutMs: 5000, maxAgeSeconds: 3600, clockSkewSeconds: 60, cacheEntries: 16, certIdHash: 'sha384', ...over });
}
const now = (): Date => new Date();

describe('nvidia OCSP against openssl ocsp responders', () => {
  it('good, answered by a delegated responder the issuer authorized', async () => {
    const r = await checker(urls.delegated).checkOne(certs.good!, certs.root!, now());
    expect(r.status).toBe('good');
    expect(r.nextUpdate).toBeDefined();
  });

  it('good, signed by the issuer itself; SHA-256 CertIDs work too', async () => {
    expect((await checker(urls.direct).checkOne(certs.good!, certs.root!, now())).status).toBe('good');
    expect((await checker(urls.direct, { certIdHash: 'sha256' }).checkOne(certs.good!, certs.root!, now())).status).toBe('good');
  });

  it('revoked (keyCompromise) and revoked (certificateHold) carry time and reason', async () => {
    const c = checker(urls.delegated);
    expect(await c.checkOne(certs.revoked!, certs.root!, now())).toMatchObject({ status: 'revoked', reason: 'keyCompromise', revokedAt: '2024-01-01T00:00:00.000Z' });
    expect(await c.checkOne(certs.held!, certs.root!, now())).toMatchObject({ status: 'revoked', reason: 'certificateHold' });
  });

  it('a serial the responder does not know: unknown', async () => {
    expect((await checker(urls.delegated).checkOne(certs.unlisted!, certs.root!, now())).status).toBe('unknown');
  });

  it('signed by a responder the issuer never authorized: unavailable', async () => {
    const r = await checker(urls.rogue).checkOne(certs.good!, certs.root!, now());
    expect(r).toMatchObject({ status: 'unavailable' });
    expect(r.reason).toMatch(/not signed by the issuer/);
  });

  it("a root-signed answer for a certificate the root did not issue (leaf of Good ICA): unavailable", async () => {
    expect((await checker(urls.direct).checkOne(certs.leaf!, certs.good!, now())).status).toBe('unavailable');
  });

  it('unreachable, garbled and HTTP 500 responders: unavailable with the reason', async () => {
    expect(await checker(urls.closed).checkOne(certs.good!, certs.root!, now())).toMatchObject({ status: 'unavailable', reason: expect.stringMatching(/unreachable/) });
    expect(await checker(urls.garbled).checkOne(certs.good!, certs.root!, now())).toMatchObject({ status: 'unavailable' });
    expect(await checker(urls.error500).checkOne(certs.good!, certs.root!, now())).toMatchObject({ status: 'unavailable', reason: 'HTTP 500 from the OCSP responder' });
  });

  it('a response checked an hour after its nextUpdate is stale, one from the future is refused', async () => {
    const later = new Date(Date.now() + 3 * 3600_000);
    expect(await checker(urls.delegated).checkOne(certs.good!, certs.root!, later)).toMatchObject({ status: 'unavailable', reason: expect.stringMatching(/stale/) });
    // An hour ago the delegated signer (issued at test start) was not valid yet, so it was not an
    // authorized responder then; the root-signed answer isolates the thisUpdate check.
    const earlier = new Date(Date.now() - 3600_000);
    expect(await checker(urls.delegated).checkOne(certs.good!, certs.root!, earlier)).toMatchObject({ status: 'unavailable', reason: expect.stringMatching(/not signed by the issuer/) });
    expect(await checker(urls.direct).checkOne(certs.good!, certs.root!, earlier)).toMatchObject({ status: 'unavailable', reason: expect.stringMatching(/future/) });
  });

  it('verified answers are cached: repeated and concurrent checks cost one request', async () => {
    const c = checker(urls.delegated);
    const before = requests;
    const t = now();
    const all = await Promise.all([1, 2, 3, 4].map(() => c.checkOne(certs.good!, certs.root!, t)));
    expect(all.every((r) => r.status === 'good')).toBe(true);
    await c.checkOne(certs.good!, certs.root!, t);
    expect(requests - before).toBe(1);
    expect(c.cache.hits).toBeGreaterThanOrEqual(1);
  });

  it('failures are not cached', async () => {
    const c = checker(urls.error500);
    const before = requests;
    await c.checkOne(certs.good!, certs.root!, now());
    await c.checkOne(certs.good!, certs.root!, now());
    expect(requests - before).toBe(2);
  });

  describe('modes on a device chain [leaf, ICA, root] (the ICA is checked)', () => {
    const good = (): Certificate[] => [certs.leaf!, certs.good!, certs.root!];
    const revoked = (): Certificate[] => [certs.rleaf!, certs.revoked!, certs.root!];
    it('off: nothing is asked', async () => {
      const before = requests;
      expect((await checker(urls.closed).checkChain(good(), 'device', 'off', now(), 'chain')).status).toBe('off');
      expect(requests).toBe(before);
    });
    it('best-effort and required: good', async () => {
      expect((await checker(urls.delegated).checkChain(good(), 'device', 'best-effort', now(), 'chain')).status).toBe('good');
      expect((await checker(urls.delegated).checkChain(good(), 'device', 'required', now(), 'chain')).status).toBe('good');
    });
    it('revoked: OCSP_REVOKED in best-effort and required', async () => {
      expect(await codeOfAsync(checker(urls.delegated).checkChain(revoked(), 'device', 'best-effort', now(), 'chain'))).toBe('NVIDIA_OCSP_REVOKED');
      expect(await codeOfAsync(checker(urls.delegated).checkChain(revoked(), 'device', 'required', now(), 'chain'))).toBe('NVIDIA_OCSP_REVOKED');
    });
    it('unreachable or garbled: recorded in best-effort, OCSP_UNAVAILABLE when required', async () => {
      for (const url of [urls.closed, urls.garbled]) {
        expect((await checker(url).checkChain(good(), 'device', 'best-effort', now(), 'chain')).status).toBe('unavailable');
        expect(await codeOfAsync(checker(url).checkChain(good(), 'device', 'required', now(), 'chain'))).toBe('NVIDIA_OCSP_UNAVAILABLE');
      }
    });
    it('unknown: recorded in best-effort, OCSP_UNAVAILABLE when required', async () => {
      const chain = [certs.leaf!, certs.unlisted!, certs.root!];
      expect((await checker(urls.delegated).checkChain(chain, 'device', 'best-effort', now(), 'chain')).status).toBe('unknown');
      expect(await codeOfAsync(checker(urls.delegated).checkChain(chain, 'device', 'required', now(), 'chain'))).toBe('NVIDIA_OCSP_UNAVAILABLE');
    });
  });
});

describeVectors('nvidia OCSP targets on a real NVIDIA chain', () => {
  it('device chains check everything between leaf and root; RIM chains everything below the root', () => {
    const path = parsePemCertificates(readVectorText(`${SAMPLES}/hopperCertChain.txt`));
    const cn = (c: Certificate): string => c.subject.replace(/.*CN=([^,]+).*/, '$1');
    expect(ocspTargets(path, 'device').map((t) => cn(t.cert))).toEqual(['GH100 A01 GSP BROM', 'NVIDIA GH100 Provisioner ICA 1', 'NVIDIA GH100 Identity']);
    expect(ocspTargets(path, 'rim').map((t) => cn(t.cert))).toEqual(['GH100 A01 GSP FMC LF', 'GH100 A01 GSP BROM', 'NVIDIA GH100 Provisioner ICA 1', 'NVIDIA GH100 Identity']);
  });
});
