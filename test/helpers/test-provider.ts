/**
 * Stand-ins for the app's *dependencies* (a provider, a policy, a release service) so HTTP tests
 * exercise the app itself — routing, schema, challenge consumption, error mapping — before and
 * independently of the real providers. They are never used by the broker outside tests.
 * The provider accepts evidence `{ "binding": <hex of the expected binding> }` only, so binding
 * checks are still real.
 */
import type { Provider, ProviderClaims } from '../../providers/common/types.js';
import type { Decision, PolicyEngine, ReleaseService } from '../../broker/contracts.js';
import { rejected } from '../../providers/common/errors.js';
import { toHex } from '../../providers/common/encoding.js';

export const TEST_FORMAT = 'tpm-test';

export const bindingEchoProvider: Provider = {
  name: 'tpm',
  formats: [TEST_FORMAT],
  async verify(format, evidence, ctx): Promise<ProviderClaims> {
    const e = evidence as { binding?: unknown };
    if (typeof e.binding !== 'string' || e.binding !== toHex(ctx.binding)) throw rejected('NONCE_MISMATCH', 'binding differs');
    return {
      provider: 'tpm',
      format,
      platform: { tee: 'none', debug: false },
      identity: { cloud: 'baremetal', instanceId: 'node-1', proven: [] },
    };
  },
};

export const allowAll: PolicyEngine = {
  async evaluate(claims, cluster): Promise<Decision> {
    return {
      allow: true,
      nodeName: claims.identity.instanceId,
      cluster: cluster ?? 'default',
      policyHash: '0'.repeat(64),
      rules: [],
      release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: true, diskKey: false },
    };
  },
  current: () => ({ hash: '0'.repeat(64) }),
};

export const echoRelease: ReleaseService = {
  async release(req) {
    return { nodeName: req.decision.nodeName, expiresAt: new Date(0).toISOString() };
  },
};
