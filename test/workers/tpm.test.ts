/**
 * The TPM core inside workerd: the same verifyQuote (RSASSA, RSA-PSS, ECDSA P-256/P-384; AK as
 * TPMT_PUBLIC, JWK and SPKI) and TPM2_MakeCredential (RSA-OAEP with a label, ECDH + KDFe,
 * AES-CFB built from AES-CBC) run on the Workers runtime's WebCrypto, not only on Node's.
 */
import { describe, expect, it } from 'vitest';
import { verifyQuote } from '../../providers/tpm/quote.js';
import { aesCfbEncrypt, makeCredential } from '../../providers/tpm/credential.js';
import { computeName } from '../../providers/tpm/structures.js';
import { keyFromJwk, spkiDer } from '../../providers/tpm/keys.js';
import { fromBase64Url, fromHex, toHex } from '../../providers/common/encoding.js';
import { AK_ATTRS, EK_ATTRS, attest, eccPublic, pcrDigest, rsaPublic, softwareAk, tpm2bPublic } from '../tpm/build.js';

describe('TPM core in workerd', () => {
  it('verifyQuote: every AK kind and form; a flipped byte is QUOTE_SIGNATURE_INVALID', async () => {
    for (const kind of ['rsa', 'rsapss', 'p256', 'p384'] as const) {
      const ak = await softwareAk(kind);
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const values = [crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32))];
      const message = attest({ extraData: nonce, selection: [{ hash: 'sha256', pcrs: [0, 7] }], pcrDigest: await pcrDigest(ak.hash, values) });
      const signature = await ak.sign(message);
      const pcrs = { sha256: { 0: toHex(values[0]!), 7: toHex(values[1]!) } };
      for (const form of [{ tpmtPublic: ak.tpmtPublic }, { jwk: ak.jwk }, { spki: spkiDer(keyFromJwk(ak.jwk)) }]) {
        const v = await verifyQuote({ message, signature, ak: form, binding: nonce, pcrs });
        expect(v.pcrs, kind).toEqual(pcrs);
      }
      const bad = message.slice();
      bad[10] = (bad[10] as number) ^ 1;
      await expect(verifyQuote({ message: bad, signature, ak: { tpmtPublic: ak.tpmtPublic }, binding: nonce, pcrs })).rejects.toMatchObject({ code: 'QUOTE_SIGNATURE_INVALID' });
    }
  });

  it('makeCredential for RSA and ECC EKs; AES-CFB matches SP 800-38A F.3.13', async () => {
    const iv = fromHex('000102030405060708090a0b0c0d0e0f');
    const ct = await aesCfbEncrypt(fromHex('2b7e151628aed2a6abf7158809cf4f3c'), fromHex('6bc1bee22e409f96e93d7e117393172a'), iv);
    expect(toHex(ct)).toBe('3b3fd92eb72dad20333449f8e83cfb4a');

    const akName = await computeName(eccPublic('P-256', crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32)), { attrs: AK_ATTRS }));
    const rsa = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['encrypt', 'decrypt'])) as CryptoKeyPair;
    const n = fromBase64Url((await crypto.subtle.exportKey('jwk', rsa.publicKey)).n as string);
    const rsaEk = tpm2bPublic(rsaPublic(n, { attrs: EK_ATTRS, scheme: { scheme: 'null' }, aesBits: 128, authPolicy: new Uint8Array(32) }));
    const r = await makeCredential(rsaEk, akName, new Uint8Array(32).fill(7));
    expect(r.encryptedSecret.length).toBe(2 + 256);
    expect(r.credentialBlob.length).toBe(2 + 2 + 32 + 2 + 32);
    const ec = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])) as CryptoKeyPair;
    const j = await crypto.subtle.exportKey('jwk', ec.publicKey);
    const eccEk = tpm2bPublic(eccPublic('P-256', fromBase64Url(j.x as string), fromBase64Url(j.y as string), { attrs: EK_ATTRS, scheme: { scheme: 'null' }, aesBits: 128 }));
    const e = await makeCredential(eccEk, akName, new Uint8Array(32).fill(7));
    expect(e.encryptedSecret.length).toBe(2 + 2 + 32 + 2 + 32);
    expect(toHex(e.tpm2ToolsFile.subarray(0, 8))).toBe('badcc0de00000001');
  });
});
