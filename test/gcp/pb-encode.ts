/**
 * A minimal protobuf *encoder* for tests only: builds messages field by field so tests can craft
 * duplicates, unknown fields, odd wire types and re-encode real attestations after a mutation.
 */
import { concat } from '../../providers/common/bytes.js';

export function varint(v: bigint | number): Uint8Array {
  let x = BigInt(v);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return new Uint8Array(out);
}
export const tag = (field: number, wt: number): Uint8Array => varint((BigInt(field) << 3n) | BigInt(wt));
export const len = (field: number, payload: Uint8Array): Uint8Array => concat(tag(field, 2), varint(payload.byteLength), payload);
export const vint = (field: number, v: bigint | number): Uint8Array => concat(tag(field, 0), varint(v));
export const str = (field: number, s: string): Uint8Array => len(field, new TextEncoder().encode(s));
export const msg = (...parts: Uint8Array[]): Uint8Array => concat(...parts);

/** Splits a message into its top-level fields (raw bytes of each, tag included), for surgery. */
export function topLevelFields(b: Uint8Array): { field: number; wt: number; start: number; bodyStart: number; end: number }[] {
  const out: { field: number; wt: number; start: number; bodyStart: number; end: number }[] = [];
  let i = 0;
  const rv = (): bigint => {
    let r = 0n;
    let s = 0n;
    for (;;) {
      const c = b[i++]!;
      r |= BigInt(c & 0x7f) << s;
      s += 7n;
      if (c < 0x80) return r;
    }
  };
  while (i < b.length) {
    const start = i;
    const t = rv();
    const field = Number(t >> 3n);
    const wt = Number(t & 7n);
    if (wt !== 2) throw new Error('test splitter handles LEN only');
    const l = Number(rv());
    out.push({ field, wt, start, bodyStart: i, end: i + l });
    i += l;
  }
  return out;
}

import type { GotpmAttestation, GotpmQuote } from '../../providers/gcp/parse.js';
import { toBase64, toBase64Url, toHex } from '../../providers/common/encoding.js';

function encodeQuote(q: GotpmQuote): Uint8Array {
  const entries = [...q.pcrs.values].map(([k, v]) => len(2, concat(vint(1, k), len(2, v))));
  return concat(len(1, q.quote), len(2, q.rawSig), len(3, concat(...(q.pcrs.hash ? [vint(1, q.pcrs.hash)] : []), ...entries)));
}

/** Re-encodes a (possibly mutated) attestation struct as the protobuf gotpm writes. */
export function encodeAttestation(a: GotpmAttestation): Uint8Array {
  const parts: Uint8Array[] = [];
  if (a.akPub.byteLength) parts.push(len(1, a.akPub));
  for (const q of a.quotes) parts.push(len(2, encodeQuote(q)));
  if (a.eventLog.byteLength) parts.push(len(3, a.eventLog));
  if (a.instanceInfo) {
    const i = a.instanceInfo;
    parts.push(len(4, concat(str(1, i.zone), str(2, i.projectId), vint(3, i.projectNumber), str(4, i.instanceName), vint(5, i.instanceId))));
  }
  if (a.canonicalEventLog.byteLength) parts.push(len(5, a.canonicalEventLog));
  if (a.akCert.byteLength) parts.push(len(6, a.akCert));
  for (const c of a.intermediateCerts) parts.push(len(7, c));
  if (a.tee) parts.push(len(a.tee.kind === 'sev-snp' ? 8 : 9, a.tee.bytes));
  return concat(...parts);
}

const BANK: Record<number, string> = { 4: 'sha1', 11: 'sha256', 12: 'sha384', 13: 'sha512' };

/** The same struct as `gotpm-json` evidence. */
export function toGotpmJson(a: GotpmAttestation): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ak_pub: toBase64Url(a.akPub),
    ak_cert: toBase64Url(a.akCert),
    quotes: a.quotes.map((q) => ({
      message: toBase64Url(q.quote),
      signature: toBase64Url(q.rawSig),
      pcrs: { [BANK[q.pcrs.hash] ?? `alg${q.pcrs.hash}`]: Object.fromEntries([...q.pcrs.values].map(([k, v]) => [String(k), toHex(v)])) },
    })),
  };
  if (a.intermediateCerts.length) out.intermediate_certs = a.intermediateCerts.map(toBase64Url);
  if (a.eventLog.byteLength) out.event_log = toBase64Url(a.eventLog);
  if (a.canonicalEventLog.byteLength) out.canonical_event_log = toBase64Url(a.canonicalEventLog);
  if (a.instanceInfo) {
    const i = a.instanceInfo;
    out.instance_info = { zone: i.zone, project_id: i.projectId, project_number: i.projectNumber.toString(), instance_name: i.instanceName, instance_id: i.instanceId.toString() };
  }
  if (a.tee) out[a.tee.kind === 'sev-snp' ? 'sev_snp_attestation' : 'tdx_attestation'] = toBase64Url(a.tee.bytes);
  return out;
}

export function toGotpm(a: GotpmAttestation): { attestation: string } {
  return { attestation: toBase64(encodeAttestation(a)) };
}
