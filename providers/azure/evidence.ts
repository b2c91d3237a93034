/**
 * @module providers/azure/evidence
 *
 * The `az-snp-vtpm` / `az-tdx-vtpm` evidence objects (protocol.md §3) → bytes. These are the
 * JSON documents the confidential-containers `az-snp-vtpm` / `az-tdx-vtpm` attesters emit, so
 * two schema generations are accepted, each exactly (unknown members are rejected):
 *
 * - v1/v2 (`"version": 1 | 2`): `tpm_quote {signature: hex, message: hex, pcrs: [hex × 24]}`,
 *   `hcl_report` base64url, and `vcek` base64url DER (SNP) or `td_quote` base64url (TDX);
 *   optional `vcek_chain` (PEM: ASK/ASVK, an ARK copy is ignored) and `event_log` (base64url).
 *   `vcek` may be left out (Azure THIM unavailable): the VCEK then comes from AMD KDS.
 *   Optional `imds_attested`: the IMDS attested-document response `{encoding: "pkcs7",
 *   signature: base64}` unchanged (identity source for the subscription, `imds.ts`).
 *   The attesters write base64url *with* padding (Rust's URL_SAFE engine), so one or two `=`
 *   are accepted at the end of a correctly-sized string; nothing else is.
 * - v0 (no `version`): SNP `{quote {signature, message, pcrs} as JSON byte arrays, report: byte
 *   array (HCL report), vcek: PEM}`; TDX `{tpm_quote {…byte arrays}, hcl_report: byte array,
 *   td_quote: byte array}` — the form of the real samples in test/vectors.
 *
 * Sizes are capped (HCL report ≤ 16 KiB, TD quote ≤ 32 KiB, message ≤ 1 KiB, signature ≤ 512 B,
 * exactly 24 PCRs of 32 bytes: Azure quotes all SHA-256 PCRs 0–23).
 */
import { z } from 'zod';
import { malformed } from '../common/errors.js';
import { fromBase64Any, fromBase64Url, fromHex } from '../common/encoding.js';

export const AzureEvidenceCodes = {
  EVIDENCE_INVALID: 'EVIDENCE_INVALID',
} as const;

export interface AzureEvidence {
  /** 0 for the v0 array schema. */
  readonly version: number;
  /**
   * `pcrs`: the 24 SHA-256 PCR values as the evidence carried them: hex text (v1/v2, checked by the
   * schema; the quote verifier decodes it once and reports lower-case text as it is, so it is
   * never decoded and encoded again) or bytes (v0).
   */
  readonly quote: { readonly message: Uint8Array; readonly signature: Uint8Array; readonly pcrs: readonly (Uint8Array | string)[] };
  readonly hclReport: Uint8Array;
  /** SNP: the VCEK/VLEK the evidence carries (DER). */
  readonly vcekDer?: Uint8Array;
  /** SNP: a PEM VCEK (v0) — kept as text for the X.509 layer. */
  readonly vcekPem?: string;
  readonly vcekChainPem?: string;
  /** TDX: the TD quote. */
  readonly tdQuote?: Uint8Array;
  readonly eventLog?: Uint8Array;
  /** The IMDS attested document's PKCS#7 (DER), when sent (`imds_attested`). */
  readonly imdsPkcs7?: Uint8Array;
}

const MAX_HCL = 16 * 1024;
const MAX_TDQ = 32 * 1024;
const hexStr = (max: number) => z.string().max(2 * max).regex(/^(?:[0-9a-fA-F]{2})+$/);
const b64u = (max: number) => z.string().max(Math.ceil((max * 4) / 3) + 2).regex(/^[A-Za-z0-9_-]+={0,2}$/);
const byteArr = (max: number) => z.array(z.number().int().min(0).max(255)).min(1).max(max);
const pem = z.string().max(16 * 1024);

const quoteV1 = z.strictObject({ signature: hexStr(512), message: hexStr(1024), pcrs: z.array(hexStr(32)).length(24) });
const quoteV0 = z.strictObject({ signature: byteArr(512), message: byteArr(1024), pcrs: z.array(byteArr(32)).length(24) });

/** `GET /metadata/attested/document` response, as IMDS returns it (standard base64). */
const imdsAttested = z.strictObject({ encoding: z.literal('pkcs7'), signature: z.string().max(24 * 1024).regex(/^[A-Za-z0-9+/]+={0,2}$/) });

const snpV1 = z.strictObject({
  version: z.union([z.literal(1), z.literal(2)]),
  tpm_quote: quoteV1,
  hcl_report: b64u(MAX_HCL),
  vcek: b64u(8 * 1024).optional(),
  vcek_chain: pem.optional(),
  event_log: b64u(1024 * 1024).optional(),
  imds_attested: imdsAttested.optional(),
});
const snpV0 = z.strictObject({ quote: quoteV0, report: byteArr(MAX_HCL), vcek: pem });
const tdxV1 = z.strictObject({
  version: z.union([z.literal(1), z.literal(2)]),
  tpm_quote: quoteV1,
  hcl_report: b64u(MAX_HCL),
  td_quote: b64u(MAX_TDQ),
  event_log: b64u(1024 * 1024).optional(),
  imds_attested: imdsAttested.optional(),
});
const tdxV0 = z.strictObject({ tpm_quote: quoteV0, hcl_report: byteArr(MAX_HCL), td_quote: byteArr(MAX_TDQ) });

/** base64url as the attesters write it: unpadded, or padded to a multiple of 4. */
function b64url(s: string, what: string): Uint8Array {
  const unpadded = s.replace(/=+$/, '');
  if (unpadded.length !== s.length && s.length % 4 !== 0) {
    throw malformed('BAD_ENCODING', `${what}: base64url padding does not complete a quantum`);
  }
  return fromBase64Url(unpadded, what);
}

function invalid(format: string, issue: z.core.$ZodIssue | undefined): never {
  const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
  throw malformed(AzureEvidenceCodes.EVIDENCE_INVALID, `${format} evidence does not match its schema (${where})`);
}

export function decodeAzureEvidence(format: 'az-snp-vtpm' | 'az-tdx-vtpm', evidence: unknown): AzureEvidence {
  const versioned = typeof evidence === 'object' && evidence !== null && 'version' in evidence;
  if (format === 'az-snp-vtpm') {
    if (versioned) {
      const r = snpV1.safeParse(evidence);
      if (!r.success) invalid(format, r.error.issues[0]);
      const e = r.data;
      return Object.freeze({
        version: e.version,
        quote: { message: fromHex(e.tpm_quote.message), signature: fromHex(e.tpm_quote.signature), pcrs: Object.freeze([...e.tpm_quote.pcrs]) },
        hclReport: b64url(e.hcl_report, 'hcl_report'),
        ...(e.vcek !== undefined ? { vcekDer: b64url(e.vcek, 'vcek') } : {}),
        ...(e.vcek_chain !== undefined ? { vcekChainPem: e.vcek_chain } : {}),
        ...(e.event_log !== undefined ? { eventLog: b64url(e.event_log, 'event_log') } : {}),
        ...(e.imds_attested !== undefined ? { imdsPkcs7: fromBase64Any(e.imds_attested.signature, 'imds_attested.signature') } : {}),
      });
    }
    const r = snpV0.safeParse(evidence);
    if (!r.success) invalid(format, r.error.issues[0]);
    const e = r.data;
    return Object.freeze({
      version: 0,
      quote: { message: Uint8Array.from(e.quote.message), signature: Uint8Array.from(e.quote.signature), pcrs: e.quote.pcrs.map((p) => Uint8Array.from(p)) },
      hclReport: Uint8Array.from(e.report),
      vcekPem: e.vcek,
    });
  }
  if (versioned) {
    const r = tdxV1.safeParse(evidence);
    if (!r.success) invalid(format, r.error.issues[0]);
    const e = r.data;
    return Object.freeze({
      version: e.version,
      quote: { message: fromHex(e.tpm_quote.message), signature: fromHex(e.tpm_quote.signature), pcrs: Object.freeze([...e.tpm_quote.pcrs]) },
      hclReport: b64url(e.hcl_report, 'hcl_report'),
      tdQuote: b64url(e.td_quote, 'td_quote'),
      ...(e.event_log !== undefined ? { eventLog: b64url(e.event_log, 'event_log') } : {}),
      ...(e.imds_attested !== undefined ? { imdsPkcs7: fromBase64Any(e.imds_attested.signature, 'imds_attested.signature') } : {}),
    });
  }
  const r = tdxV0.safeParse(evidence);
  if (!r.success) invalid(format, r.error.issues[0]);
  const e = r.data;
  return Object.freeze({
    version: 0,
    quote: { message: Uint8Array.from(e.tpm_quote.message), signature: Uint8Array.from(e.tpm_quote.signature), pcrs: e.tpm_quote.pcrs.map((p) => Uint8Array.from(p)) },
    hclReport: Uint8Array.from(e.hcl_report),
    tdQuote: Uint8Array.from(e.td_quote),
  });
}
