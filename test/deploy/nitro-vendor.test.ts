/**
 * AWS `nitrotpm` evidence without `nitro-tpm-attest`: both join clients (the shell client under
 * dash, `--gather-only`; the Node client's gatherAws) send the NitroTPM's NSM vendor command
 * (TPM2_CC 0x20000001) themselves through tpm2-tools, and the production `aws` verifier takes
 * the document they bring back.
 *
 * Simulated, said plainly (test/deploy/nitro-proxy.ts): the NitroTPM's side of the vendor
 * command and its 8 KiB message buffer — a proxy between the tools and swtpm holds the clients'
 * NV buffer and answers the vendor command with a COSE document signed under a test Nitro chain
 * (test/aws/testpki.ts, pinned under `aws-nitro-root-g1` in a test trust store), carrying the
 * nonce (and public key) the client wrote into the buffer. Everything else reaches swtpm.
 * Real: the command and NV bytes the clients build, the tools, the clients' response parsing,
 * the verifier.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { encode as cborEncode } from 'cborg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { gatherAws, type GatherOptions } from '../../deploy/node/client/evidence.node.js';
import { checkVendorResponse, nsmAttestationRequest, nsmVendorCommand, parseNsmResponse } from '../../deploy/node/client/nitro.js';
import { createToolRunner, openTpmSession, type TpmSession } from '../../deploy/node/client/tpm.node.js';
import type { TrustStore } from '../../providers/common/types.js';
import { INSTANCE, NOW, REGION, baseFields, indefinitePayload, makePki, signDocument } from '../aws/testpki.js';
import { startNitroProxy, type NitroProxy, type NsmRequest, type VendorAnswer } from './nitro-proxy.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { codeOf } from '../helpers/codes.js';

const run = promisify(execFile);
const SCRIPT = 'deploy/node/attest-join.sh';

const attestation = (doc: Uint8Array): Uint8Array => cborEncode(new Map([['Attestation', new Map([['document', doc]])]]));

describe('nitro.ts: the vendor command and the NSM answer, byte for byte', () => {
  it('builds the request and the command', () => {
    const req = nsmAttestationRequest(new Uint8Array(32).fill(1));
    expect(Buffer.from(req).toString('hex')).toBe(
      'a16b4174746573746174696f6ea369757365725f64617461f6656e6f6e63655820' + '01'.repeat(32) + '6a7075626c69635f6b6579f6',
    );
    const cmd = nsmVendorCommand(0x01000002, new Uint8Array(32).fill(0xaa));
    expect(Buffer.from(cmd).toString('hex')).toBe('80020000003f20000001' + '01000002'.repeat(2) + '00000029' + '40000009' + '0000' + '00' + '0020' + 'aa'.repeat(32));
  });
  it('parses the answer with bounds checks', () => {
    const doc = randomBytes(300);
    const buf = new Uint8Array(8192);
    buf.set(attestation(doc));
    expect(Buffer.from(parseNsmResponse(buf))).toEqual(doc);
    const cut = attestation(doc).subarray(0, 200);
    expect(() => parseNsmResponse(cut)).toThrow(expect.objectContaining({ code: 'JOIN_NITRO_RESPONSE_INVALID' }));
    expect(() => parseNsmResponse(new Uint8Array(8192))).toThrow(expect.objectContaining({ code: 'JOIN_NITRO_RESPONSE_INVALID' }));
    expect(() => parseNsmResponse(cborEncode(new Map([['Error', 'InvalidArgument']])))).toThrow(expect.objectContaining({ code: 'JOIN_NITRO_NSM_ERROR' }));
    expect(() => parseNsmResponse(cborEncode(new Map([['Attestation', new Map([['document', new Uint8Array(0)]])]])))).toThrow(
      expect.objectContaining({ code: 'JOIN_NITRO_RESPONSE_INVALID' }),
    );
  });
  it('checks the TPM frame', () => {
    expect(() => checkVendorResponse(Buffer.from('80020000001300000000000000000000010000', 'hex'))).not.toThrow();
    for (const bad of ['8002000000', '12340000000a00000000', '80010000000a00000143', '80020000002000000000']) {
      expect(() => checkVendorResponse(Buffer.from(bad, 'hex')), bad).toThrow(expect.objectContaining({ code: 'JOIN_NITRO_COMMAND_FAILED' }));
    }
  });
});

describe('aws (nitrotpm) without nitro-tpm-attest: both clients send the vendor command', () => {
  let tpm: Swtpm;
  let proxy: NitroProxy;
  let trust: TrustStore;
  let answer: (r: NsmRequest) => VendorAnswer | Promise<VendorAnswer>;
  const absent = join(mkdtempSync(join(tmpdir(), 'nitro-vendor-')), 'nitro-tpm-attest');
  const sessions: TpmSession[] = [];

  /** The Nitro hypervisor's part, simulated: a document for the nonce and key in the request. */
  async function signedFor(r: NsmRequest): Promise<Uint8Array> {
    const pki = await makePki();
    trust = pki.trust;
    return signDocument(indefinitePayload(baseFields(pki, { public_key: r.publicKey }, r.nonce ?? new Uint8Array(0))), pki.leafKeys);
  }
  beforeAll(async () => {
    tpm = await startSwtpm();
    proxy = await startNitroProxy(tpm.port, (r) => answer(r));
  });
  afterAll(async () => {
    for (const s of sessions) await s.close().catch(() => undefined);
    await proxy?.close();
    await tpm?.stop();
  });

  async function shell(binding: Uint8Array): Promise<{ code: number; stdout: string; stderr: string }> {
    return run('dash', [SCRIPT, '--gather-only', '--binding', Buffer.from(binding).toString('hex'), '--platform', 'aws'], {
      env: { ...proxy.env, ATTEST_NITRO_TPM_ATTEST: absent },
      encoding: 'utf8',
    }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  }
  async function node(binding: Uint8Array, o: Partial<GatherOptions> = {}) {
    const session = await openTpmSession(createToolRunner(proxy.env));
    sessions.push(session);
    return gatherAws({ session, binding, fetch, eventLogPath: '', imdsBase: 'http://127.0.0.1:1', nitroTpmAttest: absent, nitroTcti: proxy.tcti, log: () => undefined, ...o });
  }
  const verify = (binding: Uint8Array, evidence: Record<string, unknown>) =>
    PROVIDER_FACTORIES.aws!({}, { store: new MemoryStore() }).verify('nitrotpm', evidence, { binding, now: NOW, trust, fetch, options: {} });

  it('the shell client: the document the NSM signed for its nonce, accepted by the aws verifier; the buffer is undefined afterwards', async () => {
    answer = async (r) => ({ nsm: attestation(await signedFor(r)) });
    const binding = randomBytes(32);
    const r = await shell(binding);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const sent = JSON.parse(r.stdout) as { provider: string; format: string; evidence: Record<string, unknown> };
    expect(sent.format).toBe('nitrotpm');
    const req = proxy.requests.at(-1)!;
    expect(Buffer.from(req.nonce!)).toEqual(binding);
    expect(req.userData).toBeNull();
    expect(req.publicKey).toBeNull();
    const c = await verify(binding, sent.evidence);
    expect(c.identity).toMatchObject({ cloud: 'aws', instanceId: INSTANCE, region: REGION });
    expect(await codeOf(verify(randomBytes(32), sent.evidence))).toBe('NONCE_MISMATCH');
    expect(proxy.defined()).toEqual([]);
  });

  it('the Node client: the same, and with a recipient key the key reaches the NSM request and the document', async () => {
    answer = async (r) => ({ nsm: attestation(await signedFor(r)) });
    const binding = randomBytes(32);
    const g = await node(binding);
    expect(g.format).toBe('nitrotpm');
    expect((await verify(binding, g.evidence)).identity).toMatchObject({ cloud: 'aws', instanceId: INSTANCE, region: REGION });
    expect(proxy.defined()).toEqual([]);
    const spki = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    const g2 = await node(binding, { recipientSpki: new Uint8Array(spki) });
    expect(Buffer.from(proxy.requests.at(-1)!.publicKey!)).toEqual(spki);
    await verify(binding, g2.evidence);
  });

  it('both clients send identical NSM requests for one binding', async () => {
    answer = async (r) => ({ nsm: attestation(await signedFor(r)) });
    const binding = randomBytes(32);
    expect((await shell(binding)).code).toBe(0);
    const a = proxy.requests.at(-1)!;
    await node(binding);
    expect(proxy.requests.at(-1)).toEqual(a);
  });

  const cases: Array<[string, string, () => VendorAnswer | Promise<VendorAnswer>]> = [
    // The NSM's answer cut short: the document's length runs past the 8 KiB buffer.
    ['a truncated NSM answer', 'JOIN_NITRO_RESPONSE_INVALID', () => ({ nsm: Buffer.concat([Buffer.from('a16b4174746573746174696f6ea168646f63756d656e745a00004000', 'hex'), randomBytes(100)]) })],
    // Not CBOR of the NSM's shape at all.
    ['a garbled NSM answer', 'JOIN_NITRO_RESPONSE_INVALID', () => ({ nsm: randomBytes(64).fill(0x9f, 0, 1) })],
    ["the NSM's own error", 'JOIN_NITRO_NSM_ERROR', () => ({ nsm: cborEncode(new Map([['Error', 'InvalidArgument']])) })],
    // A TPM response frame with a wrong tag; one whose size field lies (then the line drops).
    ['a garbled TPM response', 'JOIN_NITRO_COMMAND_FAILED', () => ({ tpm: Buffer.from('c4c40000000a00000000', 'hex') })],
    ['a TPM response cut short', 'JOIN_NITRO_COMMAND_FAILED', () => ({ tpm: Buffer.from('80020000001300000000', 'hex'), close: true })],
    // swtpm itself: not a NitroTPM → TPM_RC_COMMAND_CODE.
    ['a TPM without the command (swtpm answers)', 'JOIN_NITRO_COMMAND_FAILED', () => 'forward'],
  ];
  it.each(cases)('%s → %s from both clients, buffer undefined', async (_name, code, a) => {
    answer = a;
    const binding = randomBytes(32);
    const r = await shell(binding);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(code);
    expect(proxy.defined()).toEqual([]);
    expect(await codeOf(node(binding))).toBe(code);
    expect(proxy.defined()).toEqual([]);
  });
});
