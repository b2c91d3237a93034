/**
 * @module providers/gcp/parse
 *
 * Bytes and JSON → a readonly `GotpmAttestation`; no crypto, no clock, no policy.
 *
 * Two wire forms carry the same parts:
 * - `gotpm`: `{"attestation": base64(attest.Attestation protobuf)}` exactly as `gotpm attest`
 *   writes it (go-tpm-tools proto/attest.proto and proto/tpm.proto, read at commit 67670e5c);
 *   standard or URL-safe base64.
 * - `gotpm-json`: the same fields as JSON in the protocol's own conventions (base64url bytes,
 *   hex PCR values, the shared `tpm-quote` object); schema in docs/gcp.md.
 *
 * Messages decoded here (field numbers from the .proto files):
 * ```
 * attest.Attestation  1 ak_pub bytes (TPMT_PUBLIC)   2 quotes repeated tpm.Quote
 *                     3 event_log bytes              4 instance_info GCEInstanceInfo
 *                     5 canonical_event_log bytes    6 ak_cert bytes (DER)
 *                     7 intermediate_certs repeated bytes (DER)
 *                     oneof tee_attestation { 8 sev_snp_attestation sevsnp.Attestation;
 *                                             9 tdx_attestation tdx.QuoteV4 }
 * tpm.Quote           1 quote bytes (TPMS_ATTEST)    2 raw_sig bytes (TPMT_SIGNATURE)   3 pcrs PCRs
 * tpm.PCRs            1 hash HashAlgo (enum)         2 pcrs map<uint32, bytes>
 * attest.GCEInstanceInfo 1 zone  2 project_id  3 project_number uint64  4 instance_name
 *                     5 instance_id uint64
 * ```
 * The TEE reports are kept as raw bytes here: the SEV-SNP one is decoded by sevsnp.ts and
 * verified through providers/amd-sev-snp; a TDX one is refused by verify.ts (never ignored).
 */
import { z } from 'zod';
import { malformed, CommonCodes } from '../common/errors.js';
import { fromBase64Any, fromBase64Url, fromHex } from '../common/encoding.js';
import {
  decodeMessage,
  getBytes,
  getBytesList,
  getMap,
  getNumber,
  getString,
  getU64,
  has,
  type Schema,
} from './protobuf.js';

export const GcpParseCodes = {
  /** The evidence JSON does not match the format's schema. */
  EVIDENCE_SCHEMA: 'EVIDENCE_SCHEMA',
  /** A required part of the attestation is absent. */
  ATTESTATION_INCOMPLETE: 'ATTESTATION_INCOMPLETE',
} as const;

/** tpm.HashAlgo values (TCG Algorithm Registry ids). */
export const HashAlgo = { SHA1: 0x0004, SHA256: 0x000b, SHA384: 0x000c, SHA512: 0x000d } as const;

export interface GotpmPcrs {
  /** tpm.HashAlgo (a TPM_ALG_ID); unknown values are kept and refused by verify. */
  readonly hash: number;
  readonly values: ReadonlyMap<number, Uint8Array>;
}

export interface GotpmQuote {
  /** TPMS_ATTEST, as signed. */
  readonly quote: Uint8Array;
  /** TPMT_SIGNATURE. */
  readonly rawSig: Uint8Array;
  readonly pcrs: GotpmPcrs;
}

export interface GceInstanceInfoMessage {
  readonly zone: string;
  readonly projectId: string;
  readonly projectNumber: bigint;
  readonly instanceName: string;
  readonly instanceId: bigint;
}

export type TeeAttestation =
  | { readonly kind: 'sev-snp'; readonly bytes: Uint8Array }
  | { readonly kind: 'tdx'; readonly bytes: Uint8Array };

export interface GotpmAttestation {
  readonly akPub: Uint8Array;
  readonly quotes: readonly GotpmQuote[];
  /** Empty when absent (proto3 default). */
  readonly eventLog: Uint8Array;
  /** Unsigned, client-reported; verify only compares it with the certificate. */
  readonly instanceInfo: GceInstanceInfoMessage | undefined;
  readonly canonicalEventLog: Uint8Array;
  readonly akCert: Uint8Array;
  readonly intermediateCerts: readonly Uint8Array[];
  readonly tee: TeeAttestation | undefined;
  /** Field numbers skipped as unknown (proto3), for logs. */
  readonly unknownFields: readonly number[];
}

// Caps: far above anything a real attestation holds, far below what could hurt.
export const LIMITS = {
  attestation: 1 << 20,
  akPub: 2048,
  quote: 2048,
  rawSig: 2048,
  quotes: 8,
  pcrEntries: 32,
  pcrValue: 64,
  eventLog: 1 << 20,
  cert: 16 * 1024,
  intermediates: 8,
  instanceInfo: 4096,
  instanceString: 1024,
  tee: 256 * 1024,
} as const;

const PCRS_SCHEMA: Schema = {
  1: { name: 'hash', spec: { kind: 'enum' } },
  2: { name: 'pcrs', spec: { kind: 'map-uint32-bytes', maxEntries: LIMITS.pcrEntries, maxValue: LIMITS.pcrValue } },
};

const QUOTE_SCHEMA: Schema = {
  1: { name: 'quote', spec: { kind: 'bytes', max: LIMITS.quote } },
  2: { name: 'raw_sig', spec: { kind: 'bytes', max: LIMITS.rawSig } },
  3: { name: 'pcrs', spec: { kind: 'message', max: LIMITS.pcrEntries * (LIMITS.pcrValue + 16) + 16 } },
};

const INSTANCE_INFO_SCHEMA: Schema = {
  1: { name: 'zone', spec: { kind: 'string', max: LIMITS.instanceString } },
  2: { name: 'project_id', spec: { kind: 'string', max: LIMITS.instanceString } },
  3: { name: 'project_number', spec: { kind: 'uint64' } },
  4: { name: 'instance_name', spec: { kind: 'string', max: LIMITS.instanceString } },
  5: { name: 'instance_id', spec: { kind: 'uint64' } },
};

const ATTESTATION_SCHEMA: Schema = {
  1: { name: 'ak_pub', spec: { kind: 'bytes', max: LIMITS.akPub } },
  2: { name: 'quotes', spec: { kind: 'message', max: LIMITS.quote + LIMITS.rawSig + 4096, repeated: { maxCount: LIMITS.quotes } } },
  3: { name: 'event_log', spec: { kind: 'bytes', max: LIMITS.eventLog } },
  4: { name: 'instance_info', spec: { kind: 'message', max: LIMITS.instanceInfo } },
  5: { name: 'canonical_event_log', spec: { kind: 'bytes', max: LIMITS.eventLog } },
  6: { name: 'ak_cert', spec: { kind: 'bytes', max: LIMITS.cert } },
  7: { name: 'intermediate_certs', spec: { kind: 'bytes', max: LIMITS.cert, repeated: { maxCount: LIMITS.intermediates } } },
  8: { name: 'sev_snp_attestation', spec: { kind: 'message', max: LIMITS.tee, oneof: 'tee_attestation' } },
  9: { name: 'tdx_attestation', spec: { kind: 'message', max: LIMITS.tee, oneof: 'tee_attestation' } },
};

// The decoders below read a private copy of the attestation (parseAttestationProto) and so take
// views into it (`decodeMessage(..., views = true)`): every bytes field of the result aliases
// that copy only, never the caller's buffer, without a copy per field (~100 of them).
function parseQuote(bytes: Uint8Array, i: number): GotpmQuote {
  const q = decodeMessage(bytes, QUOTE_SCHEMA, `quotes[${i}]`, 0, true);
  const p = decodeMessage(getBytes(q, 'pcrs'), PCRS_SCHEMA, `quotes[${i}].pcrs`, 0, true);
  return Object.freeze({
    quote: getBytes(q, 'quote'),
    rawSig: getBytes(q, 'raw_sig'),
    pcrs: Object.freeze({ hash: getNumber(p, 'hash'), values: getMap(p, 'pcrs') }),
  });
}

/** Decodes an `attest.Attestation` protobuf (see the module comment for the fields). */
export function parseAttestationProto(bytes: Uint8Array): GotpmAttestation {
  if (bytes.byteLength > LIMITS.attestation) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `attestation is ${bytes.byteLength} bytes, above ${LIMITS.attestation}`);
  }
  const a = decodeMessage(bytes.slice(), ATTESTATION_SCHEMA, 'attestation', 0, true);
  const quotes = getBytesList(a, 'quotes').map(parseQuote);
  let instanceInfo: GceInstanceInfoMessage | undefined;
  if (has(a, 'instance_info')) {
    const ii = decodeMessage(getBytes(a, 'instance_info'), INSTANCE_INFO_SCHEMA, 'attestation.instance_info', 0, true);
    instanceInfo = Object.freeze({
      zone: getString(ii, 'zone'),
      projectId: getString(ii, 'project_id'),
      projectNumber: getU64(ii, 'project_number'),
      instanceName: getString(ii, 'instance_name'),
      instanceId: getU64(ii, 'instance_id'),
    });
  }
  let tee: TeeAttestation | undefined;
  if (has(a, 'sev_snp_attestation')) tee = { kind: 'sev-snp', bytes: getBytes(a, 'sev_snp_attestation') };
  else if (has(a, 'tdx_attestation')) tee = { kind: 'tdx', bytes: getBytes(a, 'tdx_attestation') };
  return Object.freeze({
    akPub: getBytes(a, 'ak_pub'),
    quotes: Object.freeze(quotes),
    eventLog: getBytes(a, 'event_log'),
    instanceInfo,
    canonicalEventLog: getBytes(a, 'canonical_event_log'),
    akCert: getBytes(a, 'ak_cert'),
    intermediateCerts: Object.freeze([...getBytesList(a, 'intermediate_certs')]),
    tee: tee && Object.freeze(tee),
    unknownFields: Object.freeze([...a.unknown]),
  });
}

// ---------------------------------------------------------------------------------------------
// JSON envelopes

function schemaError(what: string, err: z.ZodError): Error {
  const first = err.issues[0];
  const path = first ? first.path.join('.') : '';
  return malformed(GcpParseCodes.EVIDENCE_SCHEMA, `${what}: ${path ? `${path}: ` : ''}${first?.message ?? 'invalid'}`);
}

const GotpmEnvelope = z.strictObject({ attestation: z.string().min(1).max(Math.ceil((LIMITS.attestation * 4) / 3) + 4) });

/** `gotpm` evidence: `{"attestation": base64}` (standard or URL-safe alphabet). */
export function parseGotpmEvidence(evidence: unknown): GotpmAttestation {
  const r = GotpmEnvelope.safeParse(evidence);
  if (!r.success) throw schemaError('gotpm evidence', r.error);
  return parseAttestationProto(fromBase64Any(r.data.attestation, 'attestation'));
}

const B64URL = z.string().max(2 * LIMITS.eventLog);
const PcrIndex = z.string().regex(/^(?:[0-9]|1[0-9]|2[0-9]|3[01])$/, 'PCR index must be 0..31 without leading zeros');
const Bank = z.enum(['sha1', 'sha256', 'sha384']);
const BANK_ALG: Record<z.infer<typeof Bank>, number> = { sha1: HashAlgo.SHA1, sha256: HashAlgo.SHA256, sha384: HashAlgo.SHA384 };
const Decimal = z.string().regex(/^(?:0|[1-9][0-9]{0,19})$/, 'must be a decimal integer string');
const InstanceString = z.string().max(LIMITS.instanceString);

/** The shared `tpm-quote` object of protocol §3, restricted to one bank per quote (as tpm.Quote is). */
const TpmQuoteJson = z.strictObject({
  message: B64URL,
  signature: B64URL,
  pcrs: z
    .partialRecord(Bank, z.record(PcrIndex, z.string().max(2 * LIMITS.pcrValue)))
    .refine((o) => Object.keys(o).length === 1, 'each quote carries exactly one PCR bank'),
});

export const GotpmJsonEvidence = z.strictObject({
  ak_pub: B64URL,
  ak_cert: B64URL,
  intermediate_certs: z.array(B64URL).max(LIMITS.intermediates).optional(),
  quotes: z.array(TpmQuoteJson).min(1).max(LIMITS.quotes),
  event_log: B64URL.optional(),
  canonical_event_log: B64URL.optional(),
  instance_info: z
    .strictObject({
      zone: InstanceString,
      project_id: InstanceString,
      project_number: Decimal,
      instance_name: InstanceString,
      instance_id: Decimal,
    })
    .optional(),
  sev_snp_attestation: B64URL.optional(),
  tdx_attestation: B64URL.optional(),
});
export type GotpmJsonEvidence = z.infer<typeof GotpmJsonEvidence>;

function u64(s: string, what: string): bigint {
  const v = BigInt(s);
  if (v >= 1n << 64n) throw malformed(GcpParseCodes.EVIDENCE_SCHEMA, `${what} exceeds 64 bits`);
  return v;
}

/** `gotpm-json` evidence → the same struct the protobuf decodes to. */
export function parseGotpmJsonEvidence(evidence: unknown): GotpmAttestation {
  const r = GotpmJsonEvidence.safeParse(evidence);
  if (!r.success) throw schemaError('gotpm-json evidence', r.error);
  const e = r.data;
  if (e.sev_snp_attestation !== undefined && e.tdx_attestation !== undefined) {
    throw malformed(GcpParseCodes.EVIDENCE_SCHEMA, 'gotpm-json evidence: sev_snp_attestation and tdx_attestation are exclusive');
  }
  const quotes = e.quotes.map((q, i): GotpmQuote => {
    const [bank, vals] = Object.entries(q.pcrs)[0] as [z.infer<typeof Bank>, Record<string, string>];
    const values = new Map<number, Uint8Array>();
    for (const [k, hex] of Object.entries(vals)) values.set(Number(k), fromHex(hex, `quotes[${i}].pcrs.${bank}.${k}`));
    return Object.freeze({
      quote: fromBase64Url(q.message, `quotes[${i}].message`),
      rawSig: fromBase64Url(q.signature, `quotes[${i}].signature`),
      pcrs: Object.freeze({ hash: BANK_ALG[bank], values }),
    });
  });
  const ii = e.instance_info;
  let tee: TeeAttestation | undefined;
  if (e.sev_snp_attestation !== undefined) tee = { kind: 'sev-snp', bytes: fromBase64Url(e.sev_snp_attestation, 'sev_snp_attestation') };
  if (e.tdx_attestation !== undefined) tee = { kind: 'tdx', bytes: fromBase64Url(e.tdx_attestation, 'tdx_attestation') };
  return Object.freeze({
    akPub: fromBase64Url(e.ak_pub, 'ak_pub'),
    quotes: Object.freeze(quotes),
    eventLog: e.event_log === undefined ? new Uint8Array(0) : fromBase64Url(e.event_log, 'event_log'),
    instanceInfo: ii
      ? Object.freeze({
          zone: ii.zone,
          projectId: ii.project_id,
          projectNumber: u64(ii.project_number, 'instance_info.project_number'),
          instanceName: ii.instance_name,
          instanceId: u64(ii.instance_id, 'instance_info.instance_id'),
        })
      : undefined,
    canonicalEventLog: e.canonical_event_log === undefined ? new Uint8Array(0) : fromBase64Url(e.canonical_event_log, 'canonical_event_log'),
    akCert: fromBase64Url(e.ak_cert, 'ak_cert'),
    intermediateCerts: Object.freeze((e.intermediate_certs ?? []).map((c, i) => fromBase64Url(c, `intermediate_certs[${i}]`))),
    tee: tee && Object.freeze(tee),
    unknownFields: Object.freeze([]),
  });
}
