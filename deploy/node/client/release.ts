/**
 * @module deploy/node/client/release
 *
 * Opens and checks the release of protocol §3.
 *
 * - Sealed (an ephemeral key was sent): a compact JWE; only `ECDH-ES+A256KW` with `A256GCM` is
 *   accepted (allow-listed here, never taken from the header), decrypted with the
 *   non-extractable ephemeral private key. Anything else is JOIN_RELEASE_INVALID.
 * - Unsealed (only when the caller chose not to send a key, i.e. the shell client's mode):
 *   the object itself. A node that sent a key refuses an unsealed answer
 *   (JOIN_RELEASE_NOT_SEALED): a broker (or a man in the middle with a stolen pin) must not be
 *   able to downgrade the node silently.
 * - Either way the plaintext must be the release object: shape checked, the kubeconfig must
 *   carry the token, the node name must be a DNS-1123 subdomain, the expiry must be in the future, and the `nonce` the broker echoes (when
 *   present) must be one of this attempt's challenge nonces.
 */
import { compactDecrypt, decodeProtectedHeader } from 'jose';
import { z } from 'zod';
import { timingSafeEqualString } from '../../../providers/common/ct.js';
import { fromBase64Url } from '../../../providers/common/encoding.js';
import { DNS1123_SUBDOMAIN } from './bootstrap.js';
import { JoinCodes, joinError } from './codes.js';

export const ReleaseSchema = z.object({
  // The kubelet registers under this name and it is written into configuration files: a
  // DNS-1123 subdomain, as the broker derives it (broker/release/service.ts).
  nodeName: z.string().regex(DNS1123_SUBDOMAIN, 'nodeName is not a DNS-1123 subdomain'),
  expiresAt: z.string().min(1),
  bootstrapToken: z.string().regex(/^[a-z0-9]{6}\.[a-z0-9]{16}$/),
  kubeconfig: z.string().min(1).max(64 << 10),
  apiServer: z.string().min(1),
  // Absent only for API servers with publicly trusted certificates (broker/release/service.ts).
  caCertHashes: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/)).max(16).optional(),
  diskKey: z.object({ key: z.string().min(1), wrapped: z.string().min(1) }).optional(),
  /** AWS KMS `Recipient` form (CMS to the NitroTPM's key): not opened by this client. */
  diskKeyForRecipient: z.object({ ciphertextForRecipient: z.string().min(1), wrapped: z.string().min(1) }).optional(),
  /** The challenge nonce (b64url) the release answers; checked when present. */
  nonce: z.string().optional(),
});

export type Release = z.infer<typeof ReleaseSchema>;

/** A release for `want: ["disk-key"]` only (every boot of a node with encrypted state): no token. */
export const DiskKeyReleaseSchema = z.object({
  nodeName: z.string().regex(DNS1123_SUBDOMAIN, 'nodeName is not a DNS-1123 subdomain'),
  expiresAt: z.string().min(1),
  diskKey: z.object({ key: z.string().min(1), wrapped: z.string().min(1) }).optional(),
  diskKeyForRecipient: z.object({ ciphertextForRecipient: z.string().min(1), wrapped: z.string().min(1) }).optional(),
  nonce: z.string().optional(),
});
export type DiskKeyRelease = z.infer<typeof DiskKeyReleaseSchema>;

export const ACCEPTED_ALG = 'ECDH-ES+A256KW';
export const ACCEPTED_ENC = 'A256GCM';

/**
 * @param expectedNonces the nonces (b64url) of the challenges this attempt used; a release that
 *   names another nonce answers some other attempt and is refused.
 */
/** The TPM-sealed layer (broker/release/tpmseal.ts): typ, and the one `enc` it uses. */
export const TPM_SEALED_TYP = 'application/attest-broker.tpm-sealed';
export const TPM_SEALED_ENC = 'A128CBC-HS256';
const RELEASE_CTY = 'application/attest-broker.release+json';

/**
 * Opens the TPM-sealed outer layer, if `raw` is one: `activate` runs TPM2_ActivateCredential on
 * the `tpm_cred` file (with the EK and AK of this attempt) and returns the 32-byte key. Returns
 * the inner layer — a JWE string (`cty: JWE`) or the release object — or `raw` unchanged.
 */
export async function openTpmLayer(raw: unknown, activate: ((credFile: Uint8Array) => Promise<Uint8Array>) | undefined): Promise<unknown> {
  if (typeof raw !== 'string') return raw;
  let h: { typ?: unknown; alg?: unknown; enc?: unknown; cty?: unknown; tpm_cred?: unknown };
  try {
    h = decodeProtectedHeader(raw) as typeof h;
  } catch (cause) {
    throw joinError(JoinCodes.RELEASE_INVALID, 'the release is not a compact JWE', { cause });
  }
  if (h.typ !== TPM_SEALED_TYP) return raw;
  if (h.alg !== 'dir' || h.enc !== TPM_SEALED_ENC || typeof h.tpm_cred !== 'string' || (h.cty !== 'JWE' && h.cty !== RELEASE_CTY)) {
    throw joinError(JoinCodes.RELEASE_INVALID, 'TPM-sealed release with an unexpected header');
  }
  if (!activate) throw joinError(JoinCodes.RELEASE_INVALID, 'the release is sealed to the TPM, but this evidence format made no EK and AK to open it with');
  const key = await activate(fromBase64Url(h.tpm_cred, 'tpm_cred'));
  try {
    const { plaintext } = await compactDecrypt(raw, key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: [TPM_SEALED_ENC] });
    const text = new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
    return h.cty === 'JWE' ? text : (JSON.parse(text) as unknown);
  } catch (cause) {
    throw joinError(JoinCodes.RELEASE_INVALID, `cannot open the TPM-sealed release: ${(cause as Error).message}`, { cause });
  } finally {
    key.fill(0);
  }
}

export async function openRelease(raw: unknown, key: CryptoKey | undefined, nowMs: number, expectedNonces?: readonly string[]): Promise<Release>;
export async function openRelease(raw: unknown, key: CryptoKey | undefined, nowMs: number, expectedNonces: readonly string[], kind: 'disk-key'): Promise<DiskKeyRelease>;
export async function openRelease(
  raw: unknown,
  key: CryptoKey | undefined,
  nowMs: number,
  expectedNonces: readonly string[] = [],
  kind: 'token' | 'disk-key' = 'token',
): Promise<Release | DiskKeyRelease> {
  let obj: unknown;
  if (typeof raw === 'string') {
    if (!key) throw joinError(JoinCodes.RELEASE_INVALID, 'the broker sent a sealed release but no ephemeral key was used');
    try {
      const { plaintext } = await compactDecrypt(raw, key, { keyManagementAlgorithms: [ACCEPTED_ALG], contentEncryptionAlgorithms: [ACCEPTED_ENC] });
      obj = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext));
    } catch (cause) {
      throw joinError(JoinCodes.RELEASE_INVALID, `cannot open the sealed release: ${(cause as Error).message}`, { cause });
    }
  } else if (raw !== null && typeof raw === 'object') {
    if (key) throw joinError(JoinCodes.RELEASE_NOT_SEALED, 'the broker sent an unsealed release although this node sent an ephemeral key: refusing a downgrade');
    obj = raw;
  } else {
    throw joinError(JoinCodes.RELEASE_INVALID, 'the response has no release');
  }
  const parsed = (kind === 'disk-key' ? DiskKeyReleaseSchema : ReleaseSchema).safeParse(obj);
  if (!parsed.success) throw joinError(JoinCodes.RELEASE_INVALID, `the release does not have the protocol's shape: ${parsed.error.issues[0]?.message ?? ''}`);
  const r = parsed.data as Release | DiskKeyRelease;
  const exp = Date.parse(r.expiresAt);
  if (!Number.isFinite(exp)) throw joinError(JoinCodes.RELEASE_INVALID, 'release expiresAt is not a date');
  if (exp <= nowMs) throw joinError(JoinCodes.RELEASE_INVALID, `the release expired at ${r.expiresAt}`);
  if (r.nonce !== undefined && expectedNonces.length > 0 && !expectedNonces.some((n) => timingSafeEqualString(n, r.nonce!))) {
    throw joinError(JoinCodes.RELEASE_INVALID, 'the release answers another challenge (nonce mismatch)');
  }
  if ('kubeconfig' in r && !r.kubeconfig.includes(r.bootstrapToken)) throw joinError(JoinCodes.RELEASE_INVALID, 'the kubeconfig does not carry the release token');
  if (r.diskKey) {
    try {
      fromBase64Url(r.diskKey.key, 'diskKey.key');
      fromBase64Url(r.diskKey.wrapped, 'diskKey.wrapped');
    } catch (cause) {
      throw joinError(JoinCodes.RELEASE_INVALID, 'release diskKey is not base64url', { cause });
    }
  }
  return r;
}
