/**
 * The join client against a real HTTPS broker peer (test-broker.ts: real TLS from openssl,
 * binding recomputed by hand, quotes checked by tpm2_checkquote, credentials made by
 * tpm2_makecredential) and a real TPM (swtpm with an EK certificate from a test CA).
 * Time is virtual (injected clock): retries and deadlines are exercised without waiting.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttestError } from '../../providers/common/errors.js';
import { JoinCodes } from '../../deploy/node/client/codes.js';
import { join, type JoinOptions } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
import type { Clock } from '../../deploy/node/client/retry.js';
import { extendPcrs, startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, startTestBroker, type TestBroker, type TestBrokerOptions, type TlsMaterial } from './test-broker.js';

function virtualClock(onSleep?: (ms: number) => void | Promise<void>): Clock & { sleeps: number[] } {
  let t = Date.now();
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms) => {
      t += ms;
      sleeps.push(ms);
      await onSleep?.(ms);
    },
    random: () => 0.5,
  };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<AttestError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AttestError);
  expect((e as AttestError).code).toBe(code);
  return e as AttestError;
}

const d = describe;

d('attest-broker join (swtpm + HTTPS test broker)', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  let out: string;
  const brokers: TestBroker[] = [];

  beforeAll(async () => {
    tpm = await startSwtpm({ ekCert: true });
    tls = makeTls('join');
  });
  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await tpm?.stop();
    if (tls) rmSync(tls.dir, { recursive: true, force: true });
  });

  const broker = async (o: Partial<TestBrokerOptions> = {}): Promise<TestBroker> => {
    const b = await startTestBroker({ tls, toolsEnv: tpm.env, ...o });
    brokers.push(b);
    return b;
  };

  const opts = (b: TestBroker, o: Partial<JoinOptions> = {}): JoinOptions => {
    out = mkdtempSync(pjoin(tmpdir(), 'join-out-'));
    return {
      broker: b.url,
      caPin: tls.pin,
      cluster: 'test-cluster',
      platform: 'generic',
      out: pjoin(out, 'kubelet', 'bootstrap-kubeconfig'),
      deadlineMs: 300_000,
      clock: virtualClock(),
      tools: createToolRunner(tpm.env),
      eventLogPath: '/nonexistent/binary_bios_measurements',
      log: () => undefined,
      ...o,
    };
  };

  it('joins: binding checked, quote verified by tpm2_checkquote, JWE opened, kubeconfig 0600 written atomically', async () => {
    const b = await broker();
    const o = opts(b);
    const r = await join(o);
    expect(r.nodeName).toBe('node-test-1');
    const st = statSync(o.out);
    expect(st.mode & 0o777).toBe(0o600);
    const kc = readFileSync(o.out, 'utf8');
    expect(kc).toContain(b.issuedTokens[0]!);
    // No temporary files left beside it.
    expect(readdirSync(pjoin(out, 'kubelet'))).toEqual(['bootstrap-kubeconfig']);
    // The broker saw the tpm format with an EK certificate issued by the test CA.
    expect(b.last?.format).toBe('tpm');
    expect(b.last?.evidence.ek_certificate).toBeTypeOf('string');
    expect(Object.keys((b.last?.evidence.pcrs as Record<string, Record<string, string>>).sha256 ?? {})).toHaveLength(24);
    expect(b.counters).toEqual({ challenge: 1, attest: 1, activate: 0 });
  });

  it('sends the EK chain from NV 0x01c00100 so the EK certificate verifies to the vendor root (openssl verify)', async () => {
    const t2 = await startSwtpm({ ekCert: true, ekChainInNv: true });
    try {
      const b = await broker({ ekRootPem: t2.ekRootPem!, toolsEnv: t2.env });
      await join(opts(b, { tools: createToolRunner(t2.env) }));
      expect(b.last?.evidence.ek_intermediates).toHaveLength(1);
      // Without the chain in NV, the same root check refuses.
      const b2 = await broker({ ekRootPem: tpm.ekRootPem! });
      const e = await expectCode(join(opts(b2)), JoinCodes.REJECTED);
      expect(e.detail?.brokerCode).toBe('CHAIN_UNTRUSTED');
    } finally {
      await t2.stop();
    }
  });

  it('reports the PCRs the TPM holds: extends done like firmware show up in the quoted values', async () => {
    const t2 = await startSwtpm({ ekCert: true });
    try {
      const { createHash } = await import('node:crypto');
      const d1 = createHash('sha256').update('shim').digest();
      const d2 = createHash('sha256').update('grub').digest();
      await extendPcrs(t2, [{ pcr: 7, digests: { sha256: d1 } }, { pcr: 7, digests: { sha256: d2 } }]);
      // Software replay of the same extends: PCR = H(PCR ‖ digest), from zero.
      let want = Buffer.alloc(32);
      for (const x of [d1, d2]) want = createHash('sha256').update(Buffer.concat([want, x])).digest();
      const b = await broker({ toolsEnv: t2.env });
      await join(opts(b, { tools: createToolRunner(t2.env) }));
      const pcrs = (b.last?.evidence.pcrs as Record<string, Record<string, string>>).sha256!;
      expect(pcrs['7']).toBe(want.toString('hex'));
      expect(pcrs['0']).toBe('00'.repeat(32));
    } finally {
      await t2.stop();
    }
  });

  it('sends the event log when present', async () => {
    const b = await broker();
    const dir = mkdtempSync(pjoin(tmpdir(), 'evlog-'));
    const log = new Uint8Array([1, 2, 3, 4, 5]);
    writeFileSync(pjoin(dir, 'log.bin'), log);
    await join(opts(b, { eventLogPath: pjoin(dir, 'log.bin') }));
    expect(b.last?.evidence.event_log).toBe(Buffer.from(log).toString('base64url'));
  });

  it('completes credential activation (tpm2_makecredential → tpm2_activatecredential)', async () => {
    const b = await broker({ requireActivation: true });
    const o = opts(b);
    await join(o);
    // Two attests, each on its own challenge; the second carried the recovered secret.
    expect(b.counters).toEqual({ challenge: 2, attest: 2, activate: 1 });
    expect(readFileSync(o.out, 'utf8')).toContain(b.issuedTokens[0]!);
  });

  it('writes the disk key (raw bytes, 0600) and its wrapped form, and sends the wrapped form next time', async () => {
    const b = await broker({ diskKey: true });
    const o = opts(b);
    const keyPath = pjoin(out, 'disk.key');
    await join({ ...o, diskKeyOut: keyPath });
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyPath)).toHaveLength(32);
    const wrapped = readFileSync(`${keyPath}.wrapped`, 'utf8');
    expect(wrapped).toMatch(/^[A-Za-z0-9_-]+$/);
    // Next boot: the wrapped key goes back to the broker (which unwraps after attesting).
    const kept = pjoin(out, 'persist', 'disk.wrapped');
    await join({ ...opts(b), diskKeyOut: pjoin(out, 'run', 'disk.key'), diskKeyWrappedPath: kept });
    expect(b.lastRequest?.diskKey).toBeUndefined();
    const before = readFileSync(kept, 'utf8');
    await join({ ...opts(b), diskKeyOut: pjoin(out, 'run', 'disk.key'), diskKeyWrappedPath: kept });
    expect(b.lastRequest?.diskKey).toEqual({ wrapped: before });
  });

  it('fails with JOIN_DISK_KEY_MISSING and writes nothing when the release has no disk key', async () => {
    const b = await broker();
    const o = opts(b);
    await expectCode(join({ ...o, diskKeyOut: pjoin(out, 'disk.key') }), JoinCodes.DISK_KEY_MISSING);
    expect(() => statSync(o.out)).toThrow();
  });

  it('refuses a wrong pin with JOIN_TLS_PIN_MISMATCH before sending anything', async () => {
    const b = await broker();
    await expectCode(join(opts(b, { caPin: `sha256:${'0'.repeat(64)}` })), JoinCodes.TLS_PIN_MISMATCH);
    expect(b.counters.challenge).toBe(0);
  });

  it('refuses a chain that shows the pinned CA after a leaf it did not sign', async () => {
    const evil = makeTls('evil');
    // The attacker serves the real (public) CA certificate after its own leaf: the served chain
    // does not link to the pinned CA, so no anchor is found and nothing is sent.
    const b = await broker({ chainPem: evil.leafPem + tls.caPem, keyPem: evil.leafKeyPem });
    await expectCode(join(opts(b)), JoinCodes.TLS_PIN_MISMATCH);
    expect(b.counters.challenge).toBe(0);
    rmSync(evil.dir, { recursive: true, force: true });
  });

  it('verifies the name even with the pinned CA: a leaf for another host fails (JOIN_TLS_VERIFY_FAILED)', async () => {
    // Same CA (so the pin is found), but the leaf names another host.
    const other = makeTls('other', 'DNS:other.example');
    const b = await startTestBroker({ tls: other, toolsEnv: tpm.env });
    brokers.push(b);
    await expectCode(join(opts(b, { caPin: other.pin })), JoinCodes.TLS_VERIFY_FAILED);
    expect(b.counters.challenge).toBe(0);
    rmSync(other.dir, { recursive: true, force: true });
  });

  it('rejects malformed pins and plain http as usage errors', async () => {
    const b = await broker();
    await expectCode(join(opts(b, { caPin: 'sha1:abcd' })), JoinCodes.USAGE);
    await expectCode(join(opts(b, { broker: b.url.replace('https:', 'http:') })), JoinCodes.USAGE);
  });

  it('retries the challenge on 503/429 honouring Retry-After', async () => {
    const b = await broker();
    b.faults.push({ kind: 'status', path: '/v1/challenge', status: 503, code: 'STORE_UNAVAILABLE' });
    b.faults.push({ kind: 'status', path: '/v1/challenge', status: 429, code: 'RATE_LIMITED', retryAfter: '7' });
    const clock = virtualClock();
    await join(opts(b, { clock }));
    expect(b.faults).toHaveLength(0); // both faults were served
    expect(b.counters.challenge).toBe(1); // then one real challenge
    expect(clock.sleeps).toHaveLength(2);
    expect(clock.sleeps[1]).toBeGreaterThanOrEqual(7000);
  });

  it('resends the same attest request after 429 (challenge not consumed)', async () => {
    const b = await broker();
    b.faults.push({ kind: 'status', path: '/v1/attest', status: 429, code: 'RATE_LIMITED', retryAfter: '1' });
    await join(opts(b));
    expect(b.counters).toMatchObject({ challenge: 1, attest: 1 });
  });

  it('starts over with a new challenge after a 5xx from attest, and after CHALLENGE_* 410', async () => {
    const b = await broker();
    b.faults.push({ kind: 'status', path: '/v1/attest', status: 500, code: 'INTERNAL' });
    b.faults.push({ kind: 'status', path: '/v1/attest', status: 410, code: 'CHALLENGE_EXPIRED' });
    await join(opts(b));
    expect(b.counters.challenge).toBe(3);
  });

  it('does not retry when the attest request was sent but no answer came (JOIN_OUTCOME_UNKNOWN)', async () => {
    const b = await broker();
    b.faults.push({ kind: 'drop-after-body', path: '/v1/attest' });
    await expectCode(join(opts(b)), JoinCodes.OUTCOME_UNKNOWN);
    expect(b.counters).toMatchObject({ challenge: 1, attest: 1 });
  });

  it('retries network errors before anything was sent (broker not up yet)', async () => {
    // Reserve a port, start the broker on it only after the first failed attempt.
    const late = await broker();
    const url = late.url;
    await late.close();
    let started: TestBroker | undefined;
    const clock = virtualClock(async () => {
      if (!started) {
        started = await startTestBroker({ tls, toolsEnv: tpm.env, port: Number(new URL(url).port) });
        brokers.push(started);
      }
    });
    await join(opts(late, { broker: url, clock }));
    expect(clock.sleeps.length).toBeGreaterThanOrEqual(1);
    expect(started?.counters.attest).toBe(1);
  });

  it('gives up at the deadline: JOIN_BROKER_FAILED while the broker keeps answering 503', async () => {
    const b = await broker();
    for (let i = 0; i < 100; i++) b.faults.push({ kind: 'status', path: '/v1/challenge', status: 503, code: 'STORE_UNAVAILABLE', retryAfter: '10' });
    const clock = virtualClock();
    const e = await expectCode(join(opts(b, { clock, deadlineMs: 60_000 })), JoinCodes.BROKER_FAILED);
    expect(e.detail?.brokerCode).toBe('STORE_UNAVAILABLE');
    // Every wait respected Retry-After, and the total stayed under the deadline.
    expect(clock.sleeps.every((ms) => ms >= 10_000)).toBe(true);
    expect(clock.sleeps.reduce((a, x) => a + x, 0)).toBeLessThan(60_000);
  });

  it('gives up at the deadline with JOIN_BROKER_UNREACHABLE when nothing listens', async () => {
    const b = await broker();
    const url = b.url;
    await b.close();
    await expectCode(join(opts(b, { broker: url, deadlineMs: 20_000 })), JoinCodes.BROKER_UNREACHABLE);
  });

  it('kills a hung TPM tool at the deadline (JOIN_DEADLINE_EXCEEDED, real time)', async () => {
    const b = await broker();
    const bin = mkdtempSync(pjoin(tmpdir(), 'hung-'));
    writeFileSync(pjoin(bin, 'tpm2_createek'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const tools = createToolRunner({ ...tpm.env, PATH: `${bin}:${process.env.PATH ?? ''}` });
    await expectCode(join(opts(b, { tools, deadlineMs: 1500 })), JoinCodes.DEADLINE_EXCEEDED);
  });

  it('surfaces a policy refusal with the broker code, no retry, no file', async () => {
    const b = await broker({ policyRefusal: 'POLICY_PCR_MISMATCH' });
    const o = opts(b);
    const e = await expectCode(join(o), JoinCodes.REJECTED);
    expect(e.detail?.brokerCode).toBe('POLICY_PCR_MISMATCH');
    expect(e.kind).toBe('rejected'); // the join client's JOIN_REJECTED; the broker's code is in detail.brokerCode
    expect(b.counters).toMatchObject({ challenge: 1, attest: 1 });
    expect(() => statSync(o.out)).toThrow();
  });

  it('keeps hostile problem text out of its messages (control characters, non-code codes)', async () => {
    const b = await broker();
    b.faults.push({ kind: 'status', path: '/v1/attest', status: 400, code: 'EVIL\u001b[31m\nFORGED LOG LINE' + 'x'.repeat(1000) });
    const e = await expectCode(join(opts(b)), JoinCodes.REJECTED);
    expect(e.detail?.brokerCode).toBeUndefined();
    expect([...e.message].every((ch) => ch.charCodeAt(0) >= 0x20)).toBe(true);
    expect(e.message.length).toBeLessThan(500);
  });

  it('refuses an unsealed release after sending a key (downgrade) and a JWE sealed to another key', async () => {
    await expectCode(join(opts(await broker({ forceUnsealed: true }))), JoinCodes.RELEASE_NOT_SEALED);
    await expectCode(join(opts(await broker({ sealToWrongKey: true }))), JoinCodes.RELEASE_INVALID);
  });

  it('refuses a release that echoes another challenge nonce', async () => {
    await expectCode(join(opts(await broker({ wrongNonce: true, forceUnsealed: true }), { sealed: false })), JoinCodes.RELEASE_INVALID);
  });

  it('tries again from a new challenge after 409 with Retry-After (token already issued in the window)', async () => {
    const b = await broker();
    b.faults.push({ kind: 'status', path: '/v1/attest', status: 409, code: 'ISSUANCE_CONFLICT', retryAfter: '60' });
    const clock = virtualClock();
    await join(opts(b, { clock }));
    expect(b.counters.challenge).toBe(2);
    expect(clock.sleeps[0]).toBeGreaterThanOrEqual(60_000);
  });

  it('accepts an unsealed release only when it did not send a key (sealed: false)', async () => {
    const b = await broker();
    const o = opts(b, { sealed: false });
    await join(o);
    expect(readFileSync(o.out, 'utf8')).toContain(b.issuedTokens[0]!);
  });
});
