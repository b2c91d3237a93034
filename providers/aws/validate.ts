/**
 * @module providers/aws/validate
 *
 * Claims of a verified NitroTPM document against the request: binding, time and identity.
 *
 * - `validateBinding`: the document's `nonce` is present, 32 bytes, and equal (constant time) to
 *   the binding of protocol §2 (the broker's challenge nonce, or its hash with the ephemeral key).
 * - `validateTimestamp`: the document's `timestamp` lies inside its leaf certificate's validity
 *   (the hypervisor signs with a key it holds for 3 hours), is not in the future beyond a small
 *   skew, and — unless the caller writes out `'any'` — is not older than `maxAgeSeconds`.
 *   Freshness proper comes from the nonce; this bounds how long an intercepted document could be
 *   replayed against the same challenge window.
 * - `nitroIdentity`: instance id and region, each proven by the AWS PKI, cross-checked:
 *   the leaf CN is `<module_id>.<region>.aws`; the certificate that issued it is the per-instance
 *   CA `<instance id>.<region>.aws.nitro-enclaves`; the zonal and regional CAs above it name the
 *   same region. The instance id must agree with `module_id`.
 */
import { rejected } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import type { Certificate } from '../common/x509.js';
import type { NitroTpmDocument } from './parse.js';

export const ValidateCodes = {
  NONCE_MISSING: 'NONCE_MISSING',
  NONCE_LENGTH_INVALID: 'NONCE_LENGTH_INVALID',
  NONCE_MISMATCH: 'NONCE_MISMATCH',
  DOCUMENT_TIMESTAMP_INVALID: 'DOCUMENT_TIMESTAMP_INVALID',
  DOCUMENT_TOO_OLD: 'DOCUMENT_TOO_OLD',
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
} as const;

/** Protocol §1: the challenge nonce (and so the binding) is 32 bytes. */
export const BINDING_LENGTH = 32;

export function validateBinding(doc: NitroTpmDocument, binding: Uint8Array): void {
  if (binding.byteLength !== BINDING_LENGTH) {
    throw rejected(ValidateCodes.NONCE_LENGTH_INVALID, `the expected binding must be ${BINDING_LENGTH} bytes, got ${binding.byteLength}`);
  }
  if (doc.nonce === undefined) throw rejected(ValidateCodes.NONCE_MISSING, 'the attestation document carries no nonce');
  if (doc.nonce.byteLength !== BINDING_LENGTH) {
    throw rejected(ValidateCodes.NONCE_LENGTH_INVALID, `the document nonce is ${doc.nonce.byteLength} bytes, not ${BINDING_LENGTH}`);
  }
  if (!timingSafeEqual(doc.nonce, binding)) throw rejected(ValidateCodes.NONCE_MISMATCH, 'the document nonce does not equal the binding');
}

export interface TimestampOptions {
  now: Date;
  /** Maximum document age, or 'any' to leave age to the nonce alone. */
  maxAgeSeconds: number | 'any';
  /** Tolerated clock skew for documents from the future. */
  skewSeconds: number;
}

export function validateTimestamp(doc: NitroTpmDocument, leaf: Certificate, o: TimestampOptions): void {
  const t = doc.timestamp;
  if (t < leaf.notBefore.getTime() || t > leaf.notAfter.getTime()) {
    throw rejected(ValidateCodes.DOCUMENT_TIMESTAMP_INVALID, 'the document timestamp is outside its signing certificate validity');
  }
  const now = o.now.getTime();
  if (t > now + o.skewSeconds * 1000) {
    throw rejected(ValidateCodes.DOCUMENT_TIMESTAMP_INVALID, `the document timestamp ${new Date(t).toISOString()} is in the future`);
  }
  if (o.maxAgeSeconds !== 'any' && now - t > o.maxAgeSeconds * 1000) {
    throw rejected(ValidateCodes.DOCUMENT_TOO_OLD, `the document is older than ${o.maxAgeSeconds} s`);
  }
}

const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

function commonName(c: Certificate): string {
  const cns = c.subjectName.getField('CN');
  if (cns.length !== 1 || typeof cns[0] !== 'string') {
    throw rejected(ValidateCodes.IDENTITY_MISMATCH, `certificate "${c.subject}" does not have exactly one CN`);
  }
  return cns[0];
}

export interface NitroIdentity {
  readonly instanceId: string;
  readonly region: string;
}

/** Instance id and region from `module_id` and the chain (leaf first). */
export function nitroIdentity(doc: NitroTpmDocument, path: readonly Certificate[]): NitroIdentity {
  const [leaf, instanceCa, ...upper] = path;
  if (!leaf || !instanceCa) throw rejected(ValidateCodes.IDENTITY_MISMATCH, 'the Nitro chain is too short to name an instance');
  const leafCn = commonName(leaf);
  const prefix = `${doc.moduleId}.`;
  if (!leafCn.startsWith(prefix) || !leafCn.endsWith('.aws')) {
    throw rejected(ValidateCodes.IDENTITY_MISMATCH, `leaf CN "${leafCn}" does not name module ${doc.moduleId}`);
  }
  const region = leafCn.slice(prefix.length, -'.aws'.length);
  if (!REGION_RE.test(region)) throw rejected(ValidateCodes.IDENTITY_MISMATCH, `leaf CN "${leafCn}" does not name a region`);
  const instCn = commonName(instanceCa);
  if (instCn !== `${doc.instanceId}.${region}.aws.nitro-enclaves`) {
    throw rejected(ValidateCodes.IDENTITY_MISMATCH, `issuing CA "${instCn}" is not the CA of ${doc.instanceId} in ${region}`);
  }
  // Zonal and regional CAs (everything below the root) must be in the same region.
  for (const c of upper.slice(0, -1)) {
    const cn = commonName(c);
    if (!cn.endsWith(`.${region}.aws.nitro-enclaves`)) {
      throw rejected(ValidateCodes.IDENTITY_MISMATCH, `CA "${cn}" is not in region ${region}`);
    }
  }
  return Object.freeze({ instanceId: doc.instanceId, region });
}
