/**
 * GCP path benchmark body (bundled and run by `bench/gcp.mjs`).
 *
 * Real evidence from test/vectors, measured sequentially (one core's latency; ops/s =
 * iterations / elapsed). The raw-crypto floor is what any verifier of the same evidence must
 * spend in signature checks:
 * - raw RSA-2048 verify: one WebCrypto RSASSA-PKCS1-v1_5/SHA-256 verify of a quote, key imported;
 * - raw gotpm floor: the 5 RSA verifies a gce-cos-85 attestation needs (3 quotes, AK certificate
 *   by the intermediate, intermediate by the root), keys pre-imported;
 * - gcp gotpm (no event log): the whole provider (base64, protobuf, 3 quotes, QN, chain, profile,
 *   instance info, claims) with the event log removed;
 * - gcp gotpm (full): the same with the 44-event log parsed, replayed in two banks and summarized;
 * - gcp vaportpm (current CA, ECC P-256 AK): the provider on test-gcp-amd-fixture.json.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BUILTIN_PINS, PinIds } from '../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../providers/common/trust.js';
import { fromHex, toBase64 } from '../providers/common/encoding.js';
import { parseCertificate, importPublicKey } from '../providers/common/x509.js';
import type { VerifyContext } from '../providers/common/types.js';
import { createGcpProvider } from '../providers/gcp/index.js';
import { parseAttestationProto } from '../providers/gcp/parse.js';
import { parseTpmtSignature } from '../providers/tpm/structures.js';

const ROOTS: Record<string, string> = {
  [PinIds.GOOGLE_TPM_EK_ROOT_1]: 'go-tpm-tools/ca-certs/tpm_ek_root_1.cer',
  [PinIds.GOOGLE_EKAK_ROOT]: 'go-tpm-tools/ca-certs/gcp_ek_ak_ca_root.crt',
};

export interface Result {
  name: string;
  iterations: number;
  opsPerSec: number;
  p50us: number;
  p99us: number;
}

async function measure(name: string, iterations: number, f: () => Promise<unknown>): Promise<Result> {
  for (let i = 0; i < Math.min(100, Math.ceil(iterations / 10)); i++) await f();
  const lat = new Float64Array(iterations);
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const s = performance.now();
    await f();
    lat[i] = performance.now() - s;
  }
  const total = performance.now() - t0;
  lat.sort();
  const q = (p: number): number => Math.round(lat[Math.min(iterations - 1, Math.floor(p * iterations))]! * 1000);
  return { name, iterations, opsPerSec: Math.round((iterations / total) * 1000), p50us: q(0.5), p99us: q(0.99) };
}

/** Strips field 3 (event_log) from the top level of an Attestation protobuf. */
function withoutEventLog(pb: Uint8Array): Uint8Array {
  const a = parseAttestationProto(pb);
  // Re-encoding is not needed: splice the field out by scanning top-level LEN fields.
  const parts: Uint8Array[] = [];
  let i = 0;
  while (i < pb.length) {
    const start = i;
    const tag = pb[i++]!;
    let len = 0;
    let shift = 0;
    for (;;) {
      const b = pb[i++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    i += len;
    if (tag >> 3 !== 3) parts.push(pb.subarray(start, i));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  if (parseAttestationProto(out).eventLog.length !== 0 || a.eventLog.length === 0) throw new Error('event log splice failed');
  return out;
}

export function defaultVectors(root: string): string {
  return process.env.ATTEST_VECTORS ?? resolve(root, 'test/vectors');
}

export async function run(vectorsDir: string, iterations: number): Promise<Result[]> {
  const v = (rel: string): Uint8Array => new Uint8Array(readFileSync(join(vectorsDir, rel)));
  const anchors = await Promise.all(BUILTIN_PINS.filter((p) => ROOTS[p.id]).map((p) => anchorFromBytes(p, v(ROOTS[p.id]!))));
  const trust = createTrustStore(anchors);
  const pb = v('go-tpm-tools/attestations/gce-cos-85-nonce9009.pb');
  const interDer = v('go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt');
  const provider = createGcpProvider({ intermediates: [interDer] });
  const ctx = (binding: Uint8Array, now: Date): VerifyContext => ({
    binding,
    now,
    trust,
    fetch: (() => Promise.reject(new Error('no network'))) as unknown as typeof fetch,
    options: {},
  });
  const gotpmCtx = ctx(fromHex('9009'), new Date('2025-06-01T00:00:00Z'));
  const full = { attestation: toBase64(pb) };
  const noLog = { attestation: toBase64(withoutEventLog(pb)) };
  const vapor = JSON.parse(new TextDecoder().decode(v('vaportpm/test-gcp-amd-fixture.json'))) as { nonce: string };
  const vaporCtx = ctx(fromHex(vapor.nonce), new Date(1770019200 * 1000));

  // Raw floor: the five RSA-2048 verifies, keys imported once.
  const att = parseAttestationProto(pb);
  const akCert = parseCertificate(att.akCert);
  const inter = parseCertificate(interDer);
  const root = anchors.find((a) => a.id === PinIds.GOOGLE_TPM_EK_ROOT_1)!.cert;
  const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
  const akKey = await importPublicKey(akCert, rsa);
  const interKey = await importPublicKey(inter, rsa);
  const rootKey = await importPublicKey(root, rsa);
  const tbs = (c: typeof akCert) => new Uint8Array(c['tbs']);
  const sigOf = (c: typeof akCert) => new Uint8Array(c.signature);
  const quoteSigs = att.quotes.map((q) => {
    const s = parseTpmtSignature(q.rawSig);
    if (s.sigAlg === 'ecdsa') throw new Error('expected RSA');
    return { msg: q.quote as Uint8Array<ArrayBuffer>, sig: s.sig as Uint8Array<ArrayBuffer> };
  });
  const verify = async (k: CryptoKey, sig: Uint8Array, data: Uint8Array) => {
    if (!(await crypto.subtle.verify('RSASSA-PKCS1-v1_5', k, sig as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>))) throw new Error('raw verify failed');
  };

  const out: Result[] = [];
  out.push(await measure('raw RSA-2048 verify (one quote, WebCrypto)', iterations, () => verify(akKey, quoteSigs[1]!.sig, quoteSigs[1]!.msg)));
  out.push(
    await measure('raw gotpm floor (3 quotes + 2 chain RSA verifies)', iterations, async () => {
      for (const q of quoteSigs) await verify(akKey, q.sig, q.msg);
      await verify(interKey, sigOf(akCert), tbs(akCert));
      await verify(rootKey, sigOf(inter), tbs(inter));
    }),
  );
  out.push(await measure('gcp gotpm, legacy CA, no event log', iterations, () => provider.verify('gotpm', noLog, gotpmCtx)));
  out.push(await measure('gcp gotpm, legacy CA, 44-event log replayed', Math.max(50, Math.floor(iterations / 4)), () => provider.verify('gotpm', full, gotpmCtx)));
  out.push(await measure('gcp vaportpm-gcp, current CA, P-256 AK', iterations, () => provider.verify('vaportpm-gcp', vapor, vaporCtx)));
  return out;
}
