/**
 * @module deploy/node/client/cms
 *
 * Opens an AWS KMS `CiphertextForRecipient` (the disk key the broker asked KMS to encrypt to the
 * public key in this node's NitroTPM attestation document; docs/release.md): a CMS ContentInfo
 * holding EnvelopedData (RFC 5652 §6.1) with exactly one KeyTransRecipientInfo (§6.2.1), key
 * transport RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 §7.1, parameters as RFC 4055 §4.1:
 * KMS's `RSAES_OAEP_SHA_256`) and content AES-256-CBC with its IV as the parameter (RFC 3565 §4.1).
 * Anything else is refused (JOIN_RELEASE_INVALID), never guessed at. DER only: definite lengths,
 * low tag numbers; the encrypted content may be primitive or split into OCTET STRINGs.
 *
 * The private key never leaves WebCrypto (generated non-extractable by the caller).
 */
import { JoinCodes, joinError } from './codes.js';

interface Tlv {
  tag: number;
  body: Uint8Array;
}

const bad = (what: string): Error => joinError(JoinCodes.RELEASE_INVALID, `the KMS Recipient disk key is not CMS EnvelopedData this client opens: ${what}`);

/** The TLVs of `b`, in order (X.690 §8.1: one-byte tags, definite lengths of at most 4 bytes). */
function children(b: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let off = 0;
  while (off < b.length) {
    if (b.length - off < 2) throw bad('truncated');
    const tag = b[off]!;
    if ((tag & 0x1f) === 0x1f) throw bad('high tag number');
    let len = b[off + 1]!;
    off += 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || b.length - off < n) throw bad('indefinite or oversized length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[off + i]!;
      off += n;
    }
    if (b.length - off < len) throw bad('truncated');
    out.push({ tag, body: b.subarray(off, off + len) });
    off += len;
  }
  return out;
}

/** The single TLV `b` is, with tag `tag`. */
function one(b: Uint8Array, tag: number, what: string): Uint8Array {
  const c = children(b);
  if (c.length !== 1 || c[0]!.tag !== tag) throw bad(what);
  return c[0]!.body;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const OID = {
  envelopedData: '2a864886f70d010703',
  data: '2a864886f70d010701',
  rsaesOaep: '2a864886f70d010107',
  mgf1: '2a864886f70d010108',
  sha256: '608648016503040201',
  aes256Cbc: '60864801650304012a',
} as const;
const T = { INTEGER: 0x02, OCTETS: 0x04, NULL: 0x05, OID: 0x06, SEQ: 0x30, SET: 0x31, CTX0: 0xa0, CTX1: 0xa1, CTX2: 0xa2, IMPLICIT0: 0x80 } as const;

/** An AlgorithmIdentifier for SHA-256 (parameters absent or NULL, RFC 5754 §2). */
function isSha256(algId: Uint8Array): boolean {
  const c = children(algId);
  return c[0]?.tag === T.OID && hex(c[0].body) === OID.sha256 && (c.length === 1 || (c.length === 2 && c[1]!.tag === T.NULL && c[1]!.body.length === 0));
}

/** RSAES-OAEP-params (RFC 4055 §4.1) saying SHA-256 and MGF1-SHA-256, default (empty) label. */
function checkOaepParams(params: Uint8Array): void {
  const c = children(params);
  const hash = c.find((x) => x.tag === T.CTX0);
  const mgf = c.find((x) => x.tag === T.CTX1);
  if (c.some((x) => x.tag !== T.CTX0 && x.tag !== T.CTX1) || !hash || !mgf) throw bad('OAEP parameters other than SHA-256 / MGF1-SHA-256 with no label');
  if (!isSha256(one(hash.body, T.SEQ, 'OAEP hash'))) throw bad('OAEP hash is not SHA-256');
  const m = children(one(mgf.body, T.SEQ, 'OAEP mask generation'));
  if (m.length !== 2 || m[0]!.tag !== T.OID || hex(m[0]!.body) !== OID.mgf1 || m[1]!.tag !== T.SEQ || !isSha256(m[1]!.body)) throw bad('OAEP mask generation is not MGF1-SHA-256');
}

/** Decrypts `der` with `privateKey` (RSA-OAEP SHA-256) and returns the content (the disk key). */
export async function openKmsRecipient(der: Uint8Array, privateKey: CryptoKey): Promise<Uint8Array> {
  const ci = children(one(der, T.SEQ, 'ContentInfo'));
  if (ci.length !== 2 || ci[0]!.tag !== T.OID || hex(ci[0]!.body) !== OID.envelopedData || ci[1]!.tag !== T.CTX0) throw bad('not EnvelopedData');
  const ed = children(one(ci[1]!.body, T.SEQ, 'EnvelopedData'));
  let i = 0;
  if (ed[i]?.tag !== T.INTEGER) throw bad('version');
  i++;
  if (ed[i]?.tag === T.CTX0) i++; // originatorInfo: certificates/CRLs, not used
  if (ed[i]?.tag !== T.SET) throw bad('recipientInfos');
  const ris = children(ed[i]!.body);
  i++;
  if (ris.length !== 1 || ris[0]!.tag !== T.SEQ) throw bad('exactly one KeyTransRecipientInfo expected');
  const ktri = children(ris[0]!.body);
  // version, rid (IssuerAndSerialNumber or [0] SubjectKeyIdentifier: this node has one key), algorithm, encryptedKey
  if (ktri.length !== 4 || ktri[0]!.tag !== T.INTEGER || ktri[2]!.tag !== T.SEQ || ktri[3]!.tag !== T.OCTETS) throw bad('KeyTransRecipientInfo');
  const kea = children(ktri[2]!.body);
  if (kea[0]?.tag !== T.OID || hex(kea[0].body) !== OID.rsaesOaep || kea.length !== 2 || kea[1]!.tag !== T.SEQ) throw bad('key transport is not RSAES-OAEP');
  checkOaepParams(kea[1]!.body);
  if (ed[i]?.tag !== T.SEQ) throw bad('encryptedContentInfo');
  const eci = children(ed[i]!.body);
  i++;
  if (ed.length > i + 1 || (ed.length === i + 1 && ed[i]!.tag !== T.CTX1)) throw bad('trailing members');
  if (eci.length !== 3 || eci[0]!.tag !== T.OID || hex(eci[0]!.body) !== OID.data || eci[1]!.tag !== T.SEQ) throw bad('encryptedContentInfo');
  const cea = children(eci[1]!.body);
  if (cea.length !== 2 || cea[0]!.tag !== T.OID || hex(cea[0]!.body) !== OID.aes256Cbc || cea[1]!.tag !== T.OCTETS || cea[1]!.body.length !== 16) throw bad('content encryption is not AES-256-CBC');
  const ec = eci[2]!;
  let ct: Uint8Array;
  if (ec.tag === T.IMPLICIT0) ct = ec.body;
  else if (ec.tag === T.CTX0) {
    const parts = children(ec.body);
    if (parts.some((p) => p.tag !== T.OCTETS)) throw bad('encryptedContent');
    ct = Buffer.concat(parts.map((p) => p.body));
  } else throw bad('encryptedContent');
  let cek: ArrayBuffer;
  try {
    cek = await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, privateKey, new Uint8Array(ktri[3]!.body));
  } catch (cause) {
    throw joinError(JoinCodes.RELEASE_INVALID, 'the KMS Recipient disk key is not encrypted to this node\'s key', { cause });
  }
  const k = new Uint8Array(cek);
  try {
    if (k.length !== 32) throw bad('the content-encryption key is not 256 bits');
    const aes = await crypto.subtle.importKey('raw', k, { name: 'AES-CBC' }, false, ['decrypt']);
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv: new Uint8Array(cea[1]!.body) }, aes, new Uint8Array(ct)));
  } catch (cause) {
    if (cause instanceof Error && 'code' in cause) throw cause;
    throw joinError(JoinCodes.RELEASE_INVALID, 'the KMS Recipient disk key does not decrypt', { cause });
  } finally {
    k.fill(0);
  }
}
