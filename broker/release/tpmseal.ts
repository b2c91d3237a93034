/**
 * @module broker/release/tpmseal
 *
 * Sealing a release so that only one TPM can open it: TPM2_MakeCredential (providers/tpm/
 * credential.ts; TCG TPM 2.0 Part 1 §24, Part 3 §12.6) to the node's EK with the AK's Name, then
 * the release encrypted under that credential.
 *
 * Format: a compact JWE (RFC 7516) with `alg: "dir"`, `enc: "A128CBC-HS256"` (RFC 7518 §5.2.3:
 * AES-128-CBC, then HMAC-SHA-256 over AAD ‖ IV ‖ ciphertext ‖ AL, truncated to 16 bytes); the
 * 32-byte content key (MAC key ‖ encryption key) is the credential — 32 bytes is also the most
 * TPM2_MakeCredential carries with a SHA-256 EK. This `enc` rather than A256GCM because the POSIX
 * shell client opens it with the `openssl` command line (`openssl enc -aes-128-cbc` and
 * `openssl dgst -mac HMAC`), which has no AEAD mode. The protected header carries `tpm_cred`:
 * base64url of the file `tpm2_activatecredential -i` reads (tpm2-tools magic 0xBADCC0DE, version
 * 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET). The node runs `tpm2_activatecredential` with its
 * EK and AK to recover the key, checks the tag, then decrypts. The header is the AAD, so
 * `tpm_cred` cannot be swapped without the tag failing.
 *
 * What it adds: TPM2_ActivateCredential releases the key only inside the TPM that holds the EK's
 * private key *and* has an object with exactly that Name loaded — the AK whose quote was
 * verified. It is only as good as the trust in the EK (policy should require
 * `claims.tpm.akTrust === 'ek-credential'`, i.e. an EK certificate chain).
 */
import { CompactEncrypt } from 'jose';
import { makeCredential } from '../../providers/tpm/credential.js';
import { fromBase64Url, fromHex, toBase64Url, utf8 } from '../../providers/common/encoding.js';
import { RELEASE_CTY } from './seal.js';

export const TPM_SEALED_CTY = 'application/attest-broker.tpm-sealed';
export const TPM_SEALED_ENC = 'A128CBC-HS256';

/**
 * Seals `inner` (the release JSON, or an already sealed JWE string) to the TPM with EK
 * `ekPublicB64u` (TPM2B_PUBLIC, base64url) and AK Name `akNameHex`.
 */
export async function sealToTpm(inner: string, innerIsJwe: boolean, ekPublicB64u: string, akNameHex: string): Promise<string> {
  const cek = crypto.getRandomValues(new Uint8Array(32));
  try {
    const made = await makeCredential(fromBase64Url(ekPublicB64u, 'ekPublic'), fromHex(akNameHex, 'akName'), cek);
    return await new CompactEncrypt(utf8(inner))
      .setProtectedHeader({ alg: 'dir', enc: TPM_SEALED_ENC, cty: innerIsJwe ? 'JWE' : RELEASE_CTY, typ: TPM_SEALED_CTY, tpm_cred: toBase64Url(made.tpm2ToolsFile) })
      .encrypt(cek);
  } finally {
    cek.fill(0);
  }
}
