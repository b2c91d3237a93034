/**
 * The generic `tpm` provider end to end at the function level, with a real TPM (swtpm) as the
 * node and openssl as the TPM vendor's CA:
 * - AK trust (a): EK certificate (root → intermediate → EK, made by openssl over the swtpm EK)
 *   + credential activation: first attest → ACTIVATION_REQUIRED with a sealed credential;
 *   `tpm2_activatecredential` on the TPM recovers the secret; second attest (new nonce, new
 *   quote, activation answer) → akTrust 'ek-credential'. Replayed, wrong or cross-AK answers,
 *   untrusted/expired/mismatched EK certificates and missing roots are rejected with codes.
 * - AK trust (b): a pinned AK digest → 'pinned'; another AK → AK_NOT_PINNED.
 * - Neither configured → 'evidence-only' with nothing proven.
 * - An event log without a replay hook is REJECTED (EVENTLOG_UNSUPPORTED); with a hook, the hook
 *   gets the verified PCRs and its boot claims are returned.
 * - Evidence shape errors and option errors have their codes.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes, createHash, createPublicKey } from 'node:crypto';
import { describeSwtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { ECC_EK_HANDLE, ROOT_ID, setupTpmNode, type TpmNode } from './node.js';
import { createTpmProvider, type TpmProviderOptions } from '../../providers/tpm/provider.js';
import { memoryActivations } from '../helpers/activations.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { fromBase64Url, toBase64Url } from '../../providers/common/encoding.js';
import type { AttestError } from '../../providers/common/errors.js';
import type { TrustStore, VerifyContext } from '../../providers/common/types.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e as AttestError).code) throw e;
    return (e as AttestError).code;
  }
  return 'ACCEPTED';
}

async function error(p: Promise<unknown>): Promise<AttestError> {
  try {
    await p;
  } catch (e) {
    return e as AttestError;
  }
  throw new Error('expected a rejection');
}

describeSwtpm('tpm provider (swtpm node, openssl TPM-vendor CA)', () => {
  let tpm: Swtpm;
  let node: TpmNode;
  let trust: TrustStore;

  beforeAll(async () => {
    tpm = await startSwtpm();
    node = await setupTpmNode(tpm);
    trust = node.trust;
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
  });

  const attestEvidence = (ak: 1 | 2, binding: Uint8Array, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> => node.evidence(ak, binding, extra);
  const ekEvidence = (cert?: string): Record<string, unknown> => node.ekEvidence(cert);
  const activate = (ak: 1 | 2, credentialB64: string): Promise<Uint8Array> => node.activate(ak, credentialB64);
  const ctxFor = (binding: Uint8Array, over: Partial<VerifyContext> = {}): VerifyContext => ({
    binding,
    now: new Date(),
    fetch: () => Promise.reject(new Error('no network in this test')),
    trust,
    options: {},
    ...over,
  });
  const nonce = (): Uint8Array => new Uint8Array(randomBytes(32));

  it('EK certificate + credential activation: two-step attest ends with akTrust ek-credential', async () => {
    const activations = memoryActivations();
    const p = createTpmProvider({ ekRoots: [ROOT_ID], activations });
    const n1 = nonce();
    const first = await error(p.verify('tpm', await attestEvidence(1, n1, ekEvidence()), ctxFor(n1)));
    expect(first.code).toBe('ACTIVATION_REQUIRED');
    const act = (first.detail as { activation: { id: string; credential: string; credentialBlob: string; encryptedSecret: string; expiresInSeconds: number } }).activation;
    expect(act.expiresInSeconds).toBe(120);
    expect(activations.size()).toBe(1);
    const secret = await activate(1, act.credential);
    expect(secret.length).toBe(32);

    const n2 = nonce();
    const ev2 = await attestEvidence(1, n2, { ...ekEvidence(), activation: { id: act.id, secret: toBase64Url(secret) } });
    const claims = await p.verify('tpm', ev2, ctxFor(n2));
    expect(claims.tpm?.akTrust).toBe('ek-credential');
    expect(claims.identity.proven).toEqual(['instanceId']);
    // ekSha256 = SHA-256 of the EK's SPKI as openssl encodes it; instanceId = its first 128 bits.
    const ekSpki = createPublicKey(Buffer.from(tpm.read('ek.pem')).toString('utf8')).export({ type: 'spki', format: 'der' });
    expect(claims.identity.extra?.ekSha256).toBe(createHash('sha256').update(ekSpki).digest('hex'));
    expect(claims.identity.instanceId).toBe(claims.identity.extra?.ekSha256?.slice(0, 32));
    expect(claims.release?.ekPublic).toBe(toBase64Url(tpm.read('ek.pub')));
    expect(claims.release?.akName).toBe(Buffer.from(tpm.read('ak1.name')).toString('hex'));
    expect(Object.keys(claims.tpm?.pcrs.sha256 ?? {})).toHaveLength(8);

    // The same answer again: the pending record is single use.
    const n3 = nonce();
    expect(await code(p.verify('tpm', await attestEvidence(1, n3, { ...ekEvidence(), activation: { id: act.id, secret: toBase64Url(secret) } }), ctxFor(n3)))).toBe('ACTIVATION_FAILED');
  });

  it('ECC P-256 EK: the same two-step flow (ECDH + KDFe seed) ends with ek-credential', async () => {
    const p = createTpmProvider({ ekRoots: [ROOT_ID], activations: memoryActivations() });
    const ecc = node.ekEvidence('ek-ecc.der', 'ek-ecc.pub');
    const n1 = nonce();
    const first = await error(p.verify('tpm', await attestEvidence(1, n1, ecc), ctxFor(n1)));
    expect(first.code).toBe('ACTIVATION_REQUIRED');
    const act = (first.detail as { activation: { id: string; credential: string } }).activation;
    const secret = await node.activate(1, act.credential, ECC_EK_HANDLE);
    const n2 = nonce();
    const claims = await p.verify('tpm', await attestEvidence(1, n2, { ...ecc, activation: { id: act.id, secret: toBase64Url(secret) } }), ctxFor(n2));
    expect(claims.tpm?.akTrust).toBe('ek-credential');
    expect(claims.release?.ekPublic).toBe(toBase64Url(tpm.read('ek-ecc.pub')));
  });

  it('activation answers that must fail: wrong secret, another AK, unknown id', async () => {
    const activations = memoryActivations();
    const p = createTpmProvider({ ekRoots: [ROOT_ID], activations });
    const begin = async (): Promise<{ id: string; credential: string }> => {
      const n = nonce();
      const e = await error(p.verify('tpm', await attestEvidence(1, n, ekEvidence()), ctxFor(n)));
      expect(e.code).toBe('ACTIVATION_REQUIRED');
      return (e.detail as { activation: { id: string; credential: string } }).activation;
    };
    const a1 = await begin();
    const s1 = await activate(1, a1.credential);
    const wrong = s1.slice();
    wrong[0] = (wrong[0] as number) ^ 1;
    let n = nonce();
    expect(await code(p.verify('tpm', await attestEvidence(1, n, { ...ekEvidence(), activation: { id: a1.id, secret: toBase64Url(wrong) } }), ctxFor(n)))).toBe('ACTIVATION_FAILED');
    // AK 2 (same TPM, same EK) presents AK 1's activation: the AK Name differs.
    const a2 = await begin();
    const s2 = await activate(1, a2.credential);
    n = nonce();
    expect(await code(p.verify('tpm', await attestEvidence(2, n, { ...ekEvidence(), activation: { id: a2.id, secret: toBase64Url(s2) } }), ctxFor(n)))).toBe('ACTIVATION_FAILED');
    // Credential sealed for AK 1 cannot be opened by AK 2 in the TPM itself.
    const a3 = await begin();
    await expect(activate(2, a3.credential)).rejects.toThrow();
    n = nonce();
    expect(await code(p.verify('tpm', await attestEvidence(1, n, { ...ekEvidence(), activation: { id: 'A'.repeat(32), secret: toBase64Url(s1) } }), ctxFor(n)))).toBe('ACTIVATION_FAILED');
  });

  it('EK certificate checks', async () => {
    const p = createTpmProvider({ ekRoots: [ROOT_ID], activations: memoryActivations() });
    const cases: { name: string; ev: Record<string, unknown>; ctx?: Partial<VerifyContext>; want: string }[] = [
      { name: 'no EK certificate', ev: {}, want: 'EVIDENCE_INCOMPLETE' },
      { name: 'certificate of another key (ECC EK) for ek_public', ev: ekEvidence('ek-ecc.der'), want: 'EK_CERTIFICATE_MISMATCH' },
      { name: 'issued by an unpinned root', ev: { ...ekEvidence('ek-other.der'), ek_intermediates: [] }, want: 'CHAIN_UNTRUSTED' },
      { name: 'intermediate missing', ev: { ...ekEvidence(), ek_intermediates: [] }, want: 'CHAIN_UNTRUSTED' },
      { name: 'expired', ev: ekEvidence(), ctx: { now: new Date(Date.now() + 400 * 86400_000) }, want: 'CERT_EXPIRED' },
      { name: 'root not loaded', ev: ekEvidence(), ctx: { trust: createTrustStore([]) }, want: 'TRUST_ANCHOR_MISSING' },
      { name: 'ek_public is the AK (not a storage key)', ev: { ...ekEvidence(), ek_public: toBase64Url(tpm.read('ak1.pub')) }, want: 'EK_INVALID' },
    ];
    for (const c of cases) {
      const n = nonce();
      expect(await code(p.verify('tpm', await attestEvidence(1, n, c.ev), ctxFor(n, c.ctx))), c.name).toBe(c.want);
    }
  });

  it('pinned AK digests, and evidence-only when nothing is configured', async () => {
    const n = nonce();
    const ev = await attestEvidence(1, n);
    const open = await createTpmProvider().verify('tpm', ev, ctxFor(n));
    expect(open.tpm?.akTrust).toBe('evidence-only');
    expect(open.identity.proven).toEqual([]);
    expect(open.release).toBeUndefined();
    const ak = open.tpm!.akSha256;
    const pinned = await createTpmProvider({ pinnedAkSha256: [ak] }).verify('tpm', ev, ctxFor(n));
    expect(pinned.tpm?.akTrust).toBe('pinned');
    expect(pinned.identity.instanceId).toBe(ak.slice(0, 32));
    expect(pinned.identity.extra?.akSha256).toBe(ak);
    const n2 = nonce();
    expect(await code(createTpmProvider({ pinnedAkSha256: ['00'.repeat(32)] }).verify('tpm', await attestEvidence(2, n2), ctxFor(n2)))).toBe('AK_NOT_PINNED');
    // The binding is the challenge's: another nonce is refused before any trust decision.
    expect(await code(createTpmProvider({ pinnedAkSha256: [ak] }).verify('tpm', ev, ctxFor(nonce())))).toBe('NONCE_MISMATCH');
  });

  it('event logs: rejected without a replay hook, handed to the hook with verified PCRs otherwise', async () => {
    const n = nonce();
    const ev = await attestEvidence(1, n, { event_log: toBase64Url(new Uint8Array([1, 2, 3])) });
    expect(await code(createTpmProvider().verify('tpm', ev, ctxFor(n)))).toBe('EVENTLOG_UNSUPPORTED');
    let seen: unknown;
    const hooked = createTpmProvider({
      replayEventLog: async (log, pcrs) => {
        seen = { log: Array.from(log), pcrs };
        return { eventLogReplayed: ['sha256'] };
      },
    });
    const claims = await hooked.verify('tpm', ev, ctxFor(n));
    expect(claims.boot).toEqual({ eventLogReplayed: ['sha256'] });
    expect((seen as { log: number[] }).log).toEqual([1, 2, 3]);
    // The hook gets the verified values as bytes (the ones the pcrDigest covered), equal to the claims' hex.
    const handed = (seen as { pcrs: Record<string, Record<string, Uint8Array>> }).pcrs;
    const asHex = Object.fromEntries(
      Object.entries(handed).map(([bank, vals]) => [bank, Object.fromEntries(Object.entries(vals).map(([i, b]) => [i, Buffer.from(b).toString('hex')]))]),
    );
    expect(asHex).toEqual(claims.tpm?.pcrs);
    const failing = createTpmProvider({
      replayEventLog: async () => {
        const { rejected } = await import('../../providers/common/errors.js');
        throw rejected('EVENTLOG_REPLAY_MISMATCH', 'test');
      },
    });
    expect(await code(failing.verify('tpm', ev, ctxFor(n)))).toBe('EVENTLOG_REPLAY_MISMATCH');
  });

  it('evidence shape and options', async () => {
    const n = nonce();
    const ev = await attestEvidence(1, n);
    const p = createTpmProvider();
    const rows: { name: string; ev: unknown; want: string; format?: string }[] = [
      { name: 'not an object', ev: [], want: 'EVIDENCE_INVALID' },
      { name: 'unknown member', ev: { ...ev, extra: 1 }, want: 'EVIDENCE_INVALID' },
      { name: 'quote with extra member', ev: { ...ev, quote: { ...(ev.quote as object), pcrs: {} } }, want: 'EVIDENCE_INVALID' },
      { name: 'padded base64', ev: { ...ev, ak_public: `${ev.ak_public as string}=` }, want: 'BAD_ENCODING' },
      { name: 'standard base64 alphabet', ev: { ...ev, ak_public: `+/${(ev.ak_public as string).slice(2)}` }, want: 'BAD_ENCODING' },
      { name: 'unknown bank', ev: { ...ev, pcrs: { sha512: {} } }, want: 'EVIDENCE_INVALID' },
      { name: 'numeric PCR value', ev: { ...ev, pcrs: { sha256: { 0: 1 } } }, want: 'EVIDENCE_INVALID' },
      { name: 'bad activation id', ev: { ...ev, activation: { id: 'x', secret: 'AA' } }, want: 'EVIDENCE_INVALID' },
      { name: 'wrong format', ev, want: 'EVIDENCE_INVALID', format: 'gotpm' },
      { name: 'truncated ak_public', ev: { ...ev, ak_public: toBase64Url(fromBase64Url(ev.ak_public as string).subarray(0, 40)) }, want: 'TRUNCATED' },
    ];
    for (const r of rows) expect(await code(p.verify(r.format ?? 'tpm', r.ev, ctxFor(n))), r.name).toBe(r.want);
    const badOptions: TpmProviderOptions[] = [
      { ekRoots: [ROOT_ID] },
      { pinnedAkSha256: ['ABC'] },
      { pcrBanks: ['sha512' as never] },
      { signatureHashes: ['md5' as never] },
      { ekRoots: [ROOT_ID], activations: memoryActivations(), activationTtlMs: 5 },
    ];
    for (const o of badOptions) expect(() => createTpmProvider(o)).toThrow(expect.objectContaining({ code: 'TPM_OPTIONS_INVALID' }));
  });
});
