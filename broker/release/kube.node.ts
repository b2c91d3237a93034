/**
 * @module broker/release/kube.node
 *
 * Node side of the Kubernetes client: a `fetch` that trusts the cluster's private CA (and can
 * present a client certificate), and the two ways a broker finds its cluster:
 * - in-cluster: `KUBERNETES_SERVICE_HOST`/`_PORT`, the projected service-account token
 *   (re-read on every call: bound tokens rotate hourly) and its `ca.crt`
 *   (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/);
 * - a kubeconfig file (current context; `certificate-authority(-data)`, `token`/`tokenFile`,
 *   `client-certificate(-data)`/`client-key(-data)`, or an `exec` credential plugin —
 *   kube-exec.node.ts — for a broker outside the cluster; `auth-provider` is refused: it was
 *   removed from client-go and kubectl, exec plugins replace it).
 *
 * Global `fetch` on Node cannot be told to trust one extra CA without a dispatcher from the
 * `undici` package (not a dependency here), so `caFetch` speaks HTTP/1.1 through `node:https`
 * with `ca` set — the system roots are *not* added: the cluster CA is the only anchor.
 */
import { tracedFetch, type Tracer } from '../observability/tracing.js';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { configError } from '../../providers/common/errors.js';
import type { Logger } from '../contracts.js';
import { KubeClient } from './kube.js';
import { ExecCredentialSource, parseExecConfig, type ExecCluster, type ExecSourceOptions } from './kube-exec.node.js';

export interface TlsMaterial {
  ca: string;
  cert?: string;
  key?: string;
  /** A client certificate that can change (an exec plugin's), asked for on each request; wins over cert/key. */
  clientCert?: () => Promise<{ cert: string; key: string } | undefined>;
}

/** A fetch over node:https that trusts only `tls.ca` (and presents `tls.cert`/`tls.key`). */
export function caFetch(tls: TlsMaterial, maxBody = 8 * 1024 * 1024): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input.toString() : input.url);
    const method = init?.method ?? 'GET';
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    const body = typeof init?.body === 'string' ? Buffer.from(init.body) : init?.body == null ? undefined : Buffer.from(init.body as Uint8Array);
    if (body) headers['content-length'] = String(body.length);
    const cc = tls.clientCert ? await tls.clientCert() : undefined;
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
      method,
      headers,
      ca: tls.ca,
      cert: cc?.cert ?? tls.cert,
      key: cc?.key ?? tls.key,
      rejectUnauthorized: true,
      signal: init?.signal ?? undefined,
    });
    // Watches stream without a total cap (the reader bounds each event); other answers are
    // capped at maxBody.
    const stream = url.searchParams.get('watch') === 'true';
    return await new Promise<Response>((resolveP, rejectP) => {
      req.on('error', rejectP);
      req.on('response', (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        const status = res.statusCode ?? 500;
        if (status === 204 || status === 304) {
          res.resume();
          resolveP(new Response(null, { status, headers: h }));
          return;
        }
        let n = 0;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            res.on('data', (c: Buffer) => {
              n += c.length;
              if (!stream && n > maxBody) {
                controller.error(new Error('response too large'));
                req.destroy();
                return;
              }
              controller.enqueue(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
            });
            res.on('end', () => {
              try {
                controller.close();
              } catch {
                // already errored
              }
            });
            res.on('error', (e) => {
              try {
                controller.error(e);
              } catch {
                // already closed
              }
            });
          },
          cancel() {
            req.destroy();
          },
        });
        resolveP(new Response(body, { status, headers: h }));
      });
      req.end(body);
    });
  }) as typeof fetch;
}

export interface ClusterAccess {
  server: string;
  caPem: string;
  token?: () => string;
  cert?: string;
  key?: string;
  /** An exec credential plugin (token and/or client certificate, renewed as they expire). */
  exec?: ExecCredentialSource;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export function inClusterAccess(env: NodeJS.ProcessEnv = process.env, dir = SA_DIR): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw configError('KUBE_CONFIG_INVALID', 'not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)');
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    server: `https://${h}:${port}`,
    caPem: readFileSync(`${dir}/ca.crt`, 'utf8'),
    token: () => readFileSync(`${dir}/token`, 'utf8').trim(),
  };
}

interface KubeconfigDoc {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user: string } }>;
  clusters?: Array<{
    name: string;
    cluster: {
      server: string;
      'certificate-authority-data'?: string;
      'certificate-authority'?: string;
      'tls-server-name'?: string;
      'proxy-url'?: string;
      'disable-compression'?: boolean;
      extensions?: Array<{ name?: string; extension?: unknown }>;
    };
  }>;
  users?: Array<{
    name: string;
    user: {
      token?: string;
      tokenFile?: string;
      'client-certificate-data'?: string;
      'client-certificate'?: string;
      'client-key-data'?: string;
      'client-key'?: string;
      exec?: unknown;
      'auth-provider'?: { name?: string };
    };
  }>;
}

/** Options for an exec credential plugin named by the kubeconfig (clock, timeout, caps, logger). */
export type KubeconfigOptions = Omit<ExecSourceOptions, 'logger'> & { logger?: Logger };

export function kubeconfigAccess(file: string, contextName?: string, o: KubeconfigOptions = {}): ClusterAccess {
  const doc = parse(readFileSync(file, 'utf8')) as KubeconfigDoc;
  const base = dirname(file);
  const b64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
  const rel = (p: string): string => readFileSync(resolve(base, p), 'utf8');
  const ctxName = contextName ?? doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw configError('KUBE_CONFIG_INVALID', `kubeconfig ${file}: context ${ctxName ?? '(none)'} not found`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx.user)?.user;
  if (!cluster || !user) throw configError('KUBE_CONFIG_INVALID', `kubeconfig ${file}: cluster or user of context ${ctxName} missing`);
  const caPem = cluster['certificate-authority-data'] ? b64(cluster['certificate-authority-data']) : cluster['certificate-authority'] ? rel(cluster['certificate-authority']) : undefined;
  if (!caPem) throw configError('KUBE_CONFIG_INVALID', `kubeconfig ${file}: the cluster CA is required (no insecure-skip-tls-verify)`);
  const access: ClusterAccess = { server: cluster.server, caPem };
  const where = `kubeconfig ${file}: user ${ctx.user}`;
  if (user['auth-provider']) {
    throw configError(
      'KUBE_CONFIG_INVALID',
      `${where}: auth-provider ${user['auth-provider'].name ?? ''} is not supported (it was removed from kubectl and client-go): use the provider's exec credential plugin instead (EKS: aws eks get-token, GKE: gke-gcloud-auth-plugin, AKS: kubelogin), see docs/deploy.md`,
    );
  }
  if (user.exec !== undefined) {
    if (user.token || user.tokenFile || user['client-certificate-data'] || user['client-certificate'] || user['client-key-data'] || user['client-key']) {
      throw configError('KUBE_CONFIG_INVALID', `${where}: exec together with a token or client certificate; keep only one way to authenticate`);
    }
    const cfg = parseExecConfig(user.exec, where, base);
    const ext = cluster.extensions?.find((e) => e.name === 'client.authentication.k8s.io/exec')?.extension;
    const info: ExecCluster = {
      server: cluster.server,
      ...(cluster['tls-server-name'] ? { 'tls-server-name': cluster['tls-server-name'] } : {}),
      'certificate-authority-data': Buffer.from(caPem).toString('base64'),
      ...(cluster['proxy-url'] ? { 'proxy-url': cluster['proxy-url'] } : {}),
      ...(cluster['disable-compression'] ? { 'disable-compression': true } : {}),
      ...(ext !== undefined ? { config: ext } : {}),
    };
    access.exec = new ExecCredentialSource(cfg, info, o);
    return access;
  }
  if (user.token) {
    const t = user.token;
    access.token = () => t;
  } else if (user.tokenFile) {
    const p = resolve(base, user.tokenFile);
    access.token = () => readFileSync(p, 'utf8').trim();
  }
  const cert = user['client-certificate-data'] ? b64(user['client-certificate-data']) : user['client-certificate'] ? rel(user['client-certificate']) : undefined;
  const key = user['client-key-data'] ? b64(user['client-key-data']) : user['client-key'] ? rel(user['client-key']) : undefined;
  if (cert && key) {
    access.cert = cert;
    access.key = key;
  }
  if (!access.token && !access.cert) throw configError('KUBE_CONFIG_INVALID', `kubeconfig ${file}: user has neither a token nor a client certificate`);
  return access;
}

export function kubeClientFor(access: ClusterAccess, o: { attempts?: number; sleep?: (ms: number) => Promise<void>; timeoutMs?: number; tracer?: Tracer } = {}): KubeClient {
  const { tracer, ...rest } = o;
  const exec = access.exec;
  if (exec) {
    return new KubeClient({
      server: access.server,
      token: async () => (await exec.get()).token,
      onUnauthorized: (sent) => exec.renewAfterUnauthorized(sent),
      // With tracing: each request carries traceparent naming the active CLIENT span.
      fetch: tracedFetch(
        caFetch({
          ca: access.caPem,
          clientCert: async () => {
            const c = await exec.get();
            return c.cert && c.key ? { cert: c.cert, key: c.key } : undefined;
          },
        }),
        tracer,
      ),
      ...rest,
    });
  }
  return new KubeClient({
    server: access.server,
    token: access.token,
    // With tracing: each request carries traceparent naming the active CLIENT span.
    fetch: tracedFetch(caFetch({ ca: access.caPem, cert: access.cert, key: access.key }), tracer),
    ...rest,
  });
}
