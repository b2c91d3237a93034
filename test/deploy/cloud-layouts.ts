/**
 * Cloud vTPM layouts reproduced on swtpm, and the stand-ins for the signers a test cannot have.
 * Shared by the gatherer tests (gather-verify.test.ts: Node client; gather-both.test.ts: both
 * clients). Every stand-in is named as such where it is made:
 *
 * - GCE: the AK template at NV 0x01c10003 (ECC) and the AK certificate at 0x01c10002, issued in
 *   Google's profile (O=Google Compute Engine, L=zone, OU=project, CN=instance id, the GCE
 *   instance-info extension) by a test CA given to the verifier under Google's EK/AK root pin id.
 * - Azure SEV-SNP: an HCL report made from a real one (trustee/az-snp-vtpm/hcl-report.bin: header,
 *   IGVM header, the SNP report's fields, vm-configuration) whose runtime data names this swtpm's
 *   AK as HCLAkPub, its SNP report's REPORT_DATA set to the runtime data's SHA-256 and re-signed
 *   by a test VCEK (AMD's extensions copied from the real VCEK: product, SPLs, chip id) under a
 *   test ASK ("SEV-Milan") and a test ARK given to the verifier under the Milan ARK pin id.
 * - Azure TDX: an HCL report made from a real one (trustee/az-tdx-vtpm/hcl-report.bin) with the
 *   real TDREPORT and this swtpm's AK in the runtime data (Intel's quoting enclave is not
 *   simulated; see the test for what that leaves).
 * - GCE Confidential VM (SEV-SNP): a directory laid out like one configfs-tsm report entry
 *   (`layOutTsmEntry`). A plain directory cannot react to the `inblob` write the way the
 *   kernel does, so the entry is laid out in advance for the binding the test will use: its
 *   `outblob` is the real Milan report of trustee/az-snp-vtpm/hcl-report.bin with REPORT_DATA
 *   set and re-signed by the stand-in VCEK (as for Azure), `auxblob` the certificate table
 *   holding the stand-in VCEK, ASK and ARK.
 */
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SNP_LAYOUT } from '../../providers/amd-sev-snp/layout.js';
import { PinIds } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import type { TrustStore } from '../../providers/common/types.js';
import { x509 } from '../../providers/common/x509.js';
import { readVector, readVectorText } from '../helpers/vectors.js';
import type { Swtpm } from './swtpm.js';

/** Defines an owner-readable NV index of exactly `data`'s size and writes it. */
export function nvDefineWrite(tpm: Swtpm, index: number, data: Uint8Array): void {
  const f = join(mkdtempSync(join(tmpdir(), 'nv-')), 'data');
  writeFileSync(f, data);
  const h = '0x' + index.toString(16);
  execFileSync('tpm2_nvdefine', [h, '-C', 'o', '-s', String(data.length), '-a', 'ownerread|ownerwrite|authread|authwrite'], { env: tpm.env });
  execFileSync('tpm2_nvwrite', [h, '-C', 'o', '-i', f], { env: tpm.env });
}

/** The GCE ECC AK template (go-tpm-tools): ECC P-256 restricted signing, zero-filled unique. */
export const GCE_ECC_AK_TEMPLATE = Buffer.from('0023000b00050072000000100018000b000300100020' + '00'.repeat(32) + '0020' + '00'.repeat(32), 'hex');

export const GCE = { zone: 'europe-west4-a', project: 'attest-broker-test', projectNumber: 123456789012n, instanceId: 4242424242424242424n, instanceName: 'gpu-node-1' } as const;

/** DER, by hand (X.690). */
function der(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
function uint(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let b = Buffer.from(hex, 'hex');
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return der(0x02, b);
}
const utf8 = (s: string): Buffer => der(0x0c, Buffer.from(s, 'utf8'));
/** The GceInstanceInfo extension the gcp provider decodes (providers/gcp/instance-info.ts). */
function instanceInfo(): Buffer {
  const props = der(0x30, Buffer.concat([der(0xa0, uint(1n)), der(0xa1, der(0x01, Buffer.from([0xff])))]));
  return der(0x30, Buffer.concat([utf8(GCE.zone), uint(GCE.projectNumber), utf8(GCE.project), uint(GCE.instanceId), utf8(GCE.instanceName), der(0xa0, props)]));
}

const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const P384 = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as const;
const DAY = 86_400_000;
const serial = (): string => randomBytes(8).toString('hex').replace(/^[89a-f]/, '1');
const caExtensions = (): x509.Extension[] => [
  new x509.BasicConstraintsExtension(true, undefined, true),
  new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
];

async function selfSignedCa(name: string, alg: typeof P256 | typeof P384): Promise<{ keys: CryptoKeyPair; cert: x509.X509Certificate }> {
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingAlgorithm: alg,
    keys,
    extensions: caExtensions(),
  });
  return { keys, cert };
}

async function trustUnder(id: string, cert: x509.X509Certificate): Promise<TrustStore> {
  const d = new Uint8Array(cert.rawData);
  return createTrustStore([await anchorFromBytes({ id, sha256: createHash('sha256').update(d).digest('hex'), source: 'test stand-in (test/deploy/cloud-layouts.ts)' }, d)]);
}

/**
 * GCE's NV layout on `tpm`: the ECC AK template, and the certificate of the AK it makes (NV
 * padding after the DER, as on GCE), issued by a stand-in for Google's EK/AK CA root. `makeAkPem`
 * makes the AK from the template once and returns its SPKI PEM (the gatherer under test does it).
 */
export async function layOutGce(tpm: Swtpm, makeAkPem: () => Promise<string>): Promise<{ trust: TrustStore }> {
  const ca = await selfSignedCa('CN=stand-in for Google EK/AK CA Root', P256);
  nvDefineWrite(tpm, 0x01c10003, GCE_ECC_AK_TEMPLATE);
  const publicKey = new x509.PublicKey(await makeAkPem());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `O=Google Compute Engine, L=${GCE.zone}, OU=${GCE.project}, CN=${GCE.instanceId}`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: new Date(Date.now() + DAY),
    signingAlgorithm: P256,
    publicKey: await publicKey.export(P256, ['verify']),
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.Extension('1.3.6.1.4.1.11129.2.1.21', false, new Uint8Array(instanceInfo())),
    ],
  });
  nvDefineWrite(tpm, 0x01c10002, Buffer.concat([Buffer.from(cert.rawData), Buffer.alloc(32)]));
  return { trust: await trustUnder(PinIds.GOOGLE_EKAK_ROOT, ca.cert) };
}

/** swtpm's largest NV index (TPM_PT_NV_INDEX_MAX); Azure's HCL index is larger, the report fits. */
const SWTPM_NV_MAX = 2048;
const HCL = { reportSize: 8, slot: 32, igvm: 1216, dataSize: 1216, varSize: 1232, runtime: 1236 } as const;

/**
 * Azure's vTPM persistent AK (HCLAkPub at 0x81000003): RSA-2048 restricted signing,
 * RSASSA-SHA256, made under the EK. Returns its public key as the JWK members the paravisor
 * writes into the runtime data.
 */
export function makeAzureAk(tpm: Swtpm): { n: string; e: string } {
  const dir = mkdtempSync(join(tmpdir(), 'az-ak-'));
  const env = tpm.env;
  execFileSync('tpm2_createek', ['-c', join(dir, 'ek.ctx'), '-G', 'rsa', '-u', join(dir, 'ek.pub')], { env });
  execFileSync('tpm2_flushcontext', ['-t'], { env });
  execFileSync('tpm2_createak', ['-C', join(dir, 'ek.ctx'), '-c', join(dir, 'ak.ctx'), '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', join(dir, 'ak.pub'), '-f', 'tss'], { env });
  execFileSync('tpm2_flushcontext', ['-t'], { env });
  execFileSync('tpm2_flushcontext', ['-s'], { env });
  execFileSync('tpm2_evictcontrol', ['-C', 'o', '-c', join(dir, 'ak.ctx'), '0x81000003'], { env });
  execFileSync('tpm2_flushcontext', ['-t'], { env });
  execFileSync('tpm2_readpublic', ['-c', '0x81000003', '-f', 'pem', '-o', join(dir, 'ak.pem')], { env, stdio: 'ignore' });
  const jwk = createPublicKey(readFileSync(join(dir, 'ak.pem'), 'utf8')).export({ format: 'jwk' });
  return { n: jwk.n!, e: jwk.e! };
}

/**
 * An HCL report from the real one at `vector` with runtime data naming `ak` as HCLAkPub (the
 * real vm-configuration kept, user-data all zero: a paravisor that did not refresh it), padded
 * with zeros to swtpm's NV maximum. Returns the report and the runtime data's bytes.
 */
export function hclReportWithAk(vector: string, ak: { n: string; e: string }): { hcl: Buffer; runtime: Buffer } {
  const real = Buffer.from(readVector(vector));
  const realRuntime = JSON.parse(real.subarray(HCL.runtime, HCL.runtime + real.readUInt32LE(HCL.varSize)).toString('utf8')) as Record<string, unknown>;
  const runtime = Buffer.from(
    JSON.stringify({ keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: ak.e, n: ak.n }], 'vm-configuration': realRuntime['vm-configuration'], 'user-data': '00'.repeat(64) }),
    'utf8',
  );
  const head = Buffer.from(real.subarray(0, HCL.runtime));
  head.writeUInt32LE(HCL.igvm + 20 + runtime.length, HCL.reportSize);
  head.writeUInt32LE(20 + runtime.length, HCL.dataSize);
  head.writeUInt32LE(runtime.length, HCL.varSize);
  const body = Buffer.concat([head, runtime]);
  if (body.length > SWTPM_NV_MAX) throw new Error('HCL report does not fit swtpm NV');
  return { hcl: Buffer.concat([body, Buffer.alloc(SWTPM_NV_MAX - body.length)]), runtime };
}

const AMD_OID_PREFIX = '1.3.6.1.4.1.3704.';

export interface StandInAmd {
  trust: TrustStore;
  vcekPem: string;
  /** ASK then ARK, as IMDS THIM's certificateChain. */
  chainPem: string;
  /** Re-signs an SNP report (1184 bytes) in place over [0, 0x2A0) with the stand-in VCEK. */
  sign(report: Buffer): Promise<void>;
}

/**
 * Stand-ins for AMD's ARK → ASK → VCEK (ECDSA P-384; AMD's ARK and ASK are RSA-PSS, which the
 * verifier also takes): the VCEK carries the AMD extensions of the real VCEK at `realVcekPem`
 * (product name, SPLs, hwID), so the real report's CHIP_ID and REPORTED_TCB match it.
 */
export async function standInAmd(realVcekPem: string): Promise<StandInAmd> {
  const ark = await selfSignedCa('CN=ARK-Milan (stand-in)', P384);
  const askKeys = (await crypto.subtle.generateKey(P384, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ask = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=SEV-Milan',
    issuer: ark.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingAlgorithm: P384,
    publicKey: askKeys.publicKey,
    signingKey: ark.keys.privateKey,
    extensions: caExtensions(),
  });
  const real = new x509.X509Certificate(realVcekPem);
  const amd = real.extensions.filter((e) => e.type.startsWith(AMD_OID_PREFIX)).map((e) => new x509.Extension(e.type, e.critical, new Uint8Array(e.value)));
  const vcekKeys = (await crypto.subtle.generateKey(P384, true, ['sign', 'verify'])) as CryptoKeyPair;
  const vcek = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=SEV-VCEK',
    issuer: ask.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingAlgorithm: P384,
    publicKey: vcekKeys.publicKey,
    signingKey: askKeys.privateKey,
    extensions: amd,
  });
  const L = SNP_LAYOUT;
  return {
    trust: await trustUnder(PinIds.AMD_ARK_MILAN, ark.cert),
    vcekPem: vcek.toString('pem') + '\n',
    chainPem: ask.toString('pem') + '\n' + ark.cert.toString('pem') + '\n',
    async sign(report: Buffer): Promise<void> {
      const sig = Buffer.from(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, vcekKeys.privateKey, new Uint8Array(report.subarray(0, L.SIGNATURE_R.off))));
      // AMD writes R and S little-endian, each in a 72-byte field (48 bytes used).
      report.fill(0, L.SIGNATURE_R.off, L.SIGNATURE_S.off + L.SIGNATURE_S.len);
      Buffer.from(sig.subarray(0, 48)).reverse().copy(report, L.SIGNATURE_R.off);
      Buffer.from(sig.subarray(48, 96)).reverse().copy(report, L.SIGNATURE_S.off);
    },
  };
}

/** The real VCEK of trustee/az-snp-vtpm/hcl-report.bin (first certificate of vcek.pem). */
export function realAzureVcekPem(): string {
  const text = readVectorText('trustee/az-snp-vtpm/vcek.pem');
  return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)![0];
}

/**
 * The Azure SEV-SNP layout on `tpm`: persistent AK 0x81000003 and an HCL report at NV
 * 0x01400001 naming it, its SNP report bound to the runtime data and re-signed by the stand-in
 * VCEK. Returns what the IMDS THIM stand-in serves and the verifier's trust.
 */
export async function layOutAzureSnp(tpm: Swtpm): Promise<StandInAmd & { hcl: Buffer; vmUniqueId: string }> {
  const ak = makeAzureAk(tpm);
  const { hcl, runtime } = hclReportWithAk('trustee/az-snp-vtpm/hcl-report.bin', ak);
  const amd = await standInAmd(realAzureVcekPem());
  const report = hcl.subarray(HCL.slot, HCL.slot + 1184);
  const rd = SNP_LAYOUT.REPORT_DATA;
  report.fill(0, rd.off, rd.off + rd.len);
  createHash('sha256').update(runtime).digest().copy(report, rd.off);
  await amd.sign(report);
  nvDefineWrite(tpm, 0x01400001, hcl);
  const vc = (JSON.parse(runtime.toString('utf8')) as { 'vm-configuration': { vmUniqueId: string } })['vm-configuration'];
  return { ...amd, hcl, vmUniqueId: vc.vmUniqueId };
}

/** Certificate table GUIDs (GHCB specification, SNP extended guest request), RFC 4122 byte order. */
export const SNP_CERT_GUIDS = {
  vcek: '63da758d-e664-4564-adc5-f4b93be8accd',
  ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
} as const;

/** An SNP extended-report certificate table: 24-byte entries, an all-zero one, then the DER blobs. */
export function certTable(certs: ReadonlyArray<readonly [guid: string, der: Uint8Array]>): Buffer {
  const head = Buffer.alloc(24 * (certs.length + 1));
  let off = head.length;
  certs.forEach(([guid, der], i) => {
    Buffer.from(guid.replace(/-/g, ''), 'hex').copy(head, i * 24);
    head.writeUInt32LE(off, i * 24 + 16);
    head.writeUInt32LE(der.length, i * 24 + 20);
    off += der.length;
  });
  return Buffer.concat([head, ...certs.map(([, d]) => Buffer.from(d))]);
}

const pemDer = (pem: string): Buffer[] => [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));

/**
 * A real Milan SNP report (1184 bytes) with REPORT_DATA = `reportData` ‖ zeros, re-signed by
 * `amd`: version 2 from trustee/az-snp-vtpm/hcl-report.bin, or version 3 (CPUID family/model
 * bytes set) from the HCL report in trustee/az-snp-vtpm/evidence-v1.json (the same chip).
 */
export async function standInSnpReport(amd: StandInAmd, reportData: Uint8Array, version: 2 | 3 = 2): Promise<Buffer> {
  const hcl =
    version === 2
      ? readVector('trustee/az-snp-vtpm/hcl-report.bin')
      : Buffer.from((JSON.parse(readVectorText('trustee/az-snp-vtpm/evidence-v1.json')) as { hcl_report: string }).hcl_report, 'base64url');
  const report = Buffer.from(hcl.subarray(HCL.slot, HCL.slot + 1184));
  if (report.readUInt32LE(0) !== version) throw new Error(`expected a version ${version} report`);
  const rd = SNP_LAYOUT.REPORT_DATA;
  report.fill(0, rd.off, rd.off + rd.len);
  Buffer.from(reportData).copy(report, rd.off);
  await amd.sign(report);
  return report;
}

/**
 * One configfs-tsm report entry under `root`, laid out in advance as the kernel's sev_guest
 * provider would answer an `inblob` of `reportData` ‖ zeros (the entry name is the join
 * clients': `attest-join-` + the binding's first 8 bytes in hex). `inblob` starts empty: the
 * client under test writes it, and the test reads back what it wrote.
 */
export async function layOutTsmEntry(
  root: string,
  binding: Uint8Array,
  amd: StandInAmd,
  o: { reportData?: Uint8Array; outblob?: boolean; auxblob?: boolean; provider?: string; version?: 2 | 3 } = {},
): Promise<{ entry: string; report: Buffer }> {
  const entry = join(root, `attest-join-${Buffer.from(binding.subarray(0, 8)).toString('hex')}`);
  mkdirSync(entry, { recursive: true });
  const report = await standInSnpReport(amd, o.reportData ?? binding, o.version);
  writeFileSync(join(entry, 'provider'), (o.provider ?? 'sev_guest') + '\n');
  writeFileSync(join(entry, 'generation'), '1\n');
  writeFileSync(join(entry, 'inblob'), '');
  if (o.outblob !== false) writeFileSync(join(entry, 'outblob'), report);
  if (o.auxblob !== false) {
    const [ask, ark] = pemDer(amd.chainPem);
    const [vcek] = pemDer(amd.vcekPem);
    writeFileSync(join(entry, 'auxblob'), certTable([[SNP_CERT_GUIDS.vcek, vcek!], [SNP_CERT_GUIDS.ask, ask!], [SNP_CERT_GUIDS.ark, ark!]]));
  }
  return { entry, report };
}
