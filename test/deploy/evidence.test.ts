/**
 * Cloud gatherers on a real TPM (swtpm) laid out like each cloud's vTPM: GCE's AK template and
 * certificate in NV (0x01c10003/0x01c10002, 0x01c10001/0x01c10000), Azure's HCL report at
 * 0x01400001 and persistent AK at 0x81000003 with a local HTTP server speaking the IMDS THIM
 * answer (`GET /metadata/THIM/amd/certification`, JSON {vcekCert, certificateChain, tcbm});
 * AWS through a stand-in `nitro-tpm-attest` (the real tool exists only on EC2). Quotes are
 * verified with tpm2_checkquote and the gotpm protobuf decoded with protobufjs.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, randomBytes } from 'node:crypto';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherAws, gatherAzure, gatherGcp, detectPlatform, splitDer, stripNvPadding, NV, type GatherOptions } from '../../deploy/node/client/evidence.node.js';
import { createToolRunner, openTpmSession, type TpmSession } from '../../deploy/node/client/tpm.node.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls } from './test-broker.js';

const root = protobuf.parse(`syntax = "proto3"; package attest;
message PCRs { uint32 hash = 1; map<uint32, bytes> pcrs = 2; }
message Quote { bytes quote = 1; bytes raw_sig = 2; PCRs pcrs = 3; }
message Attestation { bytes ak_pub = 1; repeated Quote quotes = 2; bytes event_log = 3; bytes ak_cert = 6; repeated bytes intermediate_certs = 7; }`).root;
const Attestation = root.lookupType('attest.Attestation');

function extraData(msg: Buffer): Buffer {
  const qs = msg.readUInt16BE(6);
  const l = msg.readUInt16BE(8 + qs);
  return msg.subarray(10 + qs, 10 + qs + l);
}

const d = describe;

d('cloud evidence gatherers (swtpm)', () => {
  let tpm: Swtpm;
  let work: string;
  const binding = randomBytes(32);
  const sessions: TpmSession[] = [];
  const opts = async (o: Partial<GatherOptions> = {}): Promise<GatherOptions> => {
    const session = await openTpmSession(createToolRunner(tpm.env));
    sessions.push(session);
    return { session, binding, fetch, eventLogPath: '/nonexistent', imdsBase: 'http://127.0.0.1:1', nitroTpmAttest: 'nitro-tpm-attest', log: () => undefined, ...o };
  };
  const tpm2 = (tool: string, args: string[]): Buffer => execFileSync(tool, args, { env: tpm.env });
  const nvWrite = (index: number, data: Uint8Array): void => {
    const f = join(work, `nv-${index.toString(16)}`);
    writeFileSync(f, data);
    const h = '0x' + index.toString(16);
    tpm2('tpm2_nvdefine', [h, '-C', 'o', '-s', String(data.length), '-a', 'ownerread|ownerwrite|authread|authwrite']);
    tpm2('tpm2_nvwrite', [h, '-C', 'o', '-i', f]);
  };
  const checkQuote = (akTpmtPublic: Uint8Array, msg: Uint8Array, sig: Uint8Array): void => {
    const dir = mkdtempSync(join(work, 'cq-'));
    const size = Buffer.alloc(2);
    size.writeUInt16BE(akTpmtPublic.length);
    writeFileSync(join(dir, 'ak.pub'), Buffer.concat([size, akTpmtPublic]));
    writeFileSync(join(dir, 'm'), msg);
    writeFileSync(join(dir, 's'), sig);
    tpm2('tpm2_checkquote', ['-u', join(dir, 'ak.pub'), '-m', join(dir, 'm'), '-s', join(dir, 's'), '-g', 'sha256', '-q', binding.toString('hex')]);
  };

  beforeAll(async () => {
    tpm = await startSwtpm({ banks: 'sha1,sha256' });
    work = mkdtempSync(join(tmpdir(), 'gather-'));
  });
  afterAll(async () => {
    for (const s of sessions) await s.close();
    await tpm?.stop();
  });

  it('GCP: makes the AK from the NV template, quotes every bank, emits gotpm protobuf', async () => {
    // An ECC P-256 restricted signing template, zero-filled unique as go-tpm-tools uses:
    // type ECC, nameAlg SHA-256, attrs fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|
    // restricted|sign (0x00050072), empty policy, null sym, ECDSA-SHA256, NIST P-256, null KDF.
    const t = Buffer.from('0023000b00050072000000100018000b000300100020' + '00'.repeat(32) + '0020' + '00'.repeat(32), 'hex');
    nvWrite(NV.GCE_AK_TEMPLATE_ECC, t);
    const tls = makeTls('gce-ak');
    const certDer = new X509Certificate(tls.caPem).raw;
    nvWrite(NV.GCE_AK_CERT_ECC, Buffer.concat([certDer, Buffer.alloc(40)])); // NV padding
    const g = await gatherGcp(await opts());
    expect(g.format).toBe('gotpm');
    const a = Attestation.toObject(Attestation.decode(Buffer.from(g.evidence.attestation as string, 'base64'))) as {
      akPub: Uint8Array;
      quotes: Array<{ quote: Uint8Array; rawSig: Uint8Array; pcrs: { hash: number; pcrs: Record<string, Uint8Array> } }>;
      akCert: Uint8Array;
    };
    // The AK carries the template's type, nameAlg, attributes and parameters.
    expect(Buffer.from(a.akPub).subarray(0, 22).equals(t.subarray(0, 22))).toBe(true);
    expect(a.quotes.map((q) => q.pcrs.hash).sort((x, y) => x - y)).toEqual([4, 11]);
    for (const q of a.quotes) {
      expect(extraData(Buffer.from(q.quote)).equals(binding)).toBe(true);
      expect(Object.keys(q.pcrs.pcrs)).toHaveLength(24);
      checkQuote(a.akPub, q.quote, q.rawSig);
    }
    expect(Buffer.from(a.akCert).equals(certDer)).toBe(true);
    // Deterministic: the same template makes the same primary key again.
    const again = await gatherGcp(await opts());
    const a2 = Attestation.toObject(Attestation.decode(Buffer.from(again.evidence.attestation as string, 'base64'))) as { akPub: Uint8Array };
    expect(Buffer.from(a2.akPub).equals(Buffer.from(a.akPub))).toBe(true);
  });

  it('Azure: binding into HCL user data, quote with the persistent AK, HCL report, VCEK from THIM', async () => {
    const dir = mkdtempSync(join(work, 'az-'));
    const env = tpm.env;
    execFileSync('tpm2_createek', ['-c', join(dir, 'ek.ctx'), '-G', 'rsa', '-u', join(dir, 'ek.pub')], { env });
    execFileSync('tpm2_flushcontext', ['-t'], { env });
    execFileSync('tpm2_createak', ['-C', join(dir, 'ek.ctx'), '-c', join(dir, 'ak.ctx'), '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', join(dir, 'ak.pub'), '-f', 'tss'], { env });
    execFileSync('tpm2_flushcontext', ['-t'], { env });
    execFileSync('tpm2_flushcontext', ['-s'], { env });
    execFileSync('tpm2_evictcontrol', ['-C', 'o', '-c', join(dir, 'ak.ctx'), '0x81000003'], { env });
    execFileSync('tpm2_flushcontext', ['-t'], { env });
    const hcl = randomBytes(1300);
    hcl.writeUInt32LE(2, 1224); // IGVM report_type: SEV-SNP (the gatherer picks the format by it)
    nvWrite(NV.AZURE_HCL_REPORT, hcl);
    const tls = makeTls('vcek');
    let seenMetadataHeader = false;
    const imds: Server = createServer((req, res) => {
      seenMetadataHeader = req.headers.metadata === 'true';
      if (req.url !== '/metadata/THIM/amd/certification') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ vcekCert: tls.caPem, certificateChain: tls.caPem, tcbm: '0B00000000000000' }));
    });
    await new Promise<void>((r) => imds.listen(0, '127.0.0.1', r));
    try {
      const g = await gatherAzure(await opts({ imdsBase: `http://127.0.0.1:${(imds.address() as { port: number }).port}` }));
      expect(seenMetadataHeader).toBe(true);
      expect(g.format).toBe('az-snp-vtpm');
      const ev = g.evidence as { version: number; tpm_quote: { signature: string; message: string; pcrs: string[] }; hcl_report: string; vcek: string; vcek_chain: string };
      expect(ev.version).toBe(1);
      expect(ev.tpm_quote.pcrs).toHaveLength(24);
      expect(ev.tpm_quote.signature).toMatch(/^[0-9a-f]{512}$/); // bare RSA-2048 signature, as Azure's format
      expect(extraData(Buffer.from(ev.tpm_quote.message, 'hex')).equals(binding)).toBe(true);
      expect(Buffer.from(ev.hcl_report, 'base64url').equals(hcl)).toBe(true);
      expect(Buffer.from(ev.vcek, 'base64url').equals(new X509Certificate(tls.caPem).raw)).toBe(true);
      // The binding went into the HCL user-data index.
      const ud = execFileSync('tpm2_nvread', ['0x01400002', '-C', 'o', '-s', '64'], { env });
      expect(ud.subarray(0, 32).equals(binding)).toBe(true);
      expect(ud.subarray(32).every((b) => b === 0)).toBe(true);
    } finally {
      imds.close();
    }
  });

  it('Azure without an HCL report fails with JOIN_EVIDENCE_UNAVAILABLE', async () => {
    const t2 = await startSwtpm();
    try {
      const session = await openTpmSession(createToolRunner(t2.env));
      sessions.push(session);
      await expect(gatherAzure({ ...(await opts()), session })).rejects.toMatchObject({ code: 'JOIN_EVIDENCE_UNAVAILABLE' });
    } finally {
      await t2.stop();
    }
  });

  it('AWS: runs nitro-tpm-attest with the binding as the nonce file and posts the document', async () => {
    const dir = mkdtempSync(join(work, 'aws-'));
    const tool = join(dir, 'nitro-tpm-attest');
    // Stand-in for the EC2-only tool, which takes `--nonce FILE` (raw bytes): records its argv and
    // the nonce file's bytes, prints a document.
    writeFileSync(tool, `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/argv"\ncat "$2" > "${dir}/nonce"\nprintf 'COSE-DOC'\n`);
    chmodSync(tool, 0o755);
    const g = await gatherAws(await opts({ nitroTpmAttest: tool }));
    const argv = readFileSync(join(dir, 'argv'), 'utf8').trim().split('\n');
    expect(argv).toHaveLength(2);
    expect(argv[0]).toBe('--nonce');
    expect(readFileSync(join(dir, 'nonce')).equals(binding)).toBe(true);
    expect(g).toMatchObject({ provider: 'aws', format: 'nitrotpm', evidence: { document: Buffer.from('COSE-DOC').toString('base64') } });
  });
});

describe('platform detection and NV padding', () => {
  it('detects clouds from DMI strings only', async () => {
    const mk = (vendor: string, product: string): string => {
      const dir = mkdtempSync(join(tmpdir(), 'dmi-'));
      writeFileSync(join(dir, 'sys_vendor'), vendor + '\n');
      writeFileSync(join(dir, 'product_name'), product + '\n');
      return dir;
    };
    expect(await detectPlatform(mk('Microsoft Corporation', 'Virtual Machine'))).toBe('azure');
    expect(await detectPlatform(mk('Google', 'Google Compute Engine'))).toBe('gcp');
    expect(await detectPlatform(mk('Amazon EC2', 'm6i.large'))).toBe('aws');
    expect(await detectPlatform(mk('QEMU', 'Standard PC'))).toBe('generic');
    expect(await detectPlatform('/nonexistent')).toBe('generic');
  });

  it('trims NV zero padding to the DER length and leaves non-DER alone', () => {
    const der = new X509Certificate(makeTls('pad').caPem).raw;
    expect(Buffer.from(stripNvPadding(Buffer.concat([der, Buffer.alloc(17)]))).equals(der)).toBe(true);
    expect(Buffer.from(stripNvPadding(der)).equals(der)).toBe(true);
    const junk = Buffer.from([1, 2, 3]);
    expect(Buffer.from(stripNvPadding(junk)).equals(junk)).toBe(true);
  });

  it('splits concatenated DER certificates and stops at padding or truncation', () => {
    const a = new X509Certificate(makeTls('split-a').caPem).raw;
    const b = new X509Certificate(makeTls('split-b').caPem).raw;
    const parts = splitDer(Buffer.concat([a, b, Buffer.alloc(9)]));
    expect(parts.map((p) => Buffer.from(p).equals(a) || Buffer.from(p).equals(b))).toEqual([true, true]);
    expect(splitDer(Buffer.concat([a, b.subarray(0, b.length - 1)]))).toHaveLength(1);
    expect(splitDer(Buffer.alloc(10))).toHaveLength(0);
    for (let n = 0; n < a.length; n++) expect(splitDer(a.subarray(0, n))).toHaveLength(0);
  });
});
