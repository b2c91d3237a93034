/**
 * @module providers/azure/verify
 *
 * The Azure CVM trust chain: hardware report → runtime data → vTPM attestation key → quote.
 *
 * Checks, in order (each failure has its own code):
 * 1. the HCL report's hardware report is the kind the format names (SNP for `az-snp-vtpm`,
 *    TDX for `az-tdx-vtpm`) → HCL_REPORT_TYPE_MISMATCH;
 * 2. the hardware evidence is genuine and acceptable:
 *    - SNP: the report in the HCL slot verifies with the VCEK (evidence first, else KDS) to the
 *      pinned ARK, and passes the strict SNP validation (no debug, no migration agent, VMPL 0:
 *      the paravisor's own report) — `amd-sev-snp/verify.ts`, `validate.ts`;
 *    - TDX: the TD quote verifies to the pinned Intel SGX Root CA and passes the strict TDX
 *      validation (no debug TD) — `intel-tdx/verify.ts`, `validate.ts`; the unsigned TDREPORT
 *      in the HCL slot must carry the same REPORTDATA → HCL_TDREPORT_MISMATCH;
 * 3. binding of the runtime data: H(runtime data bytes) == REPORT_DATA[0:|H|] with H the
 *    report's declared hash type → HCL_RUNTIME_DATA_DIGEST_MISMATCH, and the rest of
 *    REPORT_DATA is zero → HCL_REPORT_DATA_TRAILER_NONZERO;
 * 4. the vTPM quote verifies with `HCLAkPub` from that runtime data (RSASSA-SHA256 only), its
 *    extraData equals the binding, and the 24 SHA-256 PCRs match its pcrDigest — the TPM core's
 *    `verifyQuote` (QUOTE_SIGNATURE_INVALID, NONCE_MISMATCH, PCR_DIGEST_MISMATCH, AK_INVALID, …);
 * 5. evidence version ≥ 2: the runtime `user-data` starts with the binding, so the hardware
 *    report itself is fresh (the v2 attester puts the nonce there) → HCL_USER_DATA_MISSING /
 *    HCL_USER_DATA_MISMATCH.
 *
 * Step 3 before step 4: the AK is only used once the hardware vouches for the bytes it came in.
 */
import { CommonCodes, malformed, rejected } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import { digest } from '../common/digest.js';
import type { TrustStore } from '../common/types.js';
import { X509Codes, type Certificate } from '../common/x509.js';
import { fromBase64Any } from '../common/encoding.js';
import type { KdsClient } from '../amd-sev-snp/kds.js';
import type { SnpVerifyCache, VerifiedSnpReport } from '../amd-sev-snp/verify.js';
import type { SnpValidateOptions } from '../amd-sev-snp/validate.js';
import { verifyParsedSnpReport } from '../amd-sev-snp/index.js';
import type { SnpProduct } from '../amd-sev-snp/parse.js';
import { parseTdQuote } from '../intel-tdx/parse.js';
import { verifyTdQuote, type TdxVerifyCache, type VerifiedTdQuote } from '../intel-tdx/verify.js';
import { validateTdQuote, type TdxValidateOptions } from '../intel-tdx/validate.js';
import { verifyQuote, type VerifiedQuote } from '../tpm/quote.js';
import { parseHclReport, type HclReport } from './hcl.js';
import type { AzureEvidence } from './evidence.js';

export const AzureVerifyCodes = {
  HCL_REPORT_TYPE_MISMATCH: 'HCL_REPORT_TYPE_MISMATCH',
  HCL_TDREPORT_MISMATCH: 'HCL_TDREPORT_MISMATCH',
  HCL_RUNTIME_DATA_DIGEST_MISMATCH: 'HCL_RUNTIME_DATA_DIGEST_MISMATCH',
  HCL_REPORT_DATA_TRAILER_NONZERO: 'HCL_REPORT_DATA_TRAILER_NONZERO',
  HCL_USER_DATA_MISSING: 'HCL_USER_DATA_MISSING',
  HCL_USER_DATA_MISMATCH: 'HCL_USER_DATA_MISMATCH',
} as const;

export interface AzureVerifyInput {
  readonly format: 'az-snp-vtpm' | 'az-tdx-vtpm';
  readonly evidence: AzureEvidence;
  readonly binding: Uint8Array;
  readonly trust: TrustStore;
  readonly at: Date;
  readonly fetch: typeof fetch;
  readonly signal?: AbortSignal;
  readonly snp: {
    readonly kds: KdsClient;
    readonly cache: SnpVerifyCache;
    readonly product?: SnpProduct;
    /** ASK/ASVK from configuration, used when the evidence carries none (before KDS). */
    readonly intermediates: readonly Certificate[];
    readonly validate: SnpValidateOptions;
  };
  readonly tdx: { readonly cache: TdxVerifyCache; readonly validate: TdxValidateOptions };
}

export type AzureHardware = { readonly type: 'snp'; readonly snp: VerifiedSnpReport } | { readonly type: 'tdx'; readonly tdx: VerifiedTdQuote };

export interface VerifiedAzureEvidence {
  readonly hcl: HclReport;
  readonly hardware: AzureHardware;
  readonly quote: VerifiedQuote;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/**
 * PEM certificates (≤ 4) through the parsed-certificate memo: the blocks are base64-decoded
 * here (cheap) and only DER never seen before is ASN.1-parsed.
 */
async function cachedPem(cache: SnpVerifyCache, pem: string, what: string): Promise<Certificate[]> {
  const ders: Uint8Array[] = [];
  for (const m of pem.matchAll(PEM_BLOCK)) {
    if (ders.length >= 4) throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what}: more than 4 certificates`);
    ders.push(fromBase64Any((m[1] ?? '').replace(/\s+/g, ''), what));
  }
  if (ders.length === 0) throw malformed(X509Codes.CERT_MALFORMED, `${what}: no PEM certificate found`);
  return Promise.all(ders.map((d) => cache.certificate(d, what)));
}

async function verifySnpSlot(i: AzureVerifyInput, hcl: HclReport): Promise<{ hw: AzureHardware; reportData: Uint8Array }> {
  if (hcl.hardware.type !== 'snp') throw rejected(AzureVerifyCodes.HCL_REPORT_TYPE_MISMATCH, 'az-snp-vtpm evidence carries a TDX HCL report');
  const report = hcl.hardware.snp;
  let key: Certificate | undefined;
  let chain: Certificate[] = [];
  if (i.evidence.vcekDer) key = await i.snp.cache.certificate(i.evidence.vcekDer, 'vcek');
  if (i.evidence.vcekPem) [key, ...chain] = await cachedPem(i.snp.cache, i.evidence.vcekPem, 'vcek');
  if (i.evidence.vcekChainPem) chain = [...chain, ...(await cachedPem(i.snp.cache, i.evidence.vcekChainPem, 'vcek_chain'))];
  if (chain.length === 0) chain = [...i.snp.intermediates];
  const v = await verifyParsedSnpReport(report, {
    ...(key ? { endorsementKey: key } : {}),
    intermediates: chain,
    ...(i.snp.product ? { product: i.snp.product } : {}),
    kds: i.snp.kds,
    fetch: i.fetch,
    ...(i.signal ? { signal: i.signal } : {}),
    trust: i.trust,
    at: i.at,
    cache: i.snp.cache,
    validate: i.snp.validate,
  });
  return { hw: { type: 'snp', snp: v }, reportData: report.reportData };
}

async function verifyTdxSlot(i: AzureVerifyInput, hcl: HclReport): Promise<{ hw: AzureHardware; reportData: Uint8Array }> {
  if (hcl.hardware.type !== 'tdx') throw rejected(AzureVerifyCodes.HCL_REPORT_TYPE_MISMATCH, 'az-tdx-vtpm evidence carries an SNP HCL report');
  const quote = parseTdQuote(i.evidence.tdQuote!);
  const v = await verifyTdQuote({ quote, trust: i.trust, at: i.at, cache: i.tdx.cache });
  validateTdQuote(v, i.tdx.validate);
  if (!timingSafeEqual(hcl.hardware.tdReport.reportData, quote.body.reportData)) {
    throw rejected(AzureVerifyCodes.HCL_TDREPORT_MISMATCH, 'the TDREPORT in the HCL report and the signed TD quote carry different REPORTDATA');
  }
  return { hw: { type: 'tdx', tdx: v }, reportData: quote.body.reportData };
}

/** Verifies decoded Azure evidence; see the module doc for the checks. */
export async function verifyAzureEvidence(i: AzureVerifyInput): Promise<VerifiedAzureEvidence> {
  const hcl = parseHclReport(i.evidence.hclReport);
  const { hw, reportData } = i.format === 'az-snp-vtpm' ? await verifySnpSlot(i, hcl) : await verifyTdxSlot(i, hcl);

  const h = await digest(hcl.hashType, hcl.runtimeDataRaw);
  if (!timingSafeEqual(reportData.subarray(0, h.byteLength), h)) {
    throw rejected(AzureVerifyCodes.HCL_RUNTIME_DATA_DIGEST_MISMATCH, "the HCL runtime data's digest is not the hardware report's REPORT_DATA");
  }
  if (!timingSafeEqual(reportData.subarray(h.byteLength), new Uint8Array(reportData.byteLength - h.byteLength))) {
    throw rejected(AzureVerifyCodes.HCL_REPORT_DATA_TRAILER_NONZERO, 'REPORT_DATA after the runtime-data digest is not zero');
  }

  const quote = await verifyQuote({
    message: i.evidence.quote.message,
    signature: { scheme: 'rsassa', hash: 'sha256', bytes: i.evidence.quote.signature },
    ak: { jwk: hcl.runtimeData.akPub },
    binding: i.binding,
    pcrs: { sha256: Object.fromEntries(i.evidence.quote.pcrs.map((p, idx) => [idx, p])) },
    signatureHashes: ['sha256'],
    pcrBanks: ['sha256'],
  });

  checkUserDataBinding(i.evidence.version, hcl.runtimeData.userData, i.binding);
  return Object.freeze({ hcl, hardware: hw, quote });
}

/**
 * The runtime user-data freshness rule. The evidence `version` is chosen by the attester, so it
 * cannot switch the check off: whenever the user-data is set (non-zero) it must start with the
 * binding — a v2 report relabelled as v1 gets the same check. All-zero or absent user-data (v0/v1
 * paravisors, which do not refresh the report) is accepted only from evidence declaring version < 2.
 */
export function checkUserDataBinding(version: number, userData: Uint8Array | undefined, binding: Uint8Array): void {
  const set = userData !== undefined && userData.some((b) => b !== 0);
  if (version < 2 && !set) return;
  if (!userData) throw rejected(AzureVerifyCodes.HCL_USER_DATA_MISSING, 'version 2 evidence must carry the binding in the runtime user-data');
  if (userData.byteLength < binding.byteLength || !timingSafeEqual(userData.subarray(0, binding.byteLength), binding)) {
    throw rejected(AzureVerifyCodes.HCL_USER_DATA_MISMATCH, 'the runtime user-data does not start with the binding');
  }
}
