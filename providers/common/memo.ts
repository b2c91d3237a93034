/**
 * @module providers/common/memo
 *
 * A bounded least-recently-used map for per-process memos of pure facts (an imported key for
 * given key bytes, a signature that verified over given certificate bytes). Keys are content
 * digests, so an entry can never speak for different bytes; the bound keeps a stranger who sends
 * many distinct inputs from growing memory — at worst they evict entries, which costs time, never
 * correctness.
 */
export class BoundedMemo<V> {
  readonly #max: number;
  readonly #map = new Map<string, V>();

  constructor(maxEntries: number) {
    this.#max = Math.max(1, Math.floor(maxEntries));
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      // Refresh recency.
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  has(key: string): boolean {
    return this.#map.has(key);
  }

  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }

  clear(): void {
    this.#map.clear();
  }
}
