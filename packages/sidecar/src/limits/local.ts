import type { SnapshotLimit } from '@sluice/policy';

/**
 * The sidecar's local limiter: fixed-window counters per (limit id, key, window id), all in memory,
 * no I/O. Integer units only.
 *
 * - `reserve()` is all-or-nothing across every matching limit (hierarchical limits all apply): when
 *   any enforcing limit would be exceeded nothing is counted. Output tokens are reserved at
 *   `max_tokens` and cost at its estimate; `settle()` then replaces the reservation by the actual
 *   amounts. An undercount (actual > reserved) stays in the counter as debt, so the remaining credit
 *   of the window shrinks and can reach 0 before the next window; counters never go negative.
 * - A request is denied when `used + amount > max`, or when the credit is already exhausted
 *   (`used >= max`) even for an amount of 0.
 * - Limits in `mode: shadow` are counted and evaluated but never deny; the ones that would have are
 *   listed in `shadowDenied` of the result.
 * - Only the current window of each limit is kept: when a limit's window rolls over its counters
 *   are dropped, and limits untouched for a whole window are pruned, so memory is bounded by the keys
 *   active in the current windows. A reservation settled after its window was dropped is a no-op.
 *   A clock stepping backwards stays in the current window.
 * - `maxOutputTokens` on a denial: when every enforcing denial is due only to the reserved output
 *   tokens (units `outputTokens`/`tokens`) and at least one output token fits, it is the largest
 *   output reservation that would pass those limits; the caller may clamp `max_tokens` to it and
 *   reserve again (microUSD limits are not considered: their estimate depends on prices).
 *
 * The window function is injected (pass `windowOf` from `@sluice/policy`), which keeps this module
 * free of time zone data and easy to test.
 */
export type WindowFn = (window: string, calendarAligned: boolean, timeZone: string, nowMs: number) => { startMs: number; endMs: number; id: string };

export type LimitUnit = 'requests' | 'tokens' | 'inputTokens' | 'outputTokens' | 'microUSD';

export interface Amounts {
  readonly requests: number;
  readonly inputTokens: number;
  /** Reserved: the request's max_tokens (or the model's default). */
  readonly outputTokens: number;
  /** Reserved: the estimate. */
  readonly microUSD: number;
}

export interface ActualAmounts {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly microUSD: number;
}

export interface MatchedLimit {
  readonly limit: SnapshotLimit;
  readonly key: string;
}

export interface Denial {
  readonly limitId: string;
  readonly key: string;
  readonly retryAfterMs: number;
  readonly remaining: number;
  readonly limit: number;
}

export interface Reservation {
  /** @internal */
  readonly entries: readonly ReservationEntry[];
  settled: boolean;
}

interface ReservationEntry {
  readonly state: LimitState;
  readonly windowId: string;
  readonly key: string;
  readonly unit: LimitUnit;
  readonly reserved: number;
}

export type ReserveResult =
  | { readonly ok: true; readonly reservation: Reservation; readonly shadowDenied: readonly Denial[] }
  | {
      readonly ok: false;
      readonly limitId: string;
      readonly key: string;
      readonly retryAfterMs: number;
      readonly remaining: number;
      readonly limit: number;
      readonly denials: readonly Denial[];
      readonly shadowDenied: readonly Denial[];
      readonly maxOutputTokens?: number;
    };

export interface RemainingInfo {
  readonly limit: number;
  readonly remaining: number;
  readonly resetMs: number;
}

interface LimitState {
  readonly spec: string;
  windowId: string;
  startMs: number;
  endMs: number;
  used: Map<string, number>;
}

const UNITS: ReadonlySet<string> = new Set<LimitUnit>(['requests', 'tokens', 'inputTokens', 'outputTokens', 'microUSD']);

export function amountFor(unit: LimitUnit, a: { requests?: number; inputTokens: number; outputTokens: number; microUSD: number }): number {
  switch (unit) {
    case 'requests':
      return a.requests ?? 0;
    case 'tokens':
      return a.inputTokens + a.outputTokens;
    case 'inputTokens':
      return a.inputTokens;
    case 'outputTokens':
      return a.outputTokens;
    case 'microUSD':
      return a.microUSD;
  }
}

export class LocalLimiter {
  private readonly states = new Map<string, LimitState>();
  private nextPruneMs = 0;

  constructor(private readonly windowOf: WindowFn) {}

  /** Number of (limit, key) counters held (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const s of this.states.values()) n += s.used.size;
    return n;
  }

  reserve(matching: readonly MatchedLimit[], amounts: Amounts, nowMs: number): ReserveResult {
    for (const v of [amounts.requests, amounts.inputTokens, amounts.outputTokens, amounts.microUSD]) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`amounts must be non-negative integers, got ${v}`);
    }
    this.maybePrune(nowMs);
    const plan: Array<{ m: MatchedLimit; unit: LimitUnit; state: LimitState; want: number; used: number }> = [];
    const denials: Denial[] = [];
    const shadowDenied: Denial[] = [];
    let clampOk = true;
    let maxOutputTokens = Number.MAX_SAFE_INTEGER;
    for (const m of matching) {
      if (!UNITS.has(m.limit.unit)) continue;
      const unit = m.limit.unit as LimitUnit;
      const state = this.stateFor(m.limit, nowMs);
      const used = state.used.get(m.key) ?? 0;
      const want = amountFor(unit, amounts);
      const max = m.limit.max;
      plan.push({ m, unit, state, want, used });
      if (used < max && used + want <= max) continue;
      const d: Denial = { limitId: m.limit.id, key: m.key, retryAfterMs: Math.max(0, state.endMs - nowMs), remaining: Math.max(0, max - used), limit: max };
      if (m.limit.mode === 'shadow') {
        shadowDenied.push(d);
        continue;
      }
      denials.push(d);
      if (unit === 'outputTokens' || unit === 'tokens') {
        const fits = max - used - (want - amounts.outputTokens);
        if (fits >= 1) maxOutputTokens = Math.min(maxOutputTokens, fits);
        else clampOk = false;
      } else {
        clampOk = false;
      }
    }
    const first = denials.reduce<Denial | undefined>((a, d) => (a === undefined || d.retryAfterMs > a.retryAfterMs ? d : a), undefined);
    if (first !== undefined) {
      return {
        ok: false,
        limitId: first.limitId,
        key: first.key,
        retryAfterMs: first.retryAfterMs,
        remaining: first.remaining,
        limit: first.limit,
        denials,
        shadowDenied,
        ...(clampOk ? { maxOutputTokens } : {}),
      };
    }
    const entries: ReservationEntry[] = [];
    for (const p of plan) {
      p.state.used.set(p.m.key, p.used + p.want);
      entries.push({ state: p.state, windowId: p.state.windowId, key: p.m.key, unit: p.unit, reserved: p.want });
    }
    return { ok: true, reservation: { entries, settled: false }, shadowDenied };
  }

  /** Replaces the reserved amounts by the actual ones (requests stay counted). Idempotent. */
  settle(reservation: Reservation, actual: ActualAmounts): void {
    if (reservation.settled) return;
    reservation.settled = true;
    for (const e of reservation.entries) {
      const amount = e.unit === 'requests' ? e.reserved : amountFor(e.unit, actual);
      if (!Number.isSafeInteger(amount) || amount < 0) throw new RangeError(`actual amounts must be non-negative integers, got ${amount}`);
      this.adjust(e, amount);
    }
  }

  /** Returns the whole reservation, requests included (the request never reached a backend). */
  cancel(reservation: Reservation): void {
    if (reservation.settled) return;
    reservation.settled = true;
    for (const e of reservation.entries) this.adjust(e, 0);
  }

  /** Credit left for `key` in the current window of `limit` (for the x-ratelimit-* headers). */
  remaining(limit: SnapshotLimit, key: string, nowMs: number): RemainingInfo {
    const state = this.stateFor(limit, nowMs);
    const used = state.used.get(key) ?? 0;
    return { limit: limit.max, remaining: Math.max(0, limit.max - used), resetMs: state.endMs };
  }

  /** Drops the counters of every window that has ended. Also runs by itself about once a second. */
  prune(nowMs: number): void {
    for (const [id, s] of this.states) if (s.endMs <= nowMs) this.states.delete(id);
  }

  private maybePrune(nowMs: number): void {
    if (nowMs < this.nextPruneMs) return;
    this.nextPruneMs = nowMs + 1000;
    this.prune(nowMs);
  }

  private adjust(e: ReservationEntry, amount: number): void {
    if (e.state.windowId !== e.windowId || this.states.get(specId(e.state)) !== e.state) return;
    const used = Math.max(0, (e.state.used.get(e.key) ?? 0) - e.reserved + amount);
    if (used === 0) e.state.used.delete(e.key);
    else e.state.used.set(e.key, used);
  }

  private stateFor(limit: SnapshotLimit, nowMs: number): LimitState {
    const spec = `${limit.id}\u0000${limit.window}\u0000${limit.calendarAligned}\u0000${limit.timeZone}`;
    let s = this.states.get(limit.id);
    if (s !== undefined && s.spec === spec && nowMs < s.endMs) return s;
    const w = this.windowOf(limit.window, limit.calendarAligned, limit.timeZone, nowMs);
    if (s !== undefined && s.spec === spec && s.windowId === w.id) return s;
    s = { spec, windowId: w.id, startMs: w.startMs, endMs: w.endMs, used: new Map() };
    this.states.set(limit.id, s);
    return s;
  }
}

function specId(s: LimitState): string {
  return s.spec.slice(0, s.spec.indexOf('\u0000'));
}
