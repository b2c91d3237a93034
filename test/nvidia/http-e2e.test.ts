/**
 * Composite evidence over HTTP (`app.request()`): a swtpm node's `tpm` quote plus the real
 * pre-v2.3.0 H100 report attached as `devices: [{kind: 'nvidia-gpu', evidence}]` (the nvtrust
 * JSON array, unchanged), verified by the production NVIDIA verifier (pinned NVIDIA roots, NVIDIA's
 * test RIMs) and judged by the real policy engine:
 * admitted by a policy requiring one Hopper GPU in CC mode, refused by one requiring eight, or
 * a newer driver.
 *
 * Simulated link, said plainly: a captured GPU report carries a fixed nonce, and the binding is
 * SHA-256 over the challenge nonce when an ephemeral key is sent. So this node sends none
 * (binding = nonce, protocol §2), and the challenge is put in the broker's store with that
 * report's nonce as if the broker had drawn it. The swtpm quote is made over the same value, so
 * CPU and GPU evidence answer one challenge. Everything after the store is the production path.
 * The clock is pinned inside the validity of the test RIMs' signers (fixtures.PRE230_TIME); the
 * swtpm AK is pinned by its SHA-256 (no EK certificate: swtpm's would not be valid at that time).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createPolicyEngine, loadPolicyText } from '../../broker/policy/index.js';
import { fromHex, toBase64Url } from '../../providers/common/encoding.js';
import { nvidiaDeviceVerifier } from '../../providers/nvidia/index.js';
import type { TrustStore } from '../../providers/common/types.js';
import { postJson, testBroker } from '../helpers/broker.js';
import { echoRelease } from '../helpers/test-provider.js';
import { describeSwtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { readVectorText } from '../helpers/vectors.js';
import { setupTpmNode, type TpmNode } from '../tpm/node.js';
import { entryFor, nvidiaTrust, offlineFetch, PRE230, PRE230_TIME, SAMPLES } from './fixtures.js';

const NONCE = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
const clock = { now: () => PRE230_TIME };

function policy(gpus: string): string {
  return `apiVersion: attest-broker/v1
kind: JoinPolicy
version: gpu-e2e
defaultCluster: gpu-pool
clusters:
  gpu-pool:
    providers:
      tpm: {formats: [tpm]}
    tpm: {akTrust: [pinned], pinnedAks: any}
    platform: {tee: any, debug: any, snpTcb: any, tdx: any}
    identity:
      tpm: any
    boot: {secureBoot: any}
    images: any
    gpus: ${gpus}
    nodeName:
      tpm: {from: tpm-instance-id, prefix: gpu-}
    release: {tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: true, diskKey: false}
    explain: true
`;
}

describeSwtpm('composite evidence over HTTP: swtpm quote + attached H100 report, GPU policy', () => {
  let tpm: Swtpm;
  let node: TpmNode;
  let trust: TrustStore;
  /** The node's AK, pinned (the tpm provider's operator allow-list), so its identity is proven. */
  let akSha256: string;

  beforeAll(async () => {
    tpm = await startSwtpm();
    node = await setupTpmNode(tpm);
    trust = await nvidiaTrust();
    const probe = crypto.getRandomValues(new Uint8Array(32));
    const c = await PROVIDER_FACTORIES.tpm!({}, { store: new MemoryStore() }).verify('tpm', await node.evidence(1, probe), { binding: probe, now: new Date(), trust, fetch: offlineFetch, options: {} });
    akSha256 = c.tpm!.akSha256;
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
  });

  async function attest(gpus: string, opts: { attach?: boolean; devices?: boolean } = {}): Promise<Response> {
    const store = new MemoryStore({ clock });
    const loaded = await loadPolicyText(policy(gpus), PRE230_TIME);
    const { app } = testBroker({
      store,
      clock,
      providers: [PROVIDER_FACTORIES.tpm!({ pinnedAkSha256: [akSha256] }, { store })],
      trust,
      policy: createPolicyEngine(loaded, { clock }),
      release: echoRelease,
      ...(opts.devices === false
        ? {}
        : {
            devices: {
              'nvidia-gpu': nvidiaDeviceVerifier(
                {
                  requireReportFwid: false, // the pre-v2.3.0 report predates FWIDs in reports
                  ocsp: { mode: 'off' },
                  rims: {
                    service: 'off',
                    static: {
                      'NV_GPU_DRIVER_GH100_545.00': readVectorText(`${SAMPLES}/Driver_RIM_test_no_gpu.swidtag`),
                      NV_GPU_VBIOS_1010_0200_882_96005E0001: readVectorText(`${SAMPLES}/1010_0200_882_96005E0001_test_no_gpu.swidtag`),
                    },
                  },
                },
                { fetch: offlineFetch },
              ),
            },
          }),
    });
    // The simulated link (module doc): the challenge carries the captured report's nonce.
    const challengeId = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    const nonce = fromHex(NONCE);
    await store.putChallenge(
      challengeId,
      { nonce: toBase64Url(nonce), issuedAt: PRE230_TIME.toISOString(), expiresAt: new Date(PRE230_TIME.getTime() + 120_000).toISOString(), provider: 'tpm', cluster: 'gpu-pool' },
      120_000,
    );
    const gpu = entryFor(`${PRE230}/attestationReport.txt`, `${PRE230}/gpuAkCertChain.txt`, NONCE);
    return postJson(app, '/v1/attest', {
      challengeId,
      provider: 'tpm',
      format: 'tpm',
      evidence: await node.evidence(1, nonce),
      ...(opts.attach === false ? {} : { devices: [{ kind: 'nvidia-gpu', evidence: [gpu] }] }),
    });
  }

  it('admitted by a policy requiring one Hopper GPU in CC mode (driver ≥ 545, VBIOS ≥ 96.00.5E)', async () => {
    const r = await attest('{count: {min: 1, max: 1}, arch: [hopper], ccMode: required, ppcie: any, minDriverVersion: "545.00", minVbiosVersion: "96.00.5E.00.01", boardIds: any}');
    expect(r.status, await r.clone().text()).toBe(200);
    expect(((await r.json()) as { release: { nodeName: string } }).release.nodeName).toMatch(/^gpu-/);
  });

  it.each([
    ['eight GPUs', '{count: {min: 8, max: 8}, arch: [hopper], ccMode: required, ppcie: any, minDriverVersion: any, minVbiosVersion: any, boardIds: any}', 'POLICY_GPU_COUNT'],
    ['Blackwell only', '{count: {min: 1}, arch: [blackwell], ccMode: any, ppcie: any, minDriverVersion: any, minVbiosVersion: any, boardIds: any}', 'POLICY_GPU_ARCH_NOT_ALLOWED'],
    ['a newer driver', '{count: {min: 1}, arch: any, ccMode: any, ppcie: any, minDriverVersion: "550.90.07", minVbiosVersion: any, boardIds: any}', 'POLICY_GPU_DRIVER_TOO_OLD'],
    ['a newer VBIOS', '{count: {min: 1}, arch: any, ccMode: any, ppcie: any, minDriverVersion: any, minVbiosVersion: "96.00.9F.00.01", boardIds: any}', 'POLICY_GPU_VBIOS_TOO_OLD'],
    ['protected PCIe', '{count: {min: 1}, arch: any, ccMode: any, ppcie: required, minDriverVersion: any, minVbiosVersion: any, boardIds: any}', 'POLICY_GPU_PPCIE_OFF'],
  ])('refused by a policy requiring %s (%s)', async (_what, gpus, code) => {
    const r = await attest(gpus);
    expect(r.status).toBe(403);
    const p = (await r.json()) as { code: string; rules?: Array<{ code: string }> };
    expect(p.code).toBe('POLICY_DENIED');
    expect(p.rules?.map((x) => x.code)).toEqual([code]);
  });

  it('a node without GPU evidence is refused where GPUs are required', async () => {
    const r = await attest('{count: {min: 1}, arch: any, ccMode: any, ppcie: any, minDriverVersion: any, minVbiosVersion: any, boardIds: any}', { attach: false });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { rules?: Array<{ code: string }> }).rules?.map((x) => x.code)).toEqual(['POLICY_GPU_COUNT']);
  });

  it('GPU evidence for a broker that verifies none is refused, never ignored (DEVICE_UNSUPPORTED)', async () => {
    const r = await attest('any', { devices: false });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { code: string }).code).toBe('DEVICE_UNSUPPORTED');
  });
});
