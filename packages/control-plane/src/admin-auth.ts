import { timingSafeEqual } from 'node:crypto';

/** Who may read the admin API's `/v1/*` (spend, limits, sidecars, policy). */
export type AdminAuth = (authorization: string | undefined) => Promise<{ ok: true; who: string } | { ok: false; status: 401 | 403; message: string }>;

function bearer(authorization: string | undefined): string | undefined {
  if (authorization === undefined || !authorization.startsWith('Bearer ')) return undefined;
  const t = authorization.slice(7).trim();
  return t === '' ? undefined : t;
}

/** A static bearer token (`SLUICE_CP_ADMIN_TOKEN`), compared in constant time. */
export function staticTokenAuth(token: string): AdminAuth {
  const want = Buffer.from(token);
  return async (authorization) => {
    const got = bearer(authorization);
    if (got === undefined) return { ok: false, status: 401, message: 'a bearer token is required (Authorization: Bearer …)' };
    const g = Buffer.from(got);
    if (g.length !== want.length || !timingSafeEqual(g, want)) return { ok: false, status: 401, message: 'bearer token rejected' };
    return { ok: true, who: 'token' };
  };
}

/** A user as Kubernetes TokenReview authenticated it. */
export interface ReviewedUser {
  readonly username: string;
  readonly groups: readonly string[];
}

/**
 * Kubernetes TokenReview: a bearer token the API server authenticates, whose user is in `allowed`
 * (usernames, or `group:<name>` entries). Verified tokens are cached for a minute.
 */
export function tokenReviewAuth(review: (token: string) => Promise<ReviewedUser | { error: string }>, allowed: readonly string[], now: () => number = Date.now): AdminAuth {
  const users = new Set(allowed.filter((a) => !a.startsWith('group:')));
  const groups = new Set(allowed.filter((a) => a.startsWith('group:')).map((a) => a.slice(6)));
  const cache = new Map<string, { at: number; result: ReviewedUser | { error: string } }>();
  return async (authorization) => {
    const token = bearer(authorization);
    if (token === undefined) return { ok: false, status: 401, message: 'a bearer token is required (Authorization: Bearer …)' };
    let hit = cache.get(token);
    if (hit === undefined || now() - hit.at > 60_000) {
      let result: ReviewedUser | { error: string };
      try {
        result = await review(token);
      } catch (e) {
        return { ok: false, status: 401, message: `token review unavailable: ${(e as Error).message}` };
      }
      hit = { at: now(), result };
      if (cache.size >= 1000) cache.clear();
      cache.set(token, hit);
    }
    const r = hit.result;
    if ('error' in r) return { ok: false, status: 401, message: `token rejected: ${r.error}` };
    if (users.has(r.username) || r.groups.some((g) => groups.has(g))) return { ok: true, who: r.username };
    return { ok: false, status: 403, message: `${r.username} may not read the admin API` };
  };
}

/** Any of several (a static token for scripts, TokenReview for people). */
export function anyAuth(auths: readonly AdminAuth[]): AdminAuth {
  return async (authorization) => {
    let last: Awaited<ReturnType<AdminAuth>> = { ok: false, status: 401, message: 'no admin authentication configured' };
    for (const a of auths) {
      const r = await a(authorization);
      if (r.ok) return r;
      if (last.ok || r.status === 403 || last.status !== 403) last = r;
    }
    return last;
  };
}
