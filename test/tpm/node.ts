/**
 * A TPM "node" for tests: swtpm with an RSA EK (persistent 0x81010001, default TCG template via
 * tpm2_createek), two AKs under it (tpm2_createak), an ECC EK (0x81010002), and a TPM-vendor PKI
 * made with openssl (root → intermediate → EK certificates). It quotes like the join client
 * (`tpm2_quote` with the binding as qualifying data) and answers credential activation with
 * `tpm2_activatecredential` under the EK's PolicySecret(endorsement) session.
 */
import { createHash } from 'node:crypto';
import { run, type Swtpm } from '../helpers/swtpm.js';
import { parseQuotePcrs } from './pool.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import { fromBase64Url, toBase64Url } from '../../providers/common/encoding.js';
import type { TrustStore } from '../../providers/common/types.js';

export const ROOT_ID = 'test-tpm-vendor-root';
export const EK_HANDLE = '0x81010001';
export const ECC_EK_HANDLE = '0x81010002';

export interface TpmNode {
  tpm: Swtpm;
  /** Trust store holding only the test vendor root (pinned by its SHA-256). */
  trust: TrustStore;
  /** The `tpm` evidence for a fresh quote over `binding` by AK 1 or 2. */
  evidence(ak: 1 | 2, binding: Uint8Array, extra?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /**
   * EK certificate members (`cert` file: ek.der, ek-ecc.der for the ECC EK's, ek-other.der by
   * another root); `ekPub` is ek.pub (RSA EK) or ek-ecc.pub.
   */
  ekEvidence(cert?: string, ekPub?: string): Record<string, unknown>;
  /** Runs tpm2_activatecredential for `ak` with the EK at `ekHandle`; throws if the TPM refuses. */
  activate(ak: 1 | 2, credentialB64: string, ekHandle?: string): Promise<Uint8Array>;
}

export async function setupTpmNode(tpm: Swtpm): Promise<TpmNode> {
  const sh = async (cmd: string, args: string[]): Promise<void> => {
    const r = await run(cmd, args, process.env, tpm.dir);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  };
  await tpm.tpm2('tpm2_createek', ['-c', EK_HANDLE, '-G', 'rsa', '-u', 'ek.pub', '-Q']);
  await tpm.flush();
  for (const n of [1, 2]) {
    await tpm.tpm2('tpm2_createak', ['-C', EK_HANDLE, '-c', `ak${n}.ctx`, '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', `ak${n}.pub`, '-n', `ak${n}.name`, '-Q']);
    await tpm.flush();
  }
  await tpm.tpm2('tpm2_createek', ['-c', ECC_EK_HANDLE, '-G', 'ecc', '-u', 'ek-ecc.pub', '-Q']);
  await tpm.flush();
  for (const [h, f] of [[EK_HANDLE, 'ek.pem'], [ECC_EK_HANDLE, 'ek-ecc.pem']] as const) await tpm.tpm2('tpm2_readpublic', ['-c', h, '-f', 'pem', '-o', f, '-Q']);
  await tpm.flush();

  tpm.write('ca.ext', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n');
  tpm.write('ek.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\n');
  for (const who of ['root', 'other-root']) {
    await sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.pem`, '-subj', `/CN=${who}`, '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  }
  await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Test TPM Vendor Intermediate']);
  await sh('openssl', ['x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', '2', '-out', 'int.der', '-outform', 'DER', '-days', '30', '-extfile', 'ca.ext']);
  await sh('openssl', ['x509', '-in', 'int.der', '-inform', 'DER', '-out', 'int.pem']);
  const ekCert = (out: string, pub: string, ca: string): Promise<void> =>
    sh('openssl', ['x509', '-new', '-force_pubkey', pub, '-subj', '/CN=EK', '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', '3', '-days', '30', '-extfile', 'ek.ext', '-outform', 'DER', '-out', out]);
  await ekCert('ek.der', 'ek.pem', 'int');
  await ekCert('ek-ecc.der', 'ek-ecc.pem', 'int');
  await ekCert('ek-other.der', 'ek.pem', 'other-root');
  await sh('openssl', ['x509', '-in', 'root.pem', '-outform', 'DER', '-out', 'root.der']);
  const rootDer = tpm.read('root.der');
  const trust = createTrustStore([await anchorFromBytes({ id: ROOT_ID, sha256: createHash('sha256').update(rootDer).digest('hex'), source: 'test' }, rootDer)]);

  let seq = 0;
  return {
    tpm,
    trust,
    async evidence(ak, binding, extra = {}) {
      const n = seq++;
      const out = await tpm.tpm2('tpm2_quote', ['-c', `ak${ak}.ctx`, '-l', 'sha256:0,1,2,3,4,5,6,7', '-q', Buffer.from(binding).toString('hex'), '-m', `e${n}.msg`, '-s', `e${n}.sig`, '-o', `e${n}.pcrs`, '-g', 'sha256']);
      await tpm.flush();
      return {
        ak_public: toBase64Url(tpm.read(`ak${ak}.pub`)),
        quote: { message: toBase64Url(tpm.read(`e${n}.msg`)), signature: toBase64Url(tpm.read(`e${n}.sig`)) },
        pcrs: parseQuotePcrs(out),
        ...extra,
      };
    },
    ekEvidence(cert = 'ek.der', ekPub = 'ek.pub') {
      return {
        ek_certificate: toBase64Url(tpm.read(cert)),
        ek_public: toBase64Url(tpm.read(ekPub)),
        ek_intermediates: [toBase64Url(tpm.read('int.der'))],
      };
    },
    async activate(ak, credentialB64, ekHandle = EK_HANDLE) {
      const n = seq++;
      tpm.write(`a${n}.cred`, fromBase64Url(credentialB64));
      await tpm.tpm2('tpm2_startauthsession', ['--policy-session', '-S', `a${n}.session`]);
      await tpm.tpm2('tpm2_policysecret', ['-S', `a${n}.session`, '-c', 'e', '-Q']);
      const r = await tpm.tpm2Status('tpm2_activatecredential', ['-c', `ak${ak}.ctx`, '-C', ekHandle, '-i', `a${n}.cred`, '-o', `a${n}.secret`, '-P', `session:a${n}.session`, '-Q']);
      await tpm.tpm2Status('tpm2_flushcontext', [`a${n}.session`]);
      await tpm.flush();
      if (r.code !== 0) throw new Error(`tpm2_activatecredential failed: ${r.stderr}`);
      return tpm.read(`a${n}.secret`);
    },
  };
}
