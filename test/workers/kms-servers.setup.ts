/**
 * Global setup of the workers project (runs in Node, before workerd starts): the project's
 * wire-compatible KMS servers (test/servers) and an OTLP/HTTP collector on loopback. Code inside workerd reaches them with
 * plain outbound fetch (the pool does not block it), so the Worker's REST clients are tested
 * against the same servers as the Node adapters. What the tests need arrives via inject().
 *
 * The Entra ID + Key Vault server (test/servers/azure.ts) speaks TLS with a CA made here by
 * openssl; its PEM is provided too, and vitest.workers.config.ts adds it to the trusted
 * certificates of the workerd network that carries the tests' outbound fetch (nothing else is
 * trusted differently: the public CAs stay trusted, no request is intercepted).
 */
import type { TestProject } from 'vitest/node';
import { startAwsKmsServer } from '../servers/aws-kms.js';
import { startGcpKmsServer } from '../servers/gcp-kms.js';
import { startAzureServer } from '../servers/azure.js';
import { makeTestPki } from '../servers/tls.js';
import { startCollector } from '../servers/otlp-collector.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const aws = await startAwsKmsServer();
  const gcp = await startGcpKmsServer();
  const pki = makeTestPki('attest-broker-workers-test-ca');
  const azure = await startAzureServer(pki);
  const collector = await startCollector();
  project.provide('awsKms', { url: aws.url, keyArn: aws.keyArn, accessKeyId: aws.accessKeyId, secretAccessKey: aws.secretAccessKey, region: aws.region });
  project.provide('gcpKms', { url: gcp.url, keyName: gcp.keyName, clientEmail: gcp.serviceAccount.clientEmail, privateKeyPem: gcp.serviceAccount.privateKeyPem });
  project.provide('azureKeyVault', {
    url: azure.base,
    tenantId: azure.tenantId,
    clientId: azure.clientId,
    clientSecret: azure.clientSecret,
    keyName: azure.keyName,
    keyVersion: azure.keyVersion,
    signOnlyKeyName: azure.signOnlyKeyName,
    caPem: pki.caPem,
  });
  project.provide('otlpCollector', { url: collector.url });
  return async () => {
    await aws.close();
    await gcp.close();
    await azure.close();
    await collector.close();
  };
}
