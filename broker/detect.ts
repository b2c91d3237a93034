/**
 * @module broker/detect
 *
 * What `attest-broker verify` was given, from the content: tools' output files are taken as they
 * are (no wrapping by hand), and turned into the protocol's evidence object of their format.
 *
 * | input | format |
 * |---|---|
 * | a whole `/v1/attest` request (`provider`, `format`, `evidence`) | as it says |
 * | JSON with `tpm_quote` + `hcl_report` + `td_quote` (Trustee / CoCo `az-tdx-vtpm`, v0 or v1) | `az-tdx-vtpm` |
 * | JSON with `tpm_quote` + `hcl_report`, or `quote` + `report` + `vcek` (`az-snp-vtpm`, v0–v2) | `az-snp-vtpm` |
 * | JSON with `ak_pubkeys` + `attestation.gcp` (lockboot/vaportpm GCP) | `vaportpm-gcp` |
 * | JSON with `ak_pubkeys` + `attestation.nitro` (lockboot/vaportpm NitroTPM) | `nitrotpm` (document + quote) |
 * | JSON `{"attestation": base64}` | `gotpm` |
 * | go-tpm-tools protojson of `attest.Attestation` (`akPub`, `quotes`, …) | `gotpm-json` |
 * | JSON with `ak_pub` + `quotes` | `gotpm-json` |
 * | JSON with `document` (base64 or hex COSE_Sign1) | `nitrotpm` |
 * | JSON with `ak_public` + `quote` | `tpm` |
 * | raw, hex or base64 bytes of a COSE_Sign1 (CBOR tag 18 / 4-array) | `nitrotpm` |
 * | raw, hex or base64 bytes of an `attest.Attestation` protobuf (`gotpm attest` output) | `gotpm` |
 *
 * Detection only chooses the format and re-encodes; the provider then parses and verifies as
 * for any request (a wrong guess is a typed rejection, never an acceptance).
 */
import type { ProviderName } from '../providers/common/types.js';
import { fromBase64Any, fromHex, toBase64, toBase64Url, toHex } from '../providers/common/encoding.js';

export interface Detected {
  provider: ProviderName;
  format: string;
  evidence: Record<string, unknown>;
  /** How it was recognised (for the CLI's stderr). */
  how: string;
}

export class DetectError extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const HEX_RE = /^(?:[0-9a-fA-F]{2})+$/;
const B64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

function isCose(b: Uint8Array): boolean {
  // COSE_Sign1: CBOR tag 18 (0xd2) then an array of 4 (0x84), or the untagged array.
  return (b[0] === 0xd2 && b[1] === 0x84) || (b[0] === 0x84 && b[1] !== undefined && (b[1] & 0xe0) === 0x40);
}

function isAttestationProto(b: Uint8Array): boolean {
  // attest.Attestation starts with field 1 (ak_pub, length-delimited) or field 2 (quotes): 0x0a / 0x12.
  return b.length > 16 && (b[0] === 0x0a || b[0] === 0x12);
}

function fromBinary(b: Uint8Array, how: string): Detected {
  if (isCose(b)) return { provider: 'aws', format: 'nitrotpm', evidence: { document: toBase64(b) }, how: `${how} COSE_Sign1 (NitroTPM attestation document)` };
  if (isAttestationProto(b)) return { provider: 'gcp', format: 'gotpm', evidence: { attestation: toBase64(b) }, how: `${how} go-tpm-tools attest.Attestation protobuf` };
  throw new DetectError(`${how} bytes are neither a COSE_Sign1 document nor an attest.Attestation protobuf; give --format`);
}

/** A string field that may be hex or base64: returned as standard base64. */
function hexOrBase64(s: string): string {
  return HEX_RE.test(s) ? toBase64(fromHex(s)) : s;
}

/** vaportpm's NitroTPM JSON → the `nitrotpm` evidence (document + the quote its AK signed). */
function vaportpmNitro(v: Record<string, unknown>): Record<string, unknown> {
  const att = v.attestation as { nitro?: { document?: unknown }; tpm?: { ecc_p256?: { attest_data?: unknown; signature?: unknown } } };
  const doc = att.nitro?.document;
  if (typeof doc !== 'string') throw new DetectError('vaportpm NitroTPM JSON without attestation.nitro.document');
  const out: Record<string, unknown> = { document: hexOrBase64(doc) };
  const q = att.tpm?.ecc_p256;
  if (q && typeof q.attest_data === 'string' && typeof q.signature === 'string' && isObj(v.pcrs)) {
    out.quote = { message: toBase64Url(fromHex(q.attest_data)), signature: toBase64Url(fromHex(q.signature)), pcrs: v.pcrs };
  }
  return out;
}

const PROTOJSON_BANKS: Record<string, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA384: 'sha384', '4': 'sha1', '11': 'sha256', '12': 'sha384' };

/** go-tpm-tools protojson (`protojson.Marshal(attest.Attestation)`, camelCase, base64 bytes) → `gotpm-json`. */
function protojson(v: Record<string, unknown>): Record<string, unknown> {
  for (const tee of ['sevSnpAttestation', 'tdxAttestation', 'sev_snp_attestation', 'tdx_attestation']) {
    if (tee in v) throw new DetectError(`protojson with ${tee}: give the binary attestation (gotpm attest without --format) or the gotpm-json form`);
  }
  const b64u = (x: unknown, what: string): string => {
    if (typeof x !== 'string') throw new DetectError(`protojson: ${what} is not a base64 string`);
    return toBase64Url(fromBase64Any(x, what));
  };
  const get = (a: string, b: string): unknown => v[a] ?? v[b];
  const quotes = get('quotes', 'quotes');
  if (!Array.isArray(quotes)) throw new DetectError('protojson: quotes is not a list');
  const out: Record<string, unknown> = {
    ak_pub: b64u(get('akPub', 'ak_pub'), 'akPub'),
    ak_cert: b64u(get('akCert', 'ak_cert'), 'akCert'),
    quotes: quotes.map((q: unknown, i) => {
      if (!isObj(q) || !isObj(q.pcrs)) throw new DetectError(`protojson: quotes[${i}] is malformed`);
      const bank = PROTOJSON_BANKS[String(q.pcrs.hash)];
      if (!bank) throw new DetectError(`protojson: quotes[${i}].pcrs.hash ${String(q.pcrs.hash)} is not SHA1/SHA256/SHA384`);
      const values: Record<string, string> = {};
      for (const [k, x] of Object.entries(isObj(q.pcrs.pcrs) ? q.pcrs.pcrs : {})) values[k] = toHex(fromBase64Any(String(x), `quotes[${i}].pcrs.${k}`));
      return { message: b64u(q.quote, `quotes[${i}].quote`), signature: b64u(q.rawSig ?? q.raw_sig, `quotes[${i}].rawSig`), pcrs: { [bank]: values } };
    }),
  };
  const log = get('eventLog', 'event_log');
  if (log !== undefined) out.event_log = b64u(log, 'eventLog');
  const clog = get('canonicalEventLog', 'canonical_event_log');
  if (clog !== undefined) out.canonical_event_log = b64u(clog, 'canonicalEventLog');
  const inter = get('intermediateCerts', 'intermediate_certs');
  if (Array.isArray(inter)) out.intermediate_certs = inter.map((c, i) => b64u(c, `intermediateCerts[${i}]`));
  const info = get('instanceInfo', 'instance_info');
  if (isObj(info)) {
    out.instance_info = {
      zone: String(info.zone ?? ''),
      project_id: String(info.projectId ?? info.project_id ?? ''),
      project_number: String(info.projectNumber ?? info.project_number ?? '0'),
      instance_name: String(info.instanceName ?? info.instance_name ?? ''),
      instance_id: String(info.instanceId ?? info.instance_id ?? '0'),
    };
  }
  return out;
}

function fromJson(v: unknown): Detected {
  if (!isObj(v)) throw new DetectError('the JSON is not an object');
  if ('tpm_quote' in v && 'hcl_report' in v && 'td_quote' in v) return { provider: 'azure', format: 'az-tdx-vtpm', evidence: v, how: 'Azure TDX CVM evidence (az-tdx-vtpm)' };
  if (('tpm_quote' in v && 'hcl_report' in v) || ('quote' in v && 'report' in v && 'vcek' in v)) {
    return { provider: 'azure', format: 'az-snp-vtpm', evidence: v, how: 'Azure SEV-SNP CVM evidence (az-snp-vtpm)' };
  }
  if ('ak_pubkeys' in v && isObj(v.attestation)) {
    if ('gcp' in v.attestation) return { provider: 'gcp', format: 'vaportpm-gcp', evidence: v, how: 'vaportpm GCP evidence' };
    if ('nitro' in v.attestation) return { provider: 'aws', format: 'nitrotpm', evidence: vaportpmNitro(v), how: 'vaportpm NitroTPM evidence (document + TPM quote)' };
  }
  if (typeof v.attestation === 'string' && Object.keys(v).length === 1) return { provider: 'gcp', format: 'gotpm', evidence: v, how: 'gotpm evidence object' };
  if ('akPub' in v || ('ak_pub' in v && Array.isArray(v.quotes) && v.quotes.some((q) => isObj(q) && 'rawSig' in q))) {
    return { provider: 'gcp', format: 'gotpm-json', evidence: protojson(v), how: 'go-tpm-tools protojson attest.Attestation' };
  }
  if ('ak_pub' in v && 'quotes' in v) return { provider: 'gcp', format: 'gotpm-json', evidence: v, how: 'gotpm-json evidence' };
  if (typeof v.document === 'string') return { provider: 'aws', format: 'nitrotpm', evidence: { ...v, document: hexOrBase64(v.document) }, how: 'NitroTPM evidence' };
  if ('ak_public' in v && 'quote' in v) return { provider: 'tpm', format: 'tpm', evidence: v, how: 'tpm evidence' };
  throw new DetectError(`cannot tell the format of this JSON (keys: ${Object.keys(v).slice(0, 8).join(', ')}); give --format`);
}

/**
 * Detects the format of an evidence file. `format`/`provider`, when given, are kept (binary
 * input is still re-encoded for them).
 */
export function detectEvidence(bytes: Uint8Array, given: { format?: string; provider?: ProviderName } = {}): Detected {
  let text: string | undefined;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes).trim();
  } catch {
    text = undefined;
  }
  let d: Detected;
  if (text !== undefined && /^[{[]/.test(text)) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DetectError(`the file is not valid JSON: ${(e as Error).message}`);
    }
    if (isObj(v) && isObj(v.evidence) && typeof v.format === 'string') {
      return { provider: (typeof v.provider === 'string' ? v.provider : (given.provider ?? 'tpm')) as ProviderName, format: v.format, evidence: v.evidence, how: 'a whole /v1/attest request' };
    }
    if (given.format) return { provider: given.provider ?? 'tpm', format: given.format, evidence: v as Record<string, unknown>, how: `--format ${given.format}` };
    d = fromJson(v);
  } else if (text !== undefined && text.length > 0 && HEX_RE.test(text)) d = fromBinary(fromHex(text), 'hex of a');
  else if (text !== undefined && text.length > 0 && B64_RE.test(text.replace(/\s+/g, ''))) d = fromBinary(fromBase64Any(text.replace(/\s+/g, ''), 'evidence file'), 'base64 of a');
  else d = fromBinary(bytes, 'raw');
  if (given.format && given.format !== d.format) throw new DetectError(`the file holds ${d.how} (format ${d.format}), not --format ${given.format}`);
  return d;
}
