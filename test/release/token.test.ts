/**
 * Bootstrap token format and the Secret object, field by field against the documented format
 * (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/#bootstrap-token-secret-format)
 * and kubeadm's encoding (`data`, base64; `expiration` RFC 3339 UTC; groups comma-joined).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import {
  BOOTSTRAP_GROUP_RE,
  TOKEN_ALPHABET,
  TOKEN_RE,
  authGroups,
  bootstrapKubeconfig,
  bootstrapSecret,
  caCertHashes,
  generateToken,
  parseToken,
  randomTokenChars,
} from '../../broker/release/token.js';
import { makeTestPki } from '../servers/tls.js';

const dec = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

describe('bootstrap token generation', () => {
  it('has the [a-z0-9]{6}.[a-z0-9]{16} form and does not repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = generateToken();
      expect(t.value).toMatch(TOKEN_RE);
      expect(parseToken(t.value)).toEqual(t);
      seen.add(t.value);
    }
    expect(seen.size).toBe(2000);
  });

  it('maps bytes without modulo bias: every byte value once gives each letter exactly 7 times', () => {
    let fed = false;
    const rng = (b: Uint8Array): Uint8Array => {
      // First call: 0..255 in order (covers the whole byte range once); 4 bytes ≥ 252 must be skipped.
      if (!fed) {
        for (let i = 0; i < b.length; i++) b[i] = i % 256;
        fed = true;
      }
      return b;
    };
    const s = randomTokenChars(252, rng);
    const counts = new Map<string, number>();
    for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(36);
    for (const c of TOKEN_ALPHABET) expect(counts.get(c)).toBe(7);
  });

  it('rejects bytes 252..255 rather than folding them onto a..d', () => {
    const queue = [252, 253, 254, 255, 0];
    const rng = (b: Uint8Array): Uint8Array => {
      for (let i = 0; i < b.length; i++) b[i] = queue.shift() ?? 1;
      return b;
    };
    expect(randomTokenChars(1, rng)).toBe('a');
  });

  it.each(['abcdef.0123456789abcde', 'ABCDEF.0123456789abcdef', 'abcdef0123456789abcdef', 'abcde.0123456789abcdefg', ' abcdef.0123456789abcdef'])('parseToken rejects %j', (v) => {
    expect(() => parseToken(v)).toThrowError(expect.objectContaining({ code: 'TOKEN_MALFORMED' }));
  });
});

describe('bootstrap token Secret (kubeadm format)', () => {
  const token = { id: 'abc123', secret: '0123456789abcdef', value: 'abc123.0123456789abcdef' };
  const secret = bootstrapSecret({
    token,
    expiresAt: new Date('2026-11-27T18:10:00.000Z'),
    extraGroups: ['system:bootstrappers:attest-broker:aws', 'system:bootstrappers:attest-broker'],
    description: 'attest-broker: aws instance i-0123 as node n1\nforged',
  });

  it('has exactly the documented top-level shape', () => {
    expect(Object.keys(secret).sort()).toEqual(['apiVersion', 'data', 'kind', 'metadata', 'type']);
    expect(secret.apiVersion).toBe('v1');
    expect(secret.kind).toBe('Secret');
    expect(secret.metadata).toEqual({ name: 'bootstrap-token-abc123', namespace: 'kube-system' });
    expect(secret.type).toBe('bootstrap.kubernetes.io/token');
  });

  it('has exactly the documented data keys, base64 like kubeadm', () => {
    expect(Object.keys(secret.data).sort()).toEqual(
      ['auth-extra-groups', 'description', 'expiration', 'token-id', 'token-secret', 'usage-bootstrap-authentication'].sort(),
    );
    for (const v of Object.values(secret.data)) expect(Buffer.from(dec(v)).toString('base64')).toBe(v);
    expect(dec(secret.data['token-id'])).toBe('abc123');
    expect(dec(secret.data['token-secret'])).toBe('0123456789abcdef');
    expect(dec(secret.data.expiration)).toBe('2026-11-27T18:10:00Z');
    expect(dec(secret.data['usage-bootstrap-authentication'])).toBe('true');
    expect(secret.data['usage-bootstrap-signing']).toBeUndefined();
    // default group first, duplicates folded, comma-separated without spaces
    expect(dec(secret.data['auth-extra-groups'])).toBe('system:bootstrappers:attest-broker,system:bootstrappers:attest-broker:aws');
    for (const g of dec(secret.data['auth-extra-groups']).split(',')) expect(g).toMatch(BOOTSTRAP_GROUP_RE);
    // one line, names the instance
    expect(dec(secret.data.description)).toBe('attest-broker: aws instance i-0123 as node n1 forged');
  });

  it.each(['system:masters', 'system:bootstrappers:', 'system:bootstrappers:UPPER', 'system:bootstrappers:x,system:masters', 'system:bootstrappers:a-'])(
    'refuses extra group %j',
    (g) => {
      expect(() => authGroups([g])).toThrowError(expect.objectContaining({ code: 'TOKEN_GROUP_INVALID' }));
    },
  );
});

describe('caCertHashes and the bootstrap kubeconfig', () => {
  const pki = makeTestPki();

  it('equals the kubeadm documented openssl pipeline (sha256 of the SPKI DER)', async () => {
    // kubeadm join docs: openssl x509 -pubkey -in ca.crt | openssl rsa|pkey -pubin -outform der | openssl dgst -sha256 -hex
    const pub = execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', pki.caFile]);
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
    const hex = execFileSync('openssl', ['dgst', '-sha256', '-hex'], { input: der }).toString().trim().split(' ').pop();
    expect(await caCertHashes(pki.caPem)).toEqual([`sha256:${hex}`]);
  });

  it('kubeconfig carries server, CA data and token and nothing else', () => {
    const y = bootstrapKubeconfig({ server: 'https://10.0.0.1:6443', caPem: pki.caPem, token: 'abc123.0123456789abcdef', clusterName: 'prod' });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walking a parsed YAML document
    const doc = parse(y) as Record<string, any>;
    expect(doc.kind).toBe('Config');
    expect(doc.clusters[0].cluster.server).toBe('https://10.0.0.1:6443');
    expect(dec(doc.clusters[0].cluster['certificate-authority-data'])).toBe(pki.caPem);
    expect(doc.users[0].user).toEqual({ token: 'abc123.0123456789abcdef' });
    expect(doc['current-context']).toBe(doc.contexts[0].name);
  });
});
