/**
 * @module broker/release/token
 *
 * Kubernetes bootstrap tokens, exactly as `kubeadm token create` makes them.
 *
 * Format (Kubernetes docs, "Authenticating with Bootstrap Tokens",
 * https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/ — "Token Format" and
 * "Bootstrap Token Secret Format"):
 * - token `[a-z0-9]{6}.[a-z0-9]{16}`: the first part is the public token id, the second the secret;
 * - a Secret named `bootstrap-token-<token id>` in `kube-system`, type `bootstrap.kubernetes.io/token`;
 * - data keys `token-id`, `token-secret`, `description`, `expiration` (RFC 3339, absolute UTC),
 *   `usage-bootstrap-authentication: "true"`, `auth-extra-groups` (comma-separated, each matching
 *   `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`).
 *
 * kubeadm (`kubeadm token create --usages authentication --groups … --description … --ttl …`)
 * writes these keys base64-encoded under `data` (not `stringData`), with no labels or
 * annotations: so do we. We deliberately do not set `usage-bootstrap-signing`: the node receives
 * the cluster CA and `caCertHashes` in its sealed release, so it never needs to verify a signed
 * `cluster-info` ConfigMap, and a token that cannot sign is one privilege fewer.
 *
 * Randomness: each character is drawn from `crypto.getRandomValues` by rejection sampling (bytes
 * ≥ 252 = 7·36 are discarded), so every character of the 36-letter alphabet is exactly equally
 * likely — no modulo bias. 16 secret characters carry log2(36^16) ≈ 82.7 bits.
 */
import { parsePemCertificates } from '../../providers/common/x509.js';
import { sha256 } from '../../providers/common/digest.js';
import { toBase64, toHex } from '../../providers/common/encoding.js';
import { malformed, configError } from '../../providers/common/errors.js';
import { stringify } from 'yaml';

export const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
export const TOKEN_ID_RE = /^[a-z0-9]{6}$/;
/** Kubernetes' own validation of extra groups (k8s.io/cluster-bootstrap/token/api, BootstrapGroupPattern). */
export const BOOTSTRAP_GROUP_RE = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;
export const DEFAULT_GROUP = 'system:bootstrappers:attest-broker';
export const SECRET_TYPE = 'bootstrap.kubernetes.io/token';
export const TOKEN_NAMESPACE = 'kube-system';

/** `n` characters from the token alphabet, uniformly, by rejection sampling. */
export function randomTokenChars(n: number, rng: (b: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b)): string {
  let out = '';
  const limit = 252; // largest multiple of 36 that fits in a byte
  while (out.length < n) {
    const buf = rng(new Uint8Array(2 * (n - out.length)));
    for (const b of buf) {
      if (b >= limit) continue;
      out += TOKEN_ALPHABET[b % 36];
      if (out.length === n) break;
    }
  }
  return out;
}

export interface BootstrapToken {
  id: string;
  secret: string;
  /** `<id>.<secret>` */
  value: string;
}

export function generateToken(): BootstrapToken {
  const id = randomTokenChars(6);
  const secret = randomTokenChars(16);
  return { id, secret, value: `${id}.${secret}` };
}

export function parseToken(value: string): BootstrapToken {
  const m = TOKEN_RE.exec(value);
  if (!m) throw malformed('TOKEN_MALFORMED', 'not a bootstrap token');
  return { id: m[1]!, secret: m[2]!, value };
}

export function secretName(tokenId: string): string {
  return `bootstrap-token-${tokenId}`;
}

/** RFC 3339 UTC, whole seconds (what kubeadm writes: time.Format(time.RFC3339)). */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface SecretSpec {
  token: BootstrapToken;
  expiresAt: Date;
  /** Extra groups besides the default group; each must match BOOTSTRAP_GROUP_RE. */
  extraGroups: readonly string[];
  description: string;
}

export interface KubeSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; resourceVersion?: string; creationTimestamp?: string; uid?: string };
  type: string;
  data: Record<string, string>;
}

/** At most this many extra groups per token (a policy listing more is a configuration error). */
export const MAX_EXTRA_GROUPS = 16;

export function authGroups(extra: readonly string[]): string[] {
  if (extra.length > MAX_EXTRA_GROUPS) throw configError('TOKEN_GROUP_INVALID', `at most ${MAX_EXTRA_GROUPS} extra groups`);
  const groups = [DEFAULT_GROUP];
  for (const g of extra) {
    if (!BOOTSTRAP_GROUP_RE.test(g)) throw configError('TOKEN_GROUP_INVALID', `extra group ${JSON.stringify(g)} must match system:bootstrappers:…`);
    if (!groups.includes(g)) groups.push(g);
  }
  return groups;
}

/** The Secret object `kubeadm token create` would create for this token. */
export function bootstrapSecret(s: SecretSpec): KubeSecret {
  const enc = (v: string): string => toBase64(new TextEncoder().encode(v));
  const description = s.description.replace(/[\r\n]/g, ' ').slice(0, 256);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName(s.token.id), namespace: TOKEN_NAMESPACE },
    type: SECRET_TYPE,
    data: {
      'auth-extra-groups': enc(authGroups(s.extraGroups).join(',')),
      description: enc(description),
      expiration: enc(rfc3339(s.expiresAt)),
      'token-id': enc(s.token.id),
      'token-secret': enc(s.token.secret),
      'usage-bootstrap-authentication': enc('true'),
    },
  };
}

/**
 * `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo DER — what kubeadm computes for
 * `--discovery-token-ca-cert-hash` (cmd/kubeadm/app/util/pubkeypin: "sha256" over
 * `x509.Certificate.RawSubjectPublicKeyInfo`).
 */
export async function caCertHashes(caPem: string): Promise<string[]> {
  const certs = parsePemCertificates(caPem, 'cluster CA', 8);
  const out: string[] = [];
  for (const c of certs) out.push(`sha256:${toHex(await sha256(new Uint8Array(c.publicKey.rawData)))}`);
  return out;
}

/**
 * A bootstrap kubeconfig for kubelet `--bootstrap-kubeconfig`: server, CA data, token. Without a
 * CA the kubelet verifies the server against its system roots (TLS is never skipped).
 */
export function bootstrapKubeconfig(o: { server: string; caPem?: string; token: string; clusterName?: string }): string {
  const cluster = o.clusterName ?? 'kubernetes';
  const c: Record<string, string> = { server: o.server };
  if (o.caPem) c['certificate-authority-data'] = toBase64(new TextEncoder().encode(o.caPem));
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: c }],
    users: [{ name: 'tls-bootstrap-token-user', user: { token: o.token } }],
    contexts: [{ name: 'tls-bootstrap-token-user@' + cluster, context: { cluster, user: 'tls-bootstrap-token-user' } }],
    'current-context': 'tls-bootstrap-token-user@' + cluster,
    preferences: {},
  });
}
