/**
 * A small metrics registry for the hot path: counters and histograms are plain numbers updated in
 * place (no allocation per observation beyond the label key), rendered in the Prometheus text
 * format only when scraped. Label sets must stay bounded: callers pass values from the snapshot
 * (routes, backends, error codes), never from the request.
 */
type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function renderLabels(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra !== '') parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  readonly #values = new Map<string, { values: string[]; n: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  /** Adds `by` (default 1) to the series of these label values (in `labelNames` order). */
  inc(values: readonly string[] = [], by = 1): void {
    const key = values.join('\u0000');
    const s = this.#values.get(key);
    if (s === undefined) this.#values.set(key, { values: [...values], n: by });
    else s.n += by;
  }

  get(values: readonly string[] = []): number {
    return this.#values.get(values.join('\u0000'))?.n ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const s of this.#values.values()) lines.push(`${this.name}${renderLabels(this.labelNames, s.values)} ${s.n}`);
    return lines.join('\n');
  }
}

/** A value read at scrape time: a gauge, or a counter kept elsewhere (`type: 'counter'`). */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly read: () => ReadonlyArray<{ labels?: Labels; value: number }>,
    readonly type: 'gauge' | 'counter' = 'gauge',
  ) {}

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, value } of this.read()) {
      const names = Object.keys(labels ?? {});
      lines.push(`${this.name}${renderLabels(names, names.map((n) => labels?.[n] ?? ''))} ${value}`);
    }
    return lines.join('\n');
  }
}

interface HistogramSeries {
  readonly values: readonly string[];
  readonly counts: number[];
  sum: number;
  count: number;
}

/** Fixed buckets, optional labels: an observation is one map lookup, one bucket search and two additions. */
export class Histogram implements Metric {
  readonly #series = new Map<string, HistogramSeries>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
    readonly labelNames: readonly string[] = [],
  ) {}

  /** Records `v` in the series of these label values (in `labelNames` order). */
  observe(v: number, values: readonly string[] = []): void {
    const key = values.length === 0 ? '' : values.join('\u0000');
    let s = this.#series.get(key);
    if (s === undefined) {
      s = { values: [...values], counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(key, s);
    }
    s.sum += v;
    s.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= (this.buckets[i] as number)) {
        s.counts[i] = (s.counts[i] as number) + 1;
        return;
      }
    }
  }

  /** Observations of a series so far. */
  count(values: readonly string[] = []): number {
    return this.#series.get(values.join('\u0000'))?.count ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    const series = this.#series.size === 0 && this.labelNames.length === 0 ? [{ values: [], counts: this.buckets.map(() => 0), sum: 0, count: 0 }] : [...this.#series.values()];
    for (const s of series) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i] as number;
        lines.push(`${this.name}_bucket${renderLabels(this.labelNames, s.values, `le="${b}"`)} ${cumulative}`);
      });
      const plain = renderLabels(this.labelNames, s.values);
      lines.push(`${this.name}_bucket${renderLabels(this.labelNames, s.values, 'le="+Inf"')} ${s.count}`, `${this.name}_sum${plain} ${s.sum}`, `${this.name}_count${plain} ${s.count}`);
    }
    return lines.join('\n');
  }
}

export class MetricsRegistry {
  readonly #metrics: Metric[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const c = new Counter(name, help, labelNames);
    this.#metrics.push(c);
    return c;
  }

  gauge(name: string, help: string, read: Gauge['read'], type: Gauge['type'] = 'gauge'): Gauge {
    const g = new Gauge(name, help, read, type);
    this.#metrics.push(g);
    return g;
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    const h = new Histogram(name, help, buckets, labelNames);
    this.#metrics.push(h);
    return h;
  }

  /** Prometheus text exposition format (version 0.0.4). */
  render(): string {
    return `${this.#metrics.map((m) => m.render()).join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Token-count buckets advised by the GenAI semantic conventions for gen_ai.client.token.usage. */
export const TOKEN_BUCKETS: readonly number[] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

/** Seconds per output token buckets (gen_ai.server.time_per_output_token). */
export const PER_TOKEN_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];

/**
 * Label values from requests, bounded: the first `max` distinct values pass, later new ones become
 * `_other` (a caller inventing model names cannot grow the series without end).
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();
  constructor(readonly max = 200) {}

  value(v: string): string {
    if (this.#seen.has(v)) return v;
    if (this.#seen.size >= this.max) return '_other';
    this.#seen.add(v);
    return v;
  }
}

/** Seconds buckets for LLM latencies (time to first token, whole requests). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
