/**
 * Marshalling of TPM 2.0 structures for tests and benchmarks (Part 2 layouts, big-endian), and
 * software "AKs" (WebCrypto keys) that sign them. A real TPM never signs a TPMS_ATTEST it did not
 * build, so checks that come after the signature (magic, type, extraData, pcrDigest) can only be
 * exercised with a key outside a TPM.
 */
import { concat, u16be, u32be } from '../../providers/common/bytes.js';
import { fromBase64Url } from '../../providers/common/encoding.js';
import { digest } from '../../providers/common/digest.js';
import { TPM_ALG, TPM_ECC, TPM_GENERATED_VALUE, TPM_ST, TPMA_OBJECT, algFromHash, encodePcrSelectionList, type TpmHash } from '../../providers/tpm/structures.js';

export const AK_ATTRS =
  TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;
export const EK_ATTRS =
  TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;

const u64be = (n: bigint): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return b;
};
const tpm2b = (b: Uint8Array): Uint8Array => concat(u16be(b.length), b);
const SCHEME_ALG = { rsassa: TPM_ALG.RSASSA, rsapss: TPM_ALG.RSAPSS, ecdsa: TPM_ALG.ECDSA, oaep: TPM_ALG.OAEP, ecdh: TPM_ALG.ECDH } as const;

export type Scheme = { scheme: 'null' } | { scheme: keyof typeof SCHEME_ALG; hash: TpmHash };

function schemeBytes(s: Scheme): Uint8Array {
  return s.scheme === 'null' ? u16be(TPM_ALG.NULL) : concat(u16be(SCHEME_ALG[s.scheme]), u16be(algFromHash(s.hash)));
}
function symBytes(aesBits?: number): Uint8Array {
  return aesBits ? concat(u16be(TPM_ALG.AES), u16be(aesBits), u16be(TPM_ALG.CFB)) : u16be(TPM_ALG.NULL);
}

export interface PublicFields {
  nameAlg?: TpmHash;
  attrs?: number;
  authPolicy?: Uint8Array;
  scheme?: Scheme;
  aesBits?: number;
}

export function rsaPublic(n: Uint8Array, f: PublicFields & { exponent?: number } = {}): Uint8Array {
  return concat(
    u16be(TPM_ALG.RSA),
    u16be(algFromHash(f.nameAlg ?? 'sha256')),
    u32be(f.attrs ?? AK_ATTRS),
    tpm2b(f.authPolicy ?? new Uint8Array(0)),
    symBytes(f.aesBits),
    schemeBytes(f.scheme ?? { scheme: 'rsassa', hash: 'sha256' }),
    u16be(n.length * 8),
    u32be(f.exponent ?? 0),
    tpm2b(n),
  );
}

export function eccPublic(curve: 'P-256' | 'P-384', x: Uint8Array, y: Uint8Array, f: PublicFields = {}): Uint8Array {
  return concat(
    u16be(TPM_ALG.ECC),
    u16be(algFromHash(f.nameAlg ?? 'sha256')),
    u32be(f.attrs ?? AK_ATTRS),
    tpm2b(f.authPolicy ?? new Uint8Array(0)),
    symBytes(f.aesBits),
    schemeBytes(f.scheme ?? { scheme: 'ecdsa', hash: curve === 'P-256' ? 'sha256' : 'sha384' }),
    u16be(curve === 'P-256' ? TPM_ECC.NIST_P256 : TPM_ECC.NIST_P384),
    u16be(TPM_ALG.NULL),
    tpm2b(x),
    tpm2b(y),
  );
}

export const tpm2bPublic = (tpmt: Uint8Array): Uint8Array => tpm2b(tpmt);

export interface AttestFields {
  magic?: number;
  type?: number;
  qualifiedSigner?: Uint8Array;
  extraData: Uint8Array;
  clock?: bigint;
  resetCount?: number;
  restartCount?: number;
  safe?: number;
  firmwareVersion?: bigint;
  selection?: { hash: TpmHash; pcrs: number[] }[];
  pcrDigest?: Uint8Array;
  /** Raw TPMU_ATTEST bytes instead of a quote info. */
  attested?: Uint8Array;
}

export function attest(f: AttestFields): Uint8Array {
  const attested = f.attested ?? concat(encodePcrSelectionList(f.selection ?? []), tpm2b(f.pcrDigest ?? new Uint8Array(32)));
  return concat(
    u32be(f.magic ?? TPM_GENERATED_VALUE),
    u16be(f.type ?? TPM_ST.ATTEST_QUOTE),
    tpm2b(f.qualifiedSigner ?? concat(u16be(TPM_ALG.SHA256), new Uint8Array(32).fill(7))),
    tpm2b(f.extraData),
    u64be(f.clock ?? 123456n),
    u32be(f.resetCount ?? 1),
    u32be(f.restartCount ?? 0),
    new Uint8Array([f.safe ?? 1]),
    u64be(f.firmwareVersion ?? 0x2016051100162800n),
    attested,
  );
}

/** pcrDigest over values in selection order with `hash`. */
export async function pcrDigest(hash: TpmHash, values: Uint8Array[]): Promise<Uint8Array> {
  return digest(hash, concat(...values));
}

export function rsaSignature(scheme: 'rsassa' | 'rsapss', hash: TpmHash, sig: Uint8Array): Uint8Array {
  return concat(u16be(SCHEME_ALG[scheme]), u16be(algFromHash(hash)), tpm2b(sig));
}
export function ecdsaSignature(hash: TpmHash, r: Uint8Array, s: Uint8Array): Uint8Array {
  return concat(u16be(TPM_ALG.ECDSA), u16be(algFromHash(hash)), tpm2b(r), tpm2b(s));
}

export interface SoftwareAk {
  kind: 'rsa' | 'rsapss' | 'p256' | 'p384';
  /** TPMT_PUBLIC with AK attributes and the matching scheme. */
  tpmtPublic: Uint8Array;
  jwk: JsonWebKey;
  hash: TpmHash;
  /** Signs and returns a TPMT_SIGNATURE. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** Signs and returns the raw WebCrypto signature (RSA bytes or P1363 r‖s). */
  signRaw(message: Uint8Array): Promise<Uint8Array>;
}

export async function softwareAk(kind: SoftwareAk['kind'], f: PublicFields = {}): Promise<SoftwareAk> {
  const buf = (b: Uint8Array): Uint8Array<ArrayBuffer> => b as Uint8Array<ArrayBuffer>;
  if (kind === 'rsa' || kind === 'rsapss') {
    const name = kind === 'rsa' ? 'RSASSA-PKCS1-v1_5' : 'RSA-PSS';
    const kp = (await crypto.subtle.generateKey({ name, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey('jwk', kp.publicKey);
    const n = fromBase64Url(jwk.n as string);
    const scheme = kind === 'rsa' ? 'rsassa' : 'rsapss';
    const signRaw = async (m: Uint8Array): Promise<Uint8Array> =>
      new Uint8Array(await crypto.subtle.sign(kind === 'rsa' ? { name } : { name, saltLength: 32 }, kp.privateKey, buf(m)));
    return {
      kind,
      tpmtPublic: rsaPublic(n, { scheme: { scheme, hash: 'sha256' }, ...f }),
      jwk: { kty: 'RSA', n: jwk.n, e: jwk.e },
      hash: 'sha256',
      signRaw,
      sign: async (m) => rsaSignature(scheme, 'sha256', await signRaw(m)),
    };
  }
  const curve = kind === 'p256' ? 'P-256' : 'P-384';
  const hash: TpmHash = kind === 'p256' ? 'sha256' : 'sha384';
  const size = kind === 'p256' ? 32 : 48;
  const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', kp.publicKey);
  const signRaw = async (m: Uint8Array): Promise<Uint8Array> =>
    new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: hash === 'sha256' ? 'SHA-256' : 'SHA-384' }, kp.privateKey, buf(m)));
  return {
    kind,
    tpmtPublic: eccPublic(curve, fromBase64Url(jwk.x as string), fromBase64Url(jwk.y as string), f),
    jwk: { kty: 'EC', crv: curve, x: jwk.x, y: jwk.y },
    hash,
    signRaw,
    sign: async (m) => {
      const raw = await signRaw(m);
      return ecdsaSignature(hash, raw.subarray(0, size), raw.subarray(size));
    },
  };
}
