/**
 * Shared loaders for the AWS tests. Real evidence from test/vectors (INDEX.md there):
 * - vaportpm/test-nitro-fixture.json (lockboot/vaportpm@eb643add, crates/vaportpm-verify): a real
 *   EC2 NitroTPM document (us-east-1, i-01cfb383223e42522) with the TPM quote signed by the AK the
 *   document certifies. INDEX §2b/§3a: verify at 2026-02-03T11:00Z, nonce 230af3f7…161a.
 * - nitrite/nitro_attestation.b64 (blocky/nitrite@a6f5b6da): a real Nitro *Enclave* document,
 *   valid at 2024-09-07T14:37:39.545Z (INDEX §3b).
 */
import { readVectorJson, readVectorText, loadTestTrust } from '../helpers/vectors.js';
import { fromHex, toBase64, toBase64Url } from '../../providers/common/encoding.js';
import { PinIds } from '../../providers/common/pins.js';
import type { TrustStore, VerifyContext } from '../../providers/common/types.js';

export interface NitroFixture {
  nonce: string;
  pcrs: { sha384: Record<string, string> };
  ak_pubkeys: { ecc_p256: { x: string; y: string } };
  attestation: { tpm: { ecc_p256: { attest_data: string; signature: string } }; nitro: { document: string } };
}

export const FIXTURE_TIME = new Date('2026-02-03T11:00:00Z');
export const ENCLAVE_TIME = new Date('2024-09-07T14:37:39.545Z');
export const FIXTURE_NONCE_HEX = '230af3f7c0ec43ccf99a4cab47ac61469a36ea74b1e79740fdf8ccfc8f56161a';

export function loadNitroFixture(): NitroFixture {
  return readVectorJson<NitroFixture>('vaportpm/test-nitro-fixture.json');
}
/** The real document's bytes. */
export function fixtureDocument(): Uint8Array {
  return fromHex(loadNitroFixture().attestation.nitro.document);
}
export function enclaveDocument(): Uint8Array {
  return Uint8Array.from(atob(readVectorText('nitrite/nitro_attestation.b64').trim()), (c) => c.charCodeAt(0));
}

/** The protocol's tpm-quote object built from the fixture (signature is bare DER ECDSA). */
export function fixtureQuote(f: NitroFixture = loadNitroFixture()): { message: string; signature: string; pcrs: Record<string, Record<string, string>> } {
  return {
    message: toBase64Url(fromHex(f.attestation.tpm.ecc_p256.attest_data)),
    signature: toBase64Url(fromHex(f.attestation.tpm.ecc_p256.signature)),
    pcrs: { sha384: { ...f.pcrs.sha384 } },
  };
}

export function evidenceFor(doc: Uint8Array, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { document: toBase64(doc), ...extra };
}

let trust: Promise<TrustStore> | undefined;
export function awsTrust(): Promise<TrustStore> {
  trust ??= loadTestTrust([PinIds.AWS_NITRO_ROOT_G1]);
  return trust;
}

export async function ctxAt(now: Date, binding: Uint8Array = fromHex(FIXTURE_NONCE_HEX), options: Record<string, unknown> = {}): Promise<VerifyContext> {
  return {
    binding,
    now,
    fetch: (() => {
      throw new Error('no network in tests');
    }) as unknown as typeof fetch,
    trust: await awsTrust(),
    options,
  };
}
