import { bundledPrice, type ModelPrice } from '@sluice/providers';
import type { Snapshot, SnapshotBackend, SnapshotCache } from '@sluice/policy';
import { requestMatcher, type CompiledLimits } from '@sluice/policy/limits';
import { compileSnapshotLimits } from './limits/enforce.js';
import { createRouter, type Router } from './router.js';
import { compileGuardrails, routeGuards, type CompiledGuardrail, type RouteGuards } from './guard/index.js';

const PRICE_CACHE_MAX = 4096;

/**
 * Everything the hot path needs from one snapshot, built once when the snapshot is applied: the
 * router, the pre-rendered model lists, and a bounded price lookup cache.
 */
export interface Runtime {
  readonly snapshot: Snapshot;
  readonly router: Router;
  readonly modelsOpenAI: string;
  readonly modelsAnthropic: string;
  /** The snapshot's limits (local and global), compiled. */
  readonly limits: CompiledLimits;
  priceOf(backend: SnapshotBackend, model: string): ModelPrice | undefined;
  /** The snapshot's guardrails, compiled (one scanner each). */
  readonly guardrails: readonly CompiledGuardrail[];
  /** The guardrails of one route (`namespace/name`), sorted by use (memoised per route). */
  guardsFor(routeId: string): RouteGuards;
  /** The response cache policy of a request (the first LLMCache in precedence order that matches), if any. */
  cacheFor(routeId: string, model: string): SnapshotCache | undefined;
}

export function createRuntime(snapshot: Snapshot): Runtime {
  const router = createRouter(snapshot);
  const modelsOpenAI = JSON.stringify({
    object: 'list',
    data: router.modelNames.map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.provider })),
  });
  const anthropicData = router.modelNames.map((m) => ({ type: 'model', id: m.id, display_name: m.id, created_at: '1970-01-01T00:00:00Z' }));
  const modelsAnthropic = JSON.stringify({
    data: anthropicData,
    has_more: false,
    first_id: anthropicData[0]?.id ?? null,
    last_id: anthropicData[anthropicData.length - 1]?.id ?? null,
  });
  const prices = new Map<string, ModelPrice | null>();
  const caches = snapshot.caches.map((c) => ({ cache: c, matches: requestMatcher(c) }));
  const cacheDecisions = new Map<string, SnapshotCache | null>();
  const guardrails = compileGuardrails(snapshot.guardrails, snapshot.backends);
  const byRoute = new Map<string, RouteGuards>();
  return {
    snapshot,
    router,
    modelsOpenAI,
    modelsAnthropic,
    limits: compileSnapshotLimits(snapshot.limits),
    guardrails,
    guardsFor(routeId) {
      let g = byRoute.get(routeId);
      if (g === undefined) {
        g = routeGuards(guardrails, routeId);
        // Route ids come from the snapshot's rules, so the map is bounded by them.
        byRoute.set(routeId, g);
      }
      return g;
    },
    priceOf(backend, model) {
      const key = `${backend.id}\u0000${model}`;
      const hit = prices.get(key);
      if (hit !== undefined) return hit ?? undefined;
      const price = backend.prices[model] ?? bundledPrice(backend.priceFamily, model);
      if (prices.size < PRICE_CACHE_MAX) prices.set(key, price ?? null);
      return price;
    },
    cacheFor(routeId, model) {
      if (caches.length === 0) return undefined;
      const key = `${routeId}\u0000${model}`;
      const known = cacheDecisions.get(key);
      if (known !== undefined) return known ?? undefined;
      const found = caches.find((c) => c.matches({ routeId, model }))?.cache;
      if (cacheDecisions.size < PRICE_CACHE_MAX) cacheDecisions.set(key, found ?? null);
      return found;
    },
  };
}
