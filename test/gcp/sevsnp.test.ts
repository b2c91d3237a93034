/**
 * The SEV-SNP leg of the gcp provider (providers/gcp/sevsnp.ts + verifyGcpSevSnp).
 *
 * No GCE attestation with `sev_snp_attestation` is in test/vectors, so the input is built
 * the way go-sev-guest's `abi.ReportToProto` would build it from a real, AMD-signed report (the
 * SEV-SNP report of the Azure CVM evidence trustee/az-snp-vtpm/evidence-v1.json, Milan, version
 * 3, with its VCEK): the test encoder below writes each report field into its proto field
 * number. The rebuild must reproduce the signed bytes exactly, which the real ECDSA P-384
 * signature then proves; a field in the wrong place or a wrong CPUID mapping would fail it.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { AttestError } from '../../providers/common/errors.js';
import { concat } from '../../providers/common/bytes.js';
import { fromBase64Any, toBase64Url } from '../../providers/common/encoding.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { parsePemCertificates, certDer } from '../../providers/common/x509.js';
import { KdsClient } from '../../providers/amd-sev-snp/index.js';
import { parseGcpSevSnp, fmsFromCpuid1Eax } from '../../providers/gcp/sevsnp.js';
import { verifyGcpSevSnp } from '../../providers/gcp/verify.js';
import { createGcpProvider } from '../../providers/gcp/index.js';
import { gcpPlatform } from '../../providers/gcp/validate.js';
import { parseAttestationProto } from '../../providers/gcp/parse.js';
import { fromHex } from '../../providers/common/encoding.js';
import { describeVectors, loadTestTrust, readVector, readVectorJson, readVectorText } from '../helpers/vectors.js';
import { len, vint, topLevelFields } from './pb-encode.js';
import { codeOf, ctx, GOTPM_AT, legacyIntermediateOptions, PB_NONCE_9009 } from './helpers.js';
import { toGotpm, toGotpmJson } from './pb-encode.js';

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** sevsnp.Report from raw report bytes (ABI offsets), as go-sev-guest abi.ReportToProto does. */
function reportProto(raw: Uint8Array, over: Partial<Record<number, bigint | Uint8Array>> = {}): Uint8Array {
  const v = dv(raw);
  const u32 = (o: number) => BigInt(v.getUint32(o, true));
  const u64 = (o: number) => v.getBigUint64(o, true);
  const b = (o: number, n: number) => raw.slice(o, o + n);
  const fam = raw[0x188]!;
  const model = raw[0x189]!;
  const step = raw[0x18a]!;
  const eax = BigInt(((fam - 0xf) << 20) | ((model >> 4) << 16) | (0xf << 8) | ((model & 0xf) << 4) | step);
  const fields: Record<number, bigint | Uint8Array> = {
    1: u32(0x00), 2: u32(0x04), 3: u64(0x08), 4: b(0x10, 16), 5: b(0x20, 16), 6: u32(0x30), 7: u32(0x34),
    8: u64(0x38), 9: u64(0x40), 10: u32(0x48), 11: b(0x50, 64), 12: b(0x90, 48), 13: b(0xc0, 32),
    14: b(0xe0, 48), 15: b(0x110, 48), 16: b(0x140, 32), 17: b(0x160, 32), 18: u64(0x180), 19: b(0x1a0, 64),
    20: u64(0x1e0), 21: BigInt(raw[0x1e8]!), 22: BigInt(raw[0x1e9]!), 23: BigInt(raw[0x1ea]!),
    24: BigInt(raw[0x1ec]!), 25: BigInt(raw[0x1ed]!), 26: BigInt(raw[0x1ee]!), 27: u64(0x1f0),
    28: b(0x2a0, 512), 29: eax, 30: u64(0x1f8), 31: u64(0x200),
    ...over,
  };
  return concat(...Object.entries(fields).map(([f, x]) => (x instanceof Uint8Array ? len(Number(f), x) : vint(Number(f), x))));
}

interface Parts { report?: Uint8Array; vcek?: Uint8Array; ask?: Uint8Array; product?: number; over?: Partial<Record<number, bigint | Uint8Array>> }
function attestationProto(raw: Uint8Array, p: Parts): Uint8Array {
  const chain = concat(...(p.vcek ? [len(1, p.vcek)] : []), ...(p.ask ? [len(2, p.ask)] : []));
  return concat(len(1, p.report ?? reportProto(raw, p.over)), len(2, chain), ...(p.product ? [len(3, vint(1, p.product))] : []));
}

describeVectors('gcp SEV-SNP leg (real Milan report in go-sev-guest proto form)', () => {
  // Read only when the vectors exist (a skipped describe still runs its body to collect tests).
  const load = () => {
    const ev = readVectorJson<{ hcl_report: string; vcek: string }>('trustee/az-snp-vtpm/evidence-v1.json');
    const hcl = fromBase64Any(ev.hcl_report.replace(/=+$/, ''));
    return {
      raw: hcl.slice(32, 32 + 0x4a0),
      vcek: fromBase64Any(ev.vcek.replace(/=+$/, '')),
      ask: certDer(parsePemCertificates(readVectorText('trustee/amd-roots/milan_ask_ark_asvk.pem'))[0]!),
    };
  };
  const { raw, vcek, ask } = load();
  const binding = raw.slice(0x50, 0x70); // REPORT_DATA = sha256(HCL var-data) ‖ 32 zero bytes
  const noNet = (() => Promise.reject(new TypeError('network is off in this test'))) as unknown as typeof fetch;
  const leg = async (bytes: Uint8Array, b: Uint8Array = binding, trust?: Awaited<ReturnType<typeof loadTestTrust>>) =>
    verifyGcpSevSnp(bytes, { binding: b, now: GOTPM_AT, trust: trust ?? (await loadTestTrust()), fetch: noNet, kds: new KdsClient() });

  it('the vector is what this test assumes (version 3, Milan CPUID, REPORT_DATA = 32 bytes ‖ zeros)', () => {
    expect(dv(raw).getUint32(0, true)).toBe(3);
    expect([raw[0x188], raw[0x189], raw[0x18a]]).toEqual([0x19, 0x01, 0x01]);
    expect(raw.slice(0x70, 0x90).every((x) => x === 0)).toBe(true);
  });

  it('rebuilds the signed report byte for byte', () => {
    expect(parseGcpSevSnp(attestationProto(raw, { vcek, ask })).report).toEqual(raw);
  });

  it('truncation sweep: every prefix is TRUNCATED / SNP_PROTO_INVALID, or ends on the report field boundary', async () => {
    const full = attestationProto(raw, { vcek, ask });
    const afterReport = topLevelFields(full)[0]!.end; // a shorter valid message: report, no chain (→ KDS)
    const seen = new Set<string>();
    for (let n = 0; n < full.length; n++) {
      const c = await codeOf(() => parseGcpSevSnp(full.subarray(0, n)));
      if (n === afterReport) {
        expect(c).toBe('ACCEPTED');
        continue;
      }
      expect(['TRUNCATED', 'SNP_PROTO_INVALID'], `prefix ${n}`).toContain(c);
      seen.add(c);
    }
    expect(seen).toEqual(new Set(['TRUNCATED', 'SNP_PROTO_INVALID']));
  });

  it('fast-check: 10,000 random inputs to the sevsnp.Attestation decoder raise typed errors only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseGcpSevSnp(b);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });

  it('fmsFromCpuid1Eax matches go-sev-guest for Milan/Genoa/Turin eax values', () => {
    expect(fmsFromCpuid1Eax(0x00a00f11)).toEqual([0x19, 0x01, 0x01]);
    expect(fmsFromCpuid1Eax(0x00a10f11)).toEqual([0x19, 0x11, 0x01]);
    expect(fmsFromCpuid1Eax(0x00b00f21)).toEqual([0x1a, 0x02, 0x01]);
  });

  it('verifies to the pinned Milan ARK with VCEK and ASK from the evidence; platform claims', async () => {
    const v = await leg(attestationProto(raw, { vcek, ask, product: 1 }));
    expect(v.product).toBe('Milan');
    expect(v.signer).toBe('vcek');
    expect(v.report.policy.debug).toBe(false);
  });

  it('a nonce-bound report claims no TEE unless acceptNonceBoundTee (the report is still verified)', async () => {
    const snp = await leg(attestationProto(raw, { vcek, ask, product: 1 }));
    const strict = gcpPlatform({ snp }, false);
    expect(strict.tee).toBe('none');
    expect(strict.measurement).toBeUndefined();
    expect(strict.fields).toMatchObject({ unboundTee: 'sev-snp', binding: 'nonce' });
    const opted = gcpPlatform({ snp }, true);
    expect(opted.tee).toBe('sev-snp');
    expect(opted.fields).toMatchObject({ binding: 'nonce', product: 'Milan' });
    expect(gcpPlatform({ snp: undefined }, true)).toEqual({ tee: 'none', debug: false });
  });

  const rows: { name: string; bytes: () => Uint8Array; binding?: Uint8Array; trust?: () => Promise<Awaited<ReturnType<typeof loadTestTrust>>>; wantCode: string }[] = [
    { name: 'REPORT_DATA is not the binding ‖ zeros', bytes: () => attestationProto(raw, { vcek, ask }), binding: fromHex('9009'), wantCode: 'SNP_REPORT_DATA_MISMATCH' },
    { name: 'a binding longer than REPORT_DATA', bytes: () => attestationProto(raw, { vcek, ask }), binding: new Uint8Array(65), wantCode: 'SNP_PROTO_INVALID' },
    { name: 'guest_svn changed (signed field)', bytes: () => attestationProto(raw, { vcek, ask, over: { 2: 7n } }), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'measurement changed', bytes: () => attestationProto(raw, { vcek, ask, over: { 12: new Uint8Array(48).fill(1) } }), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'signature bit flipped', bytes: () => { const s = raw.slice(0x2a0, 0x4a0); s[3]! ^= 1; return attestationProto(raw, { vcek, ask, over: { 28: s } }); }, wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'cpuid1eax naming another stepping', bytes: () => attestationProto(raw, { vcek, ask, over: { 29: 0x00a00f12n } }), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'report_data of 63 bytes', bytes: () => attestationProto(raw, { vcek, ask, over: { 11: new Uint8Array(63) } }), wantCode: 'SNP_PROTO_INVALID' },
    { name: 'current_build does not fit a byte', bytes: () => attestationProto(raw, { vcek, ask, over: { 21: 256n } }), wantCode: 'SNP_PROTO_INVALID' },
    { name: 'signer_info reserved bits set', bytes: () => attestationProto(raw, { vcek, ask, over: { 10: 1n << 5n } }), wantCode: 'SNP_PROTO_INVALID' },
    { name: 'signer_info reserved signing key 2', bytes: () => attestationProto(raw, { vcek, ask, over: { 10: 2n << 2n } }), wantCode: 'SNP_PROTO_INVALID' },
    { name: 'no report', bytes: () => len(2, len(1, vcek)), wantCode: 'SNP_PROTO_INVALID' },
    { name: 'product hint disagrees (Genoa)', bytes: () => attestationProto(raw, { vcek, ask, product: 2 }), wantCode: 'SNP_PRODUCT_MISMATCH' },
    { name: 'no VCEK in the evidence and KDS unreachable', bytes: () => attestationProto(raw, { ask }), wantCode: 'KDS_UNAVAILABLE' },
    { name: 'no AMD root configured', bytes: () => attestationProto(raw, { vcek, ask }), trust: async () => createTrustStore([]), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'truncated proto', bytes: () => attestationProto(raw, { vcek, ask }).subarray(0, 700), wantCode: 'TRUNCATED' },
  ];
  for (const r of rows) {
    it(`${r.name} → ${r.wantCode}`, async () => {
      expect(await codeOf(leg(r.bytes(), r.binding ?? binding, r.trust ? await r.trust() : undefined))).toBe(r.wantCode);
    });
  }

  it('in the provider: a real GCE attestation carrying this report is verified and refused for its REPORT_DATA (the nonce binding)', async () => {
    const a = parseAttestationProto(readVector(PB_NONCE_9009));
    const withSnp = { ...a, tee: { kind: 'sev-snp' as const, bytes: attestationProto(raw, { vcek, ask }) } };
    const p = createGcpProvider(legacyIntermediateOptions());
    const all = await loadTestTrust();
    expect(await codeOf(p.verify('gotpm', toGotpm(withSnp), await ctx(fromHex('9009'), GOTPM_AT, all)))).toBe('SNP_REPORT_DATA_MISMATCH');
    const json = toGotpmJson(withSnp);
    expect(json.sev_snp_attestation).toBe(toBase64Url(withSnp.tee.bytes));
    expect(await codeOf(p.verify('gotpm-json', json, await ctx(fromHex('9009'), GOTPM_AT, all)))).toBe('SNP_REPORT_DATA_MISMATCH');
    // Only the Google roots configured: the AMD chain cannot be validated, and the report is not skipped.
    expect(await codeOf(p.verify('gotpm', toGotpm(withSnp), await ctx(fromHex('9009'), GOTPM_AT)))).toBe('TRUST_ANCHOR_MISSING');
  });
});
