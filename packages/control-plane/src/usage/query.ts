/**
 * Spend queries over stored usage cells: parse the query, pick a granularity, group, filter, sort,
 * page, and build time series. Pure functions; the store is read by the caller.
 */
import { bucketEnd, bucketsBetween, bucketStart, GROUP_DIMENSIONS, METRIC_NAMES, RETENTION_MS, zeroTotals, type Granularity, type GroupDimension, type Metric, type Totals, type UsageCell } from './model.js';

export class QueryError extends Error {}

export interface UsageQuery {
  /** Range [fromSec, toSec), unix seconds. */
  readonly fromSec: number;
  readonly toSec: number;
  readonly by: readonly GroupDimension[];
  /** Dimension → accepted values (any of them). */
  readonly filters: ReadonlyMap<GroupDimension, ReadonlySet<string>>;
  readonly sort: Metric;
  readonly limit: number;
  readonly offset: number;
  readonly granularity: Granularity;
}

/** `7d`, `24h`, `30m`, `2w`, an ISO date/time, or unix seconds → unix seconds (relative to `nowSec`). */
export function parseTime(v: string, nowSec: number, name: string): number {
  const rel = /^(\d+)([smhdw])$/u.exec(v);
  if (rel) {
    const n = Number(rel[1]);
    const unit = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }[rel[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return nowSec - n * unit;
  }
  if (v === 'now') return nowSec;
  if (/^\d{9,11}$/u.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new QueryError(`${name}: expected a duration like 7d / 24h / 30m, an ISO date or unix seconds, got ${JSON.stringify(v)}`);
  return Math.floor(t / 1000);
}

/** The finest granularity whose retention still covers the range start (and that keeps the bucket count sane). */
export function granularityFor(fromSec: number, toSec: number, nowSec: number): Granularity {
  const age = (nowSec - fromSec) * 1000;
  const span = toSec - fromSec;
  if (age <= RETENTION_MS.minute && span <= 6 * 3600) return 'minute';
  if (age <= RETENTION_MS.hour && span <= 35 * 86_400) return 'hour';
  if (age <= RETENTION_MS.day && span <= 400 * 86_400) return 'day';
  return 'month';
}

const MAX_LIMIT = 1000;

/** Parses the query string of `/v1/usage` and `/v1/usage/series`. */
export function parseUsageQuery(params: URLSearchParams, nowSec: number): UsageQuery {
  const fromSec = parseTime(params.get('since') ?? '24h', nowSec, 'since');
  const toSec = parseTime(params.get('until') ?? 'now', nowSec, 'until') + (params.get('until') === null ? 1 : 0);
  if (!(toSec > fromSec)) throw new QueryError('until must be after since');
  const by = (params.get('by') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const d of by) if (!(GROUP_DIMENSIONS as readonly string[]).includes(d)) throw new QueryError(`by: unknown dimension ${JSON.stringify(d)}; one of ${GROUP_DIMENSIONS.join(', ')}`);
  const filters = new Map<GroupDimension, Set<string>>();
  for (const d of GROUP_DIMENSIONS) {
    const v = params.get(d);
    if (v !== null) filters.set(d, new Set(v.split(',')));
  }
  const sort = (params.get('sort') ?? 'costMicros') as Metric;
  if (!METRIC_NAMES.includes(sort)) throw new QueryError(`sort: one of ${METRIC_NAMES.join(', ')}`);
  const limit = Number(params.get('limit') ?? 100);
  const offset = Number(params.get('offset') ?? 0);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new QueryError(`limit: an integer from 1 to ${MAX_LIMIT}`);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new QueryError('offset: a non-negative integer');
  const g = params.get('granularity');
  if (g !== null && !['minute', 'hour', 'day', 'month'].includes(g)) throw new QueryError('granularity: minute, hour, day or month');
  const granularity = (g as Granularity | null) ?? granularityFor(fromSec, toSec, nowSec);
  return { fromSec, toSec, by: by as GroupDimension[], filters, sort, limit, offset, granularity };
}

/** Buckets to read for a query (the range widened to whole buckets). */
export function bucketsFor(q: UsageQuery): string[] {
  const b = bucketsBetween(q.granularity, q.fromSec, q.toSec);
  if (b.length > 5000) throw new QueryError(`the range needs ${b.length} ${q.granularity} buckets; ask for a coarser granularity`);
  return b;
}

function valueOf(c: UsageCell, d: GroupDimension): string {
  return d === 'namespace' ? c.namespace : c.attribution[d];
}

function matches(c: UsageCell, filters: UsageQuery['filters']): boolean {
  for (const [d, values] of filters) if (!values.has(valueOf(c, d))) return false;
  return true;
}

function add(t: Totals, u: Totals): void {
  for (const m of METRIC_NAMES) t[m] += u[m];
}

export interface UsageRow extends Totals {
  readonly key: Record<string, string>;
}

export interface UsageSummary {
  readonly from: string;
  readonly to: string;
  readonly granularity: Granularity;
  readonly by: readonly string[];
  readonly total: Totals;
  readonly rows: UsageRow[];
  readonly totalRows: number;
  readonly offset: number;
  /** Offset of the next page; absent on the last page. */
  readonly nextOffset?: number;
}

const iso = (sec: number): string => new Date(sec * 1000).toISOString();

/** Totals grouped by `q.by`, sorted by `q.sort` (descending), one page. */
export function summarize(q: UsageQuery, cells: readonly UsageCell[], buckets: readonly string[]): UsageSummary {
  const groups = new Map<string, { key: Record<string, string>; totals: Totals }>();
  const total = zeroTotals();
  for (const c of cells) {
    if (!matches(c, q.filters)) continue;
    add(total, c.totals);
    const key: Record<string, string> = {};
    for (const d of q.by) key[d] = valueOf(c, d);
    const id = q.by.map((d) => key[d]).join('\u0000');
    let g = groups.get(id);
    if (g === undefined) {
      g = { key, totals: zeroTotals() };
      groups.set(id, g);
    }
    add(g.totals, c.totals);
  }
  const all = [...groups.values()].sort((a, b) => b.totals[q.sort] - a.totals[q.sort] || JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)));
  const page = all.slice(q.offset, q.offset + q.limit).map((g) => ({ key: g.key, ...g.totals }));
  const first = buckets[0];
  const last = buckets[buckets.length - 1];
  return {
    from: iso(first === undefined ? q.fromSec : bucketStart(q.granularity, first)),
    to: iso(last === undefined ? q.toSec : bucketEnd(q.granularity, last)),
    granularity: q.granularity,
    by: q.by,
    total,
    rows: page,
    totalRows: all.length,
    offset: q.offset,
    ...(q.offset + q.limit < all.length ? { nextOffset: q.offset + q.limit } : {}),
  };
}

export interface UsageSeries {
  readonly granularity: Granularity;
  readonly metric: Metric;
  readonly by: readonly string[];
  /** Bucket start times (ISO). */
  readonly t: string[];
  /** The top `top` groups by the metric over the range, then `other` (everything else) when any. */
  readonly series: Array<{ key: Record<string, string> | 'other'; values: number[]; total: number }>;
}

/** One value of `metric` per bucket, per group (top N groups, the rest summed as `other`). */
export function series(q: UsageQuery, cells: readonly UsageCell[], buckets: readonly string[], metric: Metric, top: number): UsageSeries {
  const index = new Map(buckets.map((b, i) => [b, i]));
  const groups = new Map<string, { key: Record<string, string>; values: number[]; total: number }>();
  for (const c of cells) {
    if (!matches(c, q.filters)) continue;
    const i = index.get(c.bucket);
    if (i === undefined) continue;
    const key: Record<string, string> = {};
    for (const d of q.by) key[d] = valueOf(c, d);
    const id = q.by.map((d) => key[d]).join('\u0000');
    let g = groups.get(id);
    if (g === undefined) {
      g = { key, values: buckets.map(() => 0), total: 0 };
      groups.set(id, g);
    }
    g.values[i] = (g.values[i] ?? 0) + c.totals[metric];
    g.total += c.totals[metric];
  }
  const sorted = [...groups.values()].sort((a, b) => b.total - a.total || JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)));
  const out: UsageSeries['series'] = sorted.slice(0, top).map((g) => ({ key: g.key, values: g.values, total: g.total }));
  const rest = sorted.slice(top);
  if (rest.length > 0) {
    const values = buckets.map((_, i) => rest.reduce((a, g) => a + (g.values[i] ?? 0), 0));
    out.push({ key: 'other', values, total: values.reduce((a, b) => a + b, 0) });
  }
  return { granularity: q.granularity, metric, by: q.by, t: buckets.map((b) => iso(bucketStart(q.granularity, b))), series: out };
}
