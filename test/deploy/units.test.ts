/**
 * Pure pieces of the join client: durations, Retry-After, backoff bounds, the binding
 * (RFC 7638 thumbprint cross-checked by hand), release checks, activation parsing, pins.
 */
import { createHash } from 'node:crypto';
import { CompactEncrypt, generateKeyPair, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { credentialFile, parseActivation } from '../../deploy/node/client/activation.js';
import { computeBinding, createEphemeralKey } from '../../deploy/node/client/binding.js';
import { JoinCodes, exitStatusFor, joinError } from '../../deploy/node/client/codes.js';
import { parsePin } from '../../deploy/node/client/http.node.js';
import { kubeadmJoinYaml, kubeletConfigYaml, nodeNameFile } from '../../deploy/node/client/bootstrap.js';
import { openRelease, ReleaseSchema, type Release } from '../../deploy/node/client/release.js';
import { backoffDelay, parseDuration, parseRetryAfter } from '../../deploy/node/client/retry.js';

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};
const codeOfAsync = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code,
  );

describe('durations and Retry-After', () => {
  it.each([
    ['300s', 300_000],
    ['5m', 300_000],
    ['1m30s', 90_000],
    ['1500ms', 1500],
    ['2h', 7_200_000],
    ['45', 45_000],
  ])('parses %s', (s, ms) => expect(parseDuration(s)).toBe(ms));
  it.each(['', 's', '5x', '-5s', '5s junk', '0s'])('rejects %j as JOIN_USAGE', (s) => expect(codeOf(() => parseDuration(s))).toBe(JoinCodes.USAGE));
  it('reads delta-seconds and HTTP-dates, caps at an hour, ignores junk', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('999999', now)).toBe(3_600_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
  it('backoff stays within [retryAfter, max(retryAfter, min(cap, base·2^n))]', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 0.999999, noNaN: true }), fc.nat(60_000), (n, r, ra) => {
        const d = backoffDelay(n, { baseMs: 500, capMs: 15_000 }, r, ra);
        expect(d).toBeGreaterThanOrEqual(ra);
        expect(d).toBeLessThanOrEqual(Math.max(ra, Math.min(15_000, 500 * 2 ** n)));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('binding (protocol §2)', () => {
  it('is SHA-256(nonce ‖ RFC 7638 thumbprint), thumbprint checked against a hand-built canonical JWK', async () => {
    const k = await createEphemeralKey();
    const canon = `{"crv":"P-256","kty":"EC","x":"${k.publicJwk.x}","y":"${k.publicJwk.y}"}`;
    expect(Buffer.from(k.thumbprint).equals(createHash('sha256').update(canon).digest())).toBe(true);
    const nonce = new Uint8Array(32).fill(9);
    const b = await computeBinding(nonce, k);
    expect(Buffer.from(b).equals(createHash('sha256').update(Buffer.concat([nonce, k.thumbprint])).digest())).toBe(true);
    expect(Buffer.from(await computeBinding(nonce)).equals(Buffer.from(nonce))).toBe(true);
    expect((await codeOfAsync(computeBinding(new Uint8Array(31))))).toBe(JoinCodes.BAD_RESPONSE);
  });
  it('keeps the private key non-extractable', async () => {
    const k = await createEphemeralKey();
    expect(k.privateKey.extractable).toBe(false);
    expect(Object.keys(k.publicJwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
  });
});

describe('release', () => {
  const base = {
    nodeName: 'n1',
    expiresAt: '2030-01-01T00:00:00Z',
    bootstrapToken: 'abcdef.0123456789abcdef',
    kubeconfig: 'users: [{user: {token: abcdef.0123456789abcdef}}]',
    apiServer: 'https://k:6443',
    caCertHashes: ['sha256:' + 'a'.repeat(64)],
  };
  const now = Date.parse('2029-01-01T00:00:00Z');
  const seal = async (obj: unknown, pub: CryptoKey | Uint8Array, alg = 'ECDH-ES+A256KW', enc = 'A256GCM'): Promise<string> =>
    new CompactEncrypt(new TextEncoder().encode(JSON.stringify(obj))).setProtectedHeader({ alg, enc }).encrypt(pub);

  it('opens a JWE sealed to the ephemeral key', async () => {
    const k = await createEphemeralKey();
    const pub = await importJWK(k.publicJwk, 'ECDH-ES+A256KW');
    const r = await openRelease(await seal(base, pub as CryptoKey), k.privateKey, now);
    expect(r.nodeName).toBe('n1');
  });

  it.each([
    ['another algorithm (ECDH-ES direct)', async (pub: CryptoKey) => seal(base, pub, 'ECDH-ES', 'A256GCM'), JoinCodes.RELEASE_INVALID],
    ['another enc (A128GCM)', async (pub: CryptoKey) => seal(base, pub, 'ECDH-ES+A256KW', 'A128GCM'), JoinCodes.RELEASE_INVALID],
    ['expired', async (pub: CryptoKey) => seal({ ...base, expiresAt: '2020-01-01T00:00:00Z' }, pub), JoinCodes.RELEASE_INVALID],
    ['token not in kubeconfig', async (pub: CryptoKey) => seal({ ...base, kubeconfig: 'x' }, pub), JoinCodes.RELEASE_INVALID],
    ['bad token shape', async (pub: CryptoKey) => seal({ ...base, bootstrapToken: 'ABC.def' }, pub), JoinCodes.RELEASE_INVALID],
    ['malformed caCertHashes', async (pub: CryptoKey) => seal({ ...base, caCertHashes: ['md5:00'] }, pub), JoinCodes.RELEASE_INVALID],
    ['disk key not base64url', async (pub: CryptoKey) => seal({ ...base, diskKey: { key: '!!', wrapped: 'AA' } }, pub), JoinCodes.RELEASE_INVALID],
  ])('refuses %s', async (_name, make, code) => {
    const k = await createEphemeralKey();
    const pub = (await importJWK(k.publicJwk, 'ECDH-ES+A256KW')) as CryptoKey;
    expect(await codeOfAsync(openRelease(await make(pub), k.privateKey, now))).toBe(code);
  });

  it('refuses a JWE for another key, a flipped ciphertext byte, and unsealed-after-key', async () => {
    const k = await createEphemeralKey();
    const other = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
    const jweOther = await seal(base, other.publicKey);
    expect(await codeOfAsync(openRelease(jweOther, k.privateKey, now))).toBe(JoinCodes.RELEASE_INVALID);
    const pub = (await importJWK(k.publicJwk, 'ECDH-ES+A256KW')) as CryptoKey;
    const parts = (await seal(base, pub)).split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0] = ct[0]! ^ 1;
    parts[3] = ct.toString('base64url');
    expect(await codeOfAsync(openRelease(parts.join('.'), k.privateKey, now))).toBe(JoinCodes.RELEASE_INVALID);
    expect(await codeOfAsync(openRelease(base, k.privateKey, now))).toBe(JoinCodes.RELEASE_NOT_SEALED);
    expect(await codeOfAsync(openRelease(await seal(base, pub), undefined, now))).toBe(JoinCodes.RELEASE_INVALID);
    expect((await openRelease(base, undefined, now)).nodeName).toBe('n1');
    // The echoed nonce must be one of this attempt's.
    expect((await openRelease({ ...base, nonce: 'AAAA' }, undefined, now, ['BBBB', 'AAAA'])).nodeName).toBe('n1');
    expect(await codeOfAsync(openRelease({ ...base, nonce: 'CCCC' }, undefined, now, ['BBBB', 'AAAA']))).toBe(JoinCodes.RELEASE_INVALID);
  });
});

describe('activation and pins', () => {
  const tpm2b = (n: number): Buffer => {
    const b = Buffer.alloc(2 + n, 7);
    b.writeUInt16BE(n);
    return b;
  };
  const file = (id = tpm2b(68), sec = tpm2b(256), hdr = Buffer.from([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1])): string => Buffer.concat([hdr, id, sec]).toString('base64url');
  const ID = 'a1b2c3d4e5f6a7b8';
  it('takes the tpm2-tools credential file, or builds it from the two TPM2Bs', () => {
    const a = parseActivation({ activation: { id: ID, credential: file(), expiresInSeconds: 120 } });
    expect(Buffer.from(a.credentialFile).toString('base64url')).toBe(file());
    const b = parseActivation({ activation: { id: ID, credentialBlob: tpm2b(68).toString('base64url'), encryptedSecret: tpm2b(256).toString('base64url') } });
    expect(Buffer.from(b.credentialFile).equals(Buffer.from(credentialFile(tpm2b(68), tpm2b(256))))).toBe(true);
    expect(Buffer.from(b.credentialFile).toString('base64url')).toBe(file());
  });
  it.each([
    ['no member', {}],
    ['no id', { activation: { credential: file() } }],
    ['short id', { activation: { id: 'x', credential: file() } }],
    ['bad magic', { activation: { id: ID, credential: file(undefined, undefined, Buffer.from([0xba, 0xdc, 0xc0, 0xdf, 0, 0, 0, 1])) } }],
    ['bad version', { activation: { id: ID, credential: file(undefined, undefined, Buffer.from([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 2])) } }],
    ['size lies', { activation: { id: ID, credential: file(Buffer.from([0, 90, 1])) } }],
    ['trailing bytes', { activation: { id: ID, credential: file() + 'AA' } }],
    ['missing secret TPM2B', { activation: { id: ID, credential: Buffer.concat([Buffer.from([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1]), tpm2b(4)]).toString('base64url') } }],
    ['not base64url', { activation: { id: ID, credential: '+/==' } }],
    ['too big', { activation: { id: ID, credentialBlob: tpm2b(2000).toString('base64url'), encryptedSecret: tpm2b(4).toString('base64url') } }],
  ])('refuses %s with JOIN_ACTIVATION_INVALID', (_n, p) => {
    expect(codeOf(() => parseActivation(p as Record<string, unknown>))).toBe(JoinCodes.ACTIVATION_INVALID);
  });
  it('truncation sweep: every prefix of the credential file is refused', () => {
    const full = Buffer.from(file(), 'base64url');
    for (let n = 0; n < full.length; n++) {
      expect(codeOf(() => parseActivation({ activation: { id: ID, credential: full.subarray(0, n).toString('base64url') } }))).toBe(JoinCodes.ACTIVATION_INVALID);
    }
  });
  it('parses pins strictly', () => {
    expect(parsePin('sha256:' + 'AB'.repeat(32))).toHaveLength(32);
    for (const bad of ['sha256:' + 'a'.repeat(63), 'sha384:' + 'a'.repeat(64), 'a'.repeat(64), 'sha256:' + 'g'.repeat(64)]) {
      expect(codeOf(() => parsePin(bad))).toBe(JoinCodes.USAGE);
    }
  });
  it('maps failures to exit statuses', () => {
    expect(exitStatusFor(joinError(JoinCodes.USAGE, 'x'))).toBe(2);
    expect(exitStatusFor(joinError(JoinCodes.DEADLINE_EXCEEDED, 'x'))).toBe(3);
    expect(exitStatusFor(joinError(JoinCodes.REJECTED, 'x'))).toBe(1);
    expect(exitStatusFor(new Error('x'))).toBe(1);
  });
});

describe('docs/join.md', () => {
  it('lists every join client code in its code table', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/join.md', import.meta.url), 'utf8');
    const table = doc.split('\n').filter((l) => l.startsWith('| `JOIN_')).join('\n');
    for (const code of [...Object.values(JoinCodes), 'JOIN_INTERNAL']) expect(table, code).toContain(`\`${code}\``);
  });
});

describe('bootstrap-path files (bootstrap.ts)', () => {
  const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
  const nodeName = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
  const token = fc.tuple(fc.stringMatching(/^[a-z0-9]{6}$/), fc.stringMatching(/^[a-z0-9]{16}$/)).map(([a, b]) => `${a}.${b}`);
  const path = fc.array(fc.stringMatching(/^[A-Za-z0-9._+-]{1,12}$/), { minLength: 1, maxLength: 4 }).map((ps) => `/${ps.join('/')}`);
  const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
  const release = (o: Partial<Release>): Release => ({
    nodeName: 'node-1',
    expiresAt: '2030-01-01T00:00:00Z',
    bootstrapToken: 'abcdef.0123456789abcdef',
    kubeconfig: 'abcdef.0123456789abcdef',
    apiServer: 'https://10.0.0.1:6443',
    ...o,
  });

  it('whatever valid values come in, the YAML reads back as exactly those strings (no injection, no retyping)', () => {
    fc.assert(
      fc.property(nodeName, token, path, fc.option(path, { nil: undefined }), fc.array(hex64, { maxLength: 3 }), (name, tok, out, dir, hashes) => {
        const text = kubeadmJoinYaml(release({ nodeName: name, bootstrapToken: tok, caCertHashes: hashes.map((h) => `sha256:${h}`) }), {
          kubeconfigPath: out,
          ...(dir !== undefined ? { kubeletConfigDir: dir } : {}),
        });
        expect(parseYaml(text)).toEqual({
          apiVersion: 'kubeadm.k8s.io/v1beta4',
          kind: 'JoinConfiguration',
          discovery: { file: { kubeConfigPath: out }, tlsBootstrapToken: tok },
          nodeRegistration: { name, ...(dir !== undefined ? { kubeletExtraArgs: [{ name: 'config-dir', value: dir }] } : {}) },
        });
        for (const h of hashes) expect(text).toContain(`\n#   sha256:${h}\n`);
        expect(nodeNameFile(release({ nodeName: name }))).toBe(`${name}\n`);
      }),
      { numRuns: 300 },
    );
  });

  it('a digits-only token stays a string (it would read as a float unquoted)', () => {
    const doc = parseYaml(kubeadmJoinYaml(release({ bootstrapToken: '123456.1234567890123456' }), { kubeconfigPath: '/k' })) as { discovery: { tlsBootstrapToken: unknown } };
    expect(doc.discovery.tlsBootstrapToken).toBe('123456.1234567890123456');
  });

  it.each([
    [{ nodeName: 'Node_1' }, JoinCodes.RELEASE_INVALID],
    [{ nodeName: 'a"\nb' }, JoinCodes.RELEASE_INVALID],
    [{ nodeName: `${'a'.repeat(250)}.bcd` }, JoinCodes.RELEASE_INVALID],
    [{ bootstrapToken: 'abcdef.0123456789abcdef\n' }, JoinCodes.RELEASE_INVALID],
    [{ apiServer: 'http://10.0.0.1:6443' }, JoinCodes.RELEASE_INVALID],
    [{ apiServer: 'https://10.0.0.1:6443/#x' }, JoinCodes.RELEASE_INVALID],
    [{ caCertHashes: ['sha256:zz'] }, JoinCodes.RELEASE_INVALID],
  ] as Array<[Partial<Release>, string]>)('refuses %j', (o, code) => {
    expect(codeOf(() => kubeadmJoinYaml(release(o), { kubeconfigPath: '/k' }))).toBe(code);
  });

  it('refuses paths that are not plain absolute paths', () => {
    for (const p of ['k', '/a b', '/a"b', '/a:b', '/a#b']) expect(codeOf(() => kubeadmJoinYaml(release({}), { kubeconfigPath: p }))).toBe(JoinCodes.USAGE);
  });

  it('the kubelet drop-in is a KubeletConfiguration with rotation and serving-certificate bootstrap', () => {
    expect(parseYaml(kubeletConfigYaml())).toEqual({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', rotateCertificates: true, serverTLSBootstrap: true });
  });

  it('the release schema refuses a node name that is not a DNS-1123 subdomain', () => {
    expect(ReleaseSchema.safeParse(release({ nodeName: 'Node_1' })).success).toBe(false);
    expect(ReleaseSchema.safeParse(release({ nodeName: 'node-1.example' })).success).toBe(true);
  });
});
