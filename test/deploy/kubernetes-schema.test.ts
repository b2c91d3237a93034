/**
 * Every Kubernetes object the repository ships, checked against the API schemas, offline.
 *
 * What is rendered: `kubectl kustomize` of deploy/kubernetes/base, overlays/redis, and overlays/redis
 * with both optional components (servicemonitor, kubeadm) — so every file under
 * deploy/kubernetes/ is in at least one rendering.
 *
 * How it is validated: there is no API server here, and `kubectl apply/create --dry-run=client
 * --validate=strict` needs the server's OpenAPI documents (kubectl fetches /openapi/v3), so
 * kubectl cannot do it. Instead each object goes through the JSON-schema validator compiled
 * from the Kubernetes OpenAPI specification, as packaged on npm by kubernetes-models (4.5.1:
 * Kubernetes v1.33.0 schemas; its changelog, "Update schema version to v1.33.0") and
 * @kubernetes-models/prometheus-operator (4.4.4: the monitoring.coreos.com/v1 CRD schemas).
 * That checks types, required fields, enums, formats and patterns. The OpenAPI schemas do not
 * forbid unknown fields (the API server prunes or, with fieldValidation=Strict, rejects them),
 * so unknown fields are found here separately: the validator is run on a proxy that records
 * which properties it reads, and a property of an object whose schema lists properties but
 * that the validator never read is a field the API does not know (a typo, a wrong level). Maps
 * (labels, ConfigMap data) are enumerated by the validator and exempt.
 * An object of a kind with no schema here fails the test.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };
type ModelCtor = { new (data?: unknown): { validate(): void } };

const parse = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJSON() as Obj).filter(Boolean);
const kustomize = (dir: string): Obj[] => parse(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' }));

/** overlays/redis with both optional components, through a kustomization of our own (relative paths: kustomize wants them). */
function renderWithComponents(): Obj[] {
  const tmp = mkdtempSync(join(tmpdir(), 'kustomize-all-'));
  try {
    const rel = (p: string): string => relative(tmp, resolve(p));
    writeFileSync(
      join(tmp, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${rel('deploy/kubernetes/overlays/redis')}`,
        'components:',
        `  - ${rel('deploy/kubernetes/components/servicemonitor')}`,
        `  - ${rel('deploy/kubernetes/components/kubeadm')}`,
        '',
      ].join('\n'),
    );
    return kustomize(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The model (schema) of an apiVersion/kind, from the packages named in the header. */
async function modelFor(apiVersion: string, kind: string): Promise<ModelCtor> {
  const path =
    apiVersion === 'monitoring.coreos.com/v1'
      ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`
      : `kubernetes-models/${apiVersion}/${kind}`; // core: v1/Service; groups: apps/v1/Deployment
  const mod = (await import(path)) as Record<string, ModelCtor | undefined>;
  const ctor = mod[kind];
  if (!ctor) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return ctor;
}

interface Reads {
  read: Set<string | symbol>;
  enumerated: boolean;
}

/**
 * Runs `validate` of `Model` on a proxy of `obj` and returns [schema errors, unknown fields].
 * The model's validate() runs the compiled validator on `this`; calling it with the proxy as
 * `this` makes the validator read the object through the proxy.
 */
function validate(Model: ModelCtor, obj: Obj): { error?: string; unknown: string[] } {
  const reads = new Map<object, Reads>();
  const wrap = (o: unknown): unknown => {
    if (o === null || typeof o !== 'object') return o;
    let r = reads.get(o);
    if (!r) reads.set(o, (r = { read: new Set(), enumerated: false }));
    const rec = r;
    return new Proxy(o, {
      get: (t, k) => {
        rec.read.add(k);
        return wrap(Reflect.get(t, k));
      },
      has: (t, k) => {
        rec.read.add(k);
        return Reflect.has(t, k);
      },
      ownKeys: (t) => {
        rec.enumerated = true;
        return Reflect.ownKeys(t);
      },
    });
  };
  let error: string | undefined;
  try {
    Model.prototype.validate.call(wrap(obj));
  } catch (e) {
    error = (e as Error).message;
  }
  const unknown: string[] = [];
  const walk = (o: unknown, path: string): void => {
    if (o === null || typeof o !== 'object') return;
    if (Array.isArray(o)) return o.forEach((x, i) => walk(x, `${path}[${i}]`));
    const r = reads.get(o);
    // Checked for unknown keys: objects whose schema lists properties (the validator read some)
    // and that are not maps (a map's keys are enumerated).
    if (r && r.read.size > 0 && !r.enumerated) for (const k of Object.keys(o)) if (!r.read.has(k)) unknown.push(`${path}.${k}`);
    for (const [k, v] of Object.entries(o)) walk(v, `${path}.${k}`);
  };
  walk(obj, '');
  return { ...(error ? { error } : {}), unknown };
}

const RENDERINGS: Array<[string, () => Obj[]]> = [
  ['base', () => kustomize('deploy/kubernetes/base')],
  ['overlays/redis', () => kustomize('deploy/kubernetes/overlays/redis')],
  ['overlays/redis + components/servicemonitor + components/kubeadm', renderWithComponents],
];

describe('deploy/kubernetes against the API schemas (Kubernetes v1.33.0, monitoring.coreos.com/v1)', () => {
  for (const [name, render] of RENDERINGS) {
    it(`${name}: every object validates, with no unknown field`, async () => {
      const objs = render();
      expect(objs.length).toBeGreaterThan(10);
      const problems: string[] = [];
      for (const o of objs) {
        const r = validate(await modelFor(o.apiVersion, o.kind), o);
        const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
        if (r.error) problems.push(`${id}: ${r.error}`);
        for (const u of r.unknown) problems.push(`${id}: unknown field ${u}`);
      }
      expect(problems).toEqual([]);
    });
  }

  it('every YAML file under deploy/kubernetes is in a rendering', () => {
    const all = renderWithComponents();
    const names = new Set(all.map((o) => `${o.kind}/${o.metadata.name}`));
    const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', 'deploy/kubernetes'], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f.endsWith('.yaml') && !f.endsWith('kustomization.yaml'));
    for (const f of files) {
      const docs = parse(readFileSync(f, 'utf8')).filter((d) => d.kind && d.metadata);
      for (const d of docs) expect(names.has(`${d.kind}/${d.metadata.name}`), `${f}: ${d.kind}/${d.metadata.name}`).toBe(true);
    }
  });

  it('the check itself: a schema violation, an unknown field and an unknown kind are caught', async () => {
    const dep = kustomize('deploy/kubernetes/base').find((o) => o.kind === 'Deployment')!;
    const Deployment = await modelFor('apps/v1', 'Deployment');
    expect(validate(Deployment, dep)).toEqual({ unknown: [] });
    const bad = structuredClone(dep) as Obj & { spec: { replicas: unknown; template: { spec: { containers: Array<Record<string, unknown>> } } } };
    bad.spec.replicas = 'three';
    bad.spec.template.spec.containers[0]!.imagePullPolicyy = 'Always';
    (bad.spec as Record<string, unknown>).strategy = { type: 'Recreate', rollingUpdates: {} };
    const r = validate(Deployment, bad);
    expect(r.error).toMatch(/spec\/replicas must be integer/);
    expect(r.unknown.sort()).toEqual(['.spec.strategy.rollingUpdates', '.spec.template.spec.containers[0].imagePullPolicyy']);
    // A ServiceMonitor with a bad interval, and a field of the wrong level.
    const sm = renderWithComponents().find((o) => o.kind === 'ServiceMonitor')!;
    const ServiceMonitor = await modelFor('monitoring.coreos.com/v1', 'ServiceMonitor');
    expect(validate(ServiceMonitor, sm)).toEqual({ unknown: [] });
    const badSm = structuredClone(sm) as Obj & { spec: { endpoints: Array<Record<string, unknown>> } };
    badSm.spec.endpoints[0]!.interval = 'thirty seconds';
    (badSm.spec as Record<string, unknown>).port = 'metrics';
    const rs = validate(ServiceMonitor, badSm);
    expect(rs.error).toMatch(/interval must match pattern/);
    expect(rs.unknown).toEqual(['.spec.port']);
    await expect(modelFor('example.com/v1', 'Widget')).rejects.toThrow();
  });
});
