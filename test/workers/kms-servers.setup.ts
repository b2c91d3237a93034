/**
 * Global setup of the workers project (runs in Node, before workerd starts): the project's
 * wire-compatible KMS servers (test/servers) on loopback. Code inside workerd reaches them with
 * plain outbound fetch (the pool does not block it), so the Worker's REST clients are tested
 * against the same servers as the Node adapters. What the tests need arrives via inject().
 */
import type { TestProject } from 'vitest/node';
import { startAwsKmsServer } from '../servers/aws-kms.js';
import { startGcpKmsServer } from '../servers/gcp-kms.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const aws = await startAwsKmsServer();
  const gcp = await startGcpKmsServer();
  project.provide('awsKms', { url: aws.url, keyArn: aws.keyArn, accessKeyId: aws.accessKeyId, secretAccessKey: aws.secretAccessKey, region: aws.region });
  project.provide('gcpKms', { url: gcp.url, keyName: gcp.keyName, clientEmail: gcp.serviceAccount.clientEmail, privateKeyPem: gcp.serviceAccount.privateKeyPem });
  return async () => {
    await aws.close();
    await gcp.close();
  };
}
