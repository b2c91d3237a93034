/**
 * @module providers/intel-tdx
 *
 * The TDX layer shared by every cloud that hands out TD quotes (Azure through its HCL flow, GCP
 * Confidential VMs on TDX): parse → verify to the pinned Intel SGX Root CA → validate.
 */
import type { TrustStore } from '../common/types.js';
import { parseTdQuote } from './parse.js';
import { verifyTdQuote, type TdxVerifyCache, type VerifiedTdQuote } from './verify.js';
import { validateTdQuote, type TdxValidateOptions } from './validate.js';

export * from './parse.js';
export * from './verify.js';
export * from './validate.js';

export interface TdxAttestationInput {
  /** A raw TDX Quote v4 (zero padding allowed). */
  readonly quote: Uint8Array;
  readonly trust: TrustStore;
  readonly at: Date;
  readonly cache?: TdxVerifyCache;
  /** Required: use `strictTdxOptions()` for the default. */
  readonly validate: TdxValidateOptions;
}

/** Parse, verify, validate. Throws AttestError. */
export async function verifyTdxAttestation(i: TdxAttestationInput): Promise<VerifiedTdQuote> {
  const v = await verifyTdQuote({ quote: parseTdQuote(i.quote), trust: i.trust, at: i.at, ...(i.cache ? { cache: i.cache } : {}) });
  validateTdQuote(v, i.validate);
  return v;
}
