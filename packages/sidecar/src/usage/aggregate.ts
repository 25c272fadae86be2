/**
 * Usage aggregated per minute and attribution key, in memory, no I/O. The request path adds one
 * record per LLM request; the reporter drains the aggregate every second into a batch.
 */

/** Who a request is charged to, beyond its route, backend and model. */
export interface Attribution {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Value of the pod's team label ('' when the pod has none). */
  readonly team: string;
  /** `x-sluice-feature` and `x-sluice-user` request headers ('' when absent). */
  readonly feature: string;
  readonly user: string;
}

/** The part of a request's log record that usage counts. */
export interface UsageSource {
  readonly route: string | undefined;
  readonly backend: string | undefined;
  readonly model: string | undefined;
  readonly status: number;
  readonly inputTokens: number;
  readonly cachedInputTokens: number;
  readonly cacheWriteTokens: number;
  readonly outputTokens: number;
  readonly reasoningTokens: number;
  readonly costMicros: number | null;
  /** Response cache outcome: `hit` | `miss` | `bypass` (undefined when no cache policy applies). */
  readonly cache: string | undefined;
  /** A hit's avoided cost in micro-USD (what the cached answer cost when it was produced). */
  readonly cacheSavedMicros: number | undefined;
}

export interface UsageRow {
  readonly minuteUnix: number;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly team: string;
  readonly feature: string;
  readonly user: string;
  readonly route: string;
  readonly backend: string;
  readonly model: string;
  requests: number;
  errors: number;
  inputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  costMicros: number;
  feedback: number;
  feedbackScoreMilli: number;
  /** Requests answered from the response cache. */
  cacheHits: number;
  /** Sum of their avoided cost (micro-USD). */
  cacheSavedMicros: number;
}

/** Attribution values longer than this are cut (headers are caller-controlled). */
export const MAX_ATTRIBUTION_LENGTH = 128;

export function attributionValue(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
  return s.length > MAX_ATTRIBUTION_LENGTH ? s.slice(0, MAX_ATTRIBUTION_LENGTH) : s;
}

/** What feedback is counted under: the request it is about. */
export type FeedbackTarget = Pick<UsageSource, 'route' | 'backend' | 'model'>;

export class UsageAggregator {
  #rows = new Map<string, UsageRow>();

  /** Rows held (distinct minute × attribution keys since the last drain). */
  get size(): number {
    return this.#rows.size;
  }

  /** Counts one request that ended at `endMs`. An error is any answer that is not a 2xx. */
  add(r: UsageSource, a: Attribution, endMs: number): void {
    const row = this.#row(r, a, endMs);
    row.requests++;
    if (r.status < 200 || r.status >= 300) row.errors++;
    row.inputTokens += r.inputTokens;
    row.cachedInputTokens += r.cachedInputTokens;
    row.cacheWriteTokens += r.cacheWriteTokens;
    row.outputTokens += r.outputTokens;
    row.reasoningTokens += r.reasoningTokens;
    row.costMicros += r.costMicros ?? 0;
    if (r.cache === 'hit') {
      row.cacheHits++;
      // Integer micro-USD (the control plane refuses a batch with a fractional or negative counter).
      const saved = Math.round(r.cacheSavedMicros ?? 0);
      if (saved > 0) row.cacheSavedMicros += saved;
    }
  }

  /** Counts a scored feedback (score in thousandths) about a request, when it is given. */
  addFeedback(r: FeedbackTarget, a: Attribution, scoreMilli: number, endMs: number): void {
    const row = this.#row(r, a, endMs);
    row.feedback++;
    row.feedbackScoreMilli += scoreMilli;
  }

  #row(r: FeedbackTarget, a: Attribution, endMs: number): UsageRow {
    const minuteUnix = Math.floor(endMs / 60_000) * 60;
    const route = r.route ?? '';
    const backend = r.backend ?? '';
    const model = r.model ?? '';
    const id = `${minuteUnix}\u0000${a.namespace}\u0000${a.serviceAccount}\u0000${a.team}\u0000${a.feature}\u0000${a.user}\u0000${route}\u0000${backend}\u0000${model}`;
    let row = this.#rows.get(id);
    if (row === undefined) {
      row = {
        minuteUnix,
        namespace: a.namespace,
        serviceAccount: a.serviceAccount,
        team: a.team,
        feature: a.feature,
        user: a.user,
        route,
        backend,
        model,
        requests: 0,
        errors: 0,
        inputTokens: 0,
        cachedInputTokens: 0,
        cacheWriteTokens: 0,
        outputTokens: 0,
        reasoningTokens: 0,
        costMicros: 0,
        feedback: 0,
        feedbackScoreMilli: 0,
        cacheHits: 0,
        cacheSavedMicros: 0,
      };
      this.#rows.set(id, row);
    }
    return row;
  }

  /** Every row since the last drain; the aggregate starts empty again. */
  drain(): UsageRow[] {
    if (this.#rows.size === 0) return [];
    const rows = [...this.#rows.values()];
    this.#rows = new Map();
    return rows;
  }
}
