/**
 * Shared test helpers for the SEV-SNP, TDX and Azure suites: error-code capture and the real
 * SNP sets from test/vectors (read in place).
 */
import { AttestError } from '../../providers/common/errors.js';
import { parseCertificate, parsePemCertificates, type Certificate } from '../../providers/common/x509.js';
import { readVector, readVectorText } from '../helpers/vectors.js';

/** The AttestError code a call throws (sync or async), or 'NO_ERROR'. Anything else rethrows. */
export async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'NO_ERROR';
}

export function codeOfSync(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'NO_ERROR';
}

export interface SnpSet {
  name: string;
  report: () => Uint8Array;
  key: () => Certificate;
  chain: () => Certificate[];
  at: Date;
}

const amdChain = (gen: 'milan' | 'genoa'): Certificate[] => parsePemCertificates(readVectorText(`trustee/amd-roots/${gen}_ask_ark_asvk.pem`));

function azureSnpReport(rel: string): Uint8Array {
  if (rel.endsWith('.bin')) return readVector(rel).slice(32, 32 + 1184);
  const ev = JSON.parse(readVectorText(rel)) as { report: number[] };
  return Uint8Array.from(ev.report).slice(32, 32 + 1184);
}
function pemKey(rel: string, json = false): Certificate {
  const text = json ? (JSON.parse(readVectorText(rel)) as { vcek: string }).vcek : readVectorText(rel);
  return parsePemCertificates(text)[0]!;
}

/** Every real SNP report with its endorsement key, chain and a time inside all validities. */
export const SNP_SETS: readonly SnpSet[] = [
  {
    name: 'trustee/snp test-report (v2, Milan, VCEK)',
    report: () => readVector('trustee/snp/test-report.bin'),
    key: () => parseCertificate(readVector('trustee/snp/test-vcek.der')),
    chain: () => amdChain('milan'),
    at: new Date('2024-06-01T00:00:00Z'),
  },
  {
    name: 'trustee/snp test-vlek-report (v3, Milan, VLEK, VMPL 1)',
    report: () => readVector('trustee/snp/test-vlek-report.bin'),
    key: () => parseCertificate(readVector('trustee/snp/test-vlek.der')),
    chain: () => amdChain('milan'),
    at: new Date('2025-06-01T00:00:00Z'),
  },
  {
    name: 'go-sev-guest attestation.bin (v2, Milan, DEBUG)',
    report: () => readVector('go-sev-guest/testdata/attestation.bin'),
    key: () => parseCertificate(readVector('go-sev-guest/testdata/vcek.testcer')),
    chain: () => parsePemCertificates(readVectorText('go-sev-guest/trust/ask_ark_milan.pem')),
    at: new Date('2023-01-01T00:00:00Z'),
  },
  {
    name: 'az-snp-vtpm hcl-report.bin (v2, Milan)',
    report: () => azureSnpReport('trustee/az-snp-vtpm/hcl-report.bin'),
    key: () => pemKey('trustee/az-snp-vtpm/vcek.pem'),
    chain: () => amdChain('milan'),
    at: new Date('2024-06-01T00:00:00Z'),
  },
  {
    name: 'az-snp-vtpm evidence-v0 (v3, Milan)',
    report: () => azureSnpReport('trustee/az-snp-vtpm/evidence-v0.json'),
    key: () => pemKey('trustee/az-snp-vtpm/evidence-v0.json', true),
    chain: () => amdChain('milan'),
    at: new Date('2025-06-01T00:00:00Z'),
  },
  {
    name: 'az-snp-vtpm evidence-genoa (v3, Genoa)',
    report: () => azureSnpReport('trustee/az-snp-vtpm/evidence-genoa.json'),
    key: () => pemKey('trustee/az-snp-vtpm/evidence-genoa.json', true),
    chain: () => amdChain('genoa'),
    at: new Date('2025-06-01T00:00:00Z'),
  },
];
