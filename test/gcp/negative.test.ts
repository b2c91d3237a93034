/**
 * Negative table for the gcp provider: go-tpm-tools' upstream negative cases (server/
 * verify_test.go) and vaportpm's tamper tests, plus one row per check this verifier adds. Each row
 * mutates a real attestation and names the stable code it must fail with. Rows over the gotpm
 * vectors run through both wire forms (`gotpm` protobuf and `gotpm-json`).
 */
import { describe, expect, it } from 'vitest';
import { concat, u16be, u32be } from '../../providers/common/bytes.js';
import { fromHex } from '../../providers/common/encoding.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { PinIds } from '../../providers/common/pins.js';
import { digest } from '../../providers/common/digest.js';
import type { TrustStore } from '../../providers/common/types.js';
import { parsePemCertificates, certDer } from '../../providers/common/x509.js';
import { createGcpProvider } from '../../providers/gcp/index.js';
import { parseAttestationProto, type GotpmAttestation, type GotpmQuote } from '../../providers/gcp/parse.js';
import { parseVaportpmGcpEvidence } from '../../providers/gcp/vaportpm.js';
import { computeName, parseTpmtPublic } from '../../providers/tpm/structures.js';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { encodeAttestation, toGotpm, toGotpmJson, topLevelFields } from './pb-encode.js';
import {
  codeOf,
  ctx,
  googleTrust,
  GOTPM_AT,
  LEGACY_INTERMEDIATE,
  PB_NONCE_9009,
  PB_NO_NONCE,
  vapor,
  VAPOR_AMD,
  VAPOR_AMD_AT,
  VAPOR_TDX,
  VAPOR_TDX_AT,
  type VaporFixture,
} from './helpers.js';

type Mut = (a: GotpmAttestation) => GotpmAttestation | Promise<GotpmAttestation>;
interface Row {
  name: string;
  mutate: Mut;
  wantCode: string;
  at?: Date;
  binding?: Uint8Array;
  trust?: () => Promise<TrustStore>;
  options?: Record<string, unknown>;
  /** Do not configure the legacy intermediate. */
  noIntermediates?: boolean;
  /** Where the gotpm-json schema refuses the mutation before verification. */
  wantJson?: string;
}

const flip = (b: Uint8Array, i: number, mask = 1): Uint8Array => {
  const c = b.slice();
  c[i < 0 ? c.length + i : i]! ^= mask;
  return c;
};
const withQuote = (a: GotpmAttestation, i: number, f: (q: GotpmQuote) => GotpmQuote): GotpmAttestation => ({
  ...a,
  quotes: a.quotes.map((q, j) => (j === i ? f(q) : q)),
});
const withPcr = (q: GotpmQuote, idx: number, v: Uint8Array | undefined): GotpmQuote => {
  const m = new Map(q.pcrs.values);
  if (v === undefined) m.delete(idx);
  else m.set(idx, v);
  return { ...q, pcrs: { ...q.pcrs, values: m } };
};

/**
 * Offset of the first TCG_PCR_EVENT2's SHA-256 digest: after the TCG_PCR_EVENT header
 * (32 bytes + its event size at offset 28), pcrIndex, eventType, count, then {SHA-1, 20 bytes},
 * then the SHA-256 algorithm id (this log's bank order is sha1, sha256, sha384).
 */
function firstSha256Digest(log: Uint8Array): number {
  const header = 32 + new DataView(log.buffer, log.byteOffset).getUint32(28, true);
  return header + 12 + 2 + 20 + 2;
}

/** A different RSA AK that re-signs the vector's quotes (correct QN for itself): a real quote by another key. */
async function reSignWithOwnAk(a: GotpmAttestation, edit: (q: GotpmQuote) => GotpmQuote = (q) => q): Promise<GotpmAttestation> {
  const kp = (await crypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', kp.publicKey);
  const n = Uint8Array.from(atob(jwk.n!.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  // Same TPMT_PUBLIC as the vector's AK, with our modulus in `unique` (the last TPM2B).
  const akPub = concat(a.akPub.subarray(0, a.akPub.length - 256), n);
  const pub = parseTpmtPublic(akPub);
  const name = await computeName(pub);
  const qn = concat(u16be(0x000b), await digest('sha256', concat(u32be(0x4000000b), name)));
  const quotes = await Promise.all(
    a.quotes.map(async (q0) => {
      const q = edit(q0);
      // TPMS_ATTEST: magic(4) type(2) TPM2B qualifiedSigner ... → swap in our QN.
      const qsLen = (q.quote[6]! << 8) | q.quote[7]!;
      const msg = concat(q.quote.subarray(0, 6), u16be(qn.length), qn, q.quote.subarray(8 + qsLen));
      const sig = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', kp.privateKey, msg as Uint8Array<ArrayBuffer>));
      return { ...q, quote: msg, rawSig: concat(u16be(0x0014), u16be(0x000b), u16be(256), sig) };
    }),
  );
  return { ...a, akPub, quotes };
}

/** The quote's TPMS_QUOTE_INFO replaced by an empty SHA-256 selection (and its digest), PCR map emptied. */
async function emptySelection(a: GotpmAttestation): Promise<GotpmAttestation> {
  const empty = await digest('sha256', new Uint8Array(0));
  return reSignWithOwnAk({ ...a, quotes: [a.quotes[1]!] }, (q) => {
    const qsLen = (q.quote[6]! << 8) | q.quote[7]!;
    const exAt = 8 + qsLen;
    const exLen = (q.quote[exAt]! << 8) | q.quote[exAt + 1]!;
    const selAt = exAt + 2 + exLen + 17 + 8; // clockInfo (17) and firmwareVersion (8)
    const quoteInfo = concat(u32be(1), u16be(0x000b), new Uint8Array([3, 0, 0, 0]), u16be(32), empty);
    return { ...q, quote: concat(q.quote.subarray(0, selAt), quoteInfo), pcrs: { ...q.pcrs, values: new Map() } };
  });
}

const LEGACY_ROWS: Row[] = [
  { name: 'baseline (unchanged)', mutate: (a) => a, wantCode: 'ACCEPTED' },
  // --- upstream go-tpm-tools server/verify_test.go ---
  { name: 'upstream: AK certificate copied onto quotes signed by a different AK', mutate: reSignWithOwnAk, wantCode: 'AK_CERT_KEY_MISMATCH' },
  { name: 'upstream: malformed intermediate in the attestation', mutate: (a) => ({ ...a, intermediateCerts: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])] }), wantCode: 'CERT_MALFORMED' },
  { name: 'upstream: truncated intermediate in the attestation', mutate: (a) => ({ ...a, intermediateCerts: [readVector(LEGACY_INTERMEDIATE).subarray(0, 500)] }), wantCode: 'CERT_MALFORMED' },
  { name: 'upstream: no roots configured', mutate: (a) => a, trust: async () => createTrustStore([]), wantCode: 'TRUST_ANCHOR_MISSING' },
  { name: 'upstream: SHA-1 is the only bank and SHA-1 is not allowed', mutate: (a) => ({ ...a, quotes: [a.quotes[0]!] }), wantCode: 'SHA1_NOT_ALLOWED' },
  { name: 'SHA-1 only bank, SHA-1 allowed but SHA-256 required (default)', mutate: (a) => ({ ...a, quotes: [a.quotes[0]!] }), options: { allowSha1: true }, wantCode: 'PCR_BANK_MISSING' },
  { name: 'SHA-1 only bank, SHA-1 allowed, no bank required', mutate: (a) => ({ ...a, quotes: [a.quotes[0]!] }), options: { allowSha1: true, requiredBanks: [] }, wantCode: 'ACCEPTED' },
  { name: 'SHA-256 quote withheld (required bank)', mutate: (a) => ({ ...a, quotes: [a.quotes[0]!, a.quotes[2]!] }), wantCode: 'PCR_BANK_MISSING' },
  { name: 'a quote (signed) that selects no PCR, SHA-256 required', mutate: emptySelection, wantCode: 'PCR_BANK_MISSING' },
  { name: 'a quote (signed) that selects no PCR, no bank required: still nothing proven', mutate: emptySelection, options: { requiredBanks: [] }, wantCode: 'PCR_BANK_MISSING' },
  { name: 'SHA-384 quote withheld (not required)', mutate: (a) => ({ ...a, quotes: [a.quotes[0]!, a.quotes[1]!] }), wantCode: 'ACCEPTED' },
  { name: 'SHA-384 required but withheld', mutate: (a) => ({ ...a, quotes: [a.quotes[0]!, a.quotes[1]!] }), options: { requiredBanks: ['sha256', 'sha384'] }, wantCode: 'PCR_BANK_MISSING' },
  // --- the event log ---
  { name: 'event log: the first event\'s SHA-256 digest changed (replay mismatch)', mutate: (a) => ({ ...a, eventLog: flip(a.eventLog, firstSha256Digest(a.eventLog), 0x10) }), wantCode: 'EVENTLOG_REPLAY_MISMATCH' },
  { name: 'event log: event data changed under a kept digest (boot summary refuses unproven data)', mutate: (a) => ({ ...a, eventLog: flip(a.eventLog, 2000, 0x10) }), wantCode: 'BOOT_EVENT_DATA_MISMATCH' },
  { name: 'event log cut short', mutate: (a) => ({ ...a, eventLog: a.eventLog.subarray(0, a.eventLog.length - 10) }), wantCode: 'TRUNCATED' },
  { name: 'event log that is not a crypto-agile log', mutate: (a) => ({ ...a, eventLog: new Uint8Array(64) }), wantCode: 'EVENTLOG_LEGACY_FORMAT' },
  { name: 'event log absent (no boot claims, still accepted)', mutate: (a) => ({ ...a, eventLog: new Uint8Array(0) }), wantCode: 'ACCEPTED' },
  // --- vaportpm-style tampering, on the legacy RSA vector ---
  { name: 'different AK (modulus bit flipped in ak_pub)', mutate: (a) => ({ ...a, akPub: flip(a.akPub, -3) }), wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'changed PCR value (sha256 PCR 0)', mutate: (a) => withQuote(a, 1, (q) => withPcr(q, 0, flip(q.pcrs.values.get(0)!, 0))), wantCode: 'PCR_DIGEST_MISMATCH' },
  { name: 'changed PCR value in the SHA-1 bank (verified though not reported)', mutate: (a) => withQuote(a, 0, (q) => withPcr(q, 7, flip(q.pcrs.values.get(7)!, 5))), wantCode: 'PCR_DIGEST_MISMATCH' },
  { name: 'changed quote bytes (TPMS_ATTEST clock)', mutate: (a) => withQuote(a, 1, (q) => ({ ...q, quote: flip(q.quote, 50) })), wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'changed quote signature', mutate: (a) => withQuote(a, 2, (q) => ({ ...q, rawSig: flip(q.rawSig, -1) })), wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'time before the AK certificate is valid', mutate: (a) => a, at: new Date('2021-01-01T00:00:00Z'), wantCode: 'CERT_NOT_YET_VALID' },
  { name: 'time after the AK certificate expired', mutate: (a) => a, at: new Date('2052-01-01T00:00:00Z'), wantCode: 'CERT_EXPIRED' },
  // --- the binding ---
  { name: 'wrong nonce', mutate: (a) => a, binding: fromHex('9008'), wantCode: 'NONCE_MISMATCH' },
  { name: 'empty nonce against a quote over 0x9009', mutate: (a) => a, binding: new Uint8Array(0), wantCode: 'NONCE_MISMATCH' },
  // --- trust establishment ---
  { name: 'only the other Google root is configured', mutate: (a) => a, trust: () => googleTrust([PinIds.GOOGLE_EKAK_ROOT]), wantCode: 'CHAIN_UNTRUSTED' },
  { name: 'intermediate neither in the evidence nor configured', mutate: (a) => a, noIntermediates: true, wantCode: 'CHAIN_UNTRUSTED' },
  { name: 'intermediate supplied in the evidence instead of configuration', mutate: (a) => ({ ...a, intermediateCerts: [readVector(LEGACY_INTERMEDIATE)] }), noIntermediates: true, wantCode: 'ACCEPTED' },
  { name: 'root supplied in the evidence is never trusted', mutate: (a) => ({ ...a, intermediateCerts: [readVector('go-tpm-tools/ca-certs/tpm_ek_root_1.cer')] }), trust: () => googleTrust([PinIds.GOOGLE_EKAK_ROOT]), wantCode: 'CHAIN_UNTRUSTED' },
  { name: 'no AK certificate', mutate: (a) => ({ ...a, akCert: new Uint8Array(0) }), wantCode: 'AK_CERT_MISSING' },
  { name: 'AK certificate signature flipped', mutate: (a) => ({ ...a, akCert: flip(a.akCert, -2) }), wantCode: 'CERT_SIGNATURE_INVALID' },
  // Unsigned bytes of the certificate (offsets from `openssl asn1parse` of this AK certificate):
  { name: 'AK certificate outer length shortened (lenient ASN.1 would still verify)', mutate: (a) => ({ ...a, akCert: flip(a.akCert, 2, 0x01) }), wantCode: 'CERT_MALFORMED' },
  { name: 'AK certificate outer signatureAlgorithm parameters changed (NULL → RELATIVE-OID)', mutate: (a) => ({ ...a, akCert: flip(a.akCert, 1077, 0x08) }), wantCode: 'CERT_MALFORMED' },
  { name: 'AK certificate signature BIT STRING with unused bits', mutate: (a) => ({ ...a, akCert: flip(a.akCert, 1083, 0x02) }), wantCode: 'CERT_MALFORMED' },
  { name: 'AK certificate with a trailing byte', mutate: (a) => ({ ...a, akCert: concat(a.akCert, new Uint8Array([0])) }), wantCode: 'CERT_MALFORMED' },
  // --- the AK public area ---
  { name: 'ak_pub missing', mutate: (a) => ({ ...a, akPub: new Uint8Array(0) }), wantCode: 'ATTESTATION_INCOMPLETE' },
  { name: 'no quotes', mutate: (a) => ({ ...a, quotes: [] }), wantCode: 'ATTESTATION_INCOMPLETE', wantJson: 'EVIDENCE_SCHEMA' },
  { name: 'ak_pub not restricted (TPMA_OBJECT bit 16 cleared)', mutate: (a) => ({ ...a, akPub: flip(a.akPub, 5, 0x01) }), wantCode: 'AK_ATTRIBUTES_INVALID' },
  {
    name: 'ak_pub with the same key but another authPolicy (QN no longer matches)',
    mutate: (a) => ({ ...a, akPub: concat(a.akPub.subarray(0, 8), u16be(32), new Uint8Array(32).fill(7), a.akPub.subarray(10)) }),
    wantCode: 'AK_QUALIFIED_NAME_MISMATCH',
  },
  // --- quotes and PCR maps ---
  { name: 'two quotes over the same bank', mutate: (a) => ({ ...a, quotes: [a.quotes[1]!, a.quotes[1]!] }), wantCode: 'DUPLICATE_PCR_BANK' },
  { name: 'PCRs.hash SHA-512 (not a supported bank)', mutate: (a) => withQuote(a, 1, (q) => ({ ...q, pcrs: { ...q.pcrs, hash: 0x000d } })), wantCode: 'ALGORITHM_NOT_ALLOWED', wantJson: 'EVIDENCE_SCHEMA' },
  { name: 'PCRs.hash says SHA-384 on the SHA-256 quote', mutate: (a) => ({ ...a, quotes: [withQuote(a, 1, (q) => ({ ...q, pcrs: { ...q.pcrs, hash: 0x000c } })).quotes[1]!] }), wantCode: 'PCR_SELECTION_MISMATCH' },
  { name: 'a selected PCR missing from the map', mutate: (a) => withQuote(a, 1, (q) => withPcr(q, 23, undefined)), wantCode: 'PCR_SELECTION_MISMATCH' },
  { name: 'an unquoted PCR added to the map', mutate: (a) => withQuote(a, 1, (q) => withPcr(q, 24, new Uint8Array(32))), wantCode: 'PCR_SELECTION_MISMATCH' },
  { name: 'a PCR value of the wrong size', mutate: (a) => withQuote(a, 1, (q) => withPcr(q, 3, new Uint8Array(20))), wantCode: 'PCR_VALUE_INVALID' },
  // --- unsigned and unverifiable parts ---
  {
    name: 'instance_info that matches the certificate',
    mutate: (a) => ({ ...a, instanceInfo: { zone: 'us-central1-a', projectId: 'google.com:wuale-gcp-testing', projectNumber: 0x1b5a475c69n, instanceName: 'cos-test', instanceId: 0x5e53e3fbbf8306c5n } }),
    wantCode: 'ACCEPTED',
  },
  {
    name: 'instance_info naming another project',
    mutate: (a) => ({ ...a, instanceInfo: { zone: 'us-central1-a', projectId: 'attacker', projectNumber: 0x1b5a475c69n, instanceName: 'cos-test', instanceId: 0x5e53e3fbbf8306c5n } }),
    wantCode: 'INSTANCE_INFO_MISMATCH',
  },
  { name: 'SEV-SNP report present but empty (verified, never skipped)', mutate: (a) => ({ ...a, tee: { kind: 'sev-snp', bytes: new Uint8Array([0x0a, 0x00]) } }), wantCode: 'SNP_PROTO_INVALID' },
  { name: 'TDX quote present (not verifiable yet)', mutate: (a) => ({ ...a, tee: { kind: 'tdx', bytes: new Uint8Array(0) } }), wantCode: 'TEE_REPORT_UNSUPPORTED' },
];

describeVectors('gcp negative table: legacy lineage, RSA AK (gce-cos-85-nonce9009.pb)', () => {
  // Read only when the vectors exist (a skipped describe still runs its body to collect tests).
  const base = parseAttestationProto(readVector(PB_NONCE_9009));
  const intermediates = { intermediates: [readVector(LEGACY_INTERMEDIATE)] };
  for (const format of ['gotpm', 'gotpm-json'] as const) {
    describe(format, () => {
      for (const row of LEGACY_ROWS) {
        it(`${row.name} → ${row.wantCode}`, async () => {
          const a = await row.mutate(base);
          const evidence = format === 'gotpm' ? toGotpm(a) : toGotpmJson(a);
          const provider = createGcpProvider({ ...(row.noIntermediates ? {} : intermediates), ...row.options });
          const c = await ctx(row.binding ?? fromHex('9009'), row.at ?? GOTPM_AT, row.trust ? await row.trust() : undefined);
          const want = format === 'gotpm-json' && row.wantJson ? row.wantJson : row.wantCode;
          expect(await codeOf(provider.verify(format, evidence, c))).toBe(want);
        });
      }
    });
  }

  it('a configured intermediate that does not parse refuses to construct the provider', async () => {
    expect(await codeOf(() => createGcpProvider({ intermediates: [readVector('go-tpm-tools/ca-certs/gcp_ek_ak_ca_intermediate_v3.crt').subarray(0, 100)] }))).toBe('CERT_MALFORMED');
    expect(await codeOf(() => createGcpProvider({ intermediates: [parseAttestationProto(readVector(PB_NONCE_9009)).akCert] }))).toBe('GCP_OPTIONS_INVALID');
  });

  it('upstream: the two attestations verify only with their own nonce', async () => {
    const p = createGcpProvider(intermediates);
    const ev = toGotpm(parseAttestationProto(readVector(PB_NO_NONCE)));
    expect(await codeOf(p.verify('gotpm', ev, await ctx(new Uint8Array(0), GOTPM_AT)))).toBe('ACCEPTED');
    expect(await codeOf(p.verify('gotpm', ev, await ctx(fromHex('9009'), GOTPM_AT)))).toBe('NONCE_MISMATCH');
  });

  it('re-encoding the parsed vector reproduces its bytes exactly (the encoder used above is faithful)', () => {
    const pb = readVector(PB_NONCE_9009);
    expect(encodeAttestation(base)).toEqual(pb);
    expect(topLevelFields(pb).map((f) => f.field)).toEqual([1, 2, 2, 2, 3, 6]);
  });
});

// ---------------------------------------------------------------------------------------------

type VRow = { name: string; mutate: (v: VaporFixture) => VaporFixture; wantCode: string; at?: Date; trust?: () => Promise<TrustStore> };
const clone = (v: VaporFixture): VaporFixture => structuredClone(v);
const pem = (v: VaporFixture) => parsePemCertificates(v.attestation.gcp.ak_cert_chain);
const toPem = (ders: Uint8Array[]) =>
  ders.map((d) => `-----BEGIN CERTIFICATE-----\n${btoa(String.fromCharCode(...d))}\n-----END CERTIFICATE-----\n`).join('');

const VAPOR_ROWS: VRow[] = [
  { name: 'baseline (unchanged)', mutate: (v) => v, wantCode: 'ACCEPTED' },
  { name: 'vaportpm: different AK x/y (the other fixture\'s AK)', mutate: (v) => ({ ...clone(v), ak_pubkeys: vapor(VAPOR_TDX).ak_pubkeys }), wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'vaportpm: AK point not on the curve', mutate: (v) => { const c = clone(v); c.ak_pubkeys.ecc_p256.x = c.ak_pubkeys.ecc_p256.x.replace(/^../, '00'); return c; }, wantCode: 'AK_INVALID' },
  { name: 'vaportpm: changed PCR value', mutate: (v) => { const c = clone(v); c.pcrs.sha256!['7'] = '00'.repeat(32); return c; }, wantCode: 'PCR_DIGEST_MISMATCH' },
  { name: 'vaportpm: changed quote signature', mutate: (v) => { const c = clone(v); const s = c.attestation.tpm.ecc_p256.signature; c.attestation.tpm.ecc_p256.signature = s.slice(0, -2) + (s.endsWith('00') ? '01' : '00'); return c; }, wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'vaportpm: changed attest_data', mutate: (v) => { const c = clone(v); const s = c.attestation.tpm.ecc_p256.attest_data; c.attestation.tpm.ecc_p256.attest_data = s.slice(0, 100) + (s[100] === '0' ? '1' : '0') + s.slice(101); return c; }, wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'vaportpm: bad chain (intermediate removed)', mutate: (v) => { const c = clone(v); c.attestation.gcp.ak_cert_chain = toPem([certDer(pem(v)[0]!)]); return c; }, wantCode: 'CHAIN_UNTRUSTED' },
  { name: 'AK certificate chain grafted from the other fixture', mutate: (v) => { const c = clone(v); c.attestation.gcp.ak_cert_chain = vapor(VAPOR_TDX).attestation.gcp.ak_cert_chain; return c; }, at: VAPOR_TDX_AT, wantCode: 'AK_CERT_KEY_MISMATCH' },
  { name: 'AK certificate and AK from the other fixture on these quotes', mutate: (v) => { const o = vapor(VAPOR_TDX); const c = clone(v); c.attestation.gcp.ak_cert_chain = o.attestation.gcp.ak_cert_chain; c.ak_pubkeys = o.ak_pubkeys; return c; }, wantCode: 'QUOTE_SIGNATURE_INVALID' },
  { name: 'vaportpm: time before validity (2020)', mutate: (v) => v, at: new Date('2020-01-01T00:00:00Z'), wantCode: 'CERT_NOT_YET_VALID' },
  { name: 'vaportpm: time after validity (2100)', mutate: (v) => v, at: new Date('2100-01-01T00:00:00Z'), wantCode: 'CERT_EXPIRED' },
  { name: 'root copy in the evidence with only the legacy root pinned', mutate: (v) => v, trust: () => googleTrust([PinIds.GOOGLE_TPM_EK_ROOT_1]), wantCode: 'CHAIN_UNTRUSTED' },
  { name: 'SHA-384 bank named for SHA-256 values', mutate: (v) => { const c = clone(v); c.pcrs = { sha384: c.pcrs.sha256! }; return c; }, wantCode: 'PCR_SELECTION_MISMATCH' },
  { name: 'schema: a Nitro document instead of the GCP chain', mutate: (v) => { const c = clone(v) as unknown as Record<string, Record<string, unknown>>; c.attestation!.nitro = { document: '00' }; return c as unknown as VaporFixture; }, wantCode: 'EVIDENCE_SCHEMA' },
];

describeVectors('gcp negative table: current lineage, ECC P-256 AK (vaportpm test-gcp-amd-fixture.json)', () => {
  const v = vapor(VAPOR_AMD);
  for (const row of VAPOR_ROWS) {
    it(`${row.name} → ${row.wantCode}`, async () => {
      const provider = createGcpProvider();
      const c = await ctx(fromHex(v.nonce), row.at ?? VAPOR_AMD_AT, row.trust ? await row.trust() : undefined);
      expect(await codeOf(provider.verify('vaportpm-gcp', row.mutate(v), c))).toBe(row.wantCode);
    });
  }
  it('the vaportpm mapping equals the gotpm-json form of the same parts', async () => {
    const a = parseVaportpmGcpEvidence(v);
    const p = createGcpProvider();
    const c = await ctx(fromHex(v.nonce), VAPOR_AMD_AT);
    const viaJson = await p.verify('gotpm-json', toGotpmJson(a), c);
    const viaPb = await p.verify('gotpm', toGotpm(a), c);
    const direct = await p.verify('vaportpm-gcp', v, c);
    expect({ ...viaJson, format: '' }).toEqual({ ...direct, format: '' });
    expect({ ...viaPb, format: '' }).toEqual({ ...direct, format: '' });
  });
  it('the TDX-host fixture verifies only at its own time and nonce', async () => {
    const t = vapor(VAPOR_TDX);
    const p = createGcpProvider();
    expect(await codeOf(p.verify('vaportpm-gcp', t, await ctx(fromHex(t.nonce), VAPOR_TDX_AT)))).toBe('ACCEPTED');
    expect(await codeOf(p.verify('vaportpm-gcp', t, await ctx(fromHex(v.nonce), VAPOR_TDX_AT)))).toBe('NONCE_MISMATCH');
    expect(await codeOf(p.verify('vaportpm-gcp', t, await ctx(fromHex(t.nonce), VAPOR_AMD_AT)))).toBe('CERT_NOT_YET_VALID');
  });
});

describe('gcp provider options', () => {
  it('invalid options refuse to construct the provider', async () => {
    expect(await codeOf(() => createGcpProvider({ allowSha1: 'yes' } as never))).toBe('GCP_OPTIONS_INVALID');
    expect(await codeOf(() => createGcpProvider({ bogus: 1 } as never))).toBe('GCP_OPTIONS_INVALID');
    expect(await codeOf(() => createGcpProvider({ intermediates: ['not base64!'] }))).toBe('BAD_ENCODING');
    expect(await codeOf(() => createGcpProvider({ requiredBanks: ['sha1'] }))).toBe('GCP_OPTIONS_INVALID');
  });
  it('invalid per-call options (ctx.options) are a configuration error, not a verdict', async () => {
    const p = createGcpProvider();
    const c = await ctx(new Uint8Array(32), GOTPM_AT, createTrustStore([]), { allowSha1: 1 });
    expect(await codeOf(p.verify('gotpm', { attestation: 'AA' }, c))).toBe('GCP_OPTIONS_INVALID');
  });
  it('an unknown format is refused', async () => {
    const p = createGcpProvider();
    expect(await codeOf(p.verify('tpm', {}, await ctx(new Uint8Array(32), GOTPM_AT, createTrustStore([]))))).toBe('FORMAT_UNSUPPORTED');
  });
});
