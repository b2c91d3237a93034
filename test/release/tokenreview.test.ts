/**
 * TokenReview webhook (authentication.k8s.io/v1) for tokens issued in webhook mode (no Secrets).
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit } from '../../broker/release/audit.js';
import { tokenReviewHandler } from '../../broker/release/tokenreview.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { makeTestPki } from '../servers/tls.js';
import { captureLogger, claimsFor, decisionFor, fixedClock, memoryStore } from './helpers.js';

const pki = makeTestPki();

async function setup() {
  const clock = fixedClock(new Date().toISOString());
  const store = memoryStore(clock);
  const logger = captureLogger();
  const svc = new BrokerReleaseService({
    store,
    clock,
    logger,
    audit: new HashChainAudit({ store, clock, write: async () => undefined }),
    keys: await LocalKeyService.create({ kek: randomBytes(32) }),
    clusters: { prod: { apiServer: 'https://api:6443', caPem: pki.caPem } }, // no kube client: webhook mode
  });
  const handler = tokenReviewHandler({ state: (id) => svc.issuer('prod').state(id), clock, logger, audiences: ['https://kubernetes.default.svc'] });
  const review = async (token: string, audiences?: string[]) => {
    const res = await handler(
      new Request('http://broker/v1/tokenreview', { method: 'POST', body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } }) }),
    );
    expect(res.status).toBe(200);
    return ((await res.json()) as { status: { authenticated: boolean; user?: { username: string; groups: string[]; extra: Record<string, string[]> }; audiences?: string[] } }).status;
  };
  return { svc, clock, store, logger, handler, review };
}

describe('TokenReview webhook', () => {
  it('authenticates an issued token as the bootstrap authenticator would, with the attested node in extra', async () => {
    const { svc, review, logger } = await setup();
    const rel = (await svc.release({ claims: claimsFor('i-wh'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' })) as ReleaseObject;
    const st = await review(rel.bootstrapToken!);
    expect(st.authenticated).toBe(true);
    expect(st.user!.username).toBe(`system:bootstrap:${rel.bootstrapToken!.slice(0, 6)}`);
    expect(st.user!.groups).toEqual(['system:bootstrappers', 'system:bootstrappers:attest-broker', 'system:bootstrappers:attest-broker:aws']);
    expect(st.user!.extra['attest-broker.io/node-name']).toEqual([decisionFor().nodeName]);
    expect(st.user!.extra['attest-broker.io/instance-id']).toEqual(['i-wh']);
    expect((await review(rel.bootstrapToken!, ['https://kubernetes.default.svc', 'other'])).audiences).toEqual(['https://kubernetes.default.svc']);
    expect(logger.lines.join('\n')).not.toContain(rel.bootstrapToken!.slice(7));
  });

  it('refuses wrong secret, unknown id, malformed, expired, used, and foreign audiences', async () => {
    const { svc, review, clock, store } = await setup();
    const rel = (await svc.release({ claims: claimsFor('i-wh2'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' })) as ReleaseObject;
    const [id, secret] = rel.bootstrapToken!.split('.') as [string, string];
    const rows: Array<[string, string, string[]?]> = [
      ['wrong secret', `${id}.${secret.slice(0, 15)}${secret[15] === 'a' ? 'b' : 'a'}`],
      ['unknown id', `zzzzzz.${secret}`],
      ['malformed', `${id}:${secret}`],
      ['foreign audience', rel.bootstrapToken!, ['https://other-cluster']],
    ];
    for (const [name, token, aud] of rows) expect((await review(token, aud)).authenticated, name).toBe(false);
    // used
    const st = JSON.parse((await store.get(`release:token:${id}`))!);
    await store.set(`release:token:${id}`, JSON.stringify({ ...st, used: clock.now().toISOString() }));
    expect((await review(rel.bootstrapToken!)).authenticated).toBe(false);
    await store.set(`release:token:${id}`, JSON.stringify(st));
    expect((await review(rel.bootstrapToken!)).authenticated).toBe(true);
    // expired
    clock.set(new Date(Date.parse(st.expiresAt) + 1000));
    expect((await review(rel.bootstrapToken!)).authenticated).toBe(false);
  });

  it('answers 400 to something that is not a v1 TokenReview', async () => {
    const { handler } = await setup();
    for (const body of ['nope', JSON.stringify({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1beta1', spec: { token: 'x' } }), JSON.stringify({ kind: 'Pod' })]) {
      expect((await handler(new Request('http://b/v1/tokenreview', { method: 'POST', body }))).status).toBe(400);
    }
  });
});
