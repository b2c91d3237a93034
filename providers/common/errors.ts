/**
 * @module providers/common/errors
 *
 * One error class for everything that can go wrong between the wire and a verdict.
 *
 * - `code` is a stable UPPER_SNAKE machine code (tests and clients match on it, never on the
 *   message). Codes are part of the public contract: never rename one, add a new one.
 * - `kind` says *what sort* of failure it is, which is all the HTTP layer needs to pick a status
 *   (the mapping lives in exactly one place: `broker/http/problem.ts`). Providers therefore never
 *   think about HTTP. The kind is not chosen at the call site: each code is defined once, with
 *   its kind, in `codes.ts`, so the same code always answers with the same status.
 * - `cause` chains the underlying error (kept out of HTTP responses, available to logs).
 *
 * Failure is always signalled by throwing an `AttestError`; no verifier returns `false`.
 */
import { CODE_KINDS, isCode, type Code, type CodeOfKind } from './codes.js';
export { CODE_KINDS, isCode, type Code, type CodeOfKind };

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
  /** The caller did not authenticate (HTTP 401), e.g. an unknown API server at the TokenReview webhook. */
  | 'unauthenticated'
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
  cause?: unknown;
  /** Byte offset into the structure being parsed, for parser errors. */
  offset?: number;
  /** Seconds after which a retry may succeed (rate limits, outages). */
  retryAfter?: number;
  /** Extra machine-readable detail safe to show the caller (never secrets). */
  detail?: Readonly<Record<string, unknown>>;
}

export class AttestError extends Error {
  override readonly name = 'AttestError';
  readonly code: Code;
  readonly kind: ErrorKind;
  readonly offset: number | undefined;
  readonly retryAfter: number | undefined;
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(code: Code, message: string, options: AttestErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // Codes are compile-time checked; this guards values that came through `any` or JSON.
    if (!isCode(code)) throw new TypeError(`unknown error code ${String(code)}: define it in providers/common/codes.ts`);
    this.code = code;
    this.kind = CODE_KINDS[code];
    this.offset = options.offset;
    this.retryAfter = options.retryAfter;
    this.detail = options.detail;
  }
}

/**
 * Shorthand constructors, so call sites read as what they mean. Each accepts only codes of its
 * own kind (a code whose table kind differs does not compile), so the words at the call site
 * and the status on the wire cannot disagree.
 */
export const malformed = (code: CodeOfKind<'malformed'>, message: string, o: AttestErrorOptions = {}): AttestError => new AttestError(code, message, o);
export const rejected = (code: CodeOfKind<'rejected'>, message: string, o: AttestErrorOptions = {}): AttestError => new AttestError(code, message, o);
export const unavailable = (code: CodeOfKind<'unavailable'>, message: string, o: AttestErrorOptions = {}): AttestError => new AttestError(code, message, o);
export const configError = (code: CodeOfKind<'config'>, message: string, o: AttestErrorOptions = {}): AttestError => new AttestError(code, message, o);

export function isAttestError(e: unknown): e is AttestError {
  return e instanceof AttestError;
}

/** Codes shared by every parser (defined, with their kinds, in codes.ts like every other code). */
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
