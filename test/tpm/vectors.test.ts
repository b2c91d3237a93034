/**
 * Real quotes from cloud hardware (test/vectors) through `verifyQuote`:
 * - azure-cvm-tooling quote.bin + akpub.pem (RSASSA-SHA256, SPKI AK, raw RSA signature);
 * - vaportpm GCP and Nitro fixtures (ECC P-256 AK as x/y, DER ECDSA signature).
 * Each also gets the upstream tamper cases with the code we expect.
 */
import { expect, it } from 'vitest';
import { describeVectors, readVector, readVectorJson, readVectorText } from '../helpers/vectors.js';
import { verifyQuote, type VerifyQuoteInput } from '../../providers/tpm/quote.js';
import { fromHex, fromBase64Any, fromBase64Url, utf8, toHex } from '../../providers/common/encoding.js';
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

  // --- Azure SEV-SNP CVM (trustee az-snp-vtpm evidence-v1): AK = HCLAkPub JWK from the HCL
  // report's variable data, raw RSASSA signature hex. The JSON starts after the 32-byte HCL
  // header, the 1184-byte SNP report and the 20-byte IGVM request header (INDEX.md §1a).
  it('trustee az-snp-vtpm evidence-v1: quote verifies with the HCLAkPub JWK', async () => {
    const ev = readVectorJson<{ hcl_report: string; tpm_quote: { message: string; signature: string; pcrs: string[] } }>('trustee/az-snp-vtpm/evidence-v1.json');
    const hcl = fromBase64Url(ev.hcl_report.replace(/=+$/, '')); // URL-safe alphabet with padding
    const varSize = new DataView(hcl.buffer, hcl.byteOffset).getUint32(1216 + 16, true);
    const runtime = JSON.parse(new TextDecoder().decode(hcl.subarray(1236, 1236 + varSize))) as { keys: { kid: string }[] };
    const jwk = runtime.keys.find((k) => k.kid === 'HCLAkPub');
    const v = await verifyQuote({
      message: fromHex(ev.tpm_quote.message),
      signature: { scheme: 'rsassa', hash: 'sha256', bytes: fromHex(ev.tpm_quote.signature) },
      ak: { jwk },
      binding: utf8('challenge'),
      pcrs: { sha256: ev.tpm_quote.pcrs }, // the evidence's array of 24 hex values, as is
    });
    expect(v.pcrs.sha256?.[0]).toBe('e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced');
  });

  // --- GCP (go-tpm-tools attest.Attestation protobuf): AK as a TPMT_PUBLIC from a real GCE vTPM,
  // so the AK attribute and scheme checks run on a real cloud key; quotes carry TPMT_SIGNATURE.
  type PbField = { no: number; wire: number; value: Uint8Array | bigint };
  function pbFields(b: Uint8Array): PbField[] {
    const out: PbField[] = [];
    let at = 0;
    const varint = (): bigint => {
      let v = 0n;
      for (let shift = 0n; ; shift += 7n) {
        const x = b[at++] as number;
        v |= BigInt(x & 0x7f) << shift;
        if ((x & 0x80) === 0) return v;
      }
    };
    while (at < b.length) {
      const key = Number(varint());
      const wire = key & 7;
      if (wire === 0) out.push({ no: key >> 3, wire, value: varint() });
      else if (wire === 2) {
        const len = Number(varint());
        out.push({ no: key >> 3, wire, value: b.subarray(at, at + len) });
        at += len;
      } else throw new Error(`wire type ${wire}`);
    }
    return out;
  }
  const HASH_ENUM: Record<number, 'sha1' | 'sha256' | 'sha384'> = { 4: 'sha1', 11: 'sha256', 12: 'sha384' };
  for (const [file, nonce] of [['gce-cos-85-no-nonce.pb', ''], ['gce-cos-85-nonce9009.pb', '9009']] as const) {
    it(`go-tpm-tools ${file}: all three quotes verify with the TPMT_PUBLIC AK`, async () => {
      const top = pbFields(readVector(`go-tpm-tools/attestations/${file}`));
      const akPub = top.find((f) => f.no === 1)!.value as Uint8Array;
      const quotes = top.filter((f) => f.no === 2).map((f) => pbFields(f.value as Uint8Array));
      expect(quotes).toHaveLength(3);
      const banks: string[] = [];
      for (const q of quotes) {
        // go-tpm-tools proto/tpm.proto: Quote { bytes quote = 1; bytes raw_sig = 2; PCRs pcrs = 3 }
        const pcrsMsg = pbFields(q.find((f) => f.no === 3)!.value as Uint8Array);
        const bank = HASH_ENUM[Number(pcrsMsg.find((f) => f.no === 1)!.value)]!;
        const values: Record<number, Uint8Array> = {};
        for (const e of pcrsMsg.filter((f) => f.no === 2)) {
          const kv = pbFields(e.value as Uint8Array);
          values[Number(kv.find((f) => f.no === 1)?.value ?? 0n)] = kv.find((f) => f.no === 2)!.value as Uint8Array;
        }
        const input: VerifyQuoteInput = {
          message: q.find((f) => f.no === 1)!.value as Uint8Array,
          signature: q.find((f) => f.no === 2)!.value as Uint8Array,
          ak: { tpmtPublic: akPub },
          binding: fromHex(nonce),
          pcrs: { [bank]: values },
          pcrBanks: ['sha1', 'sha256', 'sha384'],
        };
        const v = await verifyQuote(input);
        expect(Object.keys(v.pcrs[bank as 'sha1'] ?? {})).toHaveLength(24);
        if (bank === 'sha256') expect(v.pcrs.sha256?.[0]).toBe('0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf');
        if (bank === 'sha1') {
          expect(v.pcrs.sha1?.[0]).toBe('c032c3b51dbb6f96b047421512fd4b4dfde496f3');
          // SHA-1 bank only when the caller allows it.
          expect(await code(verifyQuote({ ...input, pcrBanks: undefined }))).toBe('ALGORITHM_NOT_ALLOWED');
        }
        expect(v.attest.firmwareVersion).toBe(0x2016051100162800n);
        expect(v.akPublic?.objectAttributes.restricted).toBe(true);
        banks.push(bank);
      }
      expect(banks.sort()).toEqual(['sha1', 'sha256', 'sha384']);
    });
  }
});

