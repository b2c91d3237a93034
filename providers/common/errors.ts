/**
 * @module providers/common/errors
 *
 * One error class for everything that can go wrong between the wire and a verdict.
 *
 * - `code` is a stable UPPER_SNAKE machine code (tests and clients match on it, never on the
 *   message). Codes are part of the public contract: never rename one, add a new one.
 * - `kind` says *what sort* of failure it is, which is all the HTTP layer needs to pick a status
 *   (the mapping lives in exactly one place: `broker/http/problem.ts`). Providers therefore never
 *   think about HTTP, and new codes need no edit to a central table.
 * - `cause` chains the underlying error (kept out of HTTP responses, available to logs).
 *
 * Failure is always signalled by throwing an `AttestError`; no verifier returns `false`.
 */

/** What sort of failure an error is; the HTTP layer maps kinds to statuses. */
export type ErrorKind =
  /** Input could not be parsed or fails the schema (HTTP 400). */
  | 'malformed'
  /** Evidence parsed but is not authentic / not bound to the challenge (HTTP 403). */
  | 'rejected'
  /** Evidence is authentic but policy does not admit the node (HTTP 403). */
  | 'policy'
  /** The node must perform a further step and retry (HTTP 401), e.g. TPM credential activation. */
  | 'action-required'
  /** The referenced thing does not exist (HTTP 404). */
  | 'not-found'
  /** The referenced thing existed but is expired or already used (HTTP 410). */
  | 'gone'
  /** A conflicting state exists (HTTP 409). */
  | 'conflict'
  /** Request body exceeds the configured cap (HTTP 413). */
  | 'too-large'
  /** Wrong content type (HTTP 415). */
  | 'unsupported-media-type'
  /** Too many requests (HTTP 429). */
  | 'rate-limited'
  /** The request asks for something this broker does not offer (HTTP 501). */
  | 'not-implemented'
  /** A dependency of the broker (store, KMS, vendor service) is down (HTTP 503). */
  | 'unavailable'
  /** The broker or CLI is configured wrongly (HTTP 500; CLI exit 2). */
  | 'config'
  /** A bug: an invariant was violated (HTTP 500). */
  | 'internal';

export interface AttestErrorOptions {
  kind?: ErrorKind;
  cause?: unknown;
  /** Byte offset into the structure being parsed, for parser errors. */
  offset?: number;
  /** Seconds after which a retry may succeed (rate limits, outages). */
  retryAfter?: number;
  /** Extra machine-readable detail safe to show the caller (never secrets). */
  detail?: Readonly<Record<string, unknown>>;
}

const CODE_RE = /^[A-Z][A-Z0-9_]*$/;

export class AttestError extends Error {
  override readonly name = 'AttestError';
  readonly code: string;
  readonly kind: ErrorKind;
  readonly offset: number | undefined;
  readonly retryAfter: number | undefined;
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(code: string, message: string, options: AttestErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!CODE_RE.test(code)) throw new TypeError(`error code must be UPPER_SNAKE, got ${code}`);
    this.code = code;
    this.kind = options.kind ?? 'rejected';
    this.offset = options.offset;
    this.retryAfter = options.retryAfter;
    this.detail = options.detail;
  }
}

/** Shorthand constructors, so call sites read as what they mean. */
export const malformed = (code: string, message: string, o: Omit<AttestErrorOptions, 'kind'> = {}): AttestError =>
  new AttestError(code, message, { ...o, kind: 'malformed' });
export const rejected = (code: string, message: string, o: Omit<AttestErrorOptions, 'kind'> = {}): AttestError =>
  new AttestError(code, message, { ...o, kind: 'rejected' });
export const unavailable = (code: string, message: string, o: Omit<AttestErrorOptions, 'kind'> = {}): AttestError =>
  new AttestError(code, message, { ...o, kind: 'unavailable' });
export const configError = (code: string, message: string, o: Omit<AttestErrorOptions, 'kind'> = {}): AttestError =>
  new AttestError(code, message, { ...o, kind: 'config' });

export function isAttestError(e: unknown): e is AttestError {
  return e instanceof AttestError;
}

/**
 * Codes shared by every parser. Provider-specific codes live with their provider.
 */
export const CommonCodes = {
  /** A read ran past the end of the input (a length prefix lied, or the input is cut short). */
  TRUNCATED: 'TRUNCATED',
  /** Bytes left over after a structure that must consume its whole input. */
  TRAILING_BYTES: 'TRAILING_BYTES',
  /** A reserved / must-be-zero range is not zero. */
  RESERVED_NONZERO: 'RESERVED_NONZERO',
  /** A length or count exceeds the cap for this structure. */
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  /** Not valid base64 / base64url / hex, or otherwise unparseable encoding. */
  BAD_ENCODING: 'BAD_ENCODING',
} as const;
