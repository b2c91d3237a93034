/**
 * Provider options in the configuration reach the provider once, at its factory, and `serve`
 * verifies with them: a non-empty `providers.azure.options` block (what an operator writes) must
 * not turn every Azure attest into OPTIONS_INVALID. Checked on the runtime `serve` builds, with
 * the trust installed by `trust import` and real Azure evidence at its pinned time.
 */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import '../../broker/builtins.node.js';
import { buildRuntime, loadConfig, type Runtime } from '../../broker/runtime.node.js';
import { verifyEvidence } from '../../broker/verify.js';
import { ProviderRegistry } from '../../broker/registry.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { runCli } from '../helpers/cli.js';
import { describeVectors, readVectorJson, vectorPath } from '../helpers/vectors.js';

describeVectors('provider options from the configuration', () => {
  let rt: Runtime;
  beforeAll(async () => {
    const from = mkdtempSync(join(tmpdir(), 'vendor-'));
    for (const f of ['trustee/amd-roots/milan_ask_ark_asvk.pem', 'trustee/amd-roots/genoa_ask_ark_asvk.pem', 'go-tdx-guest/trusted_root.pem']) {
      copyFileSync(vectorPath(f), join(from, f.replace(/\//g, '_')));
    }
    const trustDir = mkdtempSync(join(tmpdir(), 'trust-'));
    expect(runCli(['trust', 'import', from, '--dir', trustDir]).stderr).toMatch(/amd-ark-milan: took .* \(pin matches\)/);
    const file = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'config.yaml');
    writeFileSync(
      file,
      `listen: {host: 127.0.0.1, port: 0}
trust: {dir: ${trustDir}}
providers:
  azure: {enabled: true, options: {cacheSize: 100, snpProduct: Milan, defaults: {tdxTcbStatus: 'off'}}}
log: {level: error}
`,
    );
    rt = await buildRuntime(await loadConfig({ file, env: {} }), { logger: createConsoleLogger('error', {}, () => undefined) });
  }, 60_000);
  afterAll(async () => {
    await rt?.close();
  });

  it('a non-empty providers.azure.options block verifies real Azure evidence as serve would', async () => {
    const registry = rt.deps.providers instanceof ProviderRegistry ? rt.deps.providers : new ProviderRegistry(rt.deps.providers);
    const c = await verifyEvidence(registry, {
      provider: 'azure',
      format: 'az-snp-vtpm',
      evidence: readVectorJson('trustee/az-snp-vtpm/evidence-v1.json'),
      binding: new TextEncoder().encode('challenge'),
      now: new Date('2025-06-01T00:00:00Z'),
      trust: rt.deps.trust,
      fetch,
      ...(rt.deps.options?.providerOptions ? { providerOptions: rt.deps.options.providerOptions } : {}),
    });
    expect(c.provider).toBe('azure');
    expect(c.platform.tee).toBe('sev-snp');
  });
});
