/**
 * @module broker/devices.node
 *
 * Node-only preparation of device-verifier options before `buildDevices` (broker/providers.ts):
 * `devices.nvidia.options.rims.dir`, a directory of `<RIM id>.xml` files (NVIDIA's SWID RIMs,
 * e.g. downloaded from the RIM service for an air-gapped site), is read once at start into
 * `rims.static`. The verifier never reads files, so Workers keep Web APIs only; there a set `dir`
 * is refused by the verifier's own options check.
 *
 * Fail closed, with what to do next: a missing or unreadable directory, an entry not named
 * `<RIM id>.xml`, a file over the RIM size limit, a RIM id given twice (static and dir), or a
 * directory with no RIM at all stops the start. The files are only read here; every RIM is still
 * verified (XML-DSig to the pinned CoRIM root, its signer's validity at the request's time) each
 * time it is used, exactly as a static or fetched one.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RIM_ID_RE } from '../providers/nvidia/rimsource.js';
import { XML_LIMITS } from '../providers/nvidia/xml.js';
import { ConfigProblem, type BrokerConfig } from './config/schema.js';

const WHERE = 'devices.nvidia.options.rims.dir';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The RIMs of `dir` by id, or the problems that stop the start. */
export function readRimDir(dir: string): { rims: Record<string, string>; problems: string[] } {
  const rims: Record<string, string> = {};
  const problems: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    return { rims, problems: [`${WHERE}: cannot read ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}): create it with the RIM files, or remove rims.dir`] };
  }
  for (const name of names) {
    const id = name.endsWith('.xml') ? name.slice(0, -4) : '';
    if (!RIM_ID_RE.test(id)) {
      problems.push(`${WHERE}: ${join(dir, name)} is not named <RIM id>.xml (for example NV_GPU_DRIVER_GH100_545.00.xml, the id NVIDIA's RIM service serves it under): rename or remove it`);
      continue;
    }
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (!st.isFile()) {
        problems.push(`${WHERE}: ${path} is not a regular file`);
        continue;
      }
      if (st.size === 0 || st.size > XML_LIMITS.maxBytes) {
        problems.push(`${WHERE}: ${path} is ${st.size} bytes; a RIM is 1 to ${XML_LIMITS.maxBytes} bytes`);
        continue;
      }
      rims[id] = readFileSync(path, 'utf8');
    } catch (e) {
      problems.push(`${WHERE}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }
  if (names.length === 0) problems.push(`${WHERE}: ${dir} holds no RIM: put the <RIM id>.xml files there, or remove rims.dir`);
  return { rims, problems };
}

/**
 * `cfg` with `devices.nvidia.options.rims.dir` read into `rims.static` (and `dir` removed), or
 * `cfg` itself when no directory is configured. Throws ConfigProblem.
 */
export function resolveDeviceFiles(cfg: BrokerConfig): BrokerConfig {
  const devices = cfg.devices as Readonly<Record<string, unknown>>;
  const nvidia = devices['nvidia'];
  if (!isObj(nvidia) || !isObj(nvidia.options) || !isObj(nvidia.options.rims)) return cfg;
  const rimsIn = nvidia.options.rims;
  if (rimsIn.dir === undefined) return cfg;
  if (typeof rimsIn.dir !== 'string' || rimsIn.dir === '') throw new ConfigProblem([`${WHERE}: must be a directory path`]);
  const { rims, problems } = readRimDir(rimsIn.dir);
  const given = isObj(rimsIn.static) ? rimsIn.static : {};
  for (const id of Object.keys(rims)) if (id in given) problems.push(`${WHERE}: ${id} is in rims.static too: keep one of them`);
  if (problems.length) throw new ConfigProblem(problems);
  const { dir: _dir, ...rest } = rimsIn;
  return {
    ...cfg,
    devices: { ...devices, nvidia: { ...nvidia, options: { ...nvidia.options, rims: { ...rest, static: { ...given, ...rims } } } } },
  } as unknown as BrokerConfig;
}
