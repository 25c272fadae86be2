import type { SnapshotLimit } from '../snapshot.js';

/** Who is making a request, as far as limit keys are concerned. */
export interface LimitKeyContext {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Request header by lower-case name; undefined when absent. */
  readonly headers: (name: string) => string | undefined;
}

export interface LimitRequest {
  /** `namespace/name` of the route that matched the request. */
  readonly routeId: string;
  /** The model as requested by the client (before alias resolution). */
  readonly model: string;
}

/**
 * The counter key of `limit` for a request: its `key[]` parts joined with `|`, each `name=value`
 * (`namespace=…`, `serviceAccount=…`, `<label>=…`, `<header, lower-case>=…`), values
 * percent-encoded where they contain `%`, `|`, `=`, `{` or `}` so keys stay unambiguous (and safe
 * inside a Redis hash tag). An empty `key[]` gives `''` (one counter for everyone).
 *
 * Returns undefined when a part cannot be resolved — a label the workload does not carry, a header
 * the request does not send (or sends empty), an unknown source: the limit then does NOT apply to
 * this request (it is not counted and cannot deny it). Require the header in another way (e.g. a
 * guardrail) when a missing header must not bypass a limit.
 */
export function limitKey(limit: Pick<SnapshotLimit, 'key'>, ctx: LimitKeyContext): string | undefined {
  const parts: string[] = [];
  for (const k of limit.key) {
    let name: string;
    let value: string | undefined;
    switch (k.source) {
      case 'namespace':
        name = 'namespace';
        value = ctx.namespace;
        break;
      case 'serviceAccount':
        name = 'serviceAccount';
        value = ctx.serviceAccount;
        break;
      case 'label':
        name = k.name;
        value = Object.prototype.hasOwnProperty.call(ctx.labels, k.name) ? ctx.labels[k.name] : undefined;
        break;
      case 'header':
        name = k.name.toLowerCase();
        value = ctx.headers(name);
        break;
      default:
        return undefined;
    }
    if (value === undefined || value === '') return undefined;
    parts.push(`${escapePart(name)}=${escapePart(value)}`);
  }
  return parts.join('|');
}

function escapePart(s: string): string {
  return /[%|={}]/u.test(s) ? s.replace(/[%|={}]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) : s;
}

/** A limit with its `match` compiled (route set, model globs). Build once per snapshot. */
export interface CompiledLimit {
  readonly limit: SnapshotLimit;
  matches(req: LimitRequest): boolean;
}

export interface CompiledLimits {
  readonly limits: readonly CompiledLimit[];
  /** Every limit that applies to the request, with its key (limits whose key is unresolved are skipped). */
  matching(req: LimitRequest, ctx: LimitKeyContext): Array<{ limit: SnapshotLimit; key: string }>;
}

export function compileLimit(limit: SnapshotLimit): CompiledLimit {
  return { limit, matches: requestMatcher(limit) };
}

/**
 * A `match` (route ids and model names or `*` globs, each empty = all) compiled into a predicate:
 * shared by limits and caches.
 */
export function requestMatcher(m: { readonly routes: readonly string[]; readonly models: readonly string[] }): (req: LimitRequest) => boolean {
  const routes = m.routes.length === 0 ? undefined : new Set(m.routes);
  const models = m.models.length === 0 ? undefined : compileModels(m.models);
  return (req) => (routes === undefined || routes.has(req.routeId)) && (models === undefined || models(req.model));
}

/** Compiles every limit of a snapshot (do it when the snapshot is swapped in, not per request). */
export function compileLimits(limits: readonly SnapshotLimit[]): CompiledLimits {
  const compiled = limits.map((l) => {
    const c = compileLimit(l);
    cache.set(l, c);
    return c;
  });
  return {
    limits: compiled,
    matching(req, ctx) {
      const out: Array<{ limit: SnapshotLimit; key: string }> = [];
      for (const c of compiled) {
        if (!c.matches(req)) continue;
        const key = limitKey(c.limit, ctx);
        if (key !== undefined) out.push({ limit: c.limit, key });
      }
      return out;
    },
  };
}

const cache = new WeakMap<SnapshotLimit, CompiledLimit>();

/**
 * Whether `limit` counts this request: `routes` empty or containing the route id, and `models` empty
 * or containing the model exactly or as a `*` glob. The compiled form is cached per limit object
 * (snapshots are immutable), so this is cheap after the first call.
 */
export function limitMatches(limit: SnapshotLimit, req: LimitRequest): boolean {
  let c = cache.get(limit);
  if (c === undefined) {
    c = compileLimit(limit);
    cache.set(limit, c);
  }
  return c.matches(req);
}

function compileModels(models: readonly string[]): (model: string) => boolean {
  const exact = new Set<string>();
  const globs: string[] = [];
  for (const m of models) {
    if (m.includes('*')) globs.push(m.split('*').map(escapeRegExp).join('.*'));
    else exact.add(m);
  }
  const re = globs.length === 0 ? undefined : new RegExp(`^(?:${globs.join('|')})$`, 'su');
  return (model) => exact.has(model) || (re !== undefined && re.test(model));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&');
}
