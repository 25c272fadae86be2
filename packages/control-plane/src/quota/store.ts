/**
 * Shared counters behind global limits: the control plane debits them when it grants a lease and
 * credits back the unused part when the lease is released. Integer units only.
 *
 * - `debit` grants `min(want, max − spent)` (never below 0) and adds it to the counter, atomically.
 *   `remaining` is the credit left after the grant. The counter lives until the window ends (plus a
 *   slack), then disappears.
 * - `credit` returns unused credit of a lease, at most once per lease id (a retried release returns
 *   0), never more than the counter holds (counters never go negative); a counter already gone
 *   (window over) takes nothing back.
 */
export interface QuotaStore {
  debit(limitId: string, key: string, windowId: string, windowEndMs: number, want: number, max: number): Promise<DebitResult>;
  credit(leaseId: string, limitId: string, key: string, windowId: string, amount: number): Promise<{ returned: number }>;
  close(): Promise<void>;
}

export interface DebitResult {
  readonly granted: number;
  /** Counter value after the grant (may exceed `max` if `max` was lowered). */
  readonly spent: number;
  readonly remaining: number;
}

/** Counters outlive their window by this much (clock skew between replicas and Redis). */
export const DEFAULT_SLACK_MS = 60_000;

export function checkUnits(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${v}`);
}

export class MemoryQuotaStore implements QuotaStore {
  private readonly counters = new Map<string, { spent: number; expiresMs: number }>();
  private readonly leases = new Map<string, number>();

  constructor(private readonly opts: { now?: () => number; slackMs?: number; leaseTtlMs?: number } = {}) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private prune(now: number): void {
    for (const [k, c] of this.counters) if (c.expiresMs <= now) this.counters.delete(k);
    for (const [k, exp] of this.leases) if (exp <= now) this.leases.delete(k);
  }

  async debit(limitId: string, key: string, windowId: string, windowEndMs: number, want: number, max: number): Promise<DebitResult> {
    checkUnits('want', want);
    checkUnits('max', max);
    const now = this.now();
    this.prune(now);
    const id = counterId(limitId, key, windowId);
    const slack = this.opts.slackMs ?? DEFAULT_SLACK_MS;
    const c = this.counters.get(id);
    const spent0 = c?.spent ?? 0;
    const granted = Math.max(0, Math.min(want, max - spent0));
    const spent = spent0 + granted;
    if (c !== undefined) c.spent = spent;
    else if (granted > 0) this.counters.set(id, { spent, expiresMs: Math.max(windowEndMs, now) + slack });
    return { granted, spent, remaining: Math.max(0, max - spent) };
  }

  async credit(leaseId: string, limitId: string, key: string, windowId: string, amount: number): Promise<{ returned: number }> {
    checkUnits('amount', amount);
    const now = this.now();
    this.prune(now);
    const id = counterId(limitId, key, windowId);
    const leaseKey = `${id}\u0000${leaseId}`;
    if (this.leases.has(leaseKey)) return { returned: 0 };
    const c = this.counters.get(id);
    this.leases.set(leaseKey, c?.expiresMs ?? now + (this.opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS));
    if (c === undefined) return { returned: 0 };
    const returned = Math.min(amount, c.spent);
    c.spent -= returned;
    return { returned };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** How long a lease id is remembered when its counter is already gone. */
export const DEFAULT_LEASE_TTL_MS = 3_600_000;

function counterId(limitId: string, key: string, windowId: string): string {
  return `${limitId}\u0000${key}\u0000${windowId}`;
}
