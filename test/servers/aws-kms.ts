/**
 * A local AWS KMS speaking the real wire protocol, with real crypto behind it, for pointing the
 * official @aws-sdk/client-kms at.
 *
 * References followed:
 * - AWS KMS API Reference, Encrypt / Decrypt / GenerateDataKey request and response syntax and
 *   errors: https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html, …/API_Decrypt.html,
 *   …/API_GenerateDataKey.html (blobs are base64 in JSON; Recipient →
 *   CiphertextForRecipient and no Plaintext);
 * - AWS JSON 1.1 protocol: `POST /`, `Content-Type: application/x-amz-json-1.1`,
 *   `X-Amz-Target: TrentService.<Operation>`, errors as HTTP 400/500 with `{"__type", "message"}`
 *   (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html);
 * - Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html):
 *   the signature is recomputed with the test secret key and must match (InvalidSignatureException).
 *
 * Crypto: each key is an AES-256-GCM key; a ciphertext blob is
 * `"TKMS" ‖ u8 len ‖ key ARN ‖ IV(12) ‖ ct ‖ tag` with AAD = canonical JSON of the
 * EncryptionContext, so a different context fails exactly as in KMS (InvalidCiphertextException).
 * For Recipient the AttestationDocument's COSE_Sign1 payload is decoded (not verified: that is
 * KMS's own job, out of scope here) and the plaintext is sealed into CMS EnvelopedData
 * (RSAES-OAEP-SHA-256, AES-256) to its `public_key` with the real `openssl cms`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'cborg';

export interface AwsKmsTestServer {
  url: string;
  keyArn: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** 'up', or an outage mode: HTTP 500 KMSInternalException / 400 ThrottlingException-like 503. */
  mode: 'up' | 'internal-error' | 'throttle';
  calls: Array<{ op: string; status: number; body: Record<string, unknown>; /** W3C trace context the caller sent, when it sent one. */ traceparent?: string }>;
  close(): Promise<void>;
}

const canon = (ctx: Record<string, string> | undefined): Buffer =>
  Buffer.from(JSON.stringify(Object.keys(ctx ?? {}).sort().map((k) => [k, ctx![k]])));

function sigv4Check(req: { method: string; url: string; headers: Record<string, string | string[] | undefined> }, body: Buffer, secret: string, region: string): boolean {
  const auth = String(req.headers.authorization ?? '');
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/kms\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m || m[3] !== region) return false;
  const [, , date, , signedHeaders, signature] = m;
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const names = signedHeaders!.split(';');
  const canonHeaders = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const u = new URL(req.url, 'http://x');
  const canonical = [req.method, u.pathname, u.searchParams.toString(), canonHeaders, signedHeaders, createHash('sha256').update(body).digest('hex')].join('\n');
  const scope = `${date}/${region}/kms/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let k: Buffer = createHmac('sha256', `AWS4${secret}`).update(date!).digest();
  for (const part of [region, 'kms', 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
  const want = createHmac('sha256', k).update(toSign).digest();
  return timingSafeEqual(want, Buffer.from(signature!, 'hex'));
}

function cmsToRecipient(attestationDocument: Buffer, plaintext: Buffer): Buffer {
  // COSE_Sign1 = [protected, unprotected, payload, signature] (RFC 9052 §4.2), payload a CBOR map.
  const cose = decode(attestationDocument, { useMaps: true, tags: Object.assign([], { 18: (x: unknown) => x }) }) as unknown[];
  const payload = decode(cose[2] as Uint8Array, { useMaps: true }) as Map<string, unknown>;
  const spki = payload.get('public_key') as Uint8Array | undefined;
  if (!spki) throw Object.assign(new Error('attestation document has no public_key'), { type: 'ValidationException' });
  const dir = mkdtempSync(join(tmpdir(), 'ab-cms-'));
  const pub = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(spki).toString('base64')}\n-----END PUBLIC KEY-----\n`;
  writeFileSync(join(dir, 'r.pub'), pub);
  writeFileSync(join(dir, 'p'), plaintext);
  const o = { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'] };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 's.key', '-out', 's.crt', '-subj', '/CN=kms-test', '-days', '1'], o);
  execFileSync('openssl', ['x509', '-new', '-force_pubkey', 'r.pub', '-key', 's.key', '-subj', '/CN=recipient', '-out', 'r.crt', '-days', '1'], o);
  execFileSync('openssl', ['cms', '-encrypt', '-in', 'p', '-binary', '-outform', 'DER', '-out', 'c.der', '-recip', 'r.crt', '-aes256', '-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256'], o);
  return readFileSync(join(dir, 'c.der'));
}

export async function startAwsKmsServer(): Promise<AwsKmsTestServer> {
  const region = 'eu-west-1';
  const keyArn = `arn:aws:kms:${region}:111122223333:key/${randomBytes(16).toString('hex').replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5')}`;
  const keys = new Map<string, Buffer>([[keyArn, randomBytes(32)]]);
  const self: Partial<AwsKmsTestServer> = { keyArn, region, accessKeyId: 'AKIDTESTKMS0000001', secretAccessKey: randomBytes(20).toString('base64'), mode: 'up', calls: [] };

  const seal = (arn: string, pt: Buffer, ctx?: Record<string, string>): Buffer => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', keys.get(arn)!, iv);
    c.setAAD(canon(ctx));
    const ct = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
    const a = Buffer.from(arn);
    return Buffer.concat([Buffer.from('TKMS'), Buffer.of(a.length), a, iv, ct]);
  };
  const open = (blob: Buffer, ctx?: Record<string, string>): { arn: string; pt: Buffer } => {
    const bad = (): never => {
      throw Object.assign(new Error('invalid ciphertext'), { type: 'InvalidCiphertextException' });
    };
    if (blob.length < 5 || blob.subarray(0, 4).toString() !== 'TKMS') bad();
    const n = blob[4]!;
    const arn = blob.subarray(5, 5 + n).toString();
    const key = keys.get(arn);
    if (!key || blob.length < 5 + n + 12 + 16) bad();
    const iv = blob.subarray(5 + n, 17 + n);
    const ct = blob.subarray(17 + n, blob.length - 16);
    const d = createDecipheriv('aes-256-gcm', key!, iv);
    d.setAAD(canon(ctx));
    d.setAuthTag(blob.subarray(blob.length - 16));
    try {
      return { arn, pt: Buffer.concat([d.update(ct), d.final()]) };
    } catch {
      return bad();
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const target = String(req.headers['x-amz-target'] ?? '');
      const op = target.replace(/^TrentService\./, '');
      let body: Record<string, unknown> = {};
      const reply = (status: number, obj: Record<string, unknown>, type?: string): void => {
        const tp = req.headers.traceparent;
        self.calls!.push({ op, status, body, ...(typeof tp === 'string' ? { traceparent: tp } : {}) });
        const h: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomBytes(8).toString('hex') };
        if (type) h['x-amzn-errortype'] = type;
        res.writeHead(status, h);
        res.end(JSON.stringify(type ? { __type: type, message: obj.message } : obj));
      };
      try {
        body = JSON.parse(raw.toString() || '{}') as Record<string, unknown>;
        if (req.method !== 'POST' || req.url !== '/' || !target.startsWith('TrentService.')) return reply(400, { message: 'unknown operation' }, 'UnknownOperationException');
        if (String(req.headers['content-type']) !== 'application/x-amz-json-1.1') return reply(400, { message: 'bad content type' }, 'SerializationException');
        if (!sigv4Check({ method: req.method, url: req.url, headers: req.headers }, raw, self.secretAccessKey!, region)) {
          return reply(400, { message: 'The request signature we calculated does not match the signature you provided.' }, 'InvalidSignatureException');
        }
        if (self.mode === 'internal-error') return reply(500, { message: 'internal error' }, 'KMSInternalException');
        if (self.mode === 'throttle') return reply(400, { message: 'Rate exceeded' }, 'ThrottlingException');
        const ctx = body.EncryptionContext as Record<string, string> | undefined;
        const keyId = body.KeyId as string | undefined;
        const recipient = body.Recipient as { KeyEncryptionAlgorithm?: string; AttestationDocument?: string } | undefined;
        if (recipient && recipient.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256') return reply(400, { message: 'bad KeyEncryptionAlgorithm' }, 'ValidationException');
        const forRecipient = (pt: Buffer): string => cmsToRecipient(Buffer.from(recipient!.AttestationDocument!, 'base64'), pt).toString('base64');
        switch (op) {
          case 'Encrypt': {
            if (!keyId || !keys.has(keyId)) return reply(400, { message: 'key not found' }, 'NotFoundException');
            const pt = Buffer.from(String(body.Plaintext), 'base64');
            if (pt.length < 1 || pt.length > 4096) return reply(400, { message: 'plaintext length' }, 'ValidationException');
            return reply(200, { CiphertextBlob: seal(keyId, pt, ctx).toString('base64'), KeyId: keyId, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
          }
          case 'GenerateDataKey': {
            if (!keyId || !keys.has(keyId)) return reply(400, { message: 'key not found' }, 'NotFoundException');
            if (body.KeySpec !== 'AES_256') return reply(400, { message: 'KeySpec' }, 'ValidationException');
            const pt = randomBytes(32);
            const out: Record<string, unknown> = { CiphertextBlob: seal(keyId, pt, ctx).toString('base64'), KeyId: keyId };
            if (recipient) out.CiphertextForRecipient = forRecipient(pt);
            else out.Plaintext = pt.toString('base64');
            return reply(200, out);
          }
          case 'Decrypt': {
            const { arn, pt } = open(Buffer.from(String(body.CiphertextBlob), 'base64'), ctx);
            if (keyId && keyId !== arn) return reply(400, { message: 'The key ID in the request does not identify a KMS key used to encrypt' }, 'IncorrectKeyException');
            const out: Record<string, unknown> = { KeyId: arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
            if (recipient) out.CiphertextForRecipient = forRecipient(pt);
            else out.Plaintext = pt.toString('base64');
            return reply(200, out);
          }
          default:
            return reply(400, { message: `operation ${op} not implemented by the test server` }, 'UnknownOperationException');
        }
      } catch (e) {
        const type = (e as { type?: string }).type;
        if (type) return reply(400, { message: (e as Error).message }, type);
        return reply(500, { message: String(e) }, 'KMSInternalException');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  Object.assign(self, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return self as AwsKmsTestServer;
}
