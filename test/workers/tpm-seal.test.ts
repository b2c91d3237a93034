/**
 * TPM sealing of the release on Workers (`RELEASE_TPM_SEAL`, as `release.tpmSeal` on Node):
 * the release service built from the Worker's bindings (broker/release/runtime.worker.ts, with
 * the Durable Object store) seals the release with TPM2_MakeCredential to the node's EK and AK
 * Name (broker/release/tpmseal.ts) inside workerd.
 *
 * There is no TPM in workerd, so the node's side is played here in software, written from the
 * specification rather than with the broker's helpers: TPM2_ActivateCredential (TCG TPM 2.0
 * Library Part 1 §24: seed = RSA-OAEP(SHA-256, label "IDENTITY\0") decryption with the EK's
 * private key; HMAC integrity over encIdentity ‖ Name with KDFa(seed, "INTEGRITY"); AES-128-CFB
 * decryption with KDFa(seed, "STORAGE", Name) and a zero IV; KDFa per Part 1 §11.4.10.2). On Node
 * the same sealing is opened by tpm2_activatecredential in swtpm (test/release/tpmseal.test.ts).
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, compactDecrypt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import { DurableObjectStore } from '../../broker/store/durable-object.worker.js';
import { buildWorkerRelease } from '../../broker/release/runtime.worker.js';
import { computeName } from '../../providers/tpm/structures.js';
import { fromBase64Url, toBase64Url, toHex } from '../../providers/common/encoding.js';
import type { Decision, ReleaseObject } from '../../broker/contracts.js';
import type { Claims } from '../../providers/common/types.js';
import { AK_ATTRS, EK_ATTRS, eccPublic, rsaPublic, tpm2bPublic } from '../tpm/build.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const store = () => new DurableObjectStore((env as any).STATE);
const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const ab = (b: Uint8Array): Uint8Array<ArrayBuffer> => b as Uint8Array<ArrayBuffer>;
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const u32 = (n: number): Uint8Array => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;

/** KDFa with HMAC-SHA-256 (Part 1 §11.4.10.2), `bits` a multiple of 256 or 128. */
async function kdfa(key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', ab(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const out: Uint8Array[] = [];
  for (let i = 1; out.length * 256 < bits; i++) {
    out.push(new Uint8Array(await crypto.subtle.sign('HMAC', k, ab(cat(u32(i), new TextEncoder().encode(label), new Uint8Array([0]), u, v, u32(bits))))));
  }
  return cat(...out).subarray(0, bits / 8);
}

/** The TPM's side: TPM2_ActivateCredential with an RSA-2048 EK (name alg SHA-256, AES-128). */
async function activateCredential(tpm2ToolsFile: Uint8Array, ekPrivate: CryptoKey, akName: Uint8Array): Promise<Uint8Array> {
  // tpm2-tools file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
  expect(toHex(tpm2ToolsFile.subarray(0, 8))).toBe('badcc0de00000001');
  const idLen = u16(tpm2ToolsFile, 8);
  const idObject = tpm2ToolsFile.subarray(10, 10 + idLen);
  const secret = tpm2ToolsFile.subarray(12 + idLen, 12 + idLen + u16(tpm2ToolsFile, 10 + idLen));
  const seed = new Uint8Array(await crypto.subtle.decrypt({ name: 'RSA-OAEP', label: ab(new TextEncoder().encode('IDENTITY\0')) }, ekPrivate, ab(secret)));
  const hmacLen = u16(idObject, 0);
  const integrity = idObject.subarray(2, 2 + hmacLen);
  const encIdentity = idObject.subarray(2 + hmacLen);
  const hk = await crypto.subtle.importKey('raw', ab(await kdfa(seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), 256)), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  if (!(await crypto.subtle.verify('HMAC', hk, ab(integrity), ab(cat(encIdentity, akName))))) throw new Error('TPM_RC_INTEGRITY: not made for this AK Name');
  // AES-128-CFB decryption, zero IV: P_i = C_i xor E(K, C_{i-1}); E(K, x) is the first block of AES-CBC(K, IV 0, x).
  const aes = await crypto.subtle.importKey('raw', ab(await kdfa(seed, 'STORAGE', akName, new Uint8Array(0), 128)), 'AES-CBC', false, ['encrypt']);
  const plain = new Uint8Array(encIdentity.length);
  let prev = new Uint8Array(16);
  for (let at = 0; at < encIdentity.length; at += 16) {
    const ks = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, aes, ab(prev))).subarray(0, 16);
    const c = encIdentity.subarray(at, at + 16);
    for (let i = 0; i < c.length; i++) plain[at + i] = c[i]! ^ ks[i]!;
    prev = c.slice();
  }
  return plain.subarray(2, 2 + u16(plain, 0)); // TPM2B_DIGEST
}

/** A software "TPM": an RSA-2048 EK (TPM2B_PUBLIC with EK attributes) and an ECC AK's Name. */
async function softwareTpm(): Promise<{ ekPublic: string; ekPrivate: CryptoKey; akName: Uint8Array }> {
  const kp = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['encrypt', 'decrypt'])) as CryptoKeyPair;
  const n = fromBase64Url((await crypto.subtle.exportKey('jwk', kp.publicKey)).n as string);
  const ek = tpm2bPublic(rsaPublic(n, { attrs: EK_ATTRS, scheme: { scheme: 'null' }, aesBits: 128, authPolicy: new Uint8Array(32) }));
  const akName = await computeName(eccPublic('P-256', crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32)), { attrs: AK_ATTRS }));
  return { ekPublic: toBase64Url(ek), ekPrivate: kp.privateKey, akName };
}

const bindings = (tpmSeal?: string) => ({
  RELEASE_CLUSTER: 'prod',
  RELEASE_API_SERVER: 'https://api.prod.test:6443',
  TOKENREVIEW_BEARER_TOKEN: 'apiserver-' + toBase64Url(crypto.getRandomValues(new Uint8Array(24))),
  ...(tpmSeal !== undefined ? { RELEASE_TPM_SEAL: tpmSeal } : {}),
});
const claims = (id: string, release?: Claims['release']): Claims => ({
  provider: 'tpm',
  format: 'tpm',
  platform: { tee: 'none', debug: false },
  identity: { cloud: 'baremetal', instanceId: id, proven: ['instanceId'] },
  tpm: { akSha256: 'c'.repeat(64), akName: release?.akName ?? '000b' + 'd'.repeat(64), pcrs: {}, akTrust: 'ek-credential' },
  evidenceSha256: 'a'.repeat(64),
  ...(release ? { release } : {}),
});
const decision = (allowUnsealed = false): Decision => ({
  allow: true,
  nodeName: 'metal-node-1',
  cluster: 'prod',
  policyHash: 'b'.repeat(64),
  rules: [],
  release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed, diskKey: false },
});

describe('RELEASE_TPM_SEAL: the release sealed to the node TPM inside workerd', () => {
  it('require: sealed to the EK and AK Name over the ephemeral-key JWE; only that EK with that AK Name opens it', async () => {
    const rel = (await buildWorkerRelease(bindings('require'), store(), quiet))!;
    const tpm = await softwareTpm();
    const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
    const jwk = await exportJWK(publicKey);
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const binding = new Uint8Array(await crypto.subtle.digest('SHA-256', ab(cat(nonce, fromBase64Url(await calculateJwkThumbprint(jwk))))));
    const outer = await rel.release.release({
      claims: claims('tpm-seal-1', { ekPublic: tpm.ekPublic, akName: toHex(tpm.akName) }),
      decision: decision(),
      want: ['bootstrap-token'],
      ephemeralKey: jwk,
      nonce: toBase64Url(nonce),
      binding: toBase64Url(binding),
      requestId: 'w-seal-1',
    });
    expect(typeof outer).toBe('string');
    const h = decodeProtectedHeader(outer as string) as { alg: string; enc: string; cty: string; typ: string; tpm_cred: string };
    expect(h).toMatchObject({ alg: 'dir', enc: 'A128CBC-HS256', cty: 'JWE', typ: 'application/attest-broker.tpm-sealed' });
    const cred = fromBase64Url(h.tpm_cred);
    // Another AK Name beside the same EK: the TPM refuses (integrity check).
    const otherAk = await computeName(eccPublic('P-256', crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32)), { attrs: AK_ATTRS }));
    await expect(activateCredential(cred, tpm.ekPrivate, otherAk)).rejects.toThrow(/TPM_RC_INTEGRITY/);
    // Another EK: its private key cannot recover the seed.
    await expect(activateCredential(cred, (await softwareTpm()).ekPrivate, tpm.akName)).rejects.toThrow();
    const key = await activateCredential(cred, tpm.ekPrivate, tpm.akName);
    expect(key).toHaveLength(32);
    const inner = new TextDecoder().decode((await compactDecrypt(outer as string, key)).plaintext);
    const release = JSON.parse(new TextDecoder().decode((await compactDecrypt(inner, privateKey)).plaintext)) as ReleaseObject;
    expect(release.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(release.nodeName).toBe('metal-node-1');
  });

  it('require: TPM sealing alone satisfies "sealed" without an ephemeral key; a tpm node without EK is TPM_SEAL_UNAVAILABLE', async () => {
    const rel = (await buildWorkerRelease(bindings('require'), store(), quiet))!;
    const tpm = await softwareTpm();
    const outer = await rel.release.release({ claims: claims('tpm-seal-2', { ekPublic: tpm.ekPublic, akName: toHex(tpm.akName) }), decision: decision(), want: ['bootstrap-token'], requestId: 'w-seal-2' });
    const h = decodeProtectedHeader(outer as string) as { cty: string; tpm_cred: string };
    expect(h.cty).toBe('application/attest-broker.release+json');
    const key = await activateCredential(fromBase64Url(h.tpm_cred), tpm.ekPrivate, tpm.akName);
    expect((JSON.parse(new TextDecoder().decode((await compactDecrypt(outer as string, key)).plaintext)) as ReleaseObject).nodeName).toBe('metal-node-1');
    await expect(rel.release.release({ claims: claims('tpm-seal-3'), decision: decision(true), want: ['bootstrap-token'], requestId: 'w-seal-3' })).rejects.toMatchObject({
      code: 'TPM_SEAL_UNAVAILABLE',
    });
  });

  it('off (unset) and when-available: a node without EK gets the plain release; a bad value is a configuration problem naming the binding', async () => {
    for (const v of [undefined, '', 'when-available']) {
      const rel = (await buildWorkerRelease(bindings(v), store(), quiet))!;
      const out = await rel.release.release({ claims: claims(`tpm-seal-4-${v ?? 'unset'}`), decision: decision(true), want: ['bootstrap-token'], requestId: 'w-seal-4' });
      expect(typeof out, String(v)).toBe('object');
    }
    await expect(buildWorkerRelease(bindings('always'), store(), quiet)).rejects.toThrow(/RELEASE_TPM_SEAL: one of off, when-available, require/);
  });
});
