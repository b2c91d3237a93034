/**
 * @module providers/aws/descriptor
 *
 * Provider `aws`: NitroTPM attestation documents (docs/aws.md). Needs the AWS Nitro root.
 */
import { PinIds } from '../common/pins.js';
import { proves, provenValue, type ProviderDescriptor } from '../descriptor.js';
import { AwsProviderConfigSchema, createAwsProviderFromConfig } from './index.js';

export const aws: ProviderDescriptor<'aws'> = {
  kind: 'platform',
  name: 'aws',
  formats: { nitrotpm: { tees: ['nitro', 'none'] } },
  pins: [[PinIds.AWS_NITRO_ROOT_G1]],
  options: AwsProviderConfigSchema,
  create: (o) => createAwsProviderFromConfig(o),
  identity: {
    cloud: 'aws',
    rule: {
      accounts: { claim: 'account', match: 'exact', description: 'AWS account ids (claims.identity.account).' },
      regions: { claim: 'region', match: 'exact', description: 'AWS regions (claims.identity.region).' },
      instanceNames: { claim: 'instanceName', match: 'glob', description: 'Patterns over the proven instance name (claims.identity.instanceName).' },
    },
    hint: 'accounts and regions',
    capture: (c) => ({ accounts: provenValue(c, 'account'), regions: provenValue(c, 'region'), instanceNames: 'any' }),
  },
  nodeName: {
    sources: { 'ec2-private-dns-name': { field: 'extra.privateDnsName' }, 'ec2-instance-id': { field: 'instanceId' } },
    capture: (c) => (proves(c, 'extra.privateDnsName') ? 'ec2-private-dns-name' : 'ec2-instance-id'),
  },
  client: { platform: 'aws', format: 'nitrotpm' },
};
