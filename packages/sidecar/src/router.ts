import type { Snapshot, SnapshotBackend, SnapshotRule } from '@sluice/policy';

/** A resolved routing decision for one request. */
export interface RouteTarget {
  readonly route: string;
  readonly backend: SnapshotBackend;
  /** Model sent upstream: the rule's override, else the backend's alias target, else as asked. */
  readonly upstreamModel: string;
}

/** The rule that matched, its first backend (for limits and prices) and every candidate, in declared order. */
export interface RouteDecision extends RouteTarget {
  readonly rule: SnapshotRule;
  readonly candidates: readonly RouteCandidate[];
  /** The rule's shadow traffic target, if any. */
  readonly shadow: RouteTarget | undefined;
}

export interface RouteCandidate extends RouteTarget {
  readonly weight: number;
}

export interface Router {
  resolve(model: string): RouteDecision | undefined;
  /** Every model name a caller can ask for (declared models, aliases, exact rule names), sorted. */
  readonly modelNames: readonly { id: string; provider: string }[];
}

/** Distinct model names whose routing decision is kept (callers choose the names; bounded). */
const DECISION_CACHE_MAX = 4096;

function globToRegExp(glob: string): RegExp {
  const body = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${body}$`);
}

/**
 * Built once per snapshot: an exact-name map and an ordered list of compiled patterns; a first lookup
 * of a name is a map get, then at most one regex test per pattern, later ones a cache hit. Nothing is
 * compiled per request.
 */
export function createRouter(snapshot: Snapshot): Router {
  const backends = new Map(snapshot.backends.map((b) => [b.id, b]));
  const exact = new Map<string, SnapshotRule>();
  const patterns: Array<{ re: RegExp; rule: SnapshotRule }> = [];
  for (const rule of snapshot.rules) {
    for (const name of rule.exact) if (!exact.has(name)) exact.set(name, rule);
    for (const p of rule.patterns) patterns.push({ re: globToRegExp(p), rule });
  }
  function target(rule: SnapshotRule, model: string): RouteDecision | undefined {
    const candidates: RouteCandidate[] = [];
    for (const t of rule.targets) {
      const backend = backends.get(t.backend);
      if (backend !== undefined) candidates.push({ route: rule.route, backend, upstreamModel: t.modelOverride ?? backend.aliases[model] ?? model, weight: t.weight });
    }
    const first = candidates[0];
    if (first === undefined) return undefined;
    const sb = rule.shadow !== null && rule.shadow !== undefined && rule.shadow.backend !== '' ? backends.get(rule.shadow.backend) : undefined;
    const shadow = sb === undefined ? undefined : { route: rule.route, backend: sb, upstreamModel: rule.shadow.modelOverride ?? sb.aliases[model] ?? model };
    return { route: rule.route, backend: first.backend, upstreamModel: first.upstreamModel, rule, candidates, shadow };
  }
  const decisions = new Map<string, RouteDecision | null>();
  const names = new Map<string, string>();
  for (const b of snapshot.backends) {
    for (const m of b.models) names.set(m, b.provider);
    for (const a of Object.keys(b.aliases)) names.set(a, b.provider);
  }
  for (const rule of snapshot.rules) {
    const b = rule.targets[0] && backends.get(rule.targets[0].backend);
    for (const n of rule.exact) if (!names.has(n) && b) names.set(n, b.provider);
  }
  // Only names some rule routes are listed.
  const modelNames = [...names]
    .filter(([id]) => exact.has(id) || patterns.some((p) => p.re.test(id)))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, provider]) => ({ id, provider }));
  return {
    resolve(model) {
      // Decisions are immutable per snapshot: built once per model name (bounded), then reused.
      const hit = decisions.get(model);
      if (hit !== undefined) return hit ?? undefined;
      const rule = exact.get(model) ?? patterns.find((p) => p.re.test(model))?.rule;
      const d = rule === undefined ? undefined : target(rule, model);
      if (decisions.size < DECISION_CACHE_MAX) decisions.set(model, d ?? null);
      return d;
    },
    modelNames,
  };
}
