/**
 * A kubelet-like client for approver tests: keys and PKCS#10 requests made by the real `openssl`
 * (as the kubelet's crypto/x509 would), CSR objects posted to the test API server over HTTPS
 * with a bootstrap token or a client certificate, and the signed certificate read back.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { RbacObject } from '../servers/kube-apiserver.js';

export interface CsrSpecInput {
  subject: string;
  key?: 'ec' | 'ec384' | 'rsa2048' | 'rsa1024';
  dns?: string[];
  ips?: string[];
  emails?: string[];
  extraExt?: string[];
}

/** A key and PEM CSR from openssl; `subject` in openssl's `/O=…/CN=…` form. */
export function makeCsr(s: CsrSpecInput): { csrPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ab-csr-'));
  try {
    const keyArgs =
      s.key === 'rsa2048' ? ['-newkey', 'rsa:2048'] : s.key === 'rsa1024' ? ['-newkey', 'rsa:1024'] : ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${s.key === 'ec384' ? 'P-384' : 'P-256'}`];
    const san = [...(s.dns ?? []).map((d) => `DNS:${d}`), ...(s.ips ?? []).map((i) => `IP:${i}`), ...(s.emails ?? []).map((e) => `email:${e}`)];
    const ext = [...(san.length ? ['-addext', `subjectAltName=${san.join(',')}`] : []), ...(s.extraExt ?? []).flatMap((e) => ['-addext', e])];
    execFileSync('openssl', ['req', '-new', ...keyArgs, '-nodes', '-keyout', 'k.pem', '-out', 'r.pem', '-subj', s.subject, ...ext], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    return { csrPem: readFileSync(join(dir, 'r.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'k.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Credential {
  token?: string;
  cert?: string;
  key?: string;
}

export function kubeCall(url: string, ca: string, cred: Credential, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      url + path,
      {
        method,
        ca,
        ...(cred.cert ? { cert: cred.cert, key: cred.key } : {}),
        headers: { accept: 'application/json', ...(cred.token ? { authorization: `Bearer ${cred.token}` } : {}), ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const t = Buffer.concat(chunks).toString('utf8');
          let j: Record<string, unknown> = {};
          try {
            j = JSON.parse(t) as Record<string, unknown>;
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, json: j });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

export const CLIENT_USAGES = ['digital signature', 'client auth'];
export const SERVING_USAGES = ['digital signature', 'server auth'];

/** Posts a CSR object as the kubelet does (generateName, the signer, the usages). */
export async function postCsr(url: string, ca: string, cred: Credential, csrPem: string, signerName: string, usages: string[]): Promise<{ status: number; name: string; json: Record<string, unknown> }> {
  const r = await kubeCall(url, ca, cred, 'POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: 'csr-' },
    spec: { request: Buffer.from(csrPem).toString('base64'), signerName, usages },
  });
  return { status: r.status, name: ((r.json.metadata ?? {}) as { name?: string }).name ?? '', json: r.json };
}

/** Polls until `pred` holds (the approver acts on watch events, asynchronously). */
export async function until<T>(f: () => Promise<T> | T, pred: (v: T) => boolean, ms = 15_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The RBAC objects of a rendered manifest file (e.g. deploy/kubernetes/base/rbac.yaml). */
export function rbacFrom(file: string): RbacObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJSON() as RbacObject | null)
    .filter((o): o is RbacObject => !!o && ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'].includes(o.kind));
}

export const APPROVER_SA = { username: 'system:serviceaccount:attest-broker:attest-broker', groups: ['system:serviceaccounts', 'system:serviceaccounts:attest-broker'] };

export function kubeconfigFor(server: string, caPem: string, cred: Credential): string {
  const user = cred.token
    ? `{token: "${cred.token}"}`
    : `{client-certificate-data: ${Buffer.from(cred.cert!).toString('base64')}, client-key-data: ${Buffer.from(cred.key!).toString('base64')}}`;
  return `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "${server}", certificate-authority-data: ${Buffer.from(caPem).toString('base64')}}
users:
- name: u
  user: ${user}
contexts:
- name: test
  context: {cluster: test, user: u}
current-context: test
`;
}

export function writeKubeconfig(dir: string, name: string, server: string, caPem: string, cred: Credential): string {
  const f = join(dir, name);
  writeFileSync(f, kubeconfigFor(server, caPem, cred), { mode: 0o600 });
  return f;
}
