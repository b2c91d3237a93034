/**
 * A throw-away Nitro-shaped PKI for tests: root → regional → zonal → instance CA → leaf, all
 * generated here with WebCrypto and @peculiar/x509, so documents with any field can be *signed*
 * and every check after the signature can be shown to reject a forged field. The test trust store
 * registers this root under the AWS pin id (with its own fingerprint): nothing here is AWS's.
 */
import { encode as cborEncode } from 'cborg';
import { x509, certDer, fingerprint, type Certificate } from '../../providers/common/x509.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { PinIds } from '../../providers/common/pins.js';
import { concat } from '../../providers/common/bytes.js';
import { sigStructure } from '../../providers/aws/cose.js';
import type { TrustStore } from '../../providers/common/types.js';

export const NOW = new Date('2026-03-01T12:00:00Z');
export const INSTANCE = 'i-0123456789abcdef0';
export const MODULE = `${INSTANCE}-tpm0123456789abcdef`;
export const REGION = 'eu-west-1';
const H = 3600_000;

type Curve = 'P-256' | 'P-384';
const alg = (c: Curve) => ({ name: 'ECDSA', namedCurve: c }) as EcKeyGenParams;
const sigAlg = (c: Curve) => ({ name: 'ECDSA', hash: c === 'P-384' ? 'SHA-384' : 'SHA-256' });

export async function keyPair(curve: Curve = 'P-384'): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(alg(curve), true, ['sign', 'verify'])) as CryptoKeyPair;
}

let serial = 1;
async function issue(o: {
  subject: string;
  issuer?: { cert: Certificate; keys: CryptoKeyPair; curve: Curve };
  keys: CryptoKeyPair;
  curve: Curve;
  ca: boolean;
  notBefore: Date;
  notAfter: Date;
  usage?: number;
}): Promise<Certificate> {
  const extensions: x509.Extension[] = o.ca
    ? [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)]
    : [new x509.KeyUsagesExtension(o.usage ?? x509.KeyUsageFlags.digitalSignature, true)];
  const common = { serialNumber: (serial++).toString(16).padStart(4, '0'), notBefore: o.notBefore, notAfter: o.notAfter, extensions };
  if (!o.issuer) {
    return x509.X509CertificateGenerator.createSelfSigned({ ...common, name: o.subject, keys: o.keys, signingAlgorithm: sigAlg(o.curve) });
  }
  return x509.X509CertificateGenerator.create({
    ...common,
    subject: o.subject,
    issuer: o.issuer.cert.subject,
    publicKey: o.keys.publicKey,
    signingKey: o.issuer.keys.privateKey,
    signingAlgorithm: sigAlg(o.issuer.curve),
  });
}

export interface PkiOptions {
  leafCn?: string;
  instanceCn?: string;
  zonalCn?: string;
  leafCurve?: Curve;
  zonalCurve?: Curve;
  zonalIsCa?: boolean;
  leafNotBefore?: Date;
  leafUsage?: number;
}

export interface TestPki {
  root: Certificate;
  cabundle: Uint8Array[];
  leaf: Certificate;
  leafKeys: CryptoKeyPair;
  leafCurve: Curve;
  trust: TrustStore;
}

let rootCache: Promise<{ cert: Certificate; keys: CryptoKeyPair; trust: TrustStore }> | undefined;
function testRoot(): Promise<{ cert: Certificate; keys: CryptoKeyPair; trust: TrustStore }> {
  rootCache ??= (async () => {
    const keys = await keyPair();
    const cert = await issue({ subject: 'C=US, O=Test, CN=test.nitro-root', keys, curve: 'P-384', ca: true, notBefore: new Date('2020-01-01'), notAfter: new Date('2040-01-01') });
    const anchor = Object.freeze({ id: PinIds.AWS_NITRO_ROOT_G1, sha256: await fingerprint(cert), source: 'test', cert });
    return { cert, keys, trust: createTrustStore([anchor]) };
  })();
  return rootCache;
}

export async function makePki(o: PkiOptions = {}): Promise<TestPki> {
  const root = await testRoot();
  const rk = await keyPair();
  const regional = await issue({ subject: `C=US, O=Test, CN=abcd.${REGION}.aws.nitro-enclaves`, issuer: { cert: root.cert, keys: root.keys, curve: 'P-384' }, keys: rk, curve: 'P-384', ca: true, notBefore: new Date(NOW.getTime() - 240 * H), notAfter: new Date(NOW.getTime() + 240 * H) });
  const zc = o.zonalCurve ?? 'P-384';
  const zk = await keyPair(zc);
  const zonal = await issue({ subject: `C=US, O=Test, CN=${o.zonalCn ?? `ef01.zonal.${REGION}.aws.nitro-enclaves`}`, issuer: { cert: regional, keys: rk, curve: 'P-384' }, keys: zk, curve: zc, ca: o.zonalIsCa ?? true, notBefore: new Date(NOW.getTime() - 48 * H), notAfter: new Date(NOW.getTime() + 48 * H) });
  const ik = await keyPair();
  const inst = await issue({ subject: `C=US, O=Test, CN=${o.instanceCn ?? `${INSTANCE}.${REGION}.aws.nitro-enclaves`}`, issuer: { cert: zonal, keys: zk, curve: zc }, keys: ik, curve: 'P-384', ca: true, notBefore: new Date(NOW.getTime() - 12 * H), notAfter: new Date(NOW.getTime() + 12 * H) });
  const lc = o.leafCurve ?? 'P-384';
  const lk = await keyPair(lc);
  const nb = o.leafNotBefore ?? new Date(NOW.getTime() - H);
  const leaf = await issue({ subject: `C=US, O=Test, CN=${o.leafCn ?? `${MODULE}.${REGION}.aws`}`, issuer: { cert: inst, keys: ik, curve: 'P-384' }, keys: lk, curve: lc, ca: false, notBefore: nb, notAfter: new Date(nb.getTime() + 3 * H), ...(o.leafUsage !== undefined ? { usage: o.leafUsage } : {}) });
  return { root: root.cert, cabundle: [root.cert, regional, zonal, inst].map(certDer), leaf, leafKeys: lk, leafCurve: lc, trust: root.trust };
}

/** Fields of a NitroTPM document, in AWS's order. */
export function baseFields(pki: TestPki, over: Record<string, unknown> = {}, nonce: Uint8Array = new Uint8Array(32).fill(7)): Map<string, unknown> {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 24; i++) pcrs.set(i, new Uint8Array(48).fill(i));
  const m = new Map<string, unknown>([
    ['module_id', MODULE],
    ['digest', 'SHA384'],
    ['timestamp', NOW.getTime() - 60_000],
    ['nitrotpm_pcrs', pcrs],
    ['certificate', certDer(pki.leaf)],
    ['cabundle', pki.cabundle],
    ['public_key', null],
    ['user_data', null],
    ['nonce', nonce],
  ]);
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

/** The payload as AWS encodes it: an indefinite-length map (0xbf … 0xff). */
export function indefinitePayload(fields: Map<string, unknown>): Uint8Array {
  const definite = cborEncode(fields as never);
  if (fields.size > 23) throw new Error('test helper handles ≤ 23 fields');
  return concat(Uint8Array.of(0xbf), definite.subarray(1), Uint8Array.of(0xff));
}

/** Signs `payload` as an untagged COSE_Sign1 ES384 (or with the leaf's curve hash for negative tests). */
export async function signDocument(payload: Uint8Array, keys: CryptoKeyPair, curve: Curve = 'P-384', protectedHdr: Uint8Array = Uint8Array.of(0xa1, 0x01, 0x38, 0x22)): Promise<Uint8Array> {
  let sig: Uint8Array = new Uint8Array(
    await crypto.subtle.sign({ name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' }, keys.privateKey, sigStructure(protectedHdr, payload) as Uint8Array<ArrayBuffer>),
  );
  // A P-256 signature is 64 bytes; pad it so the envelope parses and the key-type checks are reached.
  if (sig.length < 96) sig = concat(sig, new Uint8Array(96 - sig.length));
  return cborEncode([protectedHdr, new Map(), payload, sig] as never);
}

/** A leaf naming the PKI's instance CA as issuer but signed by some other key (same cabundle). */
export async function withRogueLeaf(pki: TestPki, issuerName?: string): Promise<TestPki> {
  const inst = new x509.X509Certificate(pki.cabundle[3] as Uint8Array<ArrayBuffer>);
  const rogueIssuerKeys = await keyPair();
  const lk = await keyPair();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: 'ff01',
    subject: `C=US, O=Test, CN=${MODULE}.${REGION}.aws`,
    issuer: issuerName ?? inst.subject,
    notBefore: new Date(NOW.getTime() - H),
    notAfter: new Date(NOW.getTime() + 2 * H),
    publicKey: lk.publicKey,
    signingKey: rogueIssuerKeys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  return { ...pki, leaf, leafKeys: lk, leafCurve: 'P-384' };
}
