/**
 * The one SEV-SNP ATTESTATION_REPORT layout table (providers/amd-sev-snp/layout.ts), which both
 * the parser and the GCP converter use: contiguous, in order, exactly 0x4A0 bytes, the signed
 * part ending where the signature starts. (The parser fails loudly if it ever reads a field away
 * from its table offset; the round trip raw → go-sev-guest protobuf → rebuilt report is in
 * test/gcp/sevsnp.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { SNP_LAYOUT } from '../../providers/amd-sev-snp/layout.js';
import { SNP_REPORT_SIZE, SNP_SIGNED_LENGTH } from '../../providers/amd-sev-snp/parse.js';

describe('SNP_LAYOUT', () => {
  it('covers the report exactly, field after field', () => {
    let next = 0;
    for (const [name, f] of Object.entries(SNP_LAYOUT)) {
      expect(f.off, name).toBe(next);
      expect(f.len, name).toBeGreaterThan(0);
      next = f.off + f.len;
    }
    expect(next).toBe(SNP_REPORT_SIZE);
    expect(SNP_LAYOUT.SIGNATURE_R.off).toBe(SNP_SIGNED_LENGTH);
  });
});
