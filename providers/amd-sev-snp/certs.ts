/**
 * @module providers/amd-sev-snp/certs
 *
 * AMD's X.509 extensions on VCEK and VLEK certificates ("Versioned Chip Endorsement Key (VCEK)
 * Certificate and KDS Interface Specification", pub. 57230, §3 "VCEK Certificate Extensions";
 * VLEK: pub. 58369 §3). Every value is the DER of a small ASN.1 type inside the extension's
 * OCTET STRING, except hwID, which is the raw 64 bytes of CHIP_ID (8 bytes on Turin):
 *
 * | OID                         | name          | ASN.1 type            |
 * |-----------------------------|---------------|-----------------------|
 * | 1.3.6.1.4.1.3704.1.1        | structVersion | INTEGER               |
 * | 1.3.6.1.4.1.3704.1.2        | productName   | IA5String ("Milan-B0")|
 * | 1.3.6.1.4.1.3704.1.3.1      | blSPL         | INTEGER               |
 * | 1.3.6.1.4.1.3704.1.3.2      | teeSPL        | INTEGER               |
 * | 1.3.6.1.4.1.3704.1.3.3      | snpSPL        | INTEGER               |
 * | 1.3.6.1.4.1.3704.1.3.8      | ucodeSPL      | INTEGER               |
 * | 1.3.6.1.4.1.3704.1.3.9      | fmcSPL        | INTEGER (Turin)       |
 * | 1.3.6.1.4.1.3704.1.4        | hwID          | raw bytes (VCEK only) |
 * | 1.3.6.1.4.1.3704.1.5        | cspID         | IA5String (VLEK only) |
 *
 * The decoder is strict: definite short/long lengths only, exact lengths, non-negative
 * integers that fit in a byte (SPLs are 8-bit), printable ASCII strings.
 */
import { ByteReader } from '../common/bytes.js';
import { AttestError, malformed } from '../common/errors.js';
import type { Certificate } from '../common/x509.js';
import type { SnpProduct } from './parse.js';
import { SNP_PRODUCTS } from './parse.js';

export const SnpCertCodes = {
  SNP_CERT_EXTENSION_INVALID: 'SNP_CERT_EXTENSION_INVALID',
  SNP_CERT_EXTENSION_MISSING: 'SNP_CERT_EXTENSION_MISSING',
} as const;

const OID = {
  productName: '1.3.6.1.4.1.3704.1.2',
  blSPL: '1.3.6.1.4.1.3704.1.3.1',
  teeSPL: '1.3.6.1.4.1.3704.1.3.2',
  snpSPL: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSPL: '1.3.6.1.4.1.3704.1.3.8',
  fmcSPL: '1.3.6.1.4.1.3704.1.3.9',
  hwID: '1.3.6.1.4.1.3704.1.4',
  cspID: '1.3.6.1.4.1.3704.1.5',
} as const;

export interface AmdKeyExtensions {
  /** 'vcek' when hwID is present, 'vlek' when cspID is present (never both). */
  readonly kind: 'vcek' | 'vlek';
  /** productName as written ("Milan-B0"), and the product family it names. */
  readonly productName: string | undefined;
  readonly product: SnpProduct | undefined;
  readonly blSPL: number;
  readonly teeSPL: number;
  readonly snpSPL: number;
  readonly ucodeSPL: number;
  readonly fmcSPL: number | undefined;
  readonly hwId: Uint8Array | undefined;
  readonly cspId: string | undefined;
}

function bad(what: string, cause?: unknown): AttestError {
  return malformed(SnpCertCodes.SNP_CERT_EXTENSION_INVALID, `AMD certificate extension ${what} is not valid DER`, { cause });
}

/** One DER TLV with the expected tag; the whole input must be that TLV. */
function derValue(value: Uint8Array, tag: number, what: string): Uint8Array {
  try {
    const r = new ByteReader(value);
    if (r.u8() !== tag) throw bad(what);
    let len = r.u8();
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 2) throw bad(what);
      len = 0;
      for (let i = 0; i < n; i++) len = (len << 8) | r.u8();
      if (len < 0x80) throw bad(what); // non-minimal length
    }
    const out = r.bytes(len);
    r.end(what);
    return out;
  } catch (e) {
    if (e instanceof AttestError && e.code === SnpCertCodes.SNP_CERT_EXTENSION_INVALID) throw e;
    throw bad(what, e);
  }
}

function derU8Integer(value: Uint8Array, what: string): number {
  const c = derValue(value, 0x02, what);
  // Minimal two's-complement encoding of 0..255: one byte < 0x80, or 0x00 followed by ≥ 0x80.
  if (c.length === 1 && c[0]! < 0x80) return c[0]!;
  if (c.length === 2 && c[0] === 0 && c[1]! >= 0x80) return c[1]!;
  throw bad(what);
}

function derIa5(value: Uint8Array, what: string): string {
  const c = derValue(value, 0x16, what);
  if (c.length === 0 || c.length > 64 || c.some((b) => b < 0x20 || b > 0x7e)) throw bad(what);
  return String.fromCharCode(...c);
}

/** Decodes AMD's extensions from a VCEK or VLEK certificate. */
export function amdKeyExtensions(cert: Certificate): AmdKeyExtensions {
  const ext = new Map<string, Uint8Array>();
  for (const e of cert.extensions) {
    if (ext.has(e.type)) throw malformed(SnpCertCodes.SNP_CERT_EXTENSION_INVALID, `duplicate extension ${e.type}`);
    ext.set(e.type, new Uint8Array(e.value));
  }
  const need = (oid: string, what: string): Uint8Array => {
    const v = ext.get(oid);
    if (!v) throw malformed(SnpCertCodes.SNP_CERT_EXTENSION_MISSING, `AMD certificate lacks the ${what} extension (${oid})`);
    return v;
  };
  const hw = ext.get(OID.hwID);
  const csp = ext.get(OID.cspID);
  if ((hw === undefined) === (csp === undefined)) {
    throw malformed(SnpCertCodes.SNP_CERT_EXTENSION_INVALID, 'AMD certificate must carry exactly one of hwID (VCEK) or cspID (VLEK)');
  }
  if (hw && hw.length !== 64 && hw.length !== 8) throw bad('hwID');
  const pn = ext.get(OID.productName);
  const productName = pn ? derIa5(pn, 'productName') : undefined;
  const family = productName?.split('-')[0];
  const product = SNP_PRODUCTS.find((p) => p === family);
  const fmc = ext.get(OID.fmcSPL);
  return Object.freeze({
    kind: hw ? 'vcek' : 'vlek',
    productName,
    product,
    blSPL: derU8Integer(need(OID.blSPL, 'blSPL'), 'blSPL'),
    teeSPL: derU8Integer(need(OID.teeSPL, 'teeSPL'), 'teeSPL'),
    snpSPL: derU8Integer(need(OID.snpSPL, 'snpSPL'), 'snpSPL'),
    ucodeSPL: derU8Integer(need(OID.ucodeSPL, 'ucodeSPL'), 'ucodeSPL'),
    fmcSPL: fmc ? derU8Integer(fmc, 'fmcSPL') : undefined,
    hwId: hw ? hw.slice() : undefined,
    cspId: csp ? derIa5(csp, 'cspID') : undefined,
  });
}
