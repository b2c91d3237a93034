/**
 * @module broker/verify
 *
 * Evidence → verdict, shared by `POST /v1/attest` and the `attest-broker verify` CLI
 * (protocol.md §4). Authenticity only: signatures, chains, binding, PCR digests, event-log
 * replay. Policy is applied after, by the caller.
 */
import { AttestError, isAttestError } from '../providers/common/errors.js';
import { canonicalSha256 } from '../providers/common/canonical.js';
import type { Claims, TrustStore } from '../providers/common/types.js';
import type { ProviderRegistry } from './registry.js';

export interface VerifyInput {
  provider: string;
  format: string;
  evidence: unknown;
  binding: Uint8Array;
  now: Date;
  trust: TrustStore;
  fetch: typeof fetch;
  /** Options per provider name, from configuration. */
  providerOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  signal?: AbortSignal;
}

export interface Verdict {
  ok: boolean;
  provider: string;
  format: string;
  claims?: Claims;
  errors: { code: string; message: string }[];
}

/** Verifies and returns claims, or throws the provider's AttestError. */
export async function verifyEvidence(registry: ProviderRegistry, i: VerifyInput): Promise<Claims> {
  const p = registry.resolve(i.provider, i.format);
  const claims = await p.verify(i.format, i.evidence, {
    binding: i.binding,
    now: i.now,
    fetch: i.fetch,
    trust: i.trust,
    options: i.providerOptions?.[p.name] ?? {},
    ...(i.signal ? { signal: i.signal } : {}),
  });
  if (claims.provider !== p.name || claims.format !== i.format) {
    throw new AttestError('INTERNAL', `provider ${p.name} returned claims for ${claims.provider}/${claims.format}`);
  }
  return { ...claims, evidenceSha256: await canonicalSha256(i.evidence) };
}

/** Same as verifyEvidence, as a verdict object (never throws for rejected evidence). */
export async function verdictFor(registry: ProviderRegistry, i: VerifyInput): Promise<Verdict> {
  try {
    const claims = await verifyEvidence(registry, i);
    return { ok: true, provider: i.provider, format: i.format, claims, errors: [] };
  } catch (e) {
    if (!isAttestError(e)) throw e;
    return { ok: false, provider: i.provider, format: i.format, errors: [{ code: e.code, message: e.message }] };
  }
}
