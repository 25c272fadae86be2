/** Latency statistics and number formatting shared by the load generator and the report. */

export interface LatencySummary {
  /** Samples summarised. */
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return sorted[rank - 1] ?? NaN;
}

/** Summary of the values (any order; they are copied and sorted). Units are the caller's. */
export function summarize(values: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const n = sorted.length;
  return {
    count: n,
    min: n === 0 ? NaN : (sorted[0] ?? NaN),
    mean: n === 0 ? NaN : sum / n,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: n === 0 ? NaN : (sorted[n - 1] ?? NaN),
  };
}

/** Median (mean of the middle two for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? (s[(n - 1) / 2] ?? NaN) : ((s[n / 2 - 1] ?? NaN) + (s[n / 2] ?? NaN)) / 2;
}

/** Milliseconds with 3 decimals ("n/a" for NaN / undefined). */
export function fmtMs(v: number | undefined, signed = false): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const s = v.toFixed(3);
  return `${signed && v >= 0 ? '+' : ''}${s} ms`;
}

/** kB (as /proc reports them) as MiB with one decimal. */
export function fmtMiB(kb: number | undefined): string {
  if (kb === undefined || !Number.isFinite(kb)) return 'n/a';
  return `${(kb / 1024).toFixed(1)} MiB`;
}

/** Requests per second, grouped by thousands. */
export function fmtRate(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  return Math.round(v).toLocaleString('en-US');
}

/** 2000 → "2k/s", 1500 → "1.5k/s", 800 → "800/s". */
export function fmtRateShort(rate: number): string {
  if (rate >= 1000) return `${Number((rate / 1000).toFixed(2))}k/s`;
  return `${rate}/s`;
}
