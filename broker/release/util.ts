/**
 * @module broker/release/util
 *
 * Small helpers shared by the release files (standard base64 of Kubernetes `data` values).
 */
import { fromBase64Any, fromUtf8, toHex, utf8 } from '../../providers/common/encoding.js';

/** Decodes a Kubernetes Secret `data` value (standard base64) to text. */
export function fromBase64(s: string): string {
  return fromUtf8(fromBase64Any(s, 'Secret data'), 'Secret data');
}

export { toHex, utf8 };
