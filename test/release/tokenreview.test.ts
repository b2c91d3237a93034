/**
 * TokenReview webhook (authentication.k8s.io/v1) for tokens issued in webhook mode (no Secrets):
 * only authenticated API servers get answers, each only about its own cluster's tokens; every
 * refusal is the same answer (the reason goes to the audit log only); a token authenticates a
 * bounded number of times and never after it is consumed.
 */
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit, type AuditRecord } from '../../broker/release/audit.js';
import { tokenReviewHandler, type TokenReviewCaller } from '../../broker/release/tokenreview.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import type { Peer, ReleaseObject } from '../../broker/contracts.js';
import { AttestError } from '../../providers/common/errors.js';
import { makeTestPki } from '../servers/tls.js';
import { captureLogger, claimsFor, decisionFor, fixedClock, memoryStore } from './helpers.js';

const pki = makeTestPki();
const PROD_TOKEN = 'prod-apiserver-' + randomBytes(24).toString('hex');
const STAGE_TOKEN = 'stage-apiserver-' + randomBytes(24).toString('hex');
const digest = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());

async function setup(o: { maxReviews?: number } = {}) {
  const clock = fixedClock(new Date().toISOString());
  const store = memoryStore(clock);
  const logger = captureLogger();
  const records: AuditRecord[] = [];
  const audit = new HashChainAudit({ store, clock, write: async (r) => void records.push(r) });
  const svc = new BrokerReleaseService({
    store,
    clock,
    logger,
    audit,
    keys: await LocalKeyService.create({ kek: randomBytes(32) }),
    // no kube client: webhook mode
    clusters: { prod: { apiServer: 'https://api:6443', caPem: pki.caPem }, stage: { apiServer: 'https://stage:6443', caPem: pki.caPem } },
  });
  const callers: TokenReviewCaller[] = [
    { cluster: 'prod', bearerSha256: [digest(PROD_TOKEN)], clientCertSubjects: ['kube-apiserver-prod'] },
    { cluster: 'stage', bearerSha256: [digest(STAGE_TOKEN)] },
  ];
  const handler = tokenReviewHandler({
    state: (id) => svc.issuer('prod').state(id),
    store,
    clock,
    logger,
    audit,
    callers,
    audiences: ['https://kubernetes.default.svc'],
    ...(o.maxReviews ? { maxReviews: o.maxReviews } : {}),
  });
  const post = (token: string, o2: { bearer?: string; peer?: Peer; audiences?: string[] } = {}) =>
    handler(
      new Request('http://broker/v1/tokenreview', {
        method: 'POST',
        headers: o2.bearer === undefined ? {} : { authorization: `Bearer ${o2.bearer}` },
        body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: o2.audiences } }),
      }),
      o2.peer ?? {},
    );
  const review = async (token: string, o2: { bearer?: string; peer?: Peer; audiences?: string[] } = { bearer: PROD_TOKEN }) => {
    const res = await post(token, o2);
    expect(res.status).toBe(200);
    return { raw: await res.clone().text(), ...((await res.json()) as { status: { authenticated: boolean; user?: { username: string; groups: string[]; extra: Record<string, string[]> }; audiences?: string[] } }) };
  };
  const issue = async (instance: string, cluster = 'prod') =>
    (await svc.release({ claims: claimsFor(instance), decision: decisionFor({ cluster }, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: `r-${instance}` })) as ReleaseObject;
  return { svc, clock, store, logger, handler, post, review, issue, records };
}

describe('TokenReview webhook', () => {
  it('authenticates an issued token as the bootstrap authenticator would, with the attested node in extra', async () => {
    const { review, issue, logger } = await setup();
    const rel = await issue('i-wh');
    const { status: st } = await review(rel.bootstrapToken!);
    expect(st.authenticated).toBe(true);
    expect(st.user!.username).toBe(`system:bootstrap:${rel.bootstrapToken!.slice(0, 6)}`);
    expect(st.user!.groups).toEqual(['system:bootstrappers', 'system:bootstrappers:attest-broker', 'system:bootstrappers:attest-broker:aws']);
    expect(st.user!.extra['attest-broker.io/node-name']).toEqual([decisionFor().nodeName]);
    expect(st.user!.extra['attest-broker.io/instance-id']).toEqual(['i-wh']);
    expect(st.user!.extra['attest-broker.io/cluster']).toEqual(['prod']);
    expect((await review(rel.bootstrapToken!, { bearer: PROD_TOKEN, audiences: ['https://kubernetes.default.svc', 'other'] })).status.audiences).toEqual([
      'https://kubernetes.default.svc',
    ]);
    expect(logger.lines.join('\n')).not.toContain(rel.bootstrapToken!.slice(7));
  });

  it('serves only authenticated API servers: no, wrong or malformed credentials → 401 and nothing about any token', async () => {
    const { post, issue } = await setup();
    const rel = await issue('i-auth');
    const cases: Array<[string, { bearer?: string; peer?: Peer }]> = [
      ['no credentials', {}],
      ['wrong bearer', { bearer: 'x'.repeat(64) }],
      ['truncated bearer', { bearer: PROD_TOKEN.slice(1) }],
      ['another cluster\'s bearer with a suffix', { bearer: STAGE_TOKEN + 'x' }],
      ['certificate the TLS layer did not verify is not given to the handler; an unknown CN', { peer: { clientCertificate: { subject: 'kube-apiserver-other', sha256: '00' } } }],
    ];
    for (const [name, o] of cases) {
      let err: unknown;
      try {
        await post(rel.bootstrapToken!, o);
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(AttestError);
      expect((err as AttestError).code, name).toBe('TOKENREVIEW_UNAUTHENTICATED');
      expect((err as AttestError).kind).toBe('unauthenticated');
      expect((err as AttestError).message).not.toContain(rel.bootstrapToken!.slice(0, 6));
    }
    // A verified client certificate with a configured common name is a caller (mTLS).
    const ok = await post(rel.bootstrapToken!, { peer: { clientCertificate: { subject: 'kube-apiserver-prod', sha256: '00' } } });
    expect(((await ok.json()) as { status: { authenticated: boolean } }).status.authenticated).toBe(true);
  });

  it('gives one identical answer for unknown, wrong-secret, malformed, used, expired, wrong-cluster, audience and over-limit tokens; the audit keeps the reason', async () => {
    const { review, issue, clock, store, svc, records } = await setup({ maxReviews: 3 });
    const rel = await issue('i-no-oracle');
    const [id, secret] = rel.bootstrapToken!.split('.') as [string, string];
    const stageRel = await issue('i-stage', 'stage');
    const answers = new Set<string>();
    const refuse = async (name: string, token: string, o?: { bearer?: string; audiences?: string[] }) => {
      const r = await review(token, o ?? { bearer: PROD_TOKEN });
      expect(r.status.authenticated, name).toBe(false);
      answers.add(r.raw);
    };
    await refuse('wrong secret', `${id}.${secret.slice(0, 15)}${secret[15] === 'a' ? 'b' : 'a'}`);
    await refuse('unknown id', `zzzzzz.${secret}`);
    await refuse('malformed', `${id}:${secret}`);
    await refuse('foreign audience', rel.bootstrapToken!, { bearer: PROD_TOKEN, audiences: ['https://other-cluster'] });
    // A token admitted under stage's policy is refused by prod's API server, and the reverse.
    await refuse('another cluster (stage token at prod)', stageRel.bootstrapToken!);
    await refuse('another cluster (prod token at stage)', rel.bootstrapToken!, { bearer: STAGE_TOKEN });
    expect((await review(stageRel.bootstrapToken!, { bearer: STAGE_TOKEN })).status.authenticated).toBe(true);
    // used: consumed at the moment the node's client certificate is issued
    expect((await review(rel.bootstrapToken!)).status.authenticated).toBe(true);
    await svc.issuer('prod').consume(id);
    await refuse('used', rel.bootstrapToken!);
    // expired
    const other = await issue('i-expiring');
    const st = JSON.parse((await store.get(`release:token:${other.bootstrapToken!.slice(0, 6)}`))!) as { expiresAt: string };
    clock.set(new Date(Date.parse(st.expiresAt) + 1000));
    await refuse('expired', other.bootstrapToken!);
    expect(answers.size, [...answers].join('\n')).toBe(1);
    expect([...answers][0]).toBe('{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":false}}');
    const reasons = records.filter((r) => r.entry.type === 'tokenreview').map((r) => r.entry.reason);
    expect(reasons).toEqual(
      expect.arrayContaining(['wrong-secret', 'unknown', 'malformed', 'audience', 'wrong-cluster', 'used', 'expired', 'ok']),
    );
  });

  it('a token authenticates at most maxReviews times (the requests TLS bootstrap needs)', async () => {
    const { review, issue, records } = await setup({ maxReviews: 3 });
    const rel = await issue('i-budget');
    for (let i = 0; i < 3; i++) expect((await review(rel.bootstrapToken!)).status.authenticated).toBe(true);
    expect((await review(rel.bootstrapToken!)).status.authenticated).toBe(false);
    expect(records.at(-1)!.entry.reason).toBe('review-limit');
  });

  it('answers 400 to something that is not a v1 TokenReview (authenticated callers only)', async () => {
    const { handler } = await setup();
    for (const body of ['nope', JSON.stringify({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1beta1', spec: { token: 'x' } }), JSON.stringify({ kind: 'Pod' })]) {
      await expect(handler(new Request('http://b/v1/tokenreview', { method: 'POST', headers: { authorization: `Bearer ${PROD_TOKEN}` }, body }), {})).rejects.toMatchObject({
        code: 'TOKENREVIEW_MALFORMED',
      });
    }
  });

  it('refuses to be built without an authenticated caller', async () => {
    const { store, clock, logger } = await setup();
    expect(() => tokenReviewHandler({ state: async () => null, store, clock, logger, callers: [] })).toThrow(/authenticated caller/);
  });
});
