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
const EvidenceObject = z.record(z.string(), z.unknown()).refine((o) => shallow(o, 0), 'evidence is nested too deeply');

/** Whether every value inside `v` sits at most 8 levels deep (no arrays built on the way). */
function shallow(v: unknown, d: number): boolean {
  if (d > 8) return false;
  if (v === null || typeof v !== 'object') return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (!shallow(v[i], d + 1)) return false;
    return true;
  }
  for (const k in v) if (Object.hasOwn(v, k) && !shallow((v as Record<string, unknown>)[k], d + 1)) return false;
  return true;
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

const CHALLENGE_ID = /^[A-Za-z0-9_-]{16,64}$/;
const FORMAT = /^[a-z0-9][a-z0-9-]{0,31}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;
const PROVIDER_SET: ReadonlySet<string> = new Set(PROVIDER_NAMES);
const DEFAULT_WANT: readonly ['bootstrap-token'] = ['bootstrap-token'];

/**
 * The common attest body checked without zod: challenge id, provider, format, evidence, and
 * optionally `want`, `sealEnc`, `diskKey`. Returns the request only when every field is present in
 * the one shape it can check completely; anything else (an ephemeral key, devices, an unknown or
 * wrong field) returns undefined and goes to `AttestRequest`, which decides and words the error.
 * So this never accepts what the schema refuses (test/broker/envelope.test.ts compares the two on
 * generated and mutated bodies); it exists because zod's generic object walk was a visible share of
 * every attest's cost.
 */
export function fastAttestRequest(body: unknown): AttestRequest | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Object.getPrototypeOf(body) !== Object.prototype) return undefined;
  const o = body as Record<string, unknown>;
  let n = 0;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) return undefined;
    if (k !== 'challengeId' && k !== 'provider' && k !== 'format' && k !== 'evidence' && k !== 'want' && k !== 'sealEnc' && k !== 'diskKey') return undefined;
    n++;
  }
  if (Object.getOwnPropertySymbols(o).length > 0) return undefined;
  const { challengeId, provider, format, evidence, want, sealEnc, diskKey } = o;
  if (typeof challengeId !== 'string' || !CHALLENGE_ID.test(challengeId)) return undefined;
  if (typeof provider !== 'string' || !PROVIDER_SET.has(provider)) return undefined;
  if (typeof format !== 'string' || !FORMAT.test(format)) return undefined;
  if (evidence === null || typeof evidence !== 'object' || Array.isArray(evidence) || Object.getPrototypeOf(evidence) !== Object.prototype) return undefined;
  if (!shallow(evidence, 0)) return undefined;
  const out: AttestRequest = { challengeId, provider, format, evidence: evidence as Record<string, unknown>, want: [...DEFAULT_WANT] };
  let seen = 4;
  if (want !== undefined) {
    if (!Array.isArray(want) || want.length < 1 || want.length > 2) return undefined;
    for (const w of want) if (w !== 'bootstrap-token' && w !== 'disk-key') return undefined;
    if (want.length === 2 && want[0] === want[1]) return undefined;
    out.want = [...(want as ('bootstrap-token' | 'disk-key')[])];
    seen++;
  }
  if (sealEnc !== undefined) {
    if (sealEnc !== 'A256GCM' && sealEnc !== 'A128CBC-HS256') return undefined;
    out.sealEnc = sealEnc;
    seen++;
  }
  if (diskKey !== undefined) {
    if (diskKey === null || typeof diskKey !== 'object' || Array.isArray(diskKey) || Object.getPrototypeOf(diskKey) !== Object.prototype) return undefined;
    const keys = Object.keys(diskKey);
    const wrapped = (diskKey as Record<string, unknown>).wrapped;
    if (keys.length !== 1 || keys[0] !== 'wrapped' || typeof wrapped !== 'string' || wrapped.length < 1 || wrapped.length > 8192 || !B64URL.test(wrapped)) return undefined;
    out.diskKey = { wrapped };
    seen++;
  }
  return seen === n ? out : undefined;
}

/** `AttestRequest.safeParse`, with the common shape checked without zod (same verdicts). */
export function parseAttestRequest(body: unknown): ReturnType<typeof AttestRequest.safeParse> {
  const fast = fastAttestRequest(body);
  return fast ? { success: true, data: fast } : AttestRequest.safeParse(body);
}
