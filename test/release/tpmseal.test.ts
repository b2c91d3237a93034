/**
 * Release sealed with TPM2_MakeCredential to a real (swtpm) TPM's EK and AK Name: only
 * `tpm2_activatecredential` in that TPM, with that AK loaded, recovers the key that opens it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compactDecrypt, decodeProtectedHeader, exportJWK, generateKeyPair, calculateJwkThumbprint } from 'jose';
import { createHash, randomBytes } from 'node:crypto';
import { describeSwtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit } from '../../broker/release/audit.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { makeTestPki } from '../servers/tls.js';
import { captureLogger, claimsFor, decisionFor, fixedClock, memoryStore } from './helpers.js';

describeSwtpm('TPM-sealed release (swtpm + tpm2_activatecredential)', () => {
  let tpm: Swtpm;
  const pki = makeTestPki();
  beforeAll(async () => {
    tpm = await startSwtpm();
    await tpm.tpm2('tpm2_createek', ['-c', '0x81010001', '-G', 'rsa', '-u', 'ek.pub', '-Q']);
    await tpm.flush();
    for (const n of [1, 2]) {
      await tpm.tpm2('tpm2_createak', ['-C', '0x81010001', '-c', `ak${n}.ctx`, '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', `ak${n}.pub`, '-n', `ak${n}.name`, '-Q']);
      await tpm.flush();
    }
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
  });

  let k = 0;
  async function activate(ak: string, credFile: Uint8Array): Promise<Uint8Array | undefined> {
    const n = k++;
    tpm.write(`c${n}.in`, credFile);
    await tpm.tpm2('tpm2_startauthsession', ['--policy-session', '-S', `s${n}.ctx`]);
    await tpm.tpm2('tpm2_policysecret', ['-S', `s${n}.ctx`, '-c', 'e', '-Q']);
    const r = await tpm.tpm2Status('tpm2_activatecredential', ['-c', `${ak}.ctx`, '-C', '0x81010001', '-i', `c${n}.in`, '-o', `c${n}.out`, '-P', `session:s${n}.ctx`, '-Q']);
    await tpm.tpm2Status('tpm2_flushcontext', [`s${n}.ctx`]);
    await tpm.flush();
    return r.code === 0 ? tpm.read(`c${n}.out`) : undefined;
  }

  function service() {
    const clock = fixedClock(new Date().toISOString());
    const store = memoryStore(clock);
    return new BrokerReleaseService({
      store,
      clock,
      logger: captureLogger(),
      audit: new HashChainAudit({ store, clock, write: async () => undefined }),
      clusters: { prod: { apiServer: 'https://api:6443', caPem: pki.caPem } },
      tpmSeal: 'require',
    });
  }
  const tpmClaims = (id: string) =>
    claimsFor(id, {
      provider: 'tpm',
      format: 'tpm',
      identity: { cloud: 'baremetal', instanceId: id, proven: ['instanceId'] },
      release: { ekPublic: Buffer.from(tpm.read('ek.pub')).toString('base64url'), akName: Buffer.from(tpm.read('ak1.name')).toString('hex') },
    });

  it('only the TPM with that EK and AK opens it; the inner layer is still sealed to the ephemeral key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
    const jwk = await exportJWK(publicKey);
    const nonce = randomBytes(32);
    const binding = createHash('sha256').update(Buffer.concat([nonce, Buffer.from(await calculateJwkThumbprint(jwk), 'base64url')])).digest();
    const outer = (await service().release({
      claims: tpmClaims('tpm-node-1'),
      decision: decisionFor(),
      want: ['bootstrap-token'],
      ephemeralKey: jwk,
      nonce: nonce.toString('base64url'),
      binding: binding.toString('base64url'),
      requestId: 'r',
    })) as string;
    const h = decodeProtectedHeader(outer) as { alg: string; tpm_cred: string; cty: string };
    expect(h.alg).toBe('dir');
    expect(h.cty).toBe('JWE');
    const cred = Buffer.from(h.tpm_cred, 'base64url');
    expect(await activate('ak2', cred)).toBeUndefined(); // another AK in the same TPM: refused
    const key = await activate('ak1', cred);
    expect(key).toBeDefined();
    const inner = Buffer.from((await compactDecrypt(outer, key!)).plaintext).toString();
    const rel = JSON.parse(Buffer.from((await compactDecrypt(inner, privateKey)).plaintext).toString()) as ReleaseObject;
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\./);
  });

  it('TPM sealing alone satisfies "sealed" when no ephemeral key is sent; require refuses a tpm node without EK', async () => {
    const outer = (await service().release({ claims: tpmClaims('tpm-node-2'), decision: decisionFor(), want: ['bootstrap-token'], requestId: 'r' })) as string;
    const key = await activate('ak1', Buffer.from((decodeProtectedHeader(outer) as { tpm_cred: string }).tpm_cred, 'base64url'));
    const rel = JSON.parse(Buffer.from((await compactDecrypt(outer, key!)).plaintext).toString()) as ReleaseObject;
    expect(rel.nodeName).toBe(decisionFor().nodeName);
    const noEk = { ...tpmClaims('tpm-node-3'), release: {} };
    await expect(service().release({ claims: noEk, decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' })).rejects.toMatchObject({
      code: 'TPM_SEAL_UNAVAILABLE',
    });
  });
});
