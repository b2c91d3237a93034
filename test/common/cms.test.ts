/**
 * providers/common/cms.ts: the one SignedData pipeline. Messages are assembled here element by
 * element (providers/common/der.ts writer) and signed with WebCrypto, so every field can be made
 * wrong on its own; the AWS and Azure suites check the same pipeline on documents signed by
 * openssl. Codes passed as the caller's are AWS's identity-document codes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { concat } from '../../providers/common/bytes.js';
import { AttestError } from '../../providers/common/errors.js';
import { digest, type HashName } from '../../providers/common/digest.js';
import { certificateFields, ctx, encodeOid, encodeTlv as tlv, TAG } from '../../providers/common/der.js';
import { CMS_OID, findSigner, parseSignedData, verifySignerInfo, type CmsVerifyCodes } from '../../providers/common/cms.js';
import { certDer, x509, type Certificate } from '../../providers/common/x509.js';
import { utf8 } from '../../providers/common/encoding.js';
import { codeOf } from '../amd-sev-snp/helpers.js';

const CODES: CmsVerifyCodes = { algorithm: 'IDENTITY_ALG_UNSUPPORTED', digestMismatch: 'IDENTITY_DIGEST_MISMATCH', signatureInvalid: 'IDENTITY_SIGNATURE_INVALID' };
const CONTENT = utf8('{"instanceId":"i-0123456789abcdef0"}');
const b = (...x: number[]): Uint8Array => Uint8Array.from(x);
const int = (n: number): Uint8Array => tlv(TAG.INTEGER, b(n));
const alg = (o: string, nullParams = true): Uint8Array => tlv(TAG.SEQUENCE, encodeOid(o), ...(nullParams ? [tlv(TAG.NULL)] : []));
const attr = (type: string, ...values: Uint8Array[]): Uint8Array => tlv(TAG.SEQUENCE, encodeOid(type), tlv(TAG.SET, ...values));

interface Signer {
  cert: Certificate;
  key: CryptoKey;
}
async function makeSigner(cn: string, bits = 2048, serial = '0a1b2c'): Promise<Signer> {
  const keys = (await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: serial, name: `CN=${cn}`, keys, notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2035-01-01T00:00:00Z'), signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
  return { cert, key: keys.privateKey };
}

/** What a message is built from; every member defaults to a valid SHA-256 CMS message with signed attributes. */
interface Spec {
  signer: Signer;
  content?: Uint8Array;
  /** Content signed / digested (default: `content`). */
  signedContent?: Uint8Array;
  hash?: HashName;
  digestOid?: string;
  sigOid?: string;
  digestAlgorithms?: string[];
  /** false: no signed attributes (the signature covers the content). */
  attrs?: false | ((md: Uint8Array) => Uint8Array[]);
  unsignedAttrs?: Uint8Array;
  sdVersion?: number;
  siVersion?: number;
  certs?: Uint8Array[];
  crls?: boolean;
  detached?: boolean;
  eContentType?: string;
  outerType?: string;
  signers?: number;
  flipSignature?: boolean;
}

const HASH_OID: Record<string, string> = { sha1: '1.3.14.3.2.26', sha256: CMS_OID.sha256, sha384: CMS_OID.sha384, sha512: CMS_OID.sha512 };
const WEB: Record<string, string> = { sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };

async function build(s: Spec): Promise<Uint8Array> {
  const hash = s.hash ?? 'sha256';
  const content = s.content ?? CONTENT;
  const eType = s.eContentType ?? CMS_OID.data;
  const digestOid = s.digestOid ?? HASH_OID[hash]!;
  const md = await digest(hash, s.signedContent ?? content);
  const attrs = s.attrs === false ? undefined : (s.attrs ?? ((m: Uint8Array) => [attr(CMS_OID.contentType, encodeOid(eType)), attr(CMS_OID.messageDigest, tlv(TAG.OCTET_STRING, m))]))(md);
  const tbsSigned = attrs ? tlv(TAG.SET, ...attrs) : (s.signedContent ?? content);
  const key = await crypto.subtle.importKey('pkcs8', await crypto.subtle.exportKey('pkcs8', s.signer.key), { name: 'RSASSA-PKCS1-v1_5', hash: WEB[hash]! }, false, ['sign']);
  const sig = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key, tbsSigned as Uint8Array<ArrayBuffer>));
  if (s.flipSignature) sig[10] = (sig[10] as number) ^ 0x01;
  const f = certificateFields(certDer(s.signer.cert));
  const signerInfo = tlv(
    TAG.SEQUENCE,
    int(s.siVersion ?? 1),
    tlv(TAG.SEQUENCE, f.issuer, tlv(TAG.INTEGER, f.serial)),
    alg(digestOid, false),
    ...(attrs ? [tlv(ctx(0), ...attrs)] : []),
    alg(s.sigOid ?? CMS_OID.rsaEncryption),
    tlv(TAG.OCTET_STRING, sig),
    ...(s.unsignedAttrs ? [s.unsignedAttrs] : []),
  );
  const sd = tlv(
    TAG.SEQUENCE,
    int(s.sdVersion ?? 1),
    tlv(TAG.SET, ...(s.digestAlgorithms ?? [digestOid]).map((o) => alg(o, false))),
    tlv(TAG.SEQUENCE, encodeOid(eType), ...(s.detached ? [] : [tlv(ctx(0), tlv(TAG.OCTET_STRING, content))])),
    ...(s.certs ? [tlv(ctx(0), ...s.certs)] : []),
    ...(s.crls ? [tlv(ctx(1))] : []),
    tlv(TAG.SET, ...Array<Uint8Array>(s.signers ?? 1).fill(signerInfo)),
  );
  return tlv(TAG.SEQUENCE, encodeOid(s.outerType ?? CMS_OID.signedData), tlv(ctx(0), sd));
}

/** Parse, find the signer among `candidates`, verify: the AWS order. */
async function run(der: Uint8Array, candidates: readonly Certificate[]): Promise<void> {
  const sd = parseSignedData(der);
  const cert = findSigner(sd, candidates);
  if (!cert) throw new AttestError('IDENTITY_SIGNER_UNKNOWN', 'no signer');
  await verifySignerInfo(sd, cert, CODES, 'test document');
}

let signer: Signer;
let other: Signer;
let twin: Signer;
let small: Signer;
beforeAll(async () => {
  signer = await makeSigner('Signer');
  other = await makeSigner('Other', 2048, '0a1b2d');
  twin = await makeSigner('Signer');
  small = await makeSigner('Small', 1024, '01');
});

describe('CMS SignedData: accepted', () => {
  it('signed attributes, SHA-256/384/512, rsaEncryption and shaNWithRSA; without attributes; with unsigned attributes', async () => {
    const specs: Spec[] = [
      { signer },
      { signer, hash: 'sha384', sigOid: CMS_OID.sha384WithRSA },
      { signer, hash: 'sha512' },
      { signer, attrs: false },
      { signer, unsignedAttrs: tlv(ctx(1), attr('1.2.840.113549.1.9.6', tlv(TAG.NULL))) },
    ];
    for (const s of specs) expect(await codeOf(async () => run(await build(s), [other.cert, signer.cert]))).toBe('NO_ERROR');
  });

  it('parses every member; certificates are carried, not trusted', async () => {
    const sd = parseSignedData(await build({ signer, certs: [certDer(signer.cert)] }));
    expect(sd).toMatchObject({ version: 1, contentType: CMS_OID.data, digestAlgorithms: [CMS_OID.sha256] });
    expect(new TextDecoder().decode(sd.content)).toBe('{"instanceId":"i-0123456789abcdef0"}');
    expect(sd.certificates).toHaveLength(1);
    expect(sd.signer.signedAttrs?.attributes.map((a) => a.type)).toEqual([CMS_OID.contentType, CMS_OID.messageDigest]);
    expect(sd.signer.signedAttrs?.der[0]).toBe(0x31);
    expect(findSigner(sd, [other.cert])).toBeUndefined();
    expect(findSigner(sd, [other.cert, signer.cert])).toBe(signer.cert);
  });
});

describe('CMS SignedData: refused, each with its code', () => {
  const flip = (der: Uint8Array, at: number): Uint8Array => {
    const m = der.slice();
    m[at] = (m[at] as number) ^ 0x01;
    return m;
  };
  const rows: { name: string; der: () => Promise<Uint8Array>; candidates?: () => Certificate[]; wantCode: string }[] = [
    { name: 'message-digest of other content', der: () => build({ signer, signedContent: utf8('other') }), wantCode: 'IDENTITY_DIGEST_MISMATCH' },
    { name: 'content changed after signing (signed attributes)', der: async () => { const d = await build({ signer }); return flip(d, d.indexOf(0x7b) + 3); }, wantCode: 'IDENTITY_DIGEST_MISMATCH' },
    { name: 'content-type attribute is not eContentType', der: () => build({ signer, attrs: (m) => [attr(CMS_OID.contentType, encodeOid('1.2.840.113549.1.7.5')), attr(CMS_OID.messageDigest, tlv(TAG.OCTET_STRING, m))] }), wantCode: 'IDENTITY_DIGEST_MISMATCH' },
    { name: 'no message-digest attribute', der: () => build({ signer, attrs: () => [attr(CMS_OID.contentType, encodeOid(CMS_OID.data))] }), wantCode: 'IDENTITY_DIGEST_MISMATCH' },
    { name: 'message-digest with two values', der: () => build({ signer, attrs: (m) => [attr(CMS_OID.contentType, encodeOid(CMS_OID.data)), attr(CMS_OID.messageDigest, tlv(TAG.OCTET_STRING, m), tlv(TAG.OCTET_STRING, m))] }), wantCode: 'IDENTITY_DIGEST_MISMATCH' },
    { name: 'flipped signature byte (signed attributes)', der: () => build({ signer, flipSignature: true }), wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'flipped signature byte (no attributes)', der: () => build({ signer, attrs: false, flipSignature: true }), wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'content changed after signing (no attributes)', der: async () => { const d = await build({ signer, attrs: false }); return flip(d, d.indexOf(0x7b) + 3); }, wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'a twin certificate (same issuer and serial, other key)', der: () => build({ signer: twin }), wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'signer not among the candidates', der: () => build({ signer }), candidates: () => [other.cert], wantCode: 'IDENTITY_SIGNER_UNKNOWN' },
    { name: 'SHA-1 digest', der: () => build({ signer, hash: 'sha1' }), wantCode: 'IDENTITY_ALG_UNSUPPORTED' },
    { name: 'digest not listed in digestAlgorithms', der: () => build({ signer, digestAlgorithms: [CMS_OID.sha384] }), wantCode: 'IDENTITY_ALG_UNSUPPORTED' },
    { name: 'signature algorithm with another digest', der: () => build({ signer, sigOid: CMS_OID.sha512WithRSA }), wantCode: 'IDENTITY_ALG_UNSUPPORTED' },
    { name: 'RSA key below 2048 bits', der: () => build({ signer: small }), candidates: () => [small.cert], wantCode: 'IDENTITY_ALG_UNSUPPORTED' },
    { name: 'ContentInfo is not signedData', der: () => build({ signer, outerType: CMS_OID.data }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'SignedData version 3', der: () => build({ signer, sdVersion: 3 }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'SignerInfo version 3', der: () => build({ signer, siVersion: 3 }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'detached content', der: () => build({ signer, detached: true }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'CRLs', der: () => build({ signer, crls: true }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'two signers', der: () => build({ signer, signers: 2 }), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'a signed attribute type twice', der: () => build({ signer, attrs: (m) => [attr(CMS_OID.messageDigest, tlv(TAG.OCTET_STRING, m)), attr(CMS_OID.messageDigest, tlv(TAG.OCTET_STRING, m))] }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'an attribute without a value', der: () => build({ signer, attrs: () => [attr(CMS_OID.contentType)] }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'a certificate that is not a SEQUENCE', der: () => build({ signer, certs: [tlv(ctx(1))] }), wantCode: 'PKCS7_MALFORMED' },
    { name: 'more than 4 certificates', der: () => build({ signer, certs: Array<Uint8Array>(5).fill(certDer(signer.cert)) }), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'content above the cap', der: () => build({ signer, content: new Uint8Array(9 * 1024).fill(0x20) }), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'message above the byte cap', der: async () => concat(await build({ signer }), new Uint8Array(16 * 1024)), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'trailing byte', der: async () => concat(await build({ signer }), b(0)), wantCode: 'TRAILING_BYTES' },
    { name: 'wrong outer tag', der: async () => { const d = await build({ signer }); d[0] = 0x31; return d; }, wantCode: 'PKCS7_MALFORMED' },
    { name: 'indefinite outer length (BER)', der: async () => { const d = await build({ signer }); return concat(b(0x30, 0x80), d.subarray(4), b(0, 0)); }, wantCode: 'PKCS7_MALFORMED' },
    { name: 'non-minimal outer length', der: async () => { const d = await build({ signer }); return concat(b(0x30, 0x83, 0x00), d.subarray(2)); }, wantCode: 'PKCS7_MALFORMED' },
    { name: 'oversized outer length', der: async () => { const d = await build({ signer }); return concat(b(0x30, 0x84, 0, 0, d[2] as number, d[3] as number), d.subarray(4)); }, wantCode: 'LIMIT_EXCEEDED' },
  ];
  for (const r of rows) {
    it(`${r.name} → ${r.wantCode}`, async () => {
      const der = await r.der();
      expect(await codeOf(() => run(der, r.candidates?.() ?? [signer.cert]))).toBe(r.wantCode);
    });
  }

  it('the caller\'s code replaces PKCS7_MALFORMED; TRUNCATED and TRAILING_BYTES stay', async () => {
    const d = await build({ signer });
    const wrongTag = d.slice();
    wrongTag[0] = 0x31;
    expect(await codeOf(() => parseSignedData(wrongTag, { code: 'IMDS_DOCUMENT_MALFORMED' }))).toBe('IMDS_DOCUMENT_MALFORMED');
    expect(await codeOf(() => parseSignedData(d, { code: 'IMDS_DOCUMENT_MALFORMED' }))).toBe('NO_ERROR');
    expect(await codeOf(() => parseSignedData(concat(b(0x30, 0x80), d.subarray(4), b(0, 0)), { code: 'IMDS_DOCUMENT_MALFORMED' }))).toBe('IMDS_DOCUMENT_MALFORMED');
    expect(await codeOf(() => parseSignedData(d.subarray(0, 40), { code: 'IMDS_DOCUMENT_MALFORMED' }))).toBe('TRUNCATED');
    expect(await codeOf(() => parseSignedData(concat(d, b(0)), { code: 'IMDS_DOCUMENT_MALFORMED' }))).toBe('TRAILING_BYTES');
  });

  it('truncation sweep: every proper prefix is TRUNCATED', async () => {
    const d = await build({ signer, certs: [certDer(signer.cert)] });
    for (let n = 0; n < d.length; n++) expect(await codeOf(() => parseSignedData(d.subarray(0, n))), `prefix ${n}`).toBe('TRUNCATED');
  });

  it('bit-flip sweep over a signed message: nothing is accepted, every failure is typed', async () => {
    const d = await build({ signer });
    for (let i = 0; i < d.length; i++) {
      const m = d.slice();
      m[i] = (m[i] as number) ^ 0x04;
      expect(await codeOf(() => run(m, [signer.cert])), `flip at ${i}`).not.toBe('NO_ERROR');
    }
  });
});
