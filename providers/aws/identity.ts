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
 *   (the common CMS pipeline, providers/common/cms.ts, does this and the signature checks below);
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
import { malformed, rejected } from '../common/errors.js';
import { fromUtf8 } from '../common/encoding.js';
import { X509Codes, type Certificate } from '../common/x509.js';
import { CMS_OID, findSigner, parseSignedData, verifySignerInfo } from '../common/cms.js';

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

function checkValidity(c: Certificate, at: Date): void {
  if (at.getTime() < c.notBefore.getTime()) throw rejected(X509Codes.CERT_NOT_YET_VALID, 'the identity document certificate is not yet valid');
  if (at.getTime() > c.notAfter.getTime()) throw rejected(X509Codes.CERT_EXPIRED, 'the identity document certificate has expired');
}

/** Verifies a DER PKCS#7 identity document against the configured certificates (see header). */
export async function verifyIdentityDocument(der: Uint8Array, certs: readonly Certificate[], now: Date): Promise<IdentityDocument> {
  if (certs.length === 0) {
    throw rejected(X509Codes.TRUST_ANCHOR_MISSING, 'no EC2 identity document certificate is configured (identityCertificates)');
  }
  const sd = parseSignedData(der);
  if (sd.contentType !== CMS_OID.data) throw malformed(IdentityCodes.IDENTITY_MALFORMED, 'the identity document content is not id-data');
  // The configured certificates are pinned keys: a certificate carried in the message is never used.
  const signerCert = findSigner(sd, certs);
  if (!signerCert) throw rejected(IdentityCodes.IDENTITY_SIGNER_UNKNOWN, 'the identity document is not signed by a configured AWS certificate');
  checkValidity(signerCert, now);
  await verifySignerInfo(
    sd,
    signerCert,
    {
      algorithm: IdentityCodes.IDENTITY_ALG_UNSUPPORTED,
      digestMismatch: IdentityCodes.IDENTITY_DIGEST_MISMATCH,
      signatureInvalid: IdentityCodes.IDENTITY_SIGNATURE_INVALID,
    },
    'identity document',
  );

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
