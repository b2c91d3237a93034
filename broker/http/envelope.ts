/**
 * @module broker/http/envelope
 *
 * Schemas of the protocol's request bodies (protocol.md §1, §3), strict: unknown fields are
 * rejected (a typo such as `ephemeralkey` must not silently downgrade a sealed release to an
 * unsealed one), sizes and counts are capped, base64url is checked for its alphabet here and
 * decoded strictly where used. The format-specific `evidence` object is validated by its
 * provider; here it only has to be a JSON object.
 */
import { z } from 'zod';
import { DEVICE_KINDS, PROVIDER_NAMES, type DeviceKind } from '../../providers/catalog.js';

/** Device evidence kinds an attest request may attach (broker deps `devices`): the catalog's devices. */
export { DEVICE_KINDS, type DeviceKind };

const b64url = z.string().regex(/^[A-Za-z0-9_-]*$/, 'must be base64url without padding');

export const ChallengeRequest = z
  .object({
    provider: z.enum(PROVIDER_NAMES as [string, ...string[]]).optional(),
    cluster: z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS-1123 name').optional(),
  })
  .strict();
export type ChallengeRequest = z.infer<typeof ChallengeRequest>;

/** Public JWKs the release can be sealed to (protocol §2): EC P-256 or RSA ≥ 2048. */
export const EphemeralKey = z.union([
  z
    .object({
      kty: z.literal('EC'),
      crv: z.literal('P-256'),
      x: b64url.length(43),
      y: b64url.length(43),
      alg: z.string().optional(),
      use: z.string().optional(),
      kid: z.string().max(128).optional(),
    })
    .strict(),
  z
    .object({
      kty: z.literal('RSA'),
      n: b64url.min(342).max(1366), // 2048..8192 bits
      e: b64url.min(1).max(8),
      alg: z.string().optional(),
      use: z.string().optional(),
      kid: z.string().max(128).optional(),
    })
    .strict(),
]);
export type EphemeralKey = z.infer<typeof EphemeralKey>;

/** A JSON object with bounded nesting (the evidence; its provider validates the shape). */
const EvidenceObject = z.record(z.string(), z.unknown()).refine((o) => depth(o) <= 8, 'evidence is nested too deeply');

function depth(v: unknown, d = 0): number {
  if (d > 8) return d;
  if (Array.isArray(v)) return Math.max(d, ...v.slice(0, 4096).map((x) => depth(x, d + 1)));
  if (v && typeof v === 'object') return Math.max(d, ...Object.values(v).map((x) => depth(x, d + 1)));
  return d;
}

export const AttestRequest = z
  .object({
    challengeId: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'must be a challenge id from POST /v1/challenge'),
    provider: z.enum(PROVIDER_NAMES as [string, ...string[]]),
    format: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be a format name such as "tpm" or "gotpm"'),
    evidence: EvidenceObject,
    ephemeralKey: EphemeralKey.optional(),
    /**
     * Content encryption of the release sealed to `ephemeralKey` (protocol §3): A256GCM (default),
     * or A128CBC-HS256 for clients that open it with the openssl command line (the shell client).
     */
    sealEnc: z.enum(['A256GCM', 'A128CBC-HS256']).optional(),
    want: z
      .array(z.enum(['bootstrap-token', 'disk-key']))
      .min(1)
      .max(2)
      .refine((a) => new Set(a).size === a.length, 'duplicate entries')
      .default(['bootstrap-token']),
    diskKey: z.object({ wrapped: b64url.min(1).max(8192) }).strict().optional(),
    /**
     * Device evidence attached to the platform's (protocol §3): each entry is verified by its own
     * verifier against the same binding and merged into the claims (`gpus`). `nvidia-gpu`: the
     * JSON array nvtrust / the attestation SDK emit, unchanged (one entry per GPU).
     */
    devices: z
      .array(z.object({ kind: z.enum(DEVICE_KINDS as [DeviceKind, ...DeviceKind[]]), evidence: z.array(EvidenceObject).min(1).max(16) }).strict())
      .min(1)
      .max(4)
      .refine((a) => new Set(a.map((d) => d.kind)).size === a.length, 'one entry per device kind')
      .optional(),
  })
  .strict();
export type AttestRequest = z.infer<typeof AttestRequest>;
