/**
 * What to do after a failed attempt: which failures are worth another attempt, how long to wait,
 * and a retry budget that stops retries from multiplying load during a wide outage. Pure.
 */
import type { ErrorCode } from '@sluice/core';

/** Failures of the backend (fail over, count against its health). */
const BACKEND_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['SLUICE_ERR_UPSTREAM_CONNECT', 'SLUICE_ERR_UPSTREAM_TIMEOUT', 'SLUICE_ERR_UPSTREAM_SERVER_ERROR', 'SLUICE_ERR_UPSTREAM_OVERLOADED', 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE']);

/** Worth another attempt (here or on another backend): backend faults and rate limiting. */
export function retryable(code: ErrorCode): boolean {
  return BACKEND_FAULTS.has(code) || code === 'SLUICE_ERR_UPSTREAM_RATE_LIMITED';
}

/** Counts against the backend's health (a 429 is the provider's quota, not its health). */
export function backendFault(code: ErrorCode): boolean {
  return BACKEND_FAULTS.has(code);
}

/**
 * How long to wait before retrying the same backend: a 429's `retry-after` (seconds or an HTTP date)
 * or `x-ratelimit-reset-requests|tokens` (`1s`, `6m0s`, `20ms`) when given, else exponential backoff
 * from `baseMs` (4× for 529 overloaded) with full jitter. Undefined when the provider asks for longer
 * than `maxMs`: the caller gets the 429 rather than a wait that long.
 */
export function backoffMs(code: ErrorCode, headers: Readonly<Record<string, string>> | undefined, attempt: number, baseMs: number, maxMs: number, nowMs: number, random: () => number): number | undefined {
  if (code === 'SLUICE_ERR_UPSTREAM_RATE_LIMITED') {
    const asked = askedWaitMs(headers, nowMs);
    if (asked !== undefined) return asked <= maxMs ? asked : undefined;
  }
  const base = code === 'SLUICE_ERR_UPSTREAM_OVERLOADED' ? baseMs * 4 : baseMs;
  const ceiling = Math.min(maxMs, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

function askedWaitMs(headers: Readonly<Record<string, string>> | undefined, nowMs: number): number | undefined {
  if (headers === undefined) return undefined;
  const ra = headers['retry-after'];
  if (ra !== undefined) {
    if (/^\d+(\.\d+)?$/u.test(ra.trim())) return Math.ceil(Number(ra) * 1000);
    const t = Date.parse(ra);
    if (!Number.isNaN(t)) return Math.max(0, t - nowMs);
  }
  let best: number | undefined;
  for (const h of ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens']) {
    const v = headers[h];
    if (v === undefined) continue;
    const ms = durationMs(v);
    if (ms !== undefined && (best === undefined || ms > best)) best = ms;
  }
  return best;
}

/** OpenAI reset durations: `1s`, `6m0s`, `1h2m3.5s`, `20ms`. */
export function durationMs(v: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gu;
  let total = 0;
  let matched = '';
  for (const m of v.trim().matchAll(re)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    matched += m[0];
  }
  return matched.length > 0 && matched === v.trim() ? Math.ceil(total) : undefined;
}

/**
 * Retries may add at most `ratio` of the requests (over a sliding window of about `windowMs`), plus
 * `minPerSecond` so a quiet sidecar can still retry. Each request deposits `ratio` tokens; a retry
 * takes one; tokens are capped so a long quiet spell cannot bank a burst.
 */
export class RetryBudget {
  /** Thousandths of a retry (integers: no drift from adding 0.1 ten times). */
  #milli: number;
  #lastMs = 0;
  readonly #perRequest: number;
  constructor(
    readonly ratio = 0.2,
    readonly minPerSecond = 5,
    readonly cap = 20,
  ) {
    this.#perRequest = Math.round(ratio * 1000);
    this.#milli = minPerSecond * 1000;
  }

  onRequest(nowMs: number): void {
    this.#refill(nowMs);
    this.#milli = Math.min(this.cap * 1000, this.#milli + this.#perRequest);
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#milli < 1000) return false;
    this.#milli -= 1000;
    return true;
  }

  #refill(nowMs: number): void {
    if (this.#lastMs !== 0 && nowMs > this.#lastMs) this.#milli = Math.min(this.cap * 1000, this.#milli + Math.floor((nowMs - this.#lastMs) * this.minPerSecond));
    this.#lastMs = nowMs;
  }
}
