/**
 * AMD VCEK/VLEK extension decoding: the real certificates decode to the INDEX values, and
 * certificates generated here with malformed AMD extensions (self-signed with @peculiar/x509;
 * only the extension decoder is under test) are rejected with their codes.
 */
import { expect, it } from 'vitest';
import { describeVectors, loadTestTrust, readVector } from '../helpers/vectors.js';
import { parseSnpReport } from '../../providers/amd-sev-snp/parse.js';
import { verifySnpReport } from '../../providers/amd-sev-snp/verify.js';
import { amdKeyExtensions } from '../../providers/amd-sev-snp/certs.js';
import { parseCertificate, x509 } from '../../providers/common/x509.js';
import { SNP_SETS, codeOf, codeOfSync } from './helpers.js';

describeVectors('AMD certificate extensions on real certificates', () => {
  it('VCEK (go-sev-guest): Milan-B0, TCB bl2 tee0 snp5 ucode68, 64-byte hwID', () => {
    const e = amdKeyExtensions(parseCertificate(readVector('go-sev-guest/testdata/vcek.testcer')));
    expect(e).toMatchObject({ kind: 'vcek', productName: 'Milan-B0', product: 'Milan', blSPL: 2, teeSPL: 0, snpSPL: 5, ucodeSPL: 68 });
    expect(e.hwId).toHaveLength(64);
    expect(Buffer.from(e.hwId!.subarray(0, 4)).toString('hex')).toBe('3ac3fe21');
  });
  it('VLEK (trustee): Milan, cspID of the cloud provider, no hwID', () => {
    const e = amdKeyExtensions(parseCertificate(readVector('trustee/snp/test-vlek.der')));
    expect(e).toMatchObject({ kind: 'vlek', product: 'Milan', cspId: 'CN=cc-us-east-2.amazonaws.com', hwId: undefined });
  });
});

describeVectors('AMD certificate extensions: malformed DER', () => {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = crypto.subtle.generateKey(alg, false, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  const base = (): Record<string, number[]> => ({
    '1.3.6.1.4.1.3704.1.2': [0x16, 0x08, ...Buffer.from('Milan-B0')],
    '1.3.6.1.4.1.3704.1.3.1': [0x02, 0x01, 0x03],
    '1.3.6.1.4.1.3704.1.3.2': [0x02, 0x01, 0x00],
    '1.3.6.1.4.1.3704.1.3.3': [0x02, 0x01, 0x08],
    '1.3.6.1.4.1.3704.1.3.8': [0x02, 0x02, 0x00, 0xdb],
    '1.3.6.1.4.1.3704.1.4': Array.from({ length: 64 }, (_, i) => i),
  });
  async function cert(ext: Record<string, number[] | undefined>): Promise<x509.X509Certificate> {
    const k = await keys;
    const extensions = Object.entries(ext)
      .filter((e): e is [string, number[]] => e[1] !== undefined)
      .map(([oid, v]) => new x509.Extension(oid, false, Uint8Array.from(v)));
    return x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=SEV-VCEK', notBefore: new Date('2024-01-01'), notAfter: new Date('2030-01-01'), keys: k, signingAlgorithm: alg, extensions });
  }
  const rows: { name: string; edit: (e: Record<string, number[] | undefined>) => void; wantCode: string }[] = [
    { name: 'well-formed (ucode 219 as 00 db)', edit: () => {}, wantCode: 'NO_ERROR' },
    { name: 'non-minimal INTEGER', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.1'] = [0x02, 0x02, 0x00, 0x03]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'negative INTEGER', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.1'] = [0x02, 0x01, 0x83]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'INTEGER above 255', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.1'] = [0x02, 0x02, 0x01, 0x00]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'wrong tag', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.3'] = [0x04, 0x01, 0x08]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'trailing byte', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.3'] = [0x02, 0x01, 0x08, 0x00]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'length past the end', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.3'] = [0x02, 0x05, 0x08]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'snpSPL missing', edit: (e) => (e['1.3.6.1.4.1.3704.1.3.3'] = undefined), wantCode: 'SNP_CERT_EXTENSION_MISSING' },
    { name: 'hwID 63 bytes', edit: (e) => (e['1.3.6.1.4.1.3704.1.4'] = Array.from({ length: 63 }, () => 1)), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'both hwID and cspID', edit: (e) => (e['1.3.6.1.4.1.3704.1.5'] = [0x16, 0x01, 0x41]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'neither hwID nor cspID', edit: (e) => (e['1.3.6.1.4.1.3704.1.4'] = undefined), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
    { name: 'productName with a control character', edit: (e) => (e['1.3.6.1.4.1.3704.1.2'] = [0x16, 0x02, 0x41, 0x0a]), wantCode: 'SNP_CERT_EXTENSION_INVALID' },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const e = base();
      row.edit(e);
      const c = await cert(e);
      expect(codeOfSync(() => amdKeyExtensions(c))).toBe(row.wantCode);
    });
  }
  it('a VCEK whose key is not P-384 is refused before any chain work (SNP_KEY_INVALID)', async () => {
    const set = SNP_SETS[0]!;
    const c = await cert(base());
    const report = parseSnpReport(set.report());
    expect(await codeOf(async () => verifySnpReport({ report, endorsementKey: c, intermediates: [], trust: await loadTestTrust(), at: set.at }))).toBe('SNP_KEY_INVALID');
  });

  it('decodes ucode 219 encoded as 02 02 00 db', async () => {
    expect(amdKeyExtensions(await cert(base())).ucodeSPL).toBe(219);
  });
});
