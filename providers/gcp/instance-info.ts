/**
 * @module providers/gcp/instance-info
 *
 * Decoder for Google's GCE instance-identity certificate extension, OID
 * 1.3.6.1.4.1.11129.2.1.21, which Google's EK/AK CA puts into every vTPM AK (and EK)
 * certificate it issues. It is the only place the instance's identity is *signed*: the
 * `instance_info` field of the Attestation protobuf is filled in by the client and proves nothing.
 *
 * ASN.1, as go-tpm-tools server/verify.go decodes it (`gceInstanceInfo`,
 * `gceSecurityProperties`), checked byte by byte against the real certificates in
 * test/vectors (go-tpm-tools gce-cos-85 AK certificate, vaportpm GCP fixtures):
 * ```
 * GceInstanceInfo ::= SEQUENCE {
 *   zone               UTF8String,
 *   projectNumber      INTEGER,
 *   projectId          UTF8String,
 *   instanceId         INTEGER,
 *   instanceName       UTF8String,
 *   securityProperties [0] EXPLICIT SEQUENCE {
 *     securityVersion  [0] EXPLICIT INTEGER OPTIONAL,
 *     isProduction     [1] EXPLICIT BOOLEAN OPTIONAL,
 *     -- [2]..[5] EXPLICIT BOOLEAN are present in current certificates; Google does not
 *     -- document them and go-tpm-tools ignores them. They are reported, never interpreted.
 *   } OPTIONAL
 * }
 * ```
 * Read with the common strict DER reader (providers/common/der.ts): single-byte tags, definite
 * minimal lengths, minimal non-negative INTEGERs (≤ 64 bits, go-tpm-tools additionally rejects
 * negatives), BOOLEAN only 0x00/0xFF, context tags strictly increasing, nothing after the outer
 * SEQUENCE.
 */
import { malformed } from '../common/errors.js';
import { boolean, contents, decodeOne, derAs, explicit, readTlv, TAG, unsignedInteger, utf8String, want, type Tlv } from '../common/der.js';

export const INSTANCE_INFO_OID = '1.3.6.1.4.1.11129.2.1.21';

export const InstanceInfoCodes = {
  /** The extension does not decode as GceInstanceInfo (DER rules above). */
  INSTANCE_INFO_MALFORMED: 'INSTANCE_INFO_MALFORMED',
} as const;

export interface GceSecurityProperties {
  readonly securityVersion: bigint | undefined;
  readonly isProduction: boolean | undefined;
  /** Undocumented boolean properties by context tag (2..15). */
  readonly other: Readonly<Record<number, boolean>>;
}

export interface GceInstanceIdentity {
  readonly zone: string;
  readonly projectNumber: bigint;
  readonly projectId: string;
  readonly instanceId: bigint;
  readonly instanceName: string;
  readonly securityProperties: GceSecurityProperties | undefined;
}

const bad = (msg: string, offset?: number) =>
  malformed(InstanceInfoCodes.INSTANCE_INFO_MALFORMED, `GCE instance info extension: ${msg}`, offset === undefined ? {} : { offset });

function securityProperties(t: Tlv): GceSecurityProperties {
  const s = contents(want(explicit(t, 0, 'securityProperties'), TAG.SEQUENCE, 'securityProperties'), 'securityProperties');
  let securityVersion: bigint | undefined;
  let isProduction: boolean | undefined;
  const other: Record<number, boolean> = {};
  let last = -1;
  while (s.remaining > 0) {
    const p = readTlv(s, 'security property');
    if (p.tag < 0xa0 || p.tag > 0xaf) throw bad(`security property: unexpected tag 0x${p.tag.toString(16)}`, p.offset);
    const n = p.tag - 0xa0;
    if (n <= last) throw bad('security properties out of order or repeated', p.offset);
    last = n;
    const value = explicit(p, n, `security property [${n}]`);
    if (n === 0) securityVersion = unsignedInteger(value, 'securityVersion');
    else if (n === 1) isProduction = boolean(value, 'isProduction');
    else other[n] = boolean(value, `security property [${n}]`);
  }
  return Object.freeze({ securityVersion, isProduction, other: Object.freeze(other) });
}

/** Decodes the extension's value (the OCTET STRING contents); DER violations are INSTANCE_INFO_MALFORMED. */
export function parseGceInstanceInfo(der: Uint8Array): GceInstanceIdentity {
  return derAs(InstanceInfoCodes.INSTANCE_INFO_MALFORMED, () => decode(der));
}

function decode(der: Uint8Array): GceInstanceIdentity {
  const r = contents(want(decodeOne(der, 'GceInstanceInfo'), TAG.SEQUENCE, 'GceInstanceInfo'), 'GceInstanceInfo');
  const zone = utf8String(readTlv(r, 'zone'), 'zone');
  const projectNumber = unsignedInteger(readTlv(r, 'projectNumber'), 'projectNumber');
  const projectId = utf8String(readTlv(r, 'projectId'), 'projectId');
  const instanceId = unsignedInteger(readTlv(r, 'instanceId'), 'instanceId');
  const instanceName = utf8String(readTlv(r, 'instanceName'), 'instanceName');
  const props = r.remaining > 0 ? securityProperties(readTlv(r, 'securityProperties')) : undefined;
  r.end('GceInstanceInfo');
  return Object.freeze({ zone, projectNumber, projectId, instanceId, instanceName, securityProperties: props });
}
