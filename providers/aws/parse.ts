/**
 * @module providers/aws/parse
 *
 * Bytes → readonly structs for the `nitrotpm` format (no crypto, no clock, no policy).
 *
 * 1. `parseNitroEvidence`: the protocol §3 evidence object
 *    `{"document": base64(COSE_Sign1), "quote"?: tpm-quote, "event_log"?: b64url,
 *      "identity"?: base64(PKCS#7)}` — unknown members rejected, sizes capped. `document` and
 *    `identity` are formats reused from AWS tools, so both base64 alphabets are accepted
 *    (never mixed within one string).
 * 2. `decodeDocumentPayload` + `signingMaterial`: the COSE payload is CBOR-decoded (syntax only,
 *    strict rules of `cbor.ts`, the one indefinite-length top-level map allowed) and only the
 *    `certificate` and `cabundle` are read from it — they are needed to find the key that signed
 *    it, and they authenticate themselves through the chain to the pinned root.
 * 3. `parseAttestationDocument`: everything else, read only after the COSE signature verified.
 *    Runtime shape assertion of the AWS attestation document (AWS Nitro Enclaves NSM API,
 *    docs/attestation_process.md §2.1; EC2 User Guide "NitroTPM attestation document"):
 *    ```
 *    AttestationDocument = {
 *      module_id: text, digest: "SHA384", timestamp: uint (ms since epoch),
 *      nitrotpm_pcrs: { + index => bstr }   ; NitroTPM (an Enclave document has `pcrs`)
 *      certificate: bstr, cabundle: [+ bstr],
 *      ? public_key: bstr / nil, ? user_data: bstr / nil, ? nonce: bstr / nil }
 *    ```
 *    Checks: exactly these keys (text), each of its CBOR type and size (`cert` 1..1024 bytes in
 *    the AWS CDDL, allowed up to 4096 here; `user_data` 0..1024), digest `SHA384`; Enclave
 *    documents (`pcrs` key, `-enc` module id) are told apart from NitroTPM ones
 *    (DOCUMENT_TYPE_MISMATCH); PCR indices 0..23 (a TPM 2.0 PC-Client bank), each value 48 bytes
 *    (SHA-384); the module id has the NitroTPM form `i-<hex>-tpm<16 hex>`.
 */
import { z } from 'zod';
import { malformed, rejected, CommonCodes } from '../common/errors.js';
import { fromBase64Any, fromBase64Url, fromHex } from '../common/encoding.js';
import { decodeCbor, isBytes, isCborArray, isCborMap, type CborValue } from './cbor.js';

export const DocumentCodes = {
  /** The evidence object does not have the `nitrotpm` shape. */
  EVIDENCE_MALFORMED: 'EVIDENCE_MALFORMED',
  /** The attestation document payload is not a well-formed AWS attestation document. */
  DOCUMENT_MALFORMED: 'DOCUMENT_MALFORMED',
  /** A Nitro Enclave document where a NitroTPM document is required (or vice versa). */
  DOCUMENT_TYPE_MISMATCH: 'DOCUMENT_TYPE_MISMATCH',
  /** The document's digest is not SHA384. */
  DIGEST_UNSUPPORTED: 'DIGEST_UNSUPPORTED',
  /** `module_id` is not the NitroTPM form. */
  MODULE_ID_INVALID: 'MODULE_ID_INVALID',
  /** A PCR index or value length is out of range. */
  PCR_INVALID: 'PCR_INVALID',
} as const;

/** Caps (bytes of decoded data, characters of encoded data). */
export const LIMITS = Object.freeze({
  documentBytes: 64 * 1024,
  certificateBytes: 4096,
  cabundleCerts: 8,
  userDataBytes: 1024,
  quoteMessageBytes: 1024,
  quoteSignatureBytes: 1024,
  eventLogBytes: 1024 * 1024,
  identityBytes: 16 * 1024,
  pcrCount: 24,
});

const b64Field = (maxChars: number) => z.string().min(1).max(maxChars);
/** Base64 text length for `n` decoded bytes (padded), plus slack for nothing else. */
const b64Chars = (n: number): number => 4 * Math.ceil(n / 3);

const QuoteSchema = z.strictObject({
  message: b64Field(b64Chars(LIMITS.quoteMessageBytes)),
  signature: b64Field(b64Chars(LIMITS.quoteSignatureBytes)),
  pcrs: z.record(z.string().max(16), z.record(z.string().max(2), z.string().max(256))),
});

const EvidenceSchema = z.strictObject({
  document: b64Field(b64Chars(LIMITS.documentBytes)),
  quote: QuoteSchema.optional(),
  event_log: b64Field(b64Chars(LIMITS.eventLogBytes)).optional(),
  identity: b64Field(b64Chars(LIMITS.identityBytes)).optional(),
});

/** A `tpm-quote` object of the protocol, decoded but not interpreted (the TPM core does that). */
export interface TpmQuoteInput {
  /** TPMS_ATTEST. */
  readonly message: Uint8Array;
  /** TPMT_SIGNATURE, or a bare DER ECDSA signature. */
  readonly signature: Uint8Array;
  /** bank name → PCR index → value, as sent. */
  readonly pcrs: Readonly<Record<string, Readonly<Record<number, Uint8Array>>>>;
}

export interface NitroEvidence {
  /** The COSE_Sign1 bytes. */
  readonly document: Uint8Array;
  readonly quote?: TpmQuoteInput;
  readonly eventLog?: Uint8Array;
  /** EC2 instance identity document, PKCS#7 SignedData (DER). */
  readonly identity?: Uint8Array;
}

const PCR_INDEX_RE = /^(?:[0-9]|1[0-9]|2[0-3])$/;

function parseQuote(q: z.infer<typeof QuoteSchema>): TpmQuoteInput {
  const pcrs: Record<string, Record<number, Uint8Array>> = {};
  for (const [bank, values] of Object.entries(q.pcrs)) {
    const out: Record<number, Uint8Array> = {};
    for (const [idx, hex] of Object.entries(values)) {
      if (!PCR_INDEX_RE.test(idx)) throw malformed(DocumentCodes.EVIDENCE_MALFORMED, `quote.pcrs.${bank}: index "${idx}" is not 0..23`);
      out[Number(idx)] = fromHex(hex, `quote.pcrs.${bank}.${idx}`);
    }
    pcrs[bank] = out;
  }
  return Object.freeze({
    message: fromBase64Url(q.message, 'quote.message'),
    signature: fromBase64Url(q.signature, 'quote.signature'),
    pcrs: Object.freeze(pcrs),
  });
}

/** Parses the protocol's `nitrotpm` evidence object. */
export function parseNitroEvidence(evidence: unknown): NitroEvidence {
  const r = EvidenceSchema.safeParse(evidence);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue ? issue.path.join('.') || '(root)' : '(root)';
    const tooBig = issue?.code === 'too_big';
    throw malformed(
      tooBig ? CommonCodes.LIMIT_EXCEEDED : DocumentCodes.EVIDENCE_MALFORMED,
      `nitrotpm evidence: ${where}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const e = r.data;
  const out: {
    document: Uint8Array;
    quote?: TpmQuoteInput;
    eventLog?: Uint8Array;
    identity?: Uint8Array;
  } = { document: fromBase64Any(e.document, 'document') };
  if (e.quote !== undefined) out.quote = parseQuote(e.quote);
  if (e.event_log !== undefined) out.eventLog = fromBase64Url(e.event_log, 'event_log');
  if (e.identity !== undefined) out.identity = fromBase64Any(e.identity, 'identity');
  return Object.freeze(out);
}

/** The decoded payload map (text keys only). */
export type PayloadMap = ReadonlyMap<string, CborValue>;

/** CBOR-decodes the COSE payload (syntax only; nothing in it is believed yet). */
export function decodeDocumentPayload(payload: Uint8Array): PayloadMap {
  const v = decodeCbor(payload, {
    what: 'attestation document',
    allowIndefiniteTopLevelMap: true,
    maxBytes: LIMITS.documentBytes,
    maxDepth: 3,
    maxLength: 64,
    maxItems: 512,
  });
  if (!isCborMap(v)) throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'attestation document payload is not a map');
  const out = new Map<string, CborValue>();
  for (const [k, val] of v) {
    if (typeof k !== 'string') throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'attestation document has a non-text key');
    out.set(k, val);
  }
  return out;
}

export interface SigningMaterial {
  /** DER of the certificate whose key signed the COSE message. */
  readonly certificate: Uint8Array;
  /** DER certificates, root first (AWS order). */
  readonly cabundle: readonly Uint8Array[];
}

/** Reads only `certificate` and `cabundle`, which the signature check needs. */
export function signingMaterial(map: PayloadMap): SigningMaterial {
  const cert = map.get('certificate');
  if (!isBytes(cert) || cert.byteLength === 0 || cert.byteLength > LIMITS.certificateBytes) {
    throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'attestation document certificate is missing or not 1..4096 bytes');
  }
  const bundle = map.get('cabundle');
  if (!isCborArray(bundle) || bundle.length === 0) {
    throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'attestation document cabundle is missing or empty');
  }
  if (bundle.length > LIMITS.cabundleCerts) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `cabundle holds ${bundle.length} certificates (cap ${LIMITS.cabundleCerts})`);
  }
  const certs: Uint8Array[] = [];
  for (const c of bundle) {
    if (!isBytes(c) || c.byteLength === 0 || c.byteLength > LIMITS.certificateBytes) {
      throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'cabundle entry is not a 1..4096-byte string');
    }
    certs.push(c);
  }
  return Object.freeze({ certificate: cert, cabundle: Object.freeze(certs) });
}

export interface NitroTpmDocument {
  /** `i-<instance hex>-tpm<16 hex>`. */
  readonly moduleId: string;
  /** The EC2 instance id inside `moduleId`. */
  readonly instanceId: string;
  readonly digest: 'SHA384';
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: number;
  /** PCR index → 48-byte SHA-384 value. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly certificate: Uint8Array;
  readonly cabundle: readonly Uint8Array[];
  readonly publicKey?: Uint8Array;
  readonly userData?: Uint8Array;
  readonly nonce?: Uint8Array;
}

const KNOWN_KEYS = new Set([
  'module_id',
  'digest',
  'timestamp',
  'nitrotpm_pcrs',
  'certificate',
  'cabundle',
  'public_key',
  'user_data',
  'nonce',
]);

/** EC2 instance ids: `i-` and 8 or 17 lower-case hex digits. */
export const INSTANCE_ID_RE = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
/** NitroTPM module id: `<instance id>-tpm<16 hex>` (Enclaves use `-enc<16 hex>`). */
const TPM_MODULE_RE = /^(i-(?:[0-9a-f]{8}|[0-9a-f]{17}))-tpm[0-9a-f]{16}$/;
const ENCLAVE_MODULE_RE = /^i-[0-9a-f]+-enc[0-9a-f]+$/;
const SHA384_LEN = 48;

function optionalBytes(map: PayloadMap, key: string, max: number): Uint8Array | undefined {
  if (!map.has(key)) return undefined;
  const v = map.get(key);
  if (v === null) return undefined;
  if (!isBytes(v) || v.byteLength > max) {
    throw malformed(DocumentCodes.DOCUMENT_MALFORMED, `attestation document ${key} is not nil or a 0..${max}-byte string`);
  }
  return v;
}

/**
 * Shape assertion of a (signature-verified) payload as a NitroTPM attestation document.
 * Call only after the COSE signature has verified.
 */
export function parseAttestationDocument(map: PayloadMap): NitroTpmDocument {
  const moduleId = map.get('module_id');
  // Enclave documents first: they carry `pcrs` and an `-enc` module id (INDEX §3b).
  if (map.has('pcrs') || (typeof moduleId === 'string' && ENCLAVE_MODULE_RE.test(moduleId))) {
    throw rejected(DocumentCodes.DOCUMENT_TYPE_MISMATCH, 'this is a Nitro Enclave attestation document; a NitroTPM document is required');
  }
  for (const k of map.keys()) {
    if (!KNOWN_KEYS.has(k)) throw malformed(DocumentCodes.DOCUMENT_MALFORMED, `attestation document has an unknown key "${k}"`);
  }
  if (typeof moduleId !== 'string') throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'module_id is missing or not text');
  const m = TPM_MODULE_RE.exec(moduleId);
  if (!m) throw rejected(DocumentCodes.MODULE_ID_INVALID, `module_id "${moduleId}" is not a NitroTPM module id (i-…-tpm…)`);

  const digest = map.get('digest');
  if (typeof digest !== 'string') throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'digest is missing or not text');
  if (digest !== 'SHA384') throw rejected(DocumentCodes.DIGEST_UNSUPPORTED, `digest "${digest}" is not SHA384`);

  const timestamp = map.get('timestamp');
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'timestamp is missing or not a positive integer');
  }

  const rawPcrs = map.get('nitrotpm_pcrs');
  if (!isCborMap(rawPcrs)) throw malformed(DocumentCodes.DOCUMENT_MALFORMED, 'nitrotpm_pcrs is missing or not a map');
  if (rawPcrs.size === 0 || rawPcrs.size > LIMITS.pcrCount) {
    throw malformed(DocumentCodes.PCR_INVALID, `nitrotpm_pcrs holds ${rawPcrs.size} entries (1..${LIMITS.pcrCount})`);
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of rawPcrs) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 23) {
      throw malformed(DocumentCodes.PCR_INVALID, `nitrotpm_pcrs index ${String(k)} is not 0..23`);
    }
    if (!isBytes(v) || v.byteLength !== SHA384_LEN) {
      throw malformed(DocumentCodes.PCR_INVALID, `nitrotpm_pcrs[${k}] is not a ${SHA384_LEN}-byte SHA-384 value`);
    }
    pcrs.set(k, v);
  }
  const sorted = new Map([...pcrs.entries()].sort((a, b) => a[0] - b[0]));

  const { certificate, cabundle } = signingMaterial(map);
  const out: {
    -readonly [K in keyof NitroTpmDocument]: NitroTpmDocument[K];
  } = {
    moduleId,
    instanceId: m[1] as string,
    digest: 'SHA384',
    timestamp,
    pcrs: sorted,
    certificate,
    cabundle,
  };
  const pk = optionalBytes(map, 'public_key', LIMITS.userDataBytes);
  const ud = optionalBytes(map, 'user_data', LIMITS.userDataBytes);
  const nonce = optionalBytes(map, 'nonce', LIMITS.userDataBytes);
  if (pk !== undefined) out.publicKey = pk;
  if (ud !== undefined) out.userData = ud;
  if (nonce !== undefined) out.nonce = nonce;
  return Object.freeze(out);
}
