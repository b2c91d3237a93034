/**
 * @module broker/approver/nodes
 *
 * What the broker remembers about a node after it attested: the record the CSR approver consults
 * for kubelet serving certificates and client-certificate renewals, long after the bootstrap
 * token is gone. Written by the release service each time a node is admitted (a re-attestation
 * refreshes it), kept under `release:node:<cluster>:<nodeName>` for `approver.renewalWindowDays`.
 *
 * The record carries the verified Claims (so a renewal is re-checked against the policy in
 * force at renewal time) and the names and addresses the evidence proved:
 * - always the node name itself (it was derived from proven identity by policy);
 * - GCP: the VM's internal DNS names `<instance>.<zone>.c.<project>.internal` and
 *   `<instance>.c.<project>.internal` (zonal and global DNS, "Internal DNS" in the Compute
 *   Engine docs), from the instance name, zone and project the Google-signed AK certificate proved;
 * - AWS: the primary private IPv4 address of the AWS-signed instance identity document, and the
 *   EC2 private DNS name derived from it (`ip-a-b-c-d.<region>.compute.internal`,
 *   `ip-a-b-c-d.ec2.internal` in us-east-1: "Amazon EC2 instance hostname types");
 * - Azure, bare metal: nothing beyond the node name (the attested IMDS document and the TPM carry
 *   no addresses). A cluster's `approver.serving.<cluster>` allow-list adds names or CIDRs.
 */
import type { Clock, StateStore } from '../contracts.js';
import type { Claims } from '../../providers/common/types.js';

export interface NodeRecord {
  v: 1;
  cluster: string;
  nodeName: string;
  instanceKey: string;
  provider: string;
  cloud: string;
  account?: string;
  instanceId: string;
  attestedAt: string;
  requestId: string;
  policyHash: string;
  /** DNS names and IP addresses the evidence proved for this node (see module doc). */
  dnsNames: string[];
  ipAddresses: string[];
  claims: Claims;
}

export const nodeRecordKey = (cluster: string, nodeName: string): string => `release:node:${cluster}:${nodeName}`;
export const DEFAULT_RENEWAL_WINDOW_DAYS = 400;

const proven = (c: Claims, f: string): boolean => c.identity.proven.includes(f);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The DNS names and addresses `claims` prove for a node named `nodeName` (module doc). */
export function provenAddresses(claims: Claims, nodeName: string): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames = [nodeName];
  const ipAddresses: string[] = [];
  const id = claims.identity;
  if (claims.provider === 'gcp' && id.instanceName && id.zone && id.account && proven(claims, 'instanceName') && proven(claims, 'zone') && proven(claims, 'account')) {
    // Domain-scoped projects (example.com:project) have other DNS names: none is derived for them.
    if (DNS_LABEL.test(id.instanceName) && DNS_LABEL.test(id.zone) && DNS_LABEL.test(id.account)) {
      dnsNames.push(`${id.instanceName}.${id.zone}.c.${id.account}.internal`, `${id.instanceName}.c.${id.account}.internal`);
    }
  }
  const ip = id.extra?.privateIp;
  if (claims.provider === 'aws' && ip && proven(claims, 'extra.privateIp') && /^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    ipAddresses.push(ip);
    const host = `ip-${ip.replaceAll('.', '-')}`;
    if (id.region === 'us-east-1') dnsNames.push(`${host}.ec2.internal`);
    else if (id.region && DNS_LABEL.test(id.region) && proven(claims, 'region')) dnsNames.push(`${host}.${id.region}.compute.internal`);
  }
  return { dnsNames: [...new Set(dnsNames)], ipAddresses };
}

export class NodeRecords {
  constructor(
    private readonly store: StateStore,
    private readonly clock: Clock,
    private readonly windowDays = DEFAULT_RENEWAL_WINDOW_DAYS,
  ) {}

  async put(r: Omit<NodeRecord, 'v' | 'attestedAt' | 'dnsNames' | 'ipAddresses'>): Promise<NodeRecord> {
    const rec: NodeRecord = { v: 1, ...r, attestedAt: this.clock.now().toISOString(), ...provenAddresses(r.claims, r.nodeName) };
    await this.store.set(nodeRecordKey(r.cluster, r.nodeName), JSON.stringify(rec), this.windowDays * 86_400_000);
    return rec;
  }

  async get(cluster: string, nodeName: string): Promise<NodeRecord | null> {
    const raw = await this.store.get(nodeRecordKey(cluster, nodeName));
    if (raw === null) return null;
    try {
      const r = JSON.parse(raw) as NodeRecord;
      return r.v === 1 && r.cluster === cluster && r.nodeName === nodeName ? r : null;
    } catch {
      return null;
    }
  }
}
