/**
 * A small broker for the join-client tests: a real HTTPS server speaking protocol v1
 * (docs/protocol.md, and two-step credential activation as the broker's `tpm`
 * provider does it: docs/tpm.md on the tpm-core branch),
 * with real crypto at every step it checks, and knobs to inject the failures the client must
 * survive (or refuse). It is a wire peer, not the product's broker.
 *
 * What it checks, independently of the client code:
 * - challenges are single use (deleted on first attest);
 * - the binding: SHA-256(nonce ‖ RFC 7638 thumbprint), the thumbprint computed here by hand
 *   from the canonical JSON `{"crv","kty","x","y"}` with node:crypto;
 * - `tpm` evidence: TPMS_ATTEST magic/type and extraData == binding, and the quote signature
 *   verified by `tpm2_checkquote` (tpm2-tools, the reference implementation);
 * - the EK certificate's public key equals the EK public area's (RSA modulus);
 * - credential activation with `tpm2_makecredential -T none` (software, as a broker would):
 *   403 ACTIVATION_REQUIRED, then a second attest on a new challenge carrying
 *   `evidence.activation = {id, secret}`, matched to the same AK Name, single use;
 * - the release is sealed with jose CompactEncrypt (ECDH-ES+A256KW / A256GCM) to the key.
 * TLS material comes from the `openssl` CLI: a CA and a leaf for 127.0.0.1/localhost.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactEncrypt, importJWK } from 'jose';

export interface TlsMaterial {
  dir: string;
  caPem: string;
  caKeyPem: string;
  leafPem: string;
  leafKeyPem: string;
  /** `sha256:<hex>` of the CA SPKI, computed with the openssl pipeline the docs give. */
  pin: string;
}

function sh(cmd: string, cwd: string): string {
  return execFileSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A CA and a leaf signed by it, made with the openssl CLI. */
export function makeTls(name = 'test', san = 'IP:127.0.0.1,DNS:localhost'): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), `join-tls-${name}-`));
  sh(
    [
      'openssl ecparam -name prime256v1 -genkey -noout -out ca.key',
      `openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=${name} broker CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out ca.crt`,
      'openssl ecparam -name prime256v1 -genkey -noout -out leaf.key',
      `openssl req -new -key leaf.key -subj "/CN=${name} broker" -out leaf.csr`,
      `printf "subjectAltName=${san}\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n" > leaf.ext`,
      'openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -sha256 -extfile leaf.ext -out leaf.crt',
    ].join(' && '),
    dir,
  );
  const pinHex = sh('openssl x509 -in ca.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -r', dir).split(' ')[0]!.trim();
  return {
    dir,
    caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    caKeyPem: readFileSync(join(dir, 'ca.key'), 'utf8'),
    leafPem: readFileSync(join(dir, 'leaf.crt'), 'utf8'),
    leafKeyPem: readFileSync(join(dir, 'leaf.key'), 'utf8'),
    pin: `sha256:${pinHex}`,
  };
}

export type Fault =
  | { kind: 'status'; path: string; status: number; code: string; retryAfter?: string }
  | { kind: 'drop-after-body'; path: string };

export interface TestBrokerOptions {
  tls: TlsMaterial;
  /** Serve this chain instead of leaf + CA (e.g. for the forged-chain test). */
  chainPem?: string;
  keyPem?: string;
  /** Ask for credential activation on `tpm` evidence. */
  requireActivation?: boolean;
  /** Refuse with this policy code after verification. */
  policyRefusal?: string;
  /** Send the release unsealed even when a key was given (downgrade attempt). */
  forceUnsealed?: boolean;
  /** Seal to some other key. */
  sealToWrongKey?: boolean;
  /** Echo a nonce of no challenge in the release. */
  wrongNonce?: boolean;
  /** Include a disk key in the release. */
  diskKey?: boolean;
  /**
   * Seal the release to the node's TPM as release.tpmSeal does (TPM2_MakeCredential to its EK and
   * AK Name, made here with the real tpm2_makecredential; JWE dir + A128CBC-HS256 by jose):
   * 'good', 'tampered' (one ciphertext character changed), or 'other-ak' (to an AK Name the
   * node does not have).
   */
  tpmSeal?: 'good' | 'tampered' | 'other-ak';
  /** Issue this token every time (so that two clients can be given the same release). */
  fixedToken?: string;
  /** Release members to set (or, with `undefined`, remove) after the defaults. */
  releaseOverrides?: Record<string, unknown>;
  /** TPM-vendor EK root (PEM): the EK certificate must chain to it through ek_intermediates (openssl verify). */
  ekRootPem?: string;
  /** Listen on this port (default: a free one). */
  port?: number;
  /** Env for tpm2-tools (checkquote / makecredential run offline, no TPM needed). */
  toolsEnv?: NodeJS.ProcessEnv;
}

export interface Counters {
  challenge: number;
  attest: number;
  activate: number;
}

export interface TestBroker {
  url: string;
  counters: Counters;
  faults: Fault[];
  /** Last attest request body (for assertions). */
  lastRequest?: Record<string, unknown>;
  /** Last verified request (for assertions). */
  last?: { format: string; evidence: Record<string, unknown>; binding: Buffer; token?: string };
  issuedTokens: string[];
  close(): Promise<void>;
}

function b64u(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

function problem(res: ServerResponse, status: number, code: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
  res.end(JSON.stringify({ type: 'about:blank', title: code, status, code, ...extra }));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** RFC 7638 §3.2: required EC members in lexicographic order, no whitespace. */
export function thumbprintByHand(jwk: { crv: string; kty: string; x: string; y: string }): Buffer {
  return createHash('sha256').update(`{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`).digest();
}

/** TPMS_ATTEST prefix (TPM 2.0 Part 2 §10.12.12): magic, type, qualifiedSigner, extraData. */
function extraDataOf(msg: Buffer): Buffer {
  if (msg.readUInt32BE(0) !== 0xff544347 || msg.readUInt16BE(4) !== 0x8018) throw new Error('not a quote');
  const qsLen = msg.readUInt16BE(6);
  const off = 8 + qsLen;
  const edLen = msg.readUInt16BE(off);
  return msg.subarray(off + 2, off + 2 + edLen);
}

export async function startTestBroker(o: TestBrokerOptions): Promise<TestBroker> {
  const work = mkdtempSync(join(tmpdir(), 'join-broker-'));
  const challenges = new Map<string, { nonce: Buffer; expires: number }>();
  const activations = new Map<string, { secret: Buffer; akName: Buffer }>();
  const counters: Counters = { challenge: 0, attest: 0, activate: 0 };
  const faults: Fault[] = [];
  const issuedTokens: string[] = [];
  const env = o.toolsEnv ?? process.env;
  const state: TestBroker = { url: '', counters, faults, issuedTokens, close: async () => undefined };

  const tool = (t: string, args: string[]): void => {
    execFileSync(t, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  };

  const takeFault = (path: string): Fault | undefined => {
    const i = faults.findIndex((f) => f.path === path);
    return i >= 0 ? faults.splice(i, 1)[0] : undefined;
  };

  const release = async (res: ServerResponse, jwk: Record<string, string> | undefined, nonce: Buffer, tpmKeys?: { ekPub: Buffer; akName: Buffer }): Promise<void> => {
    if (o.policyRefusal) return problem(res, 403, o.policyRefusal, { detail: 'policy refused this boot' });
    const token = o.fixedToken ?? `${randomBytes(3).toString('hex')}.${randomBytes(8).toString('hex')}`;
    issuedTokens.push(token);
    if (state.last) state.last.token = token;
    const caHash = createHash('sha256').update(new X509Certificate(o.tls.caPem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
    const rel: Record<string, unknown> = {
      nodeName: 'node-test-1',
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      bootstrapToken: token,
      apiServer: 'https://127.0.0.1:6443',
      caCertHashes: [`sha256:${caHash}`],
      kubeconfig: `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:6443"}\nusers:\n- name: kubelet-bootstrap\n  user: {token: "${token}"}\ncontexts:\n- name: c\n  context: {cluster: c, user: kubelet-bootstrap}\ncurrent-context: c\n`,
    };
    // The broker echoes the challenge nonce (broker/release/service.ts).
    rel.nonce = b64u(o.wrongNonce ? randomBytes(32) : nonce);
    for (const [k, v] of Object.entries(o.releaseOverrides ?? {})) {
      if (v === undefined) delete rel[k];
      else rel[k] = v;
    }
    if (o.diskKey) rel.diskKey = { key: b64u(randomBytes(32)), wrapped: b64u(randomBytes(60)) };
    res.writeHead(200, { 'content-type': 'application/json' });
    if (o.tpmSeal && tpmKeys && !jwk) {
      const d = mkdtempSync(join(work, 'seal-'));
      const cek = randomBytes(32);
      writeFileSync(join(d, 'ek.pub'), tpmKeys.ekPub);
      writeFileSync(join(d, 'cek'), cek);
      const name = o.tpmSeal === 'other-ak' ? Buffer.concat([tpmKeys.akName.subarray(0, 2), randomBytes(32)]) : tpmKeys.akName;
      tool('tpm2_makecredential', ['-T', 'none', '-u', join(d, 'ek.pub'), '-s', join(d, 'cek'), '-n', name.toString('hex'), '-o', join(d, 'cred')]);
      let jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(rel)))
        .setProtectedHeader({ alg: 'dir', enc: 'A128CBC-HS256', typ: 'application/attest-broker.tpm-sealed', cty: 'application/attest-broker.release+json', tpm_cred: b64u(readFileSync(join(d, 'cred'))) })
        .encrypt(cek);
      rmSync(d, { recursive: true, force: true });
      if (o.tpmSeal === 'tampered') {
        const parts = jwe.split('.');
        const ct = Buffer.from(parts[3]!, 'base64url');
        ct.writeUInt8(ct[0]! ^ 0x01, 0);
        parts[3] = b64u(ct);
        jwe = parts.join('.');
      }
      return void res.end(JSON.stringify({ release: jwe }));
    }
    if (!jwk || o.forceUnsealed) return void res.end(JSON.stringify({ release: rel }));
    let target = jwk;
    if (o.sealToWrongKey) {
      const { generateKeyPair, exportJWK } = await import('jose');
      const other = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
      target = (await exportJWK(other.publicKey)) as Record<string, string>;
    }
    const pub = await importJWK(target, 'ECDH-ES+A256KW');
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(rel))).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(pub);
    res.end(JSON.stringify({ release: jwe }));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    const fault = takeFault(path);
    if (fault?.kind === 'status') {
      await readBody(req);
      return problem(res, fault.status, fault.code, {}, fault.retryAfter ? { 'retry-after': fault.retryAfter } : {});
    }
    const body = await readBody(req);
    if (fault?.kind === 'drop-after-body') {
      if (path === '/v1/attest') counters.attest++;
      req.socket.destroy();
      return;
    }
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return problem(res, 400, 'MALFORMED_JSON');
    }
    if (req.method !== 'POST') return problem(res, 405, 'METHOD_NOT_ALLOWED');
    if (path === '/v1/challenge') {
      counters.challenge++;
      const id = randomBytes(12).toString('hex');
      const nonce = randomBytes(32);
      challenges.set(id, { nonce, expires: Date.now() + 120_000 });
      res.writeHead(201, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ challengeId: id, nonce: b64u(nonce), expiresAt: new Date(Date.now() + 120_000).toISOString() }));
    }
    if (path === '/v1/attest') {
      counters.attest++;
      state.lastRequest = j;
      const ch = challenges.get(String(j.challengeId));
      if (!ch) return problem(res, 410, 'CHALLENGE_UNKNOWN');
      challenges.delete(String(j.challengeId)); // single use
      const jwk = j.ephemeralKey as Record<string, string> | undefined;
      const binding = jwk
        ? createHash('sha256').update(Buffer.concat([ch.nonce, thumbprintByHand(jwk as { crv: string; kty: string; x: string; y: string })])).digest()
        : ch.nonce;
      const ev = j.evidence as Record<string, unknown>;
      state.last = { format: String(j.format), evidence: ev, binding };
      if (j.format === 'tpm') {
        const q = ev.quote as { message: string; signature: string };
        const msg = Buffer.from(q.message, 'base64url');
        if (!extraDataOf(msg).equals(binding)) return problem(res, 403, 'NONCE_MISMATCH');
        const d = mkdtempSync(join(work, 'q-'));
        writeFileSync(join(d, 'ak.pub'), Buffer.from(String(ev.ak_public), 'base64url'));
        writeFileSync(join(d, 'q.msg'), msg);
        writeFileSync(join(d, 'q.sig'), Buffer.from(q.signature, 'base64url'));
        try {
          tool('tpm2_checkquote', ['-u', join(d, 'ak.pub'), '-m', join(d, 'q.msg'), '-s', join(d, 'q.sig'), '-g', 'sha256', '-q', binding.toString('hex')]);
        } catch {
          return problem(res, 403, 'QUOTE_SIGNATURE_INVALID');
        }
        if (ev.ek_certificate) {
          const cert = new X509Certificate(Buffer.from(String(ev.ek_certificate), 'base64url'));
          const certN = Buffer.from(String(cert.publicKey.export({ format: 'jwk' }).n), 'base64url');
          const ekPub = Buffer.from(String(ev.ek_public), 'base64url');
          // TPM2B_PUBLIC of an RSA EK ends with its unique (TPM2B modulus).
          const n = ekPub.subarray(ekPub.length - certN.length);
          if (!n.equals(certN)) return problem(res, 403, 'EK_CERT_MISMATCH');
          if (o.ekRootPem) {
            // The chain to the vendor root, built by openssl from the intermediates the node sent.
            const pem = (der: Buffer): string => new X509Certificate(der).toString();
            writeFileSync(join(d, 'root.pem'), o.ekRootPem);
            writeFileSync(join(d, 'ek.pem'), pem(Buffer.from(String(ev.ek_certificate), 'base64url')));
            const inter = ((ev.ek_intermediates as string[] | undefined) ?? []).map((x) => pem(Buffer.from(x, 'base64url'))).join('');
            writeFileSync(join(d, 'inter.pem'), inter);
            try {
              execFileSync('openssl', ['verify', '-CAfile', join(d, 'root.pem'), ...(inter ? ['-untrusted', join(d, 'inter.pem')] : []), join(d, 'ek.pem')], { stdio: 'ignore' });
            } catch {
              return problem(res, 403, 'CHAIN_UNTRUSTED');
            }
          }
        } else if (o.ekRootPem) {
          return problem(res, 403, 'EK_CERTIFICATE_MISSING');
        }
        // AK Name = nameAlg ‖ SHA-256(TPMT_PUBLIC) (TPM 2.0 Part 1 §16).
        const akPub = Buffer.from(String(ev.ak_public), 'base64url').subarray(2);
        const akName = Buffer.concat([akPub.subarray(2, 4), createHash('sha256').update(akPub).digest()]);
        const act = ev.activation as { id?: string; secret?: string } | undefined;
        if (o.requireActivation && act) {
          // Second step (docs/tpm.md): a fresh challenge, same AK, the recovered secret.
          counters.activate++;
          const pending = activations.get(String(act.id));
          activations.delete(String(act.id)); // single use
          rmSync(d, { recursive: true, force: true });
          if (!pending || !pending.akName.equals(akName) || !Buffer.from(String(act.secret), 'base64url').equals(pending.secret)) {
            return problem(res, 403, 'ACTIVATION_FAILED');
          }
          return release(res, jwk, ch.nonce, { ekPub: Buffer.from(String(ev.ek_public), 'base64url'), akName });
        }
        if (o.requireActivation) {
          writeFileSync(join(d, 'ek.pub'), Buffer.from(String(ev.ek_public), 'base64url'));
          const secret = randomBytes(32);
          writeFileSync(join(d, 'secret'), secret);
          tool('tpm2_makecredential', ['-T', 'none', '-u', join(d, 'ek.pub'), '-s', join(d, 'secret'), '-n', akName.toString('hex'), '-o', join(d, 'cred')]);
          const blob = readFileSync(join(d, 'cred'));
          const idLen = blob.readUInt16BE(8);
          const id = randomBytes(12).toString('hex');
          activations.set(id, { secret, akName });
          rmSync(d, { recursive: true, force: true });
          // 403 problem with the activation extension member, as the broker's tpm provider.
          return problem(res, 403, 'ACTIVATION_REQUIRED', {
            activation: {
              id,
              credential: b64u(blob),
              credentialBlob: b64u(blob.subarray(8, 10 + idLen)),
              encryptedSecret: b64u(blob.subarray(10 + idLen)),
              expiresInSeconds: 120,
            },
          });
        }
        rmSync(d, { recursive: true, force: true });
        return release(res, jwk, ch.nonce, { ekPub: Buffer.from(String(ev.ek_public), 'base64url'), akName });
      }
      return release(res, jwk, ch.nonce);
    }
    return problem(res, 404, 'NOT_FOUND');
  };

  const server: Server = createServer(
    { cert: o.chainPem ?? o.tls.leafPem + o.tls.caPem, key: o.keyPem ?? o.tls.leafKeyPem },
    (req, res) => {
      handle(req, res).catch((e: unknown) => problem(res, 500, 'TEST_BROKER_BUG', { detail: String(e) }));
    },
  );
  await new Promise<void>((r) => server.listen(o.port ?? 0, '127.0.0.1', r));
  state.url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
      rmSync(work, { recursive: true, force: true });
    });
  return state;
}
