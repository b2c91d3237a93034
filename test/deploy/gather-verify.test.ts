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
 * instance-info extension; keyUsage digitalSignature) — test/deploy/cloud-layouts.ts `layOutGce`.
 * It is given to the verifier under that pin id. Everything else is the production path. That the
 * verifier accepts Google's real certificates is shown by test/gcp on the go-tpm-tools and
 * vaportpm vectors. Both clients (shell and Node) together: gather-both.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createPrimaryFromTemplate, gatherGcp, type GatherOptions } from '../../deploy/node/client/evidence.node.js';
import { createToolRunner, openTpmSession, type TpmSession } from '../../deploy/node/client/tpm.node.js';
import { AttestError } from '../../providers/common/errors.js';
import type { TrustStore } from '../../providers/common/types.js';
import { GCE, GCE_ECC_AK_TEMPLATE, layOutGce } from './cloud-layouts.js';
import { startSwtpm, type Swtpm } from './swtpm.js';

const ZONE = GCE.zone;
const PROJECT = GCE.project;
const INSTANCE_ID = GCE.instanceId;
const INSTANCE_NAME = GCE.instanceName;

describe('GCP gatherer on swtpm (GCE NV layout) → the broker’s gcp verifier', () => {
  let tpm: Swtpm;
  let work: string;
  let trust: TrustStore;
  const sessions: TpmSession[] = [];

  const session = async (): Promise<TpmSession> => {
    const s = await openTpmSession(createToolRunner(tpm.env));
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    tpm = await startSwtpm({ banks: 'sha1,sha256' });
    work = mkdtempSync(join(tmpdir(), 'gather-verify-'));
    // GCE's layout; the AK the template makes (deterministic) is certified as Google certifies it.
    ({ trust } = await layOutGce(tpm, async () => {
      const s = await session();
      await createPrimaryFromTemplate(s, GCE_ECC_AK_TEMPLATE, 'e', 'probe-ak');
      execFileSync('tpm2_readpublic', ['-c', s.file('probe-ak.ctx'), '-f', 'pem', '-o', join(work, 'ak.pem')], { env: tpm.env, stdio: 'ignore' });
      await s.flush();
      return readFileSync(join(work, 'ak.pem'), 'utf8');
    }));
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
