/**
 * `explain: true` in a cluster's policy: a refused node learns which rules failed (rule, code,
 * reason) in its problem response; without it (the default) it only ever sees POLICY_DENIED and
 * the reasons stay in the audit log.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { createPolicyEngine } from '../../broker/policy/index.js';
import { loadPolicyText } from '../../broker/policy/load.js';
import { systemClock } from '../../broker/contracts.js';
import { fromBase64Url, toHex } from '../../providers/common/encoding.js';
import { postJson, testBroker } from '../helpers/broker.js';
import { bindingEchoProvider, echoRelease, TEST_FORMAT } from '../helpers/test-provider.js';

const dev = parse(readFileSync(join(import.meta.dirname, '../../deploy/policies/dev.yaml'), 'utf8')) as { clusters: { dev: Record<string, unknown> } };

async function refusal(explain: boolean | undefined) {
  const doc = structuredClone(dev);
  if (explain !== undefined) doc.clusters.dev.explain = explain;
  const policy = createPolicyEngine(await loadPolicyText(stringify(doc), new Date()), { clock: systemClock });
  const audit: Record<string, unknown>[] = [];
  const { app } = testBroker({ providers: [bindingEchoProvider], policy, release: echoRelease, audit: { record: async (e) => void audit.push(e) } });
  const ch = (await (await postJson(app, '/v1/challenge', {})).json()) as { challengeId: string; nonce: string };
  // The test provider's format is not one the dev policy allows: a policy refusal.
  const r = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
  return { status: r.status, body: (await r.json()) as { code: string; detail: string; rules?: { rule: string; code: string; reason: string }[] }, audit };
}

describe('policy explain', () => {
  it('off (default): the node sees POLICY_DENIED and nothing about the rules; the audit has them', async () => {
    for (const explain of [undefined, false]) {
      const { status, body, audit } = await refusal(explain);
      expect(status).toBe(403);
      expect(body.code).toBe('POLICY_DENIED');
      expect(body.rules).toBeUndefined();
      expect(body.detail).not.toContain('POLICY_FORMAT_NOT_ALLOWED');
      expect(JSON.stringify(audit)).toContain('POLICY_FORMAT_NOT_ALLOWED');
    }
  });

  it('on: the problem names each failing rule with its code and reason', async () => {
    const { status, body } = await refusal(true);
    expect(status).toBe(403);
    expect(body.code).toBe('POLICY_DENIED');
    expect(body.rules).toEqual([
      expect.objectContaining({ rule: 'providers.tpm.formats', code: 'POLICY_FORMAT_NOT_ALLOWED' }),
      expect.objectContaining({ rule: 'tpm.akTrust', code: 'POLICY_TPM_MISSING' }),
      expect.objectContaining({ rule: 'nodeName', code: 'POLICY_NODE_NAME_UNPROVEN' }),
    ]);
    expect(body.rules![0]!.reason).toMatch(/tpm-test/);
    expect(body.detail).toMatch(/providers\.tpm\.formats \(POLICY_FORMAT_NOT_ALLOWED\)/);
  });
});
