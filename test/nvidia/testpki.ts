/**
 * A throw-away NVIDIA-shaped device PKI for tests: root → "GH100 Identity"-like CA → "GH100 A01
 * GSP BROM" → "GH100 A01 GSP FMC LF" leaf with a DICE CompositeDeviceID extension, all P-384 and
 * generated here with WebCrypto and @peculiar/x509. Real reports are re-signed with its leaf key,
 * so every check *after* the report signature can be shown to reject one forged field. The test
 * trust store registers this root under the NVIDIA Device Identity CA pin id (with its own
 * fingerprint): nothing here is NVIDIA's.
 */
import { x509, certDer, fingerprint, type Certificate } from '../../providers/common/x509.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { PinIds } from '../../providers/common/pins.js';
import type { TrustStore } from '../../providers/common/types.js';
import { concat } from '../../providers/common/bytes.js';
import { ByteReader } from '../../providers/common/bytes.js';
import { encodeOid, TAG, tlv } from '../../providers/nvidia/der.js';
import { OID_DICE_TCB_INFO } from '../../providers/nvidia/verify.js';
import { SPDM } from '../../providers/nvidia/parse.js';

type Curve = 'P-256' | 'P-384';
const gen = async (curve: Curve = 'P-384'): Promise<CryptoKeyPair> =>
  (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify'])) as CryptoKeyPair;
const sigAlg = (curve: Curve) => ({ name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' });
const FROM = new Date('2020-01-01T00:00:00Z');
const TO = new Date('2099-01-01T00:00:00Z');
let serial = 0x1000;

async function ca(subject: string, keys: CryptoKeyPair, issuer?: { cert: Certificate; keys: CryptoKeyPair }): Promise<Certificate> {
  const extensions = [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)];
  const common = { serialNumber: (serial++).toString(16), notBefore: FROM, notAfter: TO, extensions };
  if (!issuer) return x509.X509CertificateGenerator.createSelfSigned({ ...common, name: subject, keys, signingAlgorithm: sigAlg('P-384') });
  return x509.X509CertificateGenerator.create({ ...common, subject, issuer: issuer.cert.subject, publicKey: keys.publicKey, signingKey: issuer.keys.privateKey, signingAlgorithm: sigAlg('P-384') });
}

/** CompositeDeviceID `SEQUENCE { INTEGER 1, SubjectPublicKeyInfo, FWID { sha384, digest } }` (the Hopper layout). */
async function compositeDeviceId(keys: CryptoKeyPair, fwid: Uint8Array): Promise<Uint8Array> {
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  return tlv(TAG.SEQUENCE, tlv(TAG.INTEGER, Uint8Array.of(1)), spki, tlv(TAG.SEQUENCE, encodeOid('2.16.840.1.101.3.4.2.2'), tlv(TAG.OCTET_STRING, fwid)));
}

export interface NvPkiOptions {
  /** The FWID the leaf certifies; null = no DICE extension. */
  fwid?: Uint8Array | null;
  leafCn?: string;
  bromCn?: string;
  leafCurve?: Curve;
  /** Put the root at the end of the chain PEM (as NVIDIA does). */
  includeRoot?: boolean;
  rootCn?: string;
}

export interface NvTestPki {
  readonly trust: TrustStore;
  readonly root: Certificate;
  readonly chain: readonly Certificate[];
  readonly chainPem: string;
  /** Replaces a report's signature with one by this PKI's leaf. */
  resign(report: Uint8Array): Promise<Uint8Array>;
  /** The leaf's private key as PKCS#8 PEM, for a signer in another process (a test GPU gatherer). */
  leafKeyPem(): Promise<string>;
}

const pem = (c: Certificate): string => c.toString('pem');

export async function makeNvPki(o: NvPkiOptions = {}): Promise<NvTestPki> {
  const rootKeys = await gen();
  const root = await ca(`CN=${o.rootCn ?? 'Test Device Identity CA'}, O=Test`, rootKeys);
  const icaKeys = await gen();
  const ica = await ca('CN=Test GH100 Identity, O=Test', icaKeys, { cert: root, keys: rootKeys });
  const bromKeys = await gen();
  const brom = await ca(`CN=${o.bromCn ?? 'GH100 A01 GSP BROM'}, O=Test`, bromKeys, { cert: ica, keys: icaKeys });
  const curve = o.leafCurve ?? 'P-384';
  const leafKeys = await gen(curve);
  const extensions: x509.Extension[] = [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)];
  if (o.fwid !== null) extensions.push(new x509.Extension(OID_DICE_TCB_INFO, false, (await compositeDeviceId(leafKeys, o.fwid ?? new Uint8Array(48).fill(0x11))) as Uint8Array<ArrayBuffer>));
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16),
    subject: `CN=${o.leafCn ?? 'GH100 A01 GSP FMC LF'}, O=Test`,
    issuer: brom.subject,
    notBefore: FROM,
    notAfter: TO,
    publicKey: leafKeys.publicKey,
    signingKey: bromKeys.privateKey,
    signingAlgorithm: sigAlg('P-384'),
    extensions,
  });
  const chain = o.includeRoot === false ? [leaf, brom, ica] : [leaf, brom, ica, root];
  const anchor = { id: PinIds.NVIDIA_DEVICE_IDENTITY_CA, sha256: await fingerprint(root), source: 'test PKI', cert: root };
  void certDer;
  return {
    trust: createTrustStore([anchor]),
    root,
    chain,
    chainPem: chain.map(pem).join('\n'),
    async resign(report: Uint8Array): Promise<Uint8Array> {
      const signed = report.subarray(0, report.length - SPDM.SIGNATURE_LENGTH);
      const sig = new Uint8Array(await crypto.subtle.sign(sigAlg(curve), leafKeys.privateKey, signed as Uint8Array<ArrayBuffer>));
      return concat(signed, sig);
    },
    async leafKeyPem(): Promise<string> {
      const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey)).toString('base64');
      return `-----BEGIN PRIVATE KEY-----\n${der.replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
    },
  };
}

/** Offsets of a report's opaque data (request 37, response header 8, record, nonce 32). */
function opaqueAt(report: Uint8Array): { lengthAt: number; start: number; end: number } {
  const r = new ByteReader(report);
  r.skip(SPDM.REQUEST_LENGTH + 5);
  const l = r.bytes(3);
  const rec = (l[0] as number) | ((l[1] as number) << 8) | ((l[2] as number) << 16);
  const lengthAt = SPDM.REQUEST_LENGTH + 8 + rec + SPDM.NONCE_LENGTH;
  const len = (report[lengthAt] as number) | ((report[lengthAt + 1] as number) << 8);
  return { lengthAt, start: lengthAt + 2, end: lengthAt + 2 + len };
}

/** Rewrites a report's opaque TLVs (signature left as is: re-sign afterwards). */
export function editOpaque(report: Uint8Array, edit: (fields: Array<{ id: number; value: Uint8Array }>) => Array<{ id: number; value: Uint8Array }>): Uint8Array {
  const { lengthAt, start, end } = opaqueAt(report);
  const r = new ByteReader(report.subarray(start, end));
  const fields: Array<{ id: number; value: Uint8Array }> = [];
  while (r.remaining > 0) {
    const id = r.u16le();
    const size = r.u16le();
    fields.push({ id, value: r.bytes(size) });
  }
  const body = concat(
    ...edit(fields).map((f) => {
      const h = new Uint8Array(4);
      new DataView(h.buffer).setUint16(0, f.id, true);
      new DataView(h.buffer).setUint16(2, f.value.length, true);
      return concat(h, f.value);
    }),
  );
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, body.length, true);
  return concat(report.subarray(0, lengthAt), len, body, report.subarray(end));
}

/** Replaces the request nonce (bytes 4..35). */
export function withNonce(report: Uint8Array, nonce: Uint8Array): Uint8Array {
  const m = report.slice();
  m.set(nonce, 4);
  return m;
}
