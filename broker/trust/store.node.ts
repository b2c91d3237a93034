/**
 * @module broker/trust/store.node
 *
 * Loads pinned roots from the trust directory written by `trust fetch` / `trust import`
 * (one `<pin-id>.pem` per built-in root) plus operator anchors from the config. Every file is
 * checked against its pin; a file whose hash differs stops start-up (someone replaced it).
 */
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_PINS } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import type { TrustStore } from '../../providers/common/types.js';
import type { TrustAnchor } from '../../providers/common/x509.js';
import { ConfigProblem, type BrokerConfig } from '../config/schema.js';

/**
 * Intermediates saved beside the roots (`<id>.intermediates.pem`: AMD's ASK/ASVK that came with
 * an ARK, the pinned Google EK/AK intermediates), PEM by file id, so each provider takes only
 * its own vendor's.
 */
export async function loadTrustIntermediates(trust: BrokerConfig['trust']): Promise<Record<string, string>> {
  if (!existsSync(trust.dir)) return {};
  const files = (await readdir(trust.dir)).filter((f) => f.endsWith('.intermediates.pem')).sort();
  const out: Record<string, string> = {};
  for (const f of files) out[f.slice(0, -'.intermediates.pem'.length)] = await readFile(join(trust.dir, f), 'utf8');
  return out;
}

export async function loadTrustStore(trust: BrokerConfig['trust']): Promise<TrustStore> {
  const anchors: TrustAnchor[] = [];
  const problems: string[] = [];
  const present = existsSync(trust.dir) ? new Set(await readdir(trust.dir)) : new Set<string>();
  for (const pin of BUILTIN_PINS) {
    const f = `${pin.id}.pem`;
    if (!present.has(f)) continue;
    try {
      anchors.push(await anchorFromBytes(pin, new Uint8Array(await readFile(join(trust.dir, f)))));
    } catch (e) {
      problems.push(`trust.dir: ${f}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (const a of trust.anchors) {
    try {
      anchors.push(await anchorFromBytes(a, new Uint8Array(await readFile(a.file))));
    } catch (e) {
      problems.push(`trust.anchors[${a.id}]: ${a.file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (problems.length) throw new ConfigProblem(problems);
  return createTrustStore(anchors);
}
