/**
 * @module providers/amd-sev-snp/verify
 *
 * Proves an SEV-SNP attestation report was signed by a genuine AMD processor.
 *
 * Checks, in order (each failure throws its own code):
 * - the report is signed at all: SIGNING_KEY is not 'none' and MASK_CHIP_KEY is clear
 *   (a masked report carries a zero signature) → SNP_REPORT_UNSIGNED;
 * - the product (Milan/Genoa/Turin) is known and consistent between the report's CPUID
 *   (version ≥ 3), the certificate's productName and the caller's hint → SNP_PRODUCT_UNKNOWN /
 *   SNP_PRODUCT_MISMATCH;
 * - the endorsement key certificate matches SIGNING_KEY: a VCEK (hwID extension) for 0, a VLEK
 *   (cspID extension) for 1 → SNP_SIGNER_MISMATCH; its key is EC P-384 → SNP_KEY_INVALID;
 * - VCEK/VLEK → ASK/ASVK → ARK validates (RSA-PSS SHA-384) to the ARK pinned for that product
 *   and nothing else, at the injected time; ASK/ASVK come from the evidence or KDS and are
 *   never roots (`common/x509.verifyChain`: TRUST_ANCHOR_MISSING, CHAIN_UNTRUSTED,
 *   CERT_EXPIRED, …); the issuing intermediate is the ASK for a VCEK and the ASVK for a VLEK
 *   → SNP_SIGNER_MISMATCH;
 * - a VCEK's hwID equals CHIP_ID → SNP_VCEK_HWID_MISMATCH (checked before the signature so a
 *   certificate for another chip is named as such);
 * - the certificate's blSPL/teeSPL/snpSPL/ucodeSPL (and fmcSPL on Turin) equal REPORTED_TCB
 *   → SNP_VCEK_TCB_MISMATCH (a VCEK is derived from the TCB; a lowered TCB in the report
 *   would otherwise pass with an older certificate);
 * - the ECDSA P-384 / SHA-384 signature over bytes [0, 0x2A0) verifies with that key
 *   → SNP_SIGNATURE_INVALID.
 *
 * Nothing here judges policy (debug, VMPL, measurement): that is `validate.ts`.
 */
import { rejected, AttestError } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import { PinIds } from '../common/pins.js';
import type { TrustStore } from '../common/types.js';
import { verifyChain, fingerprint, importPublicKey, parseCertificate, type Certificate, type TrustAnchor } from '../common/x509.js';
import { verifySignature } from '../common/sig.js';
import { sha256 } from '../common/digest.js';
import { toHex } from '../common/encoding.js';
import { amdKeyExtensions, type AmdKeyExtensions } from './certs.js';
import { decodeTcb, productFromCpuid, type SnpProduct, type SnpReport, type SnpTcb } from './parse.js';

export const SnpVerifyCodes = {
  SNP_REPORT_UNSIGNED: 'SNP_REPORT_UNSIGNED',
  SNP_PRODUCT_UNKNOWN: 'SNP_PRODUCT_UNKNOWN',
  SNP_PRODUCT_MISMATCH: 'SNP_PRODUCT_MISMATCH',
  SNP_SIGNER_MISMATCH: 'SNP_SIGNER_MISMATCH',
  SNP_KEY_INVALID: 'SNP_KEY_INVALID',
  SNP_VCEK_HWID_MISMATCH: 'SNP_VCEK_HWID_MISMATCH',
  SNP_VCEK_TCB_MISMATCH: 'SNP_VCEK_TCB_MISMATCH',
  SNP_SIGNATURE_INVALID: 'SNP_SIGNATURE_INVALID',
} as const;

/** The pinned ARK for each product (common/pins.ts). */
export const ARK_PIN: Readonly<Record<SnpProduct, string>> = {
  Milan: PinIds.AMD_ARK_MILAN,
  Genoa: PinIds.AMD_ARK_GENOA,
  Turin: PinIds.AMD_ARK_TURIN,
};

export interface SnpVerifyInput {
  readonly report: SnpReport;
  /** The VCEK or VLEK certificate (from the evidence or KDS). */
  readonly endorsementKey: Certificate;
  /** ASK / ASVK (from the evidence or KDS); a copy of the ARK among them is ignored. */
  readonly intermediates: readonly Certificate[];
  readonly trust: TrustStore;
  readonly at: Date;
  /** The product if the caller knows it (e.g. from configuration); must agree with the evidence. */
  readonly product?: SnpProduct;
  /** Optional caches that make repeat verifications of the same chip cheap. */
  readonly cache?: SnpVerifyCache;
}

export interface VerifiedSnpReport {
  readonly report: SnpReport;
  readonly product: SnpProduct;
  readonly signer: 'vcek' | 'vlek';
  readonly reportedTcb: SnpTcb;
  readonly extensions: AmdKeyExtensions;
  readonly anchorId: string;
  /** SHA-256 (hex) of the endorsement key certificate. */
  readonly endorsementKeySha256: string;
}

interface KeyEntry {
  readonly key: CryptoKey;
  readonly ext: AmdKeyExtensions;
  readonly fp: string;
}
interface ChainEntry {
  readonly notBefore: number;
  readonly notAfter: number;
  readonly anchor: TrustAnchor;
  readonly issuerSubject: string;
}

/**
 * Memoizes what is a pure function of certificate bytes: the imported P-384 key and decoded
 * extensions per endorsement-key fingerprint, and "this certificate chains to that pinned ARK
 * through an issuer named X" with the path's validity window. A cached chain is only reused
 * when the verification time falls inside the window; otherwise the chain is validated again
 * (and fails with the precise code). Bounded: the oldest entry is evicted first.
 */
export class SnpVerifyCache {
  readonly #certs = new Map<string, Certificate>();
  readonly #keys = new Map<string, Promise<KeyEntry>>();
  readonly #chains = new Map<string, ChainEntry>();
  readonly #chainsInFlight = new Map<string, Promise<ChainEntry>>();
  readonly #max: number;
  constructor(max = 1024) {
    this.#max = max;
  }
  /**
   * The parsed certificate for DER bytes, memoized by their SHA-256 (ASN.1 parsing costs
   * milliseconds; hashing microseconds). A malformed certificate is never cached.
   */
  async certificate(der: Uint8Array, what = 'certificate'): Promise<Certificate> {
    const k = toHex(await sha256(der));
    let c = this.#certs.get(k);
    if (!c) {
      c = parseCertificate(der, what);
      this.#certs.set(k, c);
      evict(this.#certs, this.#max);
    }
    return c;
  }
  /** @internal */
  keyFor(fp: string, make: () => Promise<KeyEntry>): Promise<KeyEntry> {
    let p = this.#keys.get(fp);
    if (!p) {
      p = make();
      p.catch(() => this.#keys.delete(fp));
      this.#keys.set(fp, p);
      evict(this.#keys, this.#max);
    }
    return p;
  }
  /** @internal */
  chain(k: string): ChainEntry | undefined {
    return this.#chains.get(k);
  }
  /** @internal Simultaneous validations of one chain (a burst from one host) share one. */
  chainOnce(k: string, make: () => Promise<ChainEntry>): Promise<ChainEntry> {
    let p = this.#chainsInFlight.get(k);
    if (!p) {
      p = make().finally(() => this.#chainsInFlight.delete(k));
      this.#chainsInFlight.set(k, p);
    }
    return p;
  }
  /** @internal */
  setChain(k: string, e: ChainEntry): void {
    this.#chains.set(k, e);
    evict(this.#chains, this.#max);
  }
}

function evict<K, V>(m: Map<K, V>, max: number): void {
  while (m.size > max) {
    const first = m.keys().next();
    if (first.done) return;
    m.delete(first.value);
  }
}

async function loadKey(cert: Certificate): Promise<KeyEntry> {
  const ext = amdKeyExtensions(cert);
  const alg = cert.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-384') {
    throw rejected(SnpVerifyCodes.SNP_KEY_INVALID, 'the VCEK/VLEK key is not EC P-384');
  }
  const key = await importPublicKey(cert, { name: 'ECDSA', namedCurve: 'P-384' });
  return { key, ext, fp: await fingerprint(cert) };
}

function resolveProduct(report: SnpReport, ext: AmdKeyExtensions, hint: SnpProduct | undefined): SnpProduct {
  const seen = [productFromCpuid(report.cpuid), ext.product, hint].filter((p): p is SnpProduct => p !== undefined);
  const first = seen[0];
  if (first === undefined) {
    throw rejected(SnpVerifyCodes.SNP_PRODUCT_UNKNOWN, 'cannot tell the SEV-SNP product from the report, the certificate or configuration');
  }
  if (seen.some((p) => p !== first)) {
    throw rejected(SnpVerifyCodes.SNP_PRODUCT_MISMATCH, `SEV-SNP product disagrees between report, certificate and configuration (${seen.join(', ')})`);
  }
  return first;
}

function cn(subject: string): string {
  const m = /(?:^|,\s*)CN=([^,]+)/.exec(subject);
  return m?.[1]?.trim() ?? '';
}

async function validatedChain(i: SnpVerifyInput, product: SnpProduct, fp: string): Promise<ChainEntry> {
  const anchors = i.trust.anchors([ARK_PIN[product]]);
  const key = `${fp}|${anchors.map((a) => a.sha256).join(',')}`;
  const t = i.at.getTime();
  const hit = i.cache?.chain(key);
  if (hit && anchors.length > 0 && t >= hit.notBefore && t <= hit.notAfter) return hit;
  if (!i.cache) return validateChain(i, product, anchors, key);
  // Simultaneous callers share one validation; each still judges validity at its own time (the
  // only time-dependent check): outside the shared result's window, or after a shared failure,
  // it validates on its own.
  try {
    const shared = await i.cache.chainOnce(key, () => validateChain(i, product, anchors, key));
    if (t >= shared.notBefore && t <= shared.notAfter) return shared;
  } catch {
    // fall through: this caller's own validation decides (and reports) the failure
  }
  return validateChain(i, product, anchors, key);
}

async function validateChain(i: SnpVerifyInput, product: SnpProduct, anchors: ReturnType<SnpVerifyInput['trust']['anchors']>, key: string): Promise<ChainEntry> {
  // Only the candidates that can sit between this leaf and this product's ARK: operators may
  // install every product's ASK/ASVK side by side (trust dir), evidence may carry a few.
  const arkSubjects = new Set(anchors.map((a) => a.cert.subject));
  const candidates = i.intermediates.filter((c) => c.subject === i.endorsementKey.issuer && arkSubjects.has(c.issuer));
  const chain = await verifyChain({
    leaf: i.endorsementKey,
    intermediates: candidates,
    anchors,
    at: i.at,
    maxDepth: 3,
    what: `AMD ${product} VCEK/VLEK chain`,
  });
  const entry: ChainEntry = {
    notBefore: Math.max(...chain.path.map((c) => c.notBefore.getTime())),
    notAfter: Math.min(...chain.path.map((c) => c.notAfter.getTime())),
    anchor: chain.anchor,
    issuerSubject: chain.path[1]?.subject ?? '',
  };
  if (chain.path.length !== 3) {
    throw rejected(SnpVerifyCodes.SNP_SIGNER_MISMATCH, 'a VCEK/VLEK must be issued by an ASK/ASVK, not directly by the ARK');
  }
  i.cache?.setChain(key, entry);
  return entry;
}

function tcbMatches(ext: AmdKeyExtensions, tcb: SnpTcb): boolean {
  return (
    ext.blSPL === tcb.bootloader &&
    ext.teeSPL === tcb.tee &&
    ext.snpSPL === tcb.snp &&
    ext.ucodeSPL === tcb.microcode &&
    (tcb.fmc === undefined || ext.fmcSPL === tcb.fmc)
  );
}

/** Verifies `report` against its endorsement key and AMD's pinned roots; see the module doc. */
export async function verifySnpReport(i: SnpVerifyInput): Promise<VerifiedSnpReport> {
  const { report } = i;
  if (report.signingKey === 'none' || report.maskChipKey) {
    throw rejected(SnpVerifyCodes.SNP_REPORT_UNSIGNED, 'the SNP report is not signed (SIGNING_KEY none or MASK_CHIP_KEY set)');
  }
  const fp = await fingerprint(i.endorsementKey);
  const entry = i.cache ? await i.cache.keyFor(fp, () => loadKey(i.endorsementKey)) : await loadKey(i.endorsementKey);
  const { ext } = entry;
  if (ext.kind !== report.signingKey) {
    throw rejected(SnpVerifyCodes.SNP_SIGNER_MISMATCH, `the report is signed by its ${report.signingKey.toUpperCase()} but a ${ext.kind.toUpperCase()} certificate was supplied`);
  }
  const product = resolveProduct(report, ext, i.product);
  const chain = await validatedChain(i, product, fp);
  const wantIssuer = ext.kind === 'vcek' ? `SEV-${product}` : `SEV-VLEK-${product}`;
  if (cn(chain.issuerSubject) !== wantIssuer) {
    throw rejected(SnpVerifyCodes.SNP_SIGNER_MISMATCH, `the ${ext.kind.toUpperCase()} must be issued by ${wantIssuer}, not "${chain.issuerSubject}"`);
  }
  if (ext.kind === 'vcek') {
    const hw = ext.hwId!;
    const chip = hw.length === 8 ? report.chipId.subarray(0, 8) : report.chipId;
    if (!timingSafeEqual(hw, chip)) {
      throw rejected(SnpVerifyCodes.SNP_VCEK_HWID_MISMATCH, `the VCEK is for chip ${toHex(hw)}, not the report's CHIP_ID`);
    }
  }
  const reportedTcb = decodeTcb(report.reportedTcb, product);
  if (!tcbMatches(ext, reportedTcb)) {
    throw rejected(
      SnpVerifyCodes.SNP_VCEK_TCB_MISMATCH,
      `the ${ext.kind.toUpperCase()} is for TCB bl${ext.blSPL} tee${ext.teeSPL} snp${ext.snpSPL} ucode${ext.ucodeSPL}, ` +
        `the report claims bl${reportedTcb.bootloader} tee${reportedTcb.tee} snp${reportedTcb.snp} ucode${reportedTcb.microcode}`,
    );
  }
  const sig = new Uint8Array(96);
  sig.set(report.signature.r, 0);
  sig.set(report.signature.s, 48);
  let ok: boolean;
  try {
    ok = await verifySignature({ name: 'ECDSA', hash: 'SHA-384' }, entry.key, sig, report.signed);
  } catch (cause) {
    throw new AttestError(SnpVerifyCodes.SNP_SIGNATURE_INVALID, 'the SNP report signature could not be checked', { cause });
  }
  if (!ok) throw rejected(SnpVerifyCodes.SNP_SIGNATURE_INVALID, `the SNP report signature does not verify with the ${ext.kind.toUpperCase()}`);
  return Object.freeze({
    report,
    product,
    signer: ext.kind,
    reportedTcb,
    extensions: ext,
    anchorId: chain.anchor.id,
    endorsementKeySha256: fp,
  });
}
