/**
 * @module deploy/node/client/join.node
 *
 * `attest-broker join`: the node side of protocol v1, start to finish.
 *
 *   POST /v1/challenge → nonce; ephemeral P-256 key K; binding = SHA-256(nonce ‖ thumb(K));
 *   evidence with the binding; POST /v1/attest (+ credential activation when asked: activate,
 *   new challenge, new quote by the same AK, POST /v1/attest again with the secret);
 *   open the JWE release with K; write the disk key (if asked), the bootstrap-path files (if
 *   asked: node name, kubelet drop-in, kubeadm JoinConfiguration — bootstrap.ts), then the
 *   kubeconfig — last, because its existence is what tells systemd the join is done.
 *
 * Retries — only what cannot hurt, all under one deadline, exponential backoff with full jitter:
 * - the challenge request: any network error, 429 (Retry-After honoured) and 5xx;
 * - the attest request, resent unchanged: a network error before the request was written,
 *   and 429 (rate limiting happens before the challenge is consumed);
 * - the whole flow from a new challenge (new nonce, new key, new evidence): a 5xx from
 *   attest, or the challenge being unknown/expired/used (404/410 `CHALLENGE_*`) — the old
 *   challenge may be spent, and nothing from the old attempt is reused;
 * - the whole flow again after a 409 that carries Retry-After (a token was already issued to
 *   this instance in the broker's window — typically an answer lost earlier), once it passes;
 * - never: a network failure after the attest request was written (the broker may have issued
 *   a token: JOIN_OUTCOME_UNKNOWN, exit non-zero, and systemd may run the unit again later),
 *   nor any other 4xx (evidence or policy refused: JOIN_REJECTED with the broker's code).
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fromBase64Url, toBase64Url } from '../../../providers/common/encoding.js';
import { AttestError } from '../../../providers/common/errors.js';
import { ACTIVATION_REQUIRED, parseActivation } from './activation.js';
import { computeBinding, createEphemeralKey } from './binding.js';
import { KUBELET_DROPIN_SUFFIX, YAML_SAFE_PATH, kubeadmJoinYaml, kubeletConfigYaml, nodeNameFile } from './bootstrap.js';
import { JoinCodes, joinError } from './codes.js';
import { openKmsRecipient } from './cms.js';
import { DEFAULT_EVENT_LOG, DEFAULT_IMDS, detectPlatform, gather, gatherTpm, type GatherOptions, type Platform } from './evidence.node.js';
import { writeFileAtomic } from './files.node.js';
import { checkGpuEvidenceCommand, gpuDevices, runGpuEvidenceCommand } from './gpu.node.js';
import { createPinnedTransport, parsePin, TransportError, type BrokerTransport, type HttpResponse } from './http.node.js';
import { openRelease, openTpmLayer, type DiskKeyRelease, type Release } from './release.js';
import { backoffDelay, Deadline, DEFAULT_BACKOFF, parseRetryAfter, systemClock, type BackoffOptions, type Clock } from './retry.js';
import { activateCredential, createToolRunner, openTpmSession, withSignal, type ToolRunner } from './tpm.node.js';

export interface JoinOptions {
  broker: string;
  caPin: string;
  cluster: string;
  platform: Platform | 'auto';
  out: string;
  diskKeyOut?: string;
  /**
   * Ask for the disk key only (`want: ["disk-key"]`), write it to `diskKeyOut`, and no bootstrap
   * token or kubeconfig: what a node with encrypted state runs at every boot, after its first join.
   */
  diskKeyOnly?: boolean;
  /**
   * Where the wrapped disk key is kept between boots (not secret: only the broker's KMS can
   * unwrap it, after a new attestation). Default `<diskKeyOut>.wrapped`. Put the key itself
   * on tmpfs (/run) and this on persistent storage.
   */
  diskKeyWrappedPath?: string;
  /** KubeletConfiguration drop-in for the kubelet's `--config-dir` (name must end in `.conf`). */
  kubeletConfigOut?: string;
  /** kubeadm v1beta4 JoinConfiguration (file discovery with `out`; holds the token). */
  kubeadmConfigOut?: string;
  /** The released node name, bare, with a newline (for `--hostname-override`). */
  nodeNameOut?: string;
  deadlineMs: number;
  /**
   * GPU evidence gatherer (`--gpu-evidence-cmd`, gpu.node.ts): run with the binding as 64 hex
   * digits for every attest request; its nvtrust evidence array is attached as `devices`.
   */
  gpuEvidenceCmd?: string;
  /** Send an ephemeral key and require a sealed release (default true). */
  sealed?: boolean;
  // Injection points (tests, bundles); defaults are the real thing.
  clock?: Clock;
  transport?: BrokerTransport;
  tools?: ToolRunner;
  fetch?: typeof fetch;
  eventLogPath?: string;
  imdsBase?: string;
  nitroTpmAttest?: string;
  /** GCP Confidential VM: configfs-tsm root, guest-device directory, `none` to send no TEE report. */
  tsmReportDir?: string;
  teeDevDir?: string;
  cpuinfoPath?: string;
  gcpTee?: 'auto' | 'none';
  /** TCTI for the NitroTPM vendor command when nitro-tpm-attest is absent (default: the tools'
   * TPM2TOOLS_TCTI if set, else device:/dev/tpm0 — the kernel resource manager does not pass it). */
  nitroTcti?: string;
  dmiDir?: string;
  backoff?: BackoffOptions;
  log?: (msg: string) => void;
}

export interface JoinResult {
  nodeName: string;
  expiresAt: string;
  /** Absent with `diskKeyOnly` (no kubeconfig is written then). */
  kubeconfigPath?: string;
  diskKeyPath?: string;
  kubeletConfigPath?: string;
  kubeadmConfigPath?: string;
  nodeNamePath?: string;
  platform: Platform;
  attempts: number;
}

const PER_REQUEST_TIMEOUT_MS = 30_000;

interface Problem {
  status: number;
  code?: string;
  title?: string;
  detail?: string;
  raw: Record<string, unknown>;
}

function parseJson(res: HttpResponse): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(res.body));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads an RFC 9457 problem. Everything in it came from the network and ends up in logs and on
 * a terminal: the code must look like a code, text is cut to 300 printable ASCII characters.
 */
function problemOf(res: HttpResponse): Problem {
  const j = parseJson(res) ?? {};
  const str = (k: string): string | undefined =>
    typeof j[k] === 'string' ? (j[k] as string).slice(0, 300).replace(/[^\x20-\x7e]/g, '?') : undefined;
  const p: Problem = { status: res.status, raw: j };
  const rawCode = str('code');
  const code = rawCode !== undefined && /^[A-Z][A-Z0-9_]{0,63}$/.test(rawCode) ? rawCode : undefined;
  const title = str('title');
  const detail = str('detail');
  if (code !== undefined) p.code = code;
  if (title !== undefined) p.title = title;
  if (detail !== undefined) p.detail = detail;
  return p;
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Signals "start over from a new challenge". */
class RestartFlow extends Error {
  constructor(
    readonly why: string,
    readonly retryAfterMs = 0,
    readonly problem?: Problem,
  ) {
    super(why);
  }
}

export async function join(o: JoinOptions): Promise<JoinResult> {
  const clock = o.clock ?? systemClock;
  const log = o.log ?? ((m: string) => process.stderr.write(`attest-join: ${m}\n`));
  const backoff = o.backoff ?? DEFAULT_BACKOFF;
  if (!o.cluster || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(o.cluster)) {
    throw joinError(JoinCodes.USAGE, '--cluster must be 1-128 characters of [A-Za-z0-9._-]');
  }
  let brokerUrl: URL;
  try {
    brokerUrl = new URL(o.broker);
  } catch (cause) {
    throw joinError(JoinCodes.USAGE, `--broker is not a URL: ${o.broker}`, { cause });
  }
  const pin = parsePin(o.caPin);
  checkBootstrapPaths(o);
  if (o.diskKeyOnly && !o.diskKeyOut) throw joinError(JoinCodes.USAGE, '--disk-key-only needs --disk-key-out (where to write the key: tmpfs, e.g. /run/attest-join/disk.key)');
  if (o.diskKeyOnly && (o.kubeletConfigOut || o.kubeadmConfigOut || o.nodeNameOut)) throw joinError(JoinCodes.USAGE, '--disk-key-only writes the disk key alone: drop the bootstrap-path outputs');
  // Before anything is sent: a node configured for GPUs never joins without their evidence.
  if (o.gpuEvidenceCmd !== undefined) await checkGpuEvidenceCommand(o.gpuEvidenceCmd);
  const deadline = new Deadline(clock, clock.now() + o.deadlineMs);
  const platform: Platform = o.platform === 'auto' ? await detectPlatform(o.dmiDir) : o.platform;
  const provider = platform === 'generic' ? 'tpm' : platform;
  const transport = o.transport ?? createPinnedTransport({ brokerUrl, pin });
  // TPM tools are killed when the deadline passes (real time: a hung TPM must not outlive it).
  const abort = new AbortController();
  const abortTimer = setTimeout(() => abort.abort(), o.deadlineMs);
  abortTimer.unref();
  const tools = withSignal(o.tools ?? createToolRunner(), abort.signal);
  const sealed = o.sealed ?? true;
  let attempt = 0;
  let lastFailure: unknown;

  const timeout = (): number => Math.max(1, Math.min(PER_REQUEST_TIMEOUT_MS, deadline.remaining()));
  const wait = async (retryAfterMs: number, what: string): Promise<void> => {
    const ms = backoffDelay(attempt++, backoff, clock.random(), retryAfterMs);
    log(`${what}; retrying in ${ms} ms`);
    await deadline.sleep(ms, what, lastFailure);
  };

  /** POST with the safe-retry rules; returns any non-retryable response. */
  const post = async (path: string, body: unknown, phase: 'challenge' | 'attest'): Promise<HttpResponse> => {
    for (;;) {
      deadline.check(`waiting for ${path}`, lastFailure);
      let res: HttpResponse;
      try {
        res = await transport.postJson(path, body, { timeoutMs: timeout() });
      } catch (e) {
        if (!(e instanceof TransportError)) throw e;
        lastFailure = e;
        if (phase === 'attest' && e.sent) {
          throw joinError(JoinCodes.OUTCOME_UNKNOWN, `${path}: the request was sent but no answer came (${e.message}); not retrying a possibly-consumed challenge`, { cause: e });
        }
        if (deadline.remaining() <= 0) throw joinError(JoinCodes.BROKER_UNREACHABLE, `broker unreachable: ${e.message}`, { cause: e });
        try {
          await wait(0, `${path}: ${e.message}`);
        } catch (d) {
          throw joinError(JoinCodes.BROKER_UNREACHABLE, `broker unreachable until the deadline: ${e.message}`, { cause: d });
        }
        continue;
      }
      if (res.status === 429 || res.status === 503 || (res.status >= 500 && phase === 'challenge')) {
        const p = problemOf(res);
        lastFailure = p;
        const ra = parseRetryAfter(header(res, 'retry-after'), clock.now()) ?? 0;
        if (res.status !== 429 && phase === 'attest') throw new RestartFlow(`${path}: HTTP ${res.status} ${p.code ?? ''}`.trim(), ra, p);
        await failAfterDeadline(() => wait(ra, `${path}: HTTP ${res.status} ${p.code ?? ''}`.trim()), p);
        continue;
      }
      if (res.status >= 500) {
        const p = problemOf(res);
        lastFailure = p;
        throw new RestartFlow(`${path}: HTTP ${res.status} ${p.code ?? ''}`.trim(), 0, p);
      }
      return res;
    }
  };

  const failAfterDeadline = async (f: () => Promise<void>, p: Problem, why?: string): Promise<void> => {
    try {
      await f();
    } catch (e) {
      if (e instanceof AttestError && e.code === JoinCodes.DEADLINE_EXCEEDED) {
        throw joinError(JoinCodes.BROKER_FAILED, `the broker kept failing until the deadline (last: ${why ?? `HTTP ${p.status} ${p.code ?? ''}`})`, {
          cause: e,
          detail: { brokerCode: p.code, status: p.status },
        });
      }
      throw e;
    }
  };

  const refuse = (res: HttpResponse): never => {
    const p = problemOf(res);
    throw joinError(JoinCodes.REJECTED, `the broker refused this node: HTTP ${p.status} ${p.code ?? '(no code)'}${p.detail ? `: ${p.detail}` : p.title ? `: ${p.title}` : ''}`, {
      detail: { brokerCode: p.code, status: p.status },
    });
  };

  let wrappedDiskKey: string | undefined;
  const wrappedPath = o.diskKeyWrappedPath ?? (o.diskKeyOut ? `${o.diskKeyOut}.wrapped` : undefined);
  if (o.diskKeyOut && wrappedPath) {
    const w = await readFile(wrappedPath, 'utf8').catch(() => undefined);
    if (w && /^[A-Za-z0-9_-]+$/.test(w.trim())) wrappedDiskKey = w.trim();
  }

  try {
    for (;;) {
      try {
        const release = await oneAttempt();
        return await writeOutputs(release, platform, attempt + 1);
      } catch (e) {
        if (!(e instanceof RestartFlow)) throw e;
        lastFailure = e;
        await failAfterDeadline(() => wait(e.retryAfterMs, `${e.why}; starting over with a new challenge`), e.problem ?? { status: 0, raw: {} }, e.why);
      }
    }
  } finally {
    clearTimeout(abortTimer);
    transport.close();
  }

  /** POST /v1/challenge (with its retries) → id and nonce, checked. */
  async function challenge(): Promise<{ id: string; nonce: Uint8Array }> {
    const chRes = await post('/v1/challenge', { provider, cluster: o.cluster }, 'challenge');
    if (chRes.status !== 201 && chRes.status !== 200) refuse(chRes);
    const ch = parseJson(chRes);
    if (!ch || typeof ch.challengeId !== 'string' || typeof ch.nonce !== 'string' || ch.challengeId.length > 256) {
      throw joinError(JoinCodes.BAD_RESPONSE, 'the challenge response lacks challengeId/nonce');
    }
    try {
      return { id: ch.challengeId, nonce: fromBase64Url(ch.nonce, 'nonce') };
    } catch (cause) {
      throw joinError(JoinCodes.BAD_RESPONSE, 'the challenge nonce is not base64url', { cause });
    }
  }

  async function oneAttempt(): Promise<Release | DiskKeyRelease> {
    const key = sealed ? await createEphemeralKey() : undefined;
    // AWS with a disk key: a fresh RSA key for the NitroTPM document's public_key, so KMS encrypts
    // the disk key to it (KMS Recipient) and the broker never sees it. Non-extractable; this
    // attempt only.
    const recipient = platform === 'aws' && o.diskKeyOut ? await createRecipientKey() : undefined;
    const want = o.diskKeyOnly ? ['disk-key'] : o.diskKeyOut ? ['bootstrap-token', 'disk-key'] : ['bootstrap-token'];
    const envelope = (challengeId: string, g: { provider: string; format: string; evidence: Record<string, unknown> }, gpus: unknown[] | undefined): Record<string, unknown> => {
      const body: Record<string, unknown> = { challengeId, provider: g.provider, format: g.format, evidence: g.evidence, want };
      if (gpus) body.devices = gpuDevices(gpus);
      if (key) body.ephemeralKey = key.publicJwk;
      if (wrappedDiskKey) body.diskKey = { wrapped: wrappedDiskKey };
      return body;
    };
    // Evidence (and, for generic TPMs, credential activation) in one TPM session, so the AK the
    // broker sealed its credential to is the one that answers.
    const session = await openTpmSession(tools);
    try {
      const gatherOpts = (binding: Uint8Array): GatherOptions => ({
        session,
        binding,
        fetch: o.fetch ?? fetch,
        eventLogPath: o.eventLogPath ?? DEFAULT_EVENT_LOG,
        imdsBase: o.imdsBase ?? DEFAULT_IMDS,
        nitroTpmAttest: o.nitroTpmAttest ?? 'nitro-tpm-attest',
        ...(o.tsmReportDir ? { tsmReportDir: o.tsmReportDir } : {}),
        ...(o.teeDevDir ? { teeDevDir: o.teeDevDir } : {}),
        ...(o.cpuinfoPath ? { cpuinfoPath: o.cpuinfoPath } : {}),
        ...(o.gcpTee ? { gcpTee: o.gcpTee } : {}),
        nitroTcti: o.nitroTcti ?? process.env.TPM2TOOLS_TCTI ?? 'device:/dev/tpm0',
        ...(recipient ? { recipientSpki: recipient.spki } : {}),
        log,
      });
      // The GPUs are asked with the same binding as the platform evidence: one challenge covers both.
      const gpuEvidence = async (binding: Uint8Array): Promise<unknown[] | undefined> =>
        o.gpuEvidenceCmd === undefined ? undefined : runGpuEvidenceCommand({ cmd: o.gpuEvidenceCmd, binding, timeoutMs: deadline.remaining(), signal: abort.signal, log });
      const ch = await challenge();
      const nonces = [toBase64Url(ch.nonce)];
      deadline.check('gathering evidence');
      const binding = await computeBinding(ch.nonce, key);
      const g = await gather(platform, gatherOpts(binding));
      const gpus = await gpuEvidence(binding);
      deadline.check('evidence gathered');
      let res = await post('/v1/attest', envelope(ch.id, g, gpus), 'attest');
      let p = res.status === 200 ? undefined : problemOf(res);
      if (p?.code === ACTIVATION_REQUIRED) {
        if (!g.canActivate) throw joinError(JoinCodes.ACTIVATION_INVALID, `the broker asked for credential activation, which the ${g.format} format does not do`);
        const act = parseActivation(p.raw);
        log('the broker asked for credential activation; running TPM2_ActivateCredential');
        const secret = await activateCredential(session, act.credentialFile);
        // Second step: a fresh challenge and a fresh quote by the same AK, plus the secret.
        const ch2 = await challenge();
        nonces.push(toBase64Url(ch2.nonce));
        const binding2 = await computeBinding(ch2.nonce, key);
        const g2 = await gatherTpm(gatherOpts(binding2), true);
        g2.evidence.activation = { id: act.id, secret: toBase64Url(secret) };
        res = await post('/v1/attest', envelope(ch2.id, g2, await gpuEvidence(binding2)), 'attest');
        p = res.status === 200 ? undefined : problemOf(res);
      }
      if (p) {
        if ((p.status === 404 || p.status === 410) && (p.code ?? '').startsWith('CHALLENGE_')) throw new RestartFlow(`challenge ${p.code}`, 0, p);
        // 409 with Retry-After: a token was already issued to this instance in the current
        // window (e.g. an earlier answer was lost). Safe to try again, from a new challenge,
        // once the window has passed.
        const ra = parseRetryAfter(header(res, 'retry-after'), clock.now());
        if (p.status === 409 && ra !== undefined) throw new RestartFlow(`HTTP 409 ${p.code ?? ''}`.trim(), ra, p);
        refuse(res);
      }
      const j = parseJson(res);
      if (!j || !('release' in j)) throw joinError(JoinCodes.BAD_RESPONSE, 'the attest response has no release');
      // A release sealed to this TPM too (broker release.tpmSeal): open that layer with the EK and
      // AK of this session first.
      const inner = await openTpmLayer(j.release, g.canActivate ? (cred) => activateCredential(session, cred) : undefined);
      const rel = o.diskKeyOnly ? await openRelease(inner, key?.privateKey, clock.now(), nonces, 'disk-key') : await openRelease(inner, key?.privateKey, clock.now(), nonces);
      if (rel.diskKey || !rel.diskKeyForRecipient || !recipient) return rel;
      // KMS Recipient: CMS EnvelopedData to the recipient key made above; from here on the same
      // as a plain disk key (raw bytes out, the wrapped form kept for the next boot).
      const dk = await openKmsRecipient(fromBase64Url(rel.diskKeyForRecipient.ciphertextForRecipient, 'ciphertextForRecipient'), recipient.privateKey);
      try {
        return { ...rel, diskKey: { key: toBase64Url(dk), wrapped: rel.diskKeyForRecipient.wrapped } };
      } finally {
        dk.fill(0);
      }
    } finally {
      await session.close();
    }
  }

  async function createRecipientKey(): Promise<{ privateKey: CryptoKey; spki: Uint8Array }> {
    const kp = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['encrypt', 'decrypt'])) as CryptoKeyPair;
    return { privateKey: kp.privateKey, spki: new Uint8Array(await crypto.subtle.exportKey('spki', kp.publicKey)) };
  }

  async function writeDiskKey(r: Release | DiskKeyRelease): Promise<void> {
    if (!o.diskKeyOut) return;
    if (!r.diskKey && r.diskKeyForRecipient) {
      throw joinError(JoinCodes.DISK_KEY_MISSING, 'the broker sent the disk key in the KMS Recipient form, but this client sent no recipient key (only AWS NitroTPM evidence carries one)');
    }
    if (!r.diskKey) throw joinError(JoinCodes.DISK_KEY_MISSING, '--disk-key-out was given but the release carries no disk key (does the policy grant disk-key?)');
    // Raw key bytes, as `cryptsetup --key-file` reads them; the wrapped form beside it (not
    // secret) lets the next boot ask the broker for the same key after attesting again.
    await writeFileAtomic(o.diskKeyOut, fromBase64Url(r.diskKey.key, 'diskKey.key'));
    await writeFileAtomic(wrappedPath ?? `${o.diskKeyOut}.wrapped`, r.diskKey.wrapped);
  }

  async function writeOutputs(rel: Release | DiskKeyRelease, pf: Platform, attempts: number): Promise<JoinResult> {
    if (o.diskKeyOnly) {
      await writeDiskKey(rel);
      log(`disk key for ${rel.nodeName} written to ${o.diskKeyOut}`);
      return { nodeName: rel.nodeName, expiresAt: rel.expiresAt, platform: pf, attempts, ...(o.diskKeyOut ? { diskKeyPath: o.diskKeyOut } : {}) };
    }
    const r = rel as Release;
    const result: JoinResult = { nodeName: r.nodeName, expiresAt: r.expiresAt, kubeconfigPath: o.out, platform: pf, attempts };
    // Everything is rendered (and so checked) before the first file is written.
    const kubeletConfig = o.kubeletConfigOut ? kubeletConfigYaml() : undefined;
    const kubeadmConfig = o.kubeadmConfigOut
      ? kubeadmJoinYaml(r, { kubeconfigPath: o.out, ...(o.kubeletConfigOut ? { kubeletConfigDir: dirname(o.kubeletConfigOut) } : {}) })
      : undefined;
    const nodeName = o.nodeNameOut ? nodeNameFile(r) : undefined;
    if (o.diskKeyOut) {
      await writeDiskKey(r);
      result.diskKeyPath = o.diskKeyOut;
    }
    if (o.nodeNameOut && nodeName !== undefined) {
      await writeFileAtomic(o.nodeNameOut, nodeName);
      result.nodeNamePath = o.nodeNameOut;
    }
    if (o.kubeletConfigOut && kubeletConfig !== undefined) {
      await writeFileAtomic(o.kubeletConfigOut, kubeletConfig);
      result.kubeletConfigPath = o.kubeletConfigOut;
    }
    if (o.kubeadmConfigOut && kubeadmConfig !== undefined) {
      await writeFileAtomic(o.kubeadmConfigOut, kubeadmConfig);
      result.kubeadmConfigPath = o.kubeadmConfigOut;
    }
    await writeFileAtomic(o.out, r.kubeconfig);
    log(`joined as ${r.nodeName}; bootstrap kubeconfig written to ${o.out} (token expires ${r.expiresAt})`);
    return result;
  }
}

/**
 * The bootstrap-path outputs, checked before anything is sent: the kubelet reads only `*.conf`
 * files from its drop-in directory (another name would be ignored without a word), and the
 * paths that end up inside the kubeadm configuration must be plain absolute paths.
 */
function checkBootstrapPaths(o: JoinOptions): void {
  if (o.kubeletConfigOut !== undefined && !o.kubeletConfigOut.endsWith(KUBELET_DROPIN_SUFFIX)) {
    throw joinError(JoinCodes.USAGE, `--kubelet-config-out must name a *${KUBELET_DROPIN_SUFFIX} file (the kubelet reads only those from --config-dir)`);
  }
  if (o.kubeadmConfigOut !== undefined) {
    const inYaml = [o.out, ...(o.kubeletConfigOut !== undefined ? [dirname(o.kubeletConfigOut)] : [])];
    for (const p of inYaml) {
      if (!YAML_SAFE_PATH.test(p)) throw joinError(JoinCodes.USAGE, `${p}: with --kubeadm-config-out, --out and the --kubelet-config-out directory must be absolute paths of [A-Za-z0-9._/+-]`);
    }
  }
}
