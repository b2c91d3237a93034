/**
 * The whole NVIDIA verifier (providers/nvidia/index.ts) on real evidence
 * (test/vectors/nvidia, INDEX.md), then on forgeries:
 * - the pre-v2.3.0 H100 report + its chain + NVIDIA's test RIMs: accepted inside the RIM
 *   signers' validity with every active golden measurement matching (the one complete positive);
 * - the 8-GPU PPCIe evidence: accepted as 8 GPUs (signatures, chain, nonce, FWID), measurements
 *   not ok and both RIMs missing under `measurements: 'report'`, RIM_MISSING under `require`;
 *   the 4-GPU array and every other real report (Blackwell only once opted in);
 * - a negative table, each row one fault and its own code: wrong nonce, flipped signed byte, a
 *   chain to another root, broken chains (NVIDIA's and trustee's negative chains), wrong FWID,
 *   expired RIM signer, measurement mismatch, wrong RIM for the report, duplicate GPU, unsigned
 *   JSON members contradicting the report, options and evidence shape errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createNvidiaVerifier, verifyNvidiaEvidence, type NvidiaOptionsInput } from '../../providers/nvidia/index.js';
import { fromHex, toHex } from '../../providers/common/encoding.js';
import type { TrustStore } from '../../providers/common/types.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { OPAQUE_FIELD, parseAttestationReport } from '../../providers/nvidia/parse.js';
import { describeVectors, readVector, readVectorText } from '../helpers/vectors.js';
import {
  AFTER_TEST_RIMS, codeOfAsync, DEVICE_TIME, entryFor, evidenceArray, MISMATCH_RIM_TIME, nvidiaTrust, offlineFetch, PPCIE, PRE230, PRE230_TIME,
  reportBytes, SAMPLES, SDK, SDK_GPU, type EvidenceEntry,
} from './fixtures.js';
import { editOpaque, makeNvPki, withNonce } from './testpki.js';

const PRE230_NONCE = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
const SAMPLE_NONCE = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb';
const PPCIE_NONCE = '4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e';
const MULTI_NONCE = 'e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576';
const b64 = (b: Uint8Array | string): string => Buffer.from(b).toString('base64');

/** Offline, no RIM service, OCSP off: what every test starts from. */
const OFFLINE: NvidiaOptionsInput = { rims: { service: 'off' }, ocsp: { mode: 'off' } };
const TEST_RIMS = (): Record<string, string> => ({
  'NV_GPU_DRIVER_GH100_545.00': readVectorText(`${SAMPLES}/Driver_RIM_test_no_gpu.swidtag`),
  NV_GPU_VBIOS_1010_0200_882_96005E0001: readVectorText(`${SAMPLES}/1010_0200_882_96005E0001_test_no_gpu.swidtag`),
});

let trust: TrustStore;
beforeAll(async () => {
  trust = await nvidiaTrust();
});

function run(evidence: unknown, nonceHex: string, now: Date, options: NvidiaOptionsInput = OFFLINE, t?: TrustStore) {
  return verifyNvidiaEvidence(evidence, { binding: fromHex(nonceHex), now, trust: t ?? trust, fetch: offlineFetch, options });
}
const pre230 = (): EvidenceEntry => entryFor(`${PRE230}/attestationReport.txt`, `${PRE230}/gpuAkCertChain.txt`, PRE230_NONCE);
const pre230Options = (over: NvidiaOptionsInput = {}): NvidiaOptionsInput => ({ ...OFFLINE, requireReportFwid: false, rims: { service: 'off', static: TEST_RIMS() }, ...over });

describeVectors('nvidia verifier: the complete positive vector (pre-v2.3.0 H100 + test RIMs)', () => {
  it('accepted, every active golden measurement matching, claims from signed data', async () => {
    const [c, ...rest] = await run([pre230()], PRE230_NONCE, PRE230_TIME, pre230Options());
    expect(rest).toHaveLength(0);
    expect(c).toMatchObject({
      vendor: 'nvidia',
      index: 0,
      arch: 'hopper',
      chip: 'GH100',
      model: 'GH100 A01 GSP BROM',
      project: '1010',
      projectSku: '0200',
      chipSku: '882',
      driverVersion: '545.00',
      vbiosVersion: '96.00.5E.00.01',
      measurementsOk: true,
      ccMode: true,
      ppcie: false,
      protectedPcie: 'not-reported',
      nvdec0: 'disabled',
      fwidInReport: false,
      mismatchedIndexes: [],
      missingIndexes: [],
      missingRims: [],
      rims: {
        driver: { id: 'NV_GPU_DRIVER_GH100_545.00', status: 'verified', signerNotAfter: '2025-06-26T06:10:12.000Z' },
        vbios: { id: 'NV_GPU_VBIOS_1010_0200_882_96005E0001', status: 'verified' },
      },
      ocsp: { mode: 'off', device: 'off', rims: 'off' },
    });
    expect(c!.fwid).toMatch(/^[0-9a-f]{96}$/);
    expect(BigInt(`0x${c!.leafSerial}`).toString(10)).toBe(c!.ueid);
  });

  it('with requireReportFwid (the default) the FWID-less report is refused: FWID_MISSING', async () => {
    expect(await codeOfAsync(run([pre230()], PRE230_NONCE, PRE230_TIME, pre230Options({ requireReportFwid: true })))).toBe('NVIDIA_FWID_MISSING');
  });

  it('after the test RIM signers expired: RIM_SIGNER_EXPIRED', async () => {
    expect(await codeOfAsync(run([pre230()], PRE230_NONCE, AFTER_TEST_RIMS, pre230Options()))).toBe('NVIDIA_RIM_SIGNER_EXPIRED');
  });

  it('against the production VBIOS RIM (indexes 1, 2, 3, 9 differ): MEASUREMENT_MISMATCH, or listed under report', async () => {
    const rims = { ...TEST_RIMS(), NV_GPU_VBIOS_1010_0200_882_96005E0001: readVectorText(`${SAMPLES}/1010_0200_882_96005E0001_PROD.swidtag`) };
    // A time inside both the test driver RIM signer's and the production VBIOS RIM signer's validity.
    const at = new Date('2025-01-15T00:00:00Z');
    expect(await codeOfAsync(run([pre230()], PRE230_NONCE, at, pre230Options({ rims: { service: 'off', static: rims } })))).toBe('NVIDIA_MEASUREMENT_MISMATCH');
    const [c] = await run([pre230()], PRE230_NONCE, at, pre230Options({ measurements: 'report', rims: { service: 'off', static: rims } }));
    expect(c).toMatchObject({ measurementsOk: false, ccMode: false, mismatchedIndexes: [1, 2, 3, 9], missingRims: [] });
    expect(c!.mismatches.every((m) => m.source === 'vbios')).toBe(true);
  });

  it('a validly signed RIM of another version under this id: RIM_VERSION_MISMATCH', async () => {
    const rims = { ...TEST_RIMS(), 'NV_GPU_DRIVER_GH100_545.00': readVectorText(`${SDK}/NV_GPU_DRIVER_GH100_550.144.03.xml`) };
    expect(await codeOfAsync(run([pre230()], PRE230_NONCE, new Date('2025-03-01T00:00:00Z'), pre230Options({ rims: { service: 'off', static: rims } })))).toBe('NVIDIA_RIM_VERSION_MISMATCH');
  });

  it('a RIM edited after signing (the "_measurement_mismatch" driver RIM) is refused even though its SignedInfo verifies', async () => {
    const rims = { 'NV_GPU_DRIVER_GH100_535.86.09': readVectorText(`${SDK}/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml`) };
    const e = entryFor(`${SDK_GPU}/hopperAttestationReport.txt`, `${SDK_GPU}/hopperCertChain.txt`, '27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66');
    const opts = pre230Options({ measurements: 'report', rims: { service: 'off', static: rims } });
    expect(await codeOfAsync(run([e], '27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66', new Date('2025-06-01T00:00:00Z'), opts))).toBe('NVIDIA_RIM_DIGEST_MISMATCH');
  });

  it('the genuine "_measurement_mismatch" VBIOS RIM against its 535.86.09 report: index 9 differs → MEASUREMENT_MISMATCH, or listed under report', async () => {
    const nonce = '27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66';
    const rims = { NV_GPU_VBIOS_1010_0200_882_96005E0001: readVectorText(`${SDK}/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml`) };
    const e = entryFor(`${SDK_GPU}/hopperAttestationReport.txt`, `${SDK_GPU}/hopperCertChain.txt`, nonce);
    const [c] = await run([e], nonce, MISMATCH_RIM_TIME, pre230Options({ measurements: 'report', rims: { service: 'off', static: rims } }));
    expect(c).toMatchObject({ measurementsOk: false, ccMode: false, mismatchedIndexes: [9], missingRims: ['driver'], rims: { vbios: { status: 'verified' }, driver: { status: 'missing' } } });
    // Its driver RIM (535.86.09) exists only as the tampered copy, so the driver side is missing;
    // the VBIOS contradiction is reported first.
    expect(await codeOfAsync(run([e], nonce, MISMATCH_RIM_TIME, pre230Options({ rims: { service: 'off', static: rims } })))).toBe('NVIDIA_MEASUREMENT_MISMATCH');
  });
});

describeVectors('nvidia verifier: multi-GPU and every real report', () => {
  it('the 8-GPU PPCIe evidence: 8 GPUs, PPCIe on, RIMs absent → not ok and missing (report)', async () => {
    const claims = await run(evidenceArray(PPCIE), PPCIE_NONCE, DEVICE_TIME, { ...OFFLINE, measurements: 'report' });
    expect(claims).toHaveLength(8);
    expect(claims.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const c of claims) {
      expect(c).toMatchObject({ arch: 'hopper', project: 'G520', chipSku: '885', driverVersion: '590.12', vbiosVersion: '96.00.A5.00.01', ppcie: true, gpuMode: 'ppcie', fwidInReport: true });
      expect(c).toMatchObject({ measurementsOk: false, ccMode: false, missingRims: ['driver', 'vbios'], rims: { driver: { id: 'NV_GPU_DRIVER_GH100_590.12', status: 'missing' }, vbios: { id: 'NV_GPU_VBIOS_G520_0200_885_9600A50001', status: 'missing' } } });
    }
    expect(new Set(claims.map((c) => c.deviceCertSha256)).size).toBe(8);
  });

  it('the same evidence with measurements required: RIM_MISSING', async () => {
    expect(await codeOfAsync(run(evidenceArray(PPCIE), PPCIE_NONCE, DEVICE_TIME))).toBe('NVIDIA_RIM_MISSING');
  });

  it('eight GPUs are refused when maxGpus is 4: GPU_COUNT_INVALID', async () => {
    expect(await codeOfAsync(run(evidenceArray(PPCIE), PPCIE_NONCE, DEVICE_TIME, { ...OFFLINE, measurements: 'report', maxGpus: 4 }))).toBe('NVIDIA_GPU_COUNT_INVALID');
  });

  it("attestation-sdk's 4-GPU array: 4 GPUs", async () => {
    const claims = await run(evidenceArray(`${'nvidia/attestation-sdk/common-test-data/serialized_test_evidence'}/multi_gpu_hopper.json`), MULTI_NONCE, DEVICE_TIME, { ...OFFLINE, measurements: 'report' });
    expect(claims).toHaveLength(4);
  });

  const singles: Array<[string, string, string, string]> = [
    ['nvtrust 550.90.07', `${SAMPLES}/hopperAttestationReport.txt`, `${SAMPLES}/hopperCertChain.txt`, SAMPLE_NONCE],
    ['attestation-sdk 580.159.03', `${SDK}/hopperAttestationReport.txt`, `${SDK}/hopperCertChain.txt`, '5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca'],
    ['attestation-sdk 570.124.03', `${SDK_GPU}/hopperAttestationReportExpired.txt`, `${SDK_GPU}/hopperCertChainExpired.txt`, SAMPLE_NONCE],
    ['trustee coco 580.95.05 (trailing byte removed)', '', 'nvidia/trustee/test_data/nvidia/hopper_coco_certs1.txt', '87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec'],
  ];
  for (const [name, report, chain, nonce] of singles) {
    it(`${name}: accepted (signature, chain, FWID), RIMs reported missing`, async () => {
      let e: EvidenceEntry;
      if (report) e = entryFor(report, chain, nonce);
      else {
        const bytes = reportBytes(readVectorText('nvidia/trustee/test_data/nvidia/hopper_coco_report1.txt'));
        e = { arch: 'HOPPER', nonce, evidence: b64(bytes.subarray(0, bytes.length - 1)), certificate: b64(readVector(chain)) };
      }
      const [c] = await run([e], nonce, DEVICE_TIME, { ...OFFLINE, measurements: 'report' });
      expect(c).toMatchObject({ fwidInReport: true, measurementsOk: false });
      expect(c!.fwid).toBe(toHex(parseAttestationReport(Buffer.from(e.evidence, 'base64')).info.fwid!));
    });
  }

  it('Blackwell (GB100): refused by default (ARCH_NOT_ALLOWED), accepted once allowed, DiceTcbInfo FWID matching', async () => {
    const e = entryFor(`${SDK_GPU}/blackwellAttestationReport.txt`, `${SDK_GPU}/blackwellCertChain.txt`, SAMPLE_NONCE, 'BLACKWELL');
    expect(await codeOfAsync(run([e], SAMPLE_NONCE, DEVICE_TIME, { ...OFFLINE, measurements: 'report' }))).toBe('NVIDIA_ARCH_NOT_ALLOWED');
    const [c] = await run([e], SAMPLE_NONCE, DEVICE_TIME, { ...OFFLINE, measurements: 'report', allowedArchs: ['blackwell'] });
    expect(c).toMatchObject({ arch: 'blackwell', chip: 'GB100', model: 'GB100 A01 GSP BROM', driverVersion: '575.32', vbiosVersion: '97.00.88.00.0F', fwidInReport: true });
    expect(c!.fwid.startsWith('d090cab1b6e6ffdd')).toBe(true);
    expect(c!.rims.driver.id).toBe('NV_GPU_CC_DRIVER_GB100_575.32');
    expect(c!.rims.vbios.id).toBe('NV_GPU_VBIOS_G525_0220_886_970088000F');
  });
});

describeVectors('nvidia verifier: negative table on real evidence', () => {
  const REPORT = () => reportBytes(readVectorText(`${SAMPLES}/hopperAttestationReport.txt`));
  const CHAIN = () => readVectorText(`${SAMPLES}/hopperCertChain.txt`);
  const entry = (over: Partial<EvidenceEntry> = {}, report = REPORT(), chain: string = CHAIN()): EvidenceEntry => ({
    arch: 'HOPPER',
    nonce: SAMPLE_NONCE,
    evidence: b64(report),
    certificate: b64(chain),
    ...over,
  });
  const REPORT_MODE: NvidiaOptionsInput = { ...OFFLINE, measurements: 'report' };
  const pems = (): string[] => CHAIN().match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
  const rows: Array<{ name: string; evidence: () => unknown; nonce?: string; options?: NvidiaOptionsInput; wantCode: string }> = [
    { name: 'control: the nvtrust sample as is', evidence: () => [entry()], wantCode: 'ACCEPTED' },
    { name: 'another expected nonce', evidence: () => [entry()], nonce: '00'.repeat(32), wantCode: 'NVIDIA_NONCE_MISMATCH' },
    { name: 'nonce member differs from the signed nonce', evidence: () => [entry({ nonce: '11'.repeat(32) })], wantCode: 'NVIDIA_EVIDENCE_INCONSISTENT' },
    { name: 'one signed byte flipped (a measurement)', evidence: () => { const r = REPORT(); r[100] = (r[100] as number) ^ 1; return [entry({}, r)]; }, wantCode: 'NVIDIA_SIGNATURE_INVALID' },
    { name: 'one signature byte flipped', evidence: () => { const r = REPORT(); r[r.length - 5] = (r[r.length - 5] as number) ^ 0x80; return [entry({}, r)]; }, wantCode: 'NVIDIA_SIGNATURE_INVALID' },
    { name: "upstream's invalid-signature pairing (PPCIe report, another GPU's chain)", evidence: () => [entry({}, reportBytes(readVectorText(`${SDK_GPU}/hopperAttestationReportInvalidSignature.txt`)), readVectorText(`${SDK_GPU}/hopperCertChainExpired.txt`))], wantCode: 'NVIDIA_SIGNATURE_INVALID' },
    { name: 'go-nvtrust invalidCertChain (BROM removed)', evidence: () => [entryFor(`${PRE230}/attestationReport.txt`, 'nvidia/go-nvtrust/mocks/invalidCertChain.txt', PRE230_NONCE)], nonce: PRE230_NONCE, options: { ...REPORT_MODE, requireReportFwid: false }, wantCode: 'NVIDIA_DEVICE_CHAIN_UNTRUSTED' },
    { name: 'trustee case 2 (root only)', evidence: () => [entry({}, REPORT(), readVectorText('nvidia/trustee/test_data/nvidia/hopper_cert_chain_case2.txt'))], wantCode: 'NVIDIA_DEVICE_CHAIN_INVALID' },
    { name: 'trustee case 3 (an intermediate missing)', evidence: () => [entry({}, REPORT(), readVectorText('nvidia/trustee/test_data/nvidia/hopper_cert_chain_case3.txt'))], wantCode: 'NVIDIA_DEVICE_CHAIN_UNTRUSTED' },
    { name: 'trustee case 4 (leaf missing: the BROM cannot sign)', evidence: () => [entry({}, REPORT(), readVectorText('nvidia/trustee/test_data/nvidia/hopper_cert_chain_case4.txt'))], wantCode: 'NVIDIA_DEVICE_CHAIN_INVALID' },
    { name: 'chain out of order', evidence: () => { const p = pems(); return [entry({}, REPORT(), [p[0], p[2], p[1], p[3], p[4]].join('\n'))]; }, wantCode: 'NVIDIA_DEVICE_CHAIN_INVALID' },
    { name: 'an unused extra certificate', evidence: () => { const p = pems(); return [entry({}, REPORT(), [...p.slice(0, 4), readVectorText(`${SDK_GPU}/hopperCertChainExpired.txt`).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0], p[4]].join('\n'))]; }, wantCode: 'NVIDIA_DEVICE_CHAIN_INVALID' },
    { name: 'root not in the trust store', evidence: () => [entry()], options: REPORT_MODE, wantCode: 'NVIDIA_TRUST_ANCHOR_MISSING' },
    { name: 'arch member BLACKWELL for a GH100', evidence: () => [entry({ arch: 'BLACKWELL' })], options: { ...REPORT_MODE, allowedArchs: ['hopper', 'blackwell'] }, wantCode: 'NVIDIA_EVIDENCE_INCONSISTENT' },
    { name: 'driver_version member differs', evidence: () => [entry({ driver_version: '550.90.08' })], wantCode: 'NVIDIA_EVIDENCE_INCONSISTENT' },
    { name: 'vbios_version member differs', evidence: () => [entry({ vbios_version: '96.00.9f.00.02' })], wantCode: 'NVIDIA_EVIDENCE_INCONSISTENT' },
    { name: 'vbios_version member equal up to case', evidence: () => [entry({ vbios_version: '96.00.9f.00.01', driver_version: '550.90.07', version: '1.0' })], wantCode: 'ACCEPTED' },
    { name: 'the same GPU twice', evidence: () => [entry(), entry()], wantCode: 'NVIDIA_DUPLICATE_GPU' },
    { name: 'not an array', evidence: () => entry(), wantCode: 'NVIDIA_EVIDENCE_MALFORMED' },
    { name: 'an empty array', evidence: () => [], wantCode: 'NVIDIA_GPU_COUNT_INVALID' },
    { name: 'an unknown member', evidence: () => [{ ...entry(), extra: 1 }], wantCode: 'NVIDIA_EVIDENCE_MALFORMED' },
    { name: 'evidence not base64', evidence: () => [entry({ evidence: '!!!!' })], wantCode: 'BAD_ENCODING' },
    { name: 'certificate not PEM', evidence: () => [entry({ certificate: b64('hello') })], wantCode: 'CERT_MALFORMED' },
    { name: 'unknown option', evidence: () => [entry()], options: { ...REPORT_MODE, bogus: true } as NvidiaOptionsInput, wantCode: 'NVIDIA_OPTIONS_INVALID' },
  ];
  for (const row of rows) {
    it(`${row.name} → ${row.wantCode}`, async () => {
      const t = row.wantCode === 'NVIDIA_TRUST_ANCHOR_MISSING' ? createTrustStore([]) : undefined;
      expect(await codeOfAsync(run(row.evidence(), row.nonce ?? SAMPLE_NONCE, DEVICE_TIME, row.options ?? REPORT_MODE, t))).toBe(row.wantCode);
    });
  }

  it('a binding that is not 32 bytes: OPTIONS_INVALID (config)', async () => {
    const v = createNvidiaVerifier(REPORT_MODE, { fetch: offlineFetch });
    expect(await codeOfAsync(v.verify([entry()], { binding: new Uint8Array(16), now: DEVICE_TIME, trust }))).toBe('NVIDIA_OPTIONS_INVALID');
  });
});

describe('nvidia verifier: forged fields in reports signed by a throw-away NVIDIA-shaped PKI', () => {
  const NONCE = '5a'.repeat(32);
  const REPORT_MODE: NvidiaOptionsInput = { ...OFFLINE, measurements: 'report' };
  let base: Uint8Array;
  let fwid: Uint8Array;
  beforeAll(() => {
    base = withNonce(reportBytes(readVectorText(`${SAMPLES}/hopperAttestationReport.txt`)), fromHex(NONCE));
    fwid = parseAttestationReport(base).info.fwid!;
  });
  const entryOf = (report: Uint8Array, pem: string, over: Partial<EvidenceEntry> = {}): EvidenceEntry[] => [
    { arch: 'HOPPER', nonce: NONCE, evidence: b64(report), certificate: b64(pem), ...over },
  ];
  const go = async (pkiOpts: Parameters<typeof makeNvPki>[0], mutate: (r: Uint8Array) => Uint8Array = (r) => r, options = REPORT_MODE, foreignRoot = false) => {
    const pki = await makeNvPki({ fwid, ...pkiOpts });
    const report = await pki.resign(mutate(base));
    const t = foreignRoot ? trust : pki.trust;
    return run(entryOf(report, pki.chainPem), NONCE, DEVICE_TIME, options, t);
  };

  it('control: a report re-signed by the test PKI, its root pinned, is accepted', async () => {
    const [c] = await go({});
    expect(c).toMatchObject({ chip: 'GH100', fwidInReport: true, fwid: toHex(fwid) });
  });
  it('chain to another root (a self-made P-384 CA at the end of the chain): DEVICE_CHAIN_UNTRUSTED', async () => {
    expect(await codeOfAsync(go({}, undefined, REPORT_MODE, true))).toBe('NVIDIA_DEVICE_CHAIN_UNTRUSTED');
  });
  it('chain to another root, the root left out: DEVICE_CHAIN_UNTRUSTED', async () => {
    expect(await codeOfAsync(go({ includeRoot: false }, undefined, REPORT_MODE, true))).toBe('NVIDIA_DEVICE_CHAIN_UNTRUSTED');
  });
  it('a self-made root named "NVIDIA Device Identity CA": DEVICE_CHAIN_UNTRUSTED', async () => {
    expect(await codeOfAsync(go({ rootCn: 'NVIDIA Device Identity CA', includeRoot: false }, undefined, REPORT_MODE, true))).toBe('NVIDIA_DEVICE_CHAIN_UNTRUSTED');
  });
  it('the leaf certifies another FWID: FWID_MISMATCH', async () => {
    expect(await codeOfAsync(go({ fwid: new Uint8Array(48).fill(0x42) }))).toBe('NVIDIA_FWID_MISMATCH');
  });
  it('the report FWID changed (and re-signed): FWID_MISMATCH', async () => {
    const other = (r: Uint8Array) => editOpaque(r, (fs) => fs.map((f) => (f.id === OPAQUE_FIELD.FWID ? { id: f.id, value: new Uint8Array(48).fill(7) } : f)));
    expect(await codeOfAsync(go({}, other))).toBe('NVIDIA_FWID_MISMATCH');
  });
  it('the leaf has no DICE extension: FWID_MISSING', async () => {
    expect(await codeOfAsync(go({ fwid: null }))).toBe('NVIDIA_FWID_MISSING');
  });
  it('the report has no FWID field: FWID_MISSING by default, accepted with requireReportFwid false', async () => {
    const drop = (r: Uint8Array) => editOpaque(r, (fs) => fs.filter((f) => f.id !== OPAQUE_FIELD.FWID));
    expect(await codeOfAsync(go({}, drop))).toBe('NVIDIA_FWID_MISSING');
    const [c] = await go({}, drop, { ...REPORT_MODE, requireReportFwid: false });
    expect(c).toMatchObject({ fwidInReport: false, fwid: toHex(fwid) });
  });
  it('a chip this verifier does not know (GA100): ARCH_NOT_ALLOWED', async () => {
    expect(await codeOfAsync(go({ leafCn: 'GA100 A01 GSP FMC LF' }))).toBe('NVIDIA_ARCH_NOT_ALLOWED');
  });
  it('a GH100 leaf under a GB100 DeviceID: DEVICE_CHAIN_INVALID', async () => {
    expect(await codeOfAsync(go({ bromCn: 'GB100 A01 GSP BROM' }))).toBe('NVIDIA_DEVICE_CHAIN_INVALID');
  });
  it('a P-256 leaf: DEVICE_CHAIN_INVALID', async () => {
    expect(await codeOfAsync(go({ leafCurve: 'P-256' }))).toBe('NVIDIA_DEVICE_CHAIN_INVALID');
  });
  it('an unknown opaque field, signed: NVIDIA_OPAQUE_MALFORMED', async () => {
    const add = (r: Uint8Array) => editOpaque(r, (fs) => [...fs, { id: 0x7777, value: Uint8Array.of(1) }]);
    expect(await codeOfAsync(go({}, add))).toBe('NVIDIA_OPAQUE_MALFORMED');
  });
  it('a driver version that could escape a RIM id / URL, signed: NVIDIA_OPAQUE_MALFORMED', async () => {
    const evil = (r: Uint8Array) => editOpaque(r, (fs) => fs.map((f) => (f.id === OPAQUE_FIELD.DRIVER_VERSION ? { id: f.id, value: new TextEncoder().encode('550/../x\0') } : f)));
    expect(await codeOfAsync(go({}, evil))).toBe('NVIDIA_OPAQUE_MALFORMED');
  });
});
