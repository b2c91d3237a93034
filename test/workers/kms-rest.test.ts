/**
 * KMS REST clients inside workerd, against the project's wire-compatible servers started by
 * test/workers/kms-servers.setup.ts (reached with plain outbound fetch):
 * - SigV4 (broker/release/aws-kms-rest.ts) gives AWS's published Signature Version 4 test-suite
 *   values (credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830T123600Z,
 *   us-east-1, service "service": get-vanilla and get-vanilla-query-order-key-case);
 * - AWS KMS: wrap/unwrap through AwsKmsKeyService over the SigV4 client; the test server
 *   recomputes every signature, so a wrong secret is InvalidSignatureException → KMS_DENIED;
 *   another context is InvalidCiphertextException → KMS_UNWRAP_FAILED;
 * - AWS KMS NitroTPM `Recipient` (GenerateDataKey / Decrypt with an attestation document):
 *   CiphertextForRecipient comes back, no plaintext; another context is refused;
 * - Cloud KMS: the REST transport with the service-account JWT grant (providers/gcp/kms.ts);
 * - Azure Key Vault: providers/azure/keyvault.ts with the client-credentials token source,
 *   against test/servers/azure.ts over TLS (workerd verifies the server against the test CA that
 *   vitest.workers.config.ts adds to its network's trusted certificates): round trip, another
 *   context, a key whose key_ops lack wrapKey (403), a wrong client secret (Entra ID 401).
 */
import { describe, expect, inject, it } from 'vitest';
import { encode } from 'cborg';
import { signV4, amzDateOf, awsKmsRest } from '../../broker/release/aws-kms-rest.js';
import { AwsKmsKeyService } from '../../providers/aws/kms.js';
import { GcpKmsKeyService, cloudKmsRest, serviceAccountTokenSource } from '../../providers/gcp/kms.js';
import { AzureKeyVaultKeyService, clientSecretTokenSource } from '../../providers/azure/keyvault.js';

const EXAMPLE = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const ctx = { 'attest-broker:purpose': 'disk-key', 'attest-broker:instance': 'i-0123' };

describe('SigV4 against the AWS test suite', () => {
  const sign = (url: string) =>
    signV4({ method: 'GET', url: new URL(url), headers: { Host: 'example.amazonaws.com', 'X-Amz-Date': '20150830T123600Z' }, body: new Uint8Array() }, EXAMPLE, 'us-east-1', 'service', '20150830T123600Z');

  it('get-vanilla', async () => {
    const r = await sign('https://example.amazonaws.com/');
    expect(r.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });

  it('get-vanilla-query-order-key-case: the query is sorted before signing', async () => {
    expect((await sign('https://example.amazonaws.com/?Param2=value2&Param1=value1')).signature).toBe('b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500');
  });

  it('amz date format', () => {
    expect(amzDateOf(new Date('2026-12-04T09:30:05.123Z'))).toBe('20261204T093005Z');
  });
});

describe('AWS KMS over SigV4 REST (test/servers/aws-kms.ts)', () => {
  const kms = () => inject('awsKms');
  const service = (secret = kms().secretAccessKey) =>
    new AwsKmsKeyService({
      keyId: kms().keyArn,
      client: awsKmsRest({ region: kms().region, endpoint: kms().url, credentials: { accessKeyId: kms().accessKeyId, secretAccessKey: secret }, now: () => new Date() }),
    });

  it('wraps and unwraps under the encryption context; another context is KMS_UNWRAP_FAILED', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const wrapped = await service().wrap(key, ctx);
    expect(await service().unwrap(wrapped, ctx)).toEqual(key);
    await expect(service().unwrap(wrapped, { ...ctx, 'attest-broker:instance': 'i-other' })).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
  });

  it('NitroTPM Recipient: the document travels, KMS answers CiphertextForRecipient and never a plaintext', async () => {
    // A COSE_Sign1-shaped attestation document whose payload carries an RSA public_key (the
    // test server reads it, seals with `openssl cms`; real KMS also verifies the document).
    const rsa = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['encrypt', 'decrypt'])) as CryptoKeyPair;
    const spki = new Uint8Array((await crypto.subtle.exportKey('spki', rsa.publicKey)) as ArrayBuffer);
    const payload = encode(new Map<string, unknown>([['module_id', 'i-0abc'], ['public_key', spki], ['nonce', new Uint8Array(32)]]));
    const doc = encode([encode(new Map([[1, -35]])), new Map(), payload, new Uint8Array(96)]);
    const r = await service().generateForRecipient!(ctx, doc);
    expect(r.ciphertextForRecipient[0]).toBe(0x30); // DER SEQUENCE: CMS ContentInfo
    const again = await service().unwrapForRecipient!(r.wrapped, ctx, doc);
    expect(again[0]).toBe(0x30);
    await expect(service().unwrapForRecipient!(r.wrapped, { ...ctx, 'attest-broker:instance': 'i-other' }, doc)).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
  });

  it('a wrong secret key fails the server signature check: KMS_DENIED', async () => {
    await expect(service('wrong-secret').wrap(new Uint8Array(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
  });

  it('refuses a plain-http endpoint that is not loopback', () => {
    expect(() => awsKmsRest({ region: 'eu-west-1', endpoint: 'http://kms.example', credentials: EXAMPLE, now: () => new Date() })).toThrow(/https/);
  });
});

describe('Cloud KMS over REST with the service-account grant (test/servers/gcp-kms.ts)', () => {
  it('wraps and unwraps; another AAD is refused', async () => {
    const g = inject('gcpKms');
    const accessToken = serviceAccountTokenSource({ clientEmail: g.clientEmail, privateKeyPem: g.privateKeyPem, tokenUri: `${g.url}/token`, now: () => new Date() });
    const svc = new GcpKmsKeyService({ keyName: g.keyName, transport: cloudKmsRest({ endpoint: g.url, accessToken }) });
    const key = crypto.getRandomValues(new Uint8Array(32));
    const wrapped = await svc.wrap(key, ctx);
    expect(await svc.unwrap(wrapped, ctx)).toEqual(key);
    await expect(svc.unwrap(wrapped, { ...ctx, 'attest-broker:instance': 'i-other' })).rejects.toMatchObject({ kind: 'rejected' });
  });
});

describe('Azure Key Vault over REST with the client-credentials grant (test/servers/azure.ts, TLS)', () => {
  const service = (o: { keyName?: string; secret?: string } = {}) => {
    const kv = inject('azureKeyVault');
    const credential = clientSecretTokenSource({ tenantId: kv.tenantId, clientId: kv.clientId, clientSecret: o.secret ?? kv.clientSecret, authorityHost: kv.url, now: () => new Date() });
    return new AzureKeyVaultKeyService({ vaultUrl: kv.url, keyName: o.keyName ?? kv.keyName, keyVersion: kv.keyVersion, credential });
  };

  it('wraps and unwraps (RSA-OAEP-256 wrapkey of a content key + AES-GCM); another context is KMS_UNWRAP_FAILED', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const wrapped = await service().wrap(key, ctx);
    expect(new TextDecoder().decode(wrapped.subarray(0, 4))).toBe('ABKV');
    expect(await service().unwrap(wrapped, ctx)).toEqual(key);
    await expect(service().unwrap(wrapped, { ...ctx, 'attest-broker:instance': 'i-other' })).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED', kind: 'rejected' });
  });

  it('a key whose permitted operations lack wrapKey (403 Forbidden) and a wrong client secret (Entra ID 401) are KMS_DENIED', async () => {
    await expect(service({ keyName: inject('azureKeyVault').signOnlyKeyName }).wrap(new Uint8Array(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
    await expect(service({ secret: 'wrong' }).wrap(new Uint8Array(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
  });
});
