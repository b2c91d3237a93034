/**
 * @module providers/common/trust
 *
 * An immutable in-memory `TrustStore` built from pinned anchors. Loading from files or the
 * network is the Node entry's job (`broker/trust/*.node.ts`); this module only checks pins.
 */
import type { TrustStore } from './types.js';
import { anchorFromPin, parsePemCertificates, parseCertificate, fingerprint, type TrustAnchor, type Certificate } from './x509.js';
import type { Pin } from './pins.js';
import { fromUtf8 } from './encoding.js';

export function createTrustStore(anchors: readonly TrustAnchor[]): TrustStore {
  const byId = new Map<string, TrustAnchor>();
  for (const a of anchors) byId.set(a.id, a);
  const frozen = Object.freeze([...byId.keys()]);
  return Object.freeze({
    anchors(ids: readonly string[]): readonly TrustAnchor[] {
      const out: TrustAnchor[] = [];
      for (const id of ids) {
        const a = byId.get(id);
        if (a) out.push(a);
      }
      return out;
    },
    ids: () => frozen,
  });
}

/**
 * Finds the certificate matching `pin` in `bytes` (DER, or PEM holding one or more certificates)
 * and returns it as an anchor; throws PIN_MISMATCH if none matches.
 */
export async function anchorFromBytes(pin: Pick<Pin, 'id' | 'sha256' | 'source'>, bytes: Uint8Array): Promise<TrustAnchor> {
  let certs: Certificate[];
  const head = bytes.subarray(0, 64);
  if (fromUtf8(head.filter((b) => b < 0x80)).includes('-----BEGIN')) {
    certs = parsePemCertificates(fromUtf8(bytes, `${pin.id} PEM`), pin.id);
  } else {
    certs = [parseCertificate(bytes, pin.id)];
  }
  for (const c of certs) {
    if ((await fingerprint(c)) === pin.sha256.toLowerCase()) return anchorFromPin(pin, c);
  }
  // Report the mismatch for the first certificate (with its actual fingerprint).
  return anchorFromPin(pin, certs[0] as Certificate);
}
