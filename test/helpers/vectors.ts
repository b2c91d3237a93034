/**
 * Access to `../shared/vectors` (real evidence, read in place, never copied) and the pinned
 * roots tests load from it. Suites that need the vectors use `describeVectors`, which skips with
 * a clear message when `../shared` is absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import type { TrustStore } from '../../providers/common/types.js';
import type { TrustAnchor } from '../../providers/common/x509.js';

const here = dirname(fileURLToPath(import.meta.url));
/** `../shared/vectors` beside the checkout (override with ATTEST_VECTORS). */
export const VECTORS_DIR = process.env.ATTEST_VECTORS ?? resolve(here, '../../../shared/vectors');
export const HAVE_VECTORS = existsSync(join(VECTORS_DIR, 'INDEX.md'));
export const SKIP_MESSAGE = `../shared/vectors not found at ${VECTORS_DIR}: skipping tests on real evidence`;

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

/** `describe` that skips, with a message, when the vectors are absent. */
export function describeVectors(name: string, fn: () => void): void {
  if (HAVE_VECTORS) describe(name, fn);
  // Without the vectors the suite body is not even run (it may read files at describe level).
  else describe.skip(`${name} (${SKIP_MESSAGE})`, () => it.skip('needs ../shared/vectors', () => {}));
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
