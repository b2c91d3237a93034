/**
 * @module providers/intel-tdx/verify
 *
 * Proves a TDX Quote v4 was produced by a genuine Intel TDX platform's Quoting Enclave.
 * (Intel TDX DCAP Quote Verification Library, "Quote verification" steps; quote layout in
 * `parse.ts`.)
 *
 * Checks, in order:
 * - the PCK certificate chain from the quote parses (≤ 4 certificates) → CERT_MALFORMED;
 * - PCK → Intel SGX PCK Platform/Processor CA → the pinned Intel SGX Root CA validates at
 *   the injected time; a root carried in the quote is ignored (`verifyChain`: TRUST_ANCHOR_MISSING,
 *   CHAIN_UNTRUSTED, CERT_SIGNATURE_INVALID, CERT_EXPIRED, …);
 * - the leaf is a PCK certificate ("Intel SGX PCK Certificate", EC P-256) → TDX_PCK_INVALID;
 * - the QE is Intel's TD Quoting Enclave: MRSIGNER = Intel's TD QE signer, ISVPRODID = 2, and
 *   not a debug enclave (ATTRIBUTES.DEBUG clear) — the fixed part of Intel's QE Identity
 *   collateral for TD_QE → TDX_QE_IDENTITY_UNKNOWN / TDX_QE_DEBUG. Checked before the PCK
 *   signature so a foreign enclave is named as such (comparing can only reject earlier). Without
 *   this, any enclave whose report the platform's PCE certified could vouch for a key;
 * - the QE report is signed by the PCK key (ECDSA P-256 / SHA-256 over its 384 bytes)
 *   → TDX_QE_REPORT_SIGNATURE_INVALID;
 * - QE report_data[0:32] = SHA-256(attestation key ‖ QE auth data) and [32:64] is zero: the QE
 *   vouches for the attestation key → TDX_QE_REPORT_DATA_MISMATCH;
 * - the quote signature over header ‖ body verifies with the attestation key
 *   → TDX_QUOTE_SIGNATURE_INVALID (an invalid point → TDX_ATTESTATION_KEY_INVALID).
 *
 * Not checked here (needs Intel PCS collateral, see `validate.ts` `tcbStatus`): the PCK CRL,
 * the TCB level of the platform (TCB Info) and the QE identity.
 */
import { rejected, AttestError } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import { sha256 } from '../common/digest.js';
import { concat } from '../common/bytes.js';
import { toHex, utf8 } from '../common/encoding.js';
import { PinIds } from '../common/pins.js';
import type { TrustStore } from '../common/types.js';
import { importPublicKey, parsePemCertificates, verifyChain, type Certificate } from '../common/x509.js';
import { verifySignature } from '../common/sig.js';
import type { TdQuote } from './parse.js';

export const TdxVerifyCodes = {
  TDX_PCK_INVALID: 'TDX_PCK_INVALID',
  TDX_QE_IDENTITY_UNKNOWN: 'TDX_QE_IDENTITY_UNKNOWN',
  TDX_QE_DEBUG: 'TDX_QE_DEBUG',
  TDX_QE_REPORT_SIGNATURE_INVALID: 'TDX_QE_REPORT_SIGNATURE_INVALID',
  TDX_QE_REPORT_DATA_MISMATCH: 'TDX_QE_REPORT_DATA_MISMATCH',
  TDX_ATTESTATION_KEY_INVALID: 'TDX_ATTESTATION_KEY_INVALID',
  TDX_QUOTE_SIGNATURE_INVALID: 'TDX_QUOTE_SIGNATURE_INVALID',
} as const;

export interface TdxVerifyInput {
  readonly quote: TdQuote;
  readonly trust: TrustStore;
  readonly at: Date;
  /** Optional memo of validated PCK chains, so repeat quotes from one platform are cheap. */
  readonly cache?: TdxVerifyCache;
}

interface PckEntry {
  readonly pckKey: CryptoKey;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly anchorId: string;
  readonly pckIssuer: string;
  readonly fmspc: string | undefined;
}

/**
 * Memoizes "this exact PCK chain text validates to that pinned root, with this path validity
 * window" and the imported PCK key. Reused only when the verification time is inside the
 * window and the same anchors are configured; otherwise the chain is validated again.
 * Bounded; oldest entries are evicted first.
 */
export class TdxVerifyCache {
  readonly #m = new Map<string, PckEntry>();
  readonly #max: number;
  constructor(max = 1024) {
    this.#max = max;
  }
  /** @internal */
  get(k: string): PckEntry | undefined {
    return this.#m.get(k);
  }
  /** @internal */
  set(k: string, e: PckEntry): void {
    this.#m.set(k, e);
    while (this.#m.size > this.#max) {
      const first = this.#m.keys().next();
      if (first.done) break;
      this.#m.delete(first.value);
    }
  }
}

export interface VerifiedTdQuote {
  readonly quote: TdQuote;
  readonly anchorId: string;
  /** Which CA issued the PCK ("Intel SGX PCK Platform CA" or "… Processor CA"). */
  readonly pckIssuer: string;
  /** FMSPC from the PCK's SGX extension (hex), when present. */
  readonly fmspc: string | undefined;
}

/**
 * MRSIGNER of Intel's TD Quoting Enclave and its ISVPRODID (Intel PCS QE Identity for `TD_QE`,
 * `https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity`); both real TDX quotes
 * in test/vectors carry these.
 */
export const INTEL_TD_QE_MRSIGNER = 'dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5';
export const INTEL_TD_QE_ISVPRODID = 2;

const SGX_EXT_OID = '1.2.840.113741.1.13.1';
// DER of OID 1.2.840.113741.1.13.1.4 (FMSPC) inside the SGX extension.
const FMSPC_OID_TLV = Uint8Array.from([0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01, 0x04]);

function fmspcOf(pck: Certificate): string | undefined {
  const ext = pck.extensions.find((e) => e.type === SGX_EXT_OID);
  if (!ext) return undefined;
  const v = new Uint8Array(ext.value);
  outer: for (let i = 0; i + FMSPC_OID_TLV.length + 8 <= v.length; i++) {
    for (let j = 0; j < FMSPC_OID_TLV.length; j++) if (v[i + j] !== FMSPC_OID_TLV[j]) continue outer;
    const at = i + FMSPC_OID_TLV.length;
    if (v[at] === 0x04 && v[at + 1] === 6) return toHex(v.subarray(at + 2, at + 8));
    return undefined;
  }
  return undefined;
}

async function ecdsaP256Verify(key: CryptoKey, sig: Uint8Array, data: Uint8Array): Promise<boolean> {
  try {
    return await verifySignature({ name: 'ECDSA', hash: 'SHA-256' }, key, sig, data);
  } catch {
    return false;
  }
}

function cn(subject: string): string {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1]?.trim() ?? '';
}

/** Verifies a parsed TD quote up to the pinned Intel SGX Root CA; see the module doc. */
export async function verifyTdQuote(i: TdxVerifyInput): Promise<VerifiedTdQuote> {
  const q = i.quote;
  const pck = await validatedPck(i);
  if (toHex(q.qeReport.mrSigner) !== INTEL_TD_QE_MRSIGNER || q.qeReport.isvProdId !== INTEL_TD_QE_ISVPRODID) {
    throw rejected(TdxVerifyCodes.TDX_QE_IDENTITY_UNKNOWN, `the quoting enclave (MRSIGNER ${toHex(q.qeReport.mrSigner)}, ISVPRODID ${q.qeReport.isvProdId}) is not Intel's TD QE`);
  }
  if ((q.qeReport.attributes[0]! & 0x02) !== 0) throw rejected(TdxVerifyCodes.TDX_QE_DEBUG, 'the quoting enclave is a debug enclave');
  if (!(await ecdsaP256Verify(pck.pckKey, q.qeReportSignature, q.qeReportRaw))) {
    throw rejected(TdxVerifyCodes.TDX_QE_REPORT_SIGNATURE_INVALID, 'the QE report signature does not verify with the PCK key');
  }
  const want = await sha256(concat(q.attestationKey, q.qeAuthData));
  if (!timingSafeEqual(q.qeReport.reportData.subarray(0, 32), want) || !timingSafeEqual(q.qeReport.reportData.subarray(32), new Uint8Array(32))) {
    throw rejected(TdxVerifyCodes.TDX_QE_REPORT_DATA_MISMATCH, 'the QE report does not vouch for this attestation key (report_data ≠ SHA-256(key ‖ auth data) ‖ 0³²)');
  }
  let ak: CryptoKey;
  try {
    ak = await crypto.subtle.importKey('raw', concat(Uint8Array.of(4), q.attestationKey) as Uint8Array<ArrayBuffer>, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  } catch (cause) {
    throw new AttestError(TdxVerifyCodes.TDX_ATTESTATION_KEY_INVALID, 'the attestation key is not a P-256 point', { cause });
  }
  if (!(await ecdsaP256Verify(ak, q.signature, q.signed))) {
    throw rejected(TdxVerifyCodes.TDX_QUOTE_SIGNATURE_INVALID, 'the TD quote signature does not verify with the attestation key');
  }
  return Object.freeze({ quote: q, anchorId: pck.anchorId, pckIssuer: pck.pckIssuer, fmspc: pck.fmspc });
}

async function validatedPck(i: TdxVerifyInput): Promise<PckEntry> {
  const anchors = i.trust.anchors([PinIds.INTEL_SGX_ROOT]);
  const key = `${toHex(await sha256(utf8(i.quote.pckChainPem)))}|${anchors.map((a) => a.sha256).join(',')}`;
  const t = i.at.getTime();
  const hit = i.cache?.get(key);
  if (hit && anchors.length > 0 && t >= hit.notBefore && t <= hit.notAfter) return hit;
  const certs = parsePemCertificates(i.quote.pckChainPem, 'PCK certificate chain', 4);
  const pck = certs[0]!;
  const chain = await verifyChain({ leaf: pck, intermediates: certs.slice(1), anchors, at: i.at, maxDepth: 4, what: 'Intel PCK chain' });
  const alg = pck.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (cn(pck.subject) !== 'Intel SGX PCK Certificate' || alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw rejected(TdxVerifyCodes.TDX_PCK_INVALID, `the quote's leaf certificate "${pck.subject}" is not an EC P-256 PCK certificate`);
  }
  const entry: PckEntry = {
    pckKey: await importPublicKey(pck, { name: 'ECDSA', namedCurve: 'P-256' }),
    notBefore: Math.max(...chain.path.map((c) => c.notBefore.getTime())),
    notAfter: Math.min(...chain.path.map((c) => c.notAfter.getTime())),
    anchorId: chain.anchor.id,
    pckIssuer: cn(chain.path[1]?.subject ?? ''),
    fmspc: fmspcOf(pck),
  };
  i.cache?.set(key, entry);
  return entry;
}
