/**
 * @module broker/builtins
 *
 * Registers what this build contains — provider adapters, policy engine, release service —
 * with the runtime (imported for its side effects by both entries). Web APIs only: the Node-only
 * parts register themselves from `builtins.node.ts`.
 */
import { z } from 'zod';
import { PROVIDER_FACTORIES, intermediatesOf } from './providers.js';
import type { StateStore } from './contracts.js';
import { createTpmProvider } from '../providers/tpm/provider.js';
import { isPendingActivation, type ActivationStore, type PendingActivation } from '../providers/tpm/activation.js';
import { replayAndSummarize } from '../providers/tpm/measured-boot.js';
import { createAzureProviderFromConfig } from '../providers/azure/index.js';
import { createAwsProviderFromConfig } from '../providers/aws/index.js';
import { createGcpProvider, type GcpOptionsInput } from '../providers/gcp/index.js';
import { configError } from '../providers/common/errors.js';
import { WORKER_HOOKS } from './worker-hooks.js';
import { createPolicyEngine, loadPolicyText } from './policy/index.js';
import { systemClock } from './contracts.js';

/** Pending TPM credential activations in the shared store; `take` is atomic (CAS to a tombstone). */
export function activationStore(store: StateStore): ActivationStore {
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
const TpmOptions = z
  .object({
    /** Trust-store ids (trust.anchors) of TPM-vendor EK roots: enables EK cert + credential activation. */
    ekRoots: z.array(z.string().min(1)).max(64).optional(),
    /** SHA-256 of AK SPKIs admitted without activation (labs). */
    pinnedAkSha256: z.array(hex64).max(10_000).optional(),
    activationTtlSeconds: z.number().int().min(10).max(900).default(120),
    signatureHashes: z.array(z.enum(['sha1', 'sha256', 'sha384', 'sha512'])).min(1).optional(),
    pcrBanks: z.array(z.enum(['sha1', 'sha256', 'sha384'])).min(1).optional(),
    /** Boot phases systemd-pcrphase extended into PCR 11 before the node quotes (UKI boots). */
    pcr11Phases: z.array(z.enum(['enter-initrd', 'leave-initrd', 'sysinit', 'ready'])).optional(),
  })
  .strict();

PROVIDER_FACTORIES.tpm = (raw, env) => {
  const r = TpmOptions.safeParse(raw);
  if (!r.success) throw configError('CONFIG_INVALID', r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  const o = r.data;
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
};

// ── azure: SEV-SNP / TDX vTPM evidence ──
PROVIDER_FACTORIES.azure = (raw, env) => {
  const o = (raw ?? {}) as Record<string, unknown>;
  const amd = intermediatesOf(env, 'amd-');
  return createAzureProviderFromConfig(amd && o.amdIntermediatesPem === undefined ? { ...o, amdIntermediatesPem: amd } : o);
};

// ── aws: NitroTPM attestation documents ──
PROVIDER_FACTORIES.aws = (raw) => createAwsProviderFromConfig(raw ?? {});

// ── gcp: go-tpm-tools attestations, Google-certified AKs ──
// The pinned Google intermediates `trust fetch` installs serve legacy attestations that carry
// only their AK certificate (as go-tpm-tools compiles them in); operator options come first.
PROVIDER_FACTORIES.gcp = (raw, env) => {
  const o = (raw ?? {}) as GcpOptionsInput;
  const google = intermediatesOf(env, 'google-');
  return createGcpProvider(google && o.intermediates === undefined ? { ...o, intermediates: [google] } : o);
};

// ── policy on Workers: the document comes from the POLICY_YAML binding ──
WORKER_HOOKS.policyFromText = async (text) => createPolicyEngine(await loadPolicyText(text, systemClock.now()), { clock: systemClock });
