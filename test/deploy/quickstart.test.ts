/**
 * docs/quickstart.md, executed: every ```sh block of the document, in order, in one bash
 * (set -e), from the repository root — free ports and a temporary directory are the only
 * things set from outside (the document reads QS, TPM_PORT and BROKER_PORT). The node must end
 * up with a bootstrap kubeconfig holding a token.
 */
import { describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, freePortPair } from '../helpers/ports.js';
import { ensureBuilt } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '../..');

describe('docs/quickstart.md', () => {
  it('runs end to end: swtpm node with an EK certificate joins the local broker over pinned TLS', async () => {
    ensureBuilt();
    const doc = readFileSync(join(ROOT, 'docs/quickstart.md'), 'utf8');
    const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBe(7);
    const qs = mkdtempSync(join(tmpdir(), 'quickstart-'));
    const tpmPort = await freePortPair();
    const env = { ...process.env, QS: qs, TPM_PORT: String(tpmPort), BROKER_PORT: String(await freePort()), NO_COLOR: '1' };
    // The cleanup block runs even if a step fails, so no swtpm or broker outlives the test.
    const script = `set -euo pipefail\ntrap '${blocks.at(-1)!.trim().replace(/'/g, "'\\''")} 2>/dev/null || true' EXIT\n${blocks.slice(0, -1).join('\n')}`;
    const r = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile('bash', ['-c', script], { cwd: ROOT, env, timeout: 180_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      ),
    );
    const log = existsSync(join(qs, 'broker.log')) ? readFileSync(join(qs, 'broker.log'), 'utf8') : '';
    expect(r.code, `${r.out}\n--- broker.log ---\n${log.slice(-3000)}`).toBe(0);
    expect(r.out).toMatch(/CA pin: sha256:[0-9a-f]{64}/);
    expect(r.out).toMatch(/"status":"ready"/);
    const kubeconfig = readFileSync(join(qs, 'bootstrap-kubeconfig'), 'utf8');
    expect(kubeconfig).toMatch(/token: [a-z0-9]{6}\.[a-z0-9]{16}/);
    expect(statSync(join(qs, 'bootstrap-kubeconfig')).mode & 0o777).toBe(0o600);
    expect(log).toContain('"type":"release"');
    // The cleanup block stopped the broker itself (its pid file names the broker, not a wrapper).
    const pid = Number(readFileSync(join(qs, 'broker.pid'), 'utf8'));
    const gone = (): boolean => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    // SIGTERM lets the broker drain its connections first (up to 10 s).
    for (let i = 0; i < 150 && !gone(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(gone(), `broker ${pid} still running after the cleanup block`).toBe(true);
    // …and no process serving this config is left (pgrep exits 1 when nothing matches).
    expect(spawnSync('pgrep', ['-f', `serve --config ${join(qs, 'config.yaml')}`]).status).toBe(1);
    rmSync(qs, { recursive: true, force: true });
  }, 200_000);
});
