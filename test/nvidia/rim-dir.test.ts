/**
 * `devices.nvidia.options.rims.dir` (broker/devices.node.ts): NVIDIA's RIMs from a directory of
 * `<RIM id>.xml` files, for a broker that cannot reach the RIM service. Through the broker's own
 * start path (parseConfig → resolveDeviceFiles → buildDevices): the real pre-v2.3.0 H100 report
 * is accepted with every active measurement matched against the test RIMs read from the
 * directory (measurements required, service off, OCSP off, clock inside the RIM signers'
 * validity). Files are only read: a RIM from the directory is still verified on use (a RIM
 * whose signed XML was altered refuses the evidence). Each way a directory can be wrong stops the
 * start with the path named; a verifier on a runtime that did not read the directory (Workers)
 * refuses the option instead of running without RIMs.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../broker/config/schema.js';
import { resolveDeviceFiles } from '../../broker/devices.node.js';
import { buildDevices } from '../../broker/providers.js';
import { fromHex } from '../../providers/common/encoding.js';
import type { TrustStore } from '../../providers/common/types.js';
import { nvidiaDeviceVerifier } from '../../providers/nvidia/index.js';
import { readVectorText } from '../helpers/vectors.js';
import { entryFor, nvidiaTrust, offlineFetch, PRE230, PRE230_TIME, SAMPLES } from './fixtures.js';

const NONCE = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
const DRIVER = 'NV_GPU_DRIVER_GH100_545.00';
const VBIOS = 'NV_GPU_VBIOS_1010_0200_882_96005E0001';
const driverXml = (): string => readVectorText(`${SAMPLES}/Driver_RIM_test_no_gpu.swidtag`);
const vbiosXml = (): string => readVectorText(`${SAMPLES}/1010_0200_882_96005E0001_test_no_gpu.swidtag`);

let trust: TrustStore;
beforeAll(async () => {
  trust = await nvidiaTrust();
});

/** A directory holding `files` (name → text). */
function dirWith(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'rims-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(d, n), t);
  return d;
}

const config = (rims: Record<string, unknown>) =>
  parseConfig({
    devices: { nvidia: { enabled: true, options: { requireReportFwid: false, measurements: 'require', ocsp: { mode: 'off' }, rims: { service: 'off', ...rims } } } },
    trust: { dir: '/nonexistent' },
  });

/** The broker's start path for devices, then the H100 report through the verifier it built. */
async function verifyWith(rims: Record<string, unknown>) {
  const devices = buildDevices(resolveDeviceFiles(config(rims)), trust, { fetch: offlineFetch });
  const gpu = entryFor(`${PRE230}/attestationReport.txt`, `${PRE230}/gpuAkCertChain.txt`, NONCE);
  return devices!['nvidia-gpu']!.verify([gpu], { binding: fromHex(NONCE), now: PRE230_TIME, trust });
}

const problemOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect((e as Error).name).toBe('ConfigProblem');
    return (e as Error).message;
  }
  throw new Error('no ConfigProblem');
};

describe('devices.nvidia.options.rims.dir', () => {
  it('the H100 report is accepted with its measurements matched against RIMs read from the directory alone', async () => {
    const dir = dirWith({ [`${DRIVER}.xml`]: driverXml(), [`${VBIOS}.xml`]: vbiosXml() });
    const [g, ...rest] = await verifyWith({ dir });
    expect(rest).toHaveLength(0);
    expect(g).toMatchObject({ vendor: 'nvidia', arch: 'hopper', measurementsOk: true, driverVersion: '545.00' });
  });

  it('the directory replaces nothing: without it (and without the service) the same evidence has no RIM and is refused', async () => {
    await expect(verifyWith({})).rejects.toMatchObject({ code: 'NVIDIA_RIM_MISSING' });
    // And with only the driver RIM there, the VBIOS RIM is missing.
    await expect(verifyWith({ dir: dirWith({ [`${DRIVER}.xml`]: driverXml() }) })).rejects.toMatchObject({ code: 'NVIDIA_RIM_MISSING' });
  });

  it('files are read, not trusted: a RIM whose signed XML was altered refuses the evidence', async () => {
    const x = driverXml();
    const i = x.indexOf('colloquialVersion="') + 'colloquialVersion="'.length;
    const altered = x.slice(0, i) + (x[i] === '9' ? '8' : '9') + x.slice(i + 1);
    const dir = dirWith({ [`${DRIVER}.xml`]: altered, [`${VBIOS}.xml`]: vbiosXml() });
    const e = await verifyWith({ dir }).then(
      () => undefined,
      (err: { code?: string }) => err,
    );
    expect(e?.code, String(e)).toBe('NVIDIA_RIM_DIGEST_MISMATCH');
  });

  it('stops the start, naming the path, for each way the directory can be wrong', () => {
    const missing = join(tmpdir(), 'no-such-rim-dir-' + process.pid);
    expect(problemOf(() => resolveDeviceFiles(config({ dir: missing })))).toMatch(/rims\.dir: cannot read .*no-such-rim-dir.* \(ENOENT\)/);
    expect(problemOf(() => resolveDeviceFiles(config({ dir: dirWith({}) })))).toMatch(/holds no RIM/);
    expect(problemOf(() => resolveDeviceFiles(config({ dir: dirWith({ 'driver.swidtag': driverXml() }) })))).toMatch(/driver\.swidtag is not named <RIM id>\.xml/);
    expect(problemOf(() => resolveDeviceFiles(config({ dir: dirWith({ [`${DRIVER}.xml`]: '' }) })))).toMatch(/is 0 bytes; a RIM is 1 to 262144 bytes/);
    expect(problemOf(() => resolveDeviceFiles(config({ dir: dirWith({ [`${DRIVER}.xml`]: 'x'.repeat(256 * 1024 + 1) }) })))).toMatch(/is 262145 bytes/);
    const sub = dirWith({ [`${VBIOS}.xml`]: vbiosXml() });
    mkdirSync(join(sub, `${DRIVER}.xml`));
    expect(problemOf(() => resolveDeviceFiles(config({ dir: sub })))).toMatch(/NV_GPU_DRIVER_GH100_545\.00\.xml is not a regular file/);
    const twice = dirWith({ [`${DRIVER}.xml`]: driverXml() });
    expect(problemOf(() => resolveDeviceFiles(config({ dir: twice, static: { [DRIVER]: driverXml() } })))).toMatch(/NV_GPU_DRIVER_GH100_545\.00 is in rims\.static too/);
  });

  it('a configuration without rims.dir is passed through unchanged', () => {
    const cfg = config({ static: { [DRIVER]: driverXml() } });
    expect(resolveDeviceFiles(cfg)).toBe(cfg);
    const plain = parseConfig({});
    expect(resolveDeviceFiles(plain)).toBe(plain);
  });

  it('a runtime that did not read the directory (Workers) refuses rims.dir: OPTIONS_INVALID, never an empty RIM set', () => {
    expect(() => nvidiaDeviceVerifier({ rims: { dir: '/etc/attest-broker/rims' } }, { fetch: offlineFetch })).toThrow(
      expect.objectContaining({ code: 'NVIDIA_OPTIONS_INVALID', message: expect.stringContaining('rims.dir') }),
    );
    // And through buildDevices, as a configuration problem naming the option.
    const p = problemOf(() => buildDevices(config({ dir: '/etc/attest-broker/rims' }), trust, { fetch: offlineFetch }));
    expect(p).toMatch(/devices\.nvidia\.options: .*rims\.dir/);
  });
});
