/** An in-memory ActivationStore for tests that build the tpm provider by hand (single use: take deletes; size() for tests that check nothing is left behind). */
import type { ActivationStore, PendingActivation } from '../../providers/tpm/activation.js';

export function memoryActivations(): ActivationStore & { size(): number } {
  const m = new Map<string, PendingActivation>();
  return {
    async put(id, p) {
      m.set(id, p);
    },
    async take(id) {
      const p = m.get(id) ?? null;
      m.delete(id);
      return p;
    },
    size: () => m.size,
  };
}
