/**
 * @module providers/nvidia/rimsource
 *
 * Where RIMs come from. A `RimSource` answers "the bytes of RIM `rimId`", `undefined` when it
 * has none, and throws RIM_UNAVAILABLE when it could not find out. What it returns is never
 * trusted: every RIM goes through `rim.ts` (signature, pinned chain, version) whatever its source.
 *
 * - `StaticRimSource`: a map the operator supplies (configuration, or a directory of
 *   `<RIM id>.xml` files the Node entry reads into it); the air-gapped and "only these RIMs" setups.
 * - `NvidiaRimService`: NVIDIA's RIM service, `GET {url}{rimId}` answering
 *   `{"id": rimId, "rim": base64(SWID XML), …}` (nvtrust `rim_service` README), over an injected
 *   `fetch`; 404 means "no such RIM". Answers are cached (bounded LRU, `ttlSeconds`) and
 *   concurrent misses share one request; failures are not cached.
 * - `ChainedRimSource`: the first source that has the RIM wins (e.g. local overrides, then the
 *   service); a failing source fails the lookup rather than being skipped (fail closed).
 */
import { unavailable } from '../common/errors.js';
import { fromBase64Any, utf8 } from '../common/encoding.js';
import { NvidiaCodes } from './codes.js';
import { CollateralCache, type Loaded } from './cache.js';
import { XML_LIMITS } from './xml.js';

export interface RimSourceContext {
  /** The verification time (cache expiry is judged against it). */
  readonly now: Date;
}

export interface RimSource {
  get(rimId: string, ctx?: RimSourceContext): Promise<Uint8Array | undefined>;
}

/** RIM ids as NVIDIA names them (`NV_GPU_DRIVER_GH100_550.90.07`, `NV_GPU_VBIOS_1010_0200_882_96009F0001`, …). */
export const RIM_ID_RE = /^(?=.{4,100}$)NV_(?:[A-Z0-9]+[_.])*[A-Z0-9]+$/;

export const NVIDIA_RIM_SERVICE_URL = 'https://rim.attestation.nvidia.com/v1/rim/';

export class StaticRimSource implements RimSource {
  readonly #rims: ReadonlyMap<string, Uint8Array>;

  /** `rims`: RIM id → the SWID XML (text or bytes). */
  constructor(rims: Readonly<Record<string, string | Uint8Array>> | ReadonlyMap<string, string | Uint8Array>) {
    const entries = rims instanceof Map ? [...rims.entries()] : Object.entries(rims as Record<string, string | Uint8Array>);
    this.#rims = new Map(entries.map(([id, v]) => [id, typeof v === 'string' ? utf8(v) : v.slice()]));
  }

  get ids(): readonly string[] {
    return [...this.#rims.keys()];
  }

  async get(rimId: string): Promise<Uint8Array | undefined> {
    return this.#rims.get(rimId)?.slice();
  }
}

export interface NvidiaRimServiceOptions {
  readonly fetch: typeof fetch;
  /** Base URL; the RIM id is appended. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly cacheEntries: number;
  readonly ttlSeconds: number;
}

/** Largest service answer: base64 of the largest RIM the XML parser accepts, plus JSON. */
const MAX_ANSWER_BYTES = Math.ceil((XML_LIMITS.maxBytes * 4) / 3) + 4096;

export class NvidiaRimService implements RimSource {
  readonly #o: NvidiaRimServiceOptions;
  readonly #cache: CollateralCache<Uint8Array | undefined>;

  constructor(o: NvidiaRimServiceOptions) {
    this.#o = o;
    this.#cache = new CollateralCache(o.cacheEntries);
  }

  get cache(): CollateralCache<Uint8Array | undefined> {
    return this.#cache;
  }

  async get(rimId: string, ctx?: RimSourceContext): Promise<Uint8Array | undefined> {
    const fail = (m: string, cause?: unknown): never => {
      throw unavailable(NvidiaCodes.RIM_UNAVAILABLE, `NVIDIA RIM service, ${rimId}: ${m}`, { cause, retryAfter: 60 });
    };
    if (!RIM_ID_RE.test(rimId)) return undefined;
    const load = async (): Promise<Loaded<Uint8Array | undefined>> => {
      let res: Response;
      try {
        res = await this.#o.fetch(`${this.#o.url}${encodeURIComponent(rimId)}`, {
          headers: { accept: 'application/json' },
          signal: AbortSignal.timeout(this.#o.timeoutMs),
          redirect: 'manual',
        });
      } catch (cause) {
        return fail('unreachable', cause);
      }
      const expiresAt = ctx ? ctx.now.getTime() + this.#o.ttlSeconds * 1000 : undefined;
      if (res.status === 404) return { value: undefined, expiresAt: undefined };
      if (!res.ok) return fail(`HTTP ${res.status}`);
      if (Number(res.headers.get('content-length') ?? '0') > MAX_ANSWER_BYTES) return fail('answer too large');
      const body = new Uint8Array(await res.arrayBuffer());
      if (body.length > MAX_ANSWER_BYTES) return fail('answer too large');
      let doc: unknown;
      try {
        doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
      } catch (cause) {
        return fail('the answer is not JSON', cause);
      }
      const d = doc as { id?: unknown; rim?: unknown };
      if (typeof doc !== 'object' || doc === null || d.id !== rimId || typeof d.rim !== 'string') {
        return fail('the answer is not {"id": <the requested id>, "rim": <base64>}');
      }
      let rim: Uint8Array;
      try {
        rim = fromBase64Any(d.rim, 'rim');
      } catch (cause) {
        return fail('the "rim" member is not base64', cause);
      }
      return { value: rim, expiresAt };
    };
    // Without a clock the cache is bypassed: expiry could not be judged.
    const bytes = ctx ? await this.#cache.get(rimId, ctx.now, load) : (await load()).value;
    return bytes?.slice();
  }
}

export class ChainedRimSource implements RimSource {
  readonly #sources: readonly RimSource[];
  constructor(sources: readonly RimSource[]) {
    this.#sources = [...sources];
  }
  async get(rimId: string, ctx?: RimSourceContext): Promise<Uint8Array | undefined> {
    for (const s of this.#sources) {
      const r = await s.get(rimId, ctx);
      if (r !== undefined) return r;
    }
    return undefined;
  }
}
