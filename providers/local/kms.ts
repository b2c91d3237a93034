/**
 * @module providers/local/kms
 *
 * The embedded software KMS (the default `KeyService`): AES-256-GCM under a key-encryption key
 * (KEK) the operator provides from a file or an environment variable (see broker/release/local-kek.node.ts).
 *
 * Envelope (all integers big-endian):
 * ```
 * offset size field
 * 0      4    magic "ABLK" (attest-broker local key)
 * 4      1    version = 1
 * 5      8    KEK id = SHA-256(KEK)[0..8]   (selects among current and retired KEKs)
 * 13     12   GCM IV (random, NIST SP 800-38D §8.2.2: 96-bit random IVs, ≤ 2^32 uses per key)
 * 25     n+16 ciphertext ‖ 128-bit tag
 * ```
 * AAD = "attest-broker/local-kms/v1" ‖ "\n" ‖ header bytes 0..25 ‖ canonical JSON of the context,
 * so the context (the node identity), the KEK id and the version are all authenticated: a blob
 * unwrapped under another identity, or with any header byte changed, fails the tag check.
 *
 * Checks on unwrap:
 * - exact magic and version, minimum length (header + 1-byte payload + tag);
 * - KEK id known (else KMS_UNWRAP_FAILED: a blob from another broker is not ours to open);
 * - AES-GCM tag over payload, header and context (else KMS_UNWRAP_FAILED).
 */
import { ByteReader, concat } from '../common/bytes.js';
import { sha256 } from '../common/digest.js';
import { timingSafeEqual } from '../common/ct.js';
import { configError, malformed, rejected, CommonCodes, AttestError } from '../common/errors.js';
import { KmsCodes, checkKeyInput, contextAad, type KeyServiceLike } from '../common/keyservice.js';
import { utf8 } from '../common/encoding.js';

const MAGIC = utf8('ABLK');
const VERSION = 1;
const HEADER = 4 + 1 + 8 + 12;
const TAG = 16;
const LABEL = 'attest-broker/local-kms/v1';

interface Kek {
  id: Uint8Array;
  key: CryptoKey;
}

async function importKek(raw: Uint8Array): Promise<Kek> {
  if (raw.byteLength !== 32) throw configError('KMS_KEK_INVALID', 'local KEK must be exactly 32 bytes (AES-256)');
  const id = (await sha256(raw)).slice(0, 8);
  const key = await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  return { id, key };
}

export interface LocalKmsOptions {
  /** The current KEK (32 bytes); new wraps use it. */
  kek: Uint8Array;
  /** Retired KEKs that may still unwrap older blobs (rotation). */
  retired?: readonly Uint8Array[];
}

export class LocalKeyService implements KeyServiceLike {
  readonly kind = 'local' as const;
  readonly #current: Kek;
  readonly #all: readonly Kek[];

  private constructor(current: Kek, all: readonly Kek[]) {
    this.#current = current;
    this.#all = all;
  }

  static async create(o: LocalKmsOptions): Promise<LocalKeyService> {
    const current = await importKek(o.kek);
    const retired = await Promise.all((o.retired ?? []).map(importKek));
    return new LocalKeyService(current, [current, ...retired]);
  }

  async wrap(key: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    checkKeyInput(key);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const header = concat(MAGIC, Uint8Array.of(VERSION), this.#current.id, iv);
    const aad = concat(contextAad(LABEL, context), utf8('\n'), header);
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: aad as Uint8Array<ArrayBuffer>, tagLength: 128 },
        this.#current.key,
        key as Uint8Array<ArrayBuffer>,
      ),
    );
    return concat(header, ct);
  }

  async unwrap(wrapped: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    const aadContext = contextAad(LABEL, context);
    let header: Uint8Array, kekId: Uint8Array, iv: Uint8Array, ct: Uint8Array;
    try {
      const r = new ByteReader(wrapped);
      const magic = r.bytes(4);
      if (!timingSafeEqual(magic, MAGIC)) throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, 'not a local-KMS envelope');
      const v = r.u8();
      if (v !== VERSION) throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, `unknown local-KMS envelope version ${v}`);
      kekId = r.bytes(8);
      iv = r.bytes(12);
      if (r.remaining < TAG + 1) throw malformed(CommonCodes.TRUNCATED, 'local-KMS envelope too short');
      ct = r.bytes(r.remaining);
      r.end();
      header = wrapped.subarray(0, HEADER);
    } catch (e) {
      if (e instanceof AttestError && e.code !== KmsCodes.KMS_WRAPPED_MALFORMED) {
        throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, 'local-KMS envelope is truncated', { cause: e });
      }
      throw e;
    }
    const kek = this.#all.find((k) => timingSafeEqual(k.id, kekId));
    if (!kek) throw rejected(KmsCodes.KMS_UNWRAP_FAILED, 'wrapped key was made under an unknown KEK');
    const aad = concat(aadContext, utf8('\n'), header);
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: iv as Uint8Array<ArrayBuffer>, additionalData: aad as Uint8Array<ArrayBuffer>, tagLength: 128 },
          kek.key,
          ct as Uint8Array<ArrayBuffer>,
        ),
      );
    } catch (cause) {
      throw rejected(KmsCodes.KMS_UNWRAP_FAILED, 'local KEK refused to unwrap (wrong identity context or tampered blob)', { cause });
    }
  }
}
