/**
 * @module providers/tpm/descriptor
 *
 * Provider `tpm`: a TPM 2.0 quote of any machine (bare metal, swtpm, a vTPM without its cloud's
 * evidence), format `tpm` (docs/tpm.md). It needs no built-in root: AK trust comes from the
 * operator's EK roots (`ekRoots`, credential activation) or pinned AK digests.
 */
import { z } from 'zod';
import type { ProviderDescriptor, ProviderStore } from '../descriptor.js';
import { proves } from '../descriptor.js';
import { createTpmProvider } from './provider.js';
import { isPendingActivation, type ActivationStore, type PendingActivation } from './activation.js';
import { replayAndSummarize } from './measured-boot.js';

/** Pending TPM credential activations in the shared store; `take` is atomic (CAS to a tombstone). */
export function activationStore(store: ProviderStore): ActivationStore {
  const key = (id: string) => `tpm-activation:${id}`;
  return {
    async put(id: string, pending: PendingActivation, ttlMs: number) {
      if (!(await store.setIfAbsent(key(id), JSON.stringify(pending), ttlMs))) throw new Error('activation id collision');
    },
    async take(id: string) {
      const v = await store.get(key(id));
      if (v === null || v === 'taken') return null;
      // Exactly one concurrent caller wins the swap to the tombstone.
      if (!(await store.compareAndSet(key(id), v, 'taken', 60_000))) return null;
      const parsed: unknown = JSON.parse(v);
      return isPendingActivation(parsed) ? parsed : null;
    },
  };
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be lower-case hex SHA-256');

/** `providers.tpm.options` (docs/tpm.md). */
export const TpmOptionsSchema = z
  .object({
    /** Trust-store ids (trust.anchors) of TPM-vendor EK roots: enables EK cert + credential activation. */
    ekRoots: z.array(z.string().min(1)).max(64).optional(),
    /** SHA-256 of AK SPKIs admitted without activation (labs). */
    pinnedAkSha256: z.array(hex64).max(10_000).optional(),
    activationTtlSeconds: z.number().int().min(10).max(600).default(120),
    signatureHashes: z.array(z.enum(['sha1', 'sha256', 'sha384', 'sha512'])).min(1).optional(),
    pcrBanks: z.array(z.enum(['sha1', 'sha256', 'sha384'])).min(1).optional(),
    /** Boot phases systemd-pcrphase extended into PCR 11 before the node quotes (UKI boots). */
    pcr11Phases: z.array(z.enum(['enter-initrd', 'leave-initrd', 'sysinit', 'ready'])).optional(),
  })
  .strict();

export const tpm: ProviderDescriptor<'tpm'> = {
  kind: 'platform',
  name: 'tpm',
  formats: { tpm: { tees: ['none'] } },
  pins: [],
  options: TpmOptionsSchema,
  create(raw, env) {
    const o = TpmOptionsSchema.parse(raw);
    const allowSha1 = (o.pcrBanks ?? []).includes('sha1');
    return createTpmProvider({
      ...(o.ekRoots ? { ekRoots: o.ekRoots, activations: activationStore(env.store) } : {}),
      ...(o.pinnedAkSha256 ? { pinnedAkSha256: o.pinnedAkSha256 } : {}),
      activationTtlMs: o.activationTtlSeconds * 1000,
      ...(o.signatureHashes ? { signatureHashes: o.signatureHashes } : {}),
      ...(o.pcrBanks ? { pcrBanks: o.pcrBanks } : {}),
      replayEventLog: async (log, quoted) => {
        const r = await replayAndSummarize(log, quoted, { allowSha1, ...(o.pcr11Phases ? { pcr11Phases: o.pcr11Phases } : {}) });
        return { ...r.boot, eventLogReplayed: [...r.replayedBanks] };
      },
    });
  },
  identity: {
    rule: {
      instanceIds: { claim: 'instanceId', match: 'exact', description: 'Allowed bare-metal instance ids (claims.identity.instanceId).' },
      instanceNames: { claim: 'instanceName', match: 'glob', description: 'Patterns over claims.identity.instanceName.' },
    },
    hint: 'instance ids',
    // A bare TPM proves only its AK, pinned under tpm.pinnedAks.
    capture: () => 'any',
  },
  nodeName: {
    sources: { 'tpm-instance-id': { field: 'instanceId' }, 'tpm-instance-name': { field: 'instanceName' } },
    capture: (c) => (proves(c, 'instanceName') ? 'tpm-instance-name' : 'tpm-instance-id'),
  },
  offlineOptions: (o) => (o.allowSha1 ? { pcrBanks: ['sha1', 'sha256', 'sha384'], signatureHashes: ['sha1', 'sha256', 'sha384', 'sha512'] } : {}),
  client: { platform: 'generic', format: 'tpm' },
};
