/**
 * 200 parallel releases for the same attested instance, spread over four broker replicas that
 * share one real redis-server (RedisStore, broker/store/redis.node.ts) and one Kubernetes API:
 * exactly one bootstrap token is created, one audit record is written, the other 199 get
 * ISSUANCE_CONFLICT, and the audit chain stays linear under contention.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { RedisStore } from '../../broker/store/redis.node.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit, verifyAuditChain, type AuditRecord } from '../../broker/release/audit.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import { kubeClientFor } from '../../broker/release/kube.node.js';
import { systemClock, type ReleaseObject } from '../../broker/contracts.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { captureLogger, claimsFor, decisionFor } from './helpers.js';

describe('one token per instance under 200 concurrent releases (Redis)', () => {
  let redis: RedisServer;
  let pki: TestPki;
  let kube: KubeTestServer;
  const stores: RedisStore[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    pki = makeTestPki();
    kube = await startKubeServer(pki);
  });
  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await kube?.close();
    await redis?.stop();
  });

  it('exactly one Secret, one audit record, 199 × ISSUANCE_CONFLICT', async () => {
    const kek = randomBytes(32);
    const records: AuditRecord[] = [];
    const logger = captureLogger();
    const replicas: BrokerReleaseService[] = [];
    for (let i = 0; i < 4; i++) {
      const store = new RedisStore({ url: redis.url, keyPrefix: 'ab-test:', commandTimeoutMs: 10_000 });
      stores.push(store);
      // Connect up front: RedisStore connects lazily and, with the offline queue off, commands
      // issued while the first connection is still being made fail (reported to the lead).
      await store.connect();
      replicas.push(
        new BrokerReleaseService({
          store,
          clock: systemClock,
          logger,
          audit: new HashChainAudit({ store, clock: systemClock, write: async (r) => void records.push(r), attempts: 400 }),
          keys: await LocalKeyService.create({ kek }),
          clusters: { prod: { apiServer: 'https://api:6443', caPem: pki.caPem, kube: kubeClientFor({ server: kube.url, caPem: pki.caPem, token: () => kube.adminToken }) } },
        }),
      );
    }
    const instanceId = `i-${randomBytes(8).toString('hex')}`;
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        replicas[i % 4]!.release({
          claims: claimsFor(instanceId),
          decision: decisionFor({}, { allowUnsealed: true }),
          want: ['bootstrap-token', 'disk-key'],
          requestId: `r${i}`,
        }),
      ),
    );
    const ok = results.filter((r): r is PromiseFulfilledResult<string | ReleaseObject> => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(new Set(failed.map((f) => (f.reason as { code?: string }).code))).toEqual(new Set(['ISSUANCE_CONFLICT']));
    const secrets = [...kube.secrets.values()].filter((s) => Buffer.from(s.data.description ?? '', 'base64').toString().includes(instanceId));
    expect(secrets).toHaveLength(1);
    expect(records).toHaveLength(1);

    // Audit chain under contention: 40 releases for 40 different instances across the replicas.
    const more = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        replicas[i % 4]!.release({ claims: claimsFor(`i-many-${i}`), decision: decisionFor({}, { allowUnsealed: true }), want: ['disk-key'], requestId: `m${i}` }),
      ),
    );
    expect(more).toHaveLength(40);
    expect(records).toHaveLength(41);
    const head = JSON.parse((await stores[0]!.get('audit:head'))!);
    await expect(verifyAuditChain(records, { head })).resolves.toMatchObject({ count: 41 });
  });
});
