import type { IncomingMessage } from 'node:http';
import { SluiceError } from '@sluice/core';
import { compileLimits, isWindowName, windowOf, type CompiledLimits } from '@sluice/policy/limits';
import type { SnapshotLimit } from '@sluice/policy/snapshot';
import { amountFor, LocalLimiter, type Denial, type LimitUnit, type MatchedLimit, type Reservation } from './local.js';
import type { TakeResult } from './quota-client.js';

/** The workload's identity, for limit keys (namespace, service account, pod labels). */
export interface WorkloadIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Credit for global limits (the sidecar's `QuotaClient`, or a stand-in in tests). */
export interface GlobalQuota {
  tryTake(limitId: string, key: string, amount: number): TakeResult | 'ask';
  acquire(limitId: string, key: string, amount: number): Promise<TakeResult>;
  settle(limitId: string, key: string, taken: number, used: number): void;
  localShare(limitId: string, key: string): { peers: number; drawn: number };
  remaining(limitId: string, key: string): { remaining: number; resetAtMs: number } | undefined;
}

type Amounts = { readonly inputTokens: number; readonly outputTokens: number; readonly microUSD: number };

/** A draw on a global limit's credit, settled with the actual usage. */
interface GlobalTake {
  readonly limit: SnapshotLimit;
  readonly key: string;
  readonly unit: LimitUnit;
  readonly amount: number;
}

/** How limits decided a request, beyond admit/deny (for the log line and metrics). */
export interface LimitNotes {
  /** Shadow limits that would have denied. */
  readonly shadowDenied: string[];
  /** Global limits whose credit was unavailable, with the failure mode applied (`id:FailOpen`). */
  readonly fallbacks: string[];
}

export interface Admission {
  readonly reservation: Reservation;
  /** Reservation on the LocalShare fallback limiter (global limits while their credit is unavailable). */
  readonly share: Reservation | undefined;
  readonly takes: readonly GlobalTake[];
  /** What was reserved (estimate): charged in full when a started answer ends without usage. */
  readonly reserved: Amounts;
  /** OpenAI-style rate-limit headers for the answer. */
  readonly headers: Record<string, string>;
  readonly notes: LimitNotes;
}

export type AdmitResult = Admission | { readonly clampTo: number };

/** Every limit of one snapshot that this sidecar enforces, local and global (compiled once per snapshot). */
export function compileSnapshotLimits(limits: readonly SnapshotLimit[]): CompiledLimits {
  return compileLimits(limits);
}

const seconds = (ms: number): string => String(Math.max(1, Math.ceil(ms / 1000)));
const windowFn = (window: string, calendarAligned: boolean, timeZone: string, nowMs: number): { startMs: number; endMs: number; id: string } => {
  // Snapshot windows are validated by the policy schema; an unknown one is a programming error.
  if (!isWindowName(window)) throw new RangeError(`unknown limit window ${window}`);
  return windowOf(window, calendarAligned, timeZone, nowMs);
};

const NO_NOTES: LimitNotes = { shadowDenied: [], fallbacks: [] };

/**
 * Reserve → settle for the limits matching a request. One enforcer for the process (counters
 * survive snapshot swaps; a limit is identified by its id).
 *
 * - `scope: local` limits count in this sidecar's `LocalLimiter`.
 * - `scope: global` limits draw on credit leased from the control plane (`GlobalQuota`): from the
 *   local pool without waiting when it holds enough, else after one acquire. When the credit is
 *   unavailable (control plane or Redis down, or no quota client at all), the limit's `failureMode`
 *   decides: `FailClosed` denies (503 `SLUICE_ERR_LIMIT_UNAVAILABLE`), `FailOpen` admits, `LocalShare`
 *   enforces `floor(max ÷ peers)` (less what this sidecar already used of the key in the window) in a
 *   local fallback limiter, where peers are the sidecars that drew on the same (limit, key) at the
 *   last grant.
 * - `mode: shadow` limits are evaluated and counted, never deny; would-be denials go to `notes`.
 */
export class LimitEnforcer {
  readonly #limiter = new LocalLimiter(windowFn);
  /** LocalShare counters while global credit is unavailable. */
  readonly #share = new LocalLimiter(windowFn);
  #quota: GlobalQuota | undefined;

  constructor(quota?: GlobalQuota) {
    this.#quota = quota;
  }

  /** Sets (or replaces) the source of global limit credit. */
  setQuota(quota: GlobalQuota | undefined): void {
    this.#quota = quota;
  }

  /** The limits (with their keys) that apply to a request. */
  match(limits: CompiledLimits, req: { routeId: string; model: string }, who: WorkloadIdentity, httpReq: IncomingMessage): MatchedLimit[] {
    if (limits.limits.length === 0) return [];
    return limits.matching(req, {
      namespace: who.namespace,
      serviceAccount: who.serviceAccount,
      labels: who.labels,
      headers: (name) => {
        const v = httpReq.headers[name];
        return typeof v === 'string' ? v : undefined;
      },
    });
  }

  /**
   * Reserves the request's estimated usage on every matching limit, all or nothing. Throws a
   * SluiceError naming the limit when one denies, or asks the caller to lower max_tokens
   * (`clampTo`) when the limits allow it. Synchronous unless a global limit's pool is short.
   */
  admit(matching: readonly MatchedLimit[], amounts: Amounts, nowMs = Date.now()): AdmitResult | Promise<AdmitResult> {
    let local: MatchedLimit[] | undefined;
    let global: MatchedLimit[] | undefined;
    for (const m of matching) {
      if (m.limit.scope === 'global') (global ??= []).push(m);
      else (local ??= []).push(m);
    }
    const r = this.#limiter.reserve(local ?? [], { requests: 1, ...amounts }, nowMs);
    if (!r.ok) {
      // Denied only by the output tokens reserved for max_tokens, and every such limit allows
      // clamping: the caller lowers max_tokens to what the credit allows and asks again.
      if (r.maxOutputTokens !== undefined && r.denials.every((d) => matching.find((m) => m.limit.id === d.limitId)?.limit.clampMaxTokens === true)) {
        return { clampTo: r.maxOutputTokens };
      }
      throw this.#denied(matching, r, nowMs);
    }
    const notes: LimitNotes = r.shadowDenied.length === 0 && global === undefined ? NO_NOTES : { shadowDenied: r.shadowDenied.map((d) => d.limitId), fallbacks: [] };
    if (global === undefined) return this.#admission(matching, r.reservation, undefined, [], amounts, notes, nowMs);

    // Global limits: synchronous draws first; the ones whose pool is short ask, all at once.
    const quota = this.#quota;
    const draws: Array<{ m: MatchedLimit; unit: LimitUnit; amount: number; result: TakeResult | 'ask' }> = [];
    let asking = false;
    for (const m of global) {
      const unit = m.limit.unit as LimitUnit;
      const amount = amountFor(unit, { requests: 1, ...amounts });
      const result = quota === undefined ? 'unavailable' : amount === 0 ? 'ok' : quota.tryTake(m.limit.id, m.key, amount);
      if (result === 'ask') asking = true;
      draws.push({ m, unit, amount, result });
    }
    const finish = (): AdmitResult => this.#finishGlobal(matching, r.reservation, draws, amounts, notes, nowMs);
    if (!asking || quota === undefined) return finish();
    return Promise.all(
      draws.map(async (d) => {
        if (d.result === 'ask') d.result = await quota.acquire(d.m.limit.id, d.m.key, d.amount);
      }),
    ).then(finish, (e: unknown) => {
      this.#undo(r.reservation, undefined, draws);
      throw e;
    });
  }

  #finishGlobal(matching: readonly MatchedLimit[], reservation: Reservation, draws: ReadonlyArray<{ m: MatchedLimit; unit: LimitUnit; amount: number; result: TakeResult | 'ask' }>, amounts: Amounts, notes: LimitNotes, nowMs: number): AdmitResult {
    const takes: GlobalTake[] = [];
    const shares: MatchedLimit[] = [];
    let denied: { m: MatchedLimit; unit: LimitUnit; amount: number } | undefined;
    let unavailable: MatchedLimit | undefined;
    for (const d of draws) {
      const shadow = d.m.limit.mode === 'shadow';
      if (d.result === 'ok') {
        if (d.amount > 0) takes.push({ limit: d.m.limit, key: d.m.key, unit: d.unit, amount: d.amount });
      } else if (d.result === 'denied') {
        if (shadow) notes.shadowDenied.push(d.m.limit.id);
        else denied ??= d;
      } else if (shadow) {
        notes.fallbacks.push(`${d.m.limit.id}:shadow`);
      } else {
        const mode = d.m.limit.failureMode;
        notes.fallbacks.push(`${d.m.limit.id}:${mode}`);
        if (mode === 'FailClosed') unavailable ??= d.m;
        else if (mode === 'LocalShare') {
          // This sidecar's share of the window, less what it already used of the shared credit.
          const s = this.#quota?.localShare(d.m.limit.id, d.m.key) ?? { peers: 1, drawn: 0 };
          shares.push({ limit: { ...d.m.limit, max: Math.max(0, Math.floor(d.m.limit.max / Math.max(1, s.peers)) - s.drawn) }, key: d.m.key });
        }
      }
    }
    let share: Reservation | undefined;
    if (denied === undefined && unavailable === undefined && shares.length > 0) {
      const s = this.#share.reserve(shares, { requests: 1, ...amounts }, nowMs);
      if (!s.ok) {
        this.#undo(reservation, undefined, draws);
        throw this.#denied(shares, s, nowMs);
      }
      share = s.reservation;
    }
    if (denied !== undefined || unavailable !== undefined) {
      this.#undo(reservation, share, draws);
      if (unavailable !== undefined) {
        throw new SluiceError('SLUICE_ERR_LIMIT_UNAVAILABLE', `The shared credit of limit ${unavailable.limit.id} (${unavailable.key || 'shared'}) cannot be reached and its failure mode is FailClosed; retry shortly`, {
          headers: { 'retry-after': '1', 'x-sluice-limit': unavailable.limit.id },
        });
      }
      const d = denied as { m: MatchedLimit; unit: LimitUnit; amount: number };
      const known = this.#quota?.remaining(d.m.limit.id, d.m.key);
      const remaining = known?.remaining ?? 0;
      // Clamp max_tokens to the global credit known to be left when the limit allows it.
      if (d.m.limit.clampMaxTokens && (d.unit === 'tokens' || d.unit === 'outputTokens')) {
        const fits = remaining - (d.amount - amounts.outputTokens);
        if (fits >= 1 && fits < amounts.outputTokens) return { clampTo: fits };
      }
      // Credit may come back earlier (leases of other sidecars returned), but not reliably before the reset.
      const retryAfterMs = Math.max(0, (known?.resetAtMs ?? nowMs + 1000) - nowMs);
      throw this.#denied(matching, { limitId: d.m.limit.id, key: d.m.key, retryAfterMs, remaining, limit: d.m.limit.max }, nowMs);
    }
    return this.#admission(matching, reservation, share, takes, amounts, notes, nowMs);
  }

  #undo(reservation: Reservation, share: Reservation | undefined, draws: ReadonlyArray<{ m: MatchedLimit; amount: number; result: TakeResult | 'ask' }>): void {
    this.#limiter.cancel(reservation);
    if (share !== undefined) this.#share.cancel(share);
    for (const d of draws) if (d.result === 'ok' && d.amount > 0) this.#quota?.settle(d.m.limit.id, d.m.key, d.amount, 0);
  }

  #admission(matching: readonly MatchedLimit[], reservation: Reservation, share: Reservation | undefined, takes: GlobalTake[], reserved: Amounts, notes: LimitNotes, nowMs: number): Admission {
    return { reservation, share, takes, reserved, headers: this.#headers(matching, nowMs), notes };
  }

  #denied(matching: readonly MatchedLimit[], r: Pick<Denial, 'limitId' | 'key' | 'retryAfterMs' | 'remaining' | 'limit'>, nowMs: number): SluiceError {
    const limit = matching.find((m) => m.limit.id === r.limitId)?.limit;
    const budget = limit?.unit === 'microUSD' && (limit.window === 'day' || limit.window === 'month');
    const headers: Record<string, string> = { 'retry-after': seconds(r.retryAfterMs), 'x-sluice-limit': r.limitId, ...this.#headers(matching, nowMs) };
    return new SluiceError(
      budget ? 'SLUICE_ERR_LIMIT_BUDGET_EXHAUSTED' : 'SLUICE_ERR_LIMIT_EXCEEDED',
      budget
        ? `The ${limit?.window ?? ''} budget of limit ${r.limitId} (${r.key || 'shared'}) is spent: ${r.remaining} of ${r.limit} micro-USD left; it resets in ${seconds(r.retryAfterMs)} s`
        : `Limit ${r.limitId} (${r.key || 'shared'}) is exhausted: ${r.remaining} of ${r.limit} ${limit?.unit ?? ''} left in this ${limit?.window ?? ''}; retry in ${seconds(r.retryAfterMs)} s`,
      { headers },
    );
  }

  /**
   * Settles a request: `complete` with the provider's usage replaces the reservation by it; a
   * `partial` answer (a stream cut by the client or the provider, usage unknown or incomplete) is
   * charged at least the reservation, since the provider may have produced up to it; `none` (the
   * provider never answered 2xx) returns everything.
   */
  settle(a: Admission, outcome: 'complete' | 'partial' | 'none', actual: Amounts | undefined): void {
    let charged: Amounts | undefined;
    if (outcome === 'none' || (outcome === 'complete' && actual === undefined)) charged = undefined;
    else if (outcome === 'complete' && actual !== undefined) charged = actual;
    else {
      const r = a.reserved;
      charged = {
        inputTokens: Math.max(r.inputTokens, actual?.inputTokens ?? 0),
        outputTokens: Math.max(r.outputTokens, actual?.outputTokens ?? 0),
        microUSD: Math.max(r.microUSD, actual?.microUSD ?? 0),
      };
    }
    for (const limiter of [this.#limiter, this.#share]) {
      const res = limiter === this.#limiter ? a.reservation : a.share;
      if (res === undefined) continue;
      if (charged === undefined) limiter.cancel(res);
      else limiter.settle(res, charged);
    }
    const quota = this.#quota;
    if (quota === undefined) return;
    for (const t of a.takes) {
      // Request counts stay charged once the request went out; a request that never reached a
      // backend gives everything back.
      const used = charged === undefined ? 0 : t.unit === 'requests' ? t.amount : amountFor(t.unit, charged);
      quota.settle(t.limit.id, t.key, t.amount, used);
    }
  }

  /**
   * `x-ratelimit-*` for the tightest enforcing limit matched, per unit family (requests, tokens).
   * A global limit's remaining credit is what this sidecar knows: its pool plus the window's
   * unleased credit at the last grant.
   */
  #headers(matching: readonly MatchedLimit[], nowMs: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [family, units] of [
      ['requests', ['requests']],
      ['tokens', ['tokens', 'inputTokens', 'outputTokens']],
    ] as const) {
      let best: { limit: number; remaining: number; resetMs: number } | undefined;
      for (const m of matching) {
        if (!(units as readonly string[]).includes(m.limit.unit) || m.limit.mode === 'shadow') continue;
        let info: { remaining: number; resetMs: number } | undefined;
        if (m.limit.scope === 'global') {
          const g = this.#quota?.remaining(m.limit.id, m.key);
          if (g !== undefined) info = { remaining: g.remaining, resetMs: g.resetAtMs };
        } else info = this.#limiter.remaining(m.limit, m.key, nowMs);
        if (info !== undefined && (best === undefined || info.remaining < best.remaining)) best = { limit: m.limit.max, remaining: info.remaining, resetMs: info.resetMs - nowMs };
      }
      if (best !== undefined) {
        out[`x-ratelimit-limit-${family}`] = String(best.limit);
        out[`x-ratelimit-remaining-${family}`] = String(best.remaining);
        out[`x-ratelimit-reset-${family}`] = `${seconds(best.resetMs)}s`;
      }
    }
    return out;
  }
}
