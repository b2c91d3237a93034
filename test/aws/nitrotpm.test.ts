/**
 * Provider `aws` / format `nitrotpm` on real evidence (test/vectors, INDEX §2b, §3a, §3b).
 */
import { describe, expect, it } from 'vitest';
import { encode as cborEncode } from 'cborg';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { createAwsProvider, createAwsProviderFromConfig } from '../../providers/aws/index.js';
import { decodeCbor } from '../../providers/aws/cbor.js';
import { AttestError } from '../../providers/common/errors.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { fromHex, toBase64, toBase64Url, toHex } from '../../providers/common/encoding.js';
import { sha256 } from '../../providers/common/digest.js';
import { concat } from '../../providers/common/bytes.js';
import { fromBase64Url } from '../../providers/common/encoding.js';
import { PinIds } from '../../providers/common/pins.js';
import { NitroChainCache, verifyAttestationDocument, verifyNitroChain } from '../../providers/aws/verify.js';
import { decodeDocumentPayload, parseNitroEvidence, signingMaterial, type NitroTpmDocument } from '../../providers/aws/parse.js';
import { parseCoseSign1 } from '../../providers/aws/cose.js';
import { parseCertificate } from '../../providers/common/x509.js';
import { parsePlatformKey } from '../../providers/aws/keys.js';
import { verifyNitroQuote } from '../../providers/aws/quote.js';
import {
  ENCLAVE_TIME,
  FIXTURE_NONCE_HEX,
  FIXTURE_TIME,
  ctxAt,
  enclaveDocument,
  evidenceFor,
  fixtureDocument,
  fixtureQuote,
  loadNitroFixture,
} from './fixtures.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'ACCEPTED';
}

/** Re-encodes the COSE array with a replaced member (tests only; signature then covers the old bytes). */
function reCose(doc: Uint8Array, f: (arr: unknown[]) => unknown[]): Uint8Array {
  const arr = decodeCbor(doc) as unknown[];
  return cborEncode(f([...arr]) as unknown as never);
}

/** Rewrites the payload map (definite-length re-encoding) keeping the original signature. */
function rePayload(doc: Uint8Array, f: (m: Map<unknown, unknown>) => void): Uint8Array {
  return reCose(doc, (arr) => {
    const m = new Map(decodeCbor(arr[2] as Uint8Array, { allowIndefiniteTopLevelMap: true }) as Map<unknown, unknown>);
    f(m);
    arr[2] = cborEncode(m as unknown as never);
    return arr;
  });
}

describeVectors('aws nitrotpm: real NitroTPM document (vaportpm fixture)', () => {
  const provider = createAwsProvider();

  it('verifies the document alone at 2026-02-03T11:00Z with nonce, SHA-384 PCRs and AK binding', async () => {
    const f = loadNitroFixture();
    const claims = await provider.verify('nitrotpm', evidenceFor(fixtureDocument()), await ctxAt(FIXTURE_TIME));
    expect(claims.provider).toBe('aws');
    expect(claims.format).toBe('nitrotpm');
    expect(claims.platform.tee).toBe('nitro');
    expect(claims.identity).toMatchObject({ cloud: 'aws', instanceId: 'i-01cfb383223e42522', region: 'us-east-1' });
    expect(claims.identity.proven).toEqual(['instanceId', 'region']);
    expect(claims.identity.account).toBeUndefined();
    const want: Record<number, string> = {};
    for (const [k, v] of Object.entries(f.pcrs.sha384)) want[Number(k)] = v;
    expect(claims.tpm?.pcrs.sha384).toEqual(want);
    expect(Object.keys(claims.tpm?.pcrs ?? {})).toEqual(['sha384']);
    expect(claims.tpm?.pcrs.sha384?.[0]).toBe('6e901b16932f6e036747d7a57696e4a2cc864008ebc016826ca1d7bd42ab5ac8286ccf49cde6c0284cbc4b63d978a2ec');
    // AK binding: the certified public_key is the fixture's AK (x ‖ y), exposed as SPKI.
    const point = concat(Uint8Array.of(4), fromHex(f.ak_pubkeys.ecc_p256.x), fromHex(f.ak_pubkeys.ecc_p256.y));
    const ak = await crypto.subtle.importKey('raw', point as Uint8Array<ArrayBuffer>, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', ak));
    expect(claims.release?.platformKeySpki).toBe(toBase64Url(spki));
    expect(claims.tpm?.akSha256).toBe(toHex(await sha256(spki)));
    expect(claims.tpm?.akTrust).toBe('cloud-certified');
    expect(claims.release?.nitroDocument).toBe(toBase64Url(fixtureDocument()));
    expect(claims.release?.userData).toBeUndefined();
    expect(claims.platform.fields?.documentTimestamp).toBe('2026-02-03T10:12:02.437Z');
  });

  it('accepts the document in URL-safe base64 and tagged (COSE tag 18)', async () => {
    const ctx = await ctxAt(FIXTURE_TIME);
    await expect(provider.verify('nitrotpm', { document: toBase64Url(fixtureDocument()) }, ctx)).resolves.toBeTruthy();
    const tagged = concat(Uint8Array.of(0xd2), fixtureDocument());
    await expect(provider.verify('nitrotpm', evidenceFor(tagged), ctx)).resolves.toBeTruthy();
  });

  it('caches the intermediate path and still verifies on a hit', async () => {
    const p = createAwsProvider();
    const ctx = await ctxAt(FIXTURE_TIME);
    await p.verify('nitrotpm', evidenceFor(fixtureDocument()), ctx);
    await p.verify('nitrotpm', evidenceFor(fixtureDocument()), ctx);
    expect(p.chainCache.misses).toBe(1);
    expect(p.chainCache.hits).toBe(1);
    // A hit re-checks time: in 2100 the cached path is expired too.
    expect(await codeOf(p.verify('nitrotpm', evidenceFor(fixtureDocument()), await ctxAt(new Date('2100-01-01T00:00:00Z'))))).toBe('CERT_EXPIRED');
  });

  it('the leaf memo never outlives the leaf: a warm cache still judges its validity at the request time', async () => {
    const p = createAwsProvider();
    const ctx = await ctxAt(FIXTURE_TIME);
    await p.verify('nitrotpm', evidenceFor(fixtureDocument()), ctx);
    expect(p.chainCache.leaves?.size).toBe(1);
    const leaf = parseCertificate(signingMaterial(decodeDocumentPayload(parseCoseSign1(fixtureDocument()).payload)).certificate);
    // Past the 3-hour leaf's notAfter (the instance CA above it is still valid), and before its notBefore.
    const after = new Date(leaf.notAfter.getTime() + 1000);
    const before = new Date(leaf.notBefore.getTime() - 1000);
    expect(await codeOf(p.verify('nitrotpm', evidenceFor(fixtureDocument()), await ctxAt(after, undefined, { maxDocumentAgeSeconds: 'any' })))).toBe('CERT_EXPIRED');
    expect(await codeOf(p.verify('nitrotpm', evidenceFor(fixtureDocument()), await ctxAt(before, undefined, { clockSkewSeconds: 3600 })))).toBe('CERT_NOT_YET_VALID');
    // A memo hit still checks the COSE signature: a payload byte flipped is refused.
    const bad = rePayload(fixtureDocument(), (m) => m.set('module_id', `${String(m.get('module_id'))}x`));
    expect(await codeOf(p.verify('nitrotpm', evidenceFor(bad), ctx))).toBe('COSE_SIGNATURE_INVALID');
    await expect(p.verify('nitrotpm', evidenceFor(fixtureDocument()), ctx)).resolves.toBeTruthy();
    expect(p.chainCache.leaves?.size).toBe(1);
  });

  it('a memoized platform key gives the same result as a fresh parse, for every form', async () => {
    const f = loadNitroFixture();
    const point = concat(Uint8Array.of(4), fromHex(f.ak_pubkeys.ecc_p256.x), fromHex(f.ak_pubkeys.ecc_p256.y));
    const p384 = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const rsa = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' }, true, ['encrypt', 'decrypt'])) as CryptoKeyPair;
    const forms = [
      point,
      new Uint8Array(await crypto.subtle.exportKey('raw', p384.publicKey)),
      new Uint8Array(await crypto.subtle.exportKey('spki', p384.publicKey)),
      new Uint8Array(await crypto.subtle.exportKey('spki', rsa.publicKey)),
    ];
    for (const b of forms) {
      const first = await parsePlatformKey(b.slice());
      const again = await parsePlatformKey(b.slice());
      expect(again).toEqual(first);
    }
    // An invalid key is refused every time (failures are not memoized).
    const offCurve = point.slice();
    offCurve[64]! ^= 1;
    for (let i = 0; i < 2; i++) expect(await codeOf(parsePlatformKey(offCurve))).toBe('PUBLIC_KEY_INVALID');
  });

  type Row = { name: string; run: () => Promise<unknown>; wantCode: string };
  const doc = fixtureDocument();
  /** Runs the chain verifier on the real certificates with a mutated cabundle / leaf. */
  const chain = async (
    mutate: (cab: Uint8Array[], leaf: Uint8Array) => Uint8Array[],
    leafOf?: (cab: Uint8Array[], leaf: Uint8Array) => Uint8Array,
    anchorsOverride?: [],
  ): Promise<unknown> => {
    const sm = signingMaterial(decodeDocumentPayload(parseCoseSign1(doc).payload));
    const cab = [...sm.cabundle];
    const leafDer = leafOf ? leafOf(cab, sm.certificate) : sm.certificate;
    const anchors = anchorsOverride ?? (await ctxAt(FIXTURE_TIME)).trust.anchors([PinIds.AWS_NITRO_ROOT_G1]);
    return verifyNitroChain(parseCertificate(leafDer), mutate(cab, sm.certificate), anchors, FIXTURE_TIME, new NitroChainCache());
  };
  const rows: Row[] = [
    { name: 'wrong nonce length (binding of 4 bytes)', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, fromHex('deadbeef'))), wantCode: 'NONCE_LENGTH_INVALID' },
    { name: 'different 32-byte nonce', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, fromHex('00'.repeat(31) + '01'))), wantCode: 'NONCE_MISMATCH' },
    { name: 'time in 2020', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(new Date('2020-01-01T00:00:00Z'))), wantCode: 'CERT_NOT_YET_VALID' },
    { name: 'time in 2100', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(new Date('2100-01-01T00:00:00Z'))), wantCode: 'CERT_EXPIRED' },
    { name: 'empty document string', run: async () => provider.verify('nitrotpm', { document: '' }, await ctxAt(FIXTURE_TIME)), wantCode: 'EVIDENCE_MALFORMED' },
    { name: 'empty COSE bytes (document "AA==" decodes to one zero byte → not an array)', run: async () => provider.verify('nitrotpm', { document: 'AA==' }, await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_MALFORMED' },
    { name: 'corrupt COSE ff ff ff ff', run: async () => provider.verify('nitrotpm', evidenceFor(Uint8Array.of(0xff, 0xff, 0xff, 0xff)), await ctxAt(FIXTURE_TIME)), wantCode: 'CBOR_MALFORMED' },
    { name: 'truncated COSE', run: async () => provider.verify('nitrotpm', evidenceFor(doc.subarray(0, 100)), await ctxAt(FIXTURE_TIME)), wantCode: 'TRUNCATED' },
    { name: 'trailing byte after COSE', run: async () => provider.verify('nitrotpm', evidenceFor(concat(doc, Uint8Array.of(0))), await ctxAt(FIXTURE_TIME)), wantCode: 'TRAILING_BYTES' },
    { name: 'document over the size cap', run: async () => provider.verify('nitrotpm', { document: 'A'.repeat(100_000) }, await ctxAt(FIXTURE_TIME)), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'standard and URL-safe alphabets mixed', run: async () => provider.verify('nitrotpm', { document: toBase64(doc).replace(/\//, '_') }, await ctxAt(FIXTURE_TIME)), wantCode: 'BAD_ENCODING' },
    { name: 'bad base64', run: async () => provider.verify('nitrotpm', { document: 'ab$d' }, await ctxAt(FIXTURE_TIME)), wantCode: 'BAD_ENCODING' },
    { name: 'unknown evidence member', run: async () => provider.verify('nitrotpm', { ...evidenceFor(doc), extra: 1 }, await ctxAt(FIXTURE_TIME)), wantCode: 'EVIDENCE_MALFORMED' },
    { name: 'evidence not an object', run: async () => provider.verify('nitrotpm', 'x', await ctxAt(FIXTURE_TIME)), wantCode: 'EVIDENCE_MALFORMED' },
    { name: 'other format', run: async () => provider.verify('gotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME)), wantCode: 'FORMAT_UNSUPPORTED' },
    { name: 'no AWS root in the trust store', run: async () => provider.verify('nitrotpm', evidenceFor(doc), { ...(await ctxAt(FIXTURE_TIME)), trust: createTrustStore([]) }), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'document older than maxDocumentAgeSeconds', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, undefined, { maxDocumentAgeSeconds: 60 })), wantCode: 'DOCUMENT_TOO_OLD' },
    { name: 'clock far behind the document (future timestamp)', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(new Date('2026-02-03T10:12:01Z'), undefined, { clockSkewSeconds: 0 })), wantCode: 'DOCUMENT_TIMESTAMP_INVALID' },
    { name: 'requireQuote without a quote', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, undefined, { requireQuote: true })), wantCode: 'EVIDENCE_INCOMPLETE' },
    { name: 'invalid options', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, undefined, { maxDocumentAgeSeconds: -1 })), wantCode: 'OPTIONS_INVALID' },
    { name: 'unknown option', run: async () => provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, undefined, { skipChain: true })), wantCode: 'OPTIONS_INVALID' },
    // COSE envelope
    { name: 'other tag than 18', run: async () => provider.verify('nitrotpm', evidenceFor(concat(Uint8Array.of(0xd1), doc)), await ctxAt(FIXTURE_TIME)), wantCode: 'CBOR_MALFORMED' },
    { name: 'protected header says ES256', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => ((a[0] = Uint8Array.of(0xa1, 0x01, 0x26)), a))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_ALG_UNSUPPORTED' },
    { name: 'protected header empty', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => ((a[0] = new Uint8Array(0)), a))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_ALG_UNSUPPORTED' },
    { name: 'protected header with an extra parameter', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => ((a[0] = Uint8Array.of(0xa2, 0x01, 0x38, 0x22, 0x04, 0x40)), a))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_HEADER_INVALID' },
    { name: 'unprotected header not empty', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => ((a[1] = new Map([[1, -35]])), a))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_HEADER_INVALID' },
    { name: 'detached payload', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => ((a[2] = null), a))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_MALFORMED' },
    { name: 'signature of 95 bytes', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => ((a[3] = (a[3] as Uint8Array).subarray(0, 95)), a))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_MALFORMED' },
    { name: 'array of 5', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => [...a, 0])), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_MALFORMED' },
    { name: 'signature bit flipped', run: async () => provider.verify('nitrotpm', evidenceFor(reCose(doc, (a) => { const s = (a[3] as Uint8Array).slice(); s[10]! ^= 1; a[3] = s; return a; })), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_SIGNATURE_INVALID' },
    // Payload re-encoded (signature then fails, or chain checks fail first)
    { name: 'payload re-encoded as a definite map (same content)', run: async () => provider.verify('nitrotpm', evidenceFor(rePayload(doc, () => undefined)), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_SIGNATURE_INVALID' },
    { name: 'changed PCR in the payload', run: async () => provider.verify('nitrotpm', evidenceFor(rePayload(doc, (m) => { const p = new Map(m.get('nitrotpm_pcrs') as Map<number, Uint8Array>); p.set(0, new Uint8Array(48)); m.set('nitrotpm_pcrs', p); })), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_SIGNATURE_INVALID' },
    { name: 'changed nonce in the payload', run: async () => provider.verify('nitrotpm', evidenceFor(rePayload(doc, (m) => m.set('nonce', new Uint8Array(32)))), await ctxAt(FIXTURE_TIME, new Uint8Array(32))), wantCode: 'COSE_SIGNATURE_INVALID' },
    { name: 'cabundle in leaf-first order (payload altered: the signature fails first)', run: async () => provider.verify('nitrotpm', evidenceFor(rePayload(doc, (m) => m.set('cabundle', [...(m.get('cabundle') as Uint8Array[])].reverse()))), await ctxAt(FIXTURE_TIME)), wantCode: 'COSE_SIGNATURE_INVALID' },
    // Chain structure on the real certificates, at the chain verifier.
    { name: 'chain: cabundle in leaf-first order', run: () => chain((c) => [...c].reverse()), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'chain: cabundle without the root copy', run: () => chain((c) => c.slice(1)), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'chain: cabundle missing the zonal CA', run: () => chain((c) => [c[0]!, c[1]!, c[3]!]), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'chain: cabundle with the leaf added', run: () => chain((c, leaf) => [...c, leaf]), wantCode: 'CABUNDLE_INVALID' },
    { name: 'chain: cabundle with the instance CA twice', run: () => chain((c) => [...c, c[3]!]), wantCode: 'CABUNDLE_INVALID' },
    { name: 'chain: root copy replaced by the regional CA', run: () => chain((c) => [c[1]!, c[1]!, c[2]!, c[3]!]), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'chain: leaf replaced by the instance CA', run: () => chain((c) => c, (c) => c[3]!), wantCode: 'CABUNDLE_INVALID' },
    { name: 'chain: cabundle entry not DER', run: () => chain((c) => [...c.slice(0, 3), Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00)]), wantCode: 'CERT_MALFORMED' },
    { name: 'chain: no anchors', run: () => chain((c) => c, undefined, []), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'certificate not DER', run: async () => provider.verify('nitrotpm', evidenceFor(rePayload(doc, (m) => m.set('certificate', Uint8Array.of(1, 2, 3)))), await ctxAt(FIXTURE_TIME)), wantCode: 'CERT_MALFORMED' },
    { name: 'certificate missing', run: async () => provider.verify('nitrotpm', evidenceFor(rePayload(doc, (m) => m.delete('certificate'))), await ctxAt(FIXTURE_TIME)), wantCode: 'DOCUMENT_MALFORMED' },
    // Event logs are replayed against the document's SHA-384 PCRs, never ignored.
    { name: 'event_log that is not an event log', run: async () => provider.verify('nitrotpm', evidenceFor(doc, { event_log: 'AAAA' }), await ctxAt(FIXTURE_TIME)), wantCode: 'TRUNCATED' },
    { name: 'event_log of another machine (real GCE log, SHA-384 bank)', run: async () => provider.verify('nitrotpm', evidenceFor(doc, { event_log: toBase64Url(readVector('go-tpm-tools/eventlogs/ubuntu-2404-amd-sevsnp.bin')) }), await ctxAt(FIXTURE_TIME)), wantCode: 'EVENTLOG_REPLAY_MISMATCH' },
    { name: 'event_log of another machine with the quote', run: async () => provider.verify('nitrotpm', evidenceFor(doc, { quote: fixtureQuote(), event_log: toBase64Url(readVector('go-tpm-tools/eventlogs/ubuntu-2404-amd-sevsnp.bin')) }), await ctxAt(FIXTURE_TIME)), wantCode: 'EVENTLOG_REPLAY_MISMATCH' },
    { name: 'SHA-1-only legacy event log', run: async () => provider.verify('nitrotpm', evidenceFor(doc, { event_log: toBase64Url(readVector('go-tpm-tools/eventlogs/debian-10.bin')) }), await ctxAt(FIXTURE_TIME)), wantCode: 'EVENTLOG_LEGACY_FORMAT' },
  ];
  it.each(rows)('rejects: $name → $wantCode', async ({ run, wantCode }) => {
    expect(await codeOf(run())).toBe(wantCode);
  });

  it('the configured defaults hold for every call without options, before and after a call that overrides them', async () => {
    // The defaults are resolved once; per-call options replace them for that call only.
    const p = createAwsProvider({ requireQuote: true });
    expect(await codeOf(p.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME)))).toBe('EVIDENCE_INCOMPLETE');
    expect((await p.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME, undefined, { requireQuote: false }))).provider).toBe('aws');
    expect(await codeOf(p.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME)))).toBe('EVIDENCE_INCOMPLETE');
  });
});

/** DER ECDSA-Sig-Value → TPMT_SIGNATURE (TPM_ALG_ECDSA 0x0018, TPM_ALG_SHA256 0x000B, TPM2B r, TPM2B s). */
function derToTpmtSignature(der: Uint8Array): Uint8Array {
  let at = 2;
  const int = (): Uint8Array => {
    const len = der[at + 1] as number;
    let v = der.subarray(at + 2, at + 2 + len);
    at += 2 + len;
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    const out = new Uint8Array(32);
    out.set(v, 32 - v.length);
    return out;
  };
  const r = int();
  const s = int();
  return concat(Uint8Array.of(0x00, 0x18, 0x00, 0x0b, 0x00, 0x20), r, Uint8Array.of(0x00, 0x20), s);
}

describeVectors('aws nitrotpm: document with its TPM quote (vaportpm fixture)', () => {
  const provider = createAwsProvider();
  const doc = fixtureDocument();

  it('verifies the document with its quote: AK certified by the document, same nonce, same SHA-384 PCRs', async () => {
    const claims = await provider.verify('nitrotpm', evidenceFor(doc, { quote: fixtureQuote() }), await ctxAt(FIXTURE_TIME));
    expect(claims.platform.fields?.tpmQuoteVerified).toBe(true);
    const alone = await provider.verify('nitrotpm', evidenceFor(doc), await ctxAt(FIXTURE_TIME));
    expect(alone.platform.fields?.tpmQuoteVerified).toBe(false);
    expect(claims.tpm).toEqual(alone.tpm);
    expect(claims.tpm?.akTrust).toBe('cloud-certified');
  });

  it('accepts the quote signature as a TPMT_SIGNATURE too', async () => {
    const f = loadNitroFixture();
    const quote = { ...fixtureQuote(f), signature: toBase64Url(derToTpmtSignature(fromHex(f.attestation.tpm.ecc_p256.signature))) };
    await expect(provider.verify('nitrotpm', evidenceFor(doc, { quote }), await ctxAt(FIXTURE_TIME))).resolves.toBeTruthy();
  });

  const withQuote = async (mutate: (qq: ReturnType<typeof fixtureQuote>) => void, binding?: Uint8Array): Promise<unknown> => {
    const quote = fixtureQuote();
    mutate(quote);
    return provider.verify('nitrotpm', evidenceFor(doc, { quote }), await ctxAt(FIXTURE_TIME, binding));
  };
  const flip = (b64: string, at: (n: number) => number): string => {
    const b = fromBase64Url(b64);
    const i = at(b.length);
    b[i] = (b[i] as number) ^ 0xff;
    return toBase64Url(b);
  };
  /** Unit-level: the quote verifier given a document it did not come with. */
  const unit = async (docMut: (d: NitroTpmDocument) => NitroTpmDocument, key?: Uint8Array | null, binding = fromHex(FIXTURE_NONCE_HEX)): Promise<unknown> => {
    const v = await verifyAttestationDocument(doc, { anchors: (await ctxAt(FIXTURE_TIME)).trust.anchors([PinIds.AWS_NITRO_ROOT_G1]), at: FIXTURE_TIME });
    const d = docMut(v.document);
    const k = key === null ? undefined : await parsePlatformKey(key ?? (d.publicKey as Uint8Array));
    return verifyNitroQuote(d, k, parseNitroEvidence(evidenceFor(doc, { quote: fixtureQuote() })).quote!, binding);
  };
  const otherAk = async (): Promise<Uint8Array> => {
    const kp = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    return new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey));
  };

  type Row = { name: string; run: () => Promise<unknown>; wantCode: string };
  const rows: Row[] = [
    { name: 'wrong AK (a different key than the document certifies)', run: async () => unit((d) => d, await otherAk()), wantCode: 'QUOTE_SIGNATURE_INVALID' },
    { name: 'different nonce (the document check fires first)', run: () => withQuote(() => undefined, fromHex('00'.repeat(31) + '01')), wantCode: 'NONCE_MISMATCH' },
    { name: 'different nonce at the quote (extraData ≠ binding)', run: () => unit((d) => d, undefined, fromHex('00'.repeat(31) + '01')), wantCode: 'NONCE_MISMATCH' },
    { name: 'wrong nonce length', run: () => withQuote(() => undefined, fromHex('deadbeef')), wantCode: 'NONCE_LENGTH_INVALID' },
    { name: 'changed PCR value', run: () => withQuote((qq) => (qq.pcrs.sha384!['0'] = 'de'.repeat(48))), wantCode: 'PCR_DIGEST_MISMATCH' },
    { name: 'changed quote signature', run: () => withQuote((qq) => (qq.signature = flip(qq.signature, () => 10))), wantCode: 'QUOTE_SIGNATURE_INVALID' },
    { name: 'changed attest bytes', run: () => withQuote((qq) => (qq.message = flip(qq.message, (n) => n - 1))), wantCode: 'QUOTE_SIGNATURE_INVALID' },
    { name: 'SHA-256 bank instead of SHA-384', run: () => withQuote((qq) => (qq.pcrs = { sha256: { '0': '00'.repeat(32) } })), wantCode: 'QUOTE_PCR_BANK_INVALID' },
    { name: 'mixed banks', run: () => withQuote((qq) => (qq.pcrs = { ...qq.pcrs, sha256: { '0': '00'.repeat(32) } })), wantCode: 'QUOTE_PCR_BANK_INVALID' },
    { name: 'PCR 23 missing from the values', run: () => withQuote((qq) => delete qq.pcrs.sha384!['23']), wantCode: 'PCR_SELECTION_MISMATCH' },
    { name: 'PCR index out of range', run: () => withQuote((qq) => (qq.pcrs.sha384!['24'] = '00'.repeat(48))), wantCode: 'EVIDENCE_MALFORMED' },
    { name: 'quote message not base64url', run: () => withQuote((qq) => (qq.message = qq.message + '=')), wantCode: 'BAD_ENCODING' },
    { name: 'document without public_key', run: () => unit((d) => ({ ...d, publicKey: undefined }), null), wantCode: 'QUOTE_AK_UNCERTIFIED' },
    { name: 'document PCRs differ from the quoted ones', run: () => unit((d) => ({ ...d, pcrs: new Map([...d.pcrs].map(([i, v]) => [i, i === 7 ? new Uint8Array(48) : v])) })), wantCode: 'QUOTE_PCR_MISMATCH' },
    { name: 'document reports fewer PCRs than quoted', run: () => unit((d) => ({ ...d, pcrs: new Map([...d.pcrs].filter(([i]) => i !== 5)) })), wantCode: 'QUOTE_PCR_MISMATCH' },
  ];
  it.each(rows)('rejects: $name → $wantCode', async ({ run, wantCode }) => {
    expect(await codeOf(run())).toBe(wantCode);
  });
});

describeVectors('aws nitrotpm: real Nitro Enclave document (nitrite)', () => {
  it('rejects the authentic enclave document as the wrong document type', async () => {
    const p = createAwsProvider();
    const doc = enclaveDocument();
    const code = await codeOf(p.verify('nitrotpm', evidenceFor(doc), await ctxAt(ENCLAVE_TIME, new Uint8Array(32).fill(1))));
    expect(code).toBe('DOCUMENT_TYPE_MISMATCH');
    // Its chain and signature are genuine: at the fixture time only the dates fail.
    expect(await codeOf(p.verify('nitrotpm', { document: toBase64(doc) }, await ctxAt(FIXTURE_TIME)))).toBe('CERT_EXPIRED');
  });
  it('keeps the nonce constant', () => {
    expect(FIXTURE_NONCE_HEX).toHaveLength(64);
  });
});

describe('createAwsProviderFromConfig', () => {
  it('builds from a configuration block and refuses unknown keys', () => {
    expect(createAwsProviderFromConfig({ requireQuote: true, chainCacheSize: 10 }).formats).toEqual(['nitrotpm']);
    expect(createAwsProviderFromConfig(undefined).name).toBe('aws');
    expect(() => createAwsProviderFromConfig({ skipChain: true })).toThrow(AttestError);
    expect(() => createAwsProviderFromConfig({ maxDocumentAgeSeconds: 'forever' })).toThrow(AttestError);
  });
});
