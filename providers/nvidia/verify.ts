/**
 * @module providers/nvidia/verify
 *
 * Authenticity and binding of one GPU's attestation report.
 *
 * `verifyGpuReport` checks, in this order:
 * - the PEM chain parses (2..8 certificates, leaf first); the leaf has an ECDSA P-384 key and,
 *   as it states a key usage, may sign (digitalSignature);
 * - the report's ECDSA P-384 / SHA-384 signature (96 bytes r ‖ s, DSP0274 1.1 signature byte
 *   order) verifies with the leaf key over the signed bytes: the GET_MEASUREMENTS request ‖ the
 *   MEASUREMENTS response up to its signature, i.e. the SPDM 1.1 L1/L2 transcript of the single
 *   exchange NVIDIA's evidence holds (libspdm "standard all-measurements report"). Nothing of the
 *   report is decoded before this; the signature length comes from the pinned algorithm;
 * - only then the report is parsed (`parse.ts`) and the request nonce compared, in constant time,
 *   with the expected 32-byte binding (NONCE_MISMATCH), and the host's unsigned JSON copy of the
 *   nonce with the signed one;
 * - the chain: leaf → evidence intermediates → the *pinned* NVIDIA Device Identity CA, through
 *   `common/x509.verifyChain` (signatures, CA flags, path length, validity at the injected time).
 *   The root comes only from the trust store: a self-signed certificate at the end of the
 *   evidence chain must be a byte copy of the pinned root, any other root is refused
 *   (DEVICE_CHAIN_UNTRUSTED). The path must use every evidence certificate in leaf-first order
 *   and every certificate must be P-384 / ecdsa-with-SHA384 (NVIDIA's device PKI uses nothing
 *   else) (DEVICE_CHAIN_INVALID);
 * - the chip and architecture from the authenticated leaf subject (`GH100 …` Hopper, `GB100 …`
 *   Blackwell), which the unsigned JSON `arch` must agree with;
 * - the FWID binding: the leaf's TCG DICE extension names the firmware (FMC) the key belongs to;
 *   where the report's opaque data carries an FWID it must equal it. Hopper leaves use OID
 *   2.23.133.5.4.1 with the legacy CompositeDeviceID layout `{version, subjectPublicKeyInfo,
 *   FWID}`; Blackwell leaves use 2.23.133.5.4.1.1 with a DiceTcbInfo (TCG DICE Attestation
 *   Architecture, `fwids [6]`, the first FWID). Reports of drivers that predate the opaque FWID
 *   field have none: then the binding rests on DICE alone (see docs/nvidia.md), and
 *   `requireReportFwid` decides whether that is accepted.
 */
import { timingSafeEqual } from '../common/ct.js';
import { isAttestError, malformed, rejected, configError, type CodeOfKind } from '../common/errors.js';
import { sha256 } from '../common/digest.js';
import { toHex } from '../common/encoding.js';
import { X509Codes, certDer, parsePemCertificates, verifyChain, x509, type Certificate, type TrustAnchor } from '../common/x509.js';
import { NvidiaCodes } from './codes.js';
import { certificateFields, children, decodeOne, derAs, oid, TAG, want, type Tlv } from '../common/der.js';
import type { GpuEvidence } from './evidence.js';
import { parseAttestationReport, signedPart, SPDM, type AttestationReport } from './parse.js';

export type GpuArch = 'hopper' | 'blackwell';

/** Chips this verifier knows, from the leaf subject's first word. H200 is a GH100. */
export const CHIPS: Readonly<Record<string, GpuArch>> = Object.freeze({ GH100: 'hopper', GB100: 'blackwell' });

/** TCG DICE OIDs (TCG DICE Attestation Architecture; NVIDIA attestation-sdk `dice_tcb_info.h`). */
export const OID_DICE_TCB_INFO = '2.23.133.5.4.1';
export const OID_DICE_TCB_INFO_ALIAS = '2.23.133.5.4.1.1';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';

const MAX_CHAIN_CERTS = 8;
const WHAT = 'NVIDIA GPU device certificate chain';

export interface VerifiedGpuReport {
  readonly report: AttestationReport;
  /** Leaf first, pinned root last. */
  readonly path: readonly Certificate[];
  readonly anchor: TrustAnchor;
  readonly chip: string;
  readonly arch: GpuArch;
  /** NVIDIA's `hwmodel`: the subject CN of the certificate that issued the leaf (the GSP BROM DeviceID). */
  readonly hwModel: string;
  /** Leaf serial number, hex, and NVIDIA's `ueid` (the same number in decimal). */
  readonly leafSerial: string;
  readonly ueid: string;
  /** SHA-256 of the DeviceID (BROM) certificate: one physical GPU. */
  readonly deviceCertSha256: string;
  /** The leaf's DICE FWID (hex). */
  readonly fwid: string;
  /** Whether the report carried an FWID (and it matched the leaf's). */
  readonly fwidInReport: boolean;
}

export interface VerifyReportOptions {
  /** Pinned anchors for the Device Identity CA (from the trust store). */
  readonly anchors: readonly TrustAnchor[];
  /** The expected request nonce: the broker's 32-byte binding. */
  readonly binding: Uint8Array;
  readonly at: Date;
  /** Refuse reports without an opaque FWID (drivers before the field existed). */
  readonly requireReportFwid: boolean;
}

function isP384(c: Certificate): boolean {
  const k = c.publicKey.algorithm as Algorithm & { namedCurve?: string };
  const s = c.signatureAlgorithm as Algorithm & { hash?: { name?: string } };
  return k.name === 'ECDSA' && k.namedCurve === 'P-384' && s.name === 'ECDSA' && s.hash?.name === 'SHA-384';
}

/** Imports a certificate's P-384 key straight through WebCrypto. */
export async function importP384(c: Certificate, what: string): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey('spki', c.publicKey.rawData, { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']);
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what}: cannot import the P-384 key of "${c.subject}"`, { cause });
  }
}

/** The PEM chain of one GPU, leaf first. */
export function parseDeviceChain(pem: string, position: number): Certificate[] {
  const certs = parsePemCertificates(pem, `evidence[${position}].certificate`, MAX_CHAIN_CERTS);
  if (certs.length < 2) throw rejected(NvidiaCodes.DEVICE_CHAIN_INVALID, `${WHAT}: a leaf and at least its issuer are needed, got ${certs.length} certificate(s)`);
  return certs;
}

function leafKeyChecks(leaf: Certificate, what: string): void {
  if (!isP384(leaf)) throw rejected(NvidiaCodes.DEVICE_CHAIN_INVALID, `${what}: the leaf is not ECDSA P-384 with SHA-384`);
  let ku: x509.KeyUsagesExtension | null;
  try {
    ku = leaf.getExtension(x509.KeyUsagesExtension);
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what}: the leaf's key usage is malformed`, { cause });
  }
  if (ku && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    throw rejected(NvidiaCodes.DEVICE_CHAIN_INVALID, `${what}: the leaf's key usage does not allow signing`);
  }
}

/**
 * The report's signature with `leaf`'s key, over `signedPart(report).signed`. Throws
 * SIGNATURE_INVALID; nothing of the report is decoded.
 */
export async function verifyReportSignature(report: Uint8Array, leaf: Certificate): Promise<void> {
  leafKeyChecks(leaf, WHAT);
  const { signed, signature } = signedPart(report);
  const key = await importP384(leaf, WHAT);
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, signature as Uint8Array<ArrayBuffer>, signed as Uint8Array<ArrayBuffer>);
  if (!ok) throw rejected(NvidiaCodes.SIGNATURE_INVALID, 'the attestation report signature does not verify with the leaf certificate key');
}

/** Maps a `verifyChain` failure to this verifier's codes (keeping the X.509 code in `detail`). */
export function chainError(e: unknown, codes: { untrusted: CodeOfKind<'rejected'>; invalid: CodeOfKind<'rejected'>; expired: CodeOfKind<'rejected'> }, what: string): never {
  if (!isAttestError(e)) throw malformed(X509Codes.CERT_MALFORMED, `${what}: a certificate could not be decoded`, { cause: e });
  if (e.kind === 'malformed' || e.kind === 'config') throw e;
  const detail = { x509Code: e.code };
  switch (e.code) {
    // No path whose every signature verifies leads to the pinned root (a foreign root, a
    // same-named impostor, or a corrupted link are all the same fact to a relying party).
    case X509Codes.CHAIN_UNTRUSTED:
    case X509Codes.TRUST_ANCHOR_MISSING:
    case X509Codes.CERT_SIGNATURE_INVALID:
      throw rejected(codes.untrusted, e.message, { cause: e, detail });
    case X509Codes.CERT_EXPIRED:
    case X509Codes.CERT_NOT_YET_VALID:
      throw rejected(codes.expired, e.message, { cause: e, detail });
    default:
      throw rejected(codes.invalid, e.message, { cause: e, detail });
  }
}

const isSelfIssued = (c: Certificate): boolean => c.subject === c.issuer;

/**
 * Validates an evidence chain (leaf first, optionally ending in a copy of the root) up to one of
 * `anchors`: the root copy must be byte-identical to a pinned anchor, the path must use every
 * certificate in order, and every certificate must be P-384 / ecdsa-with-SHA384.
 */
export async function verifyPinnedChain(
  certs: readonly Certificate[],
  anchors: readonly TrustAnchor[],
  at: Date,
  codes: { untrusted: CodeOfKind<'rejected'>; invalid: CodeOfKind<'rejected'>; expired: CodeOfKind<'rejected'> },
  what: string,
): Promise<{ path: readonly Certificate[]; anchor: TrustAnchor }> {
  const leaf = certs[0] as Certificate;
  const last = certs[certs.length - 1] as Certificate;
  const anchorDers = anchors.map((a) => certDer(a.cert));
  let evidence = certs;
  if (certs.length > 1 && isSelfIssued(last)) {
    // A root in the evidence is only ever a copy of the pinned one, never an anchor.
    if (!anchorDers.some((d) => timingSafeEqual(d, certDer(last)))) {
      throw rejected(codes.untrusted, `${what}: the evidence ends in a root "${last.subject}" that is not the pinned root`);
    }
    evidence = certs.slice(0, -1);
  }
  let chain: Awaited<ReturnType<typeof verifyChain>>;
  try {
    chain = await verifyChain({ leaf, intermediates: evidence.slice(1), anchors, at, maxDepth: MAX_CHAIN_CERTS, what });
  } catch (e) {
    return chainError(e, codes, what);
  }
  if (chain.path.length !== evidence.length + 1) {
    throw rejected(codes.invalid, `${what}: the evidence holds certificates the path to the pinned root does not use`);
  }
  evidence.forEach((c, i) => {
    if (!timingSafeEqual(certDer(c), certDer(chain.path[i] as Certificate))) {
      throw rejected(codes.invalid, `${what}: the certificates are not in leaf-first order`);
    }
  });
  chain.path.forEach((c, i) => {
    if (!isP384(c)) throw rejected(codes.invalid, `${what}: certificate ${i} "${c.subject}" is not ECDSA P-384 with SHA-384`);
  });
  return { path: chain.path, anchor: chain.anchor };
}

function firstCn(c: Certificate, what: string): string {
  let cn: string[];
  try {
    cn = c.subjectName.getField('CN');
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what}: the subject cannot be read`, { cause });
  }
  if (cn.length !== 1) throw rejected(NvidiaCodes.DEVICE_CHAIN_INVALID, `${what}: the subject has ${cn.length} common names`);
  return cn[0] as string;
}

const CERT = X509Codes.CERT_MALFORMED;

function fwidOf(t: Tlv | undefined, what: string): Uint8Array {
  const parts = children(want(t, TAG.SEQUENCE, what), what);
  if (parts.length !== 2) throw malformed(CERT, `${what}: an FWID is SEQUENCE { hashAlg, digest }`);
  const alg = oid(parts[0], `${what} hashAlg`);
  const digest = want(parts[1], TAG.OCTET_STRING, `${what} digest`).value;
  if (alg !== OID_SHA384 || digest.length !== SPDM.DIGEST_LENGTH) {
    throw rejected(NvidiaCodes.FWID_MISMATCH, `${what}: the FWID is not a SHA-384 digest (${alg}, ${digest.length} bytes)`);
  }
  return digest;
}

/**
 * The leaf's DICE FWID: CompositeDeviceID `SEQUENCE { INTEGER, SubjectPublicKeyInfo, FWID }`
 * (Hopper, OID 2.23.133.5.4.1) or DiceTcbInfo `SEQUENCE { … fwids [6] IMPLICIT SEQUENCE OF FWID … }`
 * (Blackwell, OID 2.23.133.5.4.1.1; also accepted under 2.23.133.5.4.1, which TCG reused), the
 * first FWID. Undefined when the leaf has neither extension; both at once is refused.
 */
export function leafFwid(leaf: Certificate): Uint8Array | undefined {
  return derAs(CERT, () => readLeafFwid(leaf));
}

function readLeafFwid(leaf: Certificate): Uint8Array | undefined {
  const what = 'GPU leaf DICE extension';
  const exts = certificateFields(certDer(leaf), 'GPU leaf certificate').extensions;
  const legacy = exts.get(OID_DICE_TCB_INFO);
  const alias = exts.get(OID_DICE_TCB_INFO_ALIAS);
  if (legacy && alias) throw rejected(NvidiaCodes.FWID_MISMATCH, `${what}: both ${OID_DICE_TCB_INFO} and ${OID_DICE_TCB_INFO_ALIAS} are present`);
  const value = legacy ?? alias;
  if (!value) return undefined;
  const top = children(want(decodeOne(value, what), TAG.SEQUENCE, what), what);
  if (top[0]?.tag === TAG.INTEGER) {
    // CompositeDeviceID (legacy layout).
    if (top.length !== 3) throw malformed(CERT, `${what}: CompositeDeviceID is SEQUENCE { version, subjectPublicKeyInfo, fwid }`);
    want(top[1], TAG.SEQUENCE, `${what} subjectPublicKeyInfo`);
    return fwidOf(top[2], `${what} fwid`);
  }
  // DiceTcbInfo: context-tagged optional members; fwids is [6] constructed.
  let previous = -1;
  let fwids: Tlv | undefined;
  for (const t of top) {
    const n = t.tag & 0x1f;
    if ((t.tag & 0xc0) !== 0x80 || n <= previous) throw malformed(CERT, `${what}: DiceTcbInfo members must be context tagged and in order`, { offset: t.offset });
    previous = n;
    if (n === 6) fwids = t;
  }
  if (!fwids || fwids.tag !== 0xa6) throw rejected(NvidiaCodes.FWID_MISSING, `${what}: the DiceTcbInfo carries no fwids`);
  const list = children(fwids, `${what} fwids`);
  if (list.length === 0) throw rejected(NvidiaCodes.FWID_MISSING, `${what}: the DiceTcbInfo fwids list is empty`);
  list.forEach((t, i) => fwidOf(t, `${what} fwids[${i}]`));
  return fwidOf(list[0], `${what} fwids[0]`);
}

/** Big-endian magnitude bytes → decimal string. */
function decimal(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n.toString(10);
}

/** The whole per-GPU check sequence described in the module header. */
export async function verifyGpuReport(ev: GpuEvidence, o: VerifyReportOptions): Promise<VerifiedGpuReport> {
  if (o.anchors.length === 0) {
    throw configError(NvidiaCodes.TRUST_ANCHOR_MISSING, "the NVIDIA Device Identity CA is not in the trust store; run 'attest-broker trust fetch'");
  }
  const certs = parseDeviceChain(ev.chainPem, ev.position);
  const leaf = certs[0] as Certificate;
  await verifyReportSignature(ev.report, leaf);
  // --- the report is authentic (relative to the leaf) from here on ---
  const report = parseAttestationReport(ev.report);
  if (!timingSafeEqual(report.request.nonce, o.binding)) {
    throw rejected(NvidiaCodes.NONCE_MISMATCH, `GPU ${ev.position}: the GET_MEASUREMENTS nonce is not the expected binding`);
  }
  if (!timingSafeEqual(ev.nonce, report.request.nonce)) {
    throw rejected(NvidiaCodes.EVIDENCE_INCONSISTENT, `GPU ${ev.position}: the evidence "nonce" member differs from the signed request nonce`);
  }
  const { path, anchor } = await verifyPinnedChain(
    certs,
    o.anchors,
    o.at,
    { untrusted: NvidiaCodes.DEVICE_CHAIN_UNTRUSTED, invalid: NvidiaCodes.DEVICE_CHAIN_INVALID, expired: NvidiaCodes.DEVICE_CHAIN_INVALID },
    WHAT,
  );
  // --- the leaf is NVIDIA's from here on ---
  const leafCn = firstCn(leaf, `${WHAT}: leaf`);
  const chip = leafCn.split(' ')[0] as string;
  const arch = CHIPS[chip];
  if (!arch) throw rejected(NvidiaCodes.ARCH_NOT_ALLOWED, `GPU ${ev.position}: chip "${chip}" (leaf "${leafCn}") is not one this verifier knows (GH100, GB100)`);
  if (ev.arch.toLowerCase() !== arch) {
    throw rejected(NvidiaCodes.EVIDENCE_INCONSISTENT, `GPU ${ev.position}: the evidence says ${ev.arch} but the certified chip ${chip} is ${arch}`);
  }
  const hwModel = firstCn(path[1] as Certificate, `${WHAT}: DeviceID`);
  if (!hwModel.startsWith(`${chip} `)) throw rejected(NvidiaCodes.DEVICE_CHAIN_INVALID, `GPU ${ev.position}: the leaf is a ${chip} but its issuer is "${hwModel}"`);

  const certFwid = leafFwid(leaf);
  const reportFwid = report.info.fwid;
  if (!certFwid) throw rejected(NvidiaCodes.FWID_MISSING, `GPU ${ev.position}: the leaf certificate has no DICE FWID extension`);
  if (reportFwid) {
    if (!timingSafeEqual(reportFwid, certFwid)) {
      throw rejected(NvidiaCodes.FWID_MISMATCH, `GPU ${ev.position}: the report FWID ${toHex(reportFwid)} is not the leaf's ${toHex(certFwid)}`);
    }
  } else if (o.requireReportFwid) {
    throw rejected(NvidiaCodes.FWID_MISSING, `GPU ${ev.position}: the report carries no FWID (driver ${report.info.driverVersion} predates it) and requireReportFwid is set`);
  }
  if (ev.driverVersion !== undefined && ev.driverVersion !== report.info.driverVersion) {
    throw rejected(NvidiaCodes.EVIDENCE_INCONSISTENT, `GPU ${ev.position}: driver_version "${ev.driverVersion}" is not the signed ${report.info.driverVersion}`);
  }
  if (ev.vbiosVersion !== undefined && ev.vbiosVersion.toUpperCase() !== report.info.vbiosVersion) {
    throw rejected(NvidiaCodes.EVIDENCE_INCONSISTENT, `GPU ${ev.position}: vbios_version "${ev.vbiosVersion}" is not the signed ${report.info.vbiosVersion}`);
  }
  const serial = derAs(CERT, () => certificateFields(certDer(leaf), 'GPU leaf certificate')).serial;
  // INTEGER contents keep a 0x00 sign octet before a high bit; the serial number is the magnitude.
  const leafSerialBytes = serial.length > 1 && serial[0] === 0 ? serial.subarray(1) : serial;
  return Object.freeze({
    report,
    path,
    anchor,
    chip,
    arch,
    hwModel,
    leafSerial: toHex(leafSerialBytes),
    ueid: decimal(leafSerialBytes),
    deviceCertSha256: toHex(await sha256(certDer(path[1] as Certificate))),
    fwid: toHex(certFwid),
    fwidInReport: reportFwid !== undefined,
  });
}
