/**
 * @module broker/release/kube-exec.node
 *
 * Kubeconfig `users[].user.exec` credential plugins (client-go credential plugins), for a broker
 * outside the cluster (EKS `aws eks get-token`, GKE `gke-gcloud-auth-plugin`, AKS `kubelogin`).
 *
 * Followed:
 * - "client-go credential plugins", https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins
 * - Client Authentication v1 / v1beta1 (ExecConfig, ExecCredential, Cluster),
 *   https://kubernetes.io/docs/reference/config-api/client-authentication.v1/ and …v1beta1/
 *
 * What that means here:
 * - `command` runs with `args`, without a shell; a relative command containing a path separator
 *   is relative to the kubeconfig's directory, a bare name is looked up on PATH. `env` is merged
 *   over the broker's environment, then `KUBERNETES_EXEC_INFO` is set to an ExecCredential with
 *   the configured apiVersion, `spec.interactive: false` and, with `provideClusterInfo`,
 *   `spec.cluster` (server, tls-server-name, certificate-authority-data as base64, proxy-url,
 *   disable-compression, and the cluster's `client.authentication.k8s.io/exec` extension as
 *   `config`). stdin is not given to the plugin (the broker is never interactive), so
 *   `interactiveMode: Always` is refused when the kubeconfig is loaded, and v1 needs
 *   `interactiveMode` set (as client-go does).
 * - stdout must be one ExecCredential of the same apiVersion with `status.token` and/or
 *   `status.clientCertificateData` + `status.clientKeyData` (both or neither), and an optional
 *   RFC 3339 `status.expirationTimestamp`. Without an expiry the credential is used until the API
 *   server answers 401; with one it is renewed shortly before it (refreshBeforeMs, at most half
 *   its lifetime). A 401 renews it once (KubeClient then retries the request once).
 * - Concurrent callers share one plugin run (single flight). A failure is answered again for
 *   failureHoldMs (default 5 s) without running the plugin, so a broken plugin under load is not
 *   started once per request.
 * - Bounded: stdout at most maxOutputBytes (KUBE_EXEC_OUTPUT_TOO_LARGE), a timeout
 *   (KUBE_EXEC_TIMEOUT; the plugin is killed). stderr is never logged or reported verbatim: only
 *   a short summary with anything token-like redacted. The credential never reaches a log.
 */
import { spawn } from 'node:child_process';
import { basename, isAbsolute, resolve } from 'node:path';
import type { Logger } from '../contracts.js';
import { AttestError, configError, unavailable } from '../../providers/common/errors.js';

export const KubeExecCodes = {
  /** The plugin could not be started (not installed, not executable): install it or fix `command`. */
  KUBE_EXEC_NOT_FOUND: 'KUBE_EXEC_NOT_FOUND',
  /** The plugin exited non-zero or was killed by a signal. */
  KUBE_EXEC_FAILED: 'KUBE_EXEC_FAILED',
  /** The plugin did not finish within the timeout (it was killed). */
  KUBE_EXEC_TIMEOUT: 'KUBE_EXEC_TIMEOUT',
  /** stdout was not a valid ExecCredential of the configured apiVersion. */
  KUBE_EXEC_OUTPUT_INVALID: 'KUBE_EXEC_OUTPUT_INVALID',
  /** stdout exceeded the cap. */
  KUBE_EXEC_OUTPUT_TOO_LARGE: 'KUBE_EXEC_OUTPUT_TOO_LARGE',
} as const;

export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;
export type ExecApiVersion = (typeof EXEC_API_VERSIONS)[number];

export interface ExecConfig {
  apiVersion: ExecApiVersion;
  /** As written in the kubeconfig (for messages). */
  commandName: string;
  /** Resolved: absolute, or a bare name looked up on PATH. */
  command: string;
  args: string[];
  env: Array<{ name: string; value: string }>;
  provideClusterInfo: boolean;
  interactiveMode: 'Never' | 'IfAvailable';
  installHint?: string;
}

/** client.authentication.k8s.io Cluster, as passed in KUBERNETES_EXEC_INFO's spec.cluster. */
export interface ExecCluster {
  server: string;
  'tls-server-name'?: string;
  'certificate-authority-data'?: string;
  'proxy-url'?: string;
  'disable-compression'?: boolean;
  config?: unknown;
}

export interface ExecCredential {
  token?: string;
  /** PEM client certificate and key (both or neither). */
  cert?: string;
  key?: string;
  /** ms since the epoch; undefined: valid until a 401. */
  expiresAt?: number;
}

const invalid = (where: string, msg: string): AttestError => configError('KUBE_CONFIG_INVALID', `${where}: ${msg}`);

/** Validates `users[].user.exec` at load time (KUBE_CONFIG_INVALID with what to change). */
export function parseExecConfig(raw: unknown, where: string, kubeconfigDir: string): ExecConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(where, 'exec must be a mapping');
  const o = raw as Record<string, unknown>;
  const apiVersion = o.apiVersion;
  if (typeof apiVersion !== 'string' || !(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw invalid(where, `exec.apiVersion must be one of ${EXEC_API_VERSIONS.join(', ')} (got ${JSON.stringify(apiVersion ?? null)}; v1alpha1 was removed from Kubernetes)`);
  }
  if (typeof o.command !== 'string' || o.command.length === 0) throw invalid(where, 'exec.command is required');
  const args = o.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw invalid(where, 'exec.args must be a list of strings');
  const envRaw = o.env ?? [];
  if (!Array.isArray(envRaw)) throw invalid(where, 'exec.env must be a list of {name, value}');
  const env = envRaw.map((e, i) => {
    const ee = e as { name?: unknown; value?: unknown } | null;
    if (typeof ee?.name !== 'string' || ee.name === '' || ee.name.includes('=') || typeof ee.value !== 'string') throw invalid(where, `exec.env[${i}] must have a string name and value`);
    return { name: ee.name, value: ee.value };
  });
  let mode = o.interactiveMode;
  if (mode === undefined || mode === '') {
    if (apiVersion === 'client.authentication.k8s.io/v1') throw invalid(where, 'exec.interactiveMode must be set for client.authentication.k8s.io/v1 (Never: the broker is not interactive)');
    mode = 'IfAvailable'; // the v1beta1 default
  }
  if (mode === 'Always') {
    throw invalid(where, 'exec.interactiveMode Always needs a terminal, and the broker runs without one: configure the plugin to log in non-interactively (a workload identity, service principal or service account) and set interactiveMode Never');
  }
  if (mode !== 'Never' && mode !== 'IfAvailable') throw invalid(where, `exec.interactiveMode must be Never, IfAvailable or Always (got ${JSON.stringify(mode)})`);
  if (o.provideClusterInfo !== undefined && typeof o.provideClusterInfo !== 'boolean') throw invalid(where, 'exec.provideClusterInfo must be a boolean');
  const command = o.command.includes('/') && !isAbsolute(o.command) ? resolve(kubeconfigDir, o.command) : o.command;
  return {
    apiVersion: apiVersion as ExecApiVersion,
    commandName: o.command,
    command,
    args: args as string[],
    env,
    provideClusterInfo: o.provideClusterInfo === true,
    interactiveMode: mode,
    ...(typeof o.installHint === 'string' && o.installHint ? { installHint: o.installHint } : {}),
  };
}

export interface ExecSourceOptions {
  /** Clock for expiry (injected by tests). */
  now?: () => Date;
  /** Kill the plugin after this long (default 30 s). */
  timeoutMs?: number;
  /** Cap on stdout (default 256 KiB: a token or a certificate and key fit easily). */
  maxOutputBytes?: number;
  /** Renew this long before expirationTimestamp (default 60 s, at most half the lifetime). */
  refreshBeforeMs?: number;
  /** After a failed run, answer the same error for this long without running again (default 5 s). */
  failureHoldMs?: number;
  /** The environment the plugin's env is merged over (default process.env). */
  baseEnv?: NodeJS.ProcessEnv;
  logger?: Logger;
}

const STDERR_KEEP = 8 * 1024;

/**
 * A short, single-line summary of a plugin's stderr with secrets taken out: PEM blocks, JWTs,
 * `Bearer …`, `token=…`/`"secret": "…"`-style values, long runs of base64-ish characters with
 * digits and letters (keys, session tokens), and any of `known` (the current credential).
 */
export function redactedSummary(text: string, known: readonly string[] = [], max = 300): string {
  let s = text;
  for (const k of known) if (k.length >= 8) s = s.split(k).join('[redacted]');
  s = s
    .replace(/-----BEGIN [^-]*-----[\s\S]*?(?:-----END [^-]*-----|$)/g, '[redacted PEM]')
    .replace(/eyJ[\w-]*\.[\w-]*(?:\.[\w-]*)?/g, '[redacted JWT]')
    .replace(/\b(bearer|basic)\s+\S+/gi, '$1 [redacted]')
    .replace(/((?:token|secret|password|passwd|credential|key|signature)s?[\w-]*["']?\s*[:=]\s*["']?)[^\s"',;]+/gi, '$1[redacted]')
    .replace(/[A-Za-z0-9+/=_-]{24,}/g, (run) => (/[0-9]/.test(run) && /[A-Za-z]/.test(run) ? '[redacted]' : run))
    .replace(/\p{Cc}+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (s.length > max) s = s.slice(0, max) + '…';
  return s || '(nothing on stderr)';
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const STATUS_FIELDS = new Set(['token', 'clientCertificateData', 'clientKeyData', 'expirationTimestamp']);

/** Parses a plugin's stdout strictly (KUBE_EXEC_OUTPUT_INVALID; the output itself is never quoted). */
export function parseExecCredential(stdout: string, apiVersion: ExecApiVersion, plugin: string): ExecCredential {
  const bad = (why: string): AttestError =>
    configError('KUBE_EXEC_OUTPUT_INVALID', `the exec plugin \`${plugin}\` printed ${why}; it must print one ${apiVersion} ExecCredential as JSON on stdout (run it by hand with KUBERNETES_EXEC_INFO set to check)`);
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw bad(stdout.trim() === '' ? 'nothing' : 'something that is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('JSON that is not an object');
  const o = doc as { apiVersion?: unknown; kind?: unknown; status?: unknown };
  if (o.kind !== 'ExecCredential') throw bad(`kind ${JSON.stringify(o.kind ?? null)}, not ExecCredential`);
  if (o.apiVersion !== apiVersion) throw bad(`apiVersion ${JSON.stringify(o.apiVersion ?? null)} while the kubeconfig asks for ${apiVersion}`);
  if (typeof o.status !== 'object' || o.status === null || Array.isArray(o.status)) throw bad('an ExecCredential without status');
  const st = o.status as Record<string, unknown>;
  for (const k of Object.keys(st)) if (!STATUS_FIELDS.has(k)) throw bad(`an unknown status field ${JSON.stringify(k)}`);
  for (const k of STATUS_FIELDS) if (st[k] !== undefined && typeof st[k] !== 'string') throw bad(`a status.${k} that is not a string`);
  const token = (st.token as string | undefined) || undefined;
  const cert = (st.clientCertificateData as string | undefined) || undefined;
  const key = (st.clientKeyData as string | undefined) || undefined;
  if (!!cert !== !!key) throw bad('only one of status.clientCertificateData and status.clientKeyData (both or neither)');
  if (!token && !cert) throw bad('neither status.token nor a client certificate');
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) throw bad('a status.token with characters a header cannot carry');
  if (cert && (!cert.includes('-----BEGIN') || !key!.includes('-----BEGIN'))) throw bad('client certificate data or key data that is not PEM');
  const out: ExecCredential = {};
  if (token) out.token = token;
  if (cert) {
    out.cert = cert;
    out.key = key;
  }
  if (st.expirationTimestamp !== undefined && st.expirationTimestamp !== '') {
    const ts = st.expirationTimestamp as string;
    const ms = Date.parse(ts);
    if (!RFC3339.test(ts) || Number.isNaN(ms)) throw bad('a status.expirationTimestamp that is not an RFC 3339 time');
    out.expiresAt = ms;
  }
  return out;
}

/** Runs the plugin when needed and caches its credential (see module doc). */
export class ExecCredentialSource {
  readonly #cfg: ExecConfig;
  readonly #cluster: ExecCluster;
  readonly #o: ExecSourceOptions;
  readonly #now: () => Date;
  #cred: (ExecCredential & { obtainedAt: number }) | undefined;
  #inflight: Promise<ExecCredential> | undefined;
  #failure: { error: unknown; until: number } | undefined;

  constructor(cfg: ExecConfig, cluster: ExecCluster, o: ExecSourceOptions = {}) {
    this.#cfg = cfg;
    this.#cluster = cluster;
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
  }

  get plugin(): string {
    return basename(this.#cfg.commandName);
  }

  /** The current credential, running the plugin when there is none or it is about to expire. */
  async get(): Promise<ExecCredential> {
    const c = this.#cred;
    if (c && this.#fresh(c)) return c;
    return this.#refresh();
  }

  /**
   * After a 401: renews unless another caller already did (the credential that was sent,
   * identified by its token, is no longer the current one) or a run is under way (joined).
   */
  async renewAfterUnauthorized(sentToken: string | undefined): Promise<void> {
    if (this.#inflight) {
      await this.#inflight;
      return;
    }
    const c = this.#cred;
    if (c && sentToken !== undefined && c.token !== sentToken) return;
    await this.#refresh();
  }

  #fresh(c: ExecCredential & { obtainedAt: number }): boolean {
    if (c.expiresAt === undefined) return true;
    const skew = Math.min(this.#o.refreshBeforeMs ?? 60_000, Math.max(0, (c.expiresAt - c.obtainedAt) / 2));
    return this.#now().getTime() < c.expiresAt - skew;
  }

  #refresh(): Promise<ExecCredential> {
    if (this.#inflight) return this.#inflight;
    if (this.#failure && this.#now().getTime() < this.#failure.until) return Promise.reject(this.#failure.error);
    const log = this.#o.logger;
    const p = this.#run().then(
      (c) => {
        this.#cred = { ...c, obtainedAt: this.#now().getTime() };
        this.#inflight = undefined;
        this.#failure = undefined;
        log?.info(
          { plugin: this.plugin, credential: c.token ? (c.cert ? 'token+clientCertificate' : 'token') : 'clientCertificate', expiresAt: c.expiresAt === undefined ? null : new Date(c.expiresAt).toISOString() },
          'kubernetes exec credential obtained',
        );
        return c;
      },
      (e: unknown) => {
        this.#inflight = undefined;
        this.#failure = { error: e, until: this.#now().getTime() + (this.#o.failureHoldMs ?? 5_000) };
        log?.warn({ plugin: this.plugin, code: e instanceof AttestError ? e.code : 'INTERNAL', error: e instanceof Error ? e.message : String(e) }, 'kubernetes exec credential failed');
        throw e;
      },
    );
    this.#inflight = p;
    return p;
  }

  /** The KUBERNETES_EXEC_INFO value (exported for tests through execInfo()). */
  execInfo(): string {
    return JSON.stringify({
      apiVersion: this.#cfg.apiVersion,
      kind: 'ExecCredential',
      spec: { interactive: false, ...(this.#cfg.provideClusterInfo ? { cluster: this.#cluster } : {}) },
    });
  }

  #run(): Promise<ExecCredential> {
    const cfg = this.#cfg;
    const name = this.plugin;
    const timeoutMs = this.#o.timeoutMs ?? 30_000;
    const maxOut = this.#o.maxOutputBytes ?? 256 * 1024;
    const env: NodeJS.ProcessEnv = { ...(this.#o.baseEnv ?? process.env) };
    for (const e of cfg.env) env[e.name] = e.value;
    env.KUBERNETES_EXEC_INFO = this.execInfo();
    const known = [this.#cred?.token, this.#cred?.key].filter((x): x is string => !!x);
    return new Promise<ExecCredential>((resolveP, rejectP) => {
      let settled = false;
      const out: Buffer[] = [];
      let outLen = 0;
      let err = '';
      const child = spawn(cfg.command, cfg.args, { env, stdio: ['ignore', 'pipe', 'pipe'], shell: false, windowsHide: true });
      const finish = (e: AttestError | null, c?: ExecCredential): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          rejectP(e);
        } else resolveP(c!);
      };
      const timer = setTimeout(() => {
        finish(unavailable('KUBE_EXEC_TIMEOUT', `the exec plugin \`${name}\` did not finish within ${timeoutMs} ms and was killed (is it waiting for input or a network it cannot reach?)`, { retryAfter: 5 }));
      }, timeoutMs);
      child.stdout.on('data', (b: Buffer) => {
        outLen += b.length;
        if (outLen > maxOut) {
          finish(configError('KUBE_EXEC_OUTPUT_TOO_LARGE', `the exec plugin \`${name}\` printed more than ${maxOut} bytes on stdout; an ExecCredential is far smaller (is \`${cfg.commandName}\` the credential plugin?)`));
          return;
        }
        out.push(b);
      });
      child.stderr.on('data', (b: Buffer) => {
        if (err.length < STDERR_KEEP) err += b.toString('utf8').slice(0, STDERR_KEEP - err.length);
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        const hint = cfg.installHint ? ` ${redactedSummary(cfg.installHint, [], 500)}` : '';
        if (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'ENOTDIR') {
          finish(configError('KUBE_EXEC_NOT_FOUND', `the exec plugin \`${cfg.commandName}\` could not be started (${e.code}): install it where the broker's PATH finds it, or give its absolute path as exec.command.${hint}`));
        } else {
          finish(unavailable('KUBE_EXEC_FAILED', `the exec plugin \`${cfg.commandName}\` could not be started (${e.code ?? e.message})`, { retryAfter: 5 }));
        }
      });
      child.on('close', (code, signal) => {
        if (settled) return;
        if (code !== 0) {
          const how = signal ? `was killed by ${signal}` : `exited ${code}`;
          finish(unavailable('KUBE_EXEC_FAILED', `the exec plugin \`${name}\` ${how}: ${redactedSummary(err, known)} (run \`${cfg.commandName}\` by hand as the broker's user to see its full output)`, { retryAfter: 5 }));
          return;
        }
        try {
          finish(null, parseExecCredential(Buffer.concat(out).toString('utf8'), cfg.apiVersion, name));
        } catch (e) {
          finish(e as AttestError);
        }
      });
    });
  }
}
