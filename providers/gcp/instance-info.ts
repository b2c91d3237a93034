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
 * This is a strict DER reader (X.690 §10): single-byte tags, definite minimal lengths, minimal
 * non-negative INTEGERs (≤ 64 bits, go-tpm-tools additionally rejects negatives), BOOLEAN only
 * 0x00/0xFF, context tags strictly increasing, nothing after the outer SEQUENCE.
 */
import { ByteReader } from '../common/bytes.js';
import { malformed } from '../common/errors.js';
import { boolean, DerCodes, expectTag, tlv, unsignedInteger, utf8String } from './der.js';

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

/** The DER readers below throw DER_MALFORMED; here every decoding failure is the extension's. */
function decoding<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Error && 'code' in e && e.code === DerCodes.DER_MALFORMED) throw bad(e.message);
    throw e;
  }
}

function securityProperties(r: ByteReader): GceSecurityProperties {
  const seq = tlv(r, 'securityProperties');
  expectTag(seq, 0x30, 'securityProperties');
  r.end('securityProperties wrapper');
  const s = seq.body;
  let securityVersion: bigint | undefined;
  let isProduction: boolean | undefined;
  const other: Record<number, boolean> = {};
  let last = -1;
  while (s.remaining > 0) {
    const t = tlv(s, 'security property');
    if (t.tag < 0xa0 || t.tag > 0xaf) throw bad(`security property: unexpected tag 0x${t.tag.toString(16)}`, t.offset);
    const n = t.tag - 0xa0;
    if (n <= last) throw bad('security properties out of order or repeated', t.offset);
    last = n;
    if (n === 0) securityVersion = unsignedInteger(t.body, 'securityVersion');
    else if (n === 1) isProduction = boolean(t.body, 'isProduction');
    else other[n] = boolean(t.body, `security property [${n}]`);
    t.body.end(`security property [${n}]`);
  }
  return Object.freeze({ securityVersion, isProduction, other: Object.freeze(other) });
}

/** Decodes the extension's value (the OCTET STRING contents). */
export function parseGceInstanceInfo(der: Uint8Array): GceInstanceIdentity {
  return decoding(() => decode(der));
}

function decode(der: Uint8Array): GceInstanceIdentity {
  const outer = new ByteReader(der);
  const seq = tlv(outer, 'GceInstanceInfo');
  expectTag(seq, 0x30, 'GceInstanceInfo');
  outer.end('GceInstanceInfo');
  const r = seq.body;
  const zone = utf8String(r, 'zone');
  const projectNumber = unsignedInteger(r, 'projectNumber');
  const projectId = utf8String(r, 'projectId');
  const instanceId = unsignedInteger(r, 'instanceId');
  const instanceName = utf8String(r, 'instanceName');
  let props: GceSecurityProperties | undefined;
  if (r.remaining > 0) {
    const t = tlv(r, 'securityProperties');
    expectTag(t, 0xa0, 'securityProperties');
    props = securityProperties(t.body);
  }
  r.end('GceInstanceInfo');
  return Object.freeze({ zone, projectNumber, projectId, instanceId, instanceName, securityProperties: props });
}
