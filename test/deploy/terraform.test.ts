/**
 * terraform/modules/user-data replaces the example values of deploy/cloud-init/<platform>.yaml.
 * Checked two ways: what the module relies on (each replace() target occurs exactly once in
 * every cloud-init file; the same three replacements give valid cloud-config), and — when a
 * `terraform` binary is installed — the module itself, applied offline (it has no providers),
 * its output compared with that, and its variable validations refusing bad input.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const tf = readFileSync('terraform/modules/user-data/main.tf', 'utf8');
// A target may end in a newline (`\n` in HCL): ATTEST_CLIENT_SHA256= is empty in the files.
const targets = [...tf.matchAll(/"(ATTEST_[A-Z0-9_]+=[^"$]*)", "ATTEST_[A-Z0-9_]+=\$\{var\.([a-z0-9_]+)\}(?:\\n)?"/g)].map((m) => ({ literal: m[1]!.replaceAll('\\n', '\n'), variable: m[2]! }));
const assign = (literal: string, value: string): string => `${literal.split('=')[0]}=${value}${literal.endsWith('\n') ? '\n' : ''}`;
const HAVE_CLOUD_INIT = (() => {
  try {
    execFileSync('cloud-init', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const HAVE_TERRAFORM = (() => {
  try {
    execFileSync('terraform', ['version'], { stdio: 'ignore', env: { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null' } });
    return true;
  } catch {
    return false;
  }
})();
if (!HAVE_TERRAFORM) console.warn('terraform not installed: the module is checked by its replace() targets only');

function render(platform: string, values: Record<string, string>): string {
  let text = readFileSync(`deploy/cloud-init/${platform}.yaml`, 'utf8');
  for (const t of targets) text = text.replace(t.literal, assign(t.literal, values[t.variable] ?? ''));
  return text;
}

describe('terraform/modules/user-data', () => {
  it('replaces the three values (and the optional client digest), and only those', () => {
    expect(targets.map((t) => t.variable).sort()).toEqual(['broker_url', 'ca_pin', 'client_sha256', 'cluster']);
  });
  for (const platform of ['azure', 'gcp', 'aws', 'generic']) {
    it(`${platform}: every target occurs exactly once, and the rendered user-data is valid`, () => {
      let text = readFileSync(`deploy/cloud-init/${platform}.yaml`, 'utf8');
      const values: Record<string, string> = { broker_url: 'https://broker.prod.internal', ca_pin: `sha256:${'ab'.repeat(32)}`, cluster: 'prod-eu1', client_sha256: `sha256:${'ef'.repeat(32)}` };
      for (const t of targets) {
        expect(text.split(t.literal).length - 1).toBe(1);
        text = text.replace(t.literal, assign(t.literal, values[t.variable]!));
      }
      expect(text).toContain(`ATTEST_CLIENT_SHA256=sha256:${'ef'.repeat(32)}\n`);
      expect(text).toContain('ATTEST_BROKER=https://broker.prod.internal\n');
      expect(text).toContain(`ATTEST_CA_PIN=sha256:${'ab'.repeat(32)}\n`);
      expect(text).toContain('ATTEST_CLUSTER=prod-eu1\n');
      expect(text).toBe(render(platform, values));
      if (HAVE_CLOUD_INIT) {
        const dir = mkdtempSync(join(tmpdir(), 'tf-ud-'));
        try {
          const f = join(dir, 'user-data.yaml');
          writeFileSync(f, text);
          expect(execFileSync('cloud-init', ['schema', '--config-file', f], { encoding: 'utf8' })).toMatch(/Valid cloud-config/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    });
  }

  (HAVE_TERRAFORM ? it : it.skip)('terraform apply renders the same user-data, and validation refuses bad values', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-root-'));
    const env = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1' };
    // A local-path source (./ or ../) is used in place, so the module's file() finds deploy/.
    const source = relative(dir, resolve('terraform/modules/user-data'));
    const values = { broker_url: 'https://broker.prod.internal:8443', ca_pin: `sha256:${'cd'.repeat(32)}`, cluster: 'prod-eu1' };
    const root = (platform: string, pin = values.ca_pin): string =>
      `module "ud" {\n  source = "${source}"\n  broker_url = "${values.broker_url}"\n  ca_pin = "${pin}"\n  cluster = "${values.cluster}"\n  platform = "${platform}"\n}\noutput "ud" { value = module.ud.user_data }\n`;
    try {
      const tf = (...args: string[]): string => execFileSync('terraform', args, { cwd: dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      writeFileSync(join(dir, 'main.tf'), root('aws'));
      tf('init', '-input=false', '-no-color', '-backend=false');
      tf('apply', '-auto-approve', '-input=false', '-no-color');
      expect(tf('output', '-raw', 'ud')).toBe(render('aws', values));
      writeFileSync(join(dir, 'main.tf'), root('aws', 'sha256:XYZ'));
      expect(() => tf('plan', '-input=false', '-no-color')).toThrow(/ca_pin must be/);
      writeFileSync(join(dir, 'main.tf'), root('openstack'));
      expect(() => tf('plan', '-input=false', '-no-color')).toThrow(/platform must be/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
