/**
 * Every check made after the COSE signature, shown on documents *signed* by a throw-away
 * Nitro-shaped PKI (test/aws/testpki.ts) whose root the test trust store pins under the AWS id:
 * each row forges one field and must be rejected with its code. The first rows are positive
 * controls, so a rejection below is the forged field and nothing else.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { encode as cborEncode } from 'cborg';
import { createAwsProvider } from '../../providers/aws/index.js';
import { AttestError } from '../../providers/common/errors.js';
import { certDer, x509 } from '../../providers/common/x509.js';
import { fromHex, toBase64, toBase64Url } from '../../providers/common/encoding.js';
import { fixtureQuote, loadNitroFixture } from './fixtures.js';
import { concat } from '../../providers/common/bytes.js';
import type { ProviderClaims, TrustStore, VerifyContext } from '../../providers/common/types.js';
import { EV } from '../../providers/tpm/eventlog.js';
import { ALG, buildLog, measured, replayNode } from '../tpm-eventlog/logbuilder.js';

/** EFI_GLOBAL_VARIABLE GUID 8be4df61-93ca-11d2-aa0d-00e098032b8c in its mixed-endian byte form. */
const EFI_GLOBAL = Uint8Array.from(Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex'));

/** UEFI_VARIABLE_DATA (TCG PC Client PFP §10.4.4): GUID, name length, data length, UTF-16LE name, data. */
function uefiVariable(guid: Uint8Array, name: string, data: Uint8Array): Uint8Array {
  const n = Buffer.from(name, 'utf16le');
  const hdr = Buffer.alloc(16);
  hdr.writeBigUInt64LE(BigInt(name.length), 0);
  hdr.writeBigUInt64LE(BigInt(data.length), 8);
  return Uint8Array.from(Buffer.concat([guid, hdr, n, data]));
}
import { INSTANCE, MODULE, NOW, REGION, baseFields, indefinitePayload, keyPair, makePki, signDocument, withRogueLeaf, type TestPki } from './testpki.js';

const NONCE = new Uint8Array(32).fill(7);

function ctx(trust: TrustStore, over: Partial<VerifyContext> = {}): VerifyContext {
  return { binding: NONCE, now: NOW, fetch: (() => Promise.reject(new Error('offline'))) as unknown as typeof fetch, trust, options: {}, ...over };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'ACCEPTED';
}

describe('aws nitrotpm: forged fields in signed documents', () => {
  let pki: TestPki;
  const provider = createAwsProvider();
  const run = async (doc: Uint8Array, p: TestPki = pki, over: Partial<VerifyContext> = {}): Promise<ProviderClaims> =>
    provider.verify('nitrotpm', { document: toBase64(doc) }, ctx(p.trust, over));
  const signed = async (over: Record<string, unknown>, p: TestPki = pki): Promise<Uint8Array> =>
    signDocument(indefinitePayload(baseFields(p, over)), p.leafKeys, p.leafCurve);

  beforeAll(async () => {
    pki = await makePki();
  });

  it('positive control: a well-formed signed document verifies (indefinite-length payload)', async () => {
    const c = await run(await signed({}));
    expect(c.identity).toMatchObject({ instanceId: INSTANCE, region: REGION, cloud: 'aws' });
    expect(c.platform.fields?.moduleId).toBe(MODULE);
    expect(c.tpm?.akTrust).toBe('hardware-report');
    expect(c.tpm?.pcrs.sha384?.[5]).toBe('05'.repeat(48));
    expect(c.release?.platformKeySpki).toBeUndefined();
  });

  it('positive control: definite-length payload, user_data and an RSA public_key (KMS Recipient) are exposed', async () => {
    const rsa = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['encrypt', 'decrypt'])) as CryptoKeyPair;
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', rsa.publicKey));
    const fields = baseFields(pki, { public_key: spki, user_data: Uint8Array.of(1, 2, 3) });
    const c = await run(await signDocument(cborEncode(fields as never), pki.leafKeys));
    expect(c.release?.platformKeySpki).toBe(toBase64Url(spki));
    expect(c.release?.userData).toBe(toBase64Url(Uint8Array.of(1, 2, 3)));
    expect(c.tpm?.akTrust).toBe('cloud-certified');
  });

  it('positive control: a P-384 SEC1 point public_key', async () => {
    const k = await keyPair('P-384');
    const point = new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey));
    const c = await run(await signed({ public_key: point }));
    expect(c.release?.platformKeySpki).toBeDefined();
  });

  type Row = { name: string; make: () => Promise<Uint8Array>; p?: () => Promise<TestPki>; over?: Partial<VerifyContext>; wantCode: string };
  const rows: Row[] = [
    { name: 'digest SHA256', make: () => signed({ digest: 'SHA256' }), wantCode: 'DIGEST_UNSUPPORTED' },
    { name: 'digest not text', make: () => signed({ digest: 384 }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'PCR value of 32 bytes', make: () => signed({ nitrotpm_pcrs: new Map([[0, new Uint8Array(32)]]) }), wantCode: 'PCR_INVALID' },
    { name: 'PCR index 24', make: () => signed({ nitrotpm_pcrs: new Map([[24, new Uint8Array(48)]]) }), wantCode: 'PCR_INVALID' },
    { name: 'PCR index as text', make: () => signed({ nitrotpm_pcrs: new Map([['0', new Uint8Array(48)]]) }), wantCode: 'PCR_INVALID' },
    { name: 'PCR map empty', make: () => signed({ nitrotpm_pcrs: new Map() }), wantCode: 'PCR_INVALID' },
    { name: 'nitrotpm_pcrs missing', make: () => signed({ nitrotpm_pcrs: undefined }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'Enclave-style pcrs key', make: () => signed({ pcrs: new Map([[0, new Uint8Array(48)]]) }), wantCode: 'DOCUMENT_TYPE_MISMATCH' },
    { name: 'Enclave module id', make: () => signed({ module_id: `${INSTANCE}-enc0123456789abcdef` }), wantCode: 'DOCUMENT_TYPE_MISMATCH' },
    { name: 'module id not NitroTPM', make: () => signed({ module_id: 'garbage' }), wantCode: 'MODULE_ID_INVALID' },
    { name: 'module id missing', make: () => signed({ module_id: undefined }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'unknown key', make: () => signed({ extra: 1 }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'timestamp missing', make: () => signed({ timestamp: undefined }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'timestamp negative', make: () => signed({ timestamp: -5 }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'timestamp before the leaf was issued', make: () => signed({ timestamp: NOW.getTime() - 2 * 3600_000 }), wantCode: 'DOCUMENT_TIMESTAMP_INVALID' },
    { name: 'timestamp in the future', make: () => signed({ timestamp: NOW.getTime() + 3600_000 }), wantCode: 'DOCUMENT_TIMESTAMP_INVALID' },
    { name: 'nonce missing', make: () => signed({ nonce: undefined }), wantCode: 'NONCE_MISSING' },
    { name: 'nonce null', make: () => signed({ nonce: null }), wantCode: 'NONCE_MISSING' },
    { name: 'nonce of 16 bytes', make: () => signed({ nonce: new Uint8Array(16) }), wantCode: 'NONCE_LENGTH_INVALID' },
    { name: 'nonce different', make: () => signed({ nonce: new Uint8Array(32).fill(8) }), wantCode: 'NONCE_MISMATCH' },
    { name: 'nonce as text', make: () => signed({ nonce: 'x'.repeat(32) }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'public_key point off the curve', make: () => signed({ public_key: concat(Uint8Array.of(4), new Uint8Array(64).fill(1)) }), wantCode: 'PUBLIC_KEY_INVALID' },
    { name: 'public_key garbage', make: () => signed({ public_key: Uint8Array.of(1, 2, 3) }), wantCode: 'PUBLIC_KEY_INVALID' },
    { name: 'user_data over 1024 bytes', make: () => signed({ user_data: new Uint8Array(1025) }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'cabundle empty', make: () => signed({ cabundle: [] }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'cabundle of 9 certificates', make: () => signed({ cabundle: new Array(9).fill(pki.cabundle[0]) }), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'cabundle entry not bytes', make: () => signed({ cabundle: [1] }), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'nested indefinite map', make: async () => signDocument(concat(indefinitePayload(baseFields(pki)).subarray(0, -1), Uint8Array.of(0x65, 0x65, 0x78, 0x74, 0x72, 0x61, 0xbf, 0xff, 0xff)), pki.leafKeys), wantCode: 'CBOR_MALFORMED' },
    { name: 'payload not a map', make: () => signDocument(cborEncode([1]), pki.leafKeys), wantCode: 'DOCUMENT_MALFORMED' },
    { name: 'signed with another key than the leaf certificate', make: async () => signDocument(indefinitePayload(baseFields(pki)), await keyPair()), wantCode: 'COSE_SIGNATURE_INVALID' },
    { name: 'protected header ES256 (signed as such)', make: () => signDocument(indefinitePayload(baseFields(pki)), pki.leafKeys, 'P-384', Uint8Array.of(0xa1, 0x01, 0x26)), wantCode: 'COSE_ALG_UNSUPPORTED' },
    { name: 'binding in the request of 16 bytes', make: () => signed({}), over: { binding: new Uint8Array(16) }, wantCode: 'NONCE_LENGTH_INVALID' },
    // Identity: the names in the chain must agree with module_id.
    { name: 'leaf CN names another module', make: async () => { const p = await makePki({ leafCn: `i-0aaaaaaaaaaaaaaaa-tpm0123456789abcdef.${REGION}.aws` }); return signed({}, p); }, p: () => makePki(), wantCode: 'IDENTITY_MISMATCH' },
    { name: 'leaf CN without a region', make: async () => signed({}, (pkiB = await makePki({ leafCn: `${MODULE}.aws` }))), p: async () => pkiB, wantCode: 'IDENTITY_MISMATCH' },
    { name: 'instance CA of another instance', make: async () => signed({}, (pkiB = await makePki({ instanceCn: `i-0aaaaaaaaaaaaaaaa.${REGION}.aws.nitro-enclaves` }))), p: async () => pkiB, wantCode: 'IDENTITY_MISMATCH' },
    { name: 'zonal CA in another region', make: async () => signed({}, (pkiB = await makePki({ zonalCn: 'ef01.zonal.us-east-1.aws.nitro-enclaves' }))), p: async () => pkiB, wantCode: 'IDENTITY_MISMATCH' },
    // Chain algorithms and CA flags.
    { name: 'P-256 leaf', make: async () => signed({}, (pkiB = await makePki({ leafCurve: 'P-256' }))), p: async () => pkiB, wantCode: 'CERT_ALG_UNSUPPORTED' },
    { name: 'P-256 zonal CA', make: async () => signed({}, (pkiB = await makePki({ zonalCurve: 'P-256' }))), p: async () => pkiB, wantCode: 'CERT_ALG_UNSUPPORTED' },
    { name: 'leaf key usage without digitalSignature', make: async () => signed({}, (pkiB = await makePki({ leafUsage: x509.KeyUsageFlags.keyEncipherment }))), p: async () => pkiB, wantCode: 'CERT_USAGE_INVALID' },
    { name: 'zonal certificate is not a CA', make: async () => signed({}, (pkiB = await makePki({ zonalIsCa: false }))), p: async () => pkiB, wantCode: 'CHAIN_INVALID' },
    { name: 'leaf not yet valid', make: async () => signed({ timestamp: NOW.getTime() + 1000 }, (pkiB = await makePki({ leafNotBefore: new Date(NOW.getTime() + 1000) }))), p: async () => pkiB, wantCode: 'CERT_NOT_YET_VALID' },
  ];
  let pkiB: TestPki;

  it.each(rows)('rejects: $name → $wantCode', async ({ make, p, over, wantCode }) => {
    const doc = await make();
    const which = p ? await p() : pki;
    // Rows that build their own PKI sign with it and verify with its (shared) root.
    expect(await codeOf(run(doc, which, over))).toBe(wantCode);
  });

  it('replays an event log against the document SHA-384 PCRs: boot claims from verified events only', async () => {
    const apps = [Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5, 6)];
    const sbData = uefiVariable(EFI_GLOBAL, 'SecureBoot', Uint8Array.of(1));
    const events = [
      measured(7, EV.EFI_VARIABLE_DRIVER_CONFIG, sbData, [ALG.sha384]),
      measured(7, EV.SEPARATOR, new Uint8Array(4), [ALG.sha384]),
      ...apps.map((a) => measured(4, EV.EFI_BOOT_SERVICES_APPLICATION, a, [ALG.sha384])),
    ];
    const log = buildLog([ALG.sha384], events);
    const replayed = replayNode(ALG.sha384, events);
    const pcrs = new Map<number, Uint8Array>();
    for (let i = 0; i < 24; i++) pcrs.set(i, replayed[i] ? Uint8Array.from(Buffer.from(replayed[i]!, 'hex')) : new Uint8Array(48));
    const doc = await signed({ nitrotpm_pcrs: pcrs });
    const c = await provider.verify('nitrotpm', { document: toBase64(doc), event_log: toBase64Url(log) }, ctx(pki.trust));
    expect(c.boot?.eventLogReplayed).toEqual(['sha384']);
    expect(c.boot?.secureBoot).toBe(true);
    expect(c.boot?.bootApps).toEqual(events.slice(2).map((e) => Buffer.from(e.digests[0]![1]).toString('hex')));
    // One changed event digest: the replay no longer reproduces the signed PCR 4.
    const forged = buildLog([ALG.sha384], [...events.slice(0, 3), measured(4, EV.EFI_BOOT_SERVICES_APPLICATION, Uint8Array.of(9), [ALG.sha384])]);
    expect(await codeOf(provider.verify('nitrotpm', { document: toBase64(doc), event_log: toBase64Url(forged) }, ctx(pki.trust)))).toBe('EVENTLOG_REPLAY_MISMATCH');
    // A SHA-256-only log shares no bank with NitroTPM's SHA-384 PCRs.
    const sha256Log = buildLog([ALG.sha256], [measured(4, EV.EFI_BOOT_SERVICES_APPLICATION, apps[0]!, [ALG.sha256])]);
    expect(await codeOf(provider.verify('nitrotpm', { document: toBase64(doc), event_log: toBase64Url(sha256Log) }, ctx(pki.trust)))).toBe('EVENTLOG_NO_COMMON_BANK');
  });

  it('end to end: a signed document certifying another AK than the one that signed the real quote', async () => {
    const f = loadNitroFixture();
    const nonce = fromHex(f.nonce);
    const other = await keyPair('P-256');
    const otherPoint = new Uint8Array(await crypto.subtle.exportKey('raw', other.publicKey));
    const pcrs = new Map(Object.entries(f.pcrs.sha384).map(([i, h]) => [Number(i), fromHex(h)]));
    const doc = await signDocument(indefinitePayload(baseFields(pki, { public_key: otherPoint, nitrotpm_pcrs: pcrs }, nonce)), pki.leafKeys);
    const c = ctx(pki.trust, { binding: nonce });
    expect(await codeOf(provider.verify('nitrotpm', { document: toBase64(doc), quote: fixtureQuote(f) }, c))).toBe('QUOTE_SIGNATURE_INVALID');
    // Control: the same signed document certifying the real AK accepts the real quote.
    const ak = fromHex('04' + f.ak_pubkeys.ecc_p256.x + f.ak_pubkeys.ecc_p256.y);
    const good = await signDocument(indefinitePayload(baseFields(pki, { public_key: ak, nitrotpm_pcrs: pcrs }, nonce)), pki.leafKeys);
    expect((await provider.verify('nitrotpm', { document: toBase64(good), quote: fixtureQuote(f) }, c)).platform.fields?.tpmQuoteVerified).toBe(true);
  });

  it('on a chain-cache hit, a leaf not signed by the cached issuer is still rejected', async () => {
    const p = createAwsProvider();
    await p.verify('nitrotpm', { document: toBase64(await signed({})) }, ctx(pki.trust));
    expect(p.chainCache.size).toBe(1);
    const rogue = await withRogueLeaf(pki);
    const code = await codeOf(p.verify('nitrotpm', { document: toBase64(await signed({}, rogue)) }, ctx(pki.trust)));
    expect(code).toBe('CERT_SIGNATURE_INVALID');
    const renamed = await withRogueLeaf(pki, 'C=US, O=Test, CN=someone-else');
    expect(await codeOf(p.verify('nitrotpm', { document: toBase64(await signed({}, renamed)) }, ctx(pki.trust)))).toBe('CHAIN_UNTRUSTED');
    expect(p.chainCache.hits).toBe(2);
    // Without the cache the same rogue leaf fails path validation the same way.
    const fresh = createAwsProvider({ chainCacheSize: 0 });
    expect(await codeOf(fresh.verify('nitrotpm', { document: toBase64(await signed({}, rogue)) }, ctx(pki.trust)))).toBe('CERT_SIGNATURE_INVALID');
  });

  it('rejects a document from a PKI whose root is not the pinned one', async () => {
    const doc = await signed({});
    const other = await makePki();
    // Same shape, but the trust store holds a different root than the one that issued it.
    const { createTrustStore } = await import('../../providers/common/trust.js');
    const { fingerprint, x509 } = await import('../../providers/common/x509.js');
    const keys = await keyPair();
    const stranger = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '99', name: 'CN=stranger', keys, notBefore: new Date('2020-01-01'), notAfter: new Date('2040-01-01'), signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' }, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
    const trust = createTrustStore([{ id: 'aws-nitro-root-g1', sha256: await fingerprint(stranger), source: 'test', cert: stranger }]);
    expect(await codeOf(run(doc, { ...other, trust }))).toBe('CHAIN_UNTRUSTED');
    expect(certDer(other.leaf).length).toBeGreaterThan(0);
  });
});
