import { isWindowName, windowOf } from '@sluice/policy/limits';
import type { LLMLimit, PolicySet } from '@sluice/policy';
import type { QuotaStore } from '../quota/store.js';
import { METRIC_NAMES, type Metric } from './model.js';
import { bucketsFor, parseUsageQuery, QueryError, series, summarize } from './query.js';
import type { UsageStore } from './store.js';

export interface SpendApiDeps {
  readonly usage: UsageStore;
  readonly quota: QuotaStore;
  readonly policy: () => PolicySet | undefined;
  readonly now?: () => number;
}

/** A JSON answer of the spend API, or undefined when the path is not one of its. */
export type SpendAnswer = { status: number; body: unknown } | undefined;

/**
 * The spend API (admin port):
 * - `GET /v1/usage?by=team,model&since=7d&until=now&namespace=…&team=…&model=…&sort=costMicros&limit=100&offset=0`
 *   totals grouped by any attribution dimensions, filtered, sorted (top-N = `limit`), paginated.
 * - `GET /v1/usage/series?by=model&since=24h&metric=costMicros&top=5[&granularity=hour]` one value
 *   per bucket for the top groups (the rest as `other`).
 * - `GET /v1/limits` every LLMLimit with, for global ones, what each key used of its current window.
 */
export async function spendApi(path: string, params: URLSearchParams, d: SpendApiDeps): Promise<SpendAnswer> {
  const nowSec = Math.floor((d.now ?? Date.now)() / 1000);
  try {
    switch (path) {
      case '/v1/usage': {
        const q = parseUsageQuery(params, nowSec);
        const buckets = bucketsFor(q);
        const ns = q.filters.get('namespace');
        return { status: 200, body: summarize(q, await d.usage.read(q.granularity, buckets, ns === undefined ? undefined : [...ns]), buckets) };
      }
      case '/v1/usage/series': {
        const q = parseUsageQuery(params, nowSec);
        const metric = (params.get('metric') ?? 'costMicros') as Metric;
        if (!METRIC_NAMES.includes(metric)) throw new QueryError(`metric: one of ${METRIC_NAMES.join(', ')}`);
        const top = Number(params.get('top') ?? 8);
        if (!Number.isSafeInteger(top) || top < 1 || top > 50) throw new QueryError('top: an integer from 1 to 50');
        const buckets = bucketsFor(q);
        const ns = q.filters.get('namespace');
        return { status: 200, body: series(q, await d.usage.read(q.granularity, buckets, ns === undefined ? undefined : [...ns]), buckets, metric, top) };
      }
      case '/v1/limits':
        return { status: 200, body: { limits: await limitsUtilisation(d, nowSec * 1000) } };
      default:
        return undefined;
    }
  } catch (e) {
    if (e instanceof QueryError) return { status: 400, body: { error: e.message } };
    throw e;
  }
}

export interface LimitUtilisation {
  readonly id: string;
  readonly unit: string;
  readonly window: string;
  readonly max: number;
  readonly scope: string;
  readonly mode: string;
  readonly failureMode: string;
  /** Global limits: the current window and each key's use of it (granted to sidecars, less returns), fullest first. */
  readonly windowStart?: string;
  readonly windowEnd?: string;
  readonly keys?: Array<{ key: string; spent: number; utilisation: number }>;
}

async function limitsUtilisation(d: SpendApiDeps, nowMs: number): Promise<LimitUtilisation[]> {
  const set = d.policy();
  if (set === undefined) return [];
  const out: LimitUtilisation[] = [];
  for (const o of set.objects.values()) {
    if (o.kind !== 'LLMLimit') continue;
    const s = (o as LLMLimit).spec;
    const id = `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
    const scope = s.scope ?? 'global';
    const base = { id, unit: s.unit, window: s.window, max: s.max, scope, mode: s.mode ?? 'enforce', failureMode: s.failureMode ?? 'FailClosed' };
    if (scope !== 'global' || !isWindowName(s.window)) {
      out.push(base);
      continue;
    }
    const w = windowOf(s.window, s.calendarAligned ?? false, s.timeZone ?? 'UTC', nowMs);
    let keys: Array<{ key: string; spent: number }> = [];
    try {
      keys = await d.quota.spent(id, w.id);
    } catch {
      // Redis away: the limit is listed without its counters.
    }
    out.push({
      ...base,
      windowStart: new Date(w.startMs).toISOString(),
      windowEnd: new Date(w.endMs).toISOString(),
      keys: keys.map((k) => ({ ...k, utilisation: s.max === 0 ? 1 : Math.round((k.spent / s.max) * 10_000) / 10_000 })).sort((a, b) => b.spent - a.spent),
    });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
