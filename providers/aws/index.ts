/**
 * @module providers/aws
 *
 * Provider `aws`, format `nitrotpm`: EC2 NitroTPM attestation documents (protocol §3).
 *
 * `verify` runs, in order (each step throws a typed `AttestError`):
 * 1. parse the evidence object (`parse.ts`);
 * 2. authenticate the document: strict COSE_Sign1 ES384 by a leaf chaining to the pinned AWS
 *    Nitro root G1, every certificate valid at `ctx.now` (`verify.ts`); reject Enclave documents;
 * 3. bind and date it: nonce == binding (constant time), timestamp sane (`validate.ts`);
 * 4. identity from `module_id` and the chain: instance id and region (`validate.ts`);
 * 5. the certified `public_key` (`keys.ts`);
 * 6. the optional TPM quote, and the optional event log replayed against the document's
 *    SHA-384 PCRs — boot claims come only from the verified log (`quote.ts`);
 * 7. the optional EC2 instance identity document, which alone proves the account (`identity.ts`);
 * 8. normalized claims: SHA-384 PCRs under `tpm.pcrs.sha384`, the certified key and user data
 *    under `release`.
 *
 * What each piece proves is written out in docs/aws.md.
 */
import { z } from 'zod';
import { configError, malformed, rejected } from '../common/errors.js';
import { toBase64Url, toHex } from '../common/encoding.js';
import { sha256 } from '../common/digest.js';
import { PinIds } from '../common/pins.js';
import { parsePemCertificates, type Certificate } from '../common/x509.js';
import { isEmptyOptions, type Provider, type ProviderClaims, type VerifyContext, type TpmClaims, type IdentityClaims, type ReleaseBindings } from '../common/types.js';
import { parseNitroEvidence } from './parse.js';
import { NitroChainCache, verifyAttestationDocument } from './verify.js';
import { nitroIdentity, validateBinding, validateTimestamp } from './validate.js';
import { parsePlatformKey, type PlatformKey } from './keys.js';
import { replayNitroEventLog, verifyNitroQuote } from './quote.js';
import { bindIdentityDocument, verifyIdentityDocument, type IdentityDocument } from './identity.js';

export const NITROTPM_FORMAT = 'nitrotpm';

export const AwsCodes = {
  /** The provider was asked for a format it does not verify. */
  FORMAT_UNSUPPORTED: 'FORMAT_UNSUPPORTED',
  /** Options require a quote / identity document the evidence does not carry. */
  EVIDENCE_INCOMPLETE: 'EVIDENCE_INCOMPLETE',
  /** `ctx.options` does not match the provider's schema. */
  OPTIONS_INVALID: 'OPTIONS_INVALID',
} as const;

/** Per-verification options (`ctx.options`), all optional; defaults from `createAwsProvider`. */
export const AwsVerifyOptionsSchema = z.strictObject({
  /** Reject evidence without a TPM quote. */
  requireQuote: z.boolean().optional(),
  /** Reject evidence without an EC2 instance identity document. */
  requireIdentityDocument: z.boolean().optional(),
  /** Maximum age of the document, or 'any' (freshness then rests on the nonce alone). */
  maxDocumentAgeSeconds: z.union([z.number().int().positive(), z.literal('any')]).optional(),
  /** Tolerated skew for document timestamps ahead of the broker's clock. */
  clockSkewSeconds: z.number().int().min(0).max(3600).optional(),
  /** systemd-pcrphase words in PCR 11 when the node attests (for event-log replay of UKI boots). */
  pcr11Phases: z.array(z.enum(['enter-initrd', 'leave-initrd', 'sysinit', 'ready', 'shutdown', 'final'])).max(8).optional(),
});
export type AwsVerifyOptions = z.infer<typeof AwsVerifyOptionsSchema>;

export interface AwsProviderOptions extends AwsVerifyOptions {
  /** Validated Nitro intermediate paths kept (LRU); 0 disables the cache. Default 256. */
  chainCacheSize?: number;
  /**
   * AWS's published RSA-2048 certificates for instance identity document signatures (PEM, one
   * or more per string), as configured by the operator. Without them an `identity` member in the
   * evidence is rejected (TRUST_ANCHOR_MISSING), never skipped.
   */
  identityCertificates?: string | readonly string[];
}

/** Defaults. One hour of age leaves room for slow joins while the 3-hour leaf bounds it anyway. */
export const AWS_DEFAULTS = Object.freeze({
  requireQuote: false,
  requireIdentityDocument: false,
  maxDocumentAgeSeconds: 3600 as number | 'any',
  clockSkewSeconds: 300,
  chainCacheSize: 256,
});

function resolveOptions(base: AwsProviderOptions, ctxOptions: Readonly<Record<string, unknown>>): Required<AwsVerifyOptions> {
  const r = AwsVerifyOptionsSchema.safeParse(ctxOptions ?? {});
  if (!r.success) throw configError(AwsCodes.OPTIONS_INVALID, `aws provider options: ${r.error.issues[0]?.message ?? 'invalid'}`);
  const o = r.data;
  return {
    requireQuote: o.requireQuote ?? base.requireQuote ?? AWS_DEFAULTS.requireQuote,
    requireIdentityDocument: o.requireIdentityDocument ?? base.requireIdentityDocument ?? AWS_DEFAULTS.requireIdentityDocument,
    maxDocumentAgeSeconds: o.maxDocumentAgeSeconds ?? base.maxDocumentAgeSeconds ?? AWS_DEFAULTS.maxDocumentAgeSeconds,
    clockSkewSeconds: o.clockSkewSeconds ?? base.clockSkewSeconds ?? AWS_DEFAULTS.clockSkewSeconds,
    pcr11Phases: o.pcr11Phases ?? base.pcr11Phases ?? [],
  };
}

async function spkiSha256(spki: Uint8Array): Promise<string> {
  return toHex(await sha256(spki));
}

export interface AwsProvider extends Provider {
  /** The chain cache (exposed for metrics and benchmarks). */
  readonly chainCache: NitroChainCache;
}

export function createAwsProvider(options: AwsProviderOptions = {}): AwsProvider {
  const base = AwsVerifyOptionsSchema.safeParse({
    requireQuote: options.requireQuote,
    requireIdentityDocument: options.requireIdentityDocument,
    maxDocumentAgeSeconds: options.maxDocumentAgeSeconds,
    clockSkewSeconds: options.clockSkewSeconds,
    pcr11Phases: options.pcr11Phases,
  });
  if (!base.success) throw configError(AwsCodes.OPTIONS_INVALID, `aws provider options: ${base.error.issues[0]?.message ?? 'invalid'}`);
  const chainCache = new NitroChainCache(options.chainCacheSize ?? AWS_DEFAULTS.chainCacheSize);
  const pems = options.identityCertificates === undefined ? [] : typeof options.identityCertificates === 'string' ? [options.identityCertificates] : options.identityCertificates;
  let identityCerts: readonly Certificate[];
  try {
    identityCerts = Object.freeze(pems.flatMap((p) => parsePemCertificates(p, 'identityCertificates', 64)));
  } catch (cause) {
    throw configError(AwsCodes.OPTIONS_INVALID, 'aws provider options: identityCertificates is not valid PEM', { cause });
  }

  // No per-verification options (the usual case) resolves to the defaults: resolved once, not per call.
  const defaults = Object.freeze(resolveOptions(options, {}));
  async function verify(format: string, evidence: unknown, ctx: VerifyContext): Promise<ProviderClaims> {
    if (format !== NITROTPM_FORMAT) {
      throw malformed(AwsCodes.FORMAT_UNSUPPORTED, `provider aws does not verify format "${format}"`);
    }
    const opts = isEmptyOptions(ctx.options) ? defaults : resolveOptions(options, ctx.options);
    const ev = parseNitroEvidence(evidence);
    if (opts.requireQuote && !ev.quote) throw rejected(AwsCodes.EVIDENCE_INCOMPLETE, 'a TPM quote is required');
    if (opts.requireIdentityDocument && !ev.identity) {
      throw rejected(AwsCodes.EVIDENCE_INCOMPLETE, 'an EC2 instance identity document is required');
    }

    const anchors = ctx.trust.anchors([PinIds.AWS_NITRO_ROOT_G1]);
    const verified = await verifyAttestationDocument(ev.document, { anchors, at: ctx.now, cache: chainCache });
    const doc = verified.document;
    const leaf = verified.path[0] as Certificate;

    validateBinding(doc, ctx.binding);
    validateTimestamp(doc, leaf, {
      now: ctx.now,
      maxAgeSeconds: opts.maxDocumentAgeSeconds,
      skewSeconds: opts.clockSkewSeconds,
    });
    const id = nitroIdentity(doc, verified.path);

    const platformKey: PlatformKey | undefined = doc.publicKey ? await parsePlatformKey(doc.publicKey) : undefined;

    const quote = ev.quote ? await verifyNitroQuote(doc, platformKey, ev.quote, ctx.binding) : undefined;
    const boot = ev.eventLog
      ? await replayNitroEventLog(doc, ev.eventLog, opts.pcr11Phases.length > 0 ? { pcr11Phases: opts.pcr11Phases } : {})
      : undefined;

    let iid: IdentityDocument | undefined;
    if (ev.identity) {
      iid = await verifyIdentityDocument(ev.identity, identityCerts, ctx.now);
      bindIdentityDocument(iid, id);
    }

    const pcrs: Record<number, string> = {};
    for (const [i, v] of doc.pcrs) pcrs[i] = toHex(v);
    const tpm: TpmClaims = platformKey
      ? { akSha256: quote?.akSha256 ?? (await spkiSha256(platformKey.spki)), pcrs: { sha384: pcrs }, akTrust: 'cloud-certified' }
      : {
          // No node key in the document: the PCRs were reported by the Nitro hypervisor itself,
          // so the "attestation key" is the document's signing key (docs/aws.md).
          akSha256: toHex(await sha256(new Uint8Array(leaf.publicKey.rawData))),
          pcrs: { sha384: pcrs },
          akTrust: 'hardware-report',
        };
    const extra: Record<string, string> = { moduleId: doc.moduleId };
    const proven = ['instanceId', 'region'];
    const identity: IdentityClaims = { cloud: 'aws', instanceId: id.instanceId, region: id.region, extra, proven };
    if (iid) {
      // Only an AWS-signed identity document bound to this instance proves these (docs/aws.md).
      identity.account = iid.accountId;
      identity.zone = iid.availabilityZone;
      extra.imageId = iid.imageId;
      extra.instanceType = iid.instanceType;
      if (iid.architecture !== undefined) extra.architecture = iid.architecture;
      proven.push('account', 'zone', 'imageId', 'instanceType');
      if (iid.privateIp !== undefined) {
        extra.privateIp = iid.privateIp;
        proven.push('extra.privateIp');
      }
    }
    const release: ReleaseBindings = { nitroDocument: toBase64Url(ev.document) };
    if (platformKey) release.platformKeySpki = toBase64Url(platformKey.spki);
    if (doc.userData) release.userData = toBase64Url(doc.userData);

    return {
      provider: 'aws',
      format: NITROTPM_FORMAT,
      platform: {
        tee: 'nitro',
        debug: false,
        fields: {
          moduleId: doc.moduleId,
          documentTimestamp: new Date(doc.timestamp).toISOString(),
          tpmQuoteVerified: quote !== undefined,
        },
      },
      identity,
      tpm,
      ...(boot ? { boot } : {}),
      release,
    };
  }

  return Object.freeze({ name: 'aws' as const, formats: Object.freeze([NITROTPM_FORMAT]), verify, chainCache });
}

/** The `providers.aws.options` block of the broker configuration (strict: unknown keys refused). */
export const AwsProviderConfigSchema = AwsVerifyOptionsSchema.extend({
  chainCacheSize: z.number().int().min(0).max(100_000).optional(),
  identityCertificates: z.union([z.string().max(1_000_000), z.array(z.string().max(1_000_000)).max(64)]).optional(),
});

/**
 * Builds the provider from configuration (its descriptor's `create`, providers/aws/descriptor.ts).
 */
export function createAwsProviderFromConfig(raw: unknown): AwsProvider {
  const r = AwsProviderConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    throw configError(AwsCodes.OPTIONS_INVALID, r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  }
  const o = r.data;
  const opts: AwsProviderOptions = {};
  if (o.requireQuote !== undefined) opts.requireQuote = o.requireQuote;
  if (o.requireIdentityDocument !== undefined) opts.requireIdentityDocument = o.requireIdentityDocument;
  if (o.maxDocumentAgeSeconds !== undefined) opts.maxDocumentAgeSeconds = o.maxDocumentAgeSeconds;
  if (o.clockSkewSeconds !== undefined) opts.clockSkewSeconds = o.clockSkewSeconds;
  if (o.pcr11Phases !== undefined) opts.pcr11Phases = o.pcr11Phases;
  if (o.chainCacheSize !== undefined) opts.chainCacheSize = o.chainCacheSize;
  if (o.identityCertificates !== undefined) opts.identityCertificates = o.identityCertificates;
  return createAwsProvider(opts);
}
