/**
 * @module broker/http/problem
 *
 * The ONE place where failures become HTTP (RFC 9457 `application/problem+json`).
 *
 * - `AttestError.kind` picks the status; the stable `code` travels in the body.
 * - Only `AttestError`s say anything specific. Any other exception is a bug: it becomes a generic
 *   500 `INTERNAL` with no message, stack or cause in the response (they go to the log).
 * - Messages of errors from the node's own evidence are safe to return (they describe the node's
 *   input); policy denials are coarsened before they get here (see the policy engine).
 */
import { AttestError, type ErrorKind } from '../../providers/common/errors.js';

export const STATUS_BY_KIND: Readonly<Record<ErrorKind, number>> = {
  malformed: 400,
  rejected: 403,
  policy: 403,
  'action-required': 401,
  unauthenticated: 401,
  'not-found': 404,
  gone: 410,
  conflict: 409,
  'too-large': 413,
  'unsupported-media-type': 415,
  'rate-limited': 429,
  'not-implemented': 501,
  unavailable: 503,
  config: 500,
  internal: 500,
};

const TITLE_BY_KIND: Readonly<Record<ErrorKind, string>> = {
  malformed: 'Malformed request',
  rejected: 'Evidence rejected',
  policy: 'Denied by policy',
  'action-required': 'Further step required',
  unauthenticated: 'Authentication required',
  'not-found': 'Not found',
  gone: 'Gone',
  conflict: 'Conflict',
  'too-large': 'Request too large',
  'unsupported-media-type': 'Unsupported media type',
  'rate-limited': 'Too many requests',
  'not-implemented': 'Not implemented',
  unavailable: 'Service unavailable',
  config: 'Broker misconfigured',
  internal: 'Internal error',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  requestId?: string;
  [ext: string]: unknown;
}

export const PROBLEM_TYPE_BASE = 'https://attest-broker.dev/problems/';

export function toProblem(err: unknown, requestId?: string): { problem: Problem; headers: Record<string, string> } {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (err instanceof AttestError) {
    const status = STATUS_BY_KIND[err.kind];
    // 5xx from our own faults: never echo internals.
    const detail = err.kind === 'internal' || err.kind === 'config' ? 'the broker hit an internal error; see its logs' : err.message;
    if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
    if (err.kind === 'unauthenticated') headers['www-authenticate'] = 'Bearer';
    const problem: Problem = {
      type: PROBLEM_TYPE_BASE + err.code.toLowerCase().replace(/_/g, '-'),
      title: TITLE_BY_KIND[err.kind],
      status,
      detail,
      code: err.code,
      ...(err.detail ?? {}),
      ...(requestId ? { requestId } : {}),
    };
    return { problem, headers };
  }
  return {
    problem: {
      type: PROBLEM_TYPE_BASE + 'internal',
      title: TITLE_BY_KIND.internal,
      status: 500,
      detail: 'the broker hit an internal error; see its logs',
      code: 'INTERNAL',
      ...(requestId ? { requestId } : {}),
    },
    headers,
  };
}
