/**
 * RIM sources, measurement rules, OCSP modes in the pipeline and the options schema:
 * - `NvidiaRimService` against a local HTTP server speaking the RIM service's wire format
 *   (`GET /v1/rim/<id>` → `{"id", "rim": base64}`; NVIDIA's service cannot be reached offline):
 *   the positive vector verified from it, the cache (repeated calls and 8 GPUs cost one request
 *   per RIM, concurrent misses share one), expiry, 404 = missing, and 500 / garbled / wrong id /
 *   unreachable = RIM_UNAVAILABLE (refused under `require`, recorded under `report`);
 * - `compareMeasurements` rules on the real report: alternatives, the NVDEC0 index-35 skip,
 *   missing indexes, and driver/VBIOS conflicts (RIM_CONFLICT);
 * - OCSP modes on real evidence with no network: `required` → OCSP_UNAVAILABLE, `best-effort`
 *   → accepted with the statuses recorded;
 * - option defaults fail closed and unknown keys are refused at every level.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createNvidiaVerifier, NvidiaRimService, ChainedRimSource, StaticRimSource, parseNvidiaOptions, type NvidiaOptionsInput } from '../../providers/nvidia/index.js';
import { compareMeasurements } from '../../providers/nvidia/validate.js';
import { parseAttestationReport } from '../../providers/nvidia/parse.js';
import type { VerifiedRim } from '../../providers/nvidia/rim.js';
import { fromHex } from '../../providers/common/encoding.js';
import type { TrustStore } from '../../providers/common/types.js';
import { describeVectors, readVector, readVectorText } from '../helpers/vectors.js';
import { codeOf, codeOfAsync, DEVICE_TIME, entryFor, evidenceArray, nvidiaTrust, offlineFetch, PPCIE, PRE230, PRE230_TIME, reportBytes, SAMPLES } from './fixtures.js';

const PRE230_NONCE = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
const DRIVER_ID = 'NV_GPU_DRIVER_GH100_545.00';
const VBIOS_ID = 'NV_GPU_VBIOS_1010_0200_882_96005E0001';

let server: Server;
let base = '';
const hits = new Map<string, number>();
let mode: 'ok' | '500' | 'garbled' | 'wrong-id' | 'not-base64' = 'ok';
let delayMs = 0;

let trust: TrustStore;
beforeAll(async () => {
  trust = await nvidiaTrust();
  server = createServer((req, res) => {
    const id = decodeURIComponent((req.url ?? '').replace(/^\/v1\/rim\//, ''));
    hits.set(id, (hits.get(id) ?? 0) + 1);
    const files: Record<string, string> = {
      [DRIVER_ID]: `nvidia/nvtrust/local_gpu_verifier/samples/Driver_RIM_test_no_gpu.swidtag`,
      [VBIOS_ID]: `nvidia/nvtrust/local_gpu_verifier/samples/1010_0200_882_96005E0001_test_no_gpu.swidtag`,
    };
    setTimeout(() => {
      if (mode === '500') return void res.writeHead(500).end('{"error":"down"}');
      if (mode === 'garbled') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"id": "');
      const f = files[id];
      if (!f) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"not found"}');
      const rim = mode === 'not-base64' ? '***' : Buffer.from(readVector(f)).toString('base64');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: mode === 'wrong-id' ? 'NV_GPU_DRIVER_GH100_1.0' : id, rim, sha256: 'ignored', rim_format: 'SWID' }));
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/v1/rim/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const reset = (m: typeof mode = 'ok'): void => {
  hits.clear();
  mode = m;
  delayMs = 0;
};
const total = (): number => [...hits.values()].reduce((a, b) => a + b, 0);
const serviceOptions = (over: NvidiaOptionsInput = {}): NvidiaOptionsInput => ({ requireReportFwid: false, ocsp: { mode: 'off' }, rims: { service: { url: base } }, ...over });
const pre230 = () => entryFor(`${PRE230}/attestationReport.txt`, `${PRE230}/gpuAkCertChain.txt`, PRE230_NONCE);

describeVectors('nvidia RIM service source (local server in its wire format)', () => {
  it('the positive vector verifies with RIMs from the service; the second call is served from the cache', async () => {
    reset();
    const v = createNvidiaVerifier(serviceOptions(), { fetch });
    const [c] = await v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust });
    expect(c).toMatchObject({ measurementsOk: true, rims: { driver: { status: 'verified' }, vbios: { status: 'verified' } } });
    expect(Object.fromEntries(hits)).toEqual({ [DRIVER_ID]: 1, [VBIOS_ID]: 1 });
    await v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust });
    expect(total()).toBe(2);
  });

  it('a cached RIM expires after ttlSeconds (judged by the verification time)', async () => {
    reset();
    const s = new NvidiaRimService({ fetch, url: base, timeoutMs: 5000, cacheEntries: 8, ttlSeconds: 60 });
    await s.get(DRIVER_ID, { now: PRE230_TIME });
    await s.get(DRIVER_ID, { now: new Date(PRE230_TIME.getTime() + 59_000) });
    expect(total()).toBe(1);
    await s.get(DRIVER_ID, { now: new Date(PRE230_TIME.getTime() + 61_000) });
    expect(total()).toBe(2);
  });

  it('concurrent misses for one RIM share one request (single flight)', async () => {
    reset();
    delayMs = 50;
    const s = new NvidiaRimService({ fetch, url: base, timeoutMs: 5000, cacheEntries: 8, ttlSeconds: 60 });
    const got = await Promise.all(Array.from({ length: 8 }, () => s.get(VBIOS_ID, { now: PRE230_TIME })));
    expect(got.every((g) => g && g.length > 1000)).toBe(true);
    expect(total()).toBe(1);
  });

  it('8 GPUs asking for the same two RIMs: one request each', async () => {
    reset();
    const v = createNvidiaVerifier(serviceOptions({ measurements: 'report', requireReportFwid: true }), { fetch });
    const claims = await v.verify(evidenceArray(PPCIE), { binding: fromHex('4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e'), now: DEVICE_TIME, trust });
    expect(claims).toHaveLength(8);
    // The service has neither of these RIMs (404 → missing, not cached).
    expect(Object.fromEntries(hits)).toEqual({ 'NV_GPU_DRIVER_GH100_590.12': 1, NV_GPU_VBIOS_G520_0200_885_9600A50001: 1 });
    expect(claims.every((c) => c.rims.driver.status === 'missing')).toBe(true);
  });

  for (const m of ['500', 'garbled', 'wrong-id', 'not-base64'] as const) {
    it(`${m}: RIM_UNAVAILABLE under require, recorded as unavailable under report`, async () => {
      reset(m);
      const v = createNvidiaVerifier(serviceOptions(), { fetch });
      expect(await codeOfAsync(v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust }))).toBe('NVIDIA_RIM_UNAVAILABLE');
      const r = createNvidiaVerifier(serviceOptions({ measurements: 'report' }), { fetch });
      const [c] = await r.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust });
      expect(c).toMatchObject({ measurementsOk: false, rims: { driver: { status: 'unavailable' } }, missingRims: ['driver', 'vbios'] });
    });
  }

  it('unreachable service: RIM_UNAVAILABLE', async () => {
    const v = createNvidiaVerifier(serviceOptions(), { fetch: offlineFetch });
    expect(await codeOfAsync(v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust }))).toBe('NVIDIA_RIM_UNAVAILABLE');
  });

  it('an id that is not a RIM id is never requested', async () => {
    reset();
    const s = new NvidiaRimService({ fetch, url: base, timeoutMs: 5000, cacheEntries: 8, ttlSeconds: 60 });
    expect(await s.get('NV_GPU_DRIVER_GH100_../../admin')).toBeUndefined();
    expect(total()).toBe(0);
  });

  it('static entries are consulted before the service', async () => {
    reset();
    const src = new ChainedRimSource([new StaticRimSource({ [DRIVER_ID]: readVectorText(`${SAMPLES}/Driver_RIM_test_no_gpu.swidtag`) }), new NvidiaRimService({ fetch, url: base, timeoutMs: 5000, cacheEntries: 8, ttlSeconds: 60 })]);
    expect(await src.get(DRIVER_ID)).toBeDefined();
    expect(await src.get(VBIOS_ID)).toBeDefined();
    expect(Object.fromEntries(hits)).toEqual({ [VBIOS_ID]: 1 });
  });
});

describeVectors('nvidia measurement rules on the real pre-v2.3.0 report', () => {
  const report = () => parseAttestationReport(reportBytes(readVectorText(`${PRE230}/attestationReport.txt`)));
  const rim = (kind: 'driver' | 'vbios', ms: Array<{ index: number; active?: boolean; alternatives: Uint8Array[] }>): VerifiedRim =>
    ({ rimId: kind, kind, tagId: 't', version: 'v', product: 'GH100', path: [], anchor: undefined, measurements: ms.map((m) => ({ active: true, ...m })) }) as unknown as VerifiedRim;
  const value = (i: number): Uint8Array => report().response.blocks[i]!.value; // block i holds RIM index i
  const other = new Uint8Array(48).fill(0xee);

  it('a match in any alternative counts; inactive entries are ignored', () => {
    const m = compareMeasurements(report(), { driver: rim('driver', [{ index: 7, alternatives: [other, value(7)] }, { index: 8, active: false, alternatives: [other] }]), vbios: rim('vbios', [{ index: 1, alternatives: [value(1)] }]) });
    expect(m).toMatchObject({ ok: true, compared: 2, mismatched: [], missingIndexes: [], missingRims: [] });
  });
  it('no alternative matching: a mismatch with its source', () => {
    const m = compareMeasurements(report(), { driver: rim('driver', [{ index: 7, alternatives: [other, other] }]), vbios: rim('vbios', []) });
    expect(m).toMatchObject({ ok: false, mismatched: [{ index: 7, source: 'driver' }] });
  });
  it('index 35 is skipped while NVDEC0 is disabled (this report: 0x55)', () => {
    expect(report().info.nvdec0).toBe('disabled');
    const m = compareMeasurements(report(), { driver: rim('driver', [{ index: 35, alternatives: [other] }]), vbios: rim('vbios', []) });
    expect(m).toMatchObject({ ok: true, compared: 0 });
  });
  it('a golden index beyond the report: missing', () => {
    const m = compareMeasurements(report(), { driver: rim('driver', [{ index: 100, alternatives: [other] }]), vbios: rim('vbios', []) });
    expect(m).toMatchObject({ ok: false, missingIndexes: [100] });
  });
  it('driver and VBIOS both active at one index: RIM_CONFLICT', () => {
    expect(codeOf(() => compareMeasurements(report(), { driver: rim('driver', [{ index: 3, alternatives: [value(3)] }]), vbios: rim('vbios', [{ index: 3, alternatives: [value(3)] }]) }))).toBe('NVIDIA_RIM_CONFLICT');
  });
  it('one RIM absent: not ok, listed', () => {
    expect(compareMeasurements(report(), { vbios: rim('vbios', []) })).toMatchObject({ ok: false, missingRims: ['driver'] });
  });
});

describeVectors('nvidia OCSP modes in the pipeline (no network)', () => {
  const opts = (mode: 'off' | 'best-effort' | 'required'): NvidiaOptionsInput => ({
    requireReportFwid: false,
    rims: { service: 'off', static: { [DRIVER_ID]: readVectorText(`${SAMPLES}/Driver_RIM_test_no_gpu.swidtag`), [VBIOS_ID]: readVectorText(`${SAMPLES}/1010_0200_882_96005E0001_test_no_gpu.swidtag`) } },
    ocsp: { mode },
  });
  it('required: OCSP_UNAVAILABLE', async () => {
    const v = createNvidiaVerifier(opts('required'), { fetch: offlineFetch });
    expect(await codeOfAsync(v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust }))).toBe('NVIDIA_OCSP_UNAVAILABLE');
  });
  it('best-effort: accepted, every status recorded as unavailable', async () => {
    const v = createNvidiaVerifier(opts('best-effort'), { fetch: offlineFetch });
    const [c] = await v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust });
    expect(c).toMatchObject({ measurementsOk: true, ocsp: { mode: 'best-effort', device: 'unavailable', rims: 'unavailable' } });
  });
  it('the OCSP request goes to the configured responder only', async () => {
    const seen: string[] = [];
    const v = createNvidiaVerifier({ ...opts('best-effort'), ocsp: { mode: 'best-effort', url: 'https://ocsp.example.test/' } }, {
      fetch: (input) => {
        seen.push(String(input));
        return Promise.reject(new Error('offline'));
      },
    });
    await v.verify([pre230()], { binding: fromHex(PRE230_NONCE), now: PRE230_TIME, trust });
    expect(new Set(seen)).toEqual(new Set(['https://ocsp.example.test/']));
  });
});

describe('nvidia options', () => {
  it('defaults fail closed', () => {
    expect(parseNvidiaOptions({})).toMatchObject({
      allowedArchs: ['hopper'],
      maxGpus: 8,
      measurements: 'require',
      requireReportFwid: true,
      rims: { static: {}, service: { url: 'https://rim.attestation.nvidia.com/v1/rim/', cacheEntries: 256, ttlSeconds: 86400 } },
      ocsp: { mode: 'required', url: 'https://ocsp.ndis.nvidia.com', certIdHash: 'sha384' },
    });
  });
  it('unknown keys, out-of-range values and bad URLs are refused', () => {
    for (const bad of [{ x: 1 }, { ocsp: { mode: 'on' } }, { ocsp: { extra: 1 } }, { rims: { service: { url: 'ftp://x' } } }, { maxGpus: 17 }, { allowedArchs: [] }, { rims: { static: { 'bad id': 'x' } } }]) {
      expect(codeOf(() => parseNvidiaOptions(bad))).toBe('NVIDIA_OPTIONS_INVALID');
    }
  });
});
