/**
 * EC2 instance identity documents (PKCS#7 SignedData, RSA-2048/SHA-256). AWS publishes no sample
 * that pairs with the vectors, so the documents are made here by the real tool: `openssl cms` /
 * `openssl smime -sign` under a test certificate that stands in for AWS's per-region certificate
 * (generated with chosen validity dates, since openssl 3.0 `req -x509` cannot back-date).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { createAwsProvider } from '../../providers/aws/index.js';
import { verifyIdentityDocument } from '../../providers/aws/identity.js';
import { parseSignedData } from '../../providers/aws/pkcs7.js';
import { AttestError } from '../../providers/common/errors.js';
import { toBase64 } from '../../providers/common/encoding.js';
import { concat } from '../../providers/common/bytes.js';
import { x509, type Certificate } from '../../providers/common/x509.js';
import { describeVectors } from '../helpers/vectors.js';
import { FIXTURE_TIME, ctxAt, evidenceFor, fixtureDocument } from './fixtures.js';

let dir: string;
let certPem: string;
let cert: Certificate;
let otherPem: string;
let twinPem: string;

const IID = {
  accountId: '123456789012',
  architecture: 'x86_64',
  availabilityZone: 'us-east-1a',
  billingProducts: null,
  imageId: 'ami-0abcdef1234567890',
  instanceId: 'i-01cfb383223e42522',
  instanceType: 'm6i.large',
  pendingTime: '2026-02-03T10:05:00Z',
  privateIp: '10.0.1.23',
  region: 'us-east-1',
  version: '2017-09-30',
};

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = toBase64(new Uint8Array(der)).replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** An RSA-2048 self-signed certificate + key written for openssl; `name`/`serial` chosen by the caller. */
async function makeSigner(file: string, name: string, serial: string): Promise<string> {
  const keys = (await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const c = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: serial, name, keys, notBefore: new Date('2015-05-13T00:00:00Z'), notAfter: new Date('2094-10-16T00:00:00Z'), signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
  const pem = c.toString('pem');
  writeFileSync(join(dir, `${file}.crt`), pem);
  writeFileSync(join(dir, `${file}.key`), toPem('PRIVATE KEY', await crypto.subtle.exportKey('pkcs8', keys.privateKey)));
  return pem;
}

/** Signs `content` with openssl; returns DER. */
function sign(content: string | Uint8Array, args: string[], signer = 'aws'): Uint8Array {
  const input = join(dir, 'doc.json');
  writeFileSync(input, content);
  const out = join(dir, 'out.der');
  execFileSync('openssl', [...args, '-in', input, '-signer', join(dir, `${signer}.crt`), '-inkey', join(dir, `${signer}.key`), '-outform', 'DER', '-out', out], { stdio: 'pipe' });
  return new Uint8Array(readFileSync(out));
}
const CMS = ['cms', '-sign', '-nodetach', '-binary', '-md', 'sha256', '-nocerts', '-nosmimecap'];
const SMIME = ['smime', '-sign', '-nodetach', '-binary', '-md', 'sha256'];
const NOATTR = ['cms', '-sign', '-nodetach', '-binary', '-md', 'sha256', '-nocerts', '-noattr'];
const iidJson = (over: Record<string, unknown> = {}): string => JSON.stringify({ ...IID, ...over }, null, 2);

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'ACCEPTED';
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aws-iid-'));
  certPem = await makeSigner('aws', 'C=US, ST=Washington State, L=Seattle, O=Amazon Web Services LLC', '00b6f2a7c4d3e1f0aa');
  otherPem = await makeSigner('other', 'C=US, O=Somebody Else', '01');
  // Same issuer name and serial as the configured certificate, different key.
  twinPem = await makeSigner('twin', 'C=US, ST=Washington State, L=Seattle, O=Amazon Web Services LLC', '00b6f2a7c4d3e1f0aa');
  cert = new x509.X509Certificate(certPem);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PKCS#7 identity document: verifier', () => {
  it('verifies CMS (signed attributes), PKCS#7 smime (embedded cert) and attribute-less signatures from openssl', async () => {
    for (const args of [CMS, SMIME, NOATTR]) {
      const d = await verifyIdentityDocument(sign(iidJson(), args), [cert], FIXTURE_TIME);
      expect(d).toMatchObject({ accountId: '123456789012', region: 'us-east-1', availabilityZone: 'us-east-1a', instanceId: 'i-01cfb383223e42522', imageId: 'ami-0abcdef1234567890', instanceType: 'm6i.large' });
    }
  });

  const flipAt = (b: Uint8Array, i: number): Uint8Array => {
    const m = b.slice();
    m[i] = (m[i] as number) ^ 1;
    return m;
  };
  const contentAt = (der: Uint8Array): number => {
    const needle = new TextEncoder().encode('"accountId"');
    for (let i = 0; i < der.length; i++) if (needle.every((x, j) => der[i + j] === x)) return i + 2;
    throw new Error('content not found');
  };
  type Row = { name: string; run: () => Promise<unknown>; wantCode: string };
  const rows: Row[] = [
    { name: 'no configured certificate', run: () => verifyIdentityDocument(sign(iidJson(), CMS), [], FIXTURE_TIME), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'signed by an unconfigured key', run: () => verifyIdentityDocument(sign(iidJson(), CMS, 'other'), [cert], FIXTURE_TIME), wantCode: 'IDENTITY_SIGNER_UNKNOWN' },
    { name: 'signed by a twin certificate (same issuer and serial, other key)', run: () => verifyIdentityDocument(sign(iidJson(), CMS, 'twin'), [cert], FIXTURE_TIME), wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'content altered (signed attributes)', run: async () => { const d = sign(iidJson(), CMS); return verifyIdentityDocument(flipAt(d, contentAt(d)), [cert], FIXTURE_TIME); }, wantCode: 'IDENTITY_DIGEST_MISMATCH' },
    { name: 'content altered (no signed attributes)', run: async () => { const d = sign(iidJson(), NOATTR); return verifyIdentityDocument(flipAt(d, contentAt(d)), [cert], FIXTURE_TIME); }, wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'signature altered', run: async () => { const d = sign(iidJson(), CMS); return verifyIdentityDocument(flipAt(d, d.length - 5), [cert], FIXTURE_TIME); }, wantCode: 'IDENTITY_SIGNATURE_INVALID' },
    { name: 'SHA-1 digest', run: () => verifyIdentityDocument(sign(iidJson(), ['cms', '-sign', '-nodetach', '-binary', '-md', 'sha1', '-nocerts']), [cert], FIXTURE_TIME), wantCode: 'IDENTITY_ALG_UNSUPPORTED' },
    { name: 'detached content', run: () => verifyIdentityDocument(sign(iidJson(), ['cms', '-sign', '-binary', '-md', 'sha256', '-nocerts']), [cert], FIXTURE_TIME), wantCode: 'PKCS7_MALFORMED' },
    { name: 'BER streaming (indefinite lengths)', run: () => verifyIdentityDocument(sign(iidJson(), [...CMS, '-stream']), [cert], FIXTURE_TIME), wantCode: 'PKCS7_MALFORMED' },
    { name: 'certificate expired at the verification time', run: () => verifyIdentityDocument(sign(iidJson(), CMS), [cert], new Date('2100-01-01T00:00:00Z')), wantCode: 'CERT_EXPIRED' },
    { name: 'content not JSON', run: () => verifyIdentityDocument(sign('not json', CMS), [cert], FIXTURE_TIME), wantCode: 'IDENTITY_MALFORMED' },
    { name: 'accountId not 12 digits', run: () => verifyIdentityDocument(sign(iidJson({ accountId: '1234' }), CMS), [cert], FIXTURE_TIME), wantCode: 'IDENTITY_MALFORMED' },
    { name: 'instanceId missing', run: () => verifyIdentityDocument(sign(iidJson({ instanceId: undefined }), CMS), [cert], FIXTURE_TIME), wantCode: 'IDENTITY_MALFORMED' },
    { name: 'trailing byte', run: () => verifyIdentityDocument(concat(sign(iidJson(), CMS), Uint8Array.of(0)), [cert], FIXTURE_TIME), wantCode: 'TRAILING_BYTES' },
    { name: 'not DER at all', run: () => verifyIdentityDocument(Uint8Array.of(0x02, 0x01, 0x00), [cert], FIXTURE_TIME), wantCode: 'PKCS7_MALFORMED' },
  ];
  it.each(rows)('rejects: $name → $wantCode', async ({ run, wantCode }) => {
    expect(await codeOf(run())).toBe(wantCode);
  });

  it('truncation sweep: every prefix is TRUNCATED', () => {
    const d = sign(iidJson(), CMS);
    for (let n = 0; n < d.length; n++) {
      let code = 'ACCEPTED';
      try {
        parseSignedData(d.subarray(0, n));
      } catch (e) {
        code = e instanceof AttestError ? e.code : `untyped ${String(e)}`;
      }
      if (code !== 'TRUNCATED') throw new Error(`prefix ${n}: ${code}`);
    }
  });

  it('bit-flip sweep over the whole message: nothing accepted, nothing crashes', async () => {
    const d = sign(iidJson(), CMS);
    for (let i = 0; i < d.length; i++) {
      for (const bit of [0, 5]) {
        const m = d.slice();
        m[i] = (m[i] as number) ^ (1 << bit);
        const code = await codeOf(verifyIdentityDocument(m, [cert], FIXTURE_TIME));
        if (code === 'ACCEPTED') throw new Error(`flip ${i}:${bit} accepted`);
      }
    }
  });

  it('fast-check: mutated messages give typed errors only (10,000 inputs)', () => {
    const d = sign(iidJson(), SMIME);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (edits, cut) => {
        const m = d.slice(0, d.length - (cut % 8));
        for (const [p, v] of edits) m[p % m.length] = v;
        try {
          parseSignedData(m);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

describeVectors('aws nitrotpm + identity document: account proof bound to the attested instance', () => {
  it('proves account and zone only when the identity document verifies and names the attested instance', async () => {
    const p = createAwsProvider({ identityCertificates: certPem });
    const claims = await p.verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson(), CMS)) }), await ctxAt(FIXTURE_TIME));
    expect(claims.identity).toMatchObject({ account: '123456789012', zone: 'us-east-1a', region: 'us-east-1', instanceId: 'i-01cfb383223e42522' });
    // privateIp: what the CSR approver may accept in the node's kubelet serving certificate.
    expect(claims.identity.extra).toMatchObject({ imageId: 'ami-0abcdef1234567890', instanceType: 'm6i.large', privateIp: '10.0.1.23' });
    expect(claims.identity.proven).toEqual(['instanceId', 'region', 'account', 'zone', 'imageId', 'instanceType', 'extra.privateIp']);
  });

  it('does not prove a privateIp that is not a dotted IPv4 address', async () => {
    const p = createAwsProvider({ identityCertificates: certPem });
    const claims = await p.verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson({ privateIp: '10.0.1.23\n' }), CMS)) }), await ctxAt(FIXTURE_TIME));
    expect(claims.identity.extra?.privateIp).toBeUndefined();
    expect(claims.identity.proven).not.toContain('extra.privateIp');
  });

  type Row = { name: string; run: () => Promise<unknown>; wantCode: string };
  const p = (): ReturnType<typeof createAwsProvider> => createAwsProvider({ identityCertificates: [certPem, otherPem] });
  const rows: Row[] = [
    { name: 'identity document of another instance', run: async () => p().verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson({ instanceId: 'i-0aaaaaaaaaaaaaaaa' }), CMS)) }), await ctxAt(FIXTURE_TIME)), wantCode: 'IDENTITY_MISMATCH' },
    { name: 'identity document in another region', run: async () => p().verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson({ region: 'eu-west-1', availabilityZone: 'eu-west-1a' }), CMS)) }), await ctxAt(FIXTURE_TIME)), wantCode: 'IDENTITY_MISMATCH' },
    { name: 'zone outside the region', run: async () => p().verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson({ availabilityZone: 'eu-west-1a' }), CMS)) }), await ctxAt(FIXTURE_TIME)), wantCode: 'IDENTITY_MISMATCH' },
    { name: 'identity document but no configured certificates', run: async () => createAwsProvider().verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson(), CMS)) }), await ctxAt(FIXTURE_TIME)), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'requireIdentityDocument without one', run: async () => p().verify('nitrotpm', evidenceFor(fixtureDocument()), await ctxAt(FIXTURE_TIME, undefined, { requireIdentityDocument: true })), wantCode: 'EVIDENCE_INCOMPLETE' },
    { name: 'identity from the twin key', run: async () => p().verify('nitrotpm', evidenceFor(fixtureDocument(), { identity: toBase64(sign(iidJson(), CMS, 'twin')) }), await ctxAt(FIXTURE_TIME)), wantCode: 'IDENTITY_SIGNATURE_INVALID' },
  ];
  it.each(rows)('rejects: $name → $wantCode', async ({ run, wantCode }) => {
    expect(await codeOf(run())).toBe(wantCode);
  });

  it('rejects unparsable identityCertificates at construction', () => {
    expect(() => createAwsProvider({ identityCertificates: 'not a pem' })).toThrow(AttestError);
    expect(twinPem).toContain('BEGIN CERTIFICATE');
  });
});
