/**
 * AK certificate profile checks (providers/gcp/akcert.ts) and the GCE instance-info decoder
 * (providers/gcp/instance-info.ts).
 *
 * Google's CA cannot be asked to sign bad certificates, so the profile rows use a test CA that
 * stands in for a pinned Google root (an in-memory trust store maps the Google pin ids to it),
 * with certificates built like the real ones (compare `openssl x509 -text` of the vectors). The
 * decoder rows start from the real extension bytes of the vectors.
 */
import { describe, expect, it } from 'vitest';
import { concat } from '../../providers/common/bytes.js';
import { PinIds } from '../../providers/common/pins.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { fingerprint, parseCertificate, x509 } from '../../providers/common/x509.js';
import { verifyAkCertificate } from '../../providers/gcp/akcert.js';
import { INSTANCE_INFO_OID, parseGceInstanceInfo } from '../../providers/gcp/instance-info.js';
import { parseAttestationProto } from '../../providers/gcp/parse.js';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { codeOf, PB_NONCE_9009, vapor, VAPOR_TDX } from './helpers.js';

// --- a tiny DER encoder for test inputs ---------------------------------------------------------
function derLen(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([n]);
  if (n < 0x100) return new Uint8Array([0x81, n]);
  return new Uint8Array([0x82, n >> 8, n & 0xff]);
}
const tlv = (tag: number, ...body: Uint8Array[]) => {
  const b = concat(...body);
  return concat(new Uint8Array([tag]), derLen(b.length), b);
};
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const int = (v: bigint) => {
  const bytes: number[] = [];
  let x = v;
  do {
    bytes.unshift(Number(x & 0xffn));
    x >>= 8n;
  } while (x > 0n);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, new Uint8Array(bytes));
};
const bool = (b: boolean) => tlv(0x01, new Uint8Array([b ? 0xff : 0]));
function oidDer(dotted: string): Uint8Array {
  const a = dotted.split('.').map(Number);
  const out: number[] = [40 * a[0]! + a[1]!];
  for (const arc of a.slice(2)) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

interface Info {
  zone?: string;
  projectNumber?: bigint;
  projectId?: string;
  instanceId?: bigint;
  instanceName?: string;
  props?: Uint8Array | null;
}
function instanceInfo(i: Info = {}): Uint8Array {
  const props = i.props === undefined ? tlv(0xa0, tlv(0x30, tlv(0xa0, int(0n)), tlv(0xa1, bool(true)))) : i.props;
  return tlv(
    0x30,
    utf8(i.zone ?? 'us-central1-f'),
    int(i.projectNumber ?? 232923608972n),
    utf8(i.projectId ?? 'proj'),
    int(i.instanceId ?? 3414240648225485836n),
    utf8(i.instanceName ?? 'node-1'),
    ...(props ? [props] : []),
  );
}
function tpmSan(manufacturer = 'id:474F4F47'): Uint8Array {
  const atv = (o: string, v: string) => tlv(0x31, tlv(0x30, oidDer(o), utf8(v)));
  return tlv(0x30, tlv(0xa4, tlv(0x30, atv('2.23.133.2.1', manufacturer), atv('2.23.133.2.2', 'vTPM'), atv('2.23.133.2.3', 'id:20160511'))));
}

// --- a test CA standing in for a pinned Google root ------------------------------------------
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const NB = new Date('2024-01-01T00:00:00Z');
const NA = new Date('2054-01-01T00:00:00Z');
const AT = new Date('2026-01-01T00:00:00Z');

async function testCa() {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Test EK/AK CA Root',
    keys,
    notBefore: NB,
    notAfter: NA,
    signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const anchor = (id: string) => ({ id, sha256: '', source: 'test', cert });
  return { keys, cert, anchor, fp: await fingerprint(cert) };
}
type Ca = Awaited<ReturnType<typeof testCa>>;

interface LeafSpec {
  subject?: string;
  ku?: number | null;
  ca?: boolean;
  eku?: string[];
  info?: Uint8Array | null;
  san?: { der: Uint8Array; critical: boolean };
  extra?: x509.Extension[];
}
async function leaf(ca: Ca, s: LeafSpec = {}): Promise<Uint8Array> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ext: x509.Extension[] = [new x509.BasicConstraintsExtension(s.ca ?? false, undefined, true)];
  if (s.ku !== null) ext.push(new x509.KeyUsagesExtension(s.ku ?? x509.KeyUsageFlags.digitalSignature, true));
  if (s.eku) ext.push(new x509.ExtendedKeyUsageExtension(s.eku));
  if (s.san) ext.push(new x509.Extension('2.5.29.17', s.san.critical, s.san.der as Uint8Array<ArrayBuffer>));
  if (s.info !== null) ext.push(new x509.Extension(INSTANCE_INFO_OID, false, (s.info ?? instanceInfo()) as Uint8Array<ArrayBuffer>));
  ext.push(...(s.extra ?? []));
  const c = await x509.X509CertificateGenerator.create({
    subject: s.subject ?? 'L=us-central1-f, O=Google Compute Engine, OU=proj, CN=3414240648225485836',
    issuer: ca.cert.subject,
    notBefore: NB,
    notAfter: NA,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: ext,
  });
  return new Uint8Array(c.rawData);
}

async function check(ca: Ca, rootId: string, der: Uint8Array, allowNonProduction = false) {
  const a = ca.anchor(rootId);
  a.sha256 = ca.fp;
  return verifyAkCertificate({
    akCert: der,
    intermediates: [],
    configuredIntermediates: [],
    trust: createTrustStore([a]),
    now: AT,
    allowNonProduction,
  });
}

describe('AK certificate profile (test CA in place of the Google roots)', () => {
  const legacyOk: LeafSpec = { subject: '', eku: ['2.23.133.8.1'], san: { der: tpmSan(), critical: true } };
  const rows: { name: string; root: string; spec: LeafSpec; wantCode: string; allowNonProduction?: boolean }[] = [
    { name: 'current lineage, as Google issues it', root: PinIds.GOOGLE_EKAK_ROOT, spec: {}, wantCode: 'ACCEPTED' },
    { name: 'current: EKU tcg-kp-AIKCertificate allowed', root: PinIds.GOOGLE_EKAK_ROOT, spec: { eku: ['2.23.133.8.3'] }, wantCode: 'ACCEPTED' },
    { name: 'current: EKU serverAuth only', root: PinIds.GOOGLE_EKAK_ROOT, spec: { eku: ['1.3.6.1.5.5.7.3.1'] }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'current: subject O is not Google Compute Engine', root: PinIds.GOOGLE_EKAK_ROOT, spec: { subject: 'L=us-central1-f, O=Evil, OU=proj, CN=3414240648225485836' }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'current: subject zone differs from instance info', root: PinIds.GOOGLE_EKAK_ROOT, spec: { subject: 'L=europe-west1-b, O=Google Compute Engine, OU=proj, CN=3414240648225485836' }, wantCode: 'AK_CERT_SUBJECT_MISMATCH' },
    { name: 'current: subject project differs', root: PinIds.GOOGLE_EKAK_ROOT, spec: { subject: 'L=us-central1-f, O=Google Compute Engine, OU=other, CN=3414240648225485836' }, wantCode: 'AK_CERT_SUBJECT_MISMATCH' },
    { name: 'current: subject instance id differs', root: PinIds.GOOGLE_EKAK_ROOT, spec: { subject: 'L=us-central1-f, O=Google Compute Engine, OU=proj, CN=1' }, wantCode: 'AK_CERT_SUBJECT_MISMATCH' },
    { name: 'current: two CN attributes', root: PinIds.GOOGLE_EKAK_ROOT, spec: { subject: 'L=us-central1-f, O=Google Compute Engine, OU=proj, CN=3414240648225485836, CN=1' }, wantCode: 'AK_CERT_SUBJECT_MISMATCH' },
    { name: 'no keyUsage', root: PinIds.GOOGLE_EKAK_ROOT, spec: { ku: null }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'keyUsage without digitalSignature', root: PinIds.GOOGLE_EKAK_ROOT, spec: { ku: x509.KeyUsageFlags.keyEncipherment }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'keyUsage with keyCertSign', root: PinIds.GOOGLE_EKAK_ROOT, spec: { ku: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'a CA certificate as AK certificate', root: PinIds.GOOGLE_EKAK_ROOT, spec: { ca: true }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'an unhandled critical extension', root: PinIds.GOOGLE_EKAK_ROOT, spec: { extra: [new x509.Extension('1.2.3.4', true, new Uint8Array([5, 0]))] }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'instance-info extension twice (RFC 5280 §4.2)', root: PinIds.GOOGLE_EKAK_ROOT, spec: { extra: [new x509.Extension(INSTANCE_INFO_OID, false, instanceInfo({ projectId: 'other' }) as Uint8Array<ArrayBuffer>)] }, wantCode: 'CERT_MALFORMED' },
    { name: 'no instance-info extension', root: PinIds.GOOGLE_EKAK_ROOT, spec: { info: null }, wantCode: 'INSTANCE_INFO_MISSING' },
    { name: 'instance info without security properties (not production)', root: PinIds.GOOGLE_EKAK_ROOT, spec: { info: instanceInfo({ props: null }) }, wantCode: 'INSTANCE_NOT_PRODUCTION' },
    { name: 'isProduction false', root: PinIds.GOOGLE_EKAK_ROOT, spec: { info: instanceInfo({ props: tlv(0xa0, tlv(0x30, tlv(0xa1, bool(false)))) }) }, wantCode: 'INSTANCE_NOT_PRODUCTION' },
    { name: 'isProduction false, explicitly allowed', root: PinIds.GOOGLE_EKAK_ROOT, spec: { info: instanceInfo({ props: tlv(0xa0, tlv(0x30, tlv(0xa1, bool(false)))) }) }, allowNonProduction: true, wantCode: 'ACCEPTED' },
    { name: 'malformed instance info (trailing byte)', root: PinIds.GOOGLE_EKAK_ROOT, spec: { info: concat(instanceInfo(), new Uint8Array([0])) }, wantCode: 'TRAILING_BYTES' },
    { name: 'legacy lineage, as Google issues it', root: PinIds.GOOGLE_TPM_EK_ROOT_1, spec: legacyOk, wantCode: 'ACCEPTED' },
    { name: 'legacy: no EKU', root: PinIds.GOOGLE_TPM_EK_ROOT_1, spec: { ...legacyOk, eku: undefined }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'legacy: no TPM SAN', root: PinIds.GOOGLE_TPM_EK_ROOT_1, spec: { ...legacyOk, san: undefined }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'legacy: TPM SAN not critical', root: PinIds.GOOGLE_TPM_EK_ROOT_1, spec: { ...legacyOk, san: { der: tpmSan(), critical: false } }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'legacy: TPM manufacturer not GOOG', root: PinIds.GOOGLE_TPM_EK_ROOT_1, spec: { ...legacyOk, san: { der: tpmSan('id:49465800'), critical: true } }, wantCode: 'AK_CERT_PROFILE' },
    { name: 'legacy: SAN that does not decode', root: PinIds.GOOGLE_TPM_EK_ROOT_1, spec: { ...legacyOk, san: { der: new Uint8Array([0x30, 0x05, 0xa4, 0x03, 0x30]), critical: true } }, wantCode: 'CERT_MALFORMED' },
  ];
  for (const row of rows) {
    it(`${row.name} → ${row.wantCode}`, async () => {
      const ca = await testCa();
      const der = await leaf(ca, row.spec);
      expect(await codeOf(check(ca, row.root, der, row.allowNonProduction))).toBe(row.wantCode);
    });
  }
  it('a warm certificate memo decides nothing: production flag, profile and validity are checked on every call', async () => {
    const ca = await testCa();
    const nonProd = await leaf(ca, { info: instanceInfo({ props: tlv(0xa0, tlv(0x30, tlv(0xa1, bool(false)))) }) });
    expect(await codeOf(check(ca, PinIds.GOOGLE_EKAK_ROOT, nonProd, true))).toBe('ACCEPTED');
    expect(await codeOf(check(ca, PinIds.GOOGLE_EKAK_ROOT, nonProd, false))).toBe('INSTANCE_NOT_PRODUCTION');
    const notGoog = await leaf(ca, { subject: '', eku: ['2.23.133.8.1'], san: { der: tpmSan('id:49465800'), critical: true } });
    for (let i = 0; i < 2; i++) expect(await codeOf(check(ca, PinIds.GOOGLE_TPM_EK_ROOT_1, notGoog))).toBe('AK_CERT_PROFILE');
    // The same (warm) legacy certificate under the EKAK pin is checked against that lineage's profile.
    const legacy = await leaf(ca, { subject: '', eku: ['2.23.133.8.1'], san: { der: tpmSan(), critical: true } });
    expect(await codeOf(check(ca, PinIds.GOOGLE_TPM_EK_ROOT_1, legacy))).toBe('ACCEPTED');
    expect(await codeOf(check(ca, PinIds.GOOGLE_EKAK_ROOT, legacy))).toBe('AK_CERT_PROFILE');
    const good = await leaf(ca);
    expect(await codeOf(check(ca, PinIds.GOOGLE_EKAK_ROOT, good))).toBe('ACCEPTED');
    const a = { ...ca.anchor(PinIds.GOOGLE_EKAK_ROOT), sha256: ca.fp };
    const at = (now: Date) => verifyAkCertificate({ akCert: good, intermediates: [], configuredIntermediates: [], trust: createTrustStore([a]), now, allowNonProduction: false });
    expect(await codeOf(at(new Date(NA.getTime() + 1000)))).toBe('CERT_EXPIRED');
    expect(await codeOf(at(new Date(NB.getTime() - 1000)))).toBe('CERT_NOT_YET_VALID');
    expect(await codeOf(at(AT))).toBe('ACCEPTED');
  });
  it('a root other than the two Google pins is not consulted', async () => {
    const ca = await testCa();
    const der = await leaf(ca);
    expect(await codeOf(check(ca, PinIds.AWS_NITRO_ROOT_G1, der))).toBe('TRUST_ANCHOR_MISSING');
  });
});

describe('GCE instance-info decoder', () => {
  const good = instanceInfo();
  it('decodes every field', () => {
    const i = parseGceInstanceInfo(good);
    expect(i).toMatchObject({ zone: 'us-central1-f', projectNumber: 232923608972n, projectId: 'proj', instanceId: 3414240648225485836n, instanceName: 'node-1' });
    expect(i.securityProperties).toMatchObject({ securityVersion: 0n, isProduction: true });
  });
  it('truncation sweep: every prefix fails with a typed code; a trailing byte is refused', async () => {
    for (let n = 0; n < good.length; n++) {
      expect(['TRUNCATED', 'TRAILING_BYTES', 'INSTANCE_INFO_MALFORMED'], `prefix ${n}`).toContain(await codeOf(() => parseGceInstanceInfo(good.subarray(0, n))));
    }
    expect(await codeOf(() => parseGceInstanceInfo(concat(good, new Uint8Array([0]))))).toBe('TRAILING_BYTES');
  });
  const props = (...els: Uint8Array[]) => tlv(0xa0, tlv(0x30, ...els));
  const rows: { name: string; der: Uint8Array; wantCode: string }[] = [
    { name: 'negative instance id', der: tlv(0x30, utf8('z'), int(1n), utf8('p'), tlv(0x02, new Uint8Array([0xff])), utf8('n')), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'non-minimal INTEGER', der: tlv(0x30, utf8('z'), tlv(0x02, new Uint8Array([0, 1])), utf8('p'), int(1n), utf8('n')), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'INTEGER above 64 bits', der: tlv(0x30, utf8('z'), int(1n << 64n), utf8('p'), int(1n), utf8('n')), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'PrintableString instead of UTF8String', der: tlv(0x30, tlv(0x13, new Uint8Array([0x7a])), int(1n), utf8('p'), int(1n), utf8('n')), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'long-form length below 128', der: concat(new Uint8Array([0x30, 0x81, 0x05]), utf8('z'), int(1n)), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'indefinite length', der: new Uint8Array([0x30, 0x80, 0, 0]), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'BOOLEAN 0x01 (not DER)', der: instanceInfo({ props: props(tlv(0xa1, tlv(0x01, new Uint8Array([1])))) }), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'security properties out of order', der: instanceInfo({ props: props(tlv(0xa1, bool(true)), tlv(0xa0, int(0n))) }), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'security property repeated', der: instanceInfo({ props: props(tlv(0xa1, bool(true)), tlv(0xa1, bool(true))) }), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'security properties not a SEQUENCE', der: instanceInfo({ props: tlv(0xa0, tlv(0x31)) }), wantCode: 'INSTANCE_INFO_MALFORMED' },
    { name: 'unknown element after the properties', der: tlv(0x30, utf8('z'), int(1n), utf8('p'), int(1n), utf8('n'), props(), utf8('x')), wantCode: 'TRAILING_BYTES' },
    { name: 'a property that is not a context tag', der: instanceInfo({ props: props(bool(true)) }), wantCode: 'INSTANCE_INFO_MALFORMED' },
  ];
  for (const r of rows) it(`${r.name} → ${r.wantCode}`, async () => expect(await codeOf(() => parseGceInstanceInfo(r.der))).toBe(r.wantCode));
});

describeVectors('GCE instance info in the real AK certificates', () => {
  it('legacy certificate (gce-cos-85): zone, domain-scoped project, ids, properties [0]..[5]', () => {
    const cert = parseCertificate(parseAttestationProto(readVector(PB_NONCE_9009)).akCert);
    const ext = cert.extensions.find((e) => e.type === INSTANCE_INFO_OID)!;
    const i = parseGceInstanceInfo(new Uint8Array(ext.value));
    expect(i).toMatchObject({ zone: 'us-central1-a', projectId: 'google.com:wuale-gcp-testing', projectNumber: 117478743145n, instanceId: 6797026933021542085n, instanceName: 'cos-test' });
    expect(i.securityProperties).toEqual({ securityVersion: 0n, isProduction: true, other: { 2: false, 3: false, 4: false, 5: false } });
  });
  it('current certificate (vaportpm TDX host): property [2] is set', () => {
    const [leafCert] = x509.PemConverter.decode(vapor(VAPOR_TDX).attestation.gcp.ak_cert_chain);
    const cert = parseCertificate(new Uint8Array(leafCert!));
    const ext = cert.extensions.find((e) => e.type === INSTANCE_INFO_OID)!;
    const i = parseGceInstanceInfo(new Uint8Array(ext.value));
    expect(i).toMatchObject({ zone: 'us-central1-a', projectId: 'lockboot', instanceId: 2141209421113254303n });
    expect(i.securityProperties?.other).toEqual({ 2: true, 3: false, 4: false, 5: false });
  });
});
