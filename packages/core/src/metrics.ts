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

/** Fixed buckets, no labels: an observation is one bucket search and two additions. */
export class Histogram implements Metric {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.#counts = new Array<number>(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.#sum += v;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= (this.buckets[i] as number)) {
        this.#counts[i] = (this.#counts[i] as number) + 1;
        return;
      }
    }
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    this.buckets.forEach((b, i) => {
      cumulative += this.#counts[i] as number;
      lines.push(`${this.name}_bucket{le="${b}"} ${cumulative}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`, `${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
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

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    const h = new Histogram(name, help, buckets);
    this.#metrics.push(h);
    return h;
  }

  /** Prometheus text exposition format (version 0.0.4). */
  render(): string {
    return `${this.#metrics.map((m) => m.render()).join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Seconds buckets for LLM latencies (time to first token, whole requests). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
