/**
 * @module broker/release/local-kek.node
 *
 * Loads the local KEK on Node: from a file (32 raw bytes, or 64 hex / 43-44 base64 characters
 * with optional trailing newline) or from an environment variable (hex or base64). The file
 * must not be readable by group or others (like an SSH private key): a KEK that every local
 * user can read protects nothing.
 */
import { readFileSync, statSync } from 'node:fs';
import { configError } from '../../providers/common/errors.js';
import { fromBase64Any, fromHex } from '../../providers/common/encoding.js';
import { LocalKeyService } from '../../providers/local/kms.js';

function decodeKekText(text: string, what: string): Uint8Array {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return fromHex(t, what);
  try {
    const b = fromBase64Any(t, what);
    if (b.byteLength === 32) return b;
  } catch {
    // fall through to the error below, which names the accepted encodings
  }
  throw configError('KMS_KEK_INVALID', `${what}: expected 32 bytes as raw, 64 hex or base64 characters`);
}

export interface LocalKekSource {
  file?: string;
  env?: string;
  /** Environment to read `env` from (defaults to process.env). */
  environment?: Readonly<Record<string, string | undefined>>;
}

export function loadLocalKek(src: LocalKekSource): Uint8Array {
  if (src.file) {
    const st = statSync(src.file);
    if ((st.mode & 0o077) !== 0) {
      throw configError('KMS_KEK_INVALID', `local KEK file ${src.file} is readable by group/others (chmod 600)`);
    }
    const raw = new Uint8Array(readFileSync(src.file));
    if (raw.byteLength === 32) return raw;
    return decodeKekText(new TextDecoder().decode(raw), `local KEK file ${src.file}`);
  }
  if (src.env) {
    const v = (src.environment ?? process.env)[src.env];
    if (!v) throw configError('KMS_KEK_INVALID', `environment variable ${src.env} is not set`);
    return decodeKekText(v, `environment variable ${src.env}`);
  }
  throw configError('KMS_KEK_INVALID', 'local KMS needs a KEK file or environment variable');
}

export async function localKeyServiceFrom(src: LocalKekSource): Promise<LocalKeyService> {
  return LocalKeyService.create({ kek: loadLocalKek(src) });
}
