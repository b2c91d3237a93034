/**
 * The join client's GCP gatherer, end to end into the broker's GCP verifier: swtpm laid out like a
 * GCE vTPM (the ECC AK template at NV 0x01c10003, the AK certificate at 0x01c10002), gathered by
 * `gatherGcp` (AK made from the template, a quote of every allocated bank over the binding, the
 * gotpm protobuf), and accepted by the production `gcp` provider. The claims name the instance the
 * AK certificate names.
 *
 * Simulated link, said plainly: Google's AK CA cannot sign for this swtpm. So a test CA stands in
 * for the pinned "EK/AK CA Root" (`google-ekak-root`): it issues the AK certificate in Google's
 * current profile (subject O=Google Compute Engine, L=zone, OU=project, CN=instance id; the GCE
 * instance-info extension; keyUsage digitalSignature). It is given to the verifier under that pin
 * id. Everything else is the production path. That the verifier accepts Google's real certificates
 * is shown by test/gcp on the go-tpm-tools and vaportpm vectors.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createPrimaryFromTemplate, gatherGcp, NV, type GatherOptions } from '../../deploy/node/client/evidence.node.js';
import { createToolRunner, openTpmSession, type TpmSession } from '../../deploy/node/client/tpm.node.js';
import { AttestError } from '../../providers/common/errors.js';
import { PinIds } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import type { TrustStore } from '../../providers/common/types.js';
import { x509 } from '../../providers/common/x509.js';
import { startSwtpm, type Swtpm } from './swtpm.js';

const ZONE = 'europe-west4-a';
const PROJECT = 'attest-broker-test';
const PROJECT_NUMBER = 123456789012n;
const INSTANCE_ID = 4242424242424242424n;
const INSTANCE_NAME = 'gpu-node-1';

/** DER, by hand (X.690): the GceInstanceInfo the provider decodes (providers/gcp/instance-info.ts). */
function der(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
function uint(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let b = Buffer.from(hex, 'hex');
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return der(0x02, b);
}
const utf8 = (s: string): Buffer => der(0x0c, Buffer.from(s, 'utf8'));
function instanceInfo(): Buffer {
  const props = der(0x30, Buffer.concat([der(0xa0, uint(1n)), der(0xa1, der(0x01, Buffer.from([0xff])))]));
  return der(0x30, Buffer.concat([utf8(ZONE), uint(PROJECT_NUMBER), utf8(PROJECT), uint(INSTANCE_ID), utf8(INSTANCE_NAME), der(0xa0, props)]));
}

describe('GCP gatherer on swtpm (GCE NV layout) → the broker’s gcp verifier', () => {
  let tpm: Swtpm;
  let work: string;
  let trust: TrustStore;
  let caKeys: CryptoKeyPair;
  let caCert: x509.X509Certificate;
  const sessions: TpmSession[] = [];
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

  const nvDefineWrite = (index: number, data: Uint8Array): void => {
    const f = join(work, `nv-${index.toString(16)}`);
    writeFileSync(f, data);
    const h = '0x' + index.toString(16);
    execFileSync('tpm2_nvdefine', [h, '-C', 'o', '-s', String(data.length), '-a', 'ownerread|ownerwrite|authread|authwrite'], { env: tpm.env });
    execFileSync('tpm2_nvwrite', [h, '-C', 'o', '-i', f], { env: tpm.env });
  };
  const session = async (): Promise<TpmSession> => {
    const s = await openTpmSession(createToolRunner(tpm.env));
    sessions.push(s);
    return s;
  };

  /** An AK certificate in Google's current profile for `spki`, by the stand-in CA. */
  async function akCert(spkiPem: string): Promise<Buffer> {
    const publicKey = new x509.PublicKey(spkiPem);
    const c = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
      subject: `O=Google Compute Engine, L=${ZONE}, OU=${PROJECT}, CN=${INSTANCE_ID}`,
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      signingAlgorithm: alg,
      publicKey: await publicKey.export(alg, ['verify']),
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.Extension('1.3.6.1.4.1.11129.2.1.21', false, new Uint8Array(instanceInfo())),
      ],
    });
    return Buffer.from(c.rawData);
  }

  beforeAll(async () => {
    tpm = await startSwtpm({ banks: 'sha1,sha256' });
    work = mkdtempSync(join(tmpdir(), 'gather-verify-'));
    caKeys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=stand-in for Google EK/AK CA Root',
      notBefore: new Date(Date.now() - 86_400_000),
      notAfter: new Date(Date.now() + 30 * 86_400_000),
      signingAlgorithm: alg,
      keys: caKeys,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    const caDer = new Uint8Array(caCert.rawData);
    trust = createTrustStore([
      await anchorFromBytes({ id: PinIds.GOOGLE_EKAK_ROOT, sha256: createHash('sha256').update(caDer).digest('hex'), source: 'test: stands in for Google (module doc)' }, caDer),
    ]);
    // The GCE ECC AK template (go-tpm-tools): ECC P-256 restricted signing, zero-filled unique.
    const template = Buffer.from('0023000b00050072000000100018000b000300100020' + '00'.repeat(32) + '0020' + '00'.repeat(32), 'hex');
    nvDefineWrite(NV.GCE_AK_TEMPLATE_ECC, template);
    // The AK the template makes (deterministic), certified as Google certifies it.
    const s = await session();
    await createPrimaryFromTemplate(s, template, 'e', 'probe-ak');
    execFileSync('tpm2_readpublic', ['-c', s.file('probe-ak.ctx'), '-f', 'pem', '-o', join(work, 'ak.pem')], { env: tpm.env, stdio: 'ignore' });
    await s.flush();
    const cert = await akCert(readFileSync(join(work, 'ak.pem'), 'utf8'));
    nvDefineWrite(NV.GCE_AK_CERT_ECC, Buffer.concat([cert, Buffer.alloc(32)])); // NV padding, as on GCE
  }, 60_000);
  afterAll(async () => {
    for (const s of sessions) await s.close().catch(() => undefined);
    await tpm?.stop();
  });

  const gather = async (binding: Uint8Array) => {
    const o: GatherOptions = { session: await session(), binding, fetch, eventLogPath: '/nonexistent', imdsBase: 'http://127.0.0.1:1', nitroTpmAttest: 'nitro-tpm-attest', log: () => undefined };
    return gatherGcp(o);
  };
  const verify = (evidence: Record<string, unknown>, binding: Uint8Array) =>
    PROVIDER_FACTORIES.gcp!({}, { store: new MemoryStore() }).verify('gotpm', evidence, { binding, now: new Date(), trust, fetch, options: {} });

  it('the gathered gotpm evidence is accepted, with the identity the AK certificate names', async () => {
    const binding = new Uint8Array(randomBytes(32));
    const g = await gather(binding);
    expect(g.format).toBe('gotpm');
    const c = await verify(g.evidence, binding);
    expect(c.identity).toMatchObject({ cloud: 'gcp', account: PROJECT, zone: ZONE, instanceId: INSTANCE_ID.toString(), instanceName: INSTANCE_NAME });
    expect(c.identity.proven).toEqual(expect.arrayContaining(['account', 'zone', 'instanceId', 'instanceName']));
    expect(c.tpm?.akTrust).toBe('cloud-certified');
    expect(Object.keys(c.tpm?.pcrs.sha256 ?? {})).toHaveLength(24);
  });

  it('another binding (a replayed quote) is refused: NONCE_MISMATCH', async () => {
    const binding = new Uint8Array(randomBytes(32));
    const g = await gather(binding);
    const other = new Uint8Array(randomBytes(32));
    const e = await verify(g.evidence, other).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AttestError);
    expect((e as AttestError).code).toBe('NONCE_MISMATCH');
  });
});
