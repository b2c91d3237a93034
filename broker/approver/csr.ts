/**
 * @module broker/approver/csr
 *
 * What a kubelet's certificate signing request asks for, read from the PKCS#10 bytes (never from
 * the CSR object's metadata, which the requester also controls) and its signature checked.
 *
 * PKCS#10 (RFC 2986): `CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm,
 * signature }`; the requested extensions are the `extensionRequest` attribute (PKCS#9,
 * 1.2.840.113549.1.9.14) — where the kubelet puts its subjectAltName (RFC 5280 §4.2.1.6).
 * Parsing is @peculiar/x509's (the one ASN.1 parser the broker uses for X.509); every field it
 * yields is then checked here against what the kubelet sends (k8s.io/client-go/util/certificate/csr:
 * `Subject{CommonName: "system:node:<name>", Organization: ["system:nodes"]}`; serving CSRs add
 * DNS and IP SANs).
 */
import { x509 } from '../../providers/common/x509.js';

/** The key types the approver may accept (config `approver.keyTypes`). */
export const KEY_TYPES = ['ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ed25519'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
/** What kubelets generate (ECDSA P-256) and what kubeadm's RSA setups use. */
export const DEFAULT_KEY_TYPES: readonly KeyType[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'];

/** At most this many PEM bytes are parsed (a kubelet CSR is well under 2 KiB). */
export const MAX_CSR_BYTES = 16 * 1024;

export interface CsrFacts {
  /** Subject attributes in order, as (short name, value); short names per RFC 4514 where known. */
  subject: Array<{ type: string; value: string }>;
  commonName?: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  /** SAN types other than DNS and IP (email, URI, …), by type. */
  otherNames: string[];
  /** Extensions other than subjectAltName, by OID (a kubelet asks for none). */
  otherExtensions: string[];
  keyType: KeyType | `unsupported:${string}`;
  signatureValid: boolean;
}

const SHORT: Record<string, string> = { '2.5.4.3': 'CN', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '1.2.840.113549.1.9.1': 'E' };
const SAN_OID = '2.5.29.17';

/** `null` when the bytes are not one well-formed PEM CERTIFICATE REQUEST. */
export async function readCsr(requestB64: string): Promise<CsrFacts | null> {
  let pem: string;
  try {
    if (requestB64.length > (MAX_CSR_BYTES * 4) / 3 + 4) return null;
    pem = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(atob(requestB64), (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE REQUEST-----/g);
  if (!blocks || blocks.length !== 1) return null;
  const m = /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(pem);
  if (!m) return null;
  let csr: x509.Pkcs10CertificateRequest;
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = Uint8Array.from(atob(m[1]!.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch {
    return null;
  }
  try {
    const subject: CsrFacts['subject'] = [];
    for (const rdn of csr.subjectName.toJSON()) {
      for (const [type, values] of Object.entries(rdn)) {
        for (const v of values) subject.push({ type: SHORT[type] ?? type, value: typeof v === 'string' ? v : JSON.stringify(v) });
      }
    }
    const facts: CsrFacts = {
      subject,
      organizations: subject.filter((a) => a.type === 'O').map((a) => a.value),
      dnsNames: [],
      ipAddresses: [],
      otherNames: [],
      otherExtensions: [],
      keyType: await keyTypeOf(csr),
      signatureValid: false,
    };
    const cns = subject.filter((a) => a.type === 'CN');
    if (cns.length === 1) facts.commonName = cns[0]!.value;
    for (const ext of csr.extensions) {
      if (ext.type !== SAN_OID) {
        facts.otherExtensions.push(ext.type);
        continue;
      }
      const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
      for (const n of san.names.items) {
        if (n.type === 'dns') facts.dnsNames.push(n.value);
        else if (n.type === 'ip') facts.ipAddresses.push(n.value);
        else facts.otherNames.push(n.type);
      }
    }
    facts.signatureValid = await csr.verify().catch(() => false);
    return facts;
  } catch {
    return null;
  }
}

async function keyTypeOf(csr: x509.Pkcs10CertificateRequest): Promise<CsrFacts['keyType']> {
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  const spki = new Uint8Array(csr.publicKey.rawData);
  if (alg.name === 'ECDSA' || alg.name === 'ECDH') {
    const c = alg.namedCurve;
    if (c === 'P-256' || c === 'P-384' || c === 'P-521') return `ecdsa-${c.toLowerCase().replace('-', '')}` as KeyType;
    return `unsupported:ec-${c ?? 'unknown'}`;
  }
  if (alg.name === 'Ed25519') return 'ed25519';
  if (alg.name?.startsWith('RSA')) {
    const k = await crypto.subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify']);
    const bits = (k.algorithm as unknown as { modulusLength: number }).modulusLength;
    if (bits === 2048 || bits === 3072 || bits === 4096) return `rsa-${bits}` as KeyType;
    return `unsupported:rsa-${bits}`;
  }
  return `unsupported:${alg.name ?? 'unknown'}`;
}
