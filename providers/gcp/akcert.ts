/**
 * @module providers/gcp/akcert
 *
 * Trust in a GCE vTPM attestation key: Google's EK/AK CA certifies the AK and names the instance.
 *
 * Two lineages are live (both pinned in providers/common/pins.ts, fetched by `trust fetch`):
 * - legacy: `tpm_ek_v1_cloud_host_root` (PinIds.GOOGLE_TPM_EK_ROOT_1) → `tpm_ek_v1_cloud_host-
 *   signer` intermediates (pki.goog/cloud_integrity) → RSA AK certificate with an empty subject,
 *   EKU 2.23.133.8.1 and a critical TPM SAN (TCG EK Credential Profile §3.2.9: directoryName with
 *   TPM manufacturer 2.23.133.2.1 = "id:474F4F47" (GOOG), model 2.23.133.2.2, version 2.23.133.2.3);
 * - current: "EK/AK CA Root" (PinIds.GOOGLE_EKAK_ROOT, Google CA Service) → "EK/AK CA
 *   Intermediate" → AK certificate (ECC P-256 or RSA) with subject
 *   `L=<zone>, O=Google Compute Engine, OU=<project id>, CN=<instance id>`, no EKU, no SAN.
 * Both carry the instance identity in extension 1.3.6.1.4.1.11129.2.1.21 (instance-info.ts).
 * These profiles were read off the real certificates in test/vectors with `openssl x509`.
 *
 * Checks (each has a negative test in test/gcp):
 * - the leaf and every evidence intermediate parse, with strict DER framing: exact length, outer
 *   signatureAlgorithm = tbsCertificate.signature, no unused signature bits, every known extension
 *   decodes, no extension twice (common/der.ts `certificateFields`; CERT_MALFORMED),
 *   so no unsigned byte of a certificate can change; intermediates come from the
 *   evidence plus the operator's configured Google intermediates; a self-issued certificate in the
 *   evidence (a root) is dropped, so a root is only ever the pinned one;
 * - the path reaches one of the two pinned Google roots at `now`: signatures, validity, CA flags,
 *   path length (common/x509 `verifyChain`; TRUST_ANCHOR_MISSING with no Google root loaded);
 * - no certificate in the path has a critical extension this verifier does not process
 *   (RFC 5280 §4.2: AK_CERT_PROFILE);
 * - the leaf is an end entity (basicConstraints absent or cA=FALSE), its keyUsage has
 *   digitalSignature and not keyCertSign/cRLSign (AK_CERT_PROFILE);
 * - the lineage profile: legacy → EKU contains 2.23.133.8.1 (or 2.23.133.8.3) and the critical
 *   TPM SAN names manufacturer GOOG; current → any EKU present contains one of those, and the
 *   subject is O=Google Compute Engine with L/OU/CN equal to the signed instance info's zone,
 *   project id and instance id (AK_CERT_PROFILE / AK_CERT_SUBJECT_MISMATCH);
 * - the instance-info extension is present (INSTANCE_INFO_MISSING), decodes strictly, and says
 *   isProduction (INSTANCE_NOT_PRODUCTION: go-tpm-tools likewise refuses to return the instance
 *   info of non-production certificates), unless the operator explicitly allows it.
 */
import { configError, malformed, rejected } from '../common/errors.js';
import { PinIds } from '../common/pins.js';
import type { TrustStore } from '../common/types.js';
import { parseCertificate, verifyChain, x509, X509Codes, type Certificate, type TrustAnchor } from '../common/x509.js';
import { certificateFields, children, decodeOne, oid, TAG, utf8String, want } from '../common/der.js';
import { INSTANCE_INFO_OID, parseGceInstanceInfo, type GceInstanceIdentity } from './instance-info.js';

export const AkCertCodes = {
  /** The attestation carries no AK certificate (a GCE AK is only trusted through one). */
  AK_CERT_MISSING: 'AK_CERT_MISSING',
  /** The AK certificate does not fit the profile Google issues. */
  AK_CERT_PROFILE: 'AK_CERT_PROFILE',
  /** The current-lineage subject disagrees with the signed instance info. */
  AK_CERT_SUBJECT_MISMATCH: 'AK_CERT_SUBJECT_MISMATCH',
  /** The certificate has no GCE instance-info extension. */
  INSTANCE_INFO_MISSING: 'INSTANCE_INFO_MISSING',
  /** The instance info says the instance is not a production GCE instance. */
  INSTANCE_NOT_PRODUCTION: 'INSTANCE_NOT_PRODUCTION',
} as const;

export type AkCertLineage = 'legacy' | 'current';

export const GOOGLE_ROOT_IDS: readonly string[] = Object.freeze([PinIds.GOOGLE_TPM_EK_ROOT_1, PinIds.GOOGLE_EKAK_ROOT]);

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  tcgKpEkCertificate: '2.23.133.8.1',
  tcgKpAikCertificate: '2.23.133.8.3',
  tpmManufacturer: '2.23.133.2.1',
  tpmModel: '2.23.133.2.2',
  tpmVersion: '2.23.133.2.3',
} as const;

/** Critical extensions this verifier processes (everything else critical is refused). */
const HANDLED_CRITICAL = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName]);

export interface VerifiedAkCert {
  readonly cert: Certificate;
  readonly lineage: AkCertLineage;
  readonly anchor: TrustAnchor;
  readonly identity: GceInstanceIdentity;
  /** The TPM SAN attributes of legacy certificates (manufacturer, model, version). */
  readonly tpmSan: Readonly<Record<string, string>> | undefined;
}

export interface AkCertInput {
  readonly akCert: Uint8Array;
  readonly intermediates: readonly Uint8Array[];
  /** Operator-configured Google intermediates (already parsed). */
  readonly configuredIntermediates: readonly Certificate[];
  readonly trust: TrustStore;
  readonly now: Date;
  readonly allowNonProduction: boolean;
}

const profile = (m: string) => rejected(AkCertCodes.AK_CERT_PROFILE, `AK certificate: ${m}`);

/** Reads the TPM directoryName attributes from a SubjectAltName extension value. */
function tpmSanAttributes(value: Uint8Array): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const gn of children(want(decodeOne(value, 'SubjectAltName'), TAG.SEQUENCE, 'SubjectAltName'), 'SubjectAltName')) {
      if (gn.tag !== 0xa4) continue; // only directoryName [4] carries the TPM attributes
      const [name, ...rest] = children(gn, 'directoryName');
      if (rest.length > 0) throw profile('the TPM SAN directoryName holds more than one Name');
      for (const rdn of children(want(name, TAG.SEQUENCE, 'Name'), 'Name')) {
        for (const atv of children(want(rdn, TAG.SET, 'RDN'), 'RDN')) {
          const [type, v, ...more] = children(want(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'), 'AttributeTypeAndValue');
          if (more.length > 0) throw profile('a TPM SAN AttributeTypeAndValue has more than two members');
          const t = oid(type, 'attribute type');
          if (t in out) throw profile(`TPM SAN repeats attribute ${t}`);
          out[t] = utf8String(v, 'attribute value');
        }
      }
    }
    return out;
  } catch (e) {
    if (e instanceof Error && 'code' in e && (e.code === 'DER_MALFORMED' || e.code === 'TRUNCATED' || e.code === 'TRAILING_BYTES')) {
      throw profile(`the subjectAltName does not decode (${e.message})`);
    }
    throw e;
  }
}

function ekuHasTcg(c: Certificate): boolean | undefined {
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku) return undefined;
  const usages = eku.usages.map(String);
  return usages.includes(OID.tcgKpEkCertificate) || usages.includes(OID.tcgKpAikCertificate);
}

function oneField(c: Certificate, name: string): string | undefined {
  const v = c.subjectName.getField(name);
  if (v.length > 1) throw rejected(AkCertCodes.AK_CERT_SUBJECT_MISMATCH, `AK certificate subject has ${v.length} ${name} attributes`);
  return v[0];
}

/**
 * Parsed-certificate memo. X.509 parsing dominates the warm path (the same AK certificate and
 * Google intermediates arrive with every attestation of a node), and it is a pure function of the
 * DER bytes: the memo is keyed by the exact bytes and only holds certificates that passed the
 * strict checks below. It caches *parsing* only: chain, signatures, validity and profile are
 * checked on every call. Bounded; the oldest entry is evicted first.
 */
const MEMO_MAX = 512;
const certMemo = new Map<string, Certificate>();

/** The DER bytes as a string of char codes 0..255 (a memo key: exact, cheaper than base64). */
function bytesKey(der: Uint8Array): string {
  let s = '';
  for (let i = 0; i < der.length; i += 0x2000) s += String.fromCharCode.apply(null, der.subarray(i, i + 0x2000) as unknown as number[]);
  return s;
}

/** Parses a certificate from the evidence with strict DER framing (common/der.ts) on top. */
function strictCertificate(der: Uint8Array, what: string): Certificate {
  const key = bytesKey(der);
  const hit = certMemo.get(key);
  if (hit) return hit;
  const c = parseStrict(der, what);
  if (certMemo.size >= MEMO_MAX) certMemo.delete(certMemo.keys().next().value as string);
  certMemo.set(key, c);
  return c;
}

function parseStrict(der: Uint8Array, what: string): Certificate {
  const c = parseCertificate(der, what);
  try {
    certificateFields(der, what);
    // The library decodes known extensions lazily and throws plain Errors on malformed ones
    // (e.g. a subjectAltName that does not decode): decode them all here, under a typed error.
    const types = c.extensions.map((e) => e.type);
    // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular
    // extension" — otherwise two readers could pick different instance-info extensions.
    if (new Set(types).size !== types.length) throw new Error('an extension appears twice');
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what}: ${cause instanceof Error ? cause.message : 'malformed'}`, { cause });
  }
  return c;
}

/**
 * What is decoded from a certificate's own bytes (the instance-info and TPM SAN extensions), per
 * parsed certificate. Pure functions of those bytes, so they are kept for as long as the parsed
 * certificate is (certMemo / the caller); a decoding error is not kept (it is raised again on
 * every call). Nothing here is a verdict: every check below runs on every call.
 */
const decoded = new WeakMap<Certificate, { identity?: GceInstanceIdentity; tpmSan?: Readonly<Record<string, string>> }>();

function decodedOf(c: Certificate): { identity?: GceInstanceIdentity; tpmSan?: Readonly<Record<string, string>> } {
  let d = decoded.get(c);
  if (!d) {
    d = {};
    decoded.set(c, d);
  }
  return d;
}

/** Verifies the AK certificate and returns its lineage and signed instance identity. */
export async function verifyAkCertificate(input: AkCertInput): Promise<VerifiedAkCert> {
  if (input.akCert.byteLength === 0) {
    throw rejected(AkCertCodes.AK_CERT_MISSING, 'the attestation has no AK certificate; a GCE AK is trusted only through Google\'s certificate');
  }
  const leaf = strictCertificate(input.akCert, 'AK certificate');
  // Evidence supplies intermediates only: a self-issued certificate is a root by definition and is
  // dropped (a copy of a pinned root is harmless; any other root must never enter the path).
  const evidenceInters = input.intermediates
    .map((d, i) => strictCertificate(d, `intermediate certificate ${i}`))
    .filter((c) => c.subject !== c.issuer);
  const anchors = input.trust.anchors(GOOGLE_ROOT_IDS);
  const chain = await verifyChain({
    leaf,
    intermediates: [...evidenceInters, ...input.configuredIntermediates],
    anchors,
    at: input.now,
    maxDepth: 5,
    what: 'GCE AK certificate chain',
  });
  const lineage: AkCertLineage = chain.anchor.id === PinIds.GOOGLE_EKAK_ROOT ? 'current' : 'legacy';

  for (const c of chain.path) {
    for (const ext of c.extensions) {
      if (ext.critical && !HANDLED_CRITICAL.has(ext.type)) {
        throw profile(`"${c.subject}" has an unhandled critical extension ${ext.type}`);
      }
    }
  }

  // End-entity key for signing only.
  const bc = leaf.getExtension(x509.BasicConstraintsExtension);
  if (bc?.ca) throw profile('the AK certificate is a CA certificate');
  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  if (!ku || (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) throw profile('keyUsage lacks digitalSignature');
  if ((ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0) throw profile('keyUsage allows certificate signing');

  // Instance identity (signed).
  const infoExt = leaf.extensions.find((e) => e.type === INSTANCE_INFO_OID);
  if (!infoExt) throw rejected(AkCertCodes.INSTANCE_INFO_MISSING, 'the AK certificate has no GCE instance-info extension');
  const memo = decodedOf(leaf);
  const identity = (memo.identity ??= parseGceInstanceInfo(new Uint8Array(infoExt.value)));
  if (identity.securityProperties?.isProduction !== true && !input.allowNonProduction) {
    throw rejected(AkCertCodes.INSTANCE_NOT_PRODUCTION, 'the AK certificate does not mark the instance as production');
  }

  let tpmSan: Readonly<Record<string, string>> | undefined;
  const eku = ekuHasTcg(leaf);
  if (eku === false) throw profile('extendedKeyUsage lacks tcg-kp-EKCertificate / tcg-kp-AIKCertificate');
  if (lineage === 'legacy') {
    if (eku === undefined) throw profile('legacy AK certificates carry extendedKeyUsage 2.23.133.8.1');
    const san = leaf.extensions.find((e) => e.type === OID.subjectAltName);
    if (!san || !san.critical) throw profile('legacy AK certificates carry a critical TPM subjectAltName');
    tpmSan = memo.tpmSan ??= Object.freeze(tpmSanAttributes(new Uint8Array(san.value)));
    if (tpmSan[OID.tpmManufacturer] !== 'id:474F4F47') throw profile('the TPM manufacturer is not GOOG (id:474F4F47)');
  } else {
    if (oneField(leaf, 'O') !== 'Google Compute Engine') throw profile('subject O is not "Google Compute Engine"');
    const mismatch: string[] = [];
    if (oneField(leaf, 'L') !== identity.zone) mismatch.push('L/zone');
    if (oneField(leaf, 'OU') !== identity.projectId) mismatch.push('OU/project id');
    if (oneField(leaf, 'CN') !== identity.instanceId.toString()) mismatch.push('CN/instance id');
    if (mismatch.length > 0) {
      throw rejected(AkCertCodes.AK_CERT_SUBJECT_MISMATCH, `AK certificate subject disagrees with its instance info: ${mismatch.join(', ')}`);
    }
  }
  return Object.freeze({ cert: leaf, lineage, anchor: chain.anchor, identity, tpmSan });
}

/** Parses configured intermediates (DER), refusing anything that is not a CA certificate. */
export function parseConfiguredIntermediates(ders: readonly Uint8Array[]): Certificate[] {
  return ders.map((d, i) => {
    const c = strictCertificate(d, `configured intermediate ${i}`);
    if (!c.getExtension(x509.BasicConstraintsExtension)?.ca) {
      throw configError('GCP_OPTIONS_INVALID', `configured intermediate ${i} ("${c.subject}") is not a CA certificate`);
    }
    return c;
  });
}
