/**
 * @module broker/commands/verify.node
 *
 * `attest-broker verify` (docs/protocol.md, "The verify command"): evidence file → one JSON
 * verdict on stdout. The file is taken as the tool wrote it: its format is detected from the
 * content (broker/detect.ts) unless `--format` says.
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
import { intermediatesOf } from '../providers.js';
import { PROVIDERS } from '../../providers/catalog.js';
import { factoryOf } from '../../providers/descriptor.js';
import { detectEvidence, DetectError, type Detected } from '../detect.js';
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
  intermediates?: string[];
  allowSha1?: boolean;
}

const ALL_FORMATS = Object.values(PROTOCOL_FORMATS).flat();

function providerOf(format: string): ProviderName | undefined {
  return (Object.entries(PROTOCOL_FORMATS) as [ProviderName, readonly string[]][]).find(([, fs]) => fs.includes(format))?.[0];
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('verify evidence offline and print a JSON verdict (exit 0 accepted, 1 rejected, 2 usage error)')
    .requiredOption('--evidence <file>', "the evidence as a tool wrote it (raw .pb, COSE, JSON; the format is detected), the `evidence` object of a request, or a whole /v1/attest request")
    .option('--format <format>', `evidence format (${ALL_FORMATS.join(', ')}); detected from the content when omitted`)
    .option('--binding <hex>', 'the binding the evidence must carry')
    .option('--nonce <hex>', "the challenge nonce (binding = nonce, or SHA-256(nonce ‖ thumbprint) with --ephemeral-key); '' for evidence made without one")
    .option('--ephemeral-key <jwkfile>', 'public JWK the node bound into the binding')
    .option('--policy <file>', 'also evaluate this join policy')
    .option('--at <rfc3339>', 'verification time (certificates in recorded samples expire)')
    .option('--trust <dir>', 'directory of pinned roots (written by `trust fetch|import`)', process.env.ATTEST_BROKER_TRUST_DIR ?? '/var/lib/attest-broker/trust')
    .option('--intermediates <file>', 'PEM file of intermediate certificates for the chain (repeatable); never roots', (v: string, acc: string[] = []) => [...acc, v])
    .option('--allow-sha1', 'accept SHA-1 PCR banks and quote signatures (old vTPMs); off by default')
    .action(async (o: Opts) => {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(o.evidence));
      } catch (e) {
        usage(`cannot read --evidence ${o.evidence}: ${(e as Error).message}`);
      }
      if (o.format && !ALL_FORMATS.includes(o.format)) usage(`unknown format "${o.format}"; known: ${ALL_FORMATS.join(', ')}`);
      let detected: Detected;
      try {
        detected = detectEvidence(bytes, o.format ? { format: o.format, provider: providerOf(o.format)! } : {});
      } catch (e) {
        usage(e instanceof DetectError ? e.message : String(e));
      }
      const { format, evidence } = detected;
      const provider = providerOf(format) ?? detected.provider;
      if (!o.format) process.stderr.write(`attest-broker verify: ${detected.how} → format ${format}\n`);
      if (o.binding !== undefined && o.nonce !== undefined) usage('give one of --binding HEX or --nonce HEX, not both');
      if (o.binding === undefined && o.nonce === undefined) usage('give --nonce HEX (the challenge nonce; \'\' when the evidence was made without one) or --binding HEX');
      let binding: Uint8Array;
      try {
        if (o.binding !== undefined) {
          if (o.ephemeralKey) usage('--ephemeral-key goes with --nonce, not --binding');
          binding = o.binding === '' ? new Uint8Array(0) : fromHex(o.binding, '--binding');
        } else {
          const jwk = o.ephemeralKey ? (JSON.parse(await readFile(o.ephemeralKey, 'utf8')) as JWK) : undefined;
          if (o.nonce === '' && jwk) usage('an empty --nonce cannot be combined with --ephemeral-key');
          binding = o.nonce === '' ? new Uint8Array(0) : await computeBinding(fromHex(o.nonce as string, '--nonce'), jwk);
        }
      } catch (e) {
        usage(e instanceof Error ? e.message : String(e));
      }
      const now = o.at ? new Date(o.at) : systemClock.now();
      if (Number.isNaN(now.getTime())) usage(`--at ${o.at} is not an RFC 3339 time`);
      let trust;
      let installed: Record<string, string> = {};
      try {
        const tcfg = parseConfig({ trust: { dir: o.trust ?? '/nonexistent' } }).trust;
        trust = o.trust ? await loadTrustStore(tcfg) : createTrustStore([]);
        installed = o.trust ? await loadTrustIntermediates(tcfg) : {};
      } catch (e) {
        usage(e instanceof Error ? e.message : String(e));
      }
      let given = '';
      for (const f of o.intermediates ?? []) {
        try {
          given += await readFile(f, 'utf8');
        } catch (e) {
          usage(`cannot read --intermediates ${f}: ${(e as Error).message}`);
        }
      }
      // Options for an offline verdict: the intermediates the operator gave (and those `trust
      // fetch` installed for the provider's vendor), and SHA-1 banks when asked for. Everything
      // else is the provider's default, exactly as `serve` runs it.
      const d = PROVIDERS.find((x) => x.name === provider);
      if (!d) usage(`this build has no "${provider}" provider`);
      const env = { store: new MemoryStore(), intermediates: installed };
      const intermediatesPem = given + (d.intermediates ? intermediatesOf(env, d.intermediates) : '');
      let registry: ProviderRegistry;
      try {
        registry = new ProviderRegistry([factoryOf(d)(d.offlineOptions?.({ intermediatesPem, allowSha1: !!o.allowSha1 }) ?? {}, env)]);
      } catch (e) {
        usage(isAttestError(e) ? `${e.code}: ${e.message}` : String(e));
      }
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
