/**
 * @module providers/common/x509
 *
 * The one wrapper around @peculiar/x509 (which parses certificates and verifies signatures,
 * including AMD's RSA-PSS keys that WebCrypto cannot import from SPKI). Its chain builder does
 * not check CA flags, key usage or validity, so path validation is done here:
 *
 * - the path runs leaf → intermediates (from the evidence) → a pinned anchor; the anchor is
 *   matched by its SHA-256 fingerprint, never taken from the evidence;
 * - every signature in the path verifies with the issuer's key;
 * - every certificate (anchor included) is valid at the injected time `at`;
 * - every issuer is a CA (basicConstraints cA=TRUE) with keyCertSign when keyUsage is present,
 *   and path-length constraints hold;
 * - depth and intermediate counts are capped.
 *
 * Memos (per process, bounded, keyed by SHA-256 of the DER, filled only from chains that validated
 * to a pinned anchor): the issuer keys of anchors and intermediates stay imported, and a CA→CA
 * link whose signature verified is not verified again. The leaf's signature is verified on every
 * call, and validity, CA flags and path length are checked on every call at the caller's time, so
 * a warm memo never admits a certificate that has expired since (test/common/chain-memo.test.ts).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AttestError, malformed, rejected, configError } from './errors.js';
import { toHex } from './encoding.js';
import { digestSync, sha256 } from './digest.js';
import { BoundedMemo } from './memo.js';
import { FAST_VERIFY_CRYPTO } from './sig.js';

x509.cryptoProvider.set(globalThis.crypto);

export type Certificate = x509.X509Certificate;
export { x509 };

export const X509Codes = {
  CERT_MALFORMED: 'CERT_MALFORMED',
  CERT_EXPIRED: 'CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'CERT_NOT_YET_VALID',
  CHAIN_UNTRUSTED: 'CHAIN_UNTRUSTED',
  CHAIN_INVALID: 'CHAIN_INVALID',
  CERT_SIGNATURE_INVALID: 'CERT_SIGNATURE_INVALID',
  TRUST_ANCHOR_MISSING: 'TRUST_ANCHOR_MISSING',
  PIN_MISMATCH: 'PIN_MISMATCH',
} as const;

/** A pinned root: its certificate, its fingerprint and where it came from. */
export interface TrustAnchor {
  readonly id: string;
  readonly sha256: string;
  readonly source: string;
  readonly cert: Certificate;
}

export function parseCertificate(der: Uint8Array, what = 'certificate'): Certificate {
  try {
    return new x509.X509Certificate(der as Uint8Array<ArrayBuffer>);
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what} is not a valid X.509 certificate`, { cause });
  }
}

const PEM_RE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, in order. */
export function parsePemCertificates(pem: string, what = 'PEM certificates', max = 16): Certificate[] {
  const out: Certificate[] = [];
  for (const m of pem.matchAll(PEM_RE)) {
    if (out.length >= max) throw malformed('LIMIT_EXCEEDED', `${what}: more than ${max} certificates`);
    const b64 = (m[1] ?? '').replace(/\s+/g, '');
    let der: Uint8Array;
    try {
      der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    } catch (cause) {
      throw malformed(X509Codes.CERT_MALFORMED, `${what}: bad base64 in PEM block`, { cause });
    }
    out.push(parseCertificate(der, what));
  }
  if (out.length === 0) throw malformed(X509Codes.CERT_MALFORMED, `${what}: no PEM certificate found`);
  return out;
}

export function certDer(c: Certificate): Uint8Array {
  return new Uint8Array(c.rawData);
}

const FINGERPRINTS = new WeakMap<Certificate, string>();

export async function fingerprint(c: Certificate): Promise<string> {
  let fp = FINGERPRINTS.get(c);
  if (fp === undefined) {
    const hs = digestSync();
    fp = toHex(hs ? hs('sha256', certDer(c)) : await sha256(certDer(c)));
    FINGERPRINTS.set(c, fp);
  }
  return fp;
}

/** Builds an anchor from certificate bytes, refusing anything whose hash is not the pin. */
export async function anchorFromPin(
  pin: { id: string; sha256: string; source: string },
  cert: Certificate,
): Promise<TrustAnchor> {
  const fp = await fingerprint(cert);
  if (fp !== pin.sha256.toLowerCase()) {
    throw configError(
      X509Codes.PIN_MISMATCH,
      `certificate for ${pin.id} has SHA-256 ${fp}, but the pin is ${pin.sha256}; ` +
        `re-fetch it from ${pin.source} or check the file was not replaced`,
    );
  }
  return Object.freeze({ id: pin.id, sha256: fp, source: pin.source, cert });
}

function checkValidity(c: Certificate, at: Date, what: string): void {
  if (at.getTime() < c.notBefore.getTime()) {
    throw rejected(X509Codes.CERT_NOT_YET_VALID, `${what} is not valid before ${c.notBefore.toISOString()}`);
  }
  if (at.getTime() > c.notAfter.getTime()) {
    throw rejected(X509Codes.CERT_EXPIRED, `${what} expired at ${c.notAfter.toISOString()}`);
  }
}

/** Reads an extension; a malformed one is CERT_MALFORMED, never an untyped exception. */
function ext<T extends x509.Extension>(c: Certificate, type: new (raw: BufferSource) => T, what: string): T | null {
  try {
    return c.getExtension(type);
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${what} has a malformed ${type.name}`, { cause });
  }
}

function checkIsCa(c: Certificate, belowCas: number, what: string): void {
  const bc = ext(c, x509.BasicConstraintsExtension, what);
  if (!bc || !bc.ca) throw rejected(X509Codes.CHAIN_INVALID, `${what} is not a CA (basicConstraints cA is not set)`);
  if (bc.pathLength !== undefined && belowCas > bc.pathLength) {
    throw rejected(X509Codes.CHAIN_INVALID, `${what} path length constraint ${bc.pathLength} exceeded`);
  }
  const ku = ext(c, x509.KeyUsagesExtension, what);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw rejected(X509Codes.CHAIN_INVALID, `${what} key usage does not allow certificate signing`);
  }
}

/** Imported issuer keys, by issuer fingerprint and the signature algorithm they verify. */
const ISSUER_KEYS = new BoundedMemo<CryptoKey>(512);
/** CA→CA links (child fingerprint > issuer fingerprint) whose signature verified in a valid chain. */
const VERIFIED_LINKS = new BoundedMemo<true>(2048);

/** Empties the chain memos (tests that count signature verifications). */
export function clearChainMemo(): void {
  ISSUER_KEYS.clear();
  VERIFIED_LINKS.clear();
}

function sigAlgKey(c: Certificate): string {
  const a = c.signatureAlgorithm as Algorithm & { hash?: Algorithm | string };
  const h = typeof a.hash === 'string' ? a.hash : (a.hash?.name ?? '');
  return `${a.name}/${h}`;
}

/** CA→CA link checks in flight: simultaneous requests over one chain (a burst) share one verify. */
const LINKS_IN_FLIGHT = new Map<string, Promise<boolean>>();

async function checkSignature(child: Certificate, issuer: Certificate, issuerFp: string): Promise<boolean> {
  try {
    const cached = ISSUER_KEYS.get(`${issuerFp}|${sigAlgKey(child)}`);
    return await child.verify({ publicKey: cached ?? issuer.publicKey, signatureOnly: true }, FAST_VERIFY_CRYPTO);
  } catch {
    return false;
  }
}

async function signedBy(child: Certificate, issuer: Certificate, childFp: string, issuerFp: string, childIsLeaf: boolean): Promise<boolean> {
  if (child.issuer !== issuer.subject) return false;
  // The leaf's signature is verified by every call, on its own.
  if (childIsLeaf) return checkSignature(child, issuer, issuerFp);
  const link = `${childFp}>${issuerFp}`;
  if (VERIFIED_LINKS.has(link)) return true;
  let p = LINKS_IN_FLIGHT.get(link);
  if (!p) {
    p = checkSignature(child, issuer, issuerFp).finally(() => LINKS_IN_FLIGHT.delete(link));
    LINKS_IN_FLIGHT.set(link, p);
  }
  return p;
}

/** After a chain validated: keep its issuers' keys imported and its CA→CA links verified. */
async function remember(path: readonly Certificate[], fps: readonly string[]): Promise<void> {
  for (let i = 0; i + 1 < path.length; i++) {
    const child = path[i]!;
    const issuer = path[i + 1]!;
    const k = `${fps[i + 1]}|${sigAlgKey(child)}`;
    if (!ISSUER_KEYS.has(k)) {
      try {
        const alg = { ...issuer.publicKey.algorithm, ...child.signatureAlgorithm } as Algorithm;
        ISSUER_KEYS.set(k, await issuer.publicKey.export(alg, ['verify'], globalThis.crypto));
      } catch {
        // not importable on its own (the library's path still verifies it): no memo
      }
    }
    // The leaf's own signature is checked on every call; only links between CAs are memoised.
    if (i > 0) VERIFIED_LINKS.set(`${fps[i]}>${fps[i + 1]}`, true);
  }
}

export interface ChainOptions {
  leaf: Certificate;
  /** Intermediates from the evidence, in any order; a copy of the root among them is ignored. */
  intermediates?: readonly Certificate[];
  /** Pinned anchors acceptable for this chain. Empty → TRUST_ANCHOR_MISSING (fail closed). */
  anchors: readonly TrustAnchor[];
  /** Verification time (injected clock or `--at`). */
  at: Date;
  /** Maximum certificates in the path including leaf and anchor. */
  maxDepth?: number;
  what?: string;
}

export interface ValidatedChain {
  /** Leaf first, anchor last. */
  readonly path: readonly Certificate[];
  readonly anchor: TrustAnchor;
}

/** Validates `leaf` up to one of `anchors`; throws a typed error otherwise. */
export async function verifyChain(o: ChainOptions): Promise<ValidatedChain> {
  const what = o.what ?? 'certificate chain';
  const maxDepth = o.maxDepth ?? 6;
  if (o.anchors.length === 0) {
    throw rejected(X509Codes.TRUST_ANCHOR_MISSING, `no trust anchor is configured for the ${what}; run 'attest-broker trust fetch'`);
  }
  const inters = o.intermediates ?? [];
  if (inters.length > maxDepth) throw malformed('LIMIT_EXCEEDED', `${what}: too many intermediates (${inters.length})`);
  const anchorFps = new Set(o.anchors.map((a) => a.sha256));
  const interFps = await Promise.all(inters.map(fingerprint));
  // An evidence copy of a pinned root is not an intermediate.
  const pool = inters.filter((_, i) => !anchorFps.has(interFps[i] as string));

  const poolFps = interFps.filter((fp) => !anchorFps.has(fp));
  const path: Certificate[] = [o.leaf];
  const fps: string[] = [await fingerprint(o.leaf)];
  checkValidity(o.leaf, o.at, `${what}: leaf`);
  let current = o.leaf;
  const used = new Set<Certificate>();
  for (;;) {
    if (path.length >= maxDepth) throw rejected(X509Codes.CHAIN_INVALID, `${what} is longer than ${maxDepth}`);
    const currentFp = fps[fps.length - 1]!;
    for (const a of o.anchors) {
      if (await signedBy(current, a.cert, currentFp, a.sha256, path.length === 1)) {
        checkValidity(a.cert, o.at, `${what}: root ${a.id}`);
        checkIsCa(a.cert, path.length - 1, `${what}: root ${a.id}`);
        await remember([...path, a.cert], [...fps, a.sha256]);
        return { path: [...path, a.cert], anchor: a };
      }
    }
    let next: Certificate | undefined;
    let nextFp = '';
    for (const [i, c] of pool.entries()) {
      if (!used.has(c) && (await signedBy(current, c, currentFp, poolFps[i]!, path.length === 1))) {
        next = c;
        nextFp = poolFps[i]!;
        break;
      }
    }
    if (!next) {
      const sameName = [...o.anchors.map((a) => a.cert), ...pool].some((c) => c.subject === current.issuer);
      throw rejected(
        sameName ? X509Codes.CERT_SIGNATURE_INVALID : X509Codes.CHAIN_UNTRUSTED,
        sameName
          ? `${what}: signature of "${current.subject}" does not verify with its issuer's key`
          : `${what}: no pinned root or supplied intermediate issued "${current.subject}" (issuer "${current.issuer}")`,
      );
    }
    used.add(next);
    checkValidity(next, o.at, `${what}: intermediate "${next.subject}"`);
    checkIsCa(next, path.length - 1, `${what}: intermediate "${next.subject}"`);
    path.push(next);
    fps.push(nextFp);
    current = next;
  }
}

/** Imports a certificate's public key for WebCrypto verification with the given algorithm. */
export async function importPublicKey(
  c: Certificate,
  algorithm: RsaHashedImportParams | EcKeyImportParams | RsaPssParams | Algorithm,
): Promise<CryptoKey> {
  try {
    return await c.publicKey.export(algorithm as Algorithm, ['verify'], globalThis.crypto);
  } catch (cause) {
    throw new AttestError(X509Codes.CERT_MALFORMED, `cannot import the certificate's public key`, {
      cause,
    });
  }
}
