/**
 * @module deploy/node/client/protobuf
 *
 * A minimal proto3 *encoder* — just enough to emit go-tpm-tools' `attest.Attestation`
 * (proto/attest.proto, proto/tpm.proto at google/go-tpm-tools) so the GCP gatherer posts
 * exactly what `gotpm attest` would. Encoding rules from the Protocol Buffers encoding guide
 * ("Encoding", developers.google.com/protocol-buffers/docs/encoding):
 * - a field is a key varint `(field_number << 3) | wire_type` followed by its value;
 * - wire type 0 = varint (uint32, enums), 2 = length-delimited (bytes, embedded messages);
 * - proto3 omits scalar fields equal to their default (0, empty bytes);
 * - `map<k, v>` is encoded as a repeated embedded message `{1: key, 2: value}`; entries are
 *   written in ascending key order (deterministic output, as Go's `Deterministic: true`), and
 *   an entry writes its key and value even when they are zero/empty (as Go's map codec does).
 */

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  if (v < 0n) throw new RangeError('negative varint');
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;
  private push(b: Uint8Array | number[]): this {
    const u = b instanceof Uint8Array ? b : Uint8Array.from(b);
    this.parts.push(u);
    this.size += u.length;
    return this;
  }
  /** Wire type 0; omitted when 0 (proto3 default). */
  uint(field: number, v: number | bigint, always = false): this {
    if (BigInt(v) === 0n && !always) return this;
    return this.push([...varint((field << 3) | 0), ...varint(v)]);
  }
  /** Wire type 2; omitted when empty unless `always` (repeated bytes keep empty elements). */
  bytes(field: number, v: Uint8Array | undefined, always = false): this {
    if (!v || (v.length === 0 && !always)) return this;
    this.push([...varint((field << 3) | 2), ...varint(v.length)]);
    return this.push(v);
  }
  /** An embedded message (always written, even when empty, like a set sub-message). */
  message(field: number, m: ProtoWriter): this {
    return this.bytes(field, m.finish(), true);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** tpm.HashAlgo (proto/tpm.proto): TCG algorithm IDs. */
export const HashAlgo = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c } as const;

export interface GotpmQuote {
  bank: keyof typeof HashAlgo;
  /** TPMS_ATTEST. */
  quote: Uint8Array;
  /** TPMT_SIGNATURE. */
  rawSig: Uint8Array;
  pcrs: ReadonlyMap<number, Uint8Array>;
}

export interface GotpmAttestation {
  /** TPMT_PUBLIC of the AK (no TPM2B size prefix). */
  akPub: Uint8Array;
  quotes: readonly GotpmQuote[];
  eventLog?: Uint8Array;
  /** DER. */
  akCert?: Uint8Array;
  intermediateCerts?: readonly Uint8Array[];
  /** The encoded `sevsnp.Attestation` (oneof tee_attestation, field 8); see encodeSevSnpAttestation. */
  sevSnpAttestation?: Uint8Array;
}

/**
 * attest.Attestation: 1 ak_pub, 2 quotes (tpm.Quote: 1 quote, 2 raw_sig, 3 pcrs
 * (tpm.PCRs: 1 hash, 2 map<uint32, bytes> pcrs)), 3 event_log, 6 ak_cert, 7 intermediate_certs,
 * 8 sev_snp_attestation (go-sev-guest sevsnp.Attestation, encodeSevSnpAttestation).
 */
export function encodeAttestation(a: GotpmAttestation): Uint8Array {
  const w = new ProtoWriter().bytes(1, a.akPub);
  for (const q of a.quotes) {
    const pcrs = new ProtoWriter().uint(1, HashAlgo[q.bank]);
    for (const idx of [...q.pcrs.keys()].sort((x, y) => x - y)) {
      pcrs.message(2, new ProtoWriter().uint(1, idx, true).bytes(2, q.pcrs.get(idx)!, true));
    }
    w.message(2, new ProtoWriter().bytes(1, q.quote).bytes(2, q.rawSig).message(3, pcrs));
  }
  w.bytes(3, a.eventLog);
  w.bytes(6, a.akCert);
  for (const c of a.intermediateCerts ?? []) w.bytes(7, c, true);
  if (a.sevSnpAttestation) w.bytes(8, a.sevSnpAttestation, true);
  return w.finish();
}

/** The fields of a SEV-SNP ATTESTATION_REPORT, as sevsnp.Report carries them (see encodeSevSnpAttestation). */
export interface SnpReportFields {
  /** Field number → value: integers as bigint, byte strings as bytes (sizes already checked). */
  readonly fields: ReadonlyMap<number, bigint | Uint8Array>;
}

/** Certificates from the extended report's certificate table (DER), by role. */
export interface SnpCertificates {
  vcek?: Uint8Array;
  ask?: Uint8Array;
  ark?: Uint8Array;
  vlek?: Uint8Array;
}

/**
 * go-sev-guest `sevsnp.Attestation` (proto/sevsnp.proto; the broker's providers/gcp/sevsnp.ts
 * holds the field table): 1 report (sevsnp.Report, fields in ascending number, integers omitted
 * when zero, byte strings always written since they are fixed-size), 2 certificate_chain
 * (1 vcek_cert, 2 ask_cert, 3 ark_cert, 6 vlek_cert) when the table had any, 3 product
 * (sevsnp.SevProduct: 1 name, 1 Milan 2 Genoa 3 Turin) when the CPU's family and model name one —
 * as go-tpm-tools fills it from CPUID. An unsigned hint: the broker needs it only to fetch the
 * VCEK for a version 2 report sent without certificates, and refuses it when it disagrees with
 * the report or the VCEK (SNP_PRODUCT_MISMATCH).
 */
export function encodeSevSnpAttestation(report: SnpReportFields, certs: SnpCertificates, product?: 1 | 2 | 3): Uint8Array {
  const r = new ProtoWriter();
  for (const f of [...report.fields.keys()].sort((x, y) => x - y)) {
    const v = report.fields.get(f)!;
    if (v instanceof Uint8Array) r.bytes(f, v, true);
    else r.uint(f, v);
  }
  const w = new ProtoWriter().message(1, r);
  const chain = new ProtoWriter().bytes(1, certs.vcek).bytes(2, certs.ask).bytes(3, certs.ark).bytes(6, certs.vlek);
  if (certs.vcek || certs.ask || certs.ark || certs.vlek) w.message(2, chain);
  if (product) w.message(3, new ProtoWriter().uint(1, product));
  return w.finish();
}
