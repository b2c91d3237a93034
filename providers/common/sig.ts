/**
 * @module providers/common/sig
 *
 * Signature verification with WebCrypto semantics. `crypto.subtle.verify` is asynchronous: on
 * Node every call is a thread-pool job plus promises, which costs more than an RSA-2048 verify
 * itself. Where the runtime offers `node:crypto` (reached through `process.getBuiltinModule`, so
 * this module stays importable on Workers), the same check runs synchronously on the same key
 * (`KeyObject.from(CryptoKey)`); anything it does not handle exactly like WebCrypto — another
 * algorithm, a key whose algorithm or usages do not match, an input it throws on — goes to
 * `crypto.subtle.verify`, which then decides (and throws) as before. Both paths agree on every
 * input in test/common/sig.test.ts.
 *
 * RSA (small public exponent) and ECDSA P-256 always go synchronous. ECDSA P-384/P-521 verifies
 * cost hundreds of µs; as a thread-pool job they run beside the event loop, so one process uses
 * every core during a burst. That is only worth the job's overhead (measured on one core: ~600 µs
 * CPU per P-384 verify through `subtle.verify` against ~560 µs synchronously) when there is
 * another core to run it on, so by default (`'auto'`) they go synchronous exactly when this
 * process has a single core to itself (`availableParallelism()`, which honours the CPU affinity
 * mask). A runtime that gives each process its own core by other means (the broker's
 * `listen.workers` cluster) says so with `setSlowCurvesSync(true)`.
 */
type Params = AlgorithmIdentifier | RsaPssParams | EcdsaParams;

interface NodeOs {
  availableParallelism?: () => number;
}

/** Whether this process can run a thread-pool job beside its event loop (more than one core). */
function singleCore(): boolean {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const os = proc?.getBuiltinModule?.('node:os') as NodeOs | undefined;
  try {
    return typeof os?.availableParallelism === 'function' && os.availableParallelism() <= 1;
  } catch {
    return false;
  }
}

interface NodeCrypto {
  verify(alg: string | null, data: Uint8Array, key: unknown, sig: Uint8Array): boolean;
  KeyObject: { from(k: CryptoKey): unknown };
  constants: { RSA_PKCS1_PSS_PADDING: number };
}

function detect(): NodeCrypto | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const m = proc?.getBuiltinModule?.('node:crypto') as Partial<NodeCrypto> | undefined;
  return m && typeof m.verify === 'function' && m.KeyObject && m.constants ? (m as NodeCrypto) : null;
}

let node: NodeCrypto | null = detect();
const KEY_OBJECTS = new WeakMap<CryptoKey, unknown>();

let slowCurvesSync = singleCore();

/**
 * Whether ECDSA P-384/P-521 verify synchronously (see the module header): `'auto'` (the default)
 * when this process has a single core; returns the previous setting.
 */
export function setSlowCurvesSync(on: boolean | 'auto'): boolean {
  const was = slowCurvesSync;
  slowCurvesSync = on === 'auto' ? singleCore() : on;
  return was;
}

/** Turns the synchronous path off (`false`) or back on; returns whether it was on. For tests. */
export function setSyncVerify(on: boolean): boolean {
  const was = node !== null;
  node = on ? detect() : null;
  return was;
}

const NODE_HASH: Record<string, string> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };
function hashOf(h: unknown): string | undefined {
  const name = typeof h === 'string' ? h : (h as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? NODE_HASH[name.toUpperCase()] : undefined;
}

function trySync(n: NodeCrypto, params: Params, key: CryptoKey, sig: Uint8Array, data: Uint8Array): boolean | undefined {
  const name = typeof params === 'string' ? params : params.name;
  // KeyObject.from needs an extractable key (Node 24 deprecates it otherwise: DEP0204); a public
  // key being extractable reveals nothing, so the broker imports its public keys extractable.
  if (key.type !== 'public' || !key.extractable || !key.usages.includes('verify') || key.algorithm.name !== name) return undefined;
  try {
    let ko = KEY_OBJECTS.get(key);
    if (ko === undefined) {
      ko = n.KeyObject.from(key);
      KEY_OBJECTS.set(key, ko);
    }
    switch (name) {
      case 'RSASSA-PKCS1-v1_5': {
        const h = hashOf((key.algorithm as KeyAlgorithm & { hash?: unknown }).hash);
        return h ? n.verify(h, data, ko, sig) : undefined;
      }
      case 'RSA-PSS': {
        const h = hashOf((key.algorithm as KeyAlgorithm & { hash?: unknown }).hash);
        const salt = (params as RsaPssParams).saltLength;
        if (!h || typeof salt !== 'number') return undefined;
        return n.verify(h, data, { key: ko, padding: n.constants.RSA_PKCS1_PSS_PADDING, saltLength: salt }, sig);
      }
      case 'ECDSA': {
        // P-384/P-521 verifies cost hundreds of µs: with a spare core the thread pool's
        // parallelism (both cores from one process, as in a burst of joins) is worth more than
        // the job overhead; on a single core it is pure overhead.
        const curve = (key.algorithm as KeyAlgorithm & { namedCurve?: string }).namedCurve;
        if (curve !== 'P-256' && !((curve === 'P-384' || curve === 'P-521') && slowCurvesSync)) return undefined;
        const h = hashOf((params as EcdsaParams).hash);
        return h ? n.verify(h, data, { key: ko, dsaEncoding: 'ieee-p1363' }, sig) : undefined;
      }
      default:
        return undefined;
    }
  } catch {
    return undefined; // WebCrypto decides (and reports) what node:crypto refused to evaluate
  }
}

/** `crypto.subtle.verify`, synchronously where the runtime allows it. */
export async function verifySignature(params: Params, key: CryptoKey, sig: Uint8Array, data: Uint8Array): Promise<boolean> {
  if (node) {
    const r = trySync(node, params, key, sig, data);
    if (r !== undefined) return r;
  }
  return crypto.subtle.verify(params, key, sig as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>);
}

const asBytes = (b: BufferSource): Uint8Array => (b instanceof Uint8Array ? b : ArrayBuffer.isView(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b));

/**
 * A `Crypto` for libraries that take one (@peculiar/x509's `verify(params, crypto)`): the real
 * WebCrypto, except that `subtle.verify` goes through `verifySignature`.
 */
export const FAST_VERIFY_CRYPTO: Crypto = {
  getRandomValues: <T extends ArrayBufferView | null>(a: T): T => crypto.getRandomValues(a as never) as T,
  randomUUID: () => crypto.randomUUID(),
  subtle: {
    verify: (p: Params, k: CryptoKey, s: BufferSource, d: BufferSource) => verifySignature(p, k, asBytes(s), asBytes(d)),
    importKey: (...a: Parameters<SubtleCrypto['importKey']>) => crypto.subtle.importKey(...a),
    exportKey: (...a: Parameters<SubtleCrypto['exportKey']>) => crypto.subtle.exportKey(...a),
    digest: (...a: Parameters<SubtleCrypto['digest']>) => crypto.subtle.digest(...a),
  } as unknown as SubtleCrypto,
};
