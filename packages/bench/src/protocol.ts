/**
 * What the orchestrator (main.ts) asks of the Node load generator child (loadgen.ts), and what it
 * answers: one JSON line on stdout.
 */
import type { LatencySummary } from './stats.js';

/** Requests all phases send: one POST with a JSON body. */
export interface RequestSpec {
  readonly path: string;
  readonly body: string;
  /**
   * Open and closed loop: a marker in `body` that each request replaces with a token of its own
   * (a nonce of the run and a counter), so no two requests, in this run or another, send the same
   * body (cache misses).
   */
  readonly unique?: string;
}

/**
 * Fixed-rate (open-loop) run: latency from each request's scheduled send time. With several
 * origins (e.g. the proxy and the fake behind it), each gets its own schedule at `rate`, offset from
 * the others and interleaved in one run, so all see the same machine at the same moments (GC of the
 * generator, stolen CPU time) and their difference is the cost of the extra hop.
 */
export interface OpenLoopJob extends RequestSpec {
  readonly mode: 'open';
  /** Origins, e.g. http://127.0.0.1:4000 */
  readonly origins: readonly string[];
  /** Requests per second, per origin. */
  readonly rate: number;
  readonly durationSec: number;
  /** Run at the same rate first, unrecorded (warms the client, the connections and the target). */
  readonly warmupSec: number;
  /** Upper bound of client connections (opened on demand). */
  readonly connections: number;
}

/** Closed-loop max throughput (the fallback when wrk is not installed). */
export interface ClosedLoopJob extends RequestSpec {
  readonly mode: 'closed';
  readonly origin: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly warmupSec: number;
}

/** Sequential streaming requests, taking turns between the origins: time to the first body byte. */
export interface TtfbJob extends RequestSpec {
  readonly mode: 'ttfb';
  readonly origins: readonly string[];
  /** Recorded requests per origin. */
  readonly requests: number;
  /** Unrecorded requests sent first. */
  readonly warmup: number;
}

export type LoadJob = OpenLoopJob | ClosedLoopJob | TtfbJob;

/** Request outcome counters of one phase. */
export interface Counts {
  /** Requests whose answer was recorded (any status) or that failed. */
  requests: number;
  ok: number;
  non2xx: number;
  /** Socket / protocol errors, timeouts, unfinished requests, broken streams. */
  errors: number;
}

export interface OpenLoopResult {
  readonly mode: 'open';
  /** One per origin, in the job's order. */
  readonly origins: OpenLoopStream[];
}

export interface OpenLoopStream {
  readonly origin: string;
  readonly counts: Counts;
  /** Milliseconds from the scheduled send time to the end of the response body (2xx only). */
  readonly latency: LatencySummary;
  /** Milliseconds from the scheduled send time to the actual call into the HTTP client. */
  readonly sendLag: LatencySummary;
  /** Requests per second actually completed over the recorded window. */
  readonly achievedRate: number;
  /** One example of the first failure, if any. */
  readonly firstError?: string;
}

export interface ClosedLoopResult {
  readonly mode: 'closed';
  readonly counts: Counts;
  readonly rps: number;
  readonly latency: LatencySummary;
  readonly firstError?: string;
}

export interface TtfbResult {
  readonly mode: 'ttfb';
  /** One per origin, in the job's order. */
  readonly origins: TtfbStream[];
}

export interface TtfbStream {
  readonly origin: string;
  readonly counts: Counts;
  /** Milliseconds from the call to the first body byte. */
  readonly ttfb: LatencySummary;
  /** Milliseconds from the call to the response headers. */
  readonly headers: LatencySummary;
  /** Milliseconds from the call to the end of the stream. */
  readonly total: LatencySummary;
  readonly firstError?: string;
}

export type LoadResult = OpenLoopResult | ClosedLoopResult | TtfbResult;

/** What the pacer worker is given (times in nanoseconds of process.hrtime.bigint()). */
export interface PacerData {
  readonly t0Ns: number;
  readonly intervalNs: number;
  readonly total: number;
}

export function emptyCounts(): Counts {
  return { requests: 0, ok: 0, non2xx: 0, errors: 0 };
}
