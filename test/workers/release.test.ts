/**
 * Release inside workerd: the same BrokerReleaseService (webhook mode, local KMS, Durable Object
 * store) issues a bootstrap token and a disk key sealed as a JWE that only the node key opens;
 * the TokenReview handler authenticates the token; the Cloud KMS REST and Key Vault adapters and
 * the AWS SDK adapter load and construct (Web APIs only).
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { compactDecrypt, exportJWK, generateKeyPair, calculateJwkThumbprint } from 'jose';
import { KMSClient } from '@aws-sdk/client-kms';
import { DurableObjectStore } from '../../broker/store/durable-object.worker.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit, verifyAuditChain, type AuditRecord } from '../../broker/release/audit.js';
import { tokenReviewHandler } from '../../broker/release/tokenreview.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import { GcpKmsKeyService, cloudKmsRest, crc32c } from '../../providers/gcp/kms.js';
import { AzureKeyVaultKeyService } from '../../providers/azure/keyvault.js';
import { AwsKmsKeyService } from '../../providers/aws/kms.js';
import type { ReleaseObject } from '../../broker/contracts.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ns = (env as any).STATE;
const b64u = (b: Uint8Array): string => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

describe('release in workerd', () => {
  it('issues a sealed token + disk key, audits it, and reviews the token', async () => {
    const store = new DurableObjectStore(ns);
    const clock = { now: () => new Date() };
    const records: AuditRecord[] = [];
    const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
    const svc = new BrokerReleaseService({
      store,
      clock,
      logger: quiet,
      audit: new HashChainAudit({ store, clock, write: async (r) => void records.push(r) }),
      keys: await LocalKeyService.create({ kek: crypto.getRandomValues(new Uint8Array(32)) }),
      clusters: { prod: { apiServer: 'https://api:6443' } },
    });
    const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
    const jwk = await exportJWK(publicKey);
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const tp = Uint8Array.from(atob((await calculateJwkThumbprint(jwk)).replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const binding = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array([...nonce, ...tp])));
    const jwe = (await svc.release({
      claims: {
        provider: 'gcp',
        format: 'gotpm',
        platform: { tee: 'sev-snp', debug: false },
        identity: { cloud: 'gcp', account: 'p', instanceId: '123', proven: ['instanceId'] },
        evidenceSha256: 'a'.repeat(64),
      },
      decision: {
        allow: true,
        nodeName: 'gke-node-1',
        cluster: 'prod',
        policyHash: 'b'.repeat(64),
        rules: [],
        release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: false, diskKey: true },
      },
      want: ['bootstrap-token', 'disk-key'],
      ephemeralKey: jwk,
      nonce: b64u(nonce),
      binding: b64u(binding),
      requestId: 'w1',
    })) as string;
    const rel = JSON.parse(new TextDecoder().decode((await compactDecrypt(jwe, privateKey)).plaintext)) as ReleaseObject;
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(rel.diskKey!.key.length).toBe(43);
    await expect(verifyAuditChain(records)).resolves.toMatchObject({ count: 1 });
    const apiServerToken = 'kube-apiserver-' + b64u(crypto.getRandomValues(new Uint8Array(24)));
    const callerDigest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(apiServerToken)));
    const review = tokenReviewHandler({ state: (id) => svc.issuer('prod').state(id), store, clock, logger: quiet, callers: [{ cluster: 'prod', bearerSha256: [callerDigest] }] });
    const res = await review(
      new Request('https://b/v1/tokenreview', {
        method: 'POST',
        headers: { authorization: `Bearer ${apiServerToken}` },
        body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: rel.bootstrapToken } }),
      }),
      {},
    );
    expect(((await res.json()) as { status: { authenticated: boolean } }).status.authenticated).toBe(true);
  });

  it('the cloud KMS adapters load and construct with Web APIs only', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(new GcpKmsKeyService({ keyName: 'projects/proj-1/locations/global/keyRings/r/cryptoKeys/k', transport: cloudKmsRest({ accessToken: async () => 't' }) }).kind).toBe('gcp-kms');
    expect(new AzureKeyVaultKeyService({ vaultUrl: 'https://v.vault.azure.net', keyName: 'k', keyVersion: 'abc', credential: { getToken: async () => null } }).kind).toBe('azure-keyvault');
    expect(new AwsKmsKeyService({ keyId: 'arn:aws:kms:eu-west-1:1:key/x', client: new KMSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }) }).kind).toBe('aws-kms');
  });
});
