/**
 * @module broker/approver/decide
 *
 * The approver's rules: given a CertificateSigningRequest, approve, deny or leave it alone — and
 * why, in a stable CamelCase reason that goes into the CSR's condition and the audit record.
 *
 * certificates.k8s.io/v1 (Kubernetes API reference, "CertificateSigningRequest v1"): the API
 * server fills `spec.username`, `spec.groups` and `spec.uid` from the authenticated requester
 * (they cannot be chosen by the client); `spec.request` is the PEM PKCS#10; `spec.usages` the key
 * usages; `spec.signerName` one of the well-known signers ("Certificate Signing Requests",
 * Kubernetes signers):
 * - `kubernetes.io/kube-apiserver-client-kubelet` — kubelet client certificates. The controller
 *   signs whatever is approved; upstream's approver (kube-controller-manager `csrapproving`)
 *   approves any name for a requester with the `nodeclient` role. Here:
 *   - requester `system:bootstrap:<id>` (a bootstrap token): the token must be one this broker
 *     issued for this cluster, unexpired, not yet used for a CSR, and the CSR must ask for exactly
 *     `CN=system:node:<the node name bound to that token>, O=system:nodes`, no SANs, no other
 *     extensions, kubelet client usages, an allowed key type, a valid self-signature.
 *   - requester `system:node:<name>` (a renewal): same name, same checks, and the node must still
 *     be admitted: its attestation record exists (kept for `renewalWindowDays`) and the policy in
 *     force now still admits the claims it attested with (the re-attestation hook, see
 *     docs/approver.md).
 * - `kubernetes.io/kubelet-serving` — kubelet serving certificates (upstream approves none):
 *   requester `system:node:<name>` asking for its own name, `O=system:nodes`, server usages, and
 *   DNS/IP SANs each proven by the node's evidence or on the cluster's allow-list.
 * Everything else (other signers, other requesters, nodes the broker never admitted, bootstrap
 * tokens of kubeadm or another tool) is left alone, unless `foreignBootstrapTokens: deny`.
 * A bootstrap token that names the broker's own group but is unknown to it is always denied.
 */
import { readCsr, type CsrFacts, type KeyType } from './csr.js';
import { inCidr, parseCidr, parseIp } from '../http/address.js';
import type { TokenState } from '../release/issuer.js';
import type { NodeRecord } from './nodes.js';
import { DEFAULT_GROUP } from '../release/token.js';
import { timingSafeEqualString } from '../../providers/common/ct.js';

export const CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
export const SERVING_SIGNER = 'kubernetes.io/kubelet-serving';
export const NODE_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';
export const BOOTSTRAP_PREFIX = 'system:bootstrap:';

export interface Csr {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; uid?: string; resourceVersion?: string; creationTimestamp?: string };
  spec: {
    request: string;
    signerName: string;
    usages?: string[];
    username?: string;
    uid?: string;
    groups?: string[];
    expirationSeconds?: number;
    extra?: Record<string, string[]>;
  };
  status?: {
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string; lastUpdateTime?: string; lastTransitionTime?: string }>;
    certificate?: string;
  };
}

/** Stable reasons, for the CSR condition and the audit (docs/approver.md lists them). */
export const CsrReasons = {
  // approve
  AttestedNodeClient: 'AttestedNodeClient',
  AttestedNodeRenewal: 'AttestedNodeRenewal',
  AttestedNodeServing: 'AttestedNodeServing',
  // deny
  RequestInvalid: 'RequestInvalid',
  SignatureInvalid: 'SignatureInvalid',
  SubjectInvalid: 'SubjectInvalid',
  NodeNameMismatch: 'NodeNameMismatch',
  SubjectAltNamesNotAllowed: 'SubjectAltNamesNotAllowed',
  ExtensionsNotAllowed: 'ExtensionsNotAllowed',
  UsagesInvalid: 'UsagesInvalid',
  KeyTypeNotAllowed: 'KeyTypeNotAllowed',
  TokenUnknown: 'TokenUnknown',
  TokenOtherCluster: 'TokenOtherCluster',
  TokenExpired: 'TokenExpired',
  TokenSpent: 'TokenSpent',
  ForeignBootstrapToken: 'ForeignBootstrapToken',
  NodeNoLongerAdmitted: 'NodeNoLongerAdmitted',
  AddressNotProven: 'AddressNotProven',
  // leave alone
  NotKubeletSigner: 'NotKubeletSigner',
  NotBrokerRequester: 'NotBrokerRequester',
  NodeNotAttested: 'NodeNotAttested',
  AlreadyDecided: 'AlreadyDecided',
} as const;
export type CsrReason = keyof typeof CsrReasons;

export type Verdict =
  | { action: 'ignore'; reason: CsrReason; message: string }
  | { action: 'approve' | 'deny'; reason: CsrReason; message: string; nodeName?: string; tokenId?: string; kind: 'client' | 'renewal' | 'serving' };

export interface ServingAllowList {
  /** Extra DNS names; `{node}` stands for the node name (e.g. `{node}.nodes.example.com`). */
  dnsNames?: readonly string[];
  /** Extra IP ranges (CIDR) any of this cluster's nodes may put in its serving certificate. */
  ipCidrs?: readonly string[];
}

export interface DecideContext {
  cluster: string;
  now: Date;
  keyTypes: readonly KeyType[];
  foreignBootstrapTokens: 'ignore' | 'deny';
  serving: ServingAllowList;
  tokenState(id: string): Promise<TokenState | null>;
  nodeRecord(nodeName: string): Promise<NodeRecord | null>;
  /** Is this attested node still admitted (policy in force now, renewal window)? null = yes. */
  stillAdmitted(r: NodeRecord): Promise<string | null>;
}

const CLIENT_USAGES = new Set(['digital signature', 'key encipherment', 'client auth']);
const SERVING_USAGES = new Set(['digital signature', 'key encipherment', 'server auth']);
const TOKEN_USER = /^system:bootstrap:([a-z0-9]{6})$/;

export function decided(csr: Csr): 'Approved' | 'Denied' | 'Failed' | null {
  for (const c of csr.status?.conditions ?? []) {
    if (c.status === 'True' && (c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed')) return c.type;
  }
  return null;
}

function usagesProblem(usages: readonly string[] | undefined, allowed: Set<string>, must: string): string | null {
  const u = usages ?? [];
  const bad = u.filter((x) => !allowed.has(x));
  if (bad.length) return `usages ${JSON.stringify(bad)} are not allowed (only ${[...allowed].join(', ')})`;
  if (!u.includes(must) || !u.includes('digital signature')) return `usages must include "digital signature" and "${must}"`;
  return null;
}

/** The checks every kubelet CSR passes, whoever asks: subject, extensions, key, signature. */
function commonProblem(f: CsrFacts, name: string, ctx: DecideContext): { reason: CsrReason; message: string } | null {
  if (!f.signatureValid) return { reason: 'SignatureInvalid', message: 'the request is not signed by its own key' };
  const types = f.subject.map((a) => a.type).sort();
  if (types.length !== 2 || types[0] !== 'CN' || types[1] !== 'O' || f.organizations[0] !== NODES_GROUP) {
    return { reason: 'SubjectInvalid', message: `the subject must be exactly O=${NODES_GROUP}, CN=${NODE_PREFIX}<node name>` };
  }
  if (f.commonName !== NODE_PREFIX + name) return { reason: 'NodeNameMismatch', message: `the CSR asks for ${JSON.stringify(f.commonName)}; this requester may only be ${NODE_PREFIX}${name}` };
  if (f.otherExtensions.length) return { reason: 'ExtensionsNotAllowed', message: `extensions ${f.otherExtensions.join(', ')} are not allowed in a kubelet CSR` };
  if (!ctx.keyTypes.includes(f.keyType as KeyType)) return { reason: 'KeyTypeNotAllowed', message: `key type ${f.keyType} is not allowed (allowed: ${ctx.keyTypes.join(', ')})` };
  return null;
}

/** Is `ip` one of the proven addresses or inside an allowed range (the broker's one IP parser)? */
function addressAllowed(ip: string, proven: readonly string[], cidrs: readonly string[]): boolean {
  const p = parseIp(ip);
  if (!p) return false;
  if (proven.some((x) => {
    const q = parseIp(x);
    return q !== undefined && q.v === p.v && q.bits === p.bits;
  })) return true;
  return cidrs.some((c) => {
    try {
      return inCidr(p, parseCidr(c));
    } catch {
      return false;
    }
  });
}

export async function decide(csr: Csr, ctx: DecideContext): Promise<Verdict> {
  if (decided(csr)) return { action: 'ignore', reason: 'AlreadyDecided', message: `already ${decided(csr)}` };
  const signer = csr.spec.signerName;
  if (signer !== CLIENT_SIGNER && signer !== SERVING_SIGNER) return { action: 'ignore', reason: 'NotKubeletSigner', message: `signer ${signer} is not a kubelet signer` };
  const user = csr.spec.username ?? '';
  const groups = csr.spec.groups ?? [];
  const tokenM = TOKEN_USER.exec(user);
  const isNode = user.startsWith(NODE_PREFIX) && groups.includes(NODES_GROUP);

  if (signer === CLIENT_SIGNER && tokenM) {
    const id = tokenM[1]!;
    const kind = 'client' as const;
    const st = await ctx.tokenState(id);
    const ours = groups.includes(DEFAULT_GROUP);
    if (!st) {
      if (ours) return { action: 'deny', kind, tokenId: id, reason: 'TokenUnknown', message: `bootstrap token ${id} carries the broker's group but was not issued by this broker` };
      if (ctx.foreignBootstrapTokens === 'deny') return { action: 'deny', kind, tokenId: id, reason: 'ForeignBootstrapToken', message: `bootstrap token ${id} was not issued by attest-broker; this cluster admits only attested nodes` };
      return { action: 'ignore', reason: 'ForeignBootstrapToken', message: `bootstrap token ${id} was not issued by this broker` };
    }
    if (!timingSafeEqualString(st.cluster, ctx.cluster)) return { action: 'deny', kind, tokenId: id, reason: 'TokenOtherCluster', message: `bootstrap token ${id} was issued for another cluster` };
    const created = Date.parse(csr.metadata.creationTimestamp ?? '') || ctx.now.getTime();
    if (Date.parse(st.expiresAt) <= created) return { action: 'deny', kind, tokenId: id, nodeName: st.nodeName, reason: 'TokenExpired', message: `bootstrap token ${id} had expired when the CSR was made` };
    if (st.used || (st.csr && st.csr.name !== csr.metadata.name)) {
      return { action: 'deny', kind, tokenId: id, nodeName: st.nodeName, reason: 'TokenSpent', message: `bootstrap token ${id} was already used for ${st.csr ? `CSR ${st.csr.name}` : 'a certificate'}; attest again for a new one` };
    }
    const f = await readCsr(csr.spec.request);
    if (!f) return { action: 'deny', kind, tokenId: id, nodeName: st.nodeName, reason: 'RequestInvalid', message: 'spec.request is not one PEM PKCS#10 certificate request' };
    const p = commonProblem(f, st.nodeName, ctx);
    if (p) return { action: 'deny', kind, tokenId: id, nodeName: st.nodeName, ...p };
    if (f.dnsNames.length || f.ipAddresses.length || f.otherNames.length) return { action: 'deny', kind, tokenId: id, nodeName: st.nodeName, reason: 'SubjectAltNamesNotAllowed', message: 'a kubelet client certificate carries no subject alternative names' };
    const u = usagesProblem(csr.spec.usages, CLIENT_USAGES, 'client auth');
    if (u) return { action: 'deny', kind, tokenId: id, nodeName: st.nodeName, reason: 'UsagesInvalid', message: u };
    return { action: 'approve', kind, tokenId: id, nodeName: st.nodeName, reason: 'AttestedNodeClient', message: `attested node ${st.nodeName} (bootstrap token ${id}, ${st.provider} instance ${st.instanceId})` };
  }

  if (!isNode) return { action: 'ignore', reason: 'NotBrokerRequester', message: `requester ${user} is neither a broker bootstrap token nor a node` };
  const name = user.slice(NODE_PREFIX.length);
  const kind = signer === CLIENT_SIGNER ? ('renewal' as const) : ('serving' as const);
  const rec = await ctx.nodeRecord(name);
  if (!rec) return { action: 'ignore', reason: 'NodeNotAttested', message: `node ${name} was not admitted by this broker (or its record expired)` };
  const f = await readCsr(csr.spec.request);
  if (!f) return { action: 'deny', kind, nodeName: name, reason: 'RequestInvalid', message: 'spec.request is not one PEM PKCS#10 certificate request' };
  const p = commonProblem(f, name, ctx);
  if (p) return { action: 'deny', kind, nodeName: name, ...p };
  if (kind === 'renewal') {
    if (f.dnsNames.length || f.ipAddresses.length || f.otherNames.length) return { action: 'deny', kind, nodeName: name, reason: 'SubjectAltNamesNotAllowed', message: 'a kubelet client certificate carries no subject alternative names' };
    const u = usagesProblem(csr.spec.usages, CLIENT_USAGES, 'client auth');
    if (u) return { action: 'deny', kind, nodeName: name, reason: 'UsagesInvalid', message: u };
  } else {
    if (f.otherNames.length) return { action: 'deny', kind, nodeName: name, reason: 'SubjectAltNamesNotAllowed', message: `SAN types ${[...new Set(f.otherNames)].join(', ')} are not allowed; only DNS names and IP addresses` };
    if (!f.dnsNames.length && !f.ipAddresses.length) return { action: 'deny', kind, nodeName: name, reason: 'SubjectAltNamesNotAllowed', message: 'a serving certificate needs at least one DNS name or IP address' };
    const u = usagesProblem(csr.spec.usages, SERVING_USAGES, 'server auth');
    if (u) return { action: 'deny', kind, nodeName: name, reason: 'UsagesInvalid', message: u };
    const dnsOk = new Set([...rec.dnsNames, ...(ctx.serving.dnsNames ?? []).map((d) => d.replaceAll('{node}', name))]);
    const badDns = f.dnsNames.filter((d) => !dnsOk.has(d.toLowerCase()));
    const badIp = f.ipAddresses.filter((i) => !addressAllowed(i, rec.ipAddresses, ctx.serving.ipCidrs ?? []));
    if (badDns.length || badIp.length) {
      return {
        action: 'deny',
        kind,
        nodeName: name,
        reason: 'AddressNotProven',
        message: `not proven by the node's evidence nor allowed for this cluster: ${[...badDns, ...badIp].join(', ')} (proven: ${[...rec.dnsNames, ...rec.ipAddresses].join(', ') || 'none'})`,
      };
    }
  }
  const why = await ctx.stillAdmitted(rec);
  if (why) return { action: 'deny', kind, nodeName: name, reason: 'NodeNoLongerAdmitted', message: why };
  return kind === 'renewal'
    ? { action: 'approve', kind, nodeName: name, reason: 'AttestedNodeRenewal', message: `node ${name} attested at ${rec.attestedAt} and is still admitted` }
    : { action: 'approve', kind, nodeName: name, reason: 'AttestedNodeServing', message: `node ${name}: every name and address is proven (${[...f.dnsNames, ...f.ipAddresses].join(', ')})` };
}
