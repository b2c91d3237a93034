/**
 * The TokenReview webhook against the real server (`serve` from a config file, in-process), with
 * the memory store and with a real redis-server, a swtpm node that really joins, and an "API
 * server" that calls the webhook with exactly the credentials of the webhook kubeconfig in
 * docs/release.md:
 * - unauthenticated, wrong-CA and wrong-credential reviews → 401 with nothing about any token;
 * - unknown / wrong-secret / used / expired / wrong-cluster answers are byte-identical;
 * - a token issued under cluster A's policy is refused by cluster B's API server;
 * - a second token for the same instance is refused across clusters (one live token per instance);
 * - a token stops authenticating once its bootstrap is done (consumed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { join as joinNode } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
import { JoinCodes } from '../../deploy/node/client/codes.js';
import { AttestError } from '../../providers/common/errors.js';
import { TokenIssuer } from '../../broker/release/issuer.js';
import { startSwtpm, type Swtpm } from '../deploy/swtpm.js';
import { makeTls, type TlsMaterial } from '../deploy/test-broker.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { clientCert, rawRequest, serveInProcess, writeConfig } from './serve-helpers.js';

const ROOT = join(import.meta.dirname, '../..');

/** The webhook kubeconfig of docs/release.md, exactly as documented. */
function docKubeconfig(): { server: string; ca: string; cert: string; key: string } {
  const doc = readFileSync(join(ROOT, 'docs/release.md'), 'utf8');
  const block = /<!-- webhook-kubeconfig:begin -->\s*```yaml\n([\s\S]*?)```\s*<!-- webhook-kubeconfig:end -->/.exec(doc);
  if (!block) throw new Error('docs/release.md has no webhook-kubeconfig block');
  const kc = parse(block[1]!) as {
    clusters: { cluster: { server: string; 'certificate-authority': string } }[];
    users: { user: { 'client-certificate': string; 'client-key': string } }[];
  };
  return { server: kc.clusters[0]!.cluster.server, ca: kc.clusters[0]!.cluster['certificate-authority'], cert: kc.users[0]!.user['client-certificate'], key: kc.users[0]!.user['client-key'] };
}

function twoClusterPolicy(): string {
  const dev = parse(readFileSync(join(ROOT, 'deploy/policies/dev.yaml'), 'utf8')) as { clusters: { dev: Record<string, unknown> }; defaultCluster: string };
  const c = dev.clusters.dev;
  // Two clusters with the same (dev) rules; the EK-certified AK proves the instance id.
  return stringify({ ...dev, version: 'webhook-test', defaultCluster: 'prod', clusters: { prod: structuredClone(c), stage: structuredClone(c) } });
}

for (const storeKind of ['memory', 'redis'] as const) {
  describe(`TokenReview webhook on the real server (${storeKind} store)`, () => {
    let dir: string;
    let tpm: Swtpm;
    let tls: TlsMaterial;
    let redis: RedisServer | undefined;
    let served: Awaited<ReturnType<typeof serveInProcess>>;
    let prodToken: string;
    let apiserver: ReturnType<typeof clientCert>;
    let foreign: ReturnType<typeof clientCert>;
    const kc = docKubeconfig();

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'ab-webhook-'));
      tls = makeTls('webhook');
      tpm = await startSwtpm({ ekCert: true, ekChainInNv: true });
      if (storeKind === 'redis') redis = await startRedis();
      writeFileSync(join(dir, 'broker.crt'), tls.leafPem + tls.caPem);
      writeFileSync(join(dir, 'broker.key'), tls.leafKeyPem);
      writeFileSync(join(dir, 'policy.yaml'), twoClusterPolicy());
      writeFileSync(join(dir, 'ek-root.pem'), tpm.ekRootPem!);
      prodToken = randomBytes(32).toString('base64url');
      writeFileSync(join(dir, 'prod.token'), prodToken + '\n', { mode: 0o600 });
      // The API server's client certificate (CN as documented) and an impostor from another CA.
      apiserver = clientCert(dir, 'apiserver-client', 'kube-apiserver-stage');
      foreign = clientCert(dir, 'foreign-client', 'kube-apiserver-stage');
      const cfg = {
        listen: { host: '127.0.0.1', port: 0, tls: { certFile: join(dir, 'broker.crt'), keyFile: join(dir, 'broker.key') } },
        store: { url: redis ? redis.url : 'memory://' },
        trust: { dir: join(dir, 'trust'), anchors: [{ id: 'swtpm-webhook-ek-root', file: join(dir, 'ek-root.pem'), sha256: createHash('sha256').update(new X509Certificate(tpm.ekRootPem!).raw).digest('hex'), source: 'test' }] },
        providers: { tpm: { enabled: true, options: { ekRoots: ['swtpm-webhook-ek-root'] } } },
        policy: { file: join(dir, 'policy.yaml'), watch: false },
        release: {
          mode: 'webhook',
          clusters: { prod: { apiServer: 'https://10.0.0.1:6443' }, stage: { apiServer: 'https://10.0.0.2:6443' } },
          tokenReview: {
            listen: { host: '127.0.0.1', port: 0, tls: { certFile: join(dir, 'broker.crt'), keyFile: join(dir, 'broker.key'), clientCaFile: apiserver.caCrt } },
            callers: { prod: { bearerTokenFile: join(dir, 'prod.token') }, stage: { clientCertificateCommonNames: ['kube-apiserver-stage'] } },
            maxReviewsPerToken: 16,
          },
        },
      };
      served = await serveInProcess(writeConfig(cfg, dir));
    });
    afterAll(async () => {
      await served?.close();
      await tpm?.stop();
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    let liveToken = '';
    const nodeJoin = async (cluster: string): Promise<{ out: string }> => {
      const out = join(mkdtempSync(join(tmpdir(), 'ab-wh-node-')), 'bootstrap-kubeconfig');
      await joinNode({
        broker: served.main.url,
        caPin: tls.pin,
        cluster,
        platform: 'generic',
        out,
        deadlineMs: 20_000,
        tools: createToolRunner(tpm.env),
        eventLogPath: '',
        log: () => undefined,
      });
      return { out };
    };
    const tokenOf = (kubeconfigPath: string): string => (parse(readFileSync(kubeconfigPath, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;

    /** A TokenReview as the API server sends it, with the documented kubeconfig's credentials. */
    const review = (token: string, who: { bearer?: string; cert?: { crt: string; key: string } } = {}) =>
      rawRequest(served.webhook!.url + new URL(kc.server).pathname, {
        body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }),
        headers: who.bearer ? { authorization: `Bearer ${who.bearer}` } : {},
        tls: { ca: tls.caPem, ...(who.cert ? { cert: readFileSync(who.cert.crt), key: readFileSync(who.cert.key) } : {}) },
      });

    it('is served on its own listener only: the public listener has no /v1/tokenreview', async () => {
      expect(served.webhook).toBeDefined();
      expect(served.webhook!.url).not.toBe(served.main.url);
      const r = await rawRequest(served.main.url + '/v1/tokenreview', { body: '{}', headers: { authorization: `Bearer ${prodToken}` }, tls: { ca: tls.caPem } });
      expect(r.status).toBe(404);
    });

    it('admits only authenticated API servers, and each only for its own cluster; one live token per instance across clusters', async () => {
      // A swtpm node joins the lax "stage" cluster and gets a token.
      const staged = await nodeJoin('stage');
      const token = tokenOf(staged.out);
      expect(token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
      liveToken = token;

      // Strangers: nothing about any token.
      for (const [name, who] of [
        ['no credentials', {}],
        ['wrong bearer', { bearer: randomBytes(32).toString('base64url') }],
        ['client certificate from another CA (same CN)', { cert: foreign }],
      ] as const) {
        const r = await review(token, who);
        expect(r.status, name).toBe(401);
        expect(r.headers['www-authenticate']).toBe('Bearer');
        const body = JSON.parse(r.body) as { code: string; status: number };
        expect(body.code).toBe('TOKENREVIEW_UNAUTHENTICATED');
        expect(r.body).not.toContain(token.slice(0, 6));
        expect(r.body).not.toContain('"authenticated"');
      }

      // The stage API server (mTLS, as the documented kubeconfig does it) authenticates it …
      const ok = await review(token, { cert: apiserver });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body).status).toMatchObject({ authenticated: true, user: { username: `system:bootstrap:${token.slice(0, 6)}` } });
      // … the prod API server (bearer) does not: the token belongs to stage.
      const cross = await review(token, { bearer: prodToken });
      expect(cross.status).toBe(200);
      expect(JSON.parse(cross.body).status).toEqual({ authenticated: false });

      // The same instance asking prod for a second token while its stage token lives: refused.
      const second = await nodeJoin('prod').catch((e: unknown) => e);
      expect(second).toBeInstanceOf(AttestError);
      expect((second as AttestError).detail?.brokerCode).toBe('ISSUANCE_CONFLICT');
      expect([JoinCodes.BROKER_FAILED, JoinCodes.REJECTED]).toContain((second as AttestError).code);
    });

    it('answers unknown, wrong-secret, used, expired and wrong-cluster tokens identically; the token stops once its bootstrap is done', async () => {
      const store = served.runtime.deps.store;
      // The instance's live stage token from the previous test.
      expect(liveToken).not.toBe('');
      const [id, secret] = liveToken.split('.') as [string, string];
      const state = JSON.parse((await store.get(`release:token:${id}`))!) as Record<string, unknown>;
      const bodies = new Set<string>();
      const refused = async (name: string, token: string, who: { bearer?: string; cert?: { crt: string; key: string } }) => {
        const r = await review(token, who);
        expect(r.status, name).toBe(200);
        bodies.add(r.body);
      };
      await refused('unknown id', `zzzzzz.${secret}`, { cert: apiserver });
      await refused('wrong secret', `${id}.${secret.slice(0, 15)}${secret[15] === 'a' ? 'b' : 'a'}`, { cert: apiserver });
      await refused('malformed', `${id}:${secret}`, { cert: apiserver });
      await refused('wrong cluster', liveToken, { bearer: prodToken });
      // expired: the stored state says so (as after its TTL)
      await store.set(`release:token:${id}`, JSON.stringify({ ...state, expiresAt: new Date(Date.now() - 1000).toISOString() }), 60_000);
      await refused('expired', liveToken, { cert: apiserver });
      await store.set(`release:token:${id}`, JSON.stringify(state), 60_000);
      const stillOk = await review(liveToken, { cert: apiserver });
      expect(JSON.parse(stillOk.body).status.authenticated).toBe(true);
      // used: the moment the node's client certificate is issued, the token is consumed.
      await new TokenIssuer({ store, clock: { now: () => new Date() }, logger: served.runtime.deps.logger }).consume(id);
      await refused('used', liveToken, { cert: apiserver });
      expect(bodies.size).toBe(1);
      expect([...bodies][0]).toBe('{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":false}}');
      // The real reasons are in the audit log (hash-chained records logged with msg "audit").
      const reasons = served.logs.filter((l) => l.includes('"type":"tokenreview"')).map((l) => /"reason":"([a-z-]+)"/.exec(l)?.[1]);
      expect(reasons).toEqual(expect.arrayContaining(['unknown', 'wrong-secret', 'malformed', 'wrong-cluster', 'expired', 'used']));
    });
  });
}
