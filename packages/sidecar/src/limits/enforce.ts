import type { IncomingMessage } from 'node:http';
import { SluiceError } from '@sluice/core';
import { compileLimits, isWindowName, windowOf, type CompiledLimits } from '@sluice/policy/limits';
import type { SnapshotLimit } from '@sluice/policy/snapshot';
import { LocalLimiter, type MatchedLimit, type Reservation } from './local.js';

/** The workload's identity, for limit keys (namespace, service account, pod labels). */
export interface WorkloadIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface Admission {
  readonly reservation: Reservation;
  /** What was reserved (estimate): charged in full when a started answer ends without usage. */
  readonly reserved: { readonly inputTokens: number; readonly outputTokens: number; readonly microUSD: number };
  /** OpenAI-style rate-limit headers for the answer. */
  readonly headers: Record<string, string>;
}

/** Limits of one snapshot that this sidecar enforces itself (compiled once per snapshot). */
export function compileLocalLimits(limits: readonly SnapshotLimit[]): CompiledLimits {
  // Global limits need leased credit from the control plane (StreamQuota), which is not served yet:
  // they are not enforced here rather than enforced per sidecar (that would multiply them).
  return compileLimits(limits.filter((l) => l.scope === 'local'));
}

const seconds = (ms: number): string => String(Math.max(1, Math.ceil(ms / 1000)));

/**
 * Reserve → settle for the local limits matching a request. One limiter for the process (counters
 * survive snapshot swaps; a limit is identified by its id).
 */
export class LimitEnforcer {
  readonly #limiter = new LocalLimiter((window, calendarAligned, timeZone, nowMs) => {
    // Snapshot windows are validated by the policy schema; an unknown one is a programming error.
    if (!isWindowName(window)) throw new RangeError(`unknown limit window ${window}`);
    return windowOf(window, calendarAligned, timeZone, nowMs);
  });

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
   * Reserves the request's estimated usage on every matching limit, all or nothing. Throws a 429
   * SluiceError naming the limit when one denies, or asks the caller to lower max_tokens
   * (`clampTo`) when the limits allow it.
   */
  admit(matching: readonly MatchedLimit[], amounts: { inputTokens: number; outputTokens: number; microUSD: number }, nowMs = Date.now()): Admission | { readonly clampTo: number } {
    const r = this.#limiter.reserve(matching, { requests: 1, ...amounts }, nowMs);
    if (!r.ok) {
      // Denied only by the output tokens reserved for max_tokens, and every such limit allows
      // clamping: the caller lowers max_tokens to what the credit allows and asks again.
      if (r.maxOutputTokens !== undefined && r.denials.every((d) => matching.find((m) => m.limit.id === d.limitId)?.limit.clampMaxTokens === true)) {
        return { clampTo: r.maxOutputTokens };
      }
      const limit = matching.find((m) => m.limit.id === r.limitId)?.limit;
      const budget = limit?.unit === 'microUSD' && (limit.window === 'day' || limit.window === 'month');
      const headers: Record<string, string> = { 'retry-after': seconds(r.retryAfterMs), ...this.#headers(matching, nowMs) };
      throw new SluiceError(
        budget ? 'SLUICE_ERR_LIMIT_BUDGET_EXHAUSTED' : 'SLUICE_ERR_LIMIT_EXCEEDED',
        budget
          ? `The ${limit?.window ?? ''} budget of limit ${r.limitId} (${r.key || 'shared'}) is spent: ${r.remaining} of ${r.limit} micro-USD left; it resets in ${seconds(r.retryAfterMs)} s`
          : `Limit ${r.limitId} (${r.key || 'shared'}) is exhausted: ${r.remaining} of ${r.limit} ${limit?.unit ?? ''} left in this ${limit?.window ?? ''}; retry in ${seconds(r.retryAfterMs)} s`,
        { headers },
      );
    }
    return { reservation: r.reservation, reserved: amounts, headers: this.#headers(matching, nowMs) };
  }

  /**
   * Settles a request: `complete` with the provider's usage replaces the reservation by it; a
   * `partial` answer (a stream cut by the client or the provider, usage unknown or incomplete) is
   * charged at least the reservation, since the provider may have produced up to it; `none` (the
   * provider never answered 2xx) returns everything.
   */
  settle(a: Admission, outcome: 'complete' | 'partial' | 'none', actual: { inputTokens: number; outputTokens: number; microUSD: number } | undefined): void {
    if (outcome === 'none' || (outcome === 'complete' && actual === undefined)) {
      this.#limiter.cancel(a.reservation);
      return;
    }
    if (outcome === 'complete' && actual !== undefined) {
      this.#limiter.settle(a.reservation, actual);
      return;
    }
    const r = a.reserved;
    this.#limiter.settle(a.reservation, {
      inputTokens: Math.max(r.inputTokens, actual?.inputTokens ?? 0),
      outputTokens: Math.max(r.outputTokens, actual?.outputTokens ?? 0),
      microUSD: Math.max(r.microUSD, actual?.microUSD ?? 0),
    });
  }

  /** `x-ratelimit-*` for the tightest enforcing limit matched, per unit family (requests, tokens). */
  #headers(matching: readonly MatchedLimit[], nowMs: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [family, units] of [
      ['requests', ['requests']],
      ['tokens', ['tokens', 'inputTokens', 'outputTokens']],
    ] as const) {
      let best: { limit: number; remaining: number; resetMs: number } | undefined;
      for (const m of matching) {
        if (!(units as readonly string[]).includes(m.limit.unit) || m.limit.mode === 'shadow') continue;
        const info = this.#limiter.remaining(m.limit, m.key, nowMs);
        if (best === undefined || info.remaining < best.remaining) best = { limit: m.limit.max, remaining: info.remaining, resetMs: info.resetMs - nowMs };
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
