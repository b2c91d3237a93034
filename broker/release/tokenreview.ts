/**
 * @module broker/release/tokenreview
 *
 * Webhook token authentication for the bootstrap tokens this broker issued, for clusters where
 * the broker must not write Secrets into kube-system (webhook mode: tokens then live only as
 * SHA-256 digests in the store).
 *
 * Reference: Kubernetes "Webhook Token Authentication"
 * (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#webhook-token-authentication),
 * API `authentication.k8s.io/v1` TokenReview: the API server POSTs
 * `{apiVersion, kind: "TokenReview", spec: {token, audiences?}}` and expects the same object back
 * with `status: {authenticated, user: {username, groups, extra}, audiences?}`. The API server
 * calls the webhook with the credentials of its `--authentication-token-webhook-config-file`
 * kubeconfig: a client certificate and/or a bearer token (docs/release.md has one).
 *
 * Who may ask: only an authenticated API server. Each caller is configured per cluster with a
 * bearer credential (compared as SHA-256 digests in constant time, every configured digest
 * checked) and/or the subject of a client certificate that the TLS layer verified against the
 * configured client CA. Anything else is a 401 problem that says nothing about any token. The
 * caller's cluster is the only cluster whose tokens it can get answers for.
 *
 * No oracle: the token's state is looked up and the secret's SHA-256 compared (constant time,
 * against a dummy digest when the id is unknown) before anything else is decided, and every
 * failure — malformed, unknown, wrong secret, used, expired, another cluster's token, audience,
 * review budget spent — is the same `{authenticated: false}` answer. The real reason goes to the
 * audit log (hash-chained) only.
 *
 * Bounded use: a token authenticates at most `maxReviews` times (TLS bootstrap needs a handful:
 * the CSR create and its watch; the API server caches each answer for its webhook cache TTL) and
 * never after it is marked used — the moment the node's client certificate is issued
 * (TokenIssuer.consume). docs/release.md states the exact lifetime.
 *
 * The identity returned is what the built-in bootstrap-token authenticator returns
 * (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/): username
 * `system:bootstrap:<token id>`, groups `system:bootstrappers` plus the token's extra groups, so
 * the same RBAC works in both modes; `extra` carries the attested node name, instance id and
 * cluster for the CSR approver.
 */
import type { AuditSink, Clock, Logger, Peer, StateStore } from '../contracts.js';
import { timingSafeEqual, timingSafeEqualString } from '../../providers/common/ct.js';
import { sha256 } from '../../providers/common/digest.js';
import { AttestError } from '../../providers/common/errors.js';
import { utf8 } from '../../providers/common/encoding.js';
import { secretDigest, type TokenState } from './issuer.js';
import { TOKEN_RE } from './token.js';

const API_VERSION = 'authentication.k8s.io/v1';
/** Compared against when the token id is unknown, so both paths hash and compare alike. */
const DUMMY_DIGEST = '0'.repeat(64);

/** One API server allowed to ask, and the cluster it speaks for. */
export interface TokenReviewCaller {
  cluster: string;
  /** SHA-256 digests of bearer credentials this caller may present. */
  bearerSha256?: readonly Uint8Array[];
  /** Subjects (RFC 4514 as Node prints them, e.g. "CN=kube-apiserver") of verified client certificates. */
  clientCertSubjects?: readonly string[];
}

export interface TokenReviewOptions {
  /** Looks a token's state up (TokenIssuer.state or the store directly). */
  state(tokenId: string): Promise<TokenState | null>;
  /** Counts reviews (StateStore.incr). */
  store: Pick<StateStore, 'incr'>;
  clock: Clock;
  logger: Logger;
  /** Where the real reason of every answer goes. */
  audit?: AuditSink;
  callers: readonly TokenReviewCaller[];
  /** Audiences this broker accepts when the API server asks for specific ones. */
  audiences?: readonly string[];
  /** Successful reviews per token at most (default 16). */
  maxReviews?: number;
}

export interface TokenReviewStatus {
  authenticated: boolean;
  user?: { username: string; groups: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
}

export type ReviewReason = 'ok' | 'malformed' | 'unknown' | 'wrong-secret' | 'used' | 'expired' | 'wrong-cluster' | 'audience' | 'review-limit';

/** Which configured caller this request comes from, or undefined. */
export async function authenticateCaller(req: Request, peer: Peer, callers: readonly TokenReviewCaller[]): Promise<TokenReviewCaller | undefined> {
  let found: TokenReviewCaller | undefined;
  const auth = req.headers.get('authorization');
  const m = auth ? /^Bearer ([!-~]{1,4096})$/.exec(auth) : null;
  if (m) {
    const d = await sha256(utf8(m[1]!));
    // Every digest is compared (no early exit), so timing says nothing about which one matched.
    for (const c of callers) for (const want of c.bearerSha256 ?? []) if (timingSafeEqual(d, want) && !found) found = c;
    return found;
  }
  const subject = peer.clientCertificate?.subject;
  if (subject !== undefined) {
    for (const c of callers) if (c.clientCertSubjects?.includes(subject) && !found) found = c;
  }
  return found;
}

const no: TokenReviewStatus = Object.freeze({ authenticated: false });

/** Reviews one token for `cluster`; never throws for an invalid token (only store outages propagate). */
export async function reviewToken(
  token: string,
  cluster: string,
  audiences: readonly string[] | undefined,
  o: TokenReviewOptions,
): Promise<{ status: TokenReviewStatus; reason: ReviewReason; tokenId?: string }> {
  const m = TOKEN_RE.exec(token);
  const id = m?.[1];
  const st = id ? await o.state(id) : null;
  // Hash and compare on every path before deciding anything.
  const digest = await secretDigest(m?.[2] ?? '');
  const secretOk = timingSafeEqualString(digest, st?.secretSha256 ?? DUMMY_DIGEST) && st !== null;
  const fail = (reason: ReviewReason) => ({ status: no, reason, ...(id ? { tokenId: id } : {}) });
  if (!m) return fail('malformed');
  if (!st) return fail('unknown');
  if (!secretOk) return fail('wrong-secret');
  if (st.used) return fail('used');
  if (!(Date.parse(st.expiresAt) > o.clock.now().getTime())) return fail('expired');
  if (st.cluster !== cluster) return fail('wrong-cluster');
  let aud: string[] | undefined;
  if (audiences && audiences.length > 0) {
    aud = audiences.filter((a) => (o.audiences ?? []).includes(a));
    if (aud.length === 0) return fail('audience');
  }
  const left = Math.max(1000, Date.parse(st.expiresAt) - o.clock.now().getTime());
  if ((await o.store.incr(`tokenreview:${id}`, left)) > (o.maxReviews ?? 16)) return fail('review-limit');
  const groups = ['system:bootstrappers', ...st.groups.filter((g) => g !== 'system:bootstrappers')];
  return {
    status: {
      authenticated: true,
      user: {
        username: `system:bootstrap:${id}`,
        groups,
        extra: { 'attest-broker.io/node-name': [st.nodeName], 'attest-broker.io/instance-id': [st.instanceId], 'attest-broker.io/cluster': [st.cluster] },
      },
      ...(aud ? { audiences: aud } : {}),
    },
    reason: 'ok',
    tokenId: id!,
  };
}

function parseReview(text: string): { token: string; audiences?: string[] } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (cause) {
    throw new AttestError('TOKENREVIEW_MALFORMED', 'the body is not JSON', { cause });
  }
  const b = body as { apiVersion?: unknown; kind?: unknown; spec?: { token?: unknown; audiences?: unknown } };
  if (typeof body !== 'object' || body === null || b.kind !== 'TokenReview' || b.apiVersion !== API_VERSION || typeof b.spec?.token !== 'string') {
    throw new AttestError('TOKENREVIEW_MALFORMED', `expected an ${API_VERSION} TokenReview`);
  }
  const auds = Array.isArray(b.spec.audiences) && b.spec.audiences.every((a) => typeof a === 'string') ? (b.spec.audiences as string[]).slice(0, 16) : undefined;
  return { token: b.spec.token.slice(0, 256), ...(auds ? { audiences: auds } : {}) };
}

/**
 * `POST /v1/tokenreview` handler. Throws AttestError (TOKENREVIEW_UNAUTHENTICATED 401,
 * TOKENREVIEW_MALFORMED 400) for the app's one error mapping; an invalid token is a 200 answer.
 */
export function tokenReviewHandler(o: TokenReviewOptions): (req: Request, peer: Peer) => Promise<Response> {
  if (o.callers.length === 0) throw new AttestError('CONFIG_INVALID', 'the TokenReview webhook needs at least one authenticated caller');
  return async (req, peer) => {
    const caller = await authenticateCaller(req, peer, o.callers);
    if (!caller) {
      throw new AttestError('TOKENREVIEW_UNAUTHENTICATED', 'only an authenticated Kubernetes API server may call the TokenReview webhook');
    }
    const { token, audiences } = parseReview(await req.text());
    const r = await reviewToken(token, caller.cluster, audiences, o);
    await o.audit?.record({ type: 'tokenreview', cluster: caller.cluster, tokenId: r.tokenId, outcome: r.status.authenticated ? 'authenticated' : 'refused', reason: r.reason });
    o.logger.info({ authenticated: r.status.authenticated, cluster: caller.cluster, tokenId: r.tokenId }, 'tokenreview');
    return new Response(JSON.stringify({ apiVersion: API_VERSION, kind: 'TokenReview', status: r.status }), {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  };
}
