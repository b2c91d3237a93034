/**
 * verifySignature's synchronous node:crypto path gives WebCrypto's verdict on every input:
 * RSASSA-PKCS1-v1_5 and RSA-PSS (several hashes and salt lengths) and ECDSA P-256/P-384/P-521, for
 * valid signatures, bit-flipped signatures and data, and signatures of the wrong length; and a
 * key used with another algorithm still throws as WebCrypto does.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setSlowCurvesSync, setSyncVerify, verifySignature } from '../../providers/common/sig.js';

type Case = { name: string; gen: RsaHashedKeyGenParams | EcKeyGenParams; sign: AlgorithmIdentifier | RsaPssParams | EcdsaParams };
const rsa = (name: string, hash: string): RsaHashedKeyGenParams => ({ name, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash });
const CASES: Case[] = [
  { name: 'RSASSA SHA-256', gen: rsa('RSASSA-PKCS1-v1_5', 'SHA-256'), sign: 'RSASSA-PKCS1-v1_5' },
  { name: 'RSASSA SHA-1', gen: rsa('RSASSA-PKCS1-v1_5', 'SHA-1'), sign: { name: 'RSASSA-PKCS1-v1_5' } },
  { name: 'RSASSA SHA-384', gen: rsa('RSASSA-PKCS1-v1_5', 'SHA-384'), sign: 'RSASSA-PKCS1-v1_5' },
  { name: 'RSA-PSS SHA-256 salt 32', gen: rsa('RSA-PSS', 'SHA-256'), sign: { name: 'RSA-PSS', saltLength: 32 } as RsaPssParams },
  { name: 'RSA-PSS SHA-384 salt 48', gen: rsa('RSA-PSS', 'SHA-384'), sign: { name: 'RSA-PSS', saltLength: 48 } as RsaPssParams },
  { name: 'ECDSA P-256 SHA-256', gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  { name: 'ECDSA P-384 SHA-384', gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: { name: 'SHA-384' } } as unknown as EcdsaParams },
  { name: 'ECDSA P-384 SHA-256', gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  { name: 'ECDSA P-521 SHA-512', gen: { name: 'ECDSA', namedCurve: 'P-521' }, sign: { name: 'ECDSA', hash: 'SHA-512' } as EcdsaParams },
];

const web = (p: Case['sign'], k: CryptoKey, s: Uint8Array, d: Uint8Array) => crypto.subtle.verify(p, k, s as Uint8Array<ArrayBuffer>, d as Uint8Array<ArrayBuffer>);

describe('verifySignature agrees with crypto.subtle.verify', () => {
  // P-384 goes synchronous on a single core (or when told so): compare that path too.
  beforeAll(() => {
    expect(setSyncVerify(true)).toBe(true);
    setSlowCurvesSync(true);
  });
  afterAll(() => {
    setSyncVerify(true);
    setSlowCurvesSync('auto');
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const keys = (await crypto.subtle.generateKey(c.gen, true, ['sign', 'verify'])) as CryptoKeyPair;
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(), fc.integer({ min: 0, max: 4 }), async (data, at, how) => {
          const sig = new Uint8Array(await crypto.subtle.sign(c.sign, keys.privateKey, data as Uint8Array<ArrayBuffer>));
          const s = sig.slice();
          const d = data.slice();
          if (how === 1) s[at % s.length]! ^= 1 << at % 8;
          if (how === 2 && d.length > 0) d[at % d.length]! ^= 1;
          const s2 = how === 3 ? s.subarray(0, s.length - 1) : how === 4 ? new Uint8Array([...s, 0]) : s;
          const expected = await web(c.sign, keys.publicKey, s2, d);
          expect(await verifySignature(c.sign, keys.publicKey, s2, d)).toBe(expected);
          if (how === 0) expect(expected).toBe(true);
        }),
        { numRuns: 40 },
      );
    });
  }

  it('a key used with another algorithm, or a private key, throws exactly as WebCrypto', async () => {
    const keys = (await crypto.subtle.generateKey(CASES[0]!.gen, true, ['sign', 'verify'])) as CryptoKeyPair;
    const d = new Uint8Array([1, 2, 3]);
    const s = new Uint8Array(256);
    await expect(verifySignature({ name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams, keys.publicKey, s, d)).rejects.toThrow();
    await expect(verifySignature('RSASSA-PKCS1-v1_5', keys.privateKey, s, d)).rejects.toThrow();
    setSyncVerify(false);
    await expect(verifySignature({ name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams, keys.publicKey, s, d)).rejects.toThrow();
    expect(await verifySignature('RSASSA-PKCS1-v1_5', keys.publicKey, s, d)).toBe(false);
    setSyncVerify(true);
  });
});

describe('verifySignature and non-extractable keys', () => {
  it('leaves a non-extractable key to WebCrypto (KeyObject.from would warn on Node 24, DEP0204), with the same verdict', async () => {
    const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const spki = await crypto.subtle.exportKey('spki', keys.publicKey);
    const locked = await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const data = new Uint8Array([7, 7, 7]);
    const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, data));
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      expect(await verifySignature({ name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams, locked, sig, data)).toBe(true);
      sig[5]! ^= 1;
      expect(await verifySignature({ name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams, locked, sig, data)).toBe(false);
      await new Promise((r) => setTimeout(r, 10));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });
});
