/**
 * The release examples of docs/configuration.md are whole configurations the broker starts
 * with outside a cluster: each is loaded and its runtime built by `serve`'s own code, with the
 * files it names created under a temporary directory (the kubeconfig points at the local test
 * Kubernetes API server).
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, buildRuntime } from '../../broker/runtime.node.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import '../../broker/builtins.node.js';
import { makeTestPki } from '../servers/tls.js';
import { startKubeServer } from '../servers/kube-apiserver.js';

const ROOT = join(import.meta.dirname, '../..');
const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
const examples = Object.fromEntries([...doc.matchAll(/<!-- config-example: (\w+) -->\n```yaml\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]));

describe('docs/configuration.md release examples', () => {
  it('has one per mode', () => {
    expect(Object.keys(examples).sort()).toEqual(['dev', 'secret', 'webhook']);
  });

  for (const mode of ['secret', 'webhook', 'dev'] as const) {
    it(`${mode}: starts outside a cluster`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `cfg-${mode}-`));
      const etc = join(dir, 'etc');
      const text = examples[mode]!.replaceAll('/etc/attest-broker/', `${etc}/`).replaceAll('/var/log/attest-broker/', `${dir}/log/`).replace('deploy/policies/', `${ROOT}/deploy/policies/`);
      const pki = makeTestPki();
      const kube = await startKubeServer(pki);
      const files: Record<string, string | Uint8Array> = {
        'tls.crt': pki.certPem + pki.caPem,
        'tls.key': pki.keyPem,
        'policy.yaml': readFileSync(join(ROOT, 'deploy/policies/dev.yaml'), 'utf8'),
        'prod-ca.crt': pki.caPem,
        'kek.bin': randomBytes(32),
        'prod-apiserver.token': randomBytes(32).toString('hex'),
        'prod.kubeconfig': stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'prod', cluster: { server: kube.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64') } }],
          users: [{ name: 'broker', user: { token: kube.adminToken } }],
          contexts: [{ name: 'prod', context: { cluster: 'prod', user: 'broker' } }],
          'current-context': 'prod',
        }),
      };
      mkdirSync(join(etc, 'trust'), { recursive: true });
      mkdirSync(join(dir, 'log'), { recursive: true });
      for (const [f, c] of Object.entries(files)) writeFileSync(join(etc, f), c, { mode: 0o600 });
      const file = join(dir, 'config.yaml');
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, text);
      const cfg = await loadConfig({ file, env: {} });
      const rt = await buildRuntime(cfg, { logger: createConsoleLogger('error', {}, () => undefined) });
      try {
        expect(rt.deps.release).toBeDefined();
        if (mode === 'webhook') expect(rt.webhook?.listen.port).toBe(8444);
        else expect(rt.webhook).toBeUndefined();
      } finally {
        await rt.close();
        await kube.close();
      }
    });
  }
});
