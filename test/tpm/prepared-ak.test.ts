/**
 * `prepareAk` (providers/tpm/quote.ts): an AK resolved once for several quotes gives exactly the
 * result of resolving it per quote, refuses the same AKs with the same codes, and carries no
 * verdict from one quote to the next (a bad signature after good ones still fails).
 */
import { describe, expect, it } from 'vitest';
import { AttestError } from '../../providers/common/errors.js';
import { fromHex } from '../../providers/common/encoding.js';
import { parseAttestationProto } from '../../providers/gcp/parse.js';
import { prepareAk, verifyQuote, type VerifyQuoteInput } from '../../providers/tpm/quote.js';
import type { PcrBank } from '../../providers/common/types.js';
import { readVector } from '../helpers/vectors.js';

const att = parseAttestationProto(readVector('go-tpm-tools/attestations/gce-cos-85-nonce9009.pb'));
const BANK: Record<number, PcrBank> = { 0x4: 'sha1', 0xb: 'sha256', 0xc: 'sha384' };
const inputs = (ak: VerifyQuoteInput['ak']): VerifyQuoteInput[] =>
  att.quotes.map((q) => ({
    message: q.quote,
    signature: q.rawSig,
    ak,
    binding: fromHex('9009'),
    pcrs: { [BANK[q.pcrs.hash]!]: Object.fromEntries(q.pcrs.values) },
    pcrBanks: ['sha1', 'sha256', 'sha384'],
  }));
const codeOf = async (f: () => Promise<unknown>): Promise<string> => {
  try {
    await f();
    return 'ok';
  } catch (e) {
    return e instanceof AttestError ? e.code : `untyped: ${String(e)}`;
  }
};

describe('prepareAk', () => {
  it('verifies every quote exactly as the per-quote AK does', async () => {
    const prepared = await prepareAk({ tpmtPublic: att.akPub });
    for (const [i, input] of inputs(prepared).entries()) {
      const a = await verifyQuote(input);
      const b = await verifyQuote(inputs({ tpmtPublic: att.akPub })[i]!);
      expect({ ...a, akKey: undefined }).toEqual({ ...b, akKey: undefined });
      expect(a.akKey).toEqual(b.akKey);
    }
  });

  it('still checks each signature: a bad quote after good ones fails', async () => {
    const prepared = await prepareAk({ tpmtPublic: att.akPub });
    const all = inputs(prepared);
    await verifyQuote(all[1]!);
    const sig = all[2]!.signature as Uint8Array;
    const bad = sig.slice();
    bad[bad.length - 1]! ^= 1;
    expect(await codeOf(() => verifyQuote({ ...all[2]!, signature: bad }))).toBe('QUOTE_SIGNATURE_INVALID');
    expect(await codeOf(() => verifyQuote({ ...all[1]!, binding: fromHex('9008') }))).toBe('NONCE_MISMATCH');
  });

  it('refuses the AKs verifyQuote refuses, with the same code', async () => {
    for (let at = 0; at < att.akPub.byteLength; at += 7) {
      const pub = att.akPub.slice();
      pub[at]! ^= 0x80;
      const direct = await codeOf(() => verifyQuote(inputs({ tpmtPublic: pub })[1]!));
      const viaPrepared = await codeOf(async () => verifyQuote(inputs(await prepareAk({ tpmtPublic: pub }))[1]!));
      expect(viaPrepared, `byte ${at}`).toBe(direct);
    }
  });
});
