/**
 * No secret in any log line: the real pino logger (debug level) captures everything release
 * writes — release lines, audit records (logged when no audit file is set), TokenReview lines and
 * failure paths — and the captured text is searched for every token, token secret, disk key (in
 * base64url, base64 and hex) and the KEK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createPinoLogger } from '../../broker/observability/pino.node.js';
import { buildReleaseRuntime } from '../../broker/release/runtime.node.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { claimsFor, decisionFor, memoryStore } from './helpers.js';

let pki: TestPki;
let srv: KubeTestServer;
beforeAll(async () => {
  pki = makeTestPki();
  srv = await startKubeServer(pki);
});
afterAll(async () => {
  await srv?.close();
});

describe('logs carry no secrets', () => {
  it('across releases, audit records, token reviews and failures', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        cb();
      },
    });
    const logger = createPinoLogger('debug', sink);
    const kubeconfig = join(pki.dir, 'k');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 't', cluster: { server: srv.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64') } }],
        users: [{ name: 'b', user: { token: srv.adminToken } }],
        contexts: [{ name: 't', context: { cluster: 't', user: 'b' } }],
        'current-context': 't',
      }),
    );
    const kek = randomBytes(32);
    process.env.AB_TEST_KEK = kek.toString('hex');
    const store = memoryStore();
    const rt = await buildReleaseRuntime(
      { mode: 'secret', clusters: { prod: { apiServer: 'https://api:6443', kube: { kubeconfig } } }, kms: { kind: 'local', kekEnv: 'AB_TEST_KEK' } },
      store,
      logger,
    );
    // The same store seen by a webhook-mode broker: its TokenReviews are logged too.
    const apiServerToken = randomBytes(32).toString('hex');
    const wh = await buildReleaseRuntime(
      {
        mode: 'webhook',
        clusters: { prod: { apiServer: 'https://api:6443' } },
        tokenReview: { callers: { prod: { bearerTokenSha256: [createHash('sha256').update(apiServerToken).digest('hex')] } } },
      },
      store,
      logger,
    );
    const review = (token: string) =>
      wh.tokenReview!(
        new Request('http://b/v1/tokenreview', {
          method: 'POST',
          headers: { authorization: `Bearer ${apiServerToken}` },
          body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }),
        }),
        {},
      );
    const secrets: string[] = [kek.toString('hex'), kek.toString('base64'), srv.adminToken, apiServerToken];
    for (let i = 0; i < 5; i++) {
      const rel = (await rt.release.release({ claims: claimsFor(`i-log-${i}`), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token', 'disk-key'], requestId: `r${i}` })) as ReleaseObject;
      const key = Buffer.from(rel.diskKey!.key, 'base64url');
      secrets.push(rel.bootstrapToken!, rel.bootstrapToken!.split('.')[1]!, rel.diskKey!.key, key.toString('base64'), key.toString('hex'));
      await review(rel.bootstrapToken!);
      // a wrong secret for the same id is reviewed (and logged) too
      await review(`${rel.bootstrapToken!.slice(0, 7)}zzzzzzzzzzzzzzzz`);
    }
    // failure paths: Kubernetes down (rollback logged), conflict
    srv.failNext(100, 503);
    await expect(rt.release.release({ claims: claimsFor('i-log-down'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token', 'disk-key'], requestId: 'rd' })).rejects.toMatchObject({
      code: 'KUBE_UNAVAILABLE',
    });
    srv.failNext(0, 0);
    await expect(rt.release.release({ claims: claimsFor('i-log-0'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'rc' })).rejects.toMatchObject({
      code: 'ISSUANCE_CONFLICT',
    });
    await rt.sweep();
    await rt.close();
    delete process.env.AB_TEST_KEK;

    expect(lines.length).toBeGreaterThan(15);
    expect(lines.filter((l) => l.includes('"msg":"audit"') && l.includes('"type":"release"'))).toHaveLength(5);
    expect(lines.filter((l) => l.includes('"msg":"audit"') && l.includes('"type":"tokenreview"'))).toHaveLength(10);
    const all = lines.join('\n');
    for (const s of secrets) expect(all.includes(s), `a secret (${s.length} chars) appears in the logs`).toBe(false);
  });
});
