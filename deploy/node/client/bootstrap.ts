/**
 * @module deploy/node/client/bootstrap
 *
 * The files a bootstrap path needs besides the bootstrap kubeconfig (docs/join.md, "Bootstrap
 * paths"), rendered from an opened and checked release:
 * - a KubeletConfiguration drop-in for the kubelet's `--config-dir` (rotateCertificates and
 *   serverTLSBootstrap: the serving certificate comes through a CSR the broker's approver
 *   checks against the addresses the evidence proved);
 * - a kubeadm `JoinConfiguration` (v1beta4) with FILE discovery: the broker's tokens carry no
 *   `usage-bootstrap-signing`, so kubeadm's token discovery (a JWS over kube-public/cluster-info)
 *   cannot work with them. The bootstrap kubeconfig carries the cluster CA, received over the
 *   broker's pinned channel, and is the discovery file; the token is the TLS bootstrap token;
 * - the node name, bare, with a newline (for the kubelet's `--hostname-override`).
 *
 * The text is built from fixed templates, key order included, so that the shell client
 * (deploy/node/attest-join.sh, printf) writes exactly the same bytes for the same release. Every
 * value is checked against a narrow character set first and written double-quoted, so nothing
 * from the release can add YAML structure or be read as another type (a token of digits and a
 * dot would otherwise be a float, a node named `true` a boolean).
 */
import { JoinCodes, joinError } from './codes.js';
import type { Release } from './release.js';

/** Kubernetes' DNS-1123 subdomain (what a Node name must be). */
export const DNS1123_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A bootstrap token, `<id>.<secret>`. */
export const BOOTSTRAP_TOKEN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
/** What this client accepts as the API server URL it records: https, a host name or IP, a port, a plain path. */
export const HTTPS_URL = /^https:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(\/[A-Za-z0-9._~/-]*)?$/;
/** Absolute paths this client writes into YAML: no spaces, quotes, colons or other YAML syntax. */
export const YAML_SAFE_PATH = /^\/[A-Za-z0-9._/+-]*$/;

export const KUBELET_DROPIN_SUFFIX = '.conf';

/** The KubeletConfiguration drop-in (the same for every node). */
export function kubeletConfigYaml(): string {
  return [
    '# Written by attest-join: a drop-in for the kubelet\'s --config-dir (Kubernetes >= 1.30).',
    '# The kubelet rotates its client certificate and asks for its serving certificate with a CSR,',
    '# which the attest-broker approver checks against the addresses this node\'s evidence proved.',
    'apiVersion: kubelet.config.k8s.io/v1beta1',
    'kind: KubeletConfiguration',
    'rotateCertificates: true',
    'serverTLSBootstrap: true',
    '',
  ].join('\n');
}

export interface KubeadmJoinOptions {
  /** The bootstrap kubeconfig (`--out`): kubeadm's discovery file. */
  kubeconfigPath: string;
  /** The kubelet drop-in directory, when `--kubelet-config-out` is also written. */
  kubeletConfigDir?: string;
}

function mustMatch(v: string, re: RegExp, what: string): string {
  if (!re.test(v)) throw joinError(JoinCodes.RELEASE_INVALID, `release ${what} cannot be written into a configuration file`);
  return v;
}

/** A kubeadm v1beta4 JoinConfiguration for `kubeadm join --config FILE`. Contains the token. */
export function kubeadmJoinYaml(r: Release, o: KubeadmJoinOptions): string {
  const name = mustMatch(r.nodeName, DNS1123_SUBDOMAIN, 'nodeName');
  const token = mustMatch(r.bootstrapToken, BOOTSTRAP_TOKEN, 'bootstrapToken');
  const api = mustMatch(r.apiServer, HTTPS_URL, 'apiServer');
  const hashes = (r.caCertHashes ?? []).map((h) => mustMatch(h, /^sha256:[0-9a-f]{64}$/, 'caCertHashes'));
  for (const p of [o.kubeconfigPath, o.kubeletConfigDir]) {
    if (p !== undefined && !YAML_SAFE_PATH.test(p)) throw joinError(JoinCodes.USAGE, `${p}: paths written into the kubeadm configuration must be absolute and made of [A-Za-z0-9._/+-]`);
  }
  const lines = [
    '# Written by attest-join: kubeadm join --config <this file>. It holds the bootstrap token:',
    '# keep it 0600 and delete it after the join.',
    '# Discovery is by file: the bootstrap kubeconfig carries the cluster CA, which attest-join',
    '# received over the broker\'s pinned channel. Token discovery cannot work: the broker\'s',
    '# tokens do not carry usage-bootstrap-signing (they cannot sign kube-public/cluster-info).',
    `# API server (from the release): ${api}`,
    '# CA certificate hashes (from the release, for operators; file discovery does not use them):',
    ...(hashes.length > 0 ? hashes.map((h) => `#   ${h}`) : ['#   (none: the API server certificate is publicly trusted)']),
    'apiVersion: kubeadm.k8s.io/v1beta4',
    'kind: JoinConfiguration',
    'discovery:',
    '  file:',
    `    kubeConfigPath: "${o.kubeconfigPath}"`,
    `  tlsBootstrapToken: "${token}"`,
    'nodeRegistration:',
    `  name: "${name}"`,
  ];
  if (o.kubeletConfigDir !== undefined) {
    lines.push('  kubeletExtraArgs:', '  - name: "config-dir"', `    value: "${o.kubeletConfigDir}"`);
  }
  lines.push('');
  return lines.join('\n');
}

/** The node name file: the bare name and a newline. */
export function nodeNameFile(r: Release): string {
  return `${mustMatch(r.nodeName, DNS1123_SUBDOMAIN, 'nodeName')}\n`;
}
