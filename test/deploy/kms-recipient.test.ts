/**
 * deploy/node/client/cms.ts: the Node client's opener for AWS KMS `CiphertextForRecipient`,
 * against CMS EnvelopedData made by the real `openssl cms -encrypt` (as test/servers/aws-kms.ts
 * makes KMS's answer) to a WebCrypto RSA-OAEP key the client made non-extractable. Only
 * RSAES-OAEP-SHA-256 / AES-256-CBC opens; every other shape is JOIN_RELEASE_INVALID.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openKmsRecipient } from '../../deploy/node/client/cms.js';

let keys: CryptoKeyPair;
let dir: string;
const key = randomBytes(32);

beforeAll(async () => {
  keys = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['encrypt', 'decrypt'])) as CryptoKeyPair;
  dir = mkdtempSync(join(tmpdir(), 'cms-'));
  const spki = Buffer.from(await crypto.subtle.exportKey('spki', keys.publicKey));
  writeFileSync(join(dir, 'r.pub'), `-----BEGIN PUBLIC KEY-----\n${spki.toString('base64')}\n-----END PUBLIC KEY-----\n`);
  writeFileSync(join(dir, 'p'), key);
  const o = { cwd: dir, stdio: 'ignore' as const };
  // A certificate for the recipient's public key (openssl cms -encrypt wants one), issued by a throw-away key.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 's.key', '-out', 's.crt', '-subj', '/CN=issuer', '-days', '1'], o);
  execFileSync('openssl', ['x509', '-new', '-force_pubkey', 'r.pub', '-key', 's.key', '-subj', '/CN=recipient', '-out', 'r.crt', '-days', '1'], o);
});

function cms(name: string, opts: string[]): Uint8Array {
  execFileSync('openssl', ['cms', '-encrypt', '-in', 'p', '-binary', '-outform', 'DER', '-out', name, '-recip', 'r.crt', ...opts], { cwd: dir, stdio: 'ignore' });
  return new Uint8Array(readFileSync(join(dir, name)));
}
const OAEP256 = ['-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256'];

describe('openKmsRecipient', () => {
  it('opens RSAES-OAEP-SHA-256 / AES-256-CBC (KMS RSAES_OAEP_SHA_256) to the 32-byte key', async () => {
    expect(Buffer.from(await openKmsRecipient(cms('good.der', ['-aes256', ...OAEP256]), keys.privateKey)).equals(key)).toBe(true);
  });

  it.each([
    ['PKCS#1 v1.5 key transport', ['-aes256']],
    ['OAEP with SHA-1', ['-aes256', '-keyopt', 'rsa_padding_mode:oaep']],
    ['AES-128-CBC content', ['-aes128', ...OAEP256]],
  ])('refuses %s: JOIN_RELEASE_INVALID', async (_n, opts) => {
    await expect(openKmsRecipient(cms(`${_n.replace(/\W/g, '')}.der`, opts), keys.privateKey)).rejects.toMatchObject({ code: 'JOIN_RELEASE_INVALID' });
  });

  it('refuses another key, a truncated message and trailing bytes', async () => {
    const good = cms('good2.der', ['-aes256', ...OAEP256]);
    const other = (await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['decrypt'])) as CryptoKeyPair;
    await expect(openKmsRecipient(good, other.privateKey)).rejects.toMatchObject({ code: 'JOIN_RELEASE_INVALID' });
    await expect(openKmsRecipient(good.subarray(0, good.length - 1), keys.privateKey)).rejects.toMatchObject({ code: 'JOIN_RELEASE_INVALID' });
    await expect(openKmsRecipient(new Uint8Array([...good, 0]), keys.privateKey)).rejects.toMatchObject({ code: 'JOIN_RELEASE_INVALID' });
  });
});
