/**
 * @module providers/amd-sev-snp
 *
 * The SEV-SNP layer shared by every cloud that hands out SNP reports (Azure through its HCL
 * report, GCP and AWS SNP directly): parse → certificates (evidence, configuration, KDS) →
 * verify to the pinned ARK → validate. `verifySnpAttestation` is the one call a provider needs;
 * the pieces are exported for providers that wrap the report differently.
 */
import type { TrustStore } from '../common/types.js';
import type { Certificate } from '../common/x509.js';
import { resolveSnpCerts, type KdsClient } from './kds.js';
import { parseSnpReport, type SnpProduct, type SnpReport } from './parse.js';
import { verifySnpReport, type SnpVerifyCache, type VerifiedSnpReport } from './verify.js';
import { validateSnpReport, type SnpValidateOptions } from './validate.js';

export * from './parse.js';
export * from './verify.js';
export * from './validate.js';
export * from './kds.js';
export { amdKeyExtensions, SnpCertCodes, type AmdKeyExtensions } from './certs.js';

export interface SnpAttestationInput {
  /** The raw 1184-byte ATTESTATION_REPORT. */
  readonly report: Uint8Array;
  /** VCEK/VLEK from the evidence (parsed), if any; else KDS (VCEK only). */
  readonly endorsementKey?: Certificate;
  /** ASK/ASVK from the evidence or configuration, if any; else KDS. */
  readonly intermediates?: readonly Certificate[];
  readonly product?: SnpProduct;
  readonly trust: TrustStore;
  readonly at: Date;
  readonly kds: KdsClient;
  readonly fetch: typeof fetch;
  readonly signal?: AbortSignal;
  readonly cache?: SnpVerifyCache;
  /** Required: use `strictSnpOptions()` for the default. */
  readonly validate: SnpValidateOptions;
}

/** Parse, fetch what is missing, verify to the pinned ARK, validate. Throws AttestError. */
export async function verifySnpAttestation(i: SnpAttestationInput): Promise<VerifiedSnpReport> {
  return verifyParsedSnpReport(parseSnpReport(i.report), i);
}

/**
 * The same for a report already parsed from its wrapper (Azure's HCL report): certificates
 * (evidence, configuration, KDS) → verify to the pinned ARK → validate.
 */
export async function verifyParsedSnpReport(report: SnpReport, i: Omit<SnpAttestationInput, 'report'>): Promise<VerifiedSnpReport> {
  const certs = await resolveSnpCerts({
    report,
    ...(i.endorsementKey ? { evidenceKey: i.endorsementKey } : {}),
    ...(i.intermediates ? { evidenceChain: i.intermediates } : {}),
    ...(i.product ? { product: i.product } : {}),
    kds: i.kds,
    fetch: i.fetch,
    ...(i.signal ? { signal: i.signal } : {}),
  });
  const v = await verifySnpReport({
    report,
    endorsementKey: certs.endorsementKey,
    intermediates: certs.intermediates,
    trust: i.trust,
    at: i.at,
    ...(i.product ? { product: i.product } : {}),
    ...(i.cache ? { cache: i.cache } : {}),
  });
  validateSnpReport(v, i.validate);
  return v;
}
