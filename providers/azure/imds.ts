/**
 * @module providers/azure/imds
 *
 * The Azure IMDS attested document: the only signed source here that names the VM's
 * subscription. `GET http://169.254.169.254/metadata/attested/document?api-version=2020-09-01`
 * answers `{"encoding": "pkcs7", "signature": base64(PKCS#7 SignedData)}` whose content is JSON
 * `{"nonce", "plan", "timeStamp": {"createdOn", "expiresOn"}, "vmId", "subscriptionId", "sku",
 * "licenseType"}`, signed by Azure's `metadata.azure.com` certificate (Azure IMDS reference,
 * "Attested data"). The node sends it alongside its CVM evidence; it is tied to that evidence by
 * `vmId` = the runtime data's `vmUniqueId`.
 *
 * Parsing (RFC 5652 §3, §5; DER only, every length checked, list lengths capped):
 * ContentInfo{signedData, [0] SignedData{version, digestAlgorithms, encapContentInfo{data,
 * [0] OCTET STRING}, [0] IMPLICIT certificates (≤ 4), [1] crls (refused), signerInfos (exactly
 * one: version 1, issuerAndSerialNumber)}}.
 *
 * Checks (each with its own code):
 * - the structure above, DER → IMDS_DOCUMENT_MALFORMED (TRUNCATED / TRAILING_BYTES inside);
 * - digest SHA-256/384/512 and RSA PKCS#1 v1.5 only → IMDS_ALGORITHM_UNSUPPORTED;
 * - the signer is the certificate the SignerInfo names (issuer + serial) → IMDS_SIGNER_MISSING;
 * - the signer certificate chains, with the PKCS#7's other certificates and configured
 *   intermediates, to a root pinned for IMDS (`anchorIds`; none configured → TRUST_ANCHOR_MISSING)
 *   at the verification time (x509 codes);
 * - the signer is Azure's metadata service (CN or SAN `metadata.azure.com` or a subdomain, or a
 *   sovereign-cloud equivalent) → IMDS_SIGNER_INVALID;
 * - with signed attributes: content-type = id-data and message-digest = H(content), signature over
 *   the DER SET of attributes; without: signature over the content → IMDS_SIGNATURE_INVALID;
 * - only then the content JSON: shape → IMDS_DOCUMENT_MALFORMED; `timeStamp` contains the
 *   verification time (createdOn − 5 min ≤ now ≤ expiresOn) → IMDS_DOCUMENT_EXPIRED /
 *   IMDS_DOCUMENT_NOT_YET_VALID.
 *
 * The caller compares `vmId` with the hardware-bound runtime data (IMDS_VMID_MISMATCH). IMDS
 * nonces are at most 10 digits, so the document cannot carry the 32-byte binding; it is not
 * what makes the evidence fresh (the vTPM quote is). A replayed document can only restate the
 * identity of the same VM the hardware evidence already names.
 */
import { ByteReader } from '../common/bytes.js';
import { AttestError, malformed, rejected } from '../common/errors.js';
import { fromUtf8, toHex } from '../common/encoding.js';
import { digest, type HashName } from '../common/digest.js';
import { timingSafeEqual } from '../common/ct.js';
import type { TrustStore } from '../common/types.js';
import { importPublicKey, parseCertificate, parsePemCertificates, verifyChain, x509, type Certificate } from '../common/x509.js';

export const ImdsCodes = {
  IMDS_DOCUMENT_MALFORMED: 'IMDS_DOCUMENT_MALFORMED',
  IMDS_ALGORITHM_UNSUPPORTED: 'IMDS_ALGORITHM_UNSUPPORTED',
  IMDS_SIGNER_MISSING: 'IMDS_SIGNER_MISSING',
  IMDS_SIGNER_INVALID: 'IMDS_SIGNER_INVALID',
  IMDS_SIGNATURE_INVALID: 'IMDS_SIGNATURE_INVALID',
  IMDS_DOCUMENT_EXPIRED: 'IMDS_DOCUMENT_EXPIRED',
  IMDS_DOCUMENT_NOT_YET_VALID: 'IMDS_DOCUMENT_NOT_YET_VALID',
  IMDS_VMID_MISMATCH: 'IMDS_VMID_MISMATCH',
} as const;

const MAX_CERTS = 4;
const MAX_ATTRS = 16;

// OIDs, DER-encoded contents (without tag/length).
const OID = {
  signedData: '2a864886f70d010702',
  data: '2a864886f70d010701',
  contentType: '2a864886f70d010903',
  messageDigest: '2a864886f70d010904',
  rsaEncryption: '2a864886f70d010101',
  sha256: '608648016503040201',
  sha384: '608648016503040202',
  sha512: '608648016503040203',
  sha256WithRSA: '2a864886f70d01010b',
  sha384WithRSA: '2a864886f70d01010c',
  sha512WithRSA: '2a864886f70d01010d',
} as const;
const DIGESTS: Record<string, HashName> = { [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };
const RSA_WITH: Record<string, HashName> = { [OID.sha256WithRSA]: 'sha256', [OID.sha384WithRSA]: 'sha384', [OID.sha512WithRSA]: 'sha512' };

interface Tlv {
  readonly tag: number;
  /** The whole TLV (tag, length, value). */
  readonly raw: Uint8Array;
  readonly value: ByteReader;
  readonly valueBytes: Uint8Array;
}

/** One DER TLV: low-tag-number form, definite minimal length. */
function tlv(r: ByteReader, what: string): Tlv {
  const start = r.position;
  const startOffset = r.offset;
  const tag = r.u8(`${what} tag`);
  if ((tag & 0x1f) === 0x1f) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `${what}: high tag numbers are not used here`, { offset: startOffset });
  let len = r.u8(`${what} length`);
  if (len === 0x80) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `${what}: indefinite length is not DER`, { offset: startOffset });
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 3) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `${what}: length of ${n} bytes`, { offset: startOffset });
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + r.u8(`${what} length`);
    if (len < 0x80 || (n > 1 && len < 1 << (8 * (n - 1)))) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `${what}: non-minimal length`, { offset: startOffset });
  }
  const valueOffset = r.offset;
  const valueBytes = r.bytes(len, what);
  const headerLen = r.position - start - len;
  const raw = new Uint8Array(headerLen + len);
  // Re-create the header bytes (the reader hands out copies, so rebuild rather than slice).
  raw.set(encodeHeader(tag, len), 0);
  raw.set(valueBytes, headerLen);
  return { tag, raw, value: new ByteReader(valueBytes, valueOffset), valueBytes };
}

function encodeHeader(tag: number, len: number): Uint8Array {
  if (len < 0x80) return Uint8Array.of(tag, len);
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(tag, 0x80 | bytes.length, ...bytes);
}

function expectTag(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `${what}: expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`);
  return t;
}
const next = (r: ByteReader, tag: number, what: string): Tlv => expectTag(tlv(r, what), tag, what);
const oidOf = (r: ByteReader, what: string): string => toHex(next(r, 0x06, what).valueBytes);

/** AlgorithmIdentifier: the OID; parameters absent or NULL. */
function algorithm(r: ByteReader, what: string): string {
  const a = next(r, 0x30, what).value;
  const oid = oidOf(a, `${what}.algorithm`);
  if (a.remaining > 0) {
    const p = tlv(a, `${what}.parameters`);
    if (p.tag !== 0x05 || p.valueBytes.length !== 0) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `${what}: parameters must be NULL`);
  }
  a.end(what);
  return oid;
}

export interface ImdsSignedDocument {
  readonly content: Uint8Array;
  /** DER of each certificate (X.509-parsed only by the verifier). */
  readonly certificates: readonly Uint8Array[];
  readonly signer: {
    readonly issuerDer: Uint8Array;
    readonly serial: Uint8Array;
    readonly digest: HashName;
    readonly signatureAlgorithm: string;
    /** DER SET OF Attribute (tag 0x31) when signed attributes are present. */
    readonly signedAttrsDer: Uint8Array | undefined;
    readonly messageDigest: Uint8Array | undefined;
    readonly contentTypeIsData: boolean;
    readonly signature: Uint8Array;
  };
}

function wrapParse<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof AttestError) throw e;
    throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'IMDS attested document is not a valid PKCS#7 SignedData', { cause: e });
  }
}

/** Parses the PKCS#7 SignedData of an IMDS attested document (structure only). */
export function parseImdsPkcs7(der: Uint8Array): ImdsSignedDocument {
  return wrapParse(() => {
    const top = new ByteReader(der);
    const ci = next(top, 0x30, 'ContentInfo').value;
    top.end('ContentInfo');
    if (oidOf(ci, 'contentType') !== OID.signedData) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'ContentInfo is not signedData');
    const explicit = next(ci, 0xa0, 'content').value;
    ci.end('ContentInfo');
    const sd = next(explicit, 0x30, 'SignedData').value;
    explicit.end('content');
    next(sd, 0x02, 'SignedData.version');
    const digestAlgs = next(sd, 0x31, 'digestAlgorithms').value;
    while (digestAlgs.remaining > 0) algorithm(digestAlgs, 'digestAlgorithm');
    const eci = next(sd, 0x30, 'encapContentInfo').value;
    if (oidOf(eci, 'eContentType') !== OID.data) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'encapsulated content is not id-data');
    const ec = next(eci, 0xa0, 'eContent').value;
    const content = next(ec, 0x04, 'eContent OCTET STRING').valueBytes;
    ec.end('eContent');
    eci.end('encapContentInfo');
    const certificates: Uint8Array[] = [];
    let t = tlv(sd, 'SignedData member');
    if (t.tag === 0xa0) {
      const certs = t.value;
      while (certs.remaining > 0) {
        if (certificates.length >= MAX_CERTS) throw malformed('LIMIT_EXCEEDED', `more than ${MAX_CERTS} certificates in the IMDS document`);
        const c = next(certs, 0x30, 'certificate');
        certificates.push(c.raw);
      }
      t = tlv(sd, 'SignedData member');
    }
    if (t.tag === 0xa1) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'CRLs in the IMDS document are not expected');
    const infos = expectTag(t, 0x31, 'signerInfos').value;
    sd.end('SignedData');
    const si = next(infos, 0x30, 'SignerInfo').value;
    if (infos.remaining > 0) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'exactly one SignerInfo expected');
    const version = next(si, 0x02, 'SignerInfo.version').valueBytes;
    if (version.length !== 1 || version[0] !== 1) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'SignerInfo version must be 1 (issuerAndSerialNumber)');
    const ias = next(si, 0x30, 'issuerAndSerialNumber').value;
    const issuerDer = next(ias, 0x30, 'issuer').raw;
    const serial = next(ias, 0x02, 'serialNumber').valueBytes;
    ias.end('issuerAndSerialNumber');
    const digestOid = algorithm(si, 'SignerInfo.digestAlgorithm');
    const digestName = DIGESTS[digestOid];
    if (!digestName) throw rejected(ImdsCodes.IMDS_ALGORITHM_UNSUPPORTED, `digest algorithm ${digestOid} is not SHA-256/384/512`);
    let a = tlv(si, 'SignerInfo member');
    let signedAttrsDer: Uint8Array | undefined;
    let messageDigest: Uint8Array | undefined;
    let contentTypeIsData = false;
    if (a.tag === 0xa0) {
      signedAttrsDer = Uint8Array.from(a.raw);
      signedAttrsDer[0] = 0x31; // RFC 5652 §5.4: the signature covers the EXPLICIT SET OF encoding
      const attrs = a.value;
      let n = 0;
      const seen = new Set<string>();
      while (attrs.remaining > 0) {
        if (++n > MAX_ATTRS) throw malformed('LIMIT_EXCEEDED', 'too many signed attributes');
        const at = next(attrs, 0x30, 'Attribute').value;
        const type = oidOf(at, 'Attribute.type');
        if (seen.has(type)) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'duplicate signed attribute');
        seen.add(type);
        const values = next(at, 0x31, 'Attribute.values').value;
        at.end('Attribute');
        if (type === OID.messageDigest) {
          messageDigest = next(values, 0x04, 'messageDigest').valueBytes;
          values.end('messageDigest values');
        } else if (type === OID.contentType) {
          contentTypeIsData = oidOf(values, 'contentType') === OID.data;
          values.end('contentType values');
        }
      }
      a = tlv(si, 'SignerInfo member');
    }
    const signatureAlgorithm = algorithm(new ByteReader(expectTag(a, 0x30, 'signatureAlgorithm').raw), 'signatureAlgorithm');
    const signature = next(si, 0x04, 'signature').valueBytes;
    if (si.remaining > 0) {
      const u = tlv(si, 'unsignedAttrs');
      if (u.tag !== 0xa1) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'unexpected SignerInfo member');
    }
    si.end('SignerInfo');
    return Object.freeze({
      content,
      certificates: Object.freeze(certificates),
      signer: Object.freeze({ issuerDer, serial, digest: digestName, signatureAlgorithm, signedAttrsDer, messageDigest, contentTypeIsData, signature }),
    });
  });
}

/** issuer Name DER and serial of a certificate (TBSCertificate fields 2 and 4). */
function issuerAndSerial(der: Uint8Array): { issuer: Uint8Array; serial: Uint8Array } {
  return wrapParse(() => {
    const r = new ByteReader(der);
    const cert = next(r, 0x30, 'Certificate').value;
    const tbs = next(cert, 0x30, 'TBSCertificate').value;
    let t = tlv(tbs, 'TBSCertificate member');
    if (t.tag === 0xa0) t = tlv(tbs, 'serialNumber');
    const serial = expectTag(t, 0x02, 'serialNumber').valueBytes;
    next(tbs, 0x30, 'signature');
    const issuer = next(tbs, 0x30, 'issuer').raw;
    return { issuer, serial };
  });
}

const AZURE_METADATA_NAMES = ['metadata.azure.com', 'metadata.azure.us', 'metadata.azure.cn', 'metadata.microsoftazure.de'];

function isMetadataName(n: string): boolean {
  const name = n.toLowerCase();
  return AZURE_METADATA_NAMES.some((m) => name === m || name.endsWith(`.${m}`));
}

function signerIsAzureMetadata(c: Certificate): boolean {
  const names: string[] = [];
  const cn = /(?:^|,\s*)CN=([^,]+)/.exec(c.subject)?.[1]?.trim();
  if (cn) names.push(cn);
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  for (const g of san?.names.items ?? []) if (g.type === 'dns') names.push(g.value);
  return names.some(isMetadataName);
}

export interface ImdsDocument {
  readonly vmId: string;
  readonly subscriptionId: string | undefined;
  readonly sku: string | undefined;
  readonly nonce: string | undefined;
  readonly createdOn: Date;
  readonly expiresOn: Date;
  readonly signerSubject: string;
}

export interface ImdsVerifyInput {
  /** The PKCS#7 DER (base64-decoded `signature` member). */
  readonly pkcs7: Uint8Array;
  readonly trust: TrustStore;
  /** Trust-store ids of the roots Azure's metadata certificate may chain to. */
  readonly anchorIds: readonly string[];
  /** Intermediates configured for IMDS (Azure does not ship them in the document). */
  readonly intermediates: readonly Certificate[];
  readonly at: Date;
}

/** "MM/DD/YY HH:MM:SS ±HHMM" (the format IMDS uses in timeStamp), strictly. */
function imdsTime(s: unknown, what: string): Date {
  const m = typeof s === 'string' ? /^(\d{2})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s) : null;
  if (!m) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `IMDS ${what} is not "MM/DD/YY HH:MM:SS ±HHMM"`);
  const [mo, d, y, h, mi, se, oh, om] = [m[1], m[2], m[3], m[4], m[5], m[6], m[8], m[9]].map(Number) as [number, number, number, number, number, number, number, number];
  const local = new Date(Date.UTC(2000 + y, mo - 1, d, h, mi, se));
  if (local.getUTCMonth() !== mo - 1 || local.getUTCDate() !== d || h > 23 || mi > 59 || se > 59 || oh > 14 || om > 59) {
    throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `IMDS ${what} is not a valid date`);
  }
  const offsetMin = (m[7] === '-' ? -1 : 1) * (oh * 60 + om);
  return new Date(local.getTime() - offsetMin * 60_000);
}

const SKEW_MS = 5 * 60_000;

/** Verifies an IMDS attested document; see the module doc. The caller compares `vmId`. */
export async function verifyImdsDocument(i: ImdsVerifyInput): Promise<ImdsDocument> {
  const doc = parseImdsPkcs7(i.pkcs7);
  const s = doc.signer;
  const signerDer = doc.certificates.find((c) => {
    const x = issuerAndSerial(c);
    return timingSafeEqual(x.issuer, s.issuerDer) && timingSafeEqual(x.serial, s.serial);
  });
  if (!signerDer) throw rejected(ImdsCodes.IMDS_SIGNER_MISSING, 'the IMDS document does not carry the certificate its SignerInfo names');
  const signer = parseCertificate(signerDer, 'IMDS signer certificate');
  const others = doc.certificates.filter((c) => c !== signerDer).map((c) => parseCertificate(c, 'IMDS certificate'));
  await verifyChain({ leaf: signer, intermediates: [...others, ...i.intermediates], anchors: i.trust.anchors(i.anchorIds), at: i.at, maxDepth: 4, what: 'IMDS metadata certificate chain' });
  if (!signerIsAzureMetadata(signer)) {
    throw rejected(ImdsCodes.IMDS_SIGNER_INVALID, `the IMDS document is signed by "${signer.subject}", not Azure's metadata service`);
  }
  let hash: HashName;
  if (s.signatureAlgorithm === OID.rsaEncryption) hash = s.digest;
  else if (RSA_WITH[s.signatureAlgorithm] === s.digest) hash = s.digest;
  else throw rejected(ImdsCodes.IMDS_ALGORITHM_UNSUPPORTED, `signature algorithm ${s.signatureAlgorithm} is not RSA PKCS#1 v1.5 with the SignerInfo's digest`);
  let signed = doc.content;
  if (s.signedAttrsDer) {
    const want = await digest(hash, doc.content);
    if (!s.contentTypeIsData || !s.messageDigest || !timingSafeEqual(s.messageDigest, want)) {
      throw rejected(ImdsCodes.IMDS_SIGNATURE_INVALID, 'the signed attributes do not cover this content (content-type / message-digest)');
    }
    signed = s.signedAttrsDer;
  }
  const key = await importPublicKey(signer, { name: 'RSASSA-PKCS1-v1_5', hash: { name: hash === 'sha256' ? 'SHA-256' : hash === 'sha384' ? 'SHA-384' : 'SHA-512' } });
  let ok: boolean;
  try {
    ok = await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, s.signature as Uint8Array<ArrayBuffer>, signed as Uint8Array<ArrayBuffer>);
  } catch {
    ok = false;
  }
  if (!ok) throw rejected(ImdsCodes.IMDS_SIGNATURE_INVALID, 'the IMDS document signature does not verify with the metadata certificate');

  let body: unknown;
  try {
    body = JSON.parse(fromUtf8(doc.content, 'IMDS document content'));
  } catch (cause) {
    throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'IMDS document content is not JSON', { cause });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'IMDS document content is not an object');
  const b = body as Record<string, unknown>;
  const str = (k: string): string | undefined => {
    const v = b[k];
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string' || v.length > 256) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, `IMDS "${k}" is not a string`);
    return v;
  };
  const vmId = str('vmId');
  if (!vmId) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'IMDS document has no vmId');
  const ts = b.timeStamp;
  if (typeof ts !== 'object' || ts === null) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'IMDS document has no timeStamp');
  const createdOn = imdsTime((ts as Record<string, unknown>).createdOn, 'timeStamp.createdOn');
  const expiresOn = imdsTime((ts as Record<string, unknown>).expiresOn, 'timeStamp.expiresOn');
  const now = i.at.getTime();
  if (now > expiresOn.getTime()) throw rejected(ImdsCodes.IMDS_DOCUMENT_EXPIRED, `the IMDS document expired at ${expiresOn.toISOString()}`);
  if (now < createdOn.getTime() - SKEW_MS) throw rejected(ImdsCodes.IMDS_DOCUMENT_NOT_YET_VALID, `the IMDS document is dated ${createdOn.toISOString()}`);
  return Object.freeze({ vmId, subscriptionId: str('subscriptionId'), sku: str('sku'), nonce: str('nonce'), createdOn, expiresOn, signerSubject: signer.subject });
}

/** Parses configured IMDS intermediates (PEM). */
export function imdsIntermediates(pem: string | undefined): Certificate[] {
  return pem ? parsePemCertificates(pem, 'IMDS intermediates', 8) : [];
}
