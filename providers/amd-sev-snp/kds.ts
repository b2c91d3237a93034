/**
 * @module providers/amd-sev-snp/kds
 *
 * Where the VCEK and the ASK/ASVK come from: the evidence first, else AMD's Key Distribution
 * Service ("VCEK Certificate and KDS Interface Specification", pub. 57230, §4 "KDS
 * Interface"):
 *
 * - `GET {base}/vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=` (`&fmcSPL=` on
 *   Turin) → the VCEK, DER (`application/pkix-cert`). `hwid` is CHIP_ID in hex (its first
 *   8 bytes on Turin); the SPLs are REPORTED_TCB's components, since a VCEK is derived from
 *   the chip secret and the TCB.
 * - `GET {base}/vcek/v1/{product}/cert_chain` and `{base}/vlek/v1/{product}/cert_chain` → PEM,
 *   ASK (or ASVK) then ARK. Only the ASK/ASVK is used as an intermediate; the ARK is always the
 *   pinned one from the trust store, never this copy.
 * - VLEKs are issued to cloud providers and cannot be fetched by chip: they must come with the
 *   evidence.
 *
 * KDS rate-limits (about one certificate per 10 s per IP; HTTP 429), so:
 * - results are cached (a VCEK for a (chip, TCB) pair never changes; the cache is bounded and
 *   evicts its oldest entry first);
 * - concurrent misses for the same URL share one request (single-flight);
 * - failures are not cached, and a 429 becomes `KDS_RATE_LIMITED` with `retryAfter`.
 *
 * Network access is the injected `fetch` (VerifyContext), so tests point the real client at a
 * local server and Workers use their own fetch. Responses are size-capped.
 */
import { AttestError, unavailable, rejected } from '../common/errors.js';
import { toHex, fromUtf8 } from '../common/encoding.js';
import { parseCertificate, parsePemCertificates, type Certificate } from '../common/x509.js';
import type { SnpProduct, SnpReport, SnpTcb } from './parse.js';
import { decodeTcb, productFromCpuid } from './parse.js';
import { amdKeyExtensions } from './certs.js';

export const KdsCodes = {
  KDS_UNAVAILABLE: 'KDS_UNAVAILABLE',
  KDS_RATE_LIMITED: 'KDS_RATE_LIMITED',
  KDS_RESPONSE_INVALID: 'KDS_RESPONSE_INVALID',
  SNP_VLEK_REQUIRED: 'SNP_VLEK_REQUIRED',
  SNP_PRODUCT_UNKNOWN: 'SNP_PRODUCT_UNKNOWN',
} as const;

export const AMD_KDS_BASE_URL = 'https://kdsintf.amd.com';
const MAX_RESPONSE_BYTES = 64 * 1024;

export interface KdsClientOptions {
  /** Default `https://kdsintf.amd.com`. */
  readonly baseUrl?: string;
  /** Cached responses kept (default 4096). */
  readonly maxEntries?: number;
}

/** A VCEK request: everything the KDS URL is made of. */
export interface VcekRequest {
  readonly product: SnpProduct;
  readonly chipId: Uint8Array;
  readonly tcb: SnpTcb;
}

export function vcekUrl(base: string, r: VcekRequest): string {
  const hwid = r.product === 'Turin' ? r.chipId.subarray(0, 8) : r.chipId;
  const q = new URLSearchParams();
  if (r.product === 'Turin') q.set('fmcSPL', String(r.tcb.fmc ?? 0));
  q.set('blSPL', String(r.tcb.bootloader));
  q.set('teeSPL', String(r.tcb.tee));
  q.set('snpSPL', String(r.tcb.snp));
  q.set('ucodeSPL', String(r.tcb.microcode));
  return `${base}/vcek/v1/${r.product}/${toHex(hwid)}?${q.toString()}`;
}

export function certChainUrl(base: string, product: SnpProduct, kind: 'vcek' | 'vlek'): string {
  return `${base}/${kind}/v1/${product}/cert_chain`;
}

/** A caching, single-flight KDS client. One instance per provider, shared by all requests. */
export class KdsClient {
  readonly #base: string;
  readonly #max: number;
  readonly #cache = new Map<string, Promise<unknown>>();

  constructor(o: KdsClientOptions = {}) {
    this.#base = (o.baseUrl ?? AMD_KDS_BASE_URL).replace(/\/+$/, '');
    this.#max = o.maxEntries ?? 4096;
  }

  /** The VCEK for a chip at a TCB (DER, parsed). */
  vcek(r: VcekRequest, fetchFn: typeof fetch, signal?: AbortSignal): Promise<Certificate> {
    return this.#get(vcekUrl(this.#base, r), fetchFn, signal, (der) => {
      try {
        return parseCertificate(der, 'VCEK from KDS');
      } catch (cause) {
        throw rejected(KdsCodes.KDS_RESPONSE_INVALID, 'KDS returned something that is not a DER certificate', { cause });
      }
    });
  }

  /** The intermediates (ASK or ASVK; the ARK copy is returned too, and ignored by path validation). */
  certChain(product: SnpProduct, kind: 'vcek' | 'vlek', fetchFn: typeof fetch, signal?: AbortSignal): Promise<Certificate[]> {
    return this.#get(certChainUrl(this.#base, product, kind), fetchFn, signal, (pem) => {
      try {
        return parsePemCertificates(fromUtf8(pem, 'KDS cert_chain'), 'KDS cert_chain', 4);
      } catch (cause) {
        throw rejected(KdsCodes.KDS_RESPONSE_INVALID, 'KDS cert_chain is not a PEM certificate list', { cause });
      }
    });
  }

  /** Single-flight, cached GET; the cached value is the parsed response (parse failures are not cached). */
  #get<T>(url: string, fetchFn: typeof fetch, signal: AbortSignal | undefined, decode: (body: Uint8Array) => T): Promise<T> {
    const hit = this.#cache.get(url) as Promise<T> | undefined;
    if (hit) return hit;
    const p = fetchBytes(url, fetchFn, signal).then(decode);
    this.#cache.set(url, p);
    p.catch(() => {
      if (this.#cache.get(url) === p) this.#cache.delete(url);
    });
    while (this.#cache.size > this.#max) {
      const k = this.#cache.keys().next();
      if (k.done) break;
      this.#cache.delete(k.value);
    }
    return p;
  }
}

async function fetchBytes(url: string, fetchFn: typeof fetch, signal?: AbortSignal): Promise<Uint8Array> {
  let res: Response;
  try {
    // `manual`: a redirect is answered as a non-200 status (KDS_UNAVAILABLE), never followed.
    res = await fetchFn(url, { method: 'GET', redirect: 'manual', ...(signal ? { signal } : {}) });
  } catch (cause) {
    throw unavailable(KdsCodes.KDS_UNAVAILABLE, `AMD KDS request failed: ${url}`, { cause });
  }
  if (res.status === 429) {
    const ra = Number.parseInt(res.headers.get('retry-after') ?? '', 10);
    await res.body?.cancel();
    throw new AttestError(KdsCodes.KDS_RATE_LIMITED, 'AMD KDS rate limit hit (about one certificate per 10 s per IP)', {
      retryAfter: Number.isFinite(ra) && ra >= 0 ? ra : 10,
    });
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw unavailable(KdsCodes.KDS_UNAVAILABLE, `AMD KDS answered HTTP ${res.status} for ${url}`);
  }
  const len = Number.parseInt(res.headers.get('content-length') ?? '', 10);
  if (Number.isFinite(len) && len > MAX_RESPONSE_BYTES) {
    await res.body?.cancel();
    throw rejected(KdsCodes.KDS_RESPONSE_INVALID, `AMD KDS response is larger than ${MAX_RESPONSE_BYTES} bytes`);
  }
  const body = new Uint8Array(await res.arrayBuffer());
  if (body.byteLength > MAX_RESPONSE_BYTES || body.byteLength === 0) {
    throw rejected(KdsCodes.KDS_RESPONSE_INVALID, `AMD KDS response has ${body.byteLength} bytes`);
  }
  return body;
}

export interface SnpCertSources {
  readonly report: SnpReport;
  /** The VCEK/VLEK the evidence carries (e.g. Azure THIM's), if any. */
  readonly evidenceKey?: Certificate;
  /** ASK/ASVK (and perhaps ARK) the evidence carries, if any. */
  readonly evidenceChain?: readonly Certificate[];
  /** Product from configuration, when the report cannot say (version 2 reports). */
  readonly product?: SnpProduct;
  readonly kds: KdsClient;
  readonly fetch: typeof fetch;
  readonly signal?: AbortSignal;
}

export interface SnpCerts {
  readonly endorsementKey: Certificate;
  readonly intermediates: readonly Certificate[];
  readonly keySource: 'evidence' | 'kds';
  readonly chainSource: 'evidence' | 'kds';
}

function productOf(s: SnpCertSources, key?: Certificate): SnpProduct | undefined {
  if (s.product) return s.product;
  const c = productFromCpuid(s.report.cpuid);
  if (c) return c;
  if (!key) return undefined;
  // productName extension, e.g. "Milan-B0" (verify.ts re-checks consistency after the chain).
  return amdKeyExtensions(key).product;
}

/** Evidence first, else KDS: the endorsement key and its intermediates for `verifySnpReport`. */
export async function resolveSnpCerts(s: SnpCertSources): Promise<SnpCerts> {
  const kind = s.report.signingKey === 'vlek' ? 'vlek' : 'vcek';
  let key = s.evidenceKey;
  let keySource: SnpCerts['keySource'] = 'evidence';
  if (!key) {
    if (kind === 'vlek') throw rejected(KdsCodes.SNP_VLEK_REQUIRED, 'the report is VLEK-signed; the VLEK must come with the evidence');
    const product = productOf(s);
    if (!product) throw rejected(KdsCodes.SNP_PRODUCT_UNKNOWN, 'the SNP product is unknown, so the VCEK cannot be fetched; configure it');
    key = await s.kds.vcek({ product, chipId: s.report.chipId, tcb: decodeTcb(s.report.reportedTcb, product) }, s.fetch, s.signal);
    keySource = 'kds';
  }
  if (s.evidenceChain && s.evidenceChain.length > 0) {
    return { endorsementKey: key, intermediates: s.evidenceChain, keySource, chainSource: 'evidence' };
  }
  const product = productOf(s, key);
  if (!product) throw rejected(KdsCodes.SNP_PRODUCT_UNKNOWN, 'the SNP product is unknown, so the ASK cannot be fetched; configure it');
  const chain = await s.kds.certChain(product, kind, s.fetch, s.signal);
  return { endorsementKey: key, intermediates: chain, keySource, chainSource: 'kds' };
}
