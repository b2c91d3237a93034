/**
 * @module broker/commands/verify.node
 *
 * `attest-broker verify` (protocol.md §4): evidence file → one JSON verdict on stdout.
 * Exit 0 accepted, 1 rejected (with at least one error code), 2 usage or configuration error.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import type { JWK } from 'jose';
import { PROTOCOL_FORMATS, ProviderRegistry } from '../registry.js';
import { verdictFor, type Verdict } from '../verify.js';
import { computeBinding } from '../binding.js';
import { fromHex } from '../../providers/common/encoding.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { isAttestError } from '../../providers/common/errors.js';
import { loadTrustIntermediates, loadTrustStore } from '../trust/store.node.js';
import { PROVIDER_FACTORIES } from '../providers.js';
import { RUNTIME_HOOKS } from '../runtime.node.js';
import { parseConfig } from '../config/schema.js';
import { EXIT, usage } from './util.node.js';
import type { ProviderName } from '../../providers/common/types.js';
import { systemClock } from '../contracts.js';
import { MemoryStore } from '../store/memory.js';

interface Opts {
  evidence: string;
  format?: string;
  binding?: string;
  nonce?: string;
  ephemeralKey?: string;
  policy?: string;
  at?: string;
  trust?: string;
  option?: string[];
}

function providerOf(format: string): ProviderName | undefined {
  return (Object.entries(PROTOCOL_FORMATS) as [ProviderName, readonly string[]][]).find(([, fs]) => fs.includes(format))?.[0];
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('verify evidence offline and print a JSON verdict (exit 0 accepted, 1 rejected, 2 usage error)')
    .requiredOption('--evidence <file>', 'the `evidence` object of protocol §3, or a whole /v1/attest request')
    .option('--format <format>', 'evidence format (tpm, gotpm, nitrotpm, az-snp-vtpm, az-tdx-vtpm); taken from the request when omitted')
    .option('--binding <hex>', 'the binding the evidence must carry')
    .option('--nonce <hex>', 'the challenge nonce (binding = nonce, or SHA-256(nonce ‖ thumbprint) with --ephemeral-key)')
    .option('--ephemeral-key <jwkfile>', 'public JWK the node bound into the binding')
    .option('--policy <file>', 'also evaluate this join policy')
    .option('--at <rfc3339>', 'verification time (certificates in recorded samples expire)')
    .option('--trust <dir>', 'directory of pinned roots (written by `trust fetch|import`)', process.env.ATTEST_BROKER_TRUST_DIR ?? '/var/lib/attest-broker/trust')
    .action(async (o: Opts) => {
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(await readFile(o.evidence, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        usage(`cannot read --evidence ${o.evidence} as JSON: ${(e as Error).message}`);
      }
      const whole = doc && typeof doc === 'object' && 'evidence' in doc && typeof doc.format === 'string';
      const format = o.format ?? (whole ? (doc.format as string) : undefined);
      if (!format) usage('--format is required when --evidence holds only the evidence object');
      const provider = (whole && typeof doc.provider === 'string' ? doc.provider : undefined) ?? providerOf(format);
      if (!provider) usage(`unknown format "${format}"; known: ${Object.values(PROTOCOL_FORMATS).flat().join(', ')}`);
      const evidence = whole ? doc.evidence : doc;
      if ((o.binding ? 1 : 0) + (o.nonce ? 1 : 0) !== 1) usage('give exactly one of --binding HEX or --nonce HEX');
      let binding: Uint8Array;
      try {
        if (o.binding) {
          if (o.ephemeralKey) usage('--ephemeral-key goes with --nonce, not --binding');
          binding = fromHex(o.binding, '--binding');
        } else {
          const jwk = o.ephemeralKey ? (JSON.parse(await readFile(o.ephemeralKey, 'utf8')) as JWK) : undefined;
          binding = await computeBinding(fromHex(o.nonce as string, '--nonce'), jwk);
        }
      } catch (e) {
        usage(e instanceof Error ? e.message : String(e));
      }
      const now = o.at ? new Date(o.at) : systemClock.now();
      if (Number.isNaN(now.getTime())) usage(`--at ${o.at} is not an RFC 3339 time`);
      let trust;
      let intermediatesPem = '';
      try {
        const tcfg = parseConfig({ trust: { dir: o.trust ?? '/nonexistent' } }).trust;
        trust = o.trust ? await loadTrustStore(tcfg) : createTrustStore([]);
        intermediatesPem = o.trust ? await loadTrustIntermediates(tcfg) : '';
      } catch (e) {
        usage(e instanceof Error ? e.message : String(e));
      }
      const factory = PROVIDER_FACTORIES[provider as ProviderName];
      if (!factory) usage(`this build has no "${provider}" provider`);
      const registry = new ProviderRegistry([factory({}, { store: new MemoryStore(), intermediatesPem })]);
      let verdict: Verdict & { decision?: unknown };
      try {
        verdict = await verdictFor(registry, { provider, format, evidence, binding, now, trust, fetch: globalThis.fetch });
      } catch (e) {
        if (isAttestError(e)) usage(`${e.code}: ${e.message}`);
        throw e;
      }
      if (o.policy && verdict.ok && verdict.claims) {
        if (!RUNTIME_HOOKS.loadPolicy) usage('this build has no policy engine');
        const cfg = parseConfig({ policy: { file: o.policy, watch: false } });
        const { engine, close } = await RUNTIME_HOOKS.loadPolicy(cfg, { debug() {}, info() {}, warn() {}, error() {}, child() { return this; } }).catch((e: unknown) =>
          usage(e instanceof Error ? e.message : String(e)),
        );
        const decision = await engine.evaluate(verdict.claims);
        await close();
        verdict = { ...verdict, decision };
        if (!decision.allow) {
          verdict.ok = false;
          for (const r of decision.rules) if (r.outcome === 'fail') verdict.errors.push({ code: r.code ?? 'POLICY_DENIED', message: r.reason ?? r.rule });
          if (verdict.errors.length === 0) verdict.errors.push({ code: decision.denyCode ?? 'POLICY_DENIED', message: 'denied by policy' });
        }
      }
      process.stdout.write(JSON.stringify(verdict, null, 2) + '\n');
      process.exitCode = verdict.ok ? EXIT.OK : EXIT.REJECTED;
    });
}
