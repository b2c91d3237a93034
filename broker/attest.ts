/**
 * @module broker/attest
 *
 * `POST /v1/attest` as one straight path, apart from HTTP (docs/architecture.md):
 *   provider lookup → consume the challenge (atomic, single use) → binding → provider.verify →
 *   claims → per-identity limit → policy → release (sealed to the node's key) → release object.
 * Every failure is an AttestError; the route handler in app.ts only parses the envelope and
 * turns the result into JSON.
 */
import { AttestError } from '../providers/common/errors.js';
import { fromBase64Url, toBase64Url } from '../providers/common/encoding.js';
import type { TrustStore } from '../providers/common/types.js';
import type { DeviceVerifier } from '../providers/descriptor.js';
import { DEVICES } from '../providers/catalog.js';
import type { AuditSink, Clock, Metrics, PolicyEngine, ReleaseObject, ReleaseService, StateStore } from './contracts.js';
import type { AttestRequest, DeviceKind } from './http/envelope.js';
import type { RateLimiter } from './http/ratelimit.js';
import type { ProviderRegistry } from './registry.js';
import { computeBinding } from './binding.js';
import { verifyEvidence } from './verify.js';
import { instanceKey } from './release/service.js';

const NONCE_B64URL = /^[A-Za-z0-9_-]{43}$/;

export interface AttestDeps {
  store: StateStore;
  registry: ProviderRegistry;
  trust: TrustStore;
  clock: Clock;
  fetch: typeof fetch;
  limiter: RateLimiter;
  policy?: PolicyEngine;
  release?: ReleaseService;
  audit?: AuditSink;
  metrics?: Metrics;
  providerOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Verifiers of attached device evidence, by kind (absent: such evidence is refused). */
  devices?: Partial<Record<DeviceKind, DeviceVerifier>>;
}

/** Verifies one kind of attached device evidence against the attest's binding (a device descriptor's `create`). */
export type { DeviceVerifier };

/** `trace`: the W3C trace the request belongs to (app.ts), carried into release's log lines. */
export async function attest(d: AttestDeps, req: AttestRequest, requestId: string, trace?: { traceId: string; spanId: string }): Promise<string | ReleaseObject> {
  // Resolve before consuming: asking for a format this broker lacks must not burn a challenge.
  d.registry.resolve(req.provider, req.format);
  const rec = await d.store.consumeChallenge(req.challengeId);
  if (!rec) {
    throw new AttestError('CHALLENGE_UNKNOWN', 'the challenge does not exist, was already used, or expired; request a new one');
  }
  // The record comes back from a shared store: check its shape rather than trust a cast.
  if (typeof rec.nonce !== 'string' || !NONCE_B64URL.test(rec.nonce) || Number.isNaN(Date.parse(rec.expiresAt))) {
    throw new AttestError('CHALLENGE_RECORD_CORRUPT', 'the stored challenge record is malformed');
  }
  const now = d.clock.now();
  if (now.getTime() > Date.parse(rec.expiresAt)) throw new AttestError('CHALLENGE_EXPIRED', 'the challenge expired; request a new one');
  if (rec.provider && rec.provider !== req.provider) {
    throw new AttestError('CHALLENGE_PROVIDER_MISMATCH', `the challenge was issued for provider ${rec.provider}`);
  }
  const binding = await computeBinding(fromBase64Url(rec.nonce, 'nonce'), req.ephemeralKey);
  const platformClaims = await verifyEvidence(d.registry, {
    provider: req.provider,
    format: req.format,
    evidence: req.evidence,
    binding,
    now,
    trust: d.trust,
    fetch: d.fetch,
    providerOptions: d.providerOptions,
  });
  // Attached device evidence (GPUs): each verified by its own verifier against the same binding,
  // merged into one Claims. Evidence of a kind this broker does not verify is refused, never ignored.
  let claims = platformClaims;
  for (const dev of req.devices ?? []) {
    const v = d.devices?.[dev.kind];
    if (!v) {
      const name = DEVICES.find((x) => x.evidence === dev.kind)?.name ?? dev.kind;
      throw new AttestError('DEVICE_UNSUPPORTED', `this broker verifies no ${dev.kind} evidence (configure devices.${name}), so it cannot admit a node that relies on it`);
    }
    const gpus = await v.verify(dev.evidence, { binding, now, trust: d.trust });
    claims = { ...claims, gpus: [...(claims.gpus ?? []), ...gpus] };
  }
  // Per attested instance, whichever address it comes from.
  await d.limiter.hit('identity', await instanceKey(claims));
  if (!d.policy) {
    throw new AttestError('POLICY_UNAVAILABLE', 'no join policy is loaded, so no node is admitted; configure policy.file');
  }
  const decision = await d.policy.evaluate(claims, rec.cluster);
  for (const r of decision.rules) if (r.outcome === 'warn') d.metrics?.policyWarn?.(r.rule, r.code ?? 'WARN');
  if (!decision.allow) {
    await d.audit?.record({ kind: 'deny', requestId, claims, decision });
    // Only where the cluster's policy opts in (explain: true) does the node learn the failing rules.
    const failed = decision.explain ? decision.rules.filter((r) => r.outcome === 'fail').map((r) => ({ rule: r.rule, code: r.code, reason: r.reason })) : [];
    throw new AttestError(
      decision.denyCode ?? 'POLICY_DENIED',
      failed.length ? `the node does not satisfy this cluster's join policy: ${failed.map((f) => `${f.rule} (${f.code})`).join(', ')}` : "the node does not satisfy this cluster's join policy",
      failed.length ? { detail: { rules: failed } } : {},
    );
  }
  if (!d.release) throw new AttestError('RELEASE_UNAVAILABLE', 'release is not configured on this broker');
  // Whether the release may go out unsealed is the release service's rule alone.
  return d.release.release({
    claims,
    decision,
    want: req.want,
    ...(req.ephemeralKey ? { ephemeralKey: req.ephemeralKey as JsonWebKey } : {}),
    ...(req.sealEnc ? { sealEnc: req.sealEnc } : {}),
    ...(req.diskKey ? { diskKey: req.diskKey } : {}),
    requestId,
    ...(trace ? { trace } : {}),
    // Release re-checks the binding before sealing to the ephemeral key.
    nonce: rec.nonce,
    binding: toBase64Url(binding),
  });
}
