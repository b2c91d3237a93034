/**
 * The KDS client against a local HTTP server on a free port that speaks AMD KDS's wire format
 * (VCEK and KDS Interface Specification, pub. 57230, §4: `GET /vcek/v1/{product}/{hwid}?blSPL=…`
 * → DER, `GET /vcek/v1/{product}/cert_chain` → PEM), serving the real certificates from the
 * vectors. The real client and real `fetch` run unchanged; the server counts requests.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeVectors, loadTestTrust, readVector, readVectorText } from '../helpers/vectors.js';
import { KdsClient, resolveSnpCerts, vcekUrl } from '../../providers/amd-sev-snp/kds.js';
import { parseSnpReport, decodeTcb } from '../../providers/amd-sev-snp/parse.js';
import { verifySnpReport } from '../../providers/amd-sev-snp/verify.js';
import { verifySnpAttestation, strictSnpOptions } from '../../providers/amd-sev-snp/index.js';
import { AttestError } from '../../providers/common/errors.js';
import { codeOf } from './helpers.js';

describeVectors('AMD KDS client (local KDS-compatible server)', () => {
  let server: Server;
  let base = '';
  const hits = new Map<string, number>();
  let mode: 'ok' | '429' | '500' | 'garbage' | 'redirect' = 'ok';
  const report = (): ReturnType<typeof parseSnpReport> => parseSnpReport(readVector('go-sev-guest/testdata/attestation.bin'));
  const expectedPath = (): string => new URL(vcekUrl('http://x', { product: 'Milan', chipId: report().chipId, tcb: decodeTcb(report().reportedTcb, 'Milan') })).pathname;

  beforeAll(async () => {
    const vcek = readVector('go-sev-guest/testdata/vcek.testcer');
    const chain = readVectorText('go-sev-guest/trust/ask_ark_milan.pem');
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      hits.set(url.pathname + url.search, (hits.get(url.pathname + url.search) ?? 0) + 1);
      // Answer late so that concurrent callers really overlap.
      setTimeout(() => {
        if (mode === '429') {
          res.writeHead(429, { 'retry-after': '10' }).end();
        } else if (mode === '500') {
          res.writeHead(500).end();
        } else if (mode === 'garbage') {
          res.writeHead(200).end('hello');
        } else if (mode === 'redirect') {
          res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
        } else if (url.pathname === '/vcek/v1/Milan/cert_chain') {
          res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(chain);
        } else if (url.pathname === expectedPath() && url.searchParams.get('snpSPL') === '5' && url.searchParams.get('ucodeSPL') === '68') {
          res.writeHead(200, { 'content-type': 'application/pkix-cert' }).end(vcek);
        } else {
          res.writeHead(404).end();
        }
      }, 50);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('builds the KDS URL from CHIP_ID and REPORTED_TCB', () => {
    const r = report();
    const u = vcekUrl('https://kdsintf.amd.com', { product: 'Milan', chipId: r.chipId, tcb: decodeTcb(r.reportedTcb, 'Milan') });
    expect(u).toMatch(/^https:\/\/kdsintf\.amd\.com\/vcek\/v1\/Milan\/3ac3fe21[0-9a-f]{120}\?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68$/);
  });

  it('Turin: hwid is the first 8 bytes of CHIP_ID and fmcSPL leads the query', () => {
    const chipId = Uint8Array.from({ length: 64 }, (_, i) => i);
    expect(vcekUrl('https://kdsintf.amd.com', { product: 'Turin', chipId, tcb: { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 } })).toBe(
      'https://kdsintf.amd.com/vcek/v1/Turin/0001020304050607?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=5',
    );
  });

  it('50 concurrent misses make one request; later calls are served from the cache', async () => {
    mode = 'ok';
    hits.clear();
    const kds = new KdsClient({ baseUrl: base });
    const r = report();
    const req = { product: 'Milan' as const, chipId: r.chipId, tcb: decodeTcb(r.reportedTcb, 'Milan') };
    const got = await Promise.all(Array.from({ length: 50 }, () => kds.vcek(req, fetch)));
    expect(new Set(got.map((c) => c.serialNumber)).size).toBe(1);
    expect([...hits.values()]).toEqual([1]);
    await kds.vcek(req, fetch);
    expect([...hits.values()]).toEqual([1]);
  });

  it('a report without a VCEK in the evidence verifies with the VCEK and ASK fetched from KDS', async () => {
    mode = 'ok';
    hits.clear();
    const kds = new KdsClient({ baseUrl: base });
    const r = report();
    const certs = await resolveSnpCerts({ report: r, product: 'Milan', kds, fetch });
    expect(certs.keySource).toBe('kds');
    expect(certs.chainSource).toBe('kds');
    const v = await verifySnpReport({ report: r, ...certs, trust: await loadTestTrust(), at: new Date('2023-01-01T00:00:00Z') });
    expect(v.product).toBe('Milan');
    expect(hits.size).toBe(2);
  });

  it('verifySnpAttestation: one call from report bytes to a validated report (KDS for what is missing)', async () => {
    mode = 'ok';
    const kds = new KdsClient({ baseUrl: base });
    const trust = await loadTestTrust();
    const input = { report: readVector('go-sev-guest/testdata/attestation.bin'), product: 'Milan' as const, trust, at: new Date('2023-01-01T00:00:00Z'), kds, fetch };
    expect(await codeOf(() => verifySnpAttestation({ ...input, validate: strictSnpOptions() }))).toBe('SNP_POLICY_DEBUG');
    const v = await verifySnpAttestation({ ...input, validate: strictSnpOptions({ debug: 'allow' }) });
    expect(v.reportedTcb).toEqual({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
  });

  it('429 → KDS_RATE_LIMITED with Retry-After; 500, garbage and redirects rejected; failures are not cached', async () => {
    const kds = new KdsClient({ baseUrl: base });
    const r = report();
    const req = { product: 'Milan' as const, chipId: r.chipId, tcb: decodeTcb(r.reportedTcb, 'Milan') };
    mode = '429';
    let err: unknown;
    try {
      await kds.vcek(req, fetch);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AttestError);
    expect((err as AttestError).code).toBe('KDS_RATE_LIMITED');
    expect((err as AttestError).retryAfter).toBe(10);
    expect((err as AttestError).kind).toBe('unavailable');
    mode = '500';
    expect(await codeOf(() => kds.vcek(req, fetch))).toBe('KDS_UNAVAILABLE');
    mode = 'garbage';
    expect(await codeOf(() => kds.vcek(req, fetch))).toBe('KDS_RESPONSE_INVALID');
    expect(await codeOf(() => kds.certChain('Milan', 'vcek', fetch))).toBe('KDS_RESPONSE_INVALID');
    mode = 'redirect';
    expect(await codeOf(() => kds.vcek(req, fetch))).toBe('KDS_UNAVAILABLE');
    mode = 'ok';
    expect(await codeOf(() => kds.vcek(req, fetch))).toBe('NO_ERROR');
  });

  it('unknown chip → KDS_UNAVAILABLE (404); unreachable KDS → KDS_UNAVAILABLE', async () => {
    mode = 'ok';
    const kds = new KdsClient({ baseUrl: base });
    const r = report();
    expect(await codeOf(() => kds.vcek({ product: 'Milan', chipId: new Uint8Array(64), tcb: decodeTcb(r.reportedTcb, 'Milan') }, fetch))).toBe('KDS_UNAVAILABLE');
    const dead = new KdsClient({ baseUrl: 'http://127.0.0.1:1' });
    expect(await codeOf(() => dead.certChain('Milan', 'vcek', fetch))).toBe('KDS_UNAVAILABLE');
  });

  it('a VLEK-signed report without its VLEK → SNP_VLEK_REQUIRED; unknown product → SNP_PRODUCT_UNKNOWN', async () => {
    const kds = new KdsClient({ baseUrl: base });
    const vlekReport = parseSnpReport(readVector('trustee/snp/test-vlek-report.bin'));
    expect(await codeOf(() => resolveSnpCerts({ report: vlekReport, kds, fetch }))).toBe('SNP_VLEK_REQUIRED');
    expect(await codeOf(() => resolveSnpCerts({ report: report(), kds, fetch }))).toBe('SNP_PRODUCT_UNKNOWN');
  });
});
