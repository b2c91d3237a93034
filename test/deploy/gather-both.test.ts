/**
 * Both join clients' cloud gatherers on swtpm laid out like each cloud's vTPM
 * (test/deploy/cloud-layouts.ts), compared with each other and fed to the broker's verifier of
 * that format:
 *
 * - the shell client (deploy/node/attest-join.sh under dash, `--gather-only --binding`: the
 *   evidence it would send for that binding, nothing else) and the Node client
 *   (deploy/node/client/evidence.node.ts) produce the same evidence for the same TPM — equal
 *   members, equal bytes wherever the TPM is deterministic (keys, certificates, PCRs, the
 *   quote's extraData, the HCL report, the documents); quotes differ only in the TPM's clock and
 *   signature randomness, and both clients' quotes must verify;
 * - that evidence, from either client, is accepted by the production provider.
 *
 * Simulated links, said plainly (the real signers cannot sign for a swtpm):
 * - gcp `gotpm`: Google's AK certificate — a test CA under the `google-ekak-ca-root` pin id issues
 *   it in Google's profile. Real certificates: test/gcp (go-tpm-tools, vaportpm vectors).
 * - azure `az-snp-vtpm`: AMD's signature over the SNP report — the real report's fields are kept,
 *   REPORT_DATA is set to the hash of runtime data naming this swtpm's AK, and it is re-signed by
 *   a test VCEK (the real VCEK's AMD extensions) under a test ASK/ARK given to the verifier under
 *   the `amd-ark-milan` pin id. Azure IMDS THIM is a local HTTP server. Real evidence: test/azure.
 * - azure `az-tdx-vtpm`: not simulated — Intel's quoting enclave would have to sign a TDREPORT
 *   naming this swtpm's AK. The real TD quote (IMDS stand-in serves it for the real TDREPORT)
 *   passes every Intel link in the verifier, which then refuses exactly where the swtpm's AK
 *   enters: HCL_RUNTIME_DATA_DIGEST_MISMATCH. Real evidence end to end: test/azure.
 * - aws `nitrotpm`: the Nitro hypervisor's COSE signature — `nitro-tpm-attest` is a stand-in
 *   script printing a document signed under a test root given to the verifier under the
 *   `aws-nitro-root-g1` pin id (test/aws/testpki.ts); it checks the nonce file it is given holds
 *   the binding. Real documents: test/aws (vaportpm vector). Without the tool (the NSM vendor
 *   command): test/deploy/nitro-vendor.test.ts; here only that swtpm refuses it.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createPrimaryFromTemplate, detectPlatform, gatherAws, gatherAzure, gatherGcp, type GatherOptions, type Gathered } from '../../deploy/node/client/evidence.node.js';
import { encodeAttestation, type GotpmQuote } from '../../deploy/node/client/protobuf.js';
import { createToolRunner, openTpmSession, type TpmSession } from '../../deploy/node/client/tpm.node.js';
import { PinIds } from '../../providers/common/pins.js';
import type { ProviderName, TrustStore } from '../../providers/common/types.js';
import { loadTestTrust, readVector, vectorPath } from '../helpers/vectors.js';
import { INSTANCE, NOW, REGION, baseFields, indefinitePayload, makePki, signDocument } from '../aws/testpki.js';
import { GCE, GCE_ECC_AK_TEMPLATE, hclReportWithAk, layOutAzureSnp, layOutGce, makeAzureAk, nvDefineWrite } from './cloud-layouts.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { codeOf } from '../helpers/codes.js';

const run = promisify(execFile);
const SCRIPT = 'deploy/node/attest-join.sh';
const EVENT_LOG = vectorPath('go-tpm-tools/eventlogs/cos-101-amd-sev.bin');

interface Sent {
  provider: string;
  format: string;
  evidence: Record<string, unknown>;
}

/** The shell client's evidence for `binding` (dash, `--gather-only`). */
async function shellGather(tpm: Swtpm, platform: string, binding: Uint8Array, env: NodeJS.ProcessEnv = {}, args: string[] = ['--no-event-log']): Promise<Sent> {
  const { stdout } = await run('dash', [SCRIPT, '--gather-only', '--binding', Buffer.from(binding).toString('hex'), '--platform', platform, ...args], {
    env: { ...tpm.env, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as Sent;
}

const sessions: TpmSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.close().catch(() => undefined);
});
async function nodeOpts(tpm: Swtpm, binding: Uint8Array, o: Partial<GatherOptions> = {}): Promise<GatherOptions> {
  const session = await openTpmSession(createToolRunner(tpm.env));
  sessions.push(session);
  return { session, binding, fetch, eventLogPath: '', imdsBase: 'http://127.0.0.1:1', nitroTpmAttest: 'nitro-tpm-attest', log: () => undefined, ...o };
}
const sent = (g: Gathered): Sent => JSON.parse(JSON.stringify({ provider: g.provider, format: g.format, evidence: g.evidence })) as Sent;

function verifier(provider: ProviderName, trust: TrustStore, binding: Uint8Array, now = new Date()) {
  return (format: string, evidence: Record<string, unknown>) =>
    PROVIDER_FACTORIES[provider]!({}, { store: new MemoryStore() }).verify(format, evidence, { binding, now, trust, fetch, options: {} });
}

/** TPMS_ATTEST.extraData (TPM 2.0 Part 2 §10.12.12: magic, type, qualifiedSigner, extraData). */
function extraData(msg: Buffer): Buffer {
  const qs = msg.readUInt16BE(6);
  const l = msg.readUInt16BE(8 + qs);
  return msg.subarray(10 + qs, 10 + qs + l);
}

/** A local HTTP server; `handle` answers every request. */
async function httpServer(handle: (method: string, url: string, body: string, headers: Record<string, unknown>) => { status: number; body: string }): Promise<{ base: string; close: () => void }> {
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const r = handle(req.method ?? '', req.url ?? '', body, req.headers);
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(r.body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, close: () => srv.close() };
}

const pb = protobuf.parse(`syntax = "proto3"; package attest;
message PCRs { uint32 hash = 1; map<uint32, bytes> pcrs = 2; }
message Quote { bytes quote = 1; bytes raw_sig = 2; PCRs pcrs = 3; }
message Attestation { bytes ak_pub = 1; repeated Quote quotes = 2; bytes event_log = 3; bytes ak_cert = 6; repeated bytes intermediate_certs = 7; }`).root;
const Attestation = pb.lookupType('attest.Attestation');
interface Att {
  akPub: Uint8Array;
  quotes: Array<{ quote: Uint8Array; rawSig: Uint8Array; pcrs: { hash: number; pcrs: Record<string, Uint8Array> } }>;
  eventLog?: Uint8Array;
  akCert?: Uint8Array;
}
const decodeAtt = (ev: Record<string, unknown>): Att =>
  Attestation.toObject(Attestation.decode(Buffer.from(ev.attestation as string, 'base64')), { defaults: false }) as unknown as Att;

describe('gcp (gotpm): shell and Node gatherers on the GCE NV layout', () => {
  let tpm: Swtpm;
  let trust: TrustStore;
  beforeAll(async () => {
    tpm = await startSwtpm({ banks: 'sha1,sha256' });
    // The AK the template makes (deterministic), certified as Google certifies it.
    ({ trust } = await layOutGce(tpm, async () => {
      const o = await nodeOpts(tpm, new Uint8Array(32));
      await createPrimaryFromTemplate(o.session, GCE_ECC_AK_TEMPLATE, 'e', 'probe-ak');
      await run('tpm2_readpublic', ['-c', o.session.file('probe-ak.ctx'), '-f', 'pem', '-o', o.session.file('ak.pem')], { env: tpm.env });
      await o.session.flush();
      return readFileSync(o.session.file('ak.pem'), 'utf8');
    }));
  }, 60_000);
  afterAll(async () => tpm?.stop());

  it('the same attest.Attestation from both: AK, certificate, event log, banks, PCRs, extraData; the shell bytes are the Node encoder’s', async () => {
    const binding = randomBytes(32);
    const sh = await shellGather(tpm, 'gcp', binding, {}, ['--event-log', EVENT_LOG]);
    const nd = sent(await gatherGcp(await nodeOpts(tpm, binding, { eventLogPath: EVENT_LOG })));
    expect(sh.provider).toBe('gcp');
    expect(sh.format).toBe('gotpm');
    expect(Object.keys(sh.evidence)).toEqual(Object.keys(nd.evidence));
    const [a, b] = [decodeAtt(sh.evidence), decodeAtt(nd.evidence)];
    expect(Buffer.from(a.akPub).equals(Buffer.from(b.akPub))).toBe(true);
    expect(Buffer.from(a.akCert!).equals(Buffer.from(b.akCert!))).toBe(true);
    expect(Buffer.from(a.eventLog!).equals(readVector('go-tpm-tools/eventlogs/cos-101-amd-sev.bin'))).toBe(true);
    expect(Buffer.from(b.eventLog!).equals(Buffer.from(a.eventLog!))).toBe(true);
    expect(a.quotes.map((q) => q.pcrs.hash)).toEqual([4, 11]);
    expect(b.quotes.map((q) => q.pcrs.hash)).toEqual([4, 11]);
    a.quotes.forEach((q, i) => {
      expect(extraData(Buffer.from(q.quote)).equals(binding)).toBe(true);
      const other = b.quotes[i]!.pcrs.pcrs;
      expect(Object.keys(q.pcrs.pcrs)).toHaveLength(24);
      for (const [k, v] of Object.entries(q.pcrs.pcrs)) expect(Buffer.from(v).equals(Buffer.from(other[k]!))).toBe(true);
    });
    // The shell's protobuf is byte for byte what the Node encoder writes for the same parts.
    const bank = { 4: 'sha1', 11: 'sha256', 12: 'sha384' } as const;
    const again = encodeAttestation({
      akPub: a.akPub,
      quotes: a.quotes.map(
        (q): GotpmQuote => ({ bank: bank[q.pcrs.hash as 4 | 11 | 12], quote: q.quote, rawSig: q.rawSig, pcrs: new Map(Object.entries(q.pcrs.pcrs).map(([k, v]) => [Number(k), v])) }),
      ),
      eventLog: a.eventLog!,
      akCert: a.akCert!,
    });
    expect(Buffer.from(again).equals(Buffer.from(sh.evidence.attestation as string, 'base64'))).toBe(true);
  });

  it('the shell’s and the Node client’s evidence are accepted by the gcp verifier with the certificate’s identity; another binding is NONCE_MISMATCH', async () => {
    const binding = randomBytes(32);
    const verify = verifier('gcp', trust, binding);
    for (const ev of [(await shellGather(tpm, 'gcp', binding)).evidence, sent(await gatherGcp(await nodeOpts(tpm, binding))).evidence]) {
      const c = await verify('gotpm', ev);
      expect(c.identity).toMatchObject({ cloud: 'gcp', account: GCE.project, zone: GCE.zone, instanceId: GCE.instanceId.toString(), instanceName: GCE.instanceName });
      expect(c.tpm?.akTrust).toBe('cloud-certified');
    }
    const replay = (await shellGather(tpm, 'gcp', randomBytes(32))).evidence;
    expect(await codeOf(verify('gotpm', replay))).toBe('NONCE_MISMATCH');
  });
});

describe('azure (az-snp-vtpm): shell and Node gatherers on the Azure SEV-SNP layout', () => {
  let tpm: Swtpm;
  let lay: Awaited<ReturnType<typeof layOutAzureSnp>>;
  let imds: { base: string; close: () => void };
  let thimCalls = 0;
  beforeAll(async () => {
    tpm = await startSwtpm();
    lay = await layOutAzureSnp(tpm);
    imds = await httpServer((method, url, _body, headers) => {
      if (method !== 'GET' || url !== '/metadata/THIM/amd/certification' || headers.metadata !== 'true') return { status: 404, body: '{}' };
      thimCalls++;
      return { status: 200, body: JSON.stringify({ vcekCert: lay.vcekPem, certificateChain: lay.chainPem, tcbm: 'DB18000000000004' }) };
    });
  }, 60_000);
  afterAll(async () => {
    imds?.close();
    await tpm?.stop();
  });

  it('the same evidence from both (HCL report, VCEK and chain from THIM, 24 PCRs, extraData, no event log); the binding is written to the HCL user data', async () => {
    const binding = randomBytes(32);
    const sh = await shellGather(tpm, 'azure', binding, { ATTEST_IMDS: imds.base }, ['--event-log', EVENT_LOG]);
    const ud = (await run('tpm2_nvread', ['0x01400002', '-C', 'o', '-s', '64'], { env: tpm.env, encoding: 'buffer' })).stdout;
    expect(Buffer.from(ud).equals(Buffer.concat([binding, Buffer.alloc(32)]))).toBe(true);
    const nd = sent(await gatherAzure(await nodeOpts(tpm, binding, { imdsBase: imds.base, eventLogPath: EVENT_LOG })));
    expect(thimCalls).toBe(2);
    expect([sh.provider, sh.format]).toEqual(['azure', 'az-snp-vtpm']);
    expect([nd.provider, nd.format]).toEqual(['azure', 'az-snp-vtpm']);
    expect(Object.keys(sh.evidence)).toEqual(['version', 'tpm_quote', 'hcl_report', 'vcek', 'vcek_chain']);
    expect(Object.keys(nd.evidence)).toEqual(Object.keys(sh.evidence));
    type Ev = { version: number; tpm_quote: { signature: string; message: string; pcrs: string[] }; hcl_report: string; vcek: string; vcek_chain: string };
    const [a, b] = [sh.evidence as unknown as Ev, nd.evidence as unknown as Ev];
    expect(a.version).toBe(1);
    expect(a.hcl_report).toBe(b.hcl_report);
    expect(Buffer.from(a.hcl_report, 'base64url').equals(lay.hcl)).toBe(true);
    expect(a.vcek).toBe(b.vcek);
    expect(a.vcek_chain).toBe(lay.chainPem);
    expect(b.vcek_chain).toBe(lay.chainPem);
    expect(a.tpm_quote.pcrs).toEqual(b.tpm_quote.pcrs);
    expect(a.tpm_quote.signature).toMatch(/^[0-9a-f]{512}$/);
    for (const q of [a, b]) expect(extraData(Buffer.from(q.tpm_quote.message, 'hex')).equals(binding)).toBe(true);
  });

  it('both clients’ evidence is accepted by the azure verifier, naming the VM the runtime data names; another binding is NONCE_MISMATCH', async () => {
    const binding = randomBytes(32);
    const verify = verifier('azure', lay.trust, binding);
    for (const ev of [
      (await shellGather(tpm, 'azure', binding, { ATTEST_IMDS: imds.base })).evidence,
      sent(await gatherAzure(await nodeOpts(tpm, binding, { imdsBase: imds.base }))).evidence,
    ]) {
      const c = await verify('az-snp-vtpm', ev);
      expect(c.platform?.tee).toBe('sev-snp');
      expect(c.identity).toMatchObject({ cloud: 'azure', instanceId: lay.vmUniqueId.toLowerCase(), proven: ['instanceId'] });
      expect(c.tpm?.akTrust).toBe('hardware-report');
    }
    const replay = (await shellGather(tpm, 'azure', randomBytes(32), { ATTEST_IMDS: imds.base })).evidence;
    expect(await codeOf(verify('az-snp-vtpm', replay))).toBe('NONCE_MISMATCH');
  });

  it('THIM unreachable: both fail with JOIN_EVIDENCE_UNAVAILABLE', async () => {
    const binding = randomBytes(32);
    const e = await shellGather(tpm, 'azure', binding, { ATTEST_IMDS: 'http://127.0.0.1:1' }).catch((x: { stderr: string; code: number }) => x);
    expect((e as { code: number }).code).toBe(1);
    expect((e as { stderr: string }).stderr).toContain('JOIN_EVIDENCE_UNAVAILABLE');
    await expect(gatherAzure(await nodeOpts(tpm, binding, { imdsBase: 'http://127.0.0.1:1' }))).rejects.toMatchObject({ code: 'JOIN_EVIDENCE_UNAVAILABLE' });
  });
});

describe('azure (az-tdx-vtpm): shell and Node gatherers on the Azure TDX layout', () => {
  let tpm: Swtpm;
  let hcl: Buffer;
  let imds: { base: string; close: () => void };
  const tdQuote = Buffer.from(readVector('trustee/az-tdx-vtpm/td-quote.bin'));
  const posted: string[] = [];
  beforeAll(async () => {
    tpm = await startSwtpm();
    ({ hcl } = hclReportWithAk('trustee/az-tdx-vtpm/hcl-report.bin', makeAzureAk(tpm)));
    nvDefineWrite(tpm, 0x01400001, hcl);
    imds = await httpServer((method, url, body, headers) => {
      if (method !== 'POST' || url !== '/acc/tdquote' || headers['content-type'] !== 'application/json') return { status: 404, body: '{}' };
      posted.push((JSON.parse(body) as { report: string }).report);
      return { status: 200, body: JSON.stringify({ quote: tdQuote.toString('base64url') }) };
    });
  }, 60_000);
  afterAll(async () => {
    imds?.close();
    await tpm?.stop();
  });

  it('both send the TDREPORT from the HCL report to IMDS and the same az-tdx-vtpm evidence', async () => {
    const binding = randomBytes(32);
    const sh = await shellGather(tpm, 'azure', binding, { ATTEST_IMDS: imds.base });
    const nd = sent(await gatherAzure(await nodeOpts(tpm, binding, { imdsBase: imds.base })));
    const tdReport = hcl.subarray(32, 32 + 1024).toString('base64url');
    expect(posted).toEqual([tdReport, tdReport]);
    expect([sh.provider, sh.format]).toEqual(['azure', 'az-tdx-vtpm']);
    expect([nd.provider, nd.format]).toEqual(['azure', 'az-tdx-vtpm']);
    expect(Object.keys(sh.evidence)).toEqual(['version', 'tpm_quote', 'hcl_report', 'td_quote']);
    expect(Object.keys(nd.evidence)).toEqual(Object.keys(sh.evidence));
    type Ev = { tpm_quote: { message: string; pcrs: string[] }; hcl_report: string; td_quote: string };
    const [a, b] = [sh.evidence as unknown as Ev, nd.evidence as unknown as Ev];
    expect(a.hcl_report).toBe(b.hcl_report);
    expect(a.td_quote).toBe(b.td_quote);
    expect(Buffer.from(a.td_quote, 'base64url').equals(tdQuote)).toBe(true);
    expect(a.tpm_quote.pcrs).toEqual(b.tpm_quote.pcrs);
    for (const q of [a, b]) expect(extraData(Buffer.from(q.tpm_quote.message, 'hex')).equals(binding)).toBe(true);
  });

  it('the verifier takes every Intel link of the real TD quote and refuses where the swtpm AK enters: HCL_RUNTIME_DATA_DIGEST_MISMATCH', async () => {
    const binding = randomBytes(32);
    const trust = await loadTestTrust([PinIds.INTEL_SGX_ROOT]);
    // The time the real quote's PCK chain is valid at (test/azure pins the same).
    const verify = verifier('azure', trust, binding, new Date('2025-06-01T00:00:00Z'));
    for (const ev of [
      (await shellGather(tpm, 'azure', binding, { ATTEST_IMDS: imds.base })).evidence,
      sent(await gatherAzure(await nodeOpts(tpm, binding, { imdsBase: imds.base }))).evidence,
    ]) {
      expect(await codeOf(verify('az-tdx-vtpm', ev))).toBe('HCL_RUNTIME_DATA_DIGEST_MISMATCH');
    }
  });
});

describe('aws (nitrotpm): shell and Node gatherers with nitro-tpm-attest', () => {
  let tpm: Swtpm;
  let dir: string;
  beforeAll(async () => {
    tpm = await startSwtpm();
    dir = mkdtempSync(join(tmpdir(), 'nitro-'));
  });
  afterAll(async () => tpm?.stop());

  /** Stand-in for AWS's tool: `--nonce FILE`; prints the document only when FILE holds `binding`. */
  async function tool(binding: Uint8Array): Promise<{ path: string; doc: Buffer; trust: TrustStore }> {
    const pki = await makePki();
    const doc = Buffer.from(await signDocument(indefinitePayload(baseFields(pki, {}, binding)), pki.leafKeys));
    const d = mkdtempSync(join(dir, 't-'));
    writeFileSync(join(d, 'nonce'), binding);
    writeFileSync(join(d, 'doc'), doc);
    const path = join(d, 'nitro-tpm-attest');
    writeFileSync(path, `#!/bin/sh\n[ "$#" = 2 ] && [ "$1" = --nonce ] && cmp -s "$2" '${d}/nonce' || { echo 'wrong nonce' >&2; exit 1; }\ncat '${d}/doc'\n`);
    chmodSync(path, 0o755);
    return { path, doc, trust: pki.trust };
  }

  it('identical evidence from both, accepted by the aws verifier with the instance the chain names; another binding is NONCE_MISMATCH', async () => {
    const binding = randomBytes(32);
    const t = await tool(binding);
    const sh = await shellGather(tpm, 'aws', binding, { ATTEST_NITRO_TPM_ATTEST: t.path });
    const nd = sent(await gatherAws(await nodeOpts(tpm, binding, { nitroTpmAttest: t.path })));
    expect(sh).toEqual(nd);
    expect(sh).toEqual({ provider: 'aws', format: 'nitrotpm', evidence: { document: t.doc.toString('base64') } });
    const c = await verifier('aws', t.trust, binding, NOW)('nitrotpm', sh.evidence);
    expect(c.identity).toMatchObject({ cloud: 'aws', instanceId: INSTANCE, region: REGION });
    expect(await codeOf(verifier('aws', t.trust, randomBytes(32), NOW)('nitrotpm', sh.evidence))).toBe('NONCE_MISMATCH');
  });

  it('without the tool both send the NitroTPM vendor command, which swtpm does not know: JOIN_NITRO_COMMAND_FAILED (the 8 KiB buffer alone: JOIN_TPM_TOOL_FAILED)', async () => {
    // The full exchange against a stand-in NitroTPM: test/deploy/nitro-vendor.test.ts. Here the
    // plain swtpm: it refuses an 8 KiB NV index (libtpms caps them at 2 KiB), and with a 2 KiB
    // buffer it answers the vendor command TPM_RC_COMMAND_CODE, as any TPM but a NitroTPM does.
    const binding = randomBytes(32);
    const e = (await shellGather(tpm, 'aws', binding, { ATTEST_NITRO_TPM_ATTEST: join(dir, 'absent') }).catch((x: unknown) => x)) as { code: number; stderr: string };
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('JOIN_TPM_TOOL_FAILED');
    const f = (await shellGather(tpm, 'aws', binding, { ATTEST_NITRO_TPM_ATTEST: join(dir, 'absent'), ATTEST_NITRO_NV_SIZE: '2048' }).catch((x: unknown) => x)) as { code: number; stderr: string };
    expect(f.code).toBe(1);
    expect(f.stderr).toContain('JOIN_NITRO_COMMAND_FAILED');
    expect(f.stderr).toContain('0x00000143');
    expect(await codeOf(gatherAws(await nodeOpts(tpm, binding, { nitroTpmAttest: join(dir, 'absent'), nitroTcti: tpm.tcti })))).toBe('JOIN_TPM_TOOL_FAILED');
    expect(await codeOf(gatherAws(await nodeOpts(tpm, binding, { nitroTpmAttest: join(dir, 'absent'), nitroTcti: tpm.tcti, nitroNvSize: 2048 })))).toBe('JOIN_NITRO_COMMAND_FAILED');
    // Nothing left behind in the TPM's NV.
    expect(await tpm.tpm2('tpm2_getcap', ['handles-nv-index'])).not.toMatch(/0x10000/);
  });
});

describe('--platform auto: the shell decides as the Node client does (DMI strings only)', () => {
  let tpm: Swtpm;
  beforeAll(async () => {
    tpm = await startSwtpm();
  });
  afterAll(async () => tpm?.stop());

  it.each([
    ['Microsoft Corporation', 'Virtual Machine', 'Microsoft Corporation'],
    ['Google', 'Google Compute Engine', 'Google'],
    ['Amazon EC2', 'm6i.large', 'Amazon EC2'],
    ['QEMU', 'Standard PC (Q35 + ICH9, 2009)', 'EFI Development Kit II / OVMF'],
    ['Microsoft Corporation', 'Surface Laptop', 'Microsoft Corporation'],
  ])('%s / %s', async (vendor, product, bios) => {
    const dmi = mkdtempSync(join(tmpdir(), 'dmi-'));
    writeFileSync(join(dmi, 'sys_vendor'), vendor + '\n');
    writeFileSync(join(dmi, 'product_name'), product + '\n');
    writeFileSync(join(dmi, 'bios_vendor'), bios + '\n');
    const want = await detectPlatform(dmi);
    // The gatherer may then fail (this swtpm has no cloud layout); the decision is logged first.
    const r = await shellGather(tpm, 'auto', randomBytes(32), { ATTEST_DMI_DIR: dmi, ATTEST_NITRO_TPM_ATTEST: join(dmi, 'absent'), ATTEST_IMDS: 'http://127.0.0.1:1' }).then(
      (s) => ({ stderr: '', sent: s }),
      (x: { stderr: string }) => ({ stderr: x.stderr, sent: undefined }),
    );
    if (r.sent) expect(r.sent.provider).toBe(want === 'generic' ? 'tpm' : want);
    else expect(r.stderr).toContain(`platform: ${want} `);
  });
});
