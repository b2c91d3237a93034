/**
 * @module providers/aws/cbor
 *
 * The one wrapper around cborg (RFC 8949 CBOR) for untrusted input. Nothing else in the project
 * calls cborg's decoder directly.
 *
 * cborg's own strict options cover part of what we need (`strict`: minimal-length integers and
 * lengths; `rejectDuplicateMapKeys`; no `undefined`, NaN, Infinity or big integers). The rest is
 * enforced by a tokenizer that wraps cborg's and sees every token before cborg builds a value:
 *
 * - **Indefinite lengths**: rejected, except — when the caller asks for it — the single top-level
 *   map, because the NitroTPM attestation document payload is encoded as an indefinite-length map
 *   (`0xbf … 0xff`). A `break` is accepted only where it closes that map *between* entries
 *   (cborg alone would accept a break in a value position and store it as a value).
 *   Indefinite-length byte and text strings are always rejected (cborg rejects them too).
 * - **Tags**: rejected, except one tag number the caller names, and only as the very first item
 *   (COSE_Sign1 may carry tag 18, RFC 9052 §4.2).
 * - **Floats and simple values**: rejected (no field of COSE or the Nitro document is a float).
 * - **Text strings**: must be valid UTF-8 (RFC 8949 §3.1 major type 3; cborg would replace bad
 *   sequences with U+FFFD, so two different byte strings could decode to the same text).
 * - **Caps**: input size, nesting depth, declared container length and total item count, so a
 *   tiny input cannot make the decoder allocate or recurse without bound.
 * - Trailing bytes after the single top-level item are rejected.
 *
 * Maps decode to `Map` (keys keep their CBOR type: COSE labels and PCR indices are integers).
 * cborg's duplicate-key check compares keys with `Map.has`, which is exact for the integer and
 * text keys our shape checks admit; a map keyed by byte strings or containers would defeat it, so
 * callers must (and do) reject such keys in their shape assertion.
 *
 * Canonical map-key *order* is not enforced (cborg cannot, and AWS does not emit canonical order);
 * signatures are always checked over the raw bytes, never over a re-encoding, so that
 * non-canonical order cannot change what was signed.
 *
 * Every failure is an `AttestError`: `TRUNCATED` when the input ends inside an item, otherwise
 * `CBOR_MALFORMED` (or `LIMIT_EXCEEDED` for a cap), with the byte offset when known.
 */
import { decode as cborgDecode, Tokenizer, Type, type Token } from 'cborg';
import { AttestError, malformed, CommonCodes, isAttestError, type CodeOfKind } from '../common/errors.js';

export const CborCodes = {
  CBOR_MALFORMED: 'CBOR_MALFORMED',
} as const;

/** A tagged item (only produced for the one tag a caller allows). */
export interface CborTagged {
  readonly tag: number;
  readonly value: CborValue;
}

/** What `decodeCbor` can return. */
export type CborValue =
  | number
  | string
  | boolean
  | null
  | Uint8Array
  | readonly CborValue[]
  | ReadonlyMap<CborValue, CborValue>
  | CborTagged;

export interface CborLimits {
  /** Maximum input size in bytes. */
  maxBytes: number;
  /** Maximum nesting depth of arrays and maps. */
  maxDepth: number;
  /** Maximum declared length of any one array or map (in entries). */
  maxLength: number;
  /** Maximum number of items (tokens) in the whole input. */
  maxItems: number;
}

export interface CborDecodeOptions extends Partial<CborLimits> {
  /** Accept an indefinite-length map as the top-level item (and nowhere else). */
  allowIndefiniteTopLevelMap?: boolean;
  /** Accept this one tag number, only on the top-level item. */
  allowTopLevelTag?: number;
  /** What is being decoded, for messages. */
  what?: string;
}

export const DEFAULT_CBOR_LIMITS: Readonly<CborLimits> = Object.freeze({
  maxBytes: 64 * 1024,
  maxDepth: 8,
  maxLength: 1024,
  maxItems: 8192,
});

/** cborg's options: its own strict switches on; indefinite items are policed by the tokenizer. */
const CBORG_OPTIONS = Object.freeze({
  strict: true,
  allowIndefinite: true,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  useMaps: true,
  rejectDuplicateMapKeys: true,
  retainStringBytes: true,
});

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

interface Frame {
  /** Items still expected (map entries count twice); Infinity for the indefinite map. */
  remaining: number;
  readonly indefinite: boolean;
  /** Items consumed so far (to place a break only between map entries). */
  consumed: number;
}

/** Sees every token before cborg does anything with it; enforces what cborg's options cannot. */
class StrictTokenizer {
  readonly #inner: InstanceType<typeof Tokenizer>;
  readonly #stack: Frame[] = [];
  readonly #opts: CborDecodeOptions;
  readonly #limits: CborLimits;
  readonly #data: Uint8Array;
  #items = 0;
  #started = false;
  #tagPending = false;

  constructor(data: Uint8Array, opts: CborDecodeOptions, limits: CborLimits) {
    this.#data = data;
    this.#opts = opts;
    this.#limits = limits;
    this.#inner = new Tokenizer(data, CBORG_OPTIONS);
  }

  done(): boolean {
    const d = this.#inner.done();
    // cborg asks `done()` before every item; running out while a container is open (or before
    // the first item) is a truncation, reported as such rather than as cborg's generic message.
    if (d && (this.#stack.length > 0 || !this.#started || this.#tagPending)) {
      throw malformed(CommonCodes.TRUNCATED, `${this.#what()}: input ends inside an item`, { offset: this.#data.length });
    }
    return d;
  }

  pos(): number {
    return this.#inner.pos();
  }

  #what(): string {
    return this.#opts.what ?? 'CBOR';
  }

  #fail(message: string, offset: number, code: CodeOfKind<'malformed'> = CborCodes.CBOR_MALFORMED): never {
    throw malformed(code, `${this.#what()}: ${message}`, { offset });
  }

  next(): Token {
    const at = this.#inner.pos();
    let token: Token;
    try {
      token = this.#inner.next();
    } catch (cause) {
      if (isAttestError(cause)) throw cause;
      const msg = cause instanceof Error ? cause.message : String(cause);
      // cborg reports reads past the end as "not enough data"; those are truncations.
      if (/not enough data/i.test(msg)) {
        throw malformed(CommonCodes.TRUNCATED, `${this.#what()}: input ends inside an item at offset ${at}`, { offset: at, cause });
      }
      throw malformed(CborCodes.CBOR_MALFORMED, `${this.#what()}: ${msg}`, { offset: at, cause });
    }
    if (++this.#items > this.#limits.maxItems) this.#fail(`more than ${this.#limits.maxItems} items`, at, CommonCodes.LIMIT_EXCEEDED);

    const type = token.type;
    const top = this.#stack[this.#stack.length - 1];

    if (Type.equals(type, Type.break)) {
      if (!top || !top.indefinite) this.#fail('break outside an indefinite-length map', at);
      if (top.consumed % 2 !== 0) this.#fail('break in place of a map value', at);
      this.#stack.pop();
      this.#popFinished();
      return token;
    }

    if (Type.equals(type, Type.tag)) {
      const allowed = this.#opts.allowTopLevelTag;
      if (this.#started || this.#tagPending || allowed === undefined || token.value !== allowed) {
        this.#fail(`tag ${String(token.value)} is not allowed here`, at);
      }
      this.#tagPending = true;
      return token;
    }

    // Every other token is one item of the enclosing container (or the top-level item).
    if (!this.#started) this.#started = true;
    else if (!top && !this.#tagPending) this.#fail('more than one top-level item', at);
    this.#tagPending = false;
    if (top) {
      top.consumed++;
      top.remaining--;
    }

    if (Type.equals(type, Type.float) || Type.equals(type, Type.undefined)) {
      this.#fail('floating-point and undefined values are not allowed', at);
    }
    if (Type.equals(type, Type.string)) {
      const raw = token.byteValue;
      if (raw !== undefined) {
        try {
          utf8Fatal.decode(raw);
        } catch (cause) {
          throw malformed(CborCodes.CBOR_MALFORMED, `${this.#what()}: text string is not valid UTF-8`, { offset: at, cause });
        }
      } else if (token.value !== '') {
        this.#fail('text string bytes unavailable for UTF-8 check', at);
      }
    }
    if (Type.equals(type, Type.array) || Type.equals(type, Type.map)) {
      const isMap = Type.equals(type, Type.map);
      const n = token.value as number;
      if (n === Infinity) {
        if (!(isMap && this.#stack.length === 0 && this.#opts.allowIndefiniteTopLevelMap === true)) {
          this.#fail('indefinite-length arrays and maps are not allowed here', at);
        }
      } else if (n > this.#limits.maxLength) {
        this.#fail(`container declares ${n} entries (cap ${this.#limits.maxLength})`, at, CommonCodes.LIMIT_EXCEEDED);
      }
      if (this.#stack.length >= this.#limits.maxDepth) {
        this.#fail(`nesting deeper than ${this.#limits.maxDepth}`, at, CommonCodes.LIMIT_EXCEEDED);
      }
      this.#stack.push({ remaining: isMap ? n * 2 : n, indefinite: n === Infinity, consumed: 0 });
    }
    this.#popFinished();
    return token;
  }

  /** Closes every definite container whose last item has been read. */
  #popFinished(): void {
    for (;;) {
      const top = this.#stack[this.#stack.length - 1];
      if (!top || top.indefinite || top.remaining > 0) return;
      this.#stack.pop();
    }
  }
}

/**
 * Decodes exactly one CBOR item from `data` under the rules in the module header.
 * Returns plain values, `Uint8Array` (copies), arrays, `Map`s and (for an allowed tag) `CborTagged`.
 */
export function decodeCbor(data: Uint8Array, opts: CborDecodeOptions = {}): CborValue {
  const limits: CborLimits = {
    maxBytes: opts.maxBytes ?? DEFAULT_CBOR_LIMITS.maxBytes,
    maxDepth: opts.maxDepth ?? DEFAULT_CBOR_LIMITS.maxDepth,
    maxLength: opts.maxLength ?? DEFAULT_CBOR_LIMITS.maxLength,
    maxItems: opts.maxItems ?? DEFAULT_CBOR_LIMITS.maxItems,
  };
  const what = opts.what ?? 'CBOR';
  if (!(data instanceof Uint8Array)) throw malformed(CborCodes.CBOR_MALFORMED, `${what}: input is not bytes`);
  if (data.byteLength > limits.maxBytes) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what}: ${data.byteLength} bytes exceeds the cap of ${limits.maxBytes}`);
  }
  if (data.byteLength === 0) throw malformed(CommonCodes.TRUNCATED, `${what}: empty input`, { offset: 0 });
  const tokenizer = new StrictTokenizer(data, opts, limits);
  const tags: Record<number, (d: () => unknown) => CborTagged> = {};
  if (opts.allowTopLevelTag !== undefined) {
    const tag = opts.allowTopLevelTag;
    tags[tag] = (d) => Object.freeze({ tag, value: d() as CborValue });
  }
  let value: unknown;
  try {
    value = cborgDecode(data, { ...CBORG_OPTIONS, tags, tokenizer });
  } catch (cause) {
    if (isAttestError(cause)) throw cause;
    const msg = cause instanceof Error ? cause.message : String(cause);
    if (/too many terminals/i.test(msg)) {
      throw malformed(CommonCodes.TRAILING_BYTES, `${what}: trailing bytes after the top-level item`, {
        offset: tokenizer.pos(),
        cause,
      });
    }
    // Anything else cborg (or the JS engine, e.g. RangeError) throws is still a typed error.
    throw new AttestError(CborCodes.CBOR_MALFORMED, `${what}: ${msg}`, { offset: tokenizer.pos(), cause });
  }
  if (!isCborValue(value)) {
    throw malformed(CborCodes.CBOR_MALFORMED, `${what}: decoder produced an unexpected value kind`);
  }
  return value;
}

/**
 * Runtime proof that cborg built only the value kinds `CborValue` names (the tokenizer already
 * refused floats, undefined, big integers and unknown tags; this checks the result rather than
 * trusting that), so callers get a checked type instead of a cast of cborg's `any`.
 */
export function isCborValue(x: unknown): x is CborValue {
  if (x === null || typeof x === 'string' || typeof x === 'boolean' || x instanceof Uint8Array) return true;
  if (typeof x === 'number') return Number.isSafeInteger(x);
  if (Array.isArray(x)) return x.every(isCborValue);
  if (x instanceof Map) {
    for (const [k, e] of x) if (!isCborValue(k) || !isCborValue(e)) return false;
    return true;
  }
  if (typeof x === 'object' && Object.keys(x).length === 2 && 'tag' in x && 'value' in x) {
    return typeof x.tag === 'number' && isCborValue(x.value);
  }
  return false;
}

/** Runtime type guards for shape assertions (never casts). */
export const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
export const isCborMap = (v: unknown): v is ReadonlyMap<CborValue, CborValue> => v instanceof Map;
export const isCborArray = (v: unknown): v is readonly CborValue[] => Array.isArray(v);
export const isTagged = (v: unknown): v is CborTagged =>
  typeof v === 'object' && v !== null && !(v instanceof Map) && !(v instanceof Uint8Array) && !Array.isArray(v) && 'tag' in v;
