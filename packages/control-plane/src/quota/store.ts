/**
 * Shared counters behind global limits: the control plane debits them when it grants a lease and
 * credits back the unused part when the lease is released. Integer units only.
 *
 * - `debit` grants credit for one lease, atomically: at most `want`, at most the fair share
 *   `ceil(left / peers)` and at most `cap` when set (but at least `need` when `need` fits), never more than `left = max − spent`,
 *   and nothing at all when `need` does not fit. The lease is recorded under its id with the amount
 *   granted: a debit replayed with the same lease id (a grant lost with a broken stream, asked
 *   again) returns the recorded grant and debits nothing.
 * - `peers` is the number of sidecars (drawers) that asked for this (limit, key) within
 *   `peerWindowMs`, including this one: the fair-share divisor, and the sidecars' LocalShare divisor
 *   when the store is unreachable.
 * - `credit` returns unused credit of a lease, once (the lease is then marked released), never more
 *   than the lease granted nor than the counter holds (counters never go negative). An unknown lease
 *   (never granted, or its window is over and its records expired) returns 0.
 * - Counters, lease records and drawer sets expire `slackMs` after the window ends.
 */
export interface QuotaStore {
  debit(r: DebitRequest): Promise<DebitResult>;
  credit(r: CreditRequest): Promise<{ returned: number }>;
  /** Every key's counter of a limit in one window (what the sidecars were granted, less returns). */
  spent(limitId: string, windowId: string): Promise<Array<{ key: string; spent: number }>>;
  close(): Promise<void>;
}

export interface CounterRef {
  readonly limitId: string;
  readonly key: string;
  readonly windowId: string;
}

export interface DebitRequest extends CounterRef {
  readonly windowEndMs: number;
  readonly leaseId: string;
  /** The sidecar asking (its instance id), counted among the key's peers. */
  readonly drawer: string;
  readonly want: number;
  readonly need: number;
  readonly max: number;
  /** Largest lease (0 = no cap beyond the fair share); a need above it is still granted. */
  readonly cap?: number;
}

export interface CreditRequest extends CounterRef {
  readonly leaseId: string;
  readonly amount: number;
}

export interface DebitResult {
  readonly granted: number;
  /** Counter value after the grant (may exceed `max` if `max` was lowered). */
  readonly spent: number;
  readonly remaining: number;
  readonly peers: number;
}

export interface QuotaStoreOptions {
  /** Counters outlive their window by this much (clock skew between replicas and Redis). */
  readonly slackMs?: number;
  /** A drawer counts as a peer of a key for this long after its last debit. Default 60 s. */
  readonly peerWindowMs?: number;
}

export const DEFAULT_SLACK_MS = 60_000;
export const DEFAULT_PEER_WINDOW_MS = 60_000;

export function checkUnits(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${v}`);
}

export function checkDebit(r: DebitRequest): void {
  checkUnits('want', r.want);
  checkUnits('need', r.need);
  checkUnits('max', r.max);
  checkUnits('cap', r.cap ?? 0);
  if (r.leaseId === '') throw new RangeError('a debit needs a lease id');
}

/** The grant rule shared by both stores (the Redis Lua script implements the same). */
export function grantFor(want: number, need: number, left: number, peers: number, cap = 0): number {
  if (left <= 0 || need > left) return 0;
  let share = Math.ceil(left / Math.max(1, peers));
  if (cap > 0 && cap < share) share = cap;
  return Math.min(want < need ? need : want, Math.max(share, need), left);
}

interface Counter {
  spent: number;
  expiresMs: number;
  /** lease id → amount granted, or -1 once released. */
  leases: Map<string, number>;
  drawers: Map<string, number>;
}

/** The one-process store (`sluice dev`, tests): the same semantics as Redis, in memory. */
export class MemoryQuotaStore implements QuotaStore {
  private readonly counters = new Map<string, Counter>();

  constructor(private readonly opts: QuotaStoreOptions & { now?: () => number } = {}) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private prune(now: number): void {
    for (const [k, c] of this.counters) if (c.expiresMs <= now) this.counters.delete(k);
  }

  async debit(r: DebitRequest): Promise<DebitResult> {
    checkDebit(r);
    const now = this.now();
    this.prune(now);
    const id = counterId(r);
    let c = this.counters.get(id);
    if (c === undefined) {
      c = { spent: 0, expiresMs: Math.max(r.windowEndMs, now) + (this.opts.slackMs ?? DEFAULT_SLACK_MS), leases: new Map(), drawers: new Map() };
      this.counters.set(id, c);
    }
    c.drawers.set(r.drawer, now);
    const since = now - (this.opts.peerWindowMs ?? DEFAULT_PEER_WINDOW_MS);
    for (const [d, at] of c.drawers) if (at < since) c.drawers.delete(d);
    const peers = c.drawers.size;
    const prior = c.leases.get(r.leaseId);
    let granted: number;
    if (prior !== undefined) granted = Math.max(0, prior);
    else {
      granted = grantFor(r.want, r.need, r.max - c.spent, peers, r.cap ?? 0);
      if (granted > 0) {
        c.spent += granted;
        c.leases.set(r.leaseId, granted);
      }
    }
    return { granted, spent: c.spent, remaining: Math.max(0, r.max - c.spent), peers };
  }

  async credit(r: CreditRequest): Promise<{ returned: number }> {
    checkUnits('amount', r.amount);
    const now = this.now();
    this.prune(now);
    const c = this.counters.get(counterId(r));
    const lease = c?.leases.get(r.leaseId);
    if (c === undefined || lease === undefined || lease < 0) return { returned: 0 };
    c.leases.set(r.leaseId, -1);
    const returned = Math.min(r.amount, lease, c.spent);
    c.spent -= returned;
    return { returned };
  }

  async spent(limitId: string, windowId: string): Promise<Array<{ key: string; spent: number }>> {
    this.prune(this.now());
    const out: Array<{ key: string; spent: number }> = [];
    for (const [id, c] of this.counters) {
      const [l, key, w] = id.split('\u0000') as [string, string, string];
      if (l === limitId && w === windowId) out.push({ key, spent: c.spent });
    }
    return out;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function counterId(r: CounterRef): string {
  return `${r.limitId}\u0000${r.key}\u0000${r.windowId}`;
}
