/**
 * The `azure` provider on every real Azure CVM evidence set in test/vectors (INDEX §1),
 * each with the nonce and PCR 0 the INDEX gives, at a pinned time; then every upstream negative
 * case as a table row with its own stable code.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeVectors, loadTestTrust, readVector, readVectorJson, readVectorText } from '../helpers/vectors.js';
import { createAzureProvider, createAzureProviderFromConfig } from '../../providers/azure/index.js';
import type { Provider, ProviderClaims, VerifyContext } from '../../providers/common/types.js';
import { PinIds } from '../../providers/common/pins.js';
import { parsePemCertificates, certDer } from '../../providers/common/x509.js';
import { toBase64Url } from '../../providers/common/encoding.js';
import { codeOf, codeOfSync } from '../amd-sev-snp/helpers.js';
import { startKdsServer, type KdsServer } from './kds-server.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
type Json = Record<string, unknown>;

interface AzureSet {
  name: string;
  format: 'az-snp-vtpm' | 'az-tdx-vtpm';
  evidence: () => Json;
  binding: Uint8Array;
  pcr0: string;
  at: Date;
  tee: 'sev-snp' | 'tdx';
  vmUniqueId: string;
}

/** hcl-report.bin + tpm-quote-v1.json + vcek.pem (INDEX 1a) assembled as v1 evidence. */
function looseSnpSet(): Json {
  const [vcek, ask] = parsePemCertificates(readVectorText('trustee/az-snp-vtpm/vcek.pem'));
  return {
    version: 1,
    tpm_quote: readVectorJson('trustee/az-snp-vtpm/tpm-quote-v1.json'),
    hcl_report: toBase64Url(readVector('trustee/az-snp-vtpm/hcl-report.bin')),
    vcek: toBase64Url(certDer(vcek!)),
    vcek_chain: ask!.toString('pem'),
  };
}

const SETS: AzureSet[] = [
  { name: 'az-snp-vtpm evidence-v0', format: 'az-snp-vtpm', evidence: () => readVectorJson('trustee/az-snp-vtpm/evidence-v0.json'), binding: utf8('challenge'), pcr0: 'e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced', at: new Date('2025-06-01T00:00:00Z'), tee: 'sev-snp', vmUniqueId: '26f8bc30-774e-4290-8e7a-535f3b672aee' },
  { name: 'az-snp-vtpm evidence-v1', format: 'az-snp-vtpm', evidence: () => readVectorJson('trustee/az-snp-vtpm/evidence-v1.json'), binding: utf8('challenge'), pcr0: 'e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced', at: new Date('2025-06-01T00:00:00Z'), tee: 'sev-snp', vmUniqueId: '26f8bc30-774e-4290-8e7a-535f3b672aee' },
  { name: 'az-snp-vtpm evidence-v2', format: 'az-snp-vtpm', evidence: () => readVectorJson('trustee/az-snp-vtpm/evidence-v2.json'), binding: unhex('982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef'), pcr0: '84275b2f4312cd4fc6cbe6b152ad3c3683e513d9f1e23c34fca160c8cca7a6a7', at: new Date('2025-06-01T00:00:00Z'), tee: 'sev-snp', vmUniqueId: '7df7b373-b947-4aaa-96e5-c358f2a03d20' },
  { name: 'az-snp-vtpm evidence-genoa', format: 'az-snp-vtpm', evidence: () => readVectorJson('trustee/az-snp-vtpm/evidence-genoa.json'), binding: unhex('0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f'), pcr0: 'afd689d0bb1c5f36f023fbaf574135f555a28a10c1f6b938d2a25e70c7783338', at: new Date('2025-06-01T00:00:00Z'), tee: 'sev-snp', vmUniqueId: '390cbcf5-6c67-4d9b-98ef-c3f1699cc8fc' },
  { name: 'az-snp-vtpm hcl-report.bin + tpm-quote-v1.json + vcek.pem', format: 'az-snp-vtpm', evidence: looseSnpSet, binding: utf8('challenge'), pcr0: 'f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be', at: new Date('2024-06-01T00:00:00Z'), tee: 'sev-snp', vmUniqueId: '911b0ef8-9dba-48b0-b275-4e4df2d39252' },
  { name: 'az-tdx-vtpm evidence-v0', format: 'az-tdx-vtpm', evidence: () => readVectorJson('trustee/az-tdx-vtpm/evidence-v0.json'), binding: utf8('challenge'), pcr0: '782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273', at: new Date('2025-06-01T00:00:00Z'), tee: 'tdx', vmUniqueId: '6332533d-5649-4d02-8aa7-8f64b7c3ee21' },
  { name: 'az-tdx-vtpm evidence-v1', format: 'az-tdx-vtpm', evidence: () => readVectorJson('trustee/az-tdx-vtpm/evidence-v1.json'), binding: utf8('challenge'), pcr0: '782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273', at: new Date('2025-06-01T00:00:00Z'), tee: 'tdx', vmUniqueId: '6332533d-5649-4d02-8aa7-8f64b7c3ee21' },
];

describeVectors('azure provider: every real Azure CVM evidence set verifies', () => {
  let kds: KdsServer;
  let provider: Provider;
  beforeAll(async () => {
    kds = await startKdsServer();
    provider = createAzureProvider({ kdsBaseUrl: kds.base });
  });
  afterAll(() => kds.close());

  const ctx = async (s: AzureSet, over: Partial<VerifyContext> = {}): Promise<VerifyContext> => ({
    binding: s.binding,
    now: s.at,
    fetch,
    trust: await loadTestTrust(),
    options: {},
    ...over,
  });

  for (const s of SETS) {
    it(s.name, async () => {
      const c: ProviderClaims = await provider.verify(s.format, s.evidence(), await ctx(s));
      expect(c.provider).toBe('azure');
      expect(c.format).toBe(s.format);
      expect(c.platform.tee).toBe(s.tee);
      expect(c.platform.debug).toBe(false);
      expect(c.tpm?.pcrs.sha256?.[0]).toBe(s.pcr0);
      expect(Object.keys(c.tpm?.pcrs.sha256 ?? {})).toHaveLength(24);
      for (const v of Object.values(c.tpm?.pcrs.sha256 ?? {})) expect(v).toMatch(/^[0-9a-f]{64}$/);
      expect(c.tpm?.akTrust).toBe('hardware-report');
      expect(c.identity.cloud).toBe('azure');
      expect(c.identity.proven).toEqual(['instanceId']);
      expect(c.identity.account).toBeUndefined();
      expect(c.identity.instanceId).toBe(s.vmUniqueId);
    });
  }

  it('claims carry the INDEX values (SNP v0: TCB, measurement, id key digest; TDX: MRTD, MRSEAM, RTMRs, XFAM)', async () => {
    const snp = await provider.verify('az-snp-vtpm', SETS[0]!.evidence(), await ctx(SETS[0]!));
    expect(snp.platform.tcb).toEqual({ bootloader: 4, tee: 0, snp: 24, microcode: 219 });
    expect(snp.platform.measurement).toBe('6a063be9dd79f6371c842e480f8dc3b5c725961344e57130e88c5adf49e8f7f6c79b75a5eb77fc769959f4aeb2f9401e');
    expect(snp.platform.fields?.idKeyDigest).toBe('942fd93ebde6ea7a96efadeafc60f1c6b3d10e703b1dafd7555b92f7f3d32d0e006767648cba5b102af3d65756af4177');
    expect(snp.platform.fields?.policy).toBe('0x3001f');
    expect(snp.platform.fields?.product).toBe('Milan');
    expect(snp.platform.fields?.vmpl).toBe(0);
    expect(snp.boot?.secureBoot).toBe(true);
    const genoa = await provider.verify('az-snp-vtpm', SETS[3]!.evidence(), await ctx(SETS[3]!));
    expect(genoa.platform.fields?.product).toBe('Genoa');
    expect(genoa.platform.tcb).toEqual({ bootloader: 10, tee: 0, snp: 23, microcode: 84 });
    const tdx = await provider.verify('az-tdx-vtpm', SETS[6]!.evidence(), await ctx(SETS[6]!));
    expect(tdx.platform.measurement).toBe('024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b');
    expect(tdx.platform.fields?.mrSeam).toBe('360304d34a16aace0a18e09ad2d07d2b9fd3c174378e5bf108388079827f89ff62acc5f8c473dd40706324834e202946');
    expect(tdx.platform.fields?.teeTcbSvn).toBe('02010600000000000000000000000000');
    expect(tdx.platform.fields?.xfam).toBe('e718060000000000');
    expect(tdx.platform.fields?.rtmr0).toBe('00'.repeat(48));
    expect(tdx.platform.fields?.fmspc).toBe('00806f050000');
    expect(tdx.platform.fields?.tcbStatus).toBe('not-evaluated');
  });

  it('the ASK comes from KDS once, then from the cache', async () => {
    const local = await startKdsServer();
    try {
      const p = createAzureProvider({ kdsBaseUrl: local.base });
      const s = SETS[1]!;
      await Promise.all(Array.from({ length: 10 }, async () => p.verify(s.format, s.evidence(), await ctx(s))));
      expect(Object.fromEntries(local.hits)).toEqual({ '/vcek/v1/Milan/cert_chain': 1 });
    } finally {
      await local.close();
    }
  });

  it('v1 evidence without its VCEK: the VCEK comes from KDS by CHIP_ID and REPORTED_TCB', async () => {
    const s = SETS[1]!;
    const e = s.evidence();
    const vcekDer = Uint8Array.from(Buffer.from(String(e.vcek).replace(/=+$/, ''), 'base64url'));
    delete e.vcek;
    const hcl = Uint8Array.from(Buffer.from(String(e.hcl_report).replace(/=+$/, ''), 'base64url'));
    const chipId = Buffer.from(hcl.subarray(32 + 0x1a0, 32 + 0x1e0)).toString('hex');
    const local = await startKdsServer({ [`/vcek/v1/Milan/${chipId}?blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219`]: vcekDer });
    try {
      const p = createAzureProvider({ kdsBaseUrl: local.base });
      const c = await p.verify(s.format, e, await ctx(s));
      expect(c.platform.fields?.endorsementKeySha256).toBe(Buffer.from(await crypto.subtle.digest('SHA-256', vcekDer)).toString('hex'));
      expect(local.hits.get(`/vcek/v1/Milan/${chipId}`)).toBe(1);
      const none = await startKdsServer();
      try {
        expect(await codeOf(async () => createAzureProvider({ kdsBaseUrl: none.base }).verify(s.format, e, await ctx(s)))).toBe('KDS_UNAVAILABLE');
      } finally {
        await none.close();
      }
    } finally {
      await local.close();
    }
  });

  it('configured AMD intermediates replace the KDS fetch (still verified against the pinned ARK)', async () => {
    const p = createAzureProvider({ kdsBaseUrl: 'http://127.0.0.1:1', amdIntermediatesPem: readVectorText('trustee/amd-roots/milan_ask_ark_asvk.pem') });
    const s = SETS[1]!;
    const c = await p.verify(s.format, s.evidence(), await ctx(s));
    expect(c.platform.tee).toBe('sev-snp');
    const unreachable = createAzureProvider({ kdsBaseUrl: 'http://127.0.0.1:1' });
    expect(await codeOf(async () => unreachable.verify(s.format, s.evidence(), await ctx(s)))).toBe('KDS_UNAVAILABLE');
  });
});

describeVectors('azure provider: upstream negative cases, one stable code each', () => {
  let kds: KdsServer;
  let provider: Provider;
  beforeAll(async () => {
    kds = await startKdsServer();
    provider = createAzureProvider({ kdsBaseUrl: kds.base });
  });
  afterAll(() => kds.close());

  interface Row {
    name: string;
    set: number;
    mutate?: (e: Json) => void;
    ctx?: (c: VerifyContext) => VerifyContext | Promise<VerifyContext>;
    format?: string;
    wantCode: string;
  }
  const b64 = (e: Json, k: string): Uint8Array => Uint8Array.from(Buffer.from(String(e[k]).replace(/=+$/, ''), 'base64url'));
  const editHcl = (f: (b: Uint8Array) => void) => (e: Json): void => {
    const b = b64(e, 'hcl_report');
    f(b);
    e.hcl_report = toBase64Url(b);
  };
  const quote = (e: Json): Json => e.tpm_quote as Json;
  const flipHexByte = (s: string, i: number): string => s.slice(0, 2 * i) + ((parseInt(s.slice(2 * i, 2 * i + 2), 16) ^ 1).toString(16).padStart(2, '0')) + s.slice(2 * i + 2);
  const LOOSE = 4;
  const TDX = 6;
  const rows: Row[] = [
    { name: 'untouched', set: LOOSE, wantCode: 'NO_ERROR' },
    { name: 'HCL var-data byte changed (0x06e0 + 1)', set: LOOSE, mutate: editHcl((b) => (b[0x6e0]! += 1)), wantCode: 'HCL_RUNTIME_DATA_DIGEST_MISMATCH' },
    { name: 'reported TCB lowered (0x01a6 = 0)', set: LOOSE, mutate: editHcl((b) => (b[0x1a6] = 0)), wantCode: 'SNP_VCEK_TCB_MISMATCH' },
    { name: 'AK key bytes broken (0x0540 = 0)', set: LOOSE, mutate: editHcl((b) => (b[0x540] = 0)), wantCode: 'HCL_RUNTIME_DATA_INVALID' },
    { name: 'quote signature bit flipped', set: LOOSE, mutate: (e) => (quote(e).signature = flipHexByte(String(quote(e).signature), 0)), wantCode: 'QUOTE_SIGNATURE_INVALID' },
    { name: 'reversed nonce', set: LOOSE, ctx: (c) => ({ ...c, binding: utf8('egnellahc') }), wantCode: 'NONCE_MISMATCH' },
    { name: 'PCR changed (pcrs[0][0] flipped)', set: LOOSE, mutate: (e) => ((quote(e).pcrs as string[])[0] = flipHexByte((quote(e).pcrs as string[])[0]!, 0)), wantCode: 'PCR_DIGEST_MISMATCH' },
    { name: 'PCR value one byte short', set: LOOSE, mutate: (e) => ((quote(e).pcrs as string[])[3] = (quote(e).pcrs as string[])[3]!.slice(2)), wantCode: 'PCR_VALUE_INVALID' },
    { name: 'PCR values in upper-case hex (same bytes)', set: LOOSE, mutate: (e) => (quote(e).pcrs = (quote(e).pcrs as string[]).map((p) => p.toUpperCase())), wantCode: 'NO_ERROR' },
    {
      name: 'VCEK from another chip',
      set: LOOSE,
      mutate: (e) => (e.vcek = toBase64Url(readVector('go-sev-guest/testdata/vcek.testcer'))),
      wantCode: 'SNP_VCEK_HWID_MISMATCH',
    },
    { name: 'ARK not pinned', set: LOOSE, ctx: async (c) => ({ ...c, trust: await loadTestTrust([PinIds.INTEL_SGX_ROOT]) }), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'expired certificate at the chosen time (2031)', set: LOOSE, ctx: (c) => ({ ...c, now: new Date('2031-01-01T00:00:00Z') }), wantCode: 'CERT_EXPIRED' },
    { name: 'SNP report signature bit flipped', set: LOOSE, mutate: editHcl((b) => (b[32 + 0x2a0]! ^= 1)), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'SNP report measurement changed', set: LOOSE, mutate: editHcl((b) => (b[32 + 0x90]! ^= 1)), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'v1 evidence relabelled v2: user-data lacks the nonce', set: 1, mutate: (e) => (e.version = 2), wantCode: 'HCL_USER_DATA_MISMATCH' },
    { name: 'v2 evidence: verifies with its nonce', set: 2, wantCode: 'NO_ERROR' },
    { name: 'AK JWK "n" broken but valid JSON', set: LOOSE, mutate: editHcl((b) => (b[0x540] = 0x21)), wantCode: 'HCL_RUNTIME_DATA_DIGEST_MISMATCH' },
    { name: 'TDX: var-data byte changed (0x0880 + 1)', set: TDX, mutate: editHcl((b) => (b[0x880]! += 1)), wantCode: 'HCL_RUNTIME_DATA_DIGEST_MISMATCH' },
    { name: 'TDX: TDREPORT report data changed', set: TDX, mutate: editHcl((b) => (b[32 + 128]! ^= 1)), wantCode: 'HCL_TDREPORT_MISMATCH' },
    {
      name: 'TDX: TD quote report data changed',
      set: TDX,
      mutate: (e) => {
        const q = b64(e, 'td_quote');
        q[48 + 584 - 64]! ^= 1;
        e.td_quote = toBase64Url(q);
      },
      wantCode: 'TDX_QUOTE_SIGNATURE_INVALID',
    },
    { name: 'TDX: Intel root not pinned', set: TDX, ctx: async (c) => ({ ...c, trust: await loadTestTrust([PinIds.AMD_ARK_MILAN]) }), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'TDX: TCB status requested without collateral', set: TDX, ctx: (c) => ({ ...c, options: { tdxTcbStatus: 'on' } }), wantCode: 'TDX_COLLATERAL_MISSING' },
    { name: 'TDX: reversed nonce', set: TDX, ctx: (c) => ({ ...c, binding: utf8('egnellahc') }), wantCode: 'NONCE_MISMATCH' },
    {
      name: 'TDX HCL report inside az-snp-vtpm evidence',
      set: 1,
      mutate: (e) => (e.hcl_report = (readVectorJson('trustee/az-tdx-vtpm/evidence-v1.json') as Json).hcl_report),
      wantCode: 'HCL_REPORT_TYPE_MISMATCH',
    },
    { name: 'SNP evidence posted as az-tdx-vtpm', set: 1, format: 'az-tdx-vtpm', wantCode: 'EVIDENCE_INVALID' },
    { name: 'unknown format', set: 1, format: 'gotpm', wantCode: 'FORMAT_UNSUPPORTED' },
    { name: 'unknown evidence member', set: 1, mutate: (e) => (e.extra = 1), wantCode: 'EVIDENCE_INVALID' },
    { name: '23 PCRs', set: 1, mutate: (e) => (quote(e).pcrs as string[]).pop(), wantCode: 'EVIDENCE_INVALID' },
    { name: 'event log supplied', set: 1, mutate: (e) => (e.event_log = 'AAAA'), wantCode: 'EVENTLOG_UNSUPPORTED' },
    { name: 'unknown option', set: 1, ctx: (c) => ({ ...c, options: { skipChecks: true } }), wantCode: 'OPTIONS_INVALID' },
    { name: 'minimum SNP TCB above the reported one', set: 1, ctx: (c) => ({ ...c, options: { snpMinimumTcb: { microcode: 220 } } }), wantCode: 'SNP_TCB_TOO_LOW' },
    { name: 'hcl_report not base64url', set: 1, mutate: (e) => (e.hcl_report = `${String(e.hcl_report)}!`), wantCode: 'EVIDENCE_INVALID' },
  ];

  for (const row of rows) {
    it(row.name, async () => {
      const s = SETS[row.set]!;
      const e = s.evidence();
      row.mutate?.(e);
      let c: VerifyContext = { binding: s.binding, now: s.at, fetch, trust: await loadTestTrust(), options: {} };
      if (row.ctx) c = await row.ctx(c);
      expect(await codeOf(() => provider.verify(row.format ?? s.format, e, c))).toBe(row.wantCode);
    });
  }
});

describeVectors('azure provider configuration', () => {
  it('validates its configuration block strictly', () => {
    expect(codeOfSync(() => createAzureProviderFromConfig({}))).toBe('NO_ERROR');
    expect(codeOfSync(() => createAzureProviderFromConfig({ snpProduct: 'Milan', defaults: { debug: 'forbid' }, imds: { anchorIds: ['x'] } }))).toBe('NO_ERROR');
    expect(codeOfSync(() => createAzureProviderFromConfig({ snpProduct: 'Naples' }))).toBe('OPTIONS_INVALID');
    expect(codeOfSync(() => createAzureProviderFromConfig({ kdsBaseUrl: 'not a url' }))).toBe('OPTIONS_INVALID');
    expect(codeOfSync(() => createAzureProviderFromConfig({ defaults: { debug: 'maybe' } }))).toBe('OPTIONS_INVALID');
    expect(codeOfSync(() => createAzureProviderFromConfig({ imds: { anchorIds: [] } }))).toBe('OPTIONS_INVALID');
    expect(codeOfSync(() => createAzureProviderFromConfig({ skipVerification: true }))).toBe('OPTIONS_INVALID');
    expect(codeOfSync(() => createAzureProviderFromConfig({ amdIntermediatesPem: readVectorText('trustee/amd-roots/milan_ask_ark_asvk.pem') }))).toBe('NO_ERROR');
  });
});
