/**
 * @module providers/nvidia/ocsp
 *
 * Revocation status of the GPU device chain and the RIM signer chains through OCSP (RFC 6960),
 * over an injected `fetch`, with verified responses cached (bounded, single-flight).
 *
 * Which certificates are checked (as NVIDIA's verifiers do): for a device chain every
 * certificate between the leaf and the root — the leaf is minted by the GPU itself at boot and
 * has no OCSP status; for a RIM chain every certificate below the root. The root is pinned.
 *
 * `checkOne` builds `OCSPRequest { tbsRequest { requestList { Request { CertID } } } }` (§4.1.1)
 * with `CertID { hashAlgorithm, issuerNameHash = H(issuer Name DER), issuerKeyHash =
 * H(issuer subjectPublicKey bits), serialNumber }`, POSTs it (application/ocsp-request) to the
 * *configured* responder URL — never a URL taken from a certificate the evidence supplied — and
 * accepts an answer only when:
 * - it is `OCSPResponse { successful, id-pkix-ocsp-basic BasicOCSPResponse }` (§4.2.1), strict DER;
 * - a SingleResponse's CertID equals the request's byte for byte;
 * - the BasicOCSPResponse signature (ECDSA P-256/P-384 or RSA PKCS#1 v1.5, SHA-256/384) verifies
 *   with the issuer's key, or with a delegated responder certificate carried in `certs` that the
 *   issuer signed, that has extendedKeyUsage id-kp-OCSPSigning and is valid now (§4.2.2.2);
 * - thisUpdate ≤ now + skew, and nextUpdate ≥ now − skew (without nextUpdate, thisUpdate is at
 *   most `maxAgeSeconds` old).
 * Anything else — network error, timeout, HTTP error, garbled or unauthorized response — is
 * `unavailable` (with the reason), never an exception: the mode decides what that means.
 *
 * No request nonce is sent, so a responder's pre-produced responses work and can be cached; the
 * freshness bound is the response validity window instead (RFC 5019 profile).
 *
 * Modes (`checkChain`): `off` checks nothing; `best-effort` refuses a *revoked* certificate
 * (OCSP_REVOKED) and records anything else; `required` also refuses when any certificate lacks a
 * verified `good` answer (OCSP_UNAVAILABLE). `certificateHold` counts as revoked.
 */
import { rejected, unavailable } from '../common/errors.js';
import { digest, type HashName } from '../common/digest.js';
import { toHex } from '../common/encoding.js';
import { timingSafeEqual } from '../common/ct.js';
import { certDer, parseCertificate, x509, type Certificate } from '../common/x509.js';
import { NvidiaCodes } from './codes.js';
import { CollateralCache } from './cache.js';
import { bitStringBytes, certificateFields, children, decodeOne, encodeOid, encodeTlv as tlv, explicit, generalizedTime, oid, smallInt, TAG, want } from '../common/der.js';
import { ecdsaDerToP1363 } from '../tpm/structures.js';

export type OcspMode = 'off' | 'best-effort' | 'required';
export type OcspStatus = 'good' | 'revoked' | 'unknown' | 'unavailable';

export interface OcspCertResult {
  readonly subject: string;
  /** Serial number, hex. */
  readonly serial: string;
  readonly status: OcspStatus;
  /** Why the status is unavailable, or the revocation reason. */
  readonly reason?: string;
  readonly thisUpdate?: string;
  readonly nextUpdate?: string;
  readonly revokedAt?: string;
}

export interface OcspChainResult {
  /** `off`, or the worst status among the checked certificates. */
  readonly status: 'off' | OcspStatus;
  readonly certificates: readonly OcspCertResult[];
}

export interface OcspCheckerOptions {
  readonly fetch: typeof fetch;
  /** The responder (NVIDIA: https://ocsp.ndis.nvidia.com). */
  readonly url: string;
  readonly timeoutMs: number;
  /** Bound on a response's age when it has no nextUpdate, and on how long any answer is cached. */
  readonly maxAgeSeconds: number;
  readonly clockSkewSeconds: number;
  readonly cacheEntries: number;
  /** CertID hash algorithm (NVIDIA's verifiers send SHA-384). */
  readonly certIdHash: Extract<HashName, 'sha256' | 'sha384'>;
}

const OID = Object.freeze({
  BASIC: '1.3.6.1.5.5.7.48.1.1',
  OCSP_SIGNING: '1.3.6.1.5.5.7.3.9',
  EKU: '2.5.29.37',
  SHA256: '2.16.840.1.101.3.4.2.1',
  SHA384: '2.16.840.1.101.3.4.2.2',
});
const SIG_ALGS: Readonly<Record<string, { kind: 'ECDSA' | 'RSA'; hash: 'SHA-256' | 'SHA-384' }>> = Object.freeze({
  '1.2.840.10045.4.3.2': { kind: 'ECDSA', hash: 'SHA-256' },
  '1.2.840.10045.4.3.3': { kind: 'ECDSA', hash: 'SHA-384' },
  '1.2.840.113549.1.1.11': { kind: 'RSA', hash: 'SHA-256' },
  '1.2.840.113549.1.1.12': { kind: 'RSA', hash: 'SHA-384' },
});
const MAX_RESPONSE_BYTES = 64 * 1024;
const MAX_RESPONDER_CERTS = 4;
const REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', '(7)', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise'];

/** Which certificates of a validated path (leaf first, root last) get an OCSP check. */
export function ocspTargets(path: readonly Certificate[], chain: 'device' | 'rim'): Array<{ cert: Certificate; issuer: Certificate }> {
  const out: Array<{ cert: Certificate; issuer: Certificate }> = [];
  for (let i = chain === 'device' ? 1 : 0; i < path.length - 1; i++) out.push({ cert: path[i] as Certificate, issuer: path[i + 1] as Certificate });
  return out;
}

async function verifyWith(signer: Certificate, algOid: string, tbs: Uint8Array, sig: Uint8Array): Promise<boolean> {
  const alg = SIG_ALGS[algOid];
  if (!alg) return false;
  try {
    const k = signer.publicKey.algorithm as Algorithm & { namedCurve?: string };
    if (alg.kind === 'ECDSA') {
      if (k.name !== 'ECDSA' || (k.namedCurve !== 'P-256' && k.namedCurve !== 'P-384')) return false;
      const key = await crypto.subtle.importKey('spki', signer.publicKey.rawData, { name: 'ECDSA', namedCurve: k.namedCurve }, false, ['verify']);
      const raw = ecdsaDerToP1363(sig, k.namedCurve === 'P-256' ? 32 : 48);
      return await crypto.subtle.verify({ name: 'ECDSA', hash: alg.hash }, key, raw as Uint8Array<ArrayBuffer>, tbs as Uint8Array<ArrayBuffer>);
    }
    if (k.name !== 'RSASSA-PKCS1-v1_5' && k.name !== 'RSA-PSS' && k.name !== 'RSA-OAEP') return false;
    const key = await crypto.subtle.importKey('spki', signer.publicKey.rawData, { name: 'RSASSA-PKCS1-v1_5', hash: alg.hash }, false, ['verify']);
    return await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, sig as Uint8Array<ArrayBuffer>, tbs as Uint8Array<ArrayBuffer>);
  } catch {
    return false;
  }
}

/** A delegated responder: issued by `issuer`, id-kp-OCSPSigning, valid at `now` (RFC 6960 §4.2.2.2). */
async function authorizedResponder(c: Certificate, issuer: Certificate, now: Date): Promise<boolean> {
  if (c.issuer !== issuer.subject) return false;
  if (now.getTime() < c.notBefore.getTime() || now.getTime() > c.notAfter.getTime()) return false;
  try {
    const eku = c.getExtension(x509.ExtendedKeyUsageExtension);
    if (!eku || !eku.usages.map(String).includes(OID.OCSP_SIGNING)) return false;
    return await c.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

interface Parsed {
  status: 'good' | 'revoked' | 'unknown';
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  revokedAt?: Date;
  reason?: string;
}

class Unavailable extends Error {}

/** Parses and authenticates a response for `certId` (see the module header). */
async function readResponse(body: Uint8Array, certId: Uint8Array, issuer: Certificate, now: Date): Promise<Parsed> {
  const top = children(want(decodeOne(body, 'OCSPResponse'), TAG.SEQUENCE, 'OCSPResponse'), 'OCSPResponse');
  const status = smallInt(top[0], 'responseStatus', TAG.ENUMERATED);
  if (status !== 0) throw new Unavailable(`responder status ${status} (${['successful', 'malformedRequest', 'internalError', 'tryLater', '4', 'sigRequired', 'unauthorized'][status] ?? '?'})`);
  if (top.length !== 2 || top[1]?.tag !== 0xa0) throw new Unavailable('a successful response without responseBytes');
  const rb = children(want(explicit(top[1], 0, 'responseBytes'), TAG.SEQUENCE, 'ResponseBytes'), 'ResponseBytes');
  if (rb.length !== 2 || oid(rb[0], 'responseType') !== OID.BASIC) throw new Unavailable('not an id-pkix-ocsp-basic response');
  const basicBytes = want(rb[1], TAG.OCTET_STRING, 'response').value;
  const basic = children(want(decodeOne(basicBytes, 'BasicOCSPResponse'), TAG.SEQUENCE, 'BasicOCSPResponse'), 'BasicOCSPResponse');
  if (basic.length < 3 || basic.length > 4) throw new Unavailable('BasicOCSPResponse has the wrong number of members');
  const tbs = want(basic[0], TAG.SEQUENCE, 'tbsResponseData');
  const algId = children(want(basic[1], TAG.SEQUENCE, 'signatureAlgorithm'), 'signatureAlgorithm');
  const sigAlg = oid(algId[0], 'signatureAlgorithm');
  const signature = bitStringBytes(basic[2], 'signature');
  const responders: Certificate[] = [];
  if (basic[3]) {
    if (basic[3].tag !== 0xa0) throw new Unavailable('unexpected BasicOCSPResponse member');
    const list = children(want(explicit(basic[3], 0, 'certs'), TAG.SEQUENCE, 'certs'), 'certs');
    if (list.length > MAX_RESPONDER_CERTS) throw new Unavailable('too many responder certificates');
    for (const c of list) responders.push(parseCertificate(c.raw, 'OCSP responder certificate'));
  }
  // Authenticate before reading the content.
  let authentic = await verifyWith(issuer, sigAlg, tbs.raw, signature);
  for (const r of responders) {
    if (authentic) break;
    if (await authorizedResponder(r, issuer, now)) authentic = await verifyWith(r, sigAlg, tbs.raw, signature);
  }
  if (!authentic) throw new Unavailable('the response is not signed by the issuer or a responder it authorized');

  const rd = children(tbs, 'ResponseData');
  let i = 0;
  if (rd[0]?.tag === 0xa0) {
    if (smallInt(explicit(rd[0], 0, 'version'), 'version') !== 0) throw new Unavailable('ResponseData version is not v1');
    i++;
  }
  const rid = rd[i++];
  if (rid?.tag !== 0xa1 && rid?.tag !== 0xa2) throw new Unavailable('bad responderID');
  generalizedTime(rd[i++], 'producedAt');
  const singles = children(want(rd[i], TAG.SEQUENCE, 'responses'), 'responses');
  const rest = rd.slice(i + 1);
  if (rest.length > 1 || (rest[0] && rest[0].tag !== 0xa1)) throw new Unavailable('unexpected ResponseData members');
  for (const s of singles) {
    const parts = children(want(s, TAG.SEQUENCE, 'SingleResponse'), 'SingleResponse');
    if (!timingSafeEqual(want(parts[0], TAG.SEQUENCE, 'certID').raw, certId)) continue;
    const cs = parts[1];
    const thisUpdate = generalizedTime(parts[2], 'thisUpdate');
    let nextUpdate: Date | undefined;
    if (parts[3]?.tag === 0xa0) nextUpdate = generalizedTime(explicit(parts[3], 0, 'nextUpdate'), 'nextUpdate');
    const out: Parsed = { status: 'unknown', thisUpdate, nextUpdate };
    if (cs?.tag === 0x80 && cs.value.length === 0) out.status = 'good';
    else if (cs?.tag === 0x82 && cs.value.length === 0) out.status = 'unknown';
    else if (cs?.tag === 0xa1) {
      const ri = children(cs, 'RevokedInfo');
      out.status = 'revoked';
      out.revokedAt = generalizedTime(ri[0], 'revocationTime');
      if (ri[1]?.tag === 0xa0) {
        const code = smallInt(explicit(ri[1], 0, 'revocationReason'), 'revocationReason', TAG.ENUMERATED);
        out.reason = REASONS[code] ?? `reason ${code}`;
      }
    } else throw new Unavailable('bad certStatus');
    return out;
  }
  throw new Unavailable('the response does not cover the certificate');
}

export class OcspChecker {
  readonly #o: OcspCheckerOptions;
  readonly #cache: CollateralCache<OcspCertResult>;

  constructor(o: OcspCheckerOptions) {
    this.#o = o;
    this.#cache = new CollateralCache(o.cacheEntries);
  }

  get cache(): CollateralCache<OcspCertResult> {
    return this.#cache;
  }

  /** The status of `cert` (issued by `issuer`) at `now`; never throws for responder trouble. */
  async checkOne(cert: Certificate, issuer: Certificate, now: Date): Promise<OcspCertResult> {
    const o = this.#o;
    const f = certificateFields(certDer(cert), 'certificate');
    const iss = certificateFields(certDer(issuer), 'issuer');
    const hashOid = o.certIdHash === 'sha384' ? OID.SHA384 : OID.SHA256;
    // CertID (RFC 6960 §4.1.1); SHA-2 AlgorithmIdentifier parameters absent (RFC 5754 §2).
    const certId = tlv(
      TAG.SEQUENCE,
      tlv(TAG.SEQUENCE, encodeOid(hashOid)),
      tlv(TAG.OCTET_STRING, await digest(o.certIdHash, f.issuer)),
      tlv(TAG.OCTET_STRING, await digest(o.certIdHash, iss.subjectPublicKey)),
      tlv(TAG.INTEGER, f.serial),
    );
    const base = { subject: cert.subject, serial: toHex(f.serial.length > 1 && f.serial[0] === 0 ? f.serial.subarray(1) : f.serial) };
    // The CertID names issuer and serial: it is the cache key.
    const key = toHex(certId);
    try {
      return await this.#cache.get(key, now, async () => {
        const request = tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, certId))));
        let body: Uint8Array;
        try {
          const res = await o.fetch(o.url, {
            method: 'POST',
            headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
            body: request as Uint8Array<ArrayBuffer>,
            signal: AbortSignal.timeout(o.timeoutMs),
            redirect: 'manual',
          });
          if (!res.ok) throw new Unavailable(`HTTP ${res.status} from the OCSP responder`);
          const len = Number(res.headers.get('content-length') ?? '0');
          if (len > MAX_RESPONSE_BYTES) throw new Unavailable('the OCSP response is too large');
          body = new Uint8Array(await res.arrayBuffer());
          if (body.length > MAX_RESPONSE_BYTES) throw new Unavailable('the OCSP response is too large');
        } catch (e) {
          if (e instanceof Unavailable) throw e;
          throw new Unavailable(`the OCSP responder is unreachable: ${e instanceof Error ? e.message : String(e)}`);
        }
        const p = await readResponse(body, certId, issuer, now);
        const skew = o.clockSkewSeconds * 1000;
        if (p.thisUpdate.getTime() > now.getTime() + skew) throw new Unavailable('the OCSP response is from the future');
        const expires = p.nextUpdate ? p.nextUpdate.getTime() + skew : p.thisUpdate.getTime() + o.maxAgeSeconds * 1000;
        if (expires < now.getTime()) throw new Unavailable('the OCSP response is stale');
        const result: OcspCertResult = Object.freeze({
          ...base,
          status: p.status,
          thisUpdate: p.thisUpdate.toISOString(),
          ...(p.nextUpdate ? { nextUpdate: p.nextUpdate.toISOString() } : {}),
          ...(p.revokedAt ? { revokedAt: p.revokedAt.toISOString() } : {}),
          ...(p.reason ? { reason: p.reason } : {}),
        });
        return { value: result, expiresAt: Math.min(expires, now.getTime() + o.maxAgeSeconds * 1000) };
      });
    } catch (e) {
      const reason = e instanceof Unavailable || (e instanceof Error && 'code' in e) ? e.message : `unexpected: ${String(e)}`;
      return Object.freeze({ ...base, status: 'unavailable', reason });
    }
  }

  /** Checks the certificates `ocspTargets` picks and applies `mode` (see the module header). */
  async checkChain(path: readonly Certificate[], chain: 'device' | 'rim', mode: OcspMode, now: Date, what: string): Promise<OcspChainResult> {
    if (mode === 'off') return Object.freeze({ status: 'off', certificates: Object.freeze([]) });
    const results = await Promise.all(ocspTargets(path, chain).map((t) => this.checkOne(t.cert, t.issuer, now)));
    const revoked = results.find((r) => r.status === 'revoked');
    if (revoked) {
      throw rejected(NvidiaCodes.OCSP_REVOKED, `${what}: "${revoked.subject}" is revoked (${revoked.reason ?? 'no reason given'})`, {
        detail: { serial: revoked.serial, reason: revoked.reason },
      });
    }
    const notGood = results.find((r) => r.status !== 'good');
    if (mode === 'required' && notGood) {
      throw unavailable(NvidiaCodes.OCSP_UNAVAILABLE, `${what}: no good OCSP answer for "${notGood.subject}" (${notGood.status}${notGood.reason ? `: ${notGood.reason}` : ''})`, {
        retryAfter: 60,
      });
    }
    const rank: Record<OcspStatus, number> = { good: 0, unknown: 1, unavailable: 2, revoked: 3 };
    const worst = results.reduce<OcspStatus>((w, r) => (rank[r.status] > rank[w] ? r.status : w), 'good');
    return Object.freeze({ status: worst, certificates: Object.freeze(results) });
  }
}
