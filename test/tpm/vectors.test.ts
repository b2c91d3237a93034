/**
 * Real quotes from cloud hardware (../shared/vectors, read in place) through `verifyQuote`:
 * - azure-cvm-tooling quote.bin + akpub.pem (RSASSA-SHA256, SPKI AK, raw RSA signature);
 * - vaportpm GCP and Nitro fixtures (ECC P-256 AK as x/y, DER ECDSA signature).
 * Each also gets the upstream tamper cases with the code we expect.
 */
import { expect, it } from 'vitest';
import { describeVectors, readVector, readVectorJson, readVectorText } from '../helpers/vectors.js';
import { verifyQuote, type VerifyQuoteInput } from '../../providers/tpm/quote.js';
import { fromHex, fromBase64Any, utf8, toHex } from '../../providers/common/encoding.js';
import { sha256 } from '../../providers/common/digest.js';
import type { AttestError } from '../../providers/common/errors.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as AttestError).code;
  }
  return 'ACCEPTED';
}

function readAzureQuote(): { signature: Uint8Array; message: Uint8Array; pcrs: Uint8Array[] } {
  const b = readVector('azure-cvm-tooling/quote.bin');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 0;
  const take = (n: number): Uint8Array => {
    const out = b.slice(at, at + n);
    at += n;
    return out;
  };
  const len = (): number => {
    const v = Number(dv.getBigUint64(at, true));
    at += 8;
    return v;
  };
  const signature = take(len());
  const message = take(len());
  const count = len();
  const pcrs = Array.from({ length: count }, () => take(32));
  expect(at).toBe(b.byteLength);
  return { signature, message, pcrs };
}

function pemToDer(pem: string): Uint8Array {
  return fromBase64Any(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''));
}

describeVectors('TPM quotes from real clouds', () => {
  const azureInput = (): VerifyQuoteInput => {
    const q = readAzureQuote();
    return {
      message: q.message,
      signature: { scheme: 'rsassa', hash: 'sha256', bytes: q.signature },
      ak: { spki: pemToDer(readVectorText('azure-cvm-tooling/akpub.pem')) },
      binding: utf8('challenge'),
      pcrs: { sha256: Object.fromEntries(q.pcrs.map((p, i) => [i, p])) },
    };
  };

  it('azure-cvm-tooling quote.bin verifies with akpub.pem and nonce "challenge"', async () => {
    const v = await verifyQuote(azureInput());
    expect(v.pcrs.sha256?.[0]).toBe('f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be');
    expect(Object.keys(v.pcrs.sha256 ?? {})).toHaveLength(24);
    expect(v.akSha256).toBe(toHex(await sha256(pemToDer(readVectorText('azure-cvm-tooling/akpub.pem')))));
  });

  it('azure: the upstream tamper cases fail with the right codes', async () => {
    const base = azureInput();
    const sig = (base.signature as { bytes: Uint8Array }).bytes;
    expect(await code(verifyQuote({ ...base, signature: { scheme: 'rsassa', hash: 'sha256', bytes: sig.slice().reverse() } }))).toBe('QUOTE_SIGNATURE_INVALID');
    expect(await code(verifyQuote({ ...base, binding: new Uint8Array([1, 2, 3, 4]) }))).toBe('NONCE_MISMATCH');
    const pcrs = { ...base.pcrs.sha256 } as Record<number, Uint8Array>;
    const p0 = (pcrs[0] as Uint8Array).slice();
    p0[0] = (p0[0] as number) ^ 1;
    pcrs[0] = p0;
    expect(await code(verifyQuote({ ...base, pcrs: { sha256: pcrs } }))).toBe('PCR_DIGEST_MISMATCH');
    expect(await code(verifyQuote({ ...base, signatureHashes: ['sha384'] }))).toBe('ALGORITHM_NOT_ALLOWED');
  });

  type Fixture = {
    nonce: string;
    pcrs: Record<string, Record<string, string>>;
    ak_pubkeys: { ecc_p256: { x: string; y: string } };
    attestation: { tpm: { ecc_p256: { attest_data: string; signature: string } } };
  };
  for (const f of ['test-gcp-amd-fixture.json', 'test-gcp-tdx-fixture.json', 'test-nitro-fixture.json']) {
    const input = (): VerifyQuoteInput => {
      const j = readVectorJson<Fixture>(`vaportpm/${f}`);
      const [bank, values] = Object.entries(j.pcrs)[0] as [string, Record<string, string>];
      return {
        message: fromHex(j.attestation.tpm.ecc_p256.attest_data),
        signature: { scheme: 'ecdsa', hash: 'sha256', bytes: fromHex(j.attestation.tpm.ecc_p256.signature), encoding: 'der' },
        ak: { ecPoint: fromHex(`04${j.ak_pubkeys.ecc_p256.x}${j.ak_pubkeys.ecc_p256.y}`), curve: 'P-256' },
        binding: fromHex(j.nonce),
        pcrs: { [bank]: values },
      };
    };
    it(`vaportpm ${f} verifies (ECDSA P-256, DER signature)`, async () => {
      const v = await verifyQuote(input());
      expect(v.signature).toEqual({ scheme: 'ecdsa', hash: 'sha256' });
      expect(Object.values(v.pcrs)[0]).toBeDefined();
    });
    it(`vaportpm ${f}: tampered AK, PCR, signature, attest_data are rejected`, async () => {
      const base = input();
      const otherAk = (base.ak as { ecPoint: Uint8Array }).ecPoint.slice();
      // A different valid point: negate y (p - y) is still on the curve; use the GCP/Nitro swap instead.
      otherAk[64] = (otherAk[64] as number) ^ 1;
      expect(await code(verifyQuote({ ...base, ak: { ecPoint: otherAk, curve: 'P-256' } }))).toMatch(/QUOTE_SIGNATURE_INVALID|AK_INVALID/);
      const [bank, values] = Object.entries(base.pcrs)[0] as [string, Record<string, string>];
      const changed = { ...values, '0': (values['0'] as string).replace(/^./, (c) => (c === '0' ? '1' : '0')) };
      expect(await code(verifyQuote({ ...base, pcrs: { [bank]: changed } }))).toBe('PCR_DIGEST_MISMATCH');
      const msg = base.message.slice();
      msg[msg.length - 1] = (msg[msg.length - 1] as number) ^ 1;
      expect(await code(verifyQuote({ ...base, message: msg }))).toBe('QUOTE_SIGNATURE_INVALID');
      const sig = (base.signature as { bytes: Uint8Array }).bytes.slice();
      sig[sig.length - 1] = (sig[sig.length - 1] as number) ^ 1;
      expect(await code(verifyQuote({ ...base, signature: { scheme: 'ecdsa', hash: 'sha256', bytes: sig, encoding: 'der' } }))).toBe('QUOTE_SIGNATURE_INVALID');
      expect(await code(verifyQuote({ ...base, pcrs: {} }))).toBe('PCR_SELECTION_MISMATCH');
    });
  }
});
