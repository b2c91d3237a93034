/**
 * SEV-SNP path benchmark body (bundled and run by `bench/snp.mjs`).
 *
 * Measures, on the real Azure evidence in test/vectors, sequentially (one core's worth of
 * latency; ops/s = iterations / elapsed):
 * - raw: one WebCrypto ECDSA P-384/SHA-384 verify of the 0x2A0 signed bytes with a
 *   pre-imported key — the floor for any SNP verifier;
 * - snp-warm: what a request pays with warm caches — the VCEK DER from the evidence through the
 *   parsed-certificate memo (one SHA-256), parse the report, verifySnpReport (key/extension and
 *   chain memo hit, TCB/hwID checks, the P-384 verify);
 * - snp-cold: the same without caches (VCEK → ASK → ARK RSA-PSS chain every time);
 * - azure-warm: the whole `azure` provider on evidence-v1 (schema, HCL parse, SNP path,
 *   runtime-data digest, RSA-2048 vTPM quote verify), KDS answers cached.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BUILTIN_PINS } from '../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../providers/common/trust.js';
import { parseCertificate, parsePemCertificates, importPublicKey } from '../providers/common/x509.js';
import { parseSnpReport, SNP_SIGNED_LENGTH } from '../providers/amd-sev-snp/parse.js';
import { verifySnpReport, SnpVerifyCache } from '../providers/amd-sev-snp/verify.js';
import { createAzureProvider } from '../providers/azure/index.js';
import { fromBase64Url } from '../providers/common/encoding.js';

const ROOTS: Record<string, string> = {
  'amd-ark-milan': 'trustee/amd-roots/milan_ask_ark_asvk.pem',
  'amd-ark-genoa': 'trustee/amd-roots/genoa_ask_ark_asvk.pem',
  'amd-ark-turin': 'trustee/amd-roots/turin_ask_ark_asvk.pem',
};

interface Result {
  name: string;
  iterations: number;
  opsPerSec: number;
  p50us: number;
  p99us: number;
}

async function measure(name: string, iterations: number, f: () => Promise<unknown>): Promise<Result> {
  for (let i = 0; i < Math.min(200, iterations / 10); i++) await f(); // warm-up (JIT, caches)
  const lat = new Float64Array(iterations);
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const s = performance.now();
    await f();
    lat[i] = performance.now() - s;
  }
  const total = performance.now() - t0;
  lat.sort();
  const q = (p: number): number => Math.round(lat[Math.min(iterations - 1, Math.floor(p * iterations))]! * 1000);
  return { name, iterations, opsPerSec: Math.round((iterations / total) * 1000), p50us: q(0.5), p99us: q(0.99) };
}

export async function run(vectorsDir: string, iterations: number): Promise<Result[]> {
  const v = (rel: string): Uint8Array => new Uint8Array(readFileSync(join(vectorsDir, rel)));
  const anchors = await Promise.all(BUILTIN_PINS.filter((p) => ROOTS[p.id]).map((p) => anchorFromBytes(p, v(ROOTS[p.id]!))));
  const trust = createTrustStore(anchors);
  const evidence = JSON.parse(new TextDecoder().decode(v('trustee/az-snp-vtpm/evidence-v1.json'))) as Record<string, unknown>;
  const hcl = fromBase64Url(String(evidence.hcl_report).replace(/=+$/, ''));
  const reportBytes = hcl.slice(32, 32 + 1184);
  const vcekDer = fromBase64Url(String(evidence.vcek).replace(/=+$/, ''));
  const askPem = new TextDecoder().decode(v('trustee/amd-roots/milan_ask_ark_asvk.pem'));
  const chain = parsePemCertificates(askPem);
  const at = new Date('2025-06-01T00:00:00Z');

  const report = parseSnpReport(reportBytes);
  const key = await importPublicKey(parseCertificate(vcekDer), { name: 'ECDSA', namedCurve: 'P-384' });
  const sig = new Uint8Array(96);
  sig.set(report.signature.r, 0);
  sig.set(report.signature.s, 48);
  const signed = reportBytes.slice(0, SNP_SIGNED_LENGTH);

  const out: Result[] = [];
  out.push(
    await measure('raw ECDSA P-384 verify (WebCrypto)', iterations, async () => {
      if (!(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, sig, signed))) throw new Error('raw verify failed');
    }),
  );
  const cache = new SnpVerifyCache();
  out.push(
    await measure('SNP path, warm VCEK/ASK cache', iterations, async () =>
      verifySnpReport({ report: parseSnpReport(reportBytes), endorsementKey: await cache.certificate(vcekDer), intermediates: chain, trust, at, cache }),
    ),
  );
  out.push(
    await measure('SNP path, no cache (X.509 + RSA-PSS chain)', Math.max(50, Math.floor(iterations / 5)), () =>
      verifySnpReport({ report: parseSnpReport(reportBytes), endorsementKey: parseCertificate(vcekDer), intermediates: chain, trust, at }),
    ),
  );

  // The whole provider, with a local KDS-compatible server answering cert_chain once.
  let kdsHits = 0;
  const server = createServer((_req, res) => {
    kdsHits++;
    res.writeHead(200).end(askPem);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const provider = createAzureProvider({ kdsBaseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  const ctx = { binding: new TextEncoder().encode('challenge'), now: at, fetch, trust, options: {} };
  out.push(await measure('azure provider az-snp-vtpm v1, warm caches', Math.max(50, Math.floor(iterations / 2)), () => provider.verify('az-snp-vtpm', evidence, ctx)));
  await new Promise((r) => server.close(r));
  if (kdsHits !== 1) throw new Error(`expected one KDS request, saw ${kdsHits}`);
  return out;
}

export const defaultVectors = (root: string): string => process.env.ATTEST_VECTORS ?? resolve(root, 'test/vectors');
