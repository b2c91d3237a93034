/**
 * @module providers/common/digest
 *
 * Hashing through WebCrypto (runs on Node and Workers).
 */
export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const WEB: Record<HashName, string> = { sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };
export const HASH_SIZE: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

export function webHashName(h: HashName): string {
  return WEB[h];
}

export async function digest(h: HashName, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest(WEB[h], data as Uint8Array<ArrayBuffer>));
}

export const sha256 = (data: Uint8Array): Promise<Uint8Array> => digest('sha256', data);
export const sha384 = (data: Uint8Array): Promise<Uint8Array> => digest('sha384', data);
