/**
 * Start-up configuration: validated with messages that say what to fix; refuses unsafe set-ups.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyEnv, ConfigProblem, parseConfig } from '../../broker/config/schema.js';
import { loadConfig, buildRuntime } from '../../broker/runtime.node.js';
import { buildProviders, PROVIDER_FACTORIES } from '../../broker/providers.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { bindingEchoProvider } from '../helpers/test-provider.js';
import { captureLogger } from '../helpers/broker.js';
import { MemoryStore } from '../../broker/store/memory.js';

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigProblem) return e.problems;
    throw e;
  }
  return [];
}

describe('config schema', () => {
  it('defaults are the protocol defaults', () => {
    const c = parseConfig({});
    expect(c.challenge.ttlSeconds).toBe(120);
    expect(c.limits.bodyBytes).toBe(1024 * 1024);
    expect(c.store.url).toBe('memory://');
    expect(Object.values(c.providers).every((p) => !p.enabled)).toBe(true);
  });
  it.each([
    [{ stor: {} }, /unknown key\(s\) "stor"/],
    [{ store: { url: 'postgres://x' } }, /store\.url: must start with memory:\/\//],
    [{ listen: { port: 70000 } }, /listen\.port/],
    [{ challenge: { ttlSeconds: 1 } }, /challenge\.ttlSeconds/],
    [{ providers: { ibm: { enabled: true } } }, /unknown key\(s\) "ibm"/],
    [{ trust: { anchors: [{ id: 'x-root', file: '/f', sha256: 'ABC' }] } }, /sha256: must be the lower-case hex SHA-256/],
    [{ trust: { anchors: [{ id: 'aws-nitro-root-g1', file: '/f', sha256: 'a'.repeat(64) }] } }, /built-in pinned root; operator anchors need their own id/],
    [{ trust: { anchors: [{ id: 'my-root', file: '/f', sha256: 'a'.repeat(64) }, { id: 'my-root', file: '/g', sha256: 'b'.repeat(64) }] } }, /anchor ids must be unique/],
  ])('%j is refused with a message naming the path', (raw, re) => {
    const p = problems(() => parseConfig(raw));
    expect(p.join('\n')).toMatch(re);
  });
  it('environment overrides apply and are type-checked', () => {
    const c = parseConfig(applyEnv({}, { ATTEST_BROKER_PORT: '9999', ATTEST_BROKER_STORE_URL: 'redis://127.0.0.1:6379' }));
    expect(c.listen.port).toBe(9999);
    expect(c.store.url).toBe('redis://127.0.0.1:6379');
    expect(problems(() => applyEnv({}, { ATTEST_BROKER_PORT: 'eighty' })).join()).toMatch(/ATTEST_BROKER_PORT=eighty: must be a whole number/);
  });
});

describe('unsafe configurations refuse to start', () => {
  it('an enabled cloud provider without its pinned roots is refused, naming the fix', () => {
    PROVIDER_FACTORIES.gcp = () => ({ ...bindingEchoProvider, name: 'gcp', formats: ['gotpm'] });
    try {
      const cfg = parseConfig({ providers: { gcp: { enabled: true } }, trust: { dir: '/nonexistent' } });
      const p = problems(() => buildProviders(cfg, createTrustStore([]), { store: new MemoryStore() }));
      expect(p.join('\n')).toMatch(/providers\.gcp: enabled, but none of its pinned roots .*'attest-broker trust fetch/);
    } finally {
      delete PROVIDER_FACTORIES.gcp;
    }
  });
  it('a provider this build lacks is refused', () => {
    const cfg = parseConfig({ providers: { aws: { enabled: true } } });
    expect(problems(() => buildProviders(cfg, createTrustStore([]), { store: new MemoryStore() })).join()).toMatch(/has no "aws" provider|none of its pinned roots/);
  });
  it('a trust file that does not match its pin stops start-up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trust-'));
    const { execFileSync } = await import('node:child_process');
    // A self-signed certificate stored under the name of a pinned root.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'aws-nitro-root-g1.pem'), '-subj', '/CN=fake', '-days', '1'], { stdio: 'ignore' });
    const cfg = parseConfig({ trust: { dir } });
    const { logger } = captureLogger();
    await expect(buildRuntime(cfg, { logger })).rejects.toThrow(/PIN|pin/);
  });
  it('config files: YAML with duplicate keys or a non-mapping top level are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'dup.yaml'), 'store:\n  url: memory://\nstore:\n  url: redis://x:1\n');
    writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
    writeFileSync(join(dir, 'ok.yaml'), 'listen:\n  port: 18080\n');
    await expect(loadConfig({ file: join(dir, 'dup.yaml'), env: {} })).rejects.toThrow(/not valid YAML/);
    await expect(loadConfig({ file: join(dir, 'list.yaml'), env: {} })).rejects.toThrow(/must be a mapping/);
    await expect(loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).rejects.toThrow(/cannot read the config file/);
    expect((await loadConfig({ file: join(dir, 'ok.yaml'), env: { ATTEST_BROKER_PORT: '18081' } })).listen.port).toBe(18081);
  });
});

describe('runtime without optional sections', () => {
  it('starts without policy or release (attests then fail closed), and with them wires both', async () => {
    await import('../../broker/builtins.node.js');
    const { logger, lines } = captureLogger();
    const rt = await buildRuntime(parseConfig({ trust: { dir: '/nonexistent' } }), { logger });
    expect(rt.deps.policy).toBeUndefined();
    expect(rt.deps.release).toBeUndefined();
    expect(lines.join('\n')).toMatch(/RELEASE_UNAVAILABLE/);
    await rt.close();
    const rt2 = await buildRuntime(parseConfig({ trust: { dir: '/nonexistent' }, policy: { file: 'deploy/policies/dev.yaml', watch: false }, release: { mode: 'dev' } }), { logger });
    expect(rt2.deps.policy).toBeDefined();
    expect(rt2.deps.release).toBeDefined();
    await rt2.close();
  });
});
