/**
 * @module providers/aws/verify
 *
 * Authenticity of a NitroTPM attestation document: COSE_Sign1 ES384 signature by a certificate
 * that chains to the pinned AWS Nitro root G1.
 *
 * `verifyAttestationDocument` checks, in this order:
 * - the COSE_Sign1 envelope is strict and says ES384 (`cose.ts`);
 * - the payload is strict CBOR; only `certificate` and `cabundle` are read from it at this point;
 * - the leaf parses (extensions included), has a P-384 key and, if it states a key usage, may
 *   sign (digitalSignature); the COSE ES384 signature verifies
 *   with it over the raw Sig_structure. This runs before path validation only because it is the
 *   cheaper check (one verification): a document altered anywhere is turned away early. A
 *   passing signature means nothing until the chain below holds;
 * - the chain `certificate` ← `cabundle[n-1]` ← … ← `cabundle[1]` ← pinned root
 *   (`PinIds.AWS_NITRO_ROOT_G1`, matched by SHA-256 fingerprint in the trust store; the
 *   cabundle's own copy of the root, `cabundle[0]`, must be byte-identical to the pinned root
 *   and is never used as the anchor) validates through `common/x509.verifyChain`: signatures,
 *   CA flags, path length, validity of every certificate at the injected time. The leaf lives
 *   3 hours, the instance certificate a day, the zonal and regional ones days to weeks;
 * - every certificate in the path has a P-384 key and an ecdsa-with-SHA384 signature (the
 *   AWS Nitro PKI uses nothing else, so anything else is not AWS);
 * - the path uses every cabundle certificate in AWS's root-first order (no unexplained extras);
 * - only then is the payload read as a NitroTPM document (`parse.ts`), which rejects Enclave
 *   documents with DOCUMENT_TYPE_MISMATCH.
 *
 * Chain cache: everything above the leaf (instance, zonal, regional certificates and the root) is
 * shared by many documents — the instance certificate by every document of an instance for a day,
 * the zonal and regional ones by a whole zone or region. The validated intermediate path is cached
 * under the exact cabundle bytes; a hit still re-checks, per document, the anchor is
 * still trusted, every cached certificate's validity at the injected time, and the leaf's own
 * signature, issuer name, algorithm and validity. Only the issuer-to-issuer signatures and CA
 * checks (pure functions of the cached bytes) are skipped. The cache is bounded (LRU).
 *
 * Leaf memo (same cache, bounded): a leaf whose exact DER (by SHA-256) already parsed and passed
 * the time-independent checks above (extensions, P-384, key usage) is not parsed again and keeps
 * its imported key; its validity at the injected time, its issuer and its signature, and the
 * COSE signature, are checked on every document (test/aws/nitrotpm.test.ts moves the clock past
 * the leaf with a warm memo).
 */
import { isAttestError, malformed, rejected } from '../common/errors.js';
import { X509Codes, certDer, parseCertificate, verifyChain, type Certificate, type TrustAnchor, x509 } from '../common/x509.js';
import { timingSafeEqual } from '../common/ct.js';
import { ecdsaDerToP1363 } from '../tpm/structures.js';
import { BoundedMemo } from '../common/memo.js';
import { digestSync, sha256 } from '../common/digest.js';
import { toHex } from '../common/encoding.js';
import { verifySignature } from '../common/sig.js';
import { parseCoseSign1, verifyCoseSign1, type CoseSign1 } from './cose.js';
import { certificateFields } from '../common/der.js';
import {
  decodeDocumentPayload,
  parseAttestationDocument,
  signingMaterial,
  type NitroTpmDocument,
} from './parse.js';

export const ChainCodes = {
  /** A certificate in the Nitro chain is not P-384 / ecdsa-with-SHA384. */
  CERT_ALG_UNSUPPORTED: 'CERT_ALG_UNSUPPORTED',
  /** The cabundle is not AWS's root-first path to the pinned root. */
  CABUNDLE_INVALID: 'CABUNDLE_INVALID',
  /** The signing leaf's key usage does not allow digital signatures. */
  CERT_USAGE_INVALID: 'CERT_USAGE_INVALID',
} as const;

export interface VerifiedDocument {
  readonly cose: CoseSign1;
  readonly document: NitroTpmDocument;
  /** Leaf first, pinned root last. */
  readonly path: readonly Certificate[];
  readonly anchor: TrustAnchor;
}

interface CachedPath {
  readonly anchorSha256: string;
  /** The certificate that issued the leaf, then upwards; the pinned root last. */
  readonly above: readonly Certificate[];
  /** The issuing certificate's key, imported once for leaf-signature checks. */
  readonly issuerKey: CryptoKey;
}

/**
 * A signing leaf that parsed and passed every time-independent check (extensions decode, P-384
 * with ecdsa-with-SHA384, key usage allows signing), with its key imported. Nothing here says the
 * leaf is trusted or valid now: its signature, issuer and validity are checked on every call.
 */
interface CachedLeaf {
  readonly cert: Certificate;
  readonly key: CryptoKey;
}

/**
 * Bounded LRU of validated intermediate paths, keyed by the exact cabundle bytes, and of parsed
 * signing leaves (keyed by the SHA-256 of their DER): a node's 3-hour leaf signs every document
 * it asks for in that time, and parsing it and importing its key cost more than the COSE
 * signature check itself.
 */
export class NitroChainCache {
  readonly #max: number;
  readonly #map = new Map<string, CachedPath>();
  /** @internal */
  readonly leaves: BoundedMemo<CachedLeaf> | undefined;
  hits = 0;
  misses = 0;

  constructor(maxEntries = 256) {
    this.#max = Math.max(0, Math.floor(maxEntries));
    this.leaves = this.#max > 0 ? new BoundedMemo<CachedLeaf>(this.#max) : undefined;
  }
  get size(): number {
    return this.#map.size;
  }
  get(key: string): CachedPath | undefined {
    const v = this.#map.get(key);
    if (v) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: string, v: CachedPath): void {
    if (this.#max === 0) return;
    this.#map.delete(key);
    this.#map.set(key, v);
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as string;
      this.#map.delete(oldest);
    }
  }
  clear(): void {
    this.#map.clear();
    this.leaves?.clear();
  }
}

function isP384(c: Certificate): boolean {
  const k = c.publicKey.algorithm as Algorithm & { namedCurve?: string };
  const s = c.signatureAlgorithm as EcdsaParams & { hash?: { name?: string } };
  return k.name === 'ECDSA' && k.namedCurve === 'P-384' && s.name === 'ECDSA' && s.hash?.name === 'SHA-384';
}

function requireP384(c: Certificate, what: string): void {
  if (!isP384(c)) throw rejected(ChainCodes.CERT_ALG_UNSUPPORTED, `${what} "${c.subject}" is not ECDSA P-384 with SHA-384`);
}

/** The signing leaf, when it states a key usage, must allow digitalSignature (RFC 5280 §4.2.1.3). */
function requireSigningUsage(leaf: Certificate): void {
  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    throw rejected(ChainCodes.CERT_USAGE_INVALID, `${WHAT}: the leaf's key usage does not allow digital signatures`);
  }
}

function checkValidity(c: Certificate, at: Date, what: string): void {
  if (at.getTime() < c.notBefore.getTime()) {
    throw rejected(X509Codes.CERT_NOT_YET_VALID, `${what} is not valid before ${c.notBefore.toISOString()}`);
  }
  if (at.getTime() > c.notAfter.getTime()) {
    throw rejected(X509Codes.CERT_EXPIRED, `${what} expired at ${c.notAfter.toISOString()}`);
  }
}

/** Forces every extension of `c` to decode; any failure is CERT_MALFORMED. */
function decodeExtensions(c: Certificate, what: string): void {
  try {
    for (const e of c.extensions) {
      if (e.type === x509.BasicConstraintsExtension.NAME) c.getExtension(x509.BasicConstraintsExtension);
      else if (e.type === x509.KeyUsagesExtension.NAME) c.getExtension(x509.KeyUsagesExtension);
    }
    void c.subjectName.toJSON();
    void c.issuerName.toJSON();
    void c.publicKey.algorithm;
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${WHAT}: ${what} has a malformed extension or name`, { cause });
  }
}

/** Imports a (P-384-checked) certificate's key straight through WebCrypto. */
export async function importP384(c: Certificate): Promise<CryptoKey> {
  try {
    // Extractable (a public key reveals nothing) so common/sig.ts may verify synchronously.
    return await crypto.subtle.importKey('spki', c.publicKey.rawData, { name: 'ECDSA', namedCurve: 'P-384' }, true, ['verify']);
  } catch (cause) {
    throw malformed(X509Codes.CERT_MALFORMED, `${WHAT}: cannot import the key of "${c.subject}"`, { cause });
  }
}

/**
 * The leaf's ecdsa-with-SHA384 signature (RFC 5280 §4.1.1.3, RFC 5758 §3.2) checked with a cached
 * issuer key. `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT
 * STRING }`: the TBS bytes and the DER ECDSA-Sig-Value are sliced from the exact DER that
 * @peculiar/x509 parsed (which already required ecdsa-with-SHA384); any slicing disagreement
 * makes the check fail, never pass.
 */
async function leafSignedBy(leaf: Certificate, issuerKey: CryptoKey): Promise<boolean> {
  try {
    const { tbs, signature } = certificateFields(certDer(leaf), 'leaf certificate');
    const sig = ecdsaDerToP1363(signature, 48);
    return await verifySignature({ name: 'ECDSA', hash: 'SHA-384' }, issuerKey, sig, tbs);
  } catch {
    return false;
  }
}

/**
 * Cache key: the SHA-256 of the length-prefixed cabundle certificates where the runtime hashes
 * synchronously (node:crypto, common/digest.ts), else the exact bytes themselves as a Latin-1
 * string (a few KiB per entry, bounded by the LRU size), so the hit path never waits on an
 * asynchronous WebCrypto call.
 */
function cabundleKey(cabundle: readonly Uint8Array[]): string {
  const hs = digestSync();
  if (hs) {
    const parts: Uint8Array[] = [];
    for (const c of cabundle) parts.push(Uint8Array.of(c.byteLength >>> 24, (c.byteLength >>> 16) & 0xff, (c.byteLength >>> 8) & 0xff, c.byteLength & 0xff), c);
    return `sha256:${toHex(hs('sha256', ...parts))}`;
  }
  let k = '';
  for (const c of cabundle) {
    k += String.fromCharCode(c.byteLength >>> 8, c.byteLength & 0xff);
    for (let i = 0; i < c.byteLength; i += 0x2000) k += String.fromCharCode(...c.subarray(i, i + 0x2000));
  }
  return k;
}

const WHAT = 'AWS Nitro certificate chain';

/** Validates `leaf` ← cabundle to the pinned root (see the module header), using `cache`. */
export async function verifyNitroChain(
  leaf: Certificate,
  cabundle: readonly Uint8Array[],
  anchors: readonly TrustAnchor[],
  at: Date,
  cache?: NitroChainCache,
): Promise<{ path: readonly Certificate[]; anchor: TrustAnchor }> {
  if (anchors.length === 0) {
    throw rejected(X509Codes.TRUST_ANCHOR_MISSING, `no AWS Nitro root is configured; run 'attest-broker trust fetch'`);
  }
  const key = cache ? cabundleKey(cabundle) : '';
  const cached = cache?.get(key);
  const anchor = cached && anchors.find((a) => a.sha256 === cached.anchorSha256);
  if (cache && cached && anchor) {
    cache.hits++;
    // The same checks verifyChain makes for the leaf and the time-dependent ones for the rest.
    checkValidity(leaf, at, `${WHAT}: leaf`);
    const issuer = cached.above[0] as Certificate;
    if (leaf.issuer !== issuer.subject) {
      throw rejected(X509Codes.CHAIN_UNTRUSTED, `${WHAT}: leaf issuer "${leaf.issuer}" is not "${issuer.subject}"`);
    }
    requireP384(leaf, `${WHAT}: leaf`);
    if (!(await leafSignedBy(leaf, cached.issuerKey))) {
      throw rejected(X509Codes.CERT_SIGNATURE_INVALID, `${WHAT}: leaf signature does not verify with its issuer's key`);
    }
    for (const c of cached.above) checkValidity(c, at, `${WHAT}: "${c.subject}"`);
    return { path: [leaf, ...cached.above], anchor };
  }
  if (cache) cache.misses++;

  // AWS order: cabundle[0] is the root. It is never used as the anchor, but it must be a byte
  // copy of a pinned one; a bundle rooted anywhere else is not the AWS Nitro PKI.
  const rootCopy = cabundle[0] as Uint8Array;
  if (!anchors.some((a) => timingSafeEqual(certDer(a.cert), rootCopy))) {
    throw rejected(X509Codes.CHAIN_UNTRUSTED, `${WHAT}: cabundle[0] is not the pinned AWS Nitro root`);
  }
  const bundle = cabundle.map((d, i) => parseCertificate(d, `cabundle[${i}]`));
  // @peculiar/x509 decodes extensions lazily, so a malformed extension would surface as an
  // untyped error inside path validation: decode them all up front, as CERT_MALFORMED.
  [leaf, ...bundle].forEach((c, i) => decodeExtensions(c, i === 0 ? 'leaf' : `cabundle[${i - 1}]`));
  let chain: Awaited<ReturnType<typeof verifyChain>>;
  try {
    chain = await verifyChain({ leaf, intermediates: bundle, anchors, at, maxDepth: 10, what: WHAT });
  } catch (cause) {
    if (isAttestError(cause)) throw cause;
    throw malformed(X509Codes.CERT_MALFORMED, `${WHAT}: a certificate could not be decoded`, { cause });
  }
  // AWS order: cabundle[0] is the root, cabundle[n-1] issued the leaf. The path must be exactly
  // leaf, cabundle[n-1], …, cabundle[1], pinned root, with cabundle[0] a byte copy of that root.
  const n = bundle.length;
  if (!timingSafeEqual(rootCopy, certDer(chain.anchor.cert))) {
    throw rejected(ChainCodes.CABUNDLE_INVALID, `${WHAT}: cabundle[0] is not the root the path reached`);
  }
  if (chain.path.length !== n + 1) {
    throw rejected(ChainCodes.CABUNDLE_INVALID, `${WHAT}: the path does not use every cabundle certificate`);
  }
  for (let i = 1; i < n; i++) {
    const inPath = certDer(chain.path[i] as Certificate);
    if (!timingSafeEqual(inPath, cabundle[n - i] as Uint8Array)) {
      throw rejected(ChainCodes.CABUNDLE_INVALID, `${WHAT}: cabundle is not in root-first order`);
    }
  }
  chain.path.forEach((c, i) => requireP384(c, `${WHAT}: certificate ${i}`));
  if (cache) {
    const issuer = chain.path[1] as Certificate;
    const issuerKey = await importP384(issuer);
    cache.set(key, Object.freeze({ anchorSha256: chain.anchor.sha256, above: Object.freeze(chain.path.slice(1)), issuerKey }));
  }
  return { path: chain.path, anchor: chain.anchor };
}

export interface VerifyDocumentOptions {
  /** Pinned anchors for the AWS Nitro root (from the trust store). */
  anchors: readonly TrustAnchor[];
  /** The injected verification time. */
  at: Date;
  cache?: NitroChainCache;
}

/**
 * The signing leaf parsed, its time-independent checks passed and its key imported — from `memo`
 * when these exact bytes passed before (only successes are kept).
 */
async function signingLeaf(der: Uint8Array, memo: BoundedMemo<CachedLeaf> | undefined): Promise<CachedLeaf> {
  const hs = memo ? digestSync() : null;
  const k = memo ? toHex(hs ? hs('sha256', der) : await sha256(der)) : '';
  const hit = memo?.get(k);
  if (hit) return hit;
  const cert = parseCertificate(der, 'Nitro document certificate');
  decodeExtensions(cert, 'leaf');
  requireP384(cert, `${WHAT}: leaf`);
  requireSigningUsage(cert);
  const entry = Object.freeze({ cert, key: await importP384(cert) });
  memo?.set(k, entry);
  return entry;
}

/** COSE + chain + shape: see the module header for the checks and their order. */
export async function verifyAttestationDocument(bytes: Uint8Array, o: VerifyDocumentOptions): Promise<VerifiedDocument> {
  const cose = parseCoseSign1(bytes);
  const payload = decodeDocumentPayload(cose.payload);
  const { certificate, cabundle } = signingMaterial(payload);
  const { cert: leaf, key } = await signingLeaf(certificate, o.cache?.leaves);
  // The COSE signature first (one verification): a document altered anywhere — payload, leaf or
  // cabundle — is turned away before the costlier path validation. The leaf key is not trusted
  // yet; the chain below is what makes a passing signature mean anything.
  await verifyCoseSign1(cose, key);
  const { path, anchor } = await verifyNitroChain(leaf, cabundle, o.anchors, o.at, o.cache);
  // --- authenticated from here on ---
  const document = parseAttestationDocument(payload);
  return Object.freeze({ cose, document, path, anchor });
}

