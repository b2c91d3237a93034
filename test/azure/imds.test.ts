/**
 * IMDS attested documents. No real one is in test/vectors, so openssl (the real tool)
 * builds the PKI and signs documents shaped like Azure's (`openssl cms -sign`, SHA-256, RSA,
 * with and without signed attributes, as IMDS does): a test root pinned by fingerprint, an
 * intermediate, a `metadata.azure.com` leaf. They ride on the real az-snp-vtpm evidence-v1,
 * whose vmUniqueId they name. Time is the real clock (openssl dates its certificates now).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeVectors, loadTestAnchors, readVectorJson } from '../helpers/vectors.js';
import { createAzureProvider } from '../../providers/azure/index.js';
import { parseImdsPkcs7 } from '../../providers/azure/imds.js';
import { anchorFromPin, fingerprint, parsePemCertificates } from '../../providers/common/x509.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { AttestError } from '../../providers/common/errors.js';
import type { Provider, TrustStore, VerifyContext } from '../../providers/common/types.js';
import { codeOf, codeOfSync } from '../amd-sev-snp/helpers.js';
import { startKdsServer, type KdsServer } from './kds-server.js';

const VM = '26F8BC30-774E-4290-8E7A-535F3B672AEE';
const SUB = '8d10da13-8125-4ba9-a717-bf7490507b3d';

function imdsTime(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${p(d.getUTCFullYear() % 100)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} -0000`;
}

describeVectors('IMDS attested document (openssl-built PKI and documents)', () => {
  let dir = '';
  let kds: KdsServer;
  let trust: TrustStore;
  let interPem = '';
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const sign = (name: string, content: object, opts: { leaf?: string; attrs?: boolean; md?: string; withInter?: boolean; noCerts?: boolean } = {}): string => {
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(content));
    const leaf = opts.leaf ?? 'leaf';
    ossl('cms', '-sign', '-binary', '-nodetach', '-in', `${name}.json`, '-signer', `${leaf}.pem`, '-inkey', `${leaf}.key`, '-md', opts.md ?? 'sha256', '-outform', 'DER', '-out', `${name}.p7`,
      ...(opts.attrs === false ? ['-noattr'] : []), ...(opts.withInter ? ['-certfile', 'inter.pem'] : []), ...(opts.noCerts ? ['-nocerts'] : []));
    return readFileSync(join(dir, `${name}.p7`)).toString('base64');
  };
  const content = (over: Record<string, unknown> = {}, now = new Date()): object => ({
    licenseType: '',
    nonce: '1234567890',
    plan: { name: '', product: '', publisher: '' },
    sku: '22_04-lts-cvm',
    subscriptionId: SUB,
    timeStamp: { createdOn: imdsTime(new Date(now.getTime() - 60_000)), expiresOn: imdsTime(new Date(now.getTime() + 6 * 3600_000)) },
    vmId: VM,
    ...over,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'imds-'));
    writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
    writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=DNS:metadata.azure.com\n');
    writeFileSync(join(dir, 'evil.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=DNS:evil.example.com\n');
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-days', '30', '-subj', '/CN=Test IMDS Root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'inter.key', '-out', 'inter.csr', '-subj', '/CN=Test Azure RSA TLS Issuing CA');
    ossl('x509', '-req', '-in', 'inter.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'inter.pem', '-days', '30', '-extfile', 'ca.ext');
    for (const [name, cn] of [['leaf', 'metadata.azure.com'], ['evil', 'evil.example.com']] as const) {
      ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'inter.pem', '-CAkey', 'inter.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '30', '-extfile', `${name}.ext`);
    }
    interPem = readFileSync(join(dir, 'inter.pem'), 'utf8');
    const root = parsePemCertificates(readFileSync(join(dir, 'root.pem'), 'utf8'))[0]!;
    const anchor = await anchorFromPin({ id: 'test-imds-root', sha256: await fingerprint(root), source: 'test' }, root);
    trust = createTrustStore([...(await loadTestAnchors()), anchor]);
    kds = await startKdsServer();
  });
  afterAll(async () => {
    await kds.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const provider = (o: { anchors?: string[]; inter?: boolean } = {}): Provider =>
    createAzureProvider({ kdsBaseUrl: kds.base, imds: { anchorIds: o.anchors ?? ['test-imds-root'], ...(o.inter === false ? {} : { intermediatesPem: interPem }) } });
  const ctx = (over: Partial<VerifyContext> = {}): VerifyContext => ({ binding: new TextEncoder().encode('challenge'), now: new Date(), fetch, trust, options: {}, ...over });
  const evidence = (signature?: string): Record<string, unknown> => {
    const e = readVectorJson<Record<string, unknown>>('trustee/az-snp-vtpm/evidence-v1.json');
    if (signature !== undefined) e.imds_attested = { encoding: 'pkcs7', signature };
    return e;
  };

  it('a document for the same VM proves the subscription (signed attributes, as openssl signs)', async () => {
    const c = await provider().verify('az-snp-vtpm', evidence(sign('ok', content())), ctx());
    expect(c.identity.account).toBe(SUB);
    expect(c.identity.proven).toEqual(['instanceId', 'account']);
    expect(c.identity.extra?.imdsSku).toBe('22_04-lts-cvm');
  });

  it('without signed attributes (as IMDS signs), intermediate carried in the document', async () => {
    const c = await provider({ inter: false }).verify('az-snp-vtpm', evidence(sign('noattr', content(), { attrs: false, withInter: true })), ctx());
    expect(c.identity.account).toBe(SUB);
  });

  it('without a document, no account is claimed; requiring one rejects', async () => {
    const c = await provider().verify('az-snp-vtpm', evidence(), ctx());
    expect(c.identity.account).toBeUndefined();
    expect(c.identity.proven).toEqual(['instanceId']);
    expect(await codeOf(() => provider().verify('az-snp-vtpm', evidence(), ctx({ options: { requireImdsDocument: true } })))).toBe('IMDS_DOCUMENT_MISSING');
  });

  it('the configured defaults hold for every call without options, before and after a call that overrides them', async () => {
    // The defaults are resolved once; per-call options replace them for that call only.
    const p = createAzureProvider({ kdsBaseUrl: kds.base, imds: { anchorIds: ['test-imds-root'], intermediatesPem: interPem }, defaults: { requireImdsDocument: true } });
    for (const options of [{}, undefined, null]) {
      expect(await codeOf(() => p.verify('az-snp-vtpm', evidence(), ctx({ options: options as never })))).toBe('IMDS_DOCUMENT_MISSING');
    }
    expect((await p.verify('az-snp-vtpm', evidence(), ctx({ options: { requireImdsDocument: false } }))).identity.account).toBeUndefined();
    expect(await codeOf(() => p.verify('az-snp-vtpm', evidence(), ctx()))).toBe('IMDS_DOCUMENT_MISSING');
    // Not an empty object: the schema decides, as before.
    expect(await codeOf(() => p.verify('az-snp-vtpm', evidence(), ctx({ options: [] as never })))).toBe('OPTIONS_INVALID');
  });

  const rows: { name: string; make: () => string; provider?: () => Provider; ctx?: () => VerifyContext; wantCode: string }[] = [
    { name: 'another VM\'s document', make: () => sign('othervm', content({ vmId: '00000000-0000-0000-0000-000000000001' })), wantCode: 'IMDS_VMID_MISMATCH' },
    { name: 'signed by a certificate that is not metadata.azure.com', make: () => sign('evil', content(), { leaf: 'evil' }), wantCode: 'IMDS_SIGNER_INVALID' },
    { name: 'no IMDS root configured', make: () => sign('noroot', content()), provider: () => provider({ anchors: [] }), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'intermediate neither configured nor carried', make: () => sign('nointer', content()), provider: () => provider({ inter: false }), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'document expired', make: () => sign('expired', content({}, new Date(Date.now() - 7 * 3600_000))), wantCode: 'IMDS_DOCUMENT_EXPIRED' },
    { name: 'document from the future', make: () => sign('future', content({}, new Date(Date.now() + 3600_000))), wantCode: 'IMDS_DOCUMENT_NOT_YET_VALID' },
    { name: 'signer certificate left out', make: () => sign('nocerts', content(), { noCerts: true }), wantCode: 'IMDS_SIGNER_MISSING' },
    { name: 'SHA-1 digest', make: () => sign('sha1', content(), { md: 'sha1' }), wantCode: 'IMDS_ALGORITHM_UNSUPPORTED' },
    {
      name: 'content changed after signing (signed attributes)',
      make: () => Buffer.from(Buffer.from(sign('tamper1', content()), 'base64').toString('latin1').replace(SUB, SUB.replace('8d10', '9d10')), 'latin1').toString('base64'),
      wantCode: 'IMDS_SIGNATURE_INVALID',
    },
    {
      name: 'content changed after signing (no signed attributes)',
      make: () => Buffer.from(Buffer.from(sign('tamper2', content(), { attrs: false }), 'base64').toString('latin1').replace(SUB, SUB.replace('8d10', '9d10')), 'latin1').toString('base64'),
      wantCode: 'IMDS_SIGNATURE_INVALID',
    },
    { name: 'certificates expired at the verification time', make: () => sign('late', content()), ctx: () => ctx({ now: new Date(Date.now() + 40 * 86400_000) }), wantCode: 'CERT_EXPIRED' },
    { name: 'content not JSON-shaped (no vmId)', make: () => sign('novm', content({ vmId: '' })), wantCode: 'IMDS_DOCUMENT_MALFORMED' },
    { name: 'bad time format', make: () => sign('badtime', content({ timeStamp: { createdOn: '2026-01-01T00:00:00Z', expiresOn: 'x' } })), wantCode: 'IMDS_DOCUMENT_MALFORMED' },
    { name: 'not base64', make: () => '!!!', wantCode: 'EVIDENCE_INVALID' },
    { name: 'not PKCS#7 (an INTEGER)', make: () => Buffer.from([0x02, 0x01, 0x00]).toString('base64'), wantCode: 'IMDS_DOCUMENT_MALFORMED' },
    { name: 'not PKCS#7 (text)', make: () => Buffer.from('hello').toString('base64'), wantCode: 'TRUNCATED' },
  ];
  for (const row of rows) {
    it(`rejects: ${row.name}`, async () => {
      const p = (row.provider ?? provider)();
      expect(await codeOf(() => p.verify('az-snp-vtpm', evidence(row.make()), (row.ctx ?? ctx)()))).toBe(row.wantCode);
    });
  }

  it('PKCS#7 parser: every prefix is TRUNCATED, a trailing byte is TRAILING_BYTES, 10,000 fuzzed inputs throw only AttestError', () => {
    const der = Uint8Array.from(Buffer.from(sign('sweep', content(), { withInter: true }), 'base64'));
    expect(codeOfSync(() => parseImdsPkcs7(der))).toBe('NO_ERROR');
    for (let n = 0; n < der.length; n++) expect(codeOfSync(() => parseImdsPkcs7(der.subarray(0, n)))).toBe('TRUNCATED');
    expect(codeOfSync(() => parseImdsPkcs7(Uint8Array.from([...der, 0])))).toBe('TRAILING_BYTES');
    const mutated = fc
      .array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
      .map((edits) => {
        const b = der.slice();
        for (const [i, v] of edits) b[i] = v;
        return b;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }), mutated), (b) => {
        try {
          parseImdsPkcs7(b);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});
