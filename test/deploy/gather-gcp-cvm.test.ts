/**
 * GCE Confidential VM (SEV-SNP): both join clients add the SEV-SNP report they read through
 * configfs-tsm to their `gotpm` evidence (attest.Attestation field 8, go-sev-guest
 * sevsnp.Attestation), on swtpm laid out like GCE's vTPM and a directory laid out like the
 * kernel's configfs-tsm report entry (test/deploy/cloud-layouts.ts `layOutTsmEntry`, pointed at
 * with ATTEST_TSM_REPORT_DIR / `tsmReportDir`); the broker's gcp verifier judges the result.
 *
 * Simulated links, said plainly:
 * - the kernel: a plain directory cannot answer an `inblob` write, so the entry's `outblob` is
 *   laid out in advance for the binding the test then gathers with; the test reads back the
 *   `inblob` each client wrote (it must be binding ‖ zeros, the REPORT_DATA go-tpm-tools asks for);
 * - AMD's VCEK signature: the real Milan report of trustee/az-snp-vtpm/hcl-report.bin, REPORT_DATA
 *   set, re-signed by a stand-in VCEK (the real VCEK's AMD extensions) under a stand-in ASK/ARK
 *   given to the verifier under the `amd-ark-milan` pin id; the VCEK/ASK/ARK reach the clients
 *   as the host's certificate table in `auxblob`;
 * - Google's AK CA: a test CA under the `google-ekak-ca-root` pin id issues the AK certificate.
 *
 * TDX: the broker's gcp verifier refuses `tdx_attestation` (TEE_REPORT_UNSUPPORTED, test/gcp), so
 * neither client gathers a TD quote: on a `tdx_guest` provider both stop with
 * JOIN_TEE_REPORT_UNAVAILABLE (asserted below) rather than join without the report.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createPrimaryFromTemplate, gatherGcp, type GatherOptions, type Gathered } from '../../deploy/node/client/evidence.node.js';
import { parseCertTable, snpReportFields } from '../../deploy/node/client/tsm.node.js';
import { createToolRunner, openTpmSession, type TpmSession } from '../../deploy/node/client/tpm.node.js';
import { AttestError } from '../../providers/common/errors.js';
import { PinIds } from '../../providers/common/pins.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { x509 } from '../../providers/common/x509.js';
import { readVectorText } from '../helpers/vectors.js';
import type { TrustStore } from '../../providers/common/types.js';
import { parseGcpSevSnp } from '../../providers/gcp/sevsnp.js';
import { GCE, GCE_ECC_AK_TEMPLATE, SNP_CERT_GUIDS, certTable, layOutGce, layOutTsmEntry, realAzureVcekPem, standInAmd, type StandInAmd } from './cloud-layouts.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { codeOf } from '../helpers/codes.js';

const run = promisify(execFile);
const SCRIPT = 'deploy/node/attest-join.sh';

interface Sent {
  provider: string;
  format: string;
  evidence: Record<string, unknown>;
}

const pb = protobuf.parse(`syntax = "proto3"; package attest;
message Attestation { bytes ak_pub = 1; bytes ak_cert = 6; bytes sev_snp_attestation = 8; bytes tdx_attestation = 9; }
message SevSnpAttestation { bytes report = 1; CertificateChain certificate_chain = 2; SevProduct product = 3; }
message SevProduct { uint32 name = 1; }
message CertificateChain { bytes vcek_cert = 1; bytes ask_cert = 2; bytes ark_cert = 3; bytes vlek_cert = 6; }`).root;
const Attestation = pb.lookupType('attest.Attestation');
const SevSnp = pb.lookupType('attest.SevSnpAttestation');
const field8 = (ev: Record<string, unknown>): Buffer | undefined => {
  const a = Attestation.toObject(Attestation.decode(Buffer.from(ev.attestation as string, 'base64')), { defaults: false }) as { sevSnpAttestation?: Uint8Array };
  return a.sevSnpAttestation ? Buffer.from(a.sevSnpAttestation) : undefined;
};

let tpm: Swtpm;
let trust: TrustStore;
let amd: StandInAmd;
const sessions: TpmSession[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'gcp-cvm-'));
/** An empty directory: no /dev/sev-guest, no /dev/tdx_guest. */
const noDevices = join(scratch, 'dev-none');
mkdirSync(noDevices);
/** /proc/cpuinfo stand-ins (the product hint; this test machine's own CPU must not matter). */
const cpuinfo = (family: number, model: number): string => {
  const p = join(scratch, `cpuinfo-${family}-${model}`);
  writeFileSync(p, `processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: ${family}\nmodel\t\t: ${model}\nmodel name\t: AMD EPYC\n`);
  return p;
};
const MILAN = cpuinfo(25, 1);

beforeAll(async () => {
  tpm = await startSwtpm({ banks: 'sha1,sha256' });
  const { trust: google } = await layOutGce(tpm, async () => {
    const o = await nodeOpts(new Uint8Array(32), {});
    await createPrimaryFromTemplate(o.session, GCE_ECC_AK_TEMPLATE, 'e', 'probe-ak');
    await run('tpm2_readpublic', ['-c', o.session.file('probe-ak.ctx'), '-f', 'pem', '-o', o.session.file('ak.pem')], { env: tpm.env });
    await o.session.flush();
    return readFileSync(o.session.file('ak.pem'), 'utf8');
  });
  amd = await standInAmd(realAzureVcekPem());
  trust = createTrustStore([...google.anchors(google.ids()), ...amd.trust.anchors(amd.trust.ids())]);
}, 90_000);
afterAll(async () => {
  for (const s of sessions) await s.close().catch(() => undefined);
  await tpm?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function nodeOpts(binding: Uint8Array, o: Partial<GatherOptions>): Promise<GatherOptions> {
  const session = await openTpmSession(createToolRunner(tpm.env));
  sessions.push(session);
  return { session, binding, fetch, eventLogPath: '', imdsBase: 'http://127.0.0.1:1', nitroTpmAttest: 'nitro-tpm-attest', teeDevDir: noDevices, cpuinfoPath: MILAN, log: () => undefined, ...o };
}
/** The shell client's evidence for `binding` (dash, `--gather-only`, no event log). */
async function shellGather(binding: Uint8Array, env: NodeJS.ProcessEnv): Promise<Sent> {
  const { stdout } = await run('dash', [SCRIPT, '--gather-only', '--binding', Buffer.from(binding).toString('hex'), '--platform', 'gcp', '--no-event-log'], {
    env: { ...tpm.env, ATTEST_TEE_DEV_DIR: noDevices, ATTEST_CPUINFO: MILAN, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as Sent;
}
/** The shell's failure: exit status and stderr. */
async function shellFails(binding: Uint8Array, env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return shellGather(binding, env).then(
    () => ({ code: 0, stderr: '' }),
    (x: { code: number; stderr: string }) => ({ code: x.code, stderr: x.stderr }),
  );
}
const sent = (g: Gathered): Sent => JSON.parse(JSON.stringify({ provider: g.provider, format: g.format, evidence: g.evidence })) as Sent;
const fresh = (name: string): string => mkdtempSync(join(scratch, `${name}-`));
const REPORT_DATA = (binding: Uint8Array) => Buffer.concat([binding, Buffer.alloc(64 - binding.length)]);

function verifier(binding: Uint8Array, options: Record<string, unknown> = {}, t: TrustStore = trust) {
  return (evidence: Record<string, unknown>) =>
    PROVIDER_FACTORIES.gcp!({}, { store: new MemoryStore() }).verify('gotpm', evidence, { binding, now: new Date(), trust: t, fetch: noNet, options });
}
const noNet = (() => Promise.reject(new TypeError('network is off in this test'))) as unknown as typeof fetch;

describe('gcp Confidential VM (SEV-SNP through configfs-tsm): shell and Node gatherers', () => {
  it('both write REPORT_DATA = binding ‖ zeros to inblob and send the same sevsnp.Attestation, which rebuilds the signed report exactly', async () => {
    const binding = randomBytes(32);
    const [rootSh, rootNd] = [fresh('tsm-sh'), fresh('tsm-nd')];
    const sh0 = await layOutTsmEntry(rootSh, binding, amd);
    const nd0 = await layOutTsmEntry(rootNd, binding, amd);
    const sh = await shellGather(binding, { ATTEST_TSM_REPORT_DIR: rootSh });
    const nd = sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: rootNd })));
    expect(readFileSync(join(sh0.entry, 'inblob')).equals(REPORT_DATA(binding))).toBe(true);
    expect(readFileSync(join(nd0.entry, 'inblob')).equals(REPORT_DATA(binding))).toBe(true);
    const [a, b] = [field8(sh.evidence), field8(nd.evidence)];
    expect(a).toBeDefined();
    // The stand-in reports differ only in their ECDSA signature (a fresh k each time), so each
    // client's bytes are compared with its own report; the encoders are compared on one report.
    for (const [bytes, report] of [
      [a!, sh0.report],
      [b!, nd0.report],
    ] as const) {
      const e = parseGcpSevSnp(bytes);
      expect(Buffer.from(e.report).equals(report)).toBe(true);
      expect(e.vcek && e.ask).toBeTruthy();
      const m = SevSnp.toObject(SevSnp.decode(bytes), { defaults: false }) as { certificateChain: { arkCert?: Uint8Array } };
      expect(m.certificateChain.arkCert).toBeDefined();
    }
    // The same report through the shell gives the Node encoder's bytes.
    const again = await layOutTsmEntry(fresh('tsm-sh2'), binding, amd);
    writeFileSync(join(again.entry, 'outblob'), nd0.report);
    const sh2 = await shellGather(binding, { ATTEST_TSM_REPORT_DIR: join(again.entry, '..') });
    expect(field8(sh2.evidence)!.equals(b!)).toBe(true);
  });

  it('both clients’ evidence is accepted by the gcp verifier with the SEV-SNP facts (unbound by default, the TEE with acceptNonceBoundTee)', async () => {
    const binding = randomBytes(32);
    const rootSh = fresh('tsm-sh');
    const rootNd = fresh('tsm-nd');
    const { report } = await layOutTsmEntry(rootSh, binding, amd);
    await layOutTsmEntry(rootNd, binding, amd);
    const measurement = report.subarray(0x90, 0x90 + 48).toString('hex');
    for (const ev of [(await shellGather(binding, { ATTEST_TSM_REPORT_DIR: rootSh })).evidence, sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: rootNd }))).evidence]) {
      const c = await verifier(binding)(ev);
      expect(c.identity).toMatchObject({ cloud: 'gcp', account: GCE.project, instanceId: GCE.instanceId.toString() });
      expect(c.platform).toMatchObject({ tee: 'none', fields: { unboundTee: 'sev-snp', unboundMeasurement: measurement, binding: 'nonce' } });
      const bound = await verifier(binding, { acceptNonceBoundTee: true })(ev);
      expect(bound.platform).toMatchObject({ tee: 'sev-snp', measurement, debug: false });
    }
  });

  it('a report whose REPORT_DATA does not carry the binding is refused: SNP_REPORT_DATA_MISMATCH', async () => {
    const binding = randomBytes(32);
    const rootSh = fresh('tsm-sh');
    const rootNd = fresh('tsm-nd');
    const other = randomBytes(32);
    await layOutTsmEntry(rootSh, binding, amd, { reportData: other });
    await layOutTsmEntry(rootNd, binding, amd, { reportData: other });
    for (const ev of [(await shellGather(binding, { ATTEST_TSM_REPORT_DIR: rootSh })).evidence, sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: rootNd }))).evidence]) {
      expect(await codeOf(verifier(binding)(ev))).toBe('SNP_REPORT_DATA_MISMATCH');
    }
  });

  it('a version 3 report (CPUID family/model set, cpuid1eax_fms in the proto) from both clients is accepted: the broker rebuilds the same signed bytes', async () => {
    // The version 3 report is another chip's: a stand-in VCEK with that chip's AMD extensions.
    const v1 = JSON.parse(readVectorText('trustee/az-snp-vtpm/evidence-v1.json')) as { vcek: string };
    const amd3 = await standInAmd(new x509.X509Certificate(Buffer.from(v1.vcek, 'base64url')).toString('pem'));
    const trust3 = createTrustStore([...trust.anchors([PinIds.GOOGLE_EKAK_ROOT]), ...amd3.trust.anchors(amd3.trust.ids())]);
    const binding = randomBytes(32);
    const rootSh = fresh('tsm-sh');
    const rootNd = fresh('tsm-nd');
    const sh0 = await layOutTsmEntry(rootSh, binding, amd3, { version: 3 });
    const nd0 = await layOutTsmEntry(rootNd, binding, amd3, { version: 3 });
    expect([sh0.report[0x188], sh0.report[0x189], sh0.report[0x18a]]).toEqual([0x19, 0x01, 0x01]);
    const sh = (await shellGather(binding, { ATTEST_TSM_REPORT_DIR: rootSh })).evidence;
    const nd = sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: rootNd }))).evidence;
    expect(Buffer.from(parseGcpSevSnp(field8(sh)!).report).equals(sh0.report)).toBe(true);
    expect(Buffer.from(parseGcpSevSnp(field8(nd)!).report).equals(nd0.report)).toBe(true);
    for (const ev of [sh, nd]) expect((await verifier(binding, { acceptNonceBoundTee: true }, trust3)(ev)).platform).toMatchObject({ tee: 'sev-snp' });
  });

  it('the product hint (sevsnp.SevProduct from the CPU family/model, as go-tpm-tools sends it): the same from both; needed for a v2 report without certificates; a wrong one is refused', async () => {
    const binding = randomBytes(32);
    const [rootSh, rootNd] = [fresh('tsm-sh'), fresh('tsm-nd')];
    await layOutTsmEntry(rootSh, binding, amd);
    await layOutTsmEntry(rootNd, binding, amd);
    const sh = (await shellGather(binding, { ATTEST_TSM_REPORT_DIR: rootSh })).evidence;
    const nd = sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: rootNd }))).evidence;
    for (const ev of [sh, nd]) expect((SevSnp.toObject(SevSnp.decode(field8(ev)!)) as { product?: { name: number } }).product).toEqual({ name: 1 });
    // Turin's family (1Ah) and Genoa's models (1xh) give 3 and 2; an Intel CPU gives none.
    for (const [file, want] of [
      [cpuinfo(26, 2), { name: 3 }],
      [cpuinfo(25, 17), { name: 2 }],
      [cpuinfo(6, 143), undefined],
    ] as const) {
      const [r1, r2] = [fresh('tsm-sh'), fresh('tsm-nd')];
      await layOutTsmEntry(r1, binding, amd);
      await layOutTsmEntry(r2, binding, amd);
      const a = (await shellGather(binding, { ATTEST_TSM_REPORT_DIR: r1, ATTEST_CPUINFO: file })).evidence;
      const b = sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: r2, cpuinfoPath: file }))).evidence;
      for (const ev of [a, b]) expect((SevSnp.toObject(SevSnp.decode(field8(ev)!)) as { product?: unknown }).product).toEqual(want);
      // The hint disagrees with the (Milan) VCEK: refused, it cannot steer the chain.
      if (want?.name === 3) expect(await codeOf(verifier(binding)(a))).toBe('SNP_PRODUCT_MISMATCH');
    }
  });

  it('no certificate table (auxblob absent): the report goes alone and the broker needs AMD KDS (KDS_* with the network off); a v2 report with no product hint cannot be placed (SNP_PRODUCT_UNKNOWN)', async () => {
    for (const [version, cpu, want] of [
      [3, MILAN, /^KDS_/],
      [2, MILAN, /^KDS_/],
      [2, cpuinfo(6, 143), /^SNP_PRODUCT_UNKNOWN$/],
    ] as const) {
      const binding = randomBytes(32);
      const root = fresh('tsm');
      await layOutTsmEntry(root, binding, amd, { auxblob: false, version });
      const ev = (await shellGather(binding, { ATTEST_TSM_REPORT_DIR: root, ATTEST_CPUINFO: cpu })).evidence;
      const m = SevSnp.toObject(SevSnp.decode(field8(ev)!), { defaults: false }) as { certificateChain?: unknown };
      expect(m.certificateChain).toBeUndefined();
      expect(await codeOf(verifier(binding)(ev))).toMatch(want);
    }
  });

  it('a Confidential VM whose outblob cannot be read: both fail with JOIN_TEE_REPORT_UNAVAILABLE (exit 1), never send without it', async () => {
    const binding = randomBytes(32);
    const root = fresh('tsm');
    await layOutTsmEntry(root, binding, amd, { outblob: false });
    const e = await shellFails(binding, { ATTEST_TSM_REPORT_DIR: root });
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('JOIN_TEE_REPORT_UNAVAILABLE');
    expect(e.stderr).toContain('outblob');
    await expect(gatherGcp(await nodeOpts(binding, { tsmReportDir: root }))).rejects.toMatchObject({ code: 'JOIN_TEE_REPORT_UNAVAILABLE' });
  });

  it('a TDX provider: both send the vTPM part alone with a warning (the gcp verifier cannot check TD quotes: TEE_REPORT_UNSUPPORTED)', async () => {
    const binding = randomBytes(32);
    const root = fresh('tsm');
    await layOutTsmEntry(root, binding, amd, { provider: 'tdx_guest' });
    const sh = await shellGather(binding, { ATTEST_TSM_REPORT_DIR: root });
    await layOutTsmEntry(root, binding, amd, { provider: 'tdx_guest' }); // the shell removed its entry
    const logs: string[] = [];
    const nd = sent(await gatherGcp({ ...(await nodeOpts(binding, { tsmReportDir: root })), log: (m: string) => logs.push(m) }));
    for (const ev of [sh, nd]) expect(field8(ev.evidence)).toBeUndefined();
    expect(logs.join('\n')).toMatch(/TDX.*vTPM attestation goes alone/);
  });

  it('/dev/sev-guest without configfs-tsm (kernel < 6.7, configfs not mounted): JOIN_TEE_REPORT_UNAVAILABLE; ATTEST_GCP_TEE=none joins without the report', async () => {
    const binding = randomBytes(32);
    const dev = fresh('dev');
    writeFileSync(join(dev, 'sev-guest'), '');
    const absent = join(scratch, 'no-configfs', 'tsm', 'report');
    const e = await shellFails(binding, { ATTEST_TSM_REPORT_DIR: absent, ATTEST_TEE_DEV_DIR: dev });
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/JOIN_TEE_REPORT_UNAVAILABLE.*6\.7.*configfs/);
    await expect(gatherGcp(await nodeOpts(binding, { tsmReportDir: absent, teeDevDir: dev }))).rejects.toMatchObject({ code: 'JOIN_TEE_REPORT_UNAVAILABLE' });
    const sh = await shellGather(binding, { ATTEST_TSM_REPORT_DIR: absent, ATTEST_TEE_DEV_DIR: dev, ATTEST_GCP_TEE: 'none' });
    const nd = sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: absent, teeDevDir: dev, gcpTee: 'none' })));
    expect(field8(sh.evidence)).toBeUndefined();
    expect(field8(nd.evidence)).toBeUndefined();
    expect((await shellFails(binding, { ATTEST_GCP_TEE: 'maybe' })).code).toBe(2);
  });

  it('a Shielded VM (no configfs-tsm, no guest device): no TEE field, accepted as before with tee none', async () => {
    const binding = randomBytes(32);
    const absent = join(scratch, 'no-configfs', 'tsm', 'report');
    const sh = await shellGather(binding, { ATTEST_TSM_REPORT_DIR: absent });
    const nd = sent(await gatherGcp(await nodeOpts(binding, { tsmReportDir: absent })));
    for (const ev of [sh.evidence, nd.evidence]) {
      expect(field8(ev)).toBeUndefined();
      expect((await verifier(binding)(ev)).platform).toEqual({ tee: 'none', debug: false });
    }
  });
});

describe('the Node client’s report and certificate-table readers refuse what the proto cannot carry', () => {
  it('a report of the wrong size, reserved bytes set, a truncated or overlong certificate table: JOIN_TEE_REPORT_UNAVAILABLE', async () => {
    const code = (f: () => unknown) => {
      try {
        f();
        return 'ACCEPTED';
      } catch (e) {
        return (e as AttestError).code;
      }
    };
    const report = await (await import('./cloud-layouts.js')).standInSnpReport(amd, randomBytes(32));
    expect(code(() => snpReportFields(report))).toBe('ACCEPTED');
    expect(code(() => snpReportFields(report.subarray(0, 1183)))).toBe('JOIN_TEE_REPORT_UNAVAILABLE');
    const reserved = Buffer.from(report);
    reserved[0x208] = 1;
    expect(code(() => snpReportFields(reserved))).toBe('JOIN_TEE_REPORT_UNAVAILABLE');
    const table = certTable([[SNP_CERT_GUIDS.vcek, randomBytes(100)]]);
    expect(parseCertTable(table).vcek).toHaveLength(100);
    expect(code(() => parseCertTable(table.subarray(0, 30)))).toBe('JOIN_TEE_REPORT_UNAVAILABLE');
    expect(code(() => parseCertTable(table.subarray(0, table.length - 1)))).toBe('JOIN_TEE_REPORT_UNAVAILABLE');
    expect(code(() => parseCertTable(certTable([[SNP_CERT_GUIDS.ask, randomBytes(17 << 10)]])))).toBe('JOIN_TEE_REPORT_UNAVAILABLE');
  });
});
