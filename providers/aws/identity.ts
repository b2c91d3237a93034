/**
 * @module providers/aws/identity
 *
 * The EC2 instance identity document (IID) as account / zone proof.
 *
 * The NitroTPM document proves *which instance* (id, region) booted *what* (PCRs), fresh (nonce),
 * but says nothing about the AWS account. EC2 signs a JSON identity document for every instance
 * (`accountId`, `region`, `availabilityZone`, `instanceId`, `imageId`, `instanceType`, …) with a
 * per-region AWS key; the instance reads it from IMDS (`/latest/dynamic/instance-identity/rsa2048`,
 * a PKCS#7 SignedData with the JSON attached, RSA-2048 / SHA-256). AWS publishes the matching
 * certificates per region ("AWS public certificates for instance identity document signatures",
 * EC2 User Guide); the operator configures them — they are pinned keys, not a PKI, and no
 * certificate carried in the message is ever used.
 *
 * The IID is static and replayable (no nonce), so on its own it proves nothing about the caller.
 * Bound to a verified NitroTPM document by instance id (EC2 instance ids are unique and never
 * reused), it proves that the attested instance belongs to `accountId` and sits in
 * `availabilityZone`: a statement AWS signed about that instance.
 *
 * `verifyIdentityDocument` checks:
 * - the PKCS#7 is strict DER SignedData with attached id-data content and one v1 signer
 *   (`pkcs7.ts`);
 * - the signer (issuer DN bytes + serial) is one of the configured certificates, which is valid at
 *   the injected time and holds an RSA key of at least 2048 bits;
 * - the digest is SHA-256/384/512 (SHA-1 and the DSA `pkcs7` endpoint are refused) and is listed
 *   in `digestAlgorithms`; the signature algorithm is RSA PKCS#1 v1.5 with that digest;
 * - with signed attributes: exactly one `contentType` = id-data and one `messageDigest` equal
 *   (constant time) to the content's digest, and the signature covers the attributes' DER SET;
 *   without them, the signature covers the content;
 * - the signature verifies;
 * - the content is UTF-8 JSON with the identity fields of the expected types.
 * `bindIdentityDocument` then requires its `instanceId` and `region` to equal the NitroTPM
 * document's, and its `availabilityZone` to lie in that region.
 */
import { z } from 'zod';
import { ByteReader, concat } from '../common/bytes.js';
import { malformed, rejected } from '../common/errors.js';
import { fromUtf8 } from '../common/encoding.js';
import { digest, type HashName } from '../common/digest.js';
import { timingSafeEqual } from '../common/ct.js';
import { X509Codes, certDer, importPublicKey, type Certificate } from '../common/x509.js';
import { OID, parseSignedData, readTlv, type SignedData } from './pkcs7.js';

export const IdentityCodes = {
  /** The identity document's content is not the expected JSON. */
  IDENTITY_MALFORMED: 'IDENTITY_MALFORMED',
  /** No configured certificate matches the signer. */
  IDENTITY_SIGNER_UNKNOWN: 'IDENTITY_SIGNER_UNKNOWN',
  /** Digest or signature algorithm not allowed (SHA-1, DSA, …). */
  IDENTITY_ALG_UNSUPPORTED: 'IDENTITY_ALG_UNSUPPORTED',
  /** The messageDigest attribute does not match the content, or contentType is wrong. */
  IDENTITY_DIGEST_MISMATCH: 'IDENTITY_DIGEST_MISMATCH',
  /** The RSA signature does not verify with the configured certificate. */
  IDENTITY_SIGNATURE_INVALID: 'IDENTITY_SIGNATURE_INVALID',
  /** The identity document names another instance or region than the NitroTPM document. */
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
} as const;

const DIGESTS: Readonly<Record<string, HashName>> = {
  [OID.sha256]: 'sha256',
  [OID.sha384]: 'sha384',
  [OID.sha512]: 'sha512',
};
const RSA_WITH: Readonly<Record<string, HashName>> = {
  [OID.sha256WithRSA]: 'sha256',
  [OID.sha384WithRSA]: 'sha384',
  [OID.sha512WithRSA]: 'sha512',
};
const WEB_HASH: Readonly<Record<HashName, string>> = { sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };

/** The IID fields we use (EC2 User Guide, "Instance identity documents"); others are ignored. */
const IidSchema = z.looseObject({
  accountId: z.string().regex(/^\d{12}$/),
  region: z.string().regex(/^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/),
  availabilityZone: z.string().min(1).max(64),
  instanceId: z.string().regex(/^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/),
  imageId: z.string().min(1).max(64),
  instanceType: z.string().min(1).max(64),
  architecture: z.string().max(32).optional(),
  pendingTime: z.string().max(64).optional(),
  privateIp: z.string().max(64).nullable().optional(),
});

export interface IdentityDocument {
  readonly accountId: string;
  readonly region: string;
  readonly availabilityZone: string;
  readonly instanceId: string;
  readonly imageId: string;
  readonly instanceType: string;
  readonly architecture?: string;
  /** The instance's primary private IPv4 address, when the document has one (a kubelet serving-certificate SAN the approver may accept). */
  readonly privateIp?: string;
}

/** issuer Name DER and serialNumber contents of a certificate, exactly as encoded (RFC 5280 §4.1). */
function issuerAndSerial(c: Certificate): { issuer: Uint8Array; serial: Uint8Array } {
  const r = new ByteReader(certDer(c));
  const cert = readTlv(r, 'Certificate');
  const tbs = readTlv(new ByteReader(cert.value), 'TBSCertificate');
  const t = new ByteReader(tbs.value);
  let first = readTlv(t, 'version or serial');
  if (first.tag === 0xa0) first = readTlv(t, 'serialNumber');
  readTlv(t, 'signature');
  const issuer = readTlv(t, 'issuer');
  return { issuer: issuer.raw, serial: first.value };
}

function stripSign(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.byteLength - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function findSigner(sd: SignedData, certs: readonly Certificate[]): Certificate {
  for (const c of certs) {
    const { issuer, serial } = issuerAndSerial(c);
    if (timingSafeEqual(issuer, sd.signer.issuer) && timingSafeEqual(stripSign(serial), stripSign(sd.signer.serial))) return c;
  }
  throw rejected(IdentityCodes.IDENTITY_SIGNER_UNKNOWN, 'the identity document is not signed by a configured AWS certificate');
}

function checkValidity(c: Certificate, at: Date): void {
  if (at.getTime() < c.notBefore.getTime()) throw rejected(X509Codes.CERT_NOT_YET_VALID, 'the identity document certificate is not yet valid');
  if (at.getTime() > c.notAfter.getTime()) throw rejected(X509Codes.CERT_EXPIRED, 'the identity document certificate has expired');
}

function singleValue(sd: SignedData, type: string): Uint8Array {
  const a = sd.signer.signedAttrs?.attributes.find((x) => x.type === type);
  if (!a || a.values.length !== 1) throw rejected(IdentityCodes.IDENTITY_DIGEST_MISMATCH, `signed attribute ${type} is missing or not single-valued`);
  return a.values[0]!.raw;
}

/** Verifies a DER PKCS#7 identity document against the configured certificates (see header). */
export async function verifyIdentityDocument(der: Uint8Array, certs: readonly Certificate[], now: Date): Promise<IdentityDocument> {
  if (certs.length === 0) {
    throw rejected(X509Codes.TRUST_ANCHOR_MISSING, 'no EC2 identity document certificate is configured (identityCertificates)');
  }
  const sd = parseSignedData(der);
  if (sd.contentType !== OID.data) throw malformed(IdentityCodes.IDENTITY_MALFORMED, 'the identity document content is not id-data');
  const signerCert = findSigner(sd, certs);
  checkValidity(signerCert, now);

  const hash = DIGESTS[sd.signer.digestAlgorithm];
  if (!hash) throw rejected(IdentityCodes.IDENTITY_ALG_UNSUPPORTED, `digest ${sd.signer.digestAlgorithm} is not allowed (SHA-256/384/512 only)`);
  if (!sd.digestAlgorithms.includes(sd.signer.digestAlgorithm)) {
    throw rejected(IdentityCodes.IDENTITY_ALG_UNSUPPORTED, 'the signer digest is not listed in digestAlgorithms');
  }
  const sigAlg = sd.signer.signatureAlgorithm;
  if (!(sigAlg === OID.rsaEncryption || RSA_WITH[sigAlg] === hash)) {
    throw rejected(IdentityCodes.IDENTITY_ALG_UNSUPPORTED, `signature algorithm ${sigAlg} is not RSA PKCS#1 v1.5 with ${hash}`);
  }
  const keyAlg = signerCert.publicKey.algorithm as Algorithm & { modulusLength?: number };
  if (keyAlg.name !== 'RSASSA-PKCS1-v1_5' && keyAlg.name !== 'RSA-PSS' && keyAlg.name !== 'RSA-OAEP') {
    throw rejected(IdentityCodes.IDENTITY_ALG_UNSUPPORTED, 'the configured identity certificate does not hold an RSA key');
  }

  let signed: Uint8Array;
  if (sd.signer.signedAttrs) {
    const ct = singleValue(sd, OID.contentType);
    // DER of OBJECT IDENTIFIER id-data.
    const idData = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01);
    if (!timingSafeEqual(ct, idData)) throw rejected(IdentityCodes.IDENTITY_DIGEST_MISMATCH, 'signed contentType is not id-data');
    const md = singleValue(sd, OID.messageDigest);
    const want = await digest(hash, sd.content);
    const mdValue = readTlv(new ByteReader(md), 'messageDigest');
    if (mdValue.tag !== 0x04 || !timingSafeEqual(mdValue.value, want)) {
      throw rejected(IdentityCodes.IDENTITY_DIGEST_MISMATCH, 'the signed messageDigest does not match the content');
    }
    // RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF (tag 0x31).
    signed = concat(Uint8Array.of(0x31), sd.signer.signedAttrs.raw.subarray(1));
  } else {
    signed = sd.content;
  }
  const key = await importPublicKey(signerCert, { name: 'RSASSA-PKCS1-v1_5', hash: WEB_HASH[hash] } as RsaHashedImportParams);
  const bits = (key.algorithm as KeyAlgorithm & { modulusLength?: number }).modulusLength ?? 0;
  if (bits < 2048) throw rejected(IdentityCodes.IDENTITY_ALG_UNSUPPORTED, `RSA key of ${bits} bits is too small`);
  let ok: boolean;
  try {
    ok = await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, sd.signer.signature as Uint8Array<ArrayBuffer>, signed as Uint8Array<ArrayBuffer>);
  } catch {
    ok = false;
  }
  if (!ok) throw rejected(IdentityCodes.IDENTITY_SIGNATURE_INVALID, 'the identity document signature does not verify');

  // --- authenticated from here on ---
  let json: unknown;
  try {
    json = JSON.parse(fromUtf8(sd.content, 'identity document'));
  } catch (cause) {
    throw malformed(IdentityCodes.IDENTITY_MALFORMED, 'the identity document is not JSON', { cause });
  }
  const r = IidSchema.safeParse(json);
  if (!r.success) {
    throw malformed(IdentityCodes.IDENTITY_MALFORMED, `identity document: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`);
  }
  const d = r.data;
  const out: { -readonly [K in keyof IdentityDocument]: IdentityDocument[K] } = {
    accountId: d.accountId,
    region: d.region,
    availabilityZone: d.availabilityZone,
    instanceId: d.instanceId,
    imageId: d.imageId,
    instanceType: d.instanceType,
  };
  if (d.architecture !== undefined) out.architecture = d.architecture;
  if (typeof d.privateIp === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(d.privateIp)) out.privateIp = d.privateIp;
  return Object.freeze(out);
}

/** Binds the identity document to the instance the NitroTPM document proved. */
export function bindIdentityDocument(iid: IdentityDocument, nitro: { instanceId: string; region: string }): void {
  if (iid.instanceId !== nitro.instanceId) {
    throw rejected(IdentityCodes.IDENTITY_MISMATCH, `identity document is for ${iid.instanceId}, the NitroTPM document for ${nitro.instanceId}`);
  }
  if (iid.region !== nitro.region) {
    throw rejected(IdentityCodes.IDENTITY_MISMATCH, `identity document region ${iid.region} differs from ${nitro.region}`);
  }
  if (!iid.availabilityZone.startsWith(iid.region)) {
    throw rejected(IdentityCodes.IDENTITY_MISMATCH, `availability zone ${iid.availabilityZone} is not in ${iid.region}`);
  }
}
