/**
 * A provider is one descriptor in one list (providers/catalog.ts, docs/providers.md). Here a fake
 * provider exists only as a descriptor in this file, added to a copy of the list, and shows up
 * everywhere the broker derives from the list: the configuration, the registry (through
 * buildProviders), the policy schema, semantic checks and evaluation, and `policy capture`.
 * Without its pinned root loaded, the enabled provider refuses to start (fail closed).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DEVICES, PROVIDERS } from '../../providers/catalog.js';
import { checkCatalog, provenValue, proves, type ProviderDescriptor } from '../../providers/descriptor.js';
import type { Provider, ProviderClaims, Claims, VerifyContext } from '../../providers/common/types.js';
import type { TrustAnchor } from '../../providers/common/x509.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { toHex } from '../../providers/common/encoding.js';
import { rejected } from '../../providers/common/errors.js';
import { ConfigProblem, configSchemaFor, parseConfig, ConfigSchema } from '../../broker/config/schema.js';
import { buildDevices, buildProviders, REQUIRED_PINS, PROVIDER_FACTORIES } from '../../broker/providers.js';
import { formatsOf, PROTOCOL_FORMATS, ProviderRegistry } from '../../broker/registry.js';
import { policySchema, policySchemaFor } from '../../broker/policy/schema.js';
import { checkPolicyText, loadPolicyText } from '../../broker/policy/load.js';
import { evaluatePolicy } from '../../broker/policy/evaluate.js';
import { capturePolicy, claimsFromJson } from '../../broker/policy/capture.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { PLATFORMS } from '../../deploy/node/client/evidence.node.js';

const NOW = new Date('2026-03-01T00:00:00Z');

/** The fake provider: evidence `{binding: <hex>, tenant, host}`, accepted when the binding matches. */
const fake: ProviderDescriptor<'fake'> = {
  kind: 'platform',
  name: 'fake',
  formats: { 'fake-quote': { tees: ['none'] } },
  pins: [['fake-root']],
  options: z.strictObject({ region: z.string().min(1).optional() }),
  create: (o): Provider =>
    ({
      name: 'fake',
      formats: ['fake-quote'],
      async verify(format: string, evidence: unknown, ctx: VerifyContext): Promise<ProviderClaims> {
        const e = evidence as { binding?: string; tenant?: string; host?: string };
        if (e.binding !== toHex(ctx.binding)) throw rejected('NONCE_MISMATCH', 'binding differs');
        return {
          provider: 'fake',
          format,
          platform: { tee: 'none', debug: false },
          identity: { cloud: 'fakecloud', account: e.tenant, instanceId: 'i-1', instanceName: e.host, ...(o.region ? { region: String(o.region) } : {}), proven: ['account', 'instanceName', 'instanceId'] },
        } as unknown as ProviderClaims;
      },
    }) as unknown as Provider,
  identity: {
    cloud: 'fakecloud',
    rule: {
      tenants: { claim: 'account', match: 'exact', description: 'Fake tenants (claims.identity.account).' },
      instanceNames: { claim: 'instanceName', match: 'glob', description: 'Patterns over the fake host name.' },
    },
    hint: 'tenants',
    capture: (c) => ({ tenants: provenValue(c, 'account'), instanceNames: 'any' }),
  },
  nodeName: {
    sources: { 'fake-host': { field: 'instanceName' }, 'fake-id': { field: 'instanceId' } },
    capture: (c) => (proves(c, 'instanceName') ? 'fake-host' : 'fake-id'),
  },
};

const CATALOG = [...PROVIDERS, fake] as const;
const anchor = (id: string) => ({ id, sha256: '0'.repeat(64), source: 'test', cert: {} }) as unknown as TrustAnchor;
const env = () => ({ store: new MemoryStore() });
const binding = new Uint8Array(32).fill(7);

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigProblem) return e.problems.join('\n');
    throw e;
  }
  return '';
}

const fakeClaims = (tenant = 'acme', host = 'gpu-node-1'): Claims =>
  ({
    provider: 'fake',
    format: 'fake-quote',
    platform: { tee: 'none', debug: false },
    identity: { cloud: 'fakecloud', account: tenant, instanceId: 'i-1', instanceName: host, proven: ['account', 'instanceName', 'instanceId'] },
    tpm: { akSha256: 'cd'.repeat(32), pcrs: {}, akTrust: 'evidence-only' },
    evidenceSha256: 'ab'.repeat(32),
  }) as unknown as Claims;

const policyText = (identity: string) => `apiVersion: attest-broker/v1
kind: JoinPolicy
version: "1"
defaultCluster: prod
clusters:
  prod:
    providers:
      fake: { formats: [fake-quote] }
    tpm: { akTrust: [evidence-only], pinnedAks: any }
    platform: { tee: any, debug: { forbidden: true }, snpTcb: any, tdx: any }
${identity}
    boot: { secureBoot: any }
    images: any
    nodeName:
      fake: { from: fake-host }
    release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: false, diskKey: false }
`;

describe('the catalog', () => {
  it("this build's derived lists are the descriptors'", () => {
    expect(PROTOCOL_FORMATS).toEqual({ azure: ['az-snp-vtpm', 'az-tdx-vtpm'], gcp: ['gotpm', 'gotpm-json', 'vaportpm-gcp'], aws: ['nitrotpm'], tpm: ['tpm'] });
    expect(Object.keys(PROVIDER_FACTORIES)).toEqual(['azure', 'gcp', 'aws', 'tpm']);
    expect(REQUIRED_PINS).toEqual({
      azure: [['amd-ark-milan', 'amd-ark-genoa', 'amd-ark-turin', 'intel-sgx-root-ca']],
      gcp: [['google-tpm-ek-root-1', 'google-ekak-ca-root']],
      aws: [['aws-nitro-root-g1']],
      nvidia: [['nvidia-device-identity-ca'], ['nvidia-corim-signing-root-ca']],
    });
  });

  it("the join client's --platform list is the descriptors' client platforms", () => {
    expect(new Set(PROVIDERS.flatMap((d) => (d.client ? [d.client.platform] : [])))).toEqual(new Set(PLATFORMS));
    for (const d of PROVIDERS) if (d.client) expect(Object.keys(d.formats)).toContain(d.client.format);
  });

  it('refuses a list with a format, name or node-name source declared twice', () => {
    expect(() => checkCatalog([...PROVIDERS, { ...fake, formats: { tpm: { tees: ['none'] } } }])).toThrow(/format "tpm" is declared twice/);
    expect(() => checkCatalog([...PROVIDERS, { ...fake, name: 'gcp' } as unknown as ProviderDescriptor])).toThrow(/name "gcp" is declared twice/);
    expect(() => checkCatalog([...PROVIDERS, { ...fake, nodeName: { ...fake.nodeName, sources: { 'azure-vm-id': { field: 'instanceId' } } } }])).toThrow(/node-name source "azure-vm-id"/);
    expect(() => checkCatalog(CATALOG, DEVICES)).not.toThrow();
  });
});

describe('a provider added by its descriptor alone', () => {
  const schema = configSchemaFor(CATALOG, DEVICES);

  it('has a providers.<name> block in the configuration (and the built-in schema does not)', () => {
    const cfg = parseConfig({ providers: { fake: { enabled: true, options: { region: 'eu' } } } }, schema);
    expect((cfg.providers as Record<string, unknown>).fake).toEqual({ enabled: true, options: { region: 'eu' } });
    expect(problems(() => parseConfig({ providers: { fake: { enabled: true } } }, ConfigSchema))).toMatch(/providers: unknown key\(s\) "fake"/);
    expect(problems(() => parseConfig({ providers: { fake: { enabled: true } } }))).toMatch(/unknown key/);
  });

  it('is built and resolved by the registry, and verifies through it', async () => {
    const cfg = parseConfig({ providers: { fake: { enabled: true }, tpm: { enabled: true } } }, schema);
    const built = buildProviders(cfg, createTrustStore([anchor('fake-root')]), env(), CATALOG);
    expect(built.map((p) => p.name).sort()).toEqual(['fake', 'tpm']);
    const registry = new ProviderRegistry(built);
    expect(registry.formats()).toEqual(['fake-quote', 'tpm']);
    const p = registry.resolve('fake', 'fake-quote');
    const c = await p.verify('fake-quote', { binding: toHex(binding), tenant: 'acme', host: 'h1' }, { binding, now: NOW, fetch, trust: createTrustStore([]), options: {} });
    expect(c.identity).toMatchObject({ cloud: 'fakecloud', account: 'acme' });
    await expect(p.verify('fake-quote', { binding: '00' }, { binding, now: NOW, fetch, trust: createTrustStore([]), options: {} })).rejects.toMatchObject({ code: 'NONCE_MISMATCH' });
    expect(formatsOf(CATALOG).fake).toEqual(['fake-quote']);
  });

  it('refuses to start without its pinned root loaded (fail closed), naming the fix', () => {
    const cfg = parseConfig({ providers: { fake: { enabled: true } }, trust: { dir: '/nonexistent' } }, schema);
    const p = problems(() => buildProviders(cfg, createTrustStore([anchor('some-other-root')]), env(), CATALOG));
    expect(p).toMatch(/providers\.fake: enabled, but none of its pinned roots \(fake-root\) is loaded from trust\.dir "\/nonexistent"; run 'attest-broker trust fetch/);
    // Disabled, it needs nothing.
    expect(buildProviders(parseConfig({}, schema), createTrustStore([]), env(), CATALOG)).toEqual([]);
  });

  it('has its options checked by its schema at start-up', () => {
    const cfg = parseConfig({ providers: { fake: { enabled: true, options: { region: '', zone: 'x' } } } }, schema);
    expect(problems(() => buildProviders(cfg, createTrustStore([anchor('fake-root')]), env(), CATALOG))).toMatch(/providers\.fake\.options: .*(region|zone)/);
  });

  it('has providers/identity/nodeName entries in the policy schema (and the built-in schema refuses them)', async () => {
    const text = policyText('    identity:\n      fake: { tenants: [acme], instanceNames: any }');
    const r = await checkPolicyText(text, NOW, CATALOG);
    expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(policySchemaFor(CATALOG).policy.safeParse(r.policy!.doc).success).toBe(true);
    expect(policySchema.safeParse(r.policy!.doc).success).toBe(false);
    const builtIn = await checkPolicyText(text, NOW);
    expect(builtIn.policy).toBeUndefined();
    expect(builtIn.issues.map((i) => i.message).join('\n')).toMatch(/unknown key\(s\) 'fake'/);
    // A node-name source of another provider, a field the descriptor does not declare: refused.
    expect((await checkPolicyText(text.replace('from: fake-host', 'from: azure-vm-id'), NOW, CATALOG)).issues.map((i) => i.code)).toContain('POLICY_NODE_NAME_SOURCE_INVALID');
    expect((await checkPolicyText(text.replace('tenants: [acme]', 'projects: [acme]'), NOW, CATALOG)).issues.map((i) => i.code)).toContain('POLICY_SCHEMA');
  });

  it('gets the semantic checks: an enabled provider without an identity rule is an error naming its hint', async () => {
    const r = await checkPolicyText(policyText('    identity: {}'), NOW, CATALOG);
    const missing = r.issues.find((i) => i.code === 'POLICY_IDENTITY_RULE_MISSING');
    expect(missing?.path).toBe('clusters.prod.identity.fake');
    expect(missing?.message).toMatch(/the tenants allowed to join/);
  });

  it('is evaluated with its identity fields, cloud and node-name source', async () => {
    const policy = await loadPolicyText(policyText('    identity:\n      fake: { tenants: [acme], instanceNames: [gpu-*] }'), NOW, CATALOG);
    const ok = evaluatePolicy(policy, fakeClaims(), undefined, NOW, CATALOG);
    expect(ok.allow).toBe(true);
    expect(ok.nodeName).toBe('gpu-node-1');
    const other = evaluatePolicy(policy, fakeClaims('evil'), undefined, NOW, CATALOG);
    expect(other.rules.find((x) => x.rule === 'identity.fake.tenants')).toMatchObject({ outcome: 'fail', code: 'POLICY_IDENTITY_MISMATCH' });
    const badHost = evaluatePolicy(policy, fakeClaims('acme', 'web-1'), undefined, NOW, CATALOG);
    expect(badHost.rules.find((x) => x.rule === 'identity.fake.instanceNames')).toMatchObject({ outcome: 'fail', code: 'POLICY_INSTANCE_NAME_MISMATCH' });
    const c = fakeClaims();
    const cloud = evaluatePolicy(policy, { ...c, identity: { ...c.identity, cloud: 'aws' } }, undefined, NOW, CATALOG);
    expect(cloud.rules.find((x) => x.rule === 'identity.fake')).toMatchObject({ outcome: 'fail', code: 'POLICY_IDENTITY_MISMATCH' });
  });

  it('is captured: the policy pins its format, proven tenant and node-name source, and admits the node', async () => {
    const claims = claimsFromJson({ ok: true, claims: fakeClaims() }, CATALOG);
    expect(() => claimsFromJson({ ok: true, claims: fakeClaims() })).toThrow(/not a verdict or claims JSON/);
    const { yaml, policy } = await capturePolicy(claims, { now: NOW, cluster: 'gpu', catalog: CATALOG });
    const cluster = policy.doc.clusters.gpu as unknown as Record<string, Record<string, unknown>>;
    expect(cluster.providers).toEqual({ fake: { formats: ['fake-quote'] } });
    expect(cluster.identity).toEqual({ fake: { tenants: ['acme'], instanceNames: 'any' } });
    expect(cluster.nodeName).toEqual({ fake: { from: 'fake-host' } });
    expect(yaml).toContain('fake-quote');
    expect(evaluatePolicy(policy, fakeClaims('evil'), 'gpu', NOW, CATALOG).allow).toBe(false);
  });
});

describe('device descriptors', () => {
  it('an enabled devices.nvidia without both NVIDIA roots refuses to start (fail closed)', () => {
    const cfg = parseConfig({ devices: { nvidia: { enabled: true } }, trust: { dir: '/nonexistent' } });
    const p = problems(() => buildDevices(cfg, createTrustStore([anchor('nvidia-device-identity-ca')]), { fetch }));
    expect(p).toMatch(/devices\.nvidia: enabled, but none of its pinned roots \(nvidia-corim-signing-root-ca\) is loaded/);
    expect(p).not.toMatch(/nvidia-device-identity-ca\)/);
    const both = buildDevices(cfg, createTrustStore([anchor('nvidia-device-identity-ca'), anchor('nvidia-corim-signing-root-ca')]), { fetch });
    expect(Object.keys(both ?? {})).toEqual(['nvidia-gpu']);
    expect(buildDevices(parseConfig({}), createTrustStore([]), { fetch })).toBeUndefined();
  });
});

describe('tpm options agree with the provider', () => {
  it('activationTtlSeconds is refused above the provider\'s own 10-minute limit, at configuration', async () => {
    const { TpmOptionsSchema } = await import('../../providers/tpm/descriptor.js');
    expect(TpmOptionsSchema.safeParse({ activationTtlSeconds: 600 }).success).toBe(true);
    expect(TpmOptionsSchema.safeParse({ activationTtlSeconds: 601 }).success).toBe(false);
  });
});
