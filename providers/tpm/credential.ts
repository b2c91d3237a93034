/**
 * @module providers/tpm/credential
 *
 * TPM2_MakeCredential computed outside the TPM, in TypeScript on WebCrypto — what a verifier
 * does to learn whether an AK lives in the same TPM as an EK it trusts (TCG TPM 2.0 Library
 * Part 1 §24 "Credential Protection"; Part 3 §12.6 TPM2_MakeCredential, §12.5
 * TPM2_ActivateCredential). Only the TPM holding the EK's private key can recover `seed`, and it
 * releases the credential only if an object named `akName` is loaded in that same TPM.
 *
 * Steps (Part 1 §24.4 – §24.6; §11.4.10 KDFa/KDFe):
 * 1. seed: RSA EK — `seed` = random(digestSize(ek.nameAlg)), `encryptedSecret` =
 *    RSAES-OAEP(EK, seed, hash = ek.nameAlg, label "IDENTITY\0") (Part 1 Annex B.10.3);
 *    ECC EK — an ephemeral key pair (d_e, Q_e) on the EK's curve, Z = x(d_e · Q_EK),
 *    `seed` = KDFe(nameAlg, Z, "IDENTITY", x(Q_e), x(Q_EK), digestBits) (Annex C.6.1),
 *    `encryptedSecret` = TPMS_ECC_POINT Q_e.
 * 2. symKey = KDFa(nameAlg, seed, "STORAGE", akName, ∅, ek.symmetric.keyBits).
 * 3. encIdentity = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(credential)) (§24.4).
 * 4. HMACkey = KDFa(nameAlg, seed, "INTEGRITY", ∅, ∅, digestBits);
 *    outerHMAC = HMAC(HMACkey, encIdentity ‖ akName) (§24.5).
 * 5. credentialBlob = TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) ‖ encIdentity).
 *
 * Output formats: the two TPM2B structures, and the file `tpm2_activatecredential -i` reads
 * (tpm2-tools: u32 magic 0xBADCC0DE, u32 version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET).
 *
 * The EK must be a storage key (restricted, decrypt, not sign) with an AES-CFB symmetric
 * definition, as every TCG EK template is (TCG EK Credential Profile §2.1.5); anything else is
 * `EK_INVALID`.
 *
 * WebCrypto has no AES-CFB; one AES block encryption E_k(x) is the first block of
 * AES-CBC(k, IV = 0, x), so CFB is built from that, block by block.
 */
import { concat, u16be, u32be } from '../common/bytes.js';
import { malformed, rejected } from '../common/errors.js';
import { HASH_SIZE, webHashName } from '../common/digest.js';
import { TpmCodes } from './codes.js';
import { curveSize, hashFromAlg, parseTpm2bPublic, type TpmHash, type TpmtPublic } from './structures.js';
import { toBase64Url } from '../common/encoding.js';

export interface MadeCredential {
  /** TPM2B_ID_OBJECT, size-prefixed. */
  readonly credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET, size-prefixed. */
  readonly encryptedSecret: Uint8Array;
  /** What `tpm2_activatecredential -i FILE` reads. */
  readonly tpm2ToolsFile: Uint8Array;
}

export interface MakeCredentialOptions {
  /** Randomness source (default `crypto.getRandomValues`); injected by tests only. */
  readonly random?: (n: number) => Uint8Array;
}

const TPM2_TOOLS_CRED_MAGIC = 0xbadcc0de;
const TPM2_TOOLS_CRED_VERSION = 1;

const enc = new TextEncoder();
/** A TPM label: the ASCII string and its terminating zero (Part 1 §11.4.10.2). */
const label = (s: string): Uint8Array => concat(enc.encode(s), new Uint8Array([0]));

const buf = (b: Uint8Array): Uint8Array<ArrayBuffer> => b as Uint8Array<ArrayBuffer>;

async function hmac(hash: TpmHash, key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  // A zero-length HMAC key is legal for KDFa but WebCrypto rejects it; the seed is never empty.
  const k = await crypto.subtle.importKey('raw', buf(key), { name: 'HMAC', hash: webHashName(hash) }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, buf(data)));
}

/**
 * KDFa (Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC;
 * K(i) = HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ contextU ‖ contextV ‖ [bits]₃₂). `bits` is a
 * multiple of 8 here (key sizes, digest sizes).
 */
export async function kdfa(hash: TpmHash, key: Uint8Array, use: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Promise<Uint8Array> {
  const bytes = bits / 8;
  const parts: Uint8Array[] = [];
  let have = 0;
  for (let i = 1; have < bytes; i++) {
    const k = await hmac(hash, key, concat(u32be(i), label(use), contextU, contextV, u32be(bits)));
    parts.push(k);
    have += k.byteLength;
  }
  return concat(...parts).slice(0, bytes);
}

/**
 * KDFe (Part 1 §11.4.10.3): SP 800-56A concatenation KDF;
 * K(i) = H([i]₃₂ ‖ Z ‖ label ‖ 0x00 ‖ partyUInfo ‖ partyVInfo).
 */
export async function kdfe(hash: TpmHash, z: Uint8Array, use: string, partyU: Uint8Array, partyV: Uint8Array, bits: number): Promise<Uint8Array> {
  const bytes = bits / 8;
  const parts: Uint8Array[] = [];
  let have = 0;
  for (let i = 1; have < bytes; i++) {
    const k = new Uint8Array(await crypto.subtle.digest(webHashName(hash), buf(concat(u32be(i), z, label(use), partyU, partyV))));
    parts.push(k);
    have += k.byteLength;
  }
  return concat(...parts).slice(0, bytes);
}

/**
 * AES-CFB-128 encryption (SP 800-38A §6.3, full-block feedback, last block may be partial), from
 * single-block AES. Credential protection uses a zero IV (Part 1 §24.4); `iv` exists for the
 * SP 800-38A known-answer tests.
 */
export async function aesCfbEncrypt(key: Uint8Array, plaintext: Uint8Array, iv: Uint8Array = new Uint8Array(16)): Promise<Uint8Array> {
  if (iv.byteLength !== 16) throw new TypeError('AES-CFB IV must be 16 bytes');
  const k = await crypto.subtle.importKey('raw', buf(key), { name: 'AES-CBC' }, false, ['encrypt']);
  const zeroIv = new Uint8Array(16);
  const out = new Uint8Array(plaintext.byteLength);
  let prev = iv.slice();
  for (let at = 0; at < plaintext.byteLength; at += 16) {
    const ks = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv: zeroIv }, k, buf(prev))).subarray(0, 16);
    const n = Math.min(16, plaintext.byteLength - at);
    const c = new Uint8Array(16);
    for (let i = 0; i < n; i++) c[i] = (plaintext[at + i] as number) ^ (ks[i] as number);
    out.set(c.subarray(0, n), at);
    prev = c;
  }
  return out;
}

/** Checks that `pub` is an EK-like storage key and returns its parameters. */
export function checkEkPublic(pub: TpmtPublic): { nameAlg: TpmHash; symBits: 128 | 192 | 256 } {
  const a = pub.objectAttributes;
  if (!a.restricted || !a.decrypt || a.sign) {
    throw rejected(TpmCodes.EK_INVALID, 'the EK is not a restricted decryption (storage) key');
  }
  const sym = pub.parameters.symmetric;
  if (sym.algorithm !== 'aes') throw rejected(TpmCodes.EK_INVALID, 'the EK has no AES-CFB symmetric definition');
  if (pub.parameters.scheme.scheme !== 'null') throw rejected(TpmCodes.EK_INVALID, 'a storage key has scheme TPM_ALG_NULL');
  if (pub.parameters.type === 'ecc' && pub.parameters.kdf.scheme !== 'null') {
    throw rejected(TpmCodes.EK_INVALID, 'the ECC EK names a KDF; storage keys use KDFe implicitly');
  }
  return { nameAlg: pub.nameAlg, symBits: sym.keyBits };
}

/** Checks that `name` is a TPM Name of a key: nameAlg ‖ digest of that algorithm's size. */
export function checkName(name: Uint8Array): TpmHash {
  if (name.byteLength < 2) throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, 'a Name has at least a nameAlg');
  const h = hashFromAlg(((name[0] as number) << 8) | (name[1] as number), 'Name.nameAlg');
  if (name.byteLength !== 2 + HASH_SIZE[h]) throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `a ${h} Name is ${2 + HASH_SIZE[h]} bytes`);
  return h;
}

const defaultRandom = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));

/**
 * TPM2_MakeCredential(ekPublic, credential, akName) → (credentialBlob, encryptedSecret).
 * @param ek the EK public area (parsed, or TPM2B_PUBLIC bytes)
 * @param akName the Name of the AK that must be loaded beside the EK
 * @param credential the secret (1 … digestSize(ek.nameAlg) bytes; Part 3 §12.6.1 TPM_RC_SIZE)
 */
export async function makeCredential(ek: TpmtPublic | Uint8Array, akName: Uint8Array, credential: Uint8Array, o: MakeCredentialOptions = {}): Promise<MadeCredential> {
  const pub = ek instanceof Uint8Array ? parseTpm2bPublic(ek) : ek;
  const { nameAlg, symBits } = checkEkPublic(pub);
  checkName(akName);
  const dSize = HASH_SIZE[nameAlg];
  if (credential.byteLength === 0 || credential.byteLength > dSize) {
    throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `the credential must be 1..${dSize} bytes`);
  }
  const random = o.random ?? defaultRandom;

  // 1. seed and encryptedSecret.
  let seed: Uint8Array;
  let secretBody: Uint8Array;
  if (pub.parameters.type === 'rsa') {
    seed = random(dSize);
    const e = pub.parameters.exponent;
    const jwk: JsonWebKey = {
      kty: 'RSA',
      n: toBase64Url(pub.rsaModulus!),
      e: toBase64Url(stripLeadingZeros(u32be(e))),
    };
    const key = await crypto.subtle.importKey('jwk', jwk, { name: 'RSA-OAEP', hash: webHashName(nameAlg) }, false, ['encrypt']);
    secretBody = new Uint8Array(await crypto.subtle.encrypt({ name: 'RSA-OAEP', label: buf(label('IDENTITY')) }, key, buf(seed)));
  } else {
    const curve = pub.parameters.curve;
    const size = curveSize(curve);
    const ekPoint = pub.eccPoint!;
    const ekKey = await crypto.subtle.importKey('raw', buf(concat(new Uint8Array([4]), ekPoint.x, ekPoint.y)), { name: 'ECDH', namedCurve: curve }, false, []);
    const eph = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: curve }, true, ['deriveBits'])) as CryptoKeyPair;
    const z = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: ekKey }, eph.privateKey, size * 8));
    const ephRaw = new Uint8Array(await crypto.subtle.exportKey('raw', eph.publicKey));
    const ex = ephRaw.subarray(1, 1 + size);
    const ey = ephRaw.subarray(1 + size);
    seed = await kdfe(nameAlg, z, 'IDENTITY', ex, ekPoint.x, dSize * 8);
    // TPMS_ECC_POINT (Part 2 §11.2.5.2)
    secretBody = concat(u16be(size), ex, u16be(size), ey);
  }

  // 2-5.
  const symKey = await kdfa(nameAlg, seed, 'STORAGE', akName, new Uint8Array(0), symBits);
  const encIdentity = await aesCfbEncrypt(symKey, concat(u16be(credential.byteLength), credential));
  const hmacKey = await kdfa(nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), dSize * 8);
  const outerHmac = await hmac(nameAlg, hmacKey, concat(encIdentity, akName));
  const idObject = concat(u16be(outerHmac.byteLength), outerHmac, encIdentity);
  const credentialBlob = concat(u16be(idObject.byteLength), idObject);
  const encryptedSecret = concat(u16be(secretBody.byteLength), secretBody);
  return Object.freeze({
    credentialBlob,
    encryptedSecret,
    tpm2ToolsFile: concat(u32be(TPM2_TOOLS_CRED_MAGIC), u32be(TPM2_TOOLS_CRED_VERSION), credentialBlob, encryptedSecret),
  });
}

function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.byteLength - 1 && b[i] === 0) i++;
  return b.subarray(i);
}
