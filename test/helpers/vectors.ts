/**
 * Access to `test/vectors/` (real evidence, copied byte for byte with its provenance, license and
 * SHA-256 in test/vectors/INDEX.md) and the pinned roots tests load from it. The vectors are part
 * of the repository: nothing here is optional, and a missing file fails the test that needs it.
 */
import { readFileSync } from 'node:fs';
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';
import { BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import type { TrustStore } from '../../providers/common/types.js';
import type { TrustAnchor } from '../../providers/common/x509.js';

const here = dirname(fileURLToPath(import.meta.url));
export const VECTORS_DIR = resolve(here, '../vectors');

export function vectorPath(rel: string): string {
  return join(VECTORS_DIR, rel);
}
export function readVector(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(vectorPath(rel)));
}
export function readVectorText(rel: string): string {
  return readFileSync(vectorPath(rel), 'utf8');
}
export function readVectorJson<T = unknown>(rel: string): T {
  return JSON.parse(readVectorText(rel)) as T;
}

/** A suite on real evidence (kept for readability: the vectors are always there). */
export function describeVectors(name: string, fn: () => void): void {
  describe(name, fn);
}

/** Where each pinned root sits in the vectors. */
const ROOT_FILES: Record<string, string> = {
  [PinIds.AMD_ARK_MILAN]: 'trustee/amd-roots/milan_ask_ark_asvk.pem',
  [PinIds.AMD_ARK_GENOA]: 'trustee/amd-roots/genoa_ask_ark_asvk.pem',
  [PinIds.AMD_ARK_TURIN]: 'trustee/amd-roots/turin_ask_ark_asvk.pem',
  [PinIds.INTEL_SGX_ROOT]: 'go-tdx-guest/trusted_root.pem',
  [PinIds.GOOGLE_TPM_EK_ROOT_1]: 'go-tpm-tools/ca-certs/tpm_ek_root_1.cer',
  [PinIds.GOOGLE_EKAK_ROOT]: 'go-tpm-tools/ca-certs/gcp_ek_ak_ca_root.crt',
  [PinIds.AWS_NITRO_ROOT_G1]: 'vaportpm/certs/aws-nitro-root.pem',
  [PinIds.NVIDIA_DEVICE_IDENTITY_CA]: 'nvidia/nvtrust/local_gpu_verifier/certs/verifier_device_root.pem',
  [PinIds.NVIDIA_CORIM_ROOT_CA]: 'nvidia/nvtrust/local_gpu_verifier/certs/verifier_RIM_root.pem',
};

/** The vector file holding each built-in root (for trust import tests). */
export function rootVectorFile(id: string): string {
  const f = ROOT_FILES[id];
  if (!f) throw new Error(`no vector file for root ${id}`);
  return f;
}

let cached: Promise<TrustAnchor[]> | undefined;
/** Every built-in root, loaded from the vectors and checked against its pin. */
export function loadTestAnchors(): Promise<TrustAnchor[]> {
  cached ??= Promise.all(BUILTIN_PINS.map((p) => anchorFromBytes(p, readVector(rootVectorFile(p.id)))));
  return cached;
}

/** A trust store with all (or only the listed) built-in roots from the vectors. */
export async function loadTestTrust(only?: readonly string[]): Promise<TrustStore> {
  const all = await loadTestAnchors();
  return createTrustStore(only ? all.filter((a) => only.includes(a.id)) : all);
}
