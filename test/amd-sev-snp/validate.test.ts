/**
 * SEV-SNP validation: the strict default rejects the go-sev-guest report (DEBUG set), and each
 * option rejects a real report that does not meet it with its own code.
 */
import { expect, it } from 'vitest';
import { describeVectors, loadTestTrust } from '../helpers/vectors.js';
import { parseSnpReport } from '../../providers/amd-sev-snp/parse.js';
import { verifySnpReport, type VerifiedSnpReport } from '../../providers/amd-sev-snp/verify.js';
import { strictSnpOptions, validateSnpReport, type SnpValidateOptions } from '../../providers/amd-sev-snp/validate.js';
import { SNP_SETS, codeOfSync } from './helpers.js';

async function verified(i: number): Promise<VerifiedSnpReport> {
  const s = SNP_SETS[i]!;
  return verifySnpReport({ report: parseSnpReport(s.report()), endorsementKey: s.key(), intermediates: s.chain(), trust: await loadTestTrust(), at: s.at });
}

describeVectors('SEV-SNP validation', () => {
  it('go-sev-guest report (DEBUG set): strict policy rejects with SNP_POLICY_DEBUG; allowing debug accepts', async () => {
    const v = await verified(2);
    expect(codeOfSync(() => validateSnpReport(v, strictSnpOptions()))).toBe('SNP_POLICY_DEBUG');
    expect(codeOfSync(() => validateSnpReport(v, strictSnpOptions({ debug: 'allow' })))).toBe('NO_ERROR');
  });

  it('VLEK report at VMPL 1: strict policy rejects with SNP_VMPL_MISMATCH', async () => {
    const v = await verified(1);
    expect(codeOfSync(() => validateSnpReport(v, strictSnpOptions()))).toBe('SNP_VMPL_MISMATCH');
    expect(codeOfSync(() => validateSnpReport(v, strictSnpOptions({ vmpl: { expect: 1 } })))).toBe('NO_ERROR');
  });

  const azureMeasurement = '6a063be9dd79f6371c842e480f8dc3b5c725961344e57130e88c5adf49e8f7f6c79b75a5eb77fc769959f4aeb2f9401e';
  const azureIdKey = '942fd93ebde6ea7a96efadeafc60f1c6b3d10e703b1dafd7555b92f7f3d32d0e006767648cba5b102af3d65756af4177';
  const rows: { name: string; opts: Partial<SnpValidateOptions>; wantCode: string }[] = [
    { name: 'strict default', opts: {}, wantCode: 'NO_ERROR' },
    { name: 'expected measurement and id key digest', opts: { measurement: { expect: [azureMeasurement] }, idKeyDigest: { expect: [azureIdKey.toUpperCase()] } }, wantCode: 'NO_ERROR' },
    { name: 'other measurement', opts: { measurement: { expect: ['00'.repeat(48)] } }, wantCode: 'SNP_MEASUREMENT_MISMATCH' },
    { name: 'other id key digest', opts: { idKeyDigest: { expect: ['11'.repeat(48)] } }, wantCode: 'SNP_ID_KEY_DIGEST_MISMATCH' },
    { name: 'host data zero is expected', opts: { hostData: { expect: '00'.repeat(32) } }, wantCode: 'NO_ERROR' },
    { name: 'other host data', opts: { hostData: { expect: '01'.repeat(32) } }, wantCode: 'SNP_HOST_DATA_MISMATCH' },
    { name: 'other report data', opts: { reportData: { expect: new Uint8Array(64) } }, wantCode: 'SNP_REPORT_DATA_MISMATCH' },
    { name: 'SMT forbidden (policy allows SMT)', opts: { smt: 'forbid' }, wantCode: 'SNP_POLICY_SMT' },
    { name: 'single socket required', opts: { singleSocket: 'require' }, wantCode: 'SNP_POLICY_SINGLE_SOCKET' },
    { name: 'minimum TCB met', opts: { minimumTcb: { expect: { bootloader: 4, snp: 24, microcode: 219 } } }, wantCode: 'NO_ERROR' },
    { name: 'minimum microcode above', opts: { minimumTcb: { expect: { microcode: 220 } } }, wantCode: 'SNP_TCB_TOO_LOW' },
    { name: 'minimum guest SVN above', opts: { minimumGuestSvn: { expect: 99 } }, wantCode: 'SNP_GUEST_SVN_TOO_LOW' },
    { name: 'only Genoa allowed', opts: { products: { expect: ['Genoa'] } }, wantCode: 'SNP_PRODUCT_NOT_ALLOWED' },
    { name: 'only VLEK allowed', opts: { signers: { expect: ['vlek'] } }, wantCode: 'SNP_SIGNER_NOT_ALLOWED' },
    { name: 'VMPL 2 expected', opts: { vmpl: { expect: 2 } }, wantCode: 'SNP_VMPL_MISMATCH' },
  ];
  for (const row of rows) {
    it(`az-snp-vtpm v0 report: ${row.name}`, async () => {
      const v = await verified(4);
      expect(codeOfSync(() => validateSnpReport(v, strictSnpOptions(row.opts)))).toBe(row.wantCode);
    });
  }

  it('MIGRATE_MA forbidden by default', async () => {
    const v = await verified(4);
    const forged = { ...v, report: { ...v.report, policy: { ...v.report.policy, migrateMa: true } } };
    expect(codeOfSync(() => validateSnpReport(forged, strictSnpOptions()))).toBe('SNP_POLICY_MIGRATE_MA');
  });
});
