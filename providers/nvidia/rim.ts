/**
 * @module providers/nvidia/rim
 *
 * NVIDIA Reference Integrity Manifests: ISO/IEC 19770-2 SWID tags (TCG RIM Information Model
 * binding) whose `Payload/Resource` elements carry the golden SHA-384 measurements of a driver
 * or VBIOS, signed with an enveloped XML Signature (W3C XML-DSig 1.1).
 *
 * `verifyRim` checks, in this order (each failure its own code):
 * 1. the bytes parse under `xml.ts`'s strict rules (no DTD, entities, comments, PIs, CDATA;
 *    size, depth and count caps) — RIM_MALFORMED / LIMIT_EXCEEDED;
 * 2. the shape leaves no room for signature wrapping — RIM_MALFORMED:
 *    - the document element is `{SWID}SoftwareIdentity`; its element children are Entity+,
 *      exactly one Meta, exactly one Payload and exactly one ds:Signature, nothing else;
 *    - there is exactly one ds:Signature in the whole document, a child of the document element,
 *      and every XML-DSig element lies inside it;
 *    - Signature = SignedInfo, SignatureValue, KeyInfo; SignedInfo = CanonicalizationMethod
 *      (C14N 1.1), SignatureMethod (ecdsa-sha384), exactly one Reference with `URI=""` (the whole
 *      document, nothing addressed by id) whose Transforms are exactly enveloped-signature then
 *      C14N 1.1 and whose DigestMethod is sha384; KeyInfo = one X509Data of 1..8 certificates;
 *      no other attributes, elements or non-whitespace text anywhere in the signature;
 * 3. the X509Data chain reaches the pinned NVIDIA CoRIM signing Root CA at the verification time
 *    (the signer must be valid *now*, as NVIDIA's verifiers require): RIM_SIGNER_EXPIRED,
 *    RIM_SIGNER_UNTRUSTED, RIM_CHAIN_INVALID; the signer is P-384 and may sign;
 * 4. the SignatureValue (raw r ‖ s, 96 bytes) verifies over the canonical SignedInfo with the
 *    signer's key — RIM_SIGNATURE_INVALID;
 * 5. SHA-384 of the canonical document without its Signature (enveloped transform + C14N 1.1)
 *    equals the signed DigestValue, compared in constant time — RIM_DIGEST_MISMATCH;
 * 6. only now, and only from the same parsed tree that was canonicalized and digested, the
 *    Meta attributes and the Resources are read (RIM_MALFORMED on anything unexpected).
 *
 * Signature wrapping needs the verifier to digest one tree and read another; here there is one
 * tree, the digest covers all of it but the Signature, and the Signature may contain nothing
 * but the fixed XML-DSig skeleton, so no element the measurements could come from escapes the
 * digest.
 */
import { timingSafeEqual } from '../common/ct.js';
import { malformed, rejected, configError } from '../common/errors.js';
import { sha384 } from '../common/digest.js';
import { fromBase64Any, fromHex, utf8 } from '../common/encoding.js';
import { parseCertificate, x509, X509Codes, type Certificate, type TrustAnchor } from '../common/x509.js';
import { NvidiaCodes } from './codes.js';
import { importP384, verifyPinnedChain } from './verify.js';
import { attr, canonicalize, elementChildren, onlyWhitespaceText, parseXml, textOf, type XmlElement } from './xml.js';

export const NS = Object.freeze({
  SWID: 'http://standards.iso.org/iso/19770/-2/2015/schema.xsd',
  DSIG: 'http://www.w3.org/2000/09/xmldsig#',
  /** The namespace of the `HashN` attributes (NVIDIA's use of the xmlenc sha384 identifier). */
  SHA384: 'http://www.w3.org/2001/04/xmlenc#sha384',
  RIM: 'https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/',
});

export const ALG = Object.freeze({
  C14N11: 'http://www.w3.org/2006/12/xml-c14n11',
  ECDSA_SHA384: 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384',
  ENVELOPED: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
  SHA384: 'http://www.w3.org/2001/04/xmldsig-more#sha384',
});

const MAX_RESOURCES = 256;
const MAX_ALTERNATIVES = 16;
const MAX_X509 = 8;

export type RimKind = 'driver' | 'vbios';

export interface RimMeasurement {
  /** 0-based RIM index (= SPDM block index − 1). */
  readonly index: number;
  readonly active: boolean;
  /** Every acceptable value (`Hash0..Hash{alternatives-1}`). */
  readonly alternatives: readonly Uint8Array[];
}

export interface VerifiedRim {
  readonly rimId: string;
  readonly kind: RimKind;
  readonly tagId: string;
  /** Meta@colloquialVersion: the driver or VBIOS version the RIM describes. */
  readonly version: string;
  /** Meta@product: the chip (GH100, GB100). */
  readonly product: string;
  readonly measurements: readonly RimMeasurement[];
  /** Leaf (signer) first, pinned root last. */
  readonly path: readonly Certificate[];
  readonly anchor: TrustAnchor;
}

export interface VerifyRimOptions {
  readonly rimId: string;
  readonly kind: RimKind;
  /** Pinned anchors for the NVIDIA CoRIM signing Root CA. */
  readonly anchors: readonly TrustAnchor[];
  readonly at: Date;
}

const bad = (rimId: string, m: string): never => {
  throw malformed(NvidiaCodes.RIM_MALFORMED, `RIM ${rimId}: ${m}`);
};

const isDs = (el: XmlElement, local: string): boolean => el.ns === NS.DSIG && el.local === local;

/** Requires exactly these attributes (by local name, no namespace) and returns their values. */
function onlyAttrs(rimId: string, el: XmlElement, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of el.attributes) {
    if (a.ns !== '' || !names.includes(a.local)) bad(rimId, `<${el.qname}> has an unexpected attribute ${a.qname}`);
    out[a.local] = a.value;
  }
  for (const n of names) if (!(n in out)) bad(rimId, `<${el.qname}> lacks ${n}`);
  return out;
}

/** Element children must be exactly `locals` (XML-DSig namespace), with whitespace-only text between. */
function dsChildren(rimId: string, el: XmlElement, locals: readonly string[]): XmlElement[] {
  const kids = elementChildren(el);
  if (!onlyWhitespaceText(el)) bad(rimId, `<${el.qname}> holds text`);
  if (kids.length !== locals.length || kids.some((k, i) => !isDs(k, locals[i] as string))) {
    bad(rimId, `<${el.qname}> must contain exactly ${locals.join(', ')}`);
  }
  return kids;
}

/** An element with one Algorithm attribute and no content. */
function algorithmOf(rimId: string, el: XmlElement, want: string): void {
  const { Algorithm } = onlyAttrs(rimId, el, ['Algorithm']);
  if (el.children.length !== 0) bad(rimId, `<${el.qname}> must be empty`);
  if (Algorithm !== want) bad(rimId, `<${el.qname}> Algorithm "${Algorithm}" is not ${want}`);
}

/** base64Binary content (XML Schema allows whitespace between characters). */
function base64Of(rimId: string, el: XmlElement, what: string): Uint8Array {
  if (el.attributes.length !== 0) bad(rimId, `<${el.qname}> has attributes`);
  const t = textOf(el);
  if (t === undefined) return bad(rimId, `<${el.qname}> must hold only text`);
  const compact = t.replace(/[ \t\n]+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || compact.length % 4 !== 0) bad(rimId, `${what} is not base64`);
  return fromBase64Any(compact, `RIM ${rimId} ${what}`);
}

interface SignatureParts {
  readonly signature: XmlElement;
  readonly signedInfo: XmlElement;
  readonly digestValue: Uint8Array;
  readonly signatureValue: Uint8Array;
  readonly certificates: readonly Uint8Array[];
}

/** Step 2 of the module header. */
function signatureParts(rimId: string, root: XmlElement): SignatureParts {
  // Every XML-DSig element in the document, and where it is.
  const all: XmlElement[] = [];
  const walk: XmlElement[] = [root];
  while (walk.length > 0) {
    const e = walk.pop() as XmlElement;
    if (e.ns === NS.DSIG) all.push(e);
    walk.push(...elementChildren(e));
  }
  const signatures = all.filter((e) => e.local === 'Signature');
  if (signatures.length !== 1) bad(rimId, `${signatures.length} ds:Signature elements; exactly one is accepted`);
  const signature = signatures[0] as XmlElement;
  if (signature.parent !== root) bad(rimId, 'the ds:Signature is not a child of the document element (not enveloped)');
  for (const e of all) {
    let p: XmlElement | null = e;
    while (p && p !== signature) p = p.parent;
    if (!p) bad(rimId, `<${e.qname}> lies outside the ds:Signature`);
  }
  onlyAttrs(rimId, signature, []);
  const [signedInfo, signatureValueEl, keyInfo] = dsChildren(rimId, signature, ['SignedInfo', 'SignatureValue', 'KeyInfo']) as [XmlElement, XmlElement, XmlElement];
  onlyAttrs(rimId, signedInfo, []);
  const [c14n, sigMethod, reference] = dsChildren(rimId, signedInfo, ['CanonicalizationMethod', 'SignatureMethod', 'Reference']) as [XmlElement, XmlElement, XmlElement];
  algorithmOf(rimId, c14n, ALG.C14N11);
  algorithmOf(rimId, sigMethod, ALG.ECDSA_SHA384);
  const { URI } = onlyAttrs(rimId, reference, ['URI']);
  if (URI !== '') bad(rimId, `the Reference URI is "${URI}"; only "" (the whole document) is accepted`);
  const [transforms, digestMethod, digestValueEl] = dsChildren(rimId, reference, ['Transforms', 'DigestMethod', 'DigestValue']) as [XmlElement, XmlElement, XmlElement];
  onlyAttrs(rimId, transforms, []);
  const [t1, t2] = dsChildren(rimId, transforms, ['Transform', 'Transform']) as [XmlElement, XmlElement];
  algorithmOf(rimId, t1, ALG.ENVELOPED);
  algorithmOf(rimId, t2, ALG.C14N11);
  algorithmOf(rimId, digestMethod, ALG.SHA384);
  const digestValue = base64Of(rimId, digestValueEl, 'DigestValue');
  if (digestValue.length !== 48) bad(rimId, `DigestValue has ${digestValue.length} bytes, not 48`);
  const signatureValue = base64Of(rimId, signatureValueEl, 'SignatureValue');
  if (signatureValue.length !== 96) bad(rimId, `SignatureValue has ${signatureValue.length} bytes, not 96 (P-384 r ‖ s)`);
  onlyAttrs(rimId, keyInfo, []);
  const [x509Data] = dsChildren(rimId, keyInfo, ['X509Data']) as [XmlElement];
  onlyAttrs(rimId, x509Data, []);
  const certEls = elementChildren(x509Data);
  if (certEls.length < 1 || certEls.length > MAX_X509) bad(rimId, `X509Data holds ${certEls.length} certificates; 1..${MAX_X509} are accepted`);
  dsChildren(rimId, x509Data, certEls.map(() => 'X509Certificate'));
  const certificates = certEls.map((c, i) => base64Of(rimId, c, `X509Certificate[${i}]`));
  return { signature, signedInfo, digestValue, signatureValue, certificates };
}

const HEX96_RE = /^[0-9a-fA-F]{96}$/;

/** Step 6: Meta and Payload from the verified tree. */
function readPayload(rimId: string, root: XmlElement, signature: XmlElement): { tagId: string; version: string; product: string; measurements: RimMeasurement[] } {
  const kids = elementChildren(root);
  if (!onlyWhitespaceText(root)) bad(rimId, '<SoftwareIdentity> holds text');
  const entities = kids.filter((k) => k.ns === NS.SWID && k.local === 'Entity');
  const metas = kids.filter((k) => k.ns === NS.SWID && k.local === 'Meta');
  const payloads = kids.filter((k) => k.ns === NS.SWID && k.local === 'Payload');
  if (entities.length < 1 || metas.length !== 1 || payloads.length !== 1 || entities.length + 3 !== kids.length || kids[kids.length - 1] !== signature) {
    bad(rimId, '<SoftwareIdentity> must hold Entity elements, exactly one Meta, exactly one Payload and the Signature last');
  }
  const tagId = attr(root, 'tagId');
  if (!tagId) return bad(rimId, '<SoftwareIdentity> has no tagId');
  const meta = metas[0] as XmlElement;
  const version = attr(meta, 'colloquialVersion');
  const product = attr(meta, 'product');
  if (!version || !product) return bad(rimId, '<Meta> lacks colloquialVersion or product');

  const payload = payloads[0] as XmlElement;
  if (!onlyWhitespaceText(payload) || payload.attributes.length !== 0) bad(rimId, '<Payload> holds text or attributes');
  const resources = elementChildren(payload);
  if (resources.length > MAX_RESOURCES) bad(rimId, `more than ${MAX_RESOURCES} resources`);
  const seen = new Set<number>();
  const measurements = resources.map((r) => {
    if (r.ns !== NS.SWID || r.local !== 'Resource' || r.children.length !== 0) bad(rimId, `<Payload> may only hold empty <Resource> elements, found <${r.qname}>`);
    const plain: Record<string, string> = {};
    const hashes = new Map<number, string>();
    for (const a of r.attributes) {
      const h = /^Hash(0|[1-9][0-9]?)$/.exec(a.local);
      if (a.ns === NS.SHA384 && h) hashes.set(Number(h[1]), a.value);
      else if (a.ns === '' && ['type', 'index', 'active', 'alternatives', 'name', 'size'].includes(a.local)) plain[a.local] = a.value;
      else bad(rimId, `<Resource> has an unexpected attribute ${a.qname}`);
    }
    if (plain.type !== 'Measurement') bad(rimId, `<Resource> type "${plain.type}" is not Measurement`);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(plain.index ?? '') || Number(plain.index) > 254) bad(rimId, `<Resource> index "${plain.index}" is not 0..254`);
    const index = Number(plain.index);
    if (seen.has(index)) bad(rimId, `measurement index ${index} appears twice`);
    seen.add(index);
    if (plain.active !== 'True' && plain.active !== 'False') bad(rimId, `index ${index}: active "${plain.active}" is not True or False`);
    if (plain.size !== '48') bad(rimId, `index ${index}: size "${plain.size}" is not 48 (SHA-384)`);
    const count = /^[1-9][0-9]?$/.test(plain.alternatives ?? '') ? Number(plain.alternatives) : 0;
    if (count < 1 || count > MAX_ALTERNATIVES) bad(rimId, `index ${index}: alternatives "${plain.alternatives}" is not 1..${MAX_ALTERNATIVES}`);
    if (hashes.size !== count) bad(rimId, `index ${index}: ${hashes.size} Hash attributes for ${count} alternatives`);
    const alternatives: Uint8Array[] = [];
    for (let k = 0; k < count; k++) {
      const v = hashes.get(k);
      if (v === undefined || !HEX96_RE.test(v)) return bad(rimId, `index ${index}: Hash${k} is missing or not 48 bytes of hex`);
      alternatives.push(fromHex(v, `RIM ${rimId} index ${index} Hash${k}`));
    }
    return Object.freeze({ index, active: plain.active === 'True', alternatives: Object.freeze(alternatives) });
  });
  return { tagId, version, product, measurements };
}

/** Verifies one RIM (see the module header) and returns what it vouches for. */
export async function verifyRim(bytes: Uint8Array, o: VerifyRimOptions): Promise<VerifiedRim> {
  if (o.anchors.length === 0) {
    throw configError(NvidiaCodes.TRUST_ANCHOR_MISSING, "the NVIDIA CoRIM signing Root CA is not in the trust store; run 'attest-broker trust fetch'");
  }
  const root = parseXml(bytes, NvidiaCodes.RIM_MALFORMED);
  if (root.ns !== NS.SWID || root.local !== 'SoftwareIdentity') bad(o.rimId, `the document element is <${root.qname}>, not a SWID SoftwareIdentity`);
  const sig = signatureParts(o.rimId, root);

  const what = `RIM ${o.rimId} signer chain`;
  const certs = sig.certificates.map((d, i) => parseCertificate(d, `RIM ${o.rimId} X509Certificate[${i}]`));
  const { path, anchor } = await verifyPinnedChain(
    certs,
    o.anchors,
    o.at,
    { untrusted: NvidiaCodes.RIM_SIGNER_UNTRUSTED, invalid: NvidiaCodes.RIM_CHAIN_INVALID, expired: NvidiaCodes.RIM_SIGNER_EXPIRED },
    what,
  );
  const signer = path[0] as Certificate;
  let ku: x509.KeyUsagesExtension | null;
  try {
    ku = signer.getExtension(x509.KeyUsagesExtension);
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what}: the signer's key usage is malformed`, { cause });
  }
  if (ku && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) throw rejected(NvidiaCodes.RIM_CHAIN_INVALID, `${what}: the signer may not sign`);

  const key = await importP384(signer, what);
  const signedInfo = utf8(canonicalize(sig.signedInfo));
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, sig.signatureValue as Uint8Array<ArrayBuffer>, signedInfo as Uint8Array<ArrayBuffer>);
  if (!ok) throw rejected(NvidiaCodes.RIM_SIGNATURE_INVALID, `RIM ${o.rimId}: the XML signature does not verify with the signer's key`);

  const digest = await sha384(utf8(canonicalize(root, sig.signature)));
  if (!timingSafeEqual(digest, sig.digestValue)) {
    throw rejected(NvidiaCodes.RIM_DIGEST_MISMATCH, `RIM ${o.rimId}: the document does not match its signed digest (edited after signing)`);
  }
  // --- authenticated: read the payload from this same tree ---
  const p = readPayload(o.rimId, root, sig.signature);
  return Object.freeze({
    rimId: o.rimId,
    kind: o.kind,
    tagId: p.tagId,
    version: p.version,
    product: p.product,
    measurements: Object.freeze(p.measurements),
    path,
    anchor,
  });
}
