/**
 * @module providers/nvidia/cache
 *
 * A bounded LRU with per-entry expiry and single-flight loading, for vendor collateral (RIMs
 * from NVIDIA's RIM service, OCSP responses): concurrent misses for one key share one request,
 * so eight GPUs of one node asking for the same driver RIM cost one fetch.
 *
 * - Expiry is checked against the caller's clock (`now` passed in), never `Date.now()`.
 * - Only what the loader returns with an expiry is stored; a loader that throws stores nothing
 *   (failures are not cached), and its error reaches every waiter of that flight.
 * - `maxEntries` 0 disables storage (single-flight still applies).
 */
export interface Loaded<V> {
  readonly value: V;
  /** Epoch ms after which the entry is stale; undefined = do not store. */
  readonly expiresAt: number | undefined;
}

export class CollateralCache<V> {
  readonly #max: number;
  readonly #map = new Map<string, { value: V; expiresAt: number }>();
  readonly #inflight = new Map<string, Promise<V>>();
  hits = 0;
  misses = 0;

  constructor(maxEntries: number) {
    this.#max = Math.max(0, Math.floor(maxEntries));
  }

  get size(): number {
    return this.#map.size;
  }

  /** The cached value for `key` if fresh at `now`, else the (shared) result of `load()`. */
  async get(key: string, now: Date, load: () => Promise<Loaded<V>>): Promise<V> {
    const hit = this.#map.get(key);
    if (hit && hit.expiresAt > now.getTime()) {
      this.#map.delete(key);
      this.#map.set(key, hit);
      this.hits++;
      return hit.value;
    }
    if (hit) this.#map.delete(key);
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    this.misses++;
    const p = (async () => {
      try {
        const r = await load();
        if (r.expiresAt !== undefined && r.expiresAt > now.getTime() && this.#max > 0) {
          this.#map.set(key, { value: r.value, expiresAt: r.expiresAt });
          while (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
        }
        return r.value;
      } finally {
        this.#inflight.delete(key);
      }
    })();
    this.#inflight.set(key, p);
    return p;
  }

  clear(): void {
    this.#map.clear();
  }
}
