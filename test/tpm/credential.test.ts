/**
 * TPM2_MakeCredential in TypeScript against a real TPM: the credential our code seals to a
 * swtpm EK for an AK's Name is recovered by `tpm2_activatecredential` (RSA-2048 EK and ECC P-256
 * EK, default TCG templates from `tpm2_createek`; also ECC P-384 and RSA-3072 storage keys with
 * SHA-384 Names and AES-256); sealed for another AK's Name or to another
 * storage key, activation fails inside the TPM. Input checks reject non-storage EKs, bad Names
 * and oversized credentials with their codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describeSwtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { aesCfbEncrypt, makeCredential } from '../../providers/tpm/credential.js';
import { fromHex, toHex } from '../../providers/common/encoding.js';
import { computeName, parseTpm2bPublic } from '../../providers/tpm/structures.js';
import type { AttestError } from '../../providers/common/errors.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as AttestError).code;
  }
  return 'ACCEPTED';
}

describeSwtpm('TPM2_MakeCredential (TypeScript) → tpm2_activatecredential (swtpm)', () => {
  let tpm: Swtpm;
  const EK = { rsa: '0x81010001', ecc: '0x81010002' } as const;

  beforeAll(async () => {
    tpm = await startSwtpm();
    for (const t of ['rsa', 'ecc'] as const) {
      await tpm.tpm2('tpm2_createek', ['-c', EK[t], '-G', t, '-u', `ek-${t}.pub`, '-Q']);
      await tpm.flush();
      // Two AKs under each EK (the second provides a wrong Name).
      for (const n of [1, 2]) {
        await tpm.tpm2('tpm2_createak', ['-C', EK[t], '-c', `ak-${t}${n}.ctx`, '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', `ak-${t}${n}.pub`, '-n', `ak-${t}${n}.name`, '-Q']);
        await tpm.flush();
      }
    }
    // A storage key that is not the EK.
    await tpm.tpm2('tpm2_createprimary', ['-C', 'o', '-G', 'rsa2048:aes128cfb', '-c', 'srk.ctx', '-Q']);
    await tpm.tpm2('tpm2_readpublic', ['-c', 'srk.ctx', '-o', 'srk.pub', '-Q']);
    await tpm.flush();
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
  });

  let k = 0;
  /** Runs tpm2_activatecredential with the EK's policy session; returns the secret or undefined. */
  async function activate(t: 'rsa' | 'ecc', ak: string, file: Uint8Array): Promise<Uint8Array | undefined> {
    const n = k++;
    tpm.write(`cred${n}.in`, file);
    await tpm.tpm2('tpm2_startauthsession', ['--policy-session', '-S', `s${n}.ctx`]);
    await tpm.tpm2('tpm2_policysecret', ['-S', `s${n}.ctx`, '-c', 'e', '-Q']);
    const r = await tpm.tpm2Status('tpm2_activatecredential', ['-c', `${ak}.ctx`, '-C', EK[t], '-i', `cred${n}.in`, '-o', `cred${n}.out`, '-P', `session:s${n}.ctx`, '-Q']);
    await tpm.tpm2Status('tpm2_flushcontext', [`s${n}.ctx`]);
    await tpm.flush();
    return r.code === 0 ? tpm.read(`cred${n}.out`) : undefined;
  }

  for (const t of ['rsa', 'ecc'] as const) {
    it(`${t.toUpperCase()} EK: the TPM recovers the secret for the right AK, and only for it`, async () => {
      const ek = tpm.read(`ek-${t}.pub`);
      const name1 = tpm.read(`ak-${t}1.name`);
      // Our Name computation agrees with the TPM's.
      expect(await computeName(parseTpm2bPublic(tpm.read(`ak-${t}1.pub`)))).toEqual(name1);
      for (const size of [32, 16, 1]) {
        const secret = new Uint8Array(randomBytes(size));
        const made = await makeCredential(ek, name1, secret);
        expect(await activate(t, `ak-${t}1`, made.tpm2ToolsFile)).toEqual(secret);
      }
      const secret = new Uint8Array(randomBytes(32));
      // Sealed for AK 1, but AK 2 is presented: the TPM's integrity check fails.
      const forAk1 = await makeCredential(ek, name1, secret);
      expect(await activate(t, `ak-${t}2`, forAk1.tpm2ToolsFile)).toBeUndefined();
      // Sealed for AK 2's Name, activated with AK 2: fine (the Name is what binds).
      const forAk2 = await makeCredential(ek, tpm.read(`ak-${t}2.name`), secret);
      expect(await activate(t, `ak-${t}2`, forAk2.tpm2ToolsFile)).toEqual(secret);
      // Sealed to another EK (the other type) or another storage key: this EK cannot open it.
      const other = t === 'rsa' ? 'ecc' : 'rsa';
      const toOther = await makeCredential(tpm.read(`ek-${other}.pub`), name1, secret);
      expect(await activate(t, `ak-${t}1`, toOther.tpm2ToolsFile)).toBeUndefined();
      if (t === 'rsa') {
        const toSrk = await makeCredential(tpm.read('srk.pub'), name1, secret);
        expect(await activate(t, `ak-${t}1`, toSrk.tpm2ToolsFile)).toBeUndefined();
      }
      // A flipped bit anywhere in the blob or the secret: the TPM refuses.
      for (const at of [10, forAk1.tpm2ToolsFile.length - 1]) {
        const f = forAk1.tpm2ToolsFile.slice();
        f[at] = (f[at] as number) ^ 0x01;
        expect(await activate(t, `ak-${t}1`, f)).toBeUndefined();
      }
    });
  }

  it('other storage-key parameters: ECC P-384 / RSA-3072 with SHA-384 Names and AES-256 (endorsement primaries)', async () => {
    // Not the TCG EK templates (their admin policy needs a PolicyOR), but the same algorithms as
    // the high-range templates, with password authorization so the flow stays one command.
    for (const [id, alg] of [['p384', 'ecc384:aes256cfb'], ['r3072', 'rsa3072:aes256cfb']] as const) {
      await tpm.tpm2('tpm2_createprimary', ['-C', 'e', '-G', alg, '-g', 'sha384', '-c', `sk-${id}.ctx`, '-Q']);
      await tpm.tpm2('tpm2_readpublic', ['-c', `sk-${id}.ctx`, '-o', `sk-${id}.pub`, '-Q']);
      await tpm.flush();
      const secret = new Uint8Array(randomBytes(48));
      const name = tpm.read('ak-rsa1.name');
      const made = await makeCredential(tpm.read(`sk-${id}.pub`), name, secret);
      tpm.write(`sk-${id}.cred`, made.tpm2ToolsFile);
      const r = await tpm.tpm2Status('tpm2_activatecredential', ['-c', 'ak-rsa1.ctx', '-C', `sk-${id}.ctx`, '-i', `sk-${id}.cred`, '-o', `sk-${id}.out`, '-Q']);
      await tpm.flush();
      expect(r.code, `${id}: ${r.stderr}`).toBe(0);
      expect(tpm.read(`sk-${id}.out`), id).toEqual(secret);
    }
  });

  it('input checks: non-storage EK, bad Name, credential size', async () => {
    const ek = tpm.read('ek-rsa.pub');
    const name = tpm.read('ak-rsa1.name');
    expect(await code(makeCredential(tpm.read('ak-rsa1.pub'), name, new Uint8Array(32)))).toBe('EK_INVALID');
    expect(await code(makeCredential(ek, name.subarray(0, 20), new Uint8Array(32)))).toBe('TPM_STRUCTURE_INVALID');
    expect(await code(makeCredential(ek, new Uint8Array([0x00, 0x99, ...new Uint8Array(32)]), new Uint8Array(32)))).toBe('TPM_ALG_UNSUPPORTED');
    expect(await code(makeCredential(ek, name, new Uint8Array(33)))).toBe('TPM_STRUCTURE_INVALID');
    expect(await code(makeCredential(ek, name, new Uint8Array(0)))).toBe('TPM_STRUCTURE_INVALID');
  });
});

describe('credential primitives', () => {
  // SP 800-38A Appendix F.3.13 CFB128-AES128.Encrypt (and F.3.17 for AES-256).
  const KAT = [
    {
      key: '2b7e151628aed2a6abf7158809cf4f3c',
      pt: '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
      ct: '3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b26751f67a3cbb140b1808cf187a4f4dfc04b05357c5d1c0eeac4c66f9ff7f2e6',
    },
    {
      key: '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4',
      pt: '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
      ct: 'dc7e84bfda79164b7ecd8486985d386039ffed143b28b1c832113c6331e5407bdf10132415e54b92a13ed0a8267ae2f975a385741ab9cef82031623d55b1e471',
    },
  ];
  it('AES-CFB matches SP 800-38A and node:crypto (partial last blocks included)', async () => {
    const iv = fromHex('000102030405060708090a0b0c0d0e0f');
    for (const k of KAT) expect(toHex(await aesCfbEncrypt(fromHex(k.key), fromHex(k.pt), iv))).toBe(k.ct);
    for (let len = 0; len <= 70; len++) {
      const key = new Uint8Array(randomBytes(16));
      const pt = new Uint8Array(randomBytes(len));
      const c = createCipheriv('aes-128-cfb', key, Buffer.alloc(16));
      expect(toHex(await aesCfbEncrypt(key, pt))).toBe(toHex(Buffer.concat([c.update(pt), c.final()])));
    }
  });
});
