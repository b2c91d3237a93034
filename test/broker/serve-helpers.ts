/**
 * The real server for HTTP-level tests: `attest-broker serve`'s own code path (config file →
 * loadConfig → buildRuntime → startServers), in-process so a test can also reach the runtime's
 * store, or as a child process running the built CLI (for memory measurements).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { stringify } from 'yaml';
import { loadConfig, buildRuntime } from '../../broker/runtime.node.js';
import { startServers, type Served } from '../../broker/commands/serve.node.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import '../../broker/builtins.node.js';
import { SERVE_NODE_ARGS, spawnCli } from '../helpers/cli.js';

export function writeConfig(cfg: unknown, dir = mkdtempSync(join(tmpdir(), 'ab-cfg-'))): string {
  const f = join(dir, 'config.yaml');
  writeFileSync(f, stringify(cfg));
  return f;
}

/** `serve --config FILE`, in-process; log lines are collected (and checked by callers). */
export async function serveInProcess(file: string): Promise<Served & { logs: string[] }> {
  const logs: string[] = [];
  const cfg = await loadConfig({ file, env: {} });
  const rt = await buildRuntime(cfg, { logger: createConsoleLogger('debug', {}, (l) => logs.push(l)) });
  return Object.assign(await startServers(cfg, rt), { logs });
}

/**
 * `attest-broker serve --config FILE` as a child process (log level warn, so a flood does not
 * fill a pipe); resolves once `/healthz` answers on `url` (the config's listen address).
 */
export async function serveChild(
  file: string,
  url: string,
  ca?: string,
  opts: { logLevel?: string; onLine?: (line: string) => void } = {},
): Promise<{ proc: ChildProcess; url: string; stop(): Promise<void>; rssMb(): number }> {
  // Started as the image starts it (same heap limit), so its memory is the deployed broker's.
  const proc = spawnCli(['serve', '--config', file], { ATTEST_BROKER_LOG_LEVEL: opts.logLevel ?? 'warn' }, SERVE_NODE_ARGS);
  let out = '';
  let partial = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-4000);
    if (!opts.onLine) return;
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) opts.onLine(l);
  });
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`serve exited ${proc.exitCode}: ${out}`);
    const ok = await rawRequest(url + '/healthz', ca ? { tls: { ca } } : {}).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() - t0 > 30_000) throw new Error(`serve did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc,
    url,
    rssMb: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]) / 1024,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP(S) request with full control (local address, client certificate, CA). */
export function rawRequest(url: string, o: { method?: string; headers?: Record<string, string>; body?: string; tls?: RequestOptions; localAddress?: string } = {}): Promise<RawResponse> {
  const u = new URL(url);
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.body === undefined ? {} : { 'content-type': 'application/json' }), ...o.headers },
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    ...o.tls,
  });
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.end(o.body);
  });
}

/** A client certificate (CN) issued by a fresh CA or by `ca`, made with the openssl CLI. */
export function clientCert(dir: string, name: string, cn: string, ca?: { crt: string; key: string }): { crt: string; key: string; caCrt: string; caKey: string } {
  const sh = (cmd: string): void => void execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let caCrt = ca?.crt;
  let caKey = ca?.key;
  if (!caCrt || !caKey) {
    caCrt = join(dir, `${name}-ca.crt`);
    caKey = join(dir, `${name}-ca.key`);
    sh(
      `openssl ecparam -name prime256v1 -genkey -noout -out ${caKey} && openssl req -x509 -new -key ${caKey} -sha256 -days 2 -subj "/CN=${name} client CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out ${caCrt}`,
    );
  }
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  sh(
    [
      `openssl ecparam -name prime256v1 -genkey -noout -out ${key}`,
      `openssl req -new -key ${key} -subj "/CN=${cn}/O=system:masters" -out ${name}.csr`,
      `printf "basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n" > ${name}.ext`,
      `openssl x509 -req -in ${name}.csr -CA ${caCrt} -CAkey ${caKey} -CAcreateserial -days 1 -sha256 -extfile ${name}.ext -out ${crt}`,
    ].join(' && '),
  );
  return { crt, key, caCrt, caKey };
}
