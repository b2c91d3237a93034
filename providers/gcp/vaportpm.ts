/**
 * @module providers/gcp/vaportpm
 *
 * Format `vaportpm-gcp`: the GCP evidence JSON of lockboot/vaportpm (crates/vaportpm-verify,
 * fixtures test-gcp-*.json), mapped losslessly onto the same `GotpmAttestation` the gotpm
 * formats produce, so one verifier handles all three.
 *
 * vaportpm carries the AK as bare P-256 coordinates and the quote signature as an ASN.1 DER
 * ECDSA-Sig-Value; go-tpm-tools carries a TPMT_PUBLIC and a TPMT_SIGNATURE. The mapping:
 * - `ak_pubkeys.ecc_p256.{x,y}` → the TPMT_PUBLIC of GCE's ECC AK template (NV index 0x01c10003:
 *   type ECC, nameAlg SHA-256, TPMA_OBJECT 0x00050072 = fixedTPM | fixedParent |
 *   sensitiveDataOrigin | userWithAuth | restricted | sign, empty authPolicy, symmetric NULL,
 *   scheme ECDSA/SHA-256, curve NIST P-256, kdf NULL, unique = (x, y)). This reconstruction is
 *   not trusted: verify.ts checks that the quote's qualifiedSigner equals the Qualified Name of
 *   exactly these bytes, so a wrong guess is rejected (AK_QUALIFIED_NAME_MISMATCH), and a right
 *   one proves the key is a restricted signing key of the vTPM. It matches both real fixtures.
 * - `attestation.tpm.ecc_p256.signature` (DER) → TPMT_SIGNATURE {ECDSA, SHA-256, r, s}
 *   (TPM 2.0 Part 2 §11.3.2), the form the TPM itself returns.
 * - `attestation.gcp.ak_cert_chain` (PEM: leaf, intermediates[, root]) → ak_cert,
 *   intermediate_certs (a copy of a pinned root is ignored by the chain builder, never trusted).
 * - `pcrs.<bank>` → the quote's PCR values (one bank: one quote).
 * `nonce` is the fixture's record of what was bound; the binding always comes from the broker.
 */
import { z } from 'zod';
import { concat, u16be, u32be } from '../common/bytes.js';
import { CommonCodes, malformed } from '../common/errors.js';
import { fromBase64Any, fromHex } from '../common/encoding.js';
import { ecdsaDerToP1363 } from '../tpm/structures.js';
import { GcpParseCodes, HashAlgo, LIMITS, type GotpmAttestation } from './parse.js';

const Hex = z.string().max(4096);
const Bank = z.enum(['sha256', 'sha384']);

const VaportpmGcp = z.strictObject({
  nonce: Hex.optional(),
  pcrs: z.partialRecord(Bank, z.record(z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/), Hex)),
  ak_pubkeys: z.strictObject({ ecc_p256: z.strictObject({ x: Hex, y: Hex }) }),
  attestation: z.strictObject({
    tpm: z.strictObject({ ecc_p256: z.strictObject({ attest_data: Hex, signature: Hex }) }),
    gcp: z.strictObject({ ak_cert_chain: z.string().max(64 * 1024) }),
  }),
});

const ALG_ECC = 0x0023;
const ALG_SHA256 = 0x000b;
const ALG_NULL = 0x0010;
const ALG_ECDSA = 0x0018;
const ECC_NIST_P256 = 0x0003;
/** fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign (Part 2 §8.3). */
const GCE_AK_ATTRIBUTES = 0x00050072;

/** TPMT_PUBLIC of GCE's ECC P-256 AK template with the given point. */
export function gceEccAkPublic(x: Uint8Array, y: Uint8Array): Uint8Array {
  return concat(
    u16be(ALG_ECC),
    u16be(ALG_SHA256),
    u32be(GCE_AK_ATTRIBUTES),
    u16be(0), // authPolicy: empty
    u16be(ALG_NULL), // symmetric
    u16be(ALG_ECDSA),
    u16be(ALG_SHA256), // scheme
    u16be(ECC_NIST_P256),
    u16be(ALG_NULL), // kdf
    u16be(x.byteLength),
    x,
    u16be(y.byteLength),
    y,
  );
}

const PEM_RE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/**
 * The DER of each PEM certificate block, in order. Parsing (strict, memoized) happens where the
 * certificates are verified (akcert.ts); here only the armor is removed.
 */
function pemBlocks(pem: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of pem.matchAll(PEM_RE)) {
    if (out.length > LIMITS.intermediates) throw malformed(CommonCodes.LIMIT_EXCEEDED, `ak_cert_chain: more than ${1 + LIMITS.intermediates} certificates`);
    out.push(fromBase64Any((m[1] ?? '').replace(/\s+/g, ''), 'ak_cert_chain PEM block'));
  }
  if (out.length === 0) throw malformed(GcpParseCodes.EVIDENCE_SCHEMA, 'vaportpm-gcp evidence: ak_cert_chain holds no PEM certificate');
  return out;
}

export function parseVaportpmGcpEvidence(evidence: unknown): GotpmAttestation {
  const r = VaportpmGcp.safeParse(evidence);
  if (!r.success) {
    const first = r.error.issues[0];
    throw malformed(GcpParseCodes.EVIDENCE_SCHEMA, `vaportpm-gcp evidence: ${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}`);
  }
  const e = r.data;
  const banks = Object.entries(e.pcrs) as [z.infer<typeof Bank>, Record<string, string>][];
  if (banks.length !== 1) throw malformed(GcpParseCodes.EVIDENCE_SCHEMA, 'vaportpm-gcp evidence: exactly one PCR bank (one quote) is expected');
  const [bank, vals] = banks[0]!;
  const values = new Map<number, Uint8Array>();
  for (const [k, v] of Object.entries(vals)) values.set(Number(k), fromHex(v, `pcrs.${bank}.${k}`));

  const x = fromHex(e.ak_pubkeys.ecc_p256.x, 'ak_pubkeys.ecc_p256.x');
  const y = fromHex(e.ak_pubkeys.ecc_p256.y, 'ak_pubkeys.ecc_p256.y');
  const p1363 = ecdsaDerToP1363(fromHex(e.attestation.tpm.ecc_p256.signature, 'signature'), 32);
  const rawSig = concat(u16be(ALG_ECDSA), u16be(ALG_SHA256), u16be(32), p1363.subarray(0, 32), u16be(32), p1363.subarray(32));

  const certs = pemBlocks(e.attestation.gcp.ak_cert_chain);
  return Object.freeze({
    akPub: gceEccAkPublic(x, y),
    quotes: Object.freeze([
      Object.freeze({
        quote: fromHex(e.attestation.tpm.ecc_p256.attest_data, 'attest_data'),
        rawSig,
        pcrs: Object.freeze({ hash: bank === 'sha256' ? HashAlgo.SHA256 : HashAlgo.SHA384, values }),
      }),
    ]),
    eventLog: new Uint8Array(0),
    instanceInfo: undefined,
    canonicalEventLog: new Uint8Array(0),
    akCert: certs[0]!,
    intermediateCerts: Object.freeze(certs.slice(1)),
    tee: undefined,
    unknownFields: Object.freeze([]),
  });
}
