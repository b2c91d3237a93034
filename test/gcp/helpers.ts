/**
 * Shared fixtures for the gcp provider tests: the real vectors (read in place), the contexts
 * that verify them, and a typed-error probe.
 */
import { expect } from 'vitest';
import { AttestError } from '../../providers/common/errors.js';
import { fromHex, toBase64 } from '../../providers/common/encoding.js';
import type { ProviderClaims } from '../../providers/common/types.js';
import { parseAttestationProto } from '../../providers/gcp/parse.js';
import { verifyGcpAttestation, type GcpVerifyInput } from '../../providers/gcp/verify.js';
import { parseConfiguredIntermediates } from '../../providers/gcp/akcert.js';
import { toClaims } from '../../providers/gcp/validate.js';
import { KdsClient } from '../../providers/amd-sev-snp/index.js';
import { PinIds } from '../../providers/common/pins.js';
import type { TrustStore, VerifyContext } from '../../providers/common/types.js';
import { readVector, readVectorJson, loadTestTrust } from '../helpers/vectors.js';

export const PB_NO_NONCE = 'go-tpm-tools/attestations/gce-cos-85-no-nonce.pb';
export const PB_NONCE_9009 = 'go-tpm-tools/attestations/gce-cos-85-nonce9009.pb';
export const LEGACY_INTERMEDIATE = 'go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt';
export const VAPOR_AMD = 'vaportpm/test-gcp-amd-fixture.json';
export const VAPOR_TDX = 'vaportpm/test-gcp-tdx-fixture.json';

/** A time inside every certificate's validity in the go-tpm-tools vectors (AK cert 2021-08-31 → 2051). */
export const GOTPM_AT = new Date('2025-06-01T00:00:00Z');
export const VAPOR_AMD_AT = new Date(1770019200 * 1000); // 2026-02-02T08:00Z (INDEX)
export const VAPOR_TDX_AT = new Date(1770091200 * 1000); // 2026-02-03T08:00Z (INDEX)

export function gotpmEvidence(pb: Uint8Array): { attestation: string } {
  return { attestation: toBase64(pb) };
}

export async function googleTrust(only: readonly string[] = [PinIds.GOOGLE_TPM_EK_ROOT_1, PinIds.GOOGLE_EKAK_ROOT]): Promise<TrustStore> {
  return loadTestTrust(only);
}

export function legacyIntermediateOptions(): { intermediates: Uint8Array[] } {
  return { intermediates: [readVector(LEGACY_INTERMEDIATE)] };
}

export async function ctx(binding: Uint8Array, now: Date, trust?: TrustStore, options: Record<string, unknown> = {}): Promise<VerifyContext> {
  return {
    binding,
    now,
    trust: trust ?? (await googleTrust()),
    fetch: (() => {
      throw new Error('the gcp provider must not use the network');
    }) as unknown as typeof fetch,
    options,
  };
}

export interface VaporFixture {
  nonce: string;
  pcrs: Record<string, Record<string, string>>;
  ak_pubkeys: { ecc_p256: { x: string; y: string } };
  attestation: { tpm: { ecc_p256: { attest_data: string; signature: string } }; gcp: { ak_cert_chain: string } };
}
export function vapor(rel: string): VaporFixture {
  return readVectorJson<VaporFixture>(rel);
}

/** The code of the AttestError `p` rejects with ('ACCEPTED' when it resolves); anything else fails the test. */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ACCEPTED';
  } catch (e) {
    if (!(e instanceof AttestError)) {
      expect.fail(`untyped error: ${String(e)}`);
    }
    return e.code;
  }
}

/** Verifies a raw attestation with the sweeps' fixed input; the claims, or the error code. */
export async function verifyForSweep(bytes: Uint8Array, input: GcpVerifyInput): Promise<ProviderClaims | string> {
  try {
    return toClaims('gotpm', await verifyGcpAttestation(parseAttestationProto(bytes), input));
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
}

/** The verify input both bit-flip sweeps use: nonce 0x9009, legacy chain, no network. */
export async function sweepInput(): Promise<GcpVerifyInput> {
  return {
    binding: fromHex('9009'),
    now: GOTPM_AT,
    trust: await googleTrust(),
    allowSha1: false,
    allowNonProduction: false,
    requiredBanks: ['sha256'],
    configuredIntermediates: parseConfiguredIntermediates([readVector(LEGACY_INTERMEDIATE)]),
    fetch: (() => Promise.reject(new Error('no network'))) as unknown as typeof fetch,
    kds: new KdsClient(),
  };
}

/** Every leaf of `a` exists in `b` with the same value (arrays: every element of a is in b). */
export function isSubset(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.every((x) => b.some((y) => JSON.stringify(x) === JSON.stringify(y)));
  if (a !== null && typeof a === 'object') {
    if (b === null || typeof b !== 'object') return false;
    return Object.entries(a).every(([k, v]) => k in (b as object) && isSubset(v, (b as Record<string, unknown>)[k]));
  }
  return a === b;
}
