/**
 * A pool of real quotes from swtpm, generated once per test file and mutated in memory.
 *
 * AKs are created under an owner-hierarchy ECC primary with the attributes of an attestation key
 * (fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign) and made persistent,
 * so a quote loads nothing transient. PCRs are first extended with random events in every bank
 * so the quoted values are not all zero.
 */
import { randomBytes } from 'node:crypto';
import type { Swtpm } from '../helpers/swtpm.js';
import type { PcrBank } from '../../providers/common/types.js';
import type { SignScheme, TpmHash } from '../../providers/tpm/structures.js';

export interface AkSpec {
  readonly id: string;
  /** tpm2-tools key algorithm spec (restricted signing keys need a null symmetric). */
  readonly alg: string;
  readonly scheme: SignScheme;
  readonly hash: TpmHash;
  readonly handle: string;
}

export const AK_SPECS: readonly AkSpec[] = [
  { id: 'rsa2048-rsassa-sha256', alg: 'rsa2048:rsassa-sha256:null', scheme: 'rsassa', hash: 'sha256', handle: '0x81000101' },
  { id: 'rsa2048-rsapss-sha256', alg: 'rsa2048:rsapss-sha256:null', scheme: 'rsapss', hash: 'sha256', handle: '0x81000102' },
  { id: 'ecc256-ecdsa-sha256', alg: 'ecc256:ecdsa-sha256:null', scheme: 'ecdsa', hash: 'sha256', handle: '0x81000103' },
  { id: 'ecc384-ecdsa-sha384', alg: 'ecc384:ecdsa-sha384:null', scheme: 'ecdsa', hash: 'sha384', handle: '0x81000104' },
  { id: 'rsa2048-rsassa-sha1', alg: 'rsa2048:rsassa-sha1:null', scheme: 'rsassa', hash: 'sha1', handle: '0x81000105' },
  { id: 'rsa3072-rsassa-sha384', alg: 'rsa3072:rsassa-sha384:null', scheme: 'rsassa', hash: 'sha384', handle: '0x81000106' },
];

/** PCR selections quoted with every AK (tpm2-tools syntax). */
export const SELECTIONS: readonly string[] = [
  'sha256:0,1,2,3,4,5,6,7',
  'sha1:0,7',
  `sha384:${Array.from({ length: 24 }, (_, i) => i).join(',')}`,
  'sha1:0,1+sha256:7,11+sha384:4',
  'sha256:23',
  `sha256:${Array.from({ length: 24 }, (_, i) => i).join(',')}`,
];

export interface PoolAk {
  readonly spec: AkSpec;
  /** TPM2B_PUBLIC as written by tpm2_create -u. */
  readonly tpm2bPublic: Uint8Array;
  /** The same file on disk (for tpm2_checkquote -u). */
  readonly pubPath: string;
}

export interface PoolQuote {
  readonly ak: PoolAk;
  readonly selection: string;
  readonly nonce: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly pcrs: Partial<Record<PcrBank, Record<number, string>>>;
  /** tpm2_quote -o output: tpm2-tools' serialized PCR file (host-endian C structs). */
  readonly pcrsOut: Uint8Array;
}

/** Parses the `pcrs:` section tpm2_quote prints (YAML: bank, then `idx : 0xHEX`). */
export function parseQuotePcrs(stdout: string): Partial<Record<PcrBank, Record<number, string>>> {
  const out: Partial<Record<PcrBank, Record<number, string>>> = {};
  const lines = stdout.split('\n');
  const start = lines.findIndex((l) => l.trim() === 'pcrs:');
  let bank: PcrBank | undefined;
  for (const l of lines.slice(start + 1)) {
    const b = /^\s{2}(sha1|sha256|sha384):\s*$/.exec(l);
    if (b) {
      bank = b[1] as PcrBank;
      out[bank] = {};
      continue;
    }
    const v = /^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(l);
    if (v && bank) (out[bank] as Record<number, string>)[Number(v[1])] = (v[2] as string).toLowerCase();
    else if (!/^\s/.test(l)) break;
  }
  return out;
}

export async function createAks(tpm: Swtpm, specs: readonly AkSpec[] = AK_SPECS): Promise<PoolAk[]> {
  await tpm.tpm2('tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'prim.ctx', '-Q']);
  const out: PoolAk[] = [];
  for (const spec of specs) {
    await tpm.tpm2('tpm2_create', [
      '-C', 'prim.ctx', '-G', spec.alg,
      '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign',
      '-u', `${spec.id}.pub`, '-r', `${spec.id}.priv`, '-Q',
    ]);
    await tpm.flush();
    await tpm.tpm2('tpm2_load', ['-C', 'prim.ctx', '-u', `${spec.id}.pub`, '-r', `${spec.id}.priv`, '-c', `${spec.id}.ctx`, '-Q']);
    await tpm.tpm2('tpm2_evictcontrol', ['-c', `${spec.id}.ctx`, spec.handle, '-Q']);
    await tpm.flush();
    out.push({ spec, tpm2bPublic: tpm.read(`${spec.id}.pub`), pubPath: tpm.file(`${spec.id}.pub`) });
  }
  return out;
}

/** Extends some PCRs in every bank with random events (tpm2_pcrevent hashes into all banks). */
export async function extendPcrs(tpm: Swtpm, pcrs: readonly number[] = [0, 1, 2, 4, 7, 11, 23]): Promise<void> {
  for (const p of pcrs) {
    tpm.write('event.bin', randomBytes(48));
    await tpm.tpm2('tpm2_pcrevent', [String(p), 'event.bin']);
  }
}

let seq = 0;
export async function quote(tpm: Swtpm, ak: PoolAk, selection: string, nonce: Uint8Array = new Uint8Array(randomBytes(32))): Promise<PoolQuote> {
  const n = seq++;
  const args = ['-c', ak.spec.handle, '-l', selection, '-q', Buffer.from(nonce).toString('hex'), '-m', `q${n}.msg`, '-s', `q${n}.sig`, '-o', `q${n}.pcrs`, '-g', ak.spec.hash];
  if (ak.spec.scheme === 'rsapss') args.push('--scheme', 'rsapss');
  const stdout = await tpm.tpm2('tpm2_quote', args);
  return { ak, selection, nonce, message: tpm.read(`q${n}.msg`), signature: tpm.read(`q${n}.sig`), pcrs: parseQuotePcrs(stdout), pcrsOut: tpm.read(`q${n}.pcrs`) };
}

/** Every AK × every selection. */
export async function buildPool(tpm: Swtpm): Promise<{ aks: PoolAk[]; quotes: PoolQuote[] }> {
  const aks = await createAks(tpm);
  await extendPcrs(tpm);
  const quotes: PoolQuote[] = [];
  for (const ak of aks) for (const sel of SELECTIONS) quotes.push(await quote(tpm, ak, sel));
  return { aks, quotes };
}
