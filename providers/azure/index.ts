/**
 * @module providers/azure
 *
 * Provider `azure`, formats `az-snp-vtpm` and `az-tdx-vtpm` (protocol.md §3): Azure
 * Confidential VMs on AMD SEV-SNP and Intel TDX, attested through their vTPM.
 *
 * `verify` runs (each step throws a typed AttestError):
 * 1. the options (`ctx.options`, strict schema) and the evidence (`evidence.ts`, v0/v1/v2);
 * 2. an `event_log` is refused (EVENTLOG_UNSUPPORTED) rather than silently ignored;
 * 3. the trust chain `verify.ts`: hardware report (SNP → pinned AMD ARK, or TDX → pinned Intel
 *    root) → runtime data digest → HCLAkPub → vTPM quote with extraData = binding → v2 user-data;
 * 4. the optional IMDS attested document (`imds.ts`): PKCS#7 by Azure's metadata certificate to
 *    a pinned root, unexpired, same vmId as the hardware-bound runtime data;
 * 5. normalized claims: `platform` from the hardware report, `tpm` from the quote
 *    (`akTrust: 'hardware-report'`), `identity` from the runtime data's `vm-configuration`.
 *
 * What the evidence does and does not prove about identity (vmUniqueId yes, as reported by the
 * Azure host to the paravisor; subscription, resource group, VM name, region: no) is written out
 * in docs/azure.md. `identity.proven` lists `instanceId`, plus `account` (the subscription) only
 * when an IMDS attested document signed by Azure's metadata service for the same vmId verifies
 * (`imds.ts`, step 5).
 */
import { snpPlatformClaims } from '../amd-sev-snp/claims.js';
import { z } from 'zod';
import { configError, malformed, rejected } from '../common/errors.js';
import { parsePemCertificates, type Certificate } from '../common/x509.js';
import { isEmptyOptions, type IdentityClaims, type PlatformClaims, type Provider, type ProviderClaims, type VerifyContext } from '../common/types.js';
import { KdsClient } from '../amd-sev-snp/kds.js';
import { SnpVerifyCache } from '../amd-sev-snp/verify.js';
import { strictSnpOptions } from '../amd-sev-snp/validate.js';
import { SNP_PRODUCTS, type SnpProduct } from '../amd-sev-snp/parse.js';
import { TdxVerifyCache } from '../intel-tdx/verify.js';
import { strictTdxOptions } from '../intel-tdx/validate.js';
import { tdxPlatformClaims } from '../intel-tdx/claims.js';
import { decodeAzureEvidence } from './evidence.js';
import { verifyAzureEvidence, type VerifiedAzureEvidence } from './verify.js';
import { ImdsCodes, imdsIntermediates, verifyImdsDocument, type ImdsDocument } from './imds.js';

export { decodeAzureEvidence } from './evidence.js';
export { parseHclReport } from './hcl.js';
export { verifyAzureEvidence } from './verify.js';

export const AZURE_FORMATS = ['az-snp-vtpm', 'az-tdx-vtpm'] as const;
export type AzureFormat = (typeof AZURE_FORMATS)[number];

export const AzureCodes = {
  FORMAT_UNSUPPORTED: 'FORMAT_UNSUPPORTED',
  IMDS_DOCUMENT_MISSING: 'IMDS_DOCUMENT_MISSING',
  OPTIONS_INVALID: 'OPTIONS_INVALID',
  EVENTLOG_UNSUPPORTED: 'EVENTLOG_UNSUPPORTED',
  AZURE_VM_ID_MISSING: 'AZURE_VM_ID_MISSING',
} as const;

const tcbSchema = z.strictObject({
  bootloader: z.number().int().min(0).max(255).optional(),
  tee: z.number().int().min(0).max(255).optional(),
  snp: z.number().int().min(0).max(255).optional(),
  microcode: z.number().int().min(0).max(255).optional(),
  fmc: z.number().int().min(0).max(255).optional(),
});

/**
 * Per-verification options (`ctx.options`). Everything has a strict default:
 * - `debug: 'forbid'` — a debuggable SNP guest / TD proves nothing about its memory;
 * - `snpMinimumTcb: 'any'` — firmware currency is left to policy unless set here;
 * - `tdxTcbStatus: 'off'` — Intel collateral is not reachable here; 'on' without collateral
 *   rejects (TDX_COLLATERAL_MISSING), it never passes.
 */
export const AzureVerifyOptionsSchema = z.strictObject({
  debug: z.enum(['forbid', 'allow']).optional(),
  snpMinimumTcb: z.union([z.literal('any'), tcbSchema]).optional(),
  tdxTcbStatus: z.enum(['off', 'on']).optional(),
  /** Reject evidence without an IMDS attested document (when policy needs the subscription). */
  requireImdsDocument: z.boolean().optional(),
});
export type AzureVerifyOptions = z.infer<typeof AzureVerifyOptionsSchema>;

export interface AzureProviderOptions {
  /** AMD KDS base URL (default https://kdsintf.amd.com); tests point it at a local server. */
  kdsBaseUrl?: string;
  /** A shared KDS client (cache + single-flight) instead of a new one. */
  kds?: KdsClient;
  /**
   * ASK/ASVK certificates (PEM, e.g. KDS `cert_chain` files) used when the evidence carries
   * none, before asking KDS. They are intermediates only: each is still verified against the
   * pinned ARK, and an ARK among them is ignored.
   */
  amdIntermediatesPem?: string;
  /** SEV-SNP product, for version-2 reports without a VCEK (the report cannot say). */
  snpProduct?: SnpProduct;
  /** Default per-verification options (overridden by `ctx.options`). */
  defaults?: AzureVerifyOptions;
  /** Cached chains/keys kept per cache. Default 1024. */
  cacheSize?: number;
  /**
   * IMDS attested documents: the trust-store ids of the roots Azure's metadata certificate may
   * chain to, and the intermediates (PEM; Azure does not include them in the document). Without
   * `anchorIds`, a document in the evidence is rejected (TRUST_ANCHOR_MISSING), never skipped.
   */
  imds?: { anchorIds: readonly string[]; intermediatesPem?: string };
}

/**
 * The provider's configuration block (`providers.azure.options`), for the broker's factory:
 * its descriptor's `create` (providers/azure/descriptor.ts).
 */
export const AzureProviderOptionsSchema = z.strictObject({
  kdsBaseUrl: z.url().optional(),
  amdIntermediatesPem: z.string().max(64 * 1024).optional(),
  snpProduct: z.enum(['Milan', 'Genoa', 'Turin']).optional(),
  defaults: AzureVerifyOptionsSchema.optional(),
  cacheSize: z.number().int().min(1).max(100_000).optional(),
  imds: z.strictObject({ anchorIds: z.array(z.string().min(1)).min(1).max(16), intermediatesPem: z.string().max(64 * 1024).optional() }).optional(),
});

/** Validates a configuration block and creates the provider (CONFIG errors name the field). */
export function createAzureProviderFromConfig(raw: unknown): Provider {
  const r = AzureProviderOptionsSchema.safeParse(raw ?? {});
  if (!r.success) {
    throw configError(AzureCodes.OPTIONS_INVALID, r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  }
  return createAzureProvider(r.data);
}


function platformClaims(v: VerifiedAzureEvidence): PlatformClaims {
  return v.hardware.type === 'snp' ? snpPlatformClaims(v.hardware.snp) : tdxPlatformClaims(v.hardware.tdx);
}

function identityClaims(v: VerifiedAzureEvidence, imds: ImdsDocument | undefined): IdentityClaims {
  const vc = v.hcl.runtimeData.vmConfiguration ?? {};
  const id = vc.vmUniqueId;
  if (typeof id !== 'string' || !/^[0-9A-Fa-f-]{1,64}$/.test(id)) {
    throw rejected(AzureCodes.AZURE_VM_ID_MISSING, 'the runtime data has no vm-configuration.vmUniqueId');
  }
  const extra: Record<string, string> = { vmUniqueId: id };
  for (const [k, val] of Object.entries(vc)) if (k !== 'vmUniqueId') extra[k] = String(val);
  // vmUniqueId is in the runtime data the hardware report signs; nothing in Azure CVM
  // evidence names the subscription, resource group, VM name or region (docs/azure.md).
  if (!imds) return { cloud: 'azure', instanceId: id.toLowerCase(), extra, proven: ['instanceId'] };
  // The IMDS document is signed by Azure's metadata service and names the same VM.
  if (imds.vmId.toLowerCase() !== id.toLowerCase()) {
    throw rejected(ImdsCodes.IMDS_VMID_MISMATCH, `the IMDS document is for VM ${imds.vmId}, the hardware evidence for ${id}`);
  }
  if (imds.sku) extra.imdsSku = imds.sku;
  if (!imds.subscriptionId) return { cloud: 'azure', instanceId: id.toLowerCase(), extra, proven: ['instanceId'] };
  extra.subscriptionId = imds.subscriptionId;
  return { cloud: 'azure', account: imds.subscriptionId.toLowerCase(), instanceId: id.toLowerCase(), extra, proven: ['instanceId', 'account'] };
}

/** Creates the `azure` provider. One instance holds the KDS cache and the chain caches. */
export function createAzureProvider(options: AzureProviderOptions = {}): Provider {
  const kds = options.kds ?? new KdsClient(options.kdsBaseUrl ? { baseUrl: options.kdsBaseUrl } : {});
  const snpCache = new SnpVerifyCache(options.cacheSize);
  const tdxCache = new TdxVerifyCache(options.cacheSize);
  const intermediates: Certificate[] = options.amdIntermediatesPem ? parsePemCertificates(options.amdIntermediatesPem, 'AMD intermediates', 16) : [];
  if (options.snpProduct && !SNP_PRODUCTS.includes(options.snpProduct)) {
    throw configError(AzureCodes.OPTIONS_INVALID, `unknown SEV-SNP product ${String(options.snpProduct)}`);
  }
  const imdsInter = imdsIntermediates(options.imds?.intermediatesPem);
  const base = AzureVerifyOptionsSchema.safeParse(options.defaults ?? {});
  if (!base.success) throw configError(AzureCodes.OPTIONS_INVALID, `azure provider defaults: ${base.error.issues[0]?.message ?? 'invalid'}`);

  /** The per-verification options over the defaults, and the validation options they imply. */
  const resolve = (raw: unknown) => {
    const parsed = AzureVerifyOptionsSchema.safeParse(raw ?? {});
    if (!parsed.success) throw configError(AzureCodes.OPTIONS_INVALID, `azure provider options: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const o = { ...base.data, ...parsed.data };
    const debug = o.debug ?? 'forbid';
    const minTcb = o.snpMinimumTcb ?? 'any';
    return Object.freeze({
      o,
      snpValidate: strictSnpOptions({ debug, minimumTcb: minTcb === 'any' ? 'any' : { expect: minTcb } }),
      tdxValidate: strictTdxOptions({ debug, tcbStatus: o.tdxTcbStatus === 'on' ? {} : 'off' }),
    });
  };
  // No per-verification options (the usual case) resolves to the defaults: resolved once, not per call.
  const defaults = resolve({});

  return Object.freeze({
    name: 'azure' as const,
    formats: AZURE_FORMATS,
    async verify(format: string, evidence: unknown, ctx: VerifyContext): Promise<ProviderClaims> {
      if (format !== 'az-snp-vtpm' && format !== 'az-tdx-vtpm') {
        throw malformed(AzureCodes.FORMAT_UNSUPPORTED, `the azure provider does not verify format ${format}`);
      }
      const { o, snpValidate, tdxValidate } = isEmptyOptions(ctx.options) ? defaults : resolve(ctx.options);
      const ev = decodeAzureEvidence(format, evidence);
      if (ev.eventLog) throw rejected(AzureCodes.EVENTLOG_UNSUPPORTED, 'an event log was supplied but the azure provider does not replay event logs yet');
      const v = await verifyAzureEvidence({
        format,
        evidence: ev,
        binding: ctx.binding,
        trust: ctx.trust,
        at: ctx.now,
        fetch: ctx.fetch,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        snp: {
          kds,
          cache: snpCache,
          ...(options.snpProduct ? { product: options.snpProduct } : {}),
          intermediates,
          validate: snpValidate,
        },
        tdx: { cache: tdxCache, validate: tdxValidate },
      });
      if (o.requireImdsDocument && !ev.imdsPkcs7) {
        throw rejected(AzureCodes.IMDS_DOCUMENT_MISSING, 'an IMDS attested document is required but the evidence has none');
      }
      const imds = ev.imdsPkcs7
        ? await verifyImdsDocument({ pkcs7: ev.imdsPkcs7, trust: ctx.trust, anchorIds: options.imds?.anchorIds ?? [], intermediates: imdsInter, at: ctx.now })
        : undefined;
      const vc = v.hcl.runtimeData.vmConfiguration;
      const secureBoot = vc?.['secure-boot'];
      return {
        provider: 'azure',
        format,
        platform: platformClaims(v),
        identity: identityClaims(v, imds),
        tpm: { akSha256: v.quote.akSha256, pcrs: v.quote.pcrs, akTrust: 'hardware-report' },
        ...(typeof secureBoot === 'boolean' ? { boot: { secureBoot } } : {}),
      };
    },
  });
}
