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
 * Parsing and signature checks are the common CMS pipeline's (providers/common/cms.ts: strict
 * DER SignedData with attached id-data content, ≤ 4 certificates, no CRLs, exactly one v1
 * IssuerAndSerialNumber signer); this module decides which signer is acceptable.
 *
 * Checks (each with its own code):
 * - the structure above, DER → IMDS_DOCUMENT_MALFORMED (TRUNCATED / TRAILING_BYTES inside);
 * - the signer is the carried certificate the SignerInfo names (issuer + serial) → IMDS_SIGNER_MISSING;
 * - the signer certificate chains, with the PKCS#7's other certificates and configured
 *   intermediates, to a root pinned for IMDS (`anchorIds`; none configured → TRUST_ANCHOR_MISSING)
 *   at the verification time (x509 codes);
 * - the signer is Azure's metadata service (CN or SAN `metadata.azure.com` or a subdomain, or a
 *   sovereign-cloud equivalent) → IMDS_SIGNER_INVALID;
 * - digest SHA-256/384/512 and RSA (≥ 2048 bits) PKCS#1 v1.5 only → IMDS_ALGORITHM_UNSUPPORTED;
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
import { malformed, rejected } from '../common/errors.js';
import { fromUtf8 } from '../common/encoding.js';
import type { TrustStore } from '../common/types.js';
import { parsePemCertificates, parseCertificate, verifyChain, x509, type Certificate } from '../common/x509.js';
import { CMS_OID, findSigner, parseSignedData, verifySignerInfo, type SignedData } from '../common/cms.js';

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

/** Parses the PKCS#7 SignedData of an IMDS attested document (structure only; common CMS pipeline). */
export function parseImdsPkcs7(der: Uint8Array): SignedData {
  const sd = parseSignedData(der, { code: ImdsCodes.IMDS_DOCUMENT_MALFORMED });
  if (sd.contentType !== CMS_OID.data) throw malformed(ImdsCodes.IMDS_DOCUMENT_MALFORMED, 'encapsulated content is not id-data');
  return sd;
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
  const carried = doc.certificates.map((c) => parseCertificate(c, 'IMDS certificate'));
  const signer = findSigner(doc, carried);
  if (!signer) throw rejected(ImdsCodes.IMDS_SIGNER_MISSING, 'the IMDS document does not carry the certificate its SignerInfo names');
  const others = carried.filter((c) => c !== signer);
  await verifyChain({ leaf: signer, intermediates: [...others, ...i.intermediates], anchors: i.trust.anchors(i.anchorIds), at: i.at, maxDepth: 4, what: 'IMDS metadata certificate chain' });
  if (!signerIsAzureMetadata(signer)) {
    throw rejected(ImdsCodes.IMDS_SIGNER_INVALID, `the IMDS document is signed by "${signer.subject}", not Azure's metadata service`);
  }
  await verifySignerInfo(
    doc,
    signer,
    {
      algorithm: ImdsCodes.IMDS_ALGORITHM_UNSUPPORTED,
      digestMismatch: ImdsCodes.IMDS_SIGNATURE_INVALID,
      signatureInvalid: ImdsCodes.IMDS_SIGNATURE_INVALID,
    },
    'IMDS document',
  );

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
