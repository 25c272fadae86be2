/**
 * The usage data model shared by the Redis and the in-memory store: buckets per granularity, one
 * hash per (namespace, granularity, bucket) whose fields are `<attribution>#<metric>`, integer
 * values. Pure functions only.
 */

/** The attribution dimensions of a usage row below its namespace, in field order. */
export const DIMENSIONS = ['serviceAccount', 'team', 'feature', 'user', 'route', 'backend', 'model'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
/** What a query can group or filter by. */
export const GROUP_DIMENSIONS = ['namespace', ...DIMENSIONS] as const;
export type GroupDimension = (typeof GROUP_DIMENSIONS)[number];

/** The counters of a row, with their short field codes. */
export const METRICS = {
  requests: 'r',
  errors: 'e',
  inputTokens: 'i',
  cachedInputTokens: 'ci',
  cacheWriteTokens: 'cw',
  outputTokens: 'o',
  reasoningTokens: 'rs',
  costMicros: 'c',
  feedback: 'f',
  feedbackScoreMilli: 'fs',
  /** Requests answered from the response cache (their cost is 0). */
  cacheHits: 'ch',
  /** What those cached answers cost when they were produced: the spend the cache avoided. */
  cacheSavedMicros: 'cs',
} as const;
export type Metric = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as Metric[];
const METRIC_BY_CODE = new Map<string, Metric>(METRIC_NAMES.map((m) => [METRICS[m], m]));

export type Totals = Record<Metric, number>;

export function zeroTotals(): Totals {
  return { requests: 0, errors: 0, inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, costMicros: 0, feedback: 0, feedbackScoreMilli: 0, cacheHits: 0, cacheSavedMicros: 0 };
}

/** One usage record as a sidecar reports it (the namespace and service account are the authenticated node's). */
export interface UsageRecordIn extends Totals {
  readonly minuteUnix: number;
  readonly serviceAccount: string;
  readonly team: string;
  readonly feature: string;
  readonly user: string;
  readonly route: string;
  readonly backend: string;
  readonly model: string;
}

export type Granularity = 'minute' | 'hour' | 'day' | 'month';
export const GRANULARITIES: readonly Granularity[] = ['minute', 'hour', 'day', 'month'];

/** How long each granularity is kept after its bucket ends. */
export const RETENTION_MS: Readonly<Record<Granularity, number>> = {
  minute: 2 * 86_400_000,
  hour: 35 * 86_400_000,
  day: 400 * 86_400_000,
  month: 5 * 366 * 86_400_000,
};

/** Bucket ids (UTC): unix seconds of the bucket's start; `YYYY-MM` for months. */
export function bucketOf(g: Granularity, unixSeconds: number): string {
  switch (g) {
    case 'minute':
      return String(Math.floor(unixSeconds / 60) * 60);
    case 'hour':
      return String(Math.floor(unixSeconds / 3600) * 3600);
    case 'day':
      return String(Math.floor(unixSeconds / 86_400) * 86_400);
    case 'month': {
      const d = new Date(unixSeconds * 1000);
      return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
    }
  }
}

/** Start of a bucket in unix seconds. */
export function bucketStart(g: Granularity, id: string): number {
  if (g !== 'month') return Number(id);
  const [y, m] = id.split('-').map(Number) as [number, number];
  return Date.UTC(y, m - 1, 1) / 1000;
}

/** End of a bucket (exclusive) in unix seconds. */
export function bucketEnd(g: Granularity, id: string): number {
  switch (g) {
    case 'minute':
      return Number(id) + 60;
    case 'hour':
      return Number(id) + 3600;
    case 'day':
      return Number(id) + 86_400;
    case 'month': {
      const [y, m] = id.split('-').map(Number) as [number, number];
      return Date.UTC(y, m, 1) / 1000;
    }
  }
}

/** The buckets of `g` overlapping [fromSec, toSec), oldest first. */
export function bucketsBetween(g: Granularity, fromSec: number, toSec: number): string[] {
  const out: string[] = [];
  let id = bucketOf(g, fromSec);
  while (bucketStart(g, id) < toSec) {
    out.push(id);
    id = bucketOf(g, bucketEnd(g, id));
    if (out.length > 100_000) throw new RangeError('too many buckets');
  }
  return out;
}

function esc(s: string): string {
  return /[%|#]/u.test(s) ? s.replace(/[%|#]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) : s;
}

function unesc(s: string): string {
  return s.includes('%') ? s.replace(/%([0-9A-F]{2})/gu, (_m, h: string) => String.fromCharCode(parseInt(h, 16))) : s;
}

export type Attribution = Record<Dimension, string>;

/** `<sa>|<team>|<feature>|<user>|<route>|<backend>|<model>` with `%`, `|`, `#` percent-encoded. */
export function attributionField(a: Attribution): string {
  return DIMENSIONS.map((d) => esc(a[d])).join('|');
}

/** The hash field of one metric of one attribution. */
export function fieldOf(attribution: string, m: Metric): string {
  return `${attribution}#${METRICS[m]}`;
}

/** Parses a hash field; undefined for a field this version does not know. */
export function parseField(field: string): { attribution: Attribution; metric: Metric } | undefined {
  const at = field.lastIndexOf('#');
  if (at < 0) return undefined;
  const metric = METRIC_BY_CODE.get(field.slice(at + 1));
  const parts = field.slice(0, at).split('|');
  if (metric === undefined || parts.length !== DIMENSIONS.length) return undefined;
  const attribution = {} as Attribution;
  DIMENSIONS.forEach((d, i) => (attribution[d] = unesc(parts[i] as string)));
  return { attribution, metric };
}

/**
 * Increments per (granularity, bucket, field) for one batch, merged: what the apply script adds.
 * Keys are `granularity\u0000bucket`.
 */
export function incrementsOf(records: readonly UsageRecordIn[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const r of records) {
    const attr = attributionField(r);
    for (const g of GRANULARITIES) {
      const k = `${g}\u0000${bucketOf(g, r.minuteUnix)}`;
      let fields = out.get(k);
      if (fields === undefined) {
        fields = new Map();
        out.set(k, fields);
      }
      for (const m of METRIC_NAMES) {
        const v = r[m];
        if (v === 0) continue;
        const f = fieldOf(attr, m);
        fields.set(f, (fields.get(f) ?? 0) + v);
      }
    }
  }
  return out;
}

/** A stored cell: one attribution's counters in one bucket of one namespace. */
export interface UsageCell {
  readonly namespace: string;
  readonly bucket: string;
  readonly attribution: Attribution;
  readonly totals: Totals;
}

/** Turns one bucket hash (field → value) into cells. */
export function cellsOf(namespace: string, bucket: string, hash: Record<string, string | number>): UsageCell[] {
  const byAttr = new Map<string, UsageCell>();
  for (const [field, raw] of Object.entries(hash)) {
    const p = parseField(field);
    if (p === undefined) continue;
    const key = field.slice(0, field.lastIndexOf('#'));
    let c = byAttr.get(key);
    if (c === undefined) {
      c = { namespace, bucket, attribution: p.attribution, totals: zeroTotals() };
      byAttr.set(key, c);
    }
    c.totals[p.metric] += Number(raw);
  }
  return [...byAttr.values()];
}

export function checkRecord(r: UsageRecordIn): void {
  if (!Number.isSafeInteger(r.minuteUnix) || r.minuteUnix < 0) throw new RangeError(`minuteUnix must be a non-negative integer, got ${r.minuteUnix}`);
  for (const m of METRIC_NAMES) {
    const v = r[m];
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${m} must be a non-negative integer, got ${v}`);
  }
}
