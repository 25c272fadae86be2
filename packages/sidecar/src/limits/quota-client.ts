import type { QuotaStats } from './quota-stats.js';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import { ControlClient, sluice, type ControlCall } from '@sluice/protocol';
import type { NodeIdentity } from '../control-client.js';

import v1 = sluice.v1;

export interface QuotaClientOptions {
  /** The control plane: a client shared with the policy stream (one connection), or an address. */
  readonly client?: ControlClient;
  readonly address?: string;
  readonly credentials?: grpc.ChannelCredentials;
  readonly node: NodeIdentity;
  readonly logger: Logger;
  /** Smallest lease asked for, so a busy key does not ask for every request (default 1,000 units). */
  readonly minLease?: number;
  /** Longest wait for a grant before the limit's failure mode applies. Default 1 s. */
  readonly timeoutMs?: number;
  /** After a failure (no answer, store down), answer `unavailable` without asking for this long. Default 500 ms. */
  readonly backoffMs?: number;
  /** After a denial, deny requests that do not fit the known remaining credit without asking, for this long. Default 250 ms. */
  readonly deniedCacheMs?: number;
  /** A pool nobody drew on for this long returns its credit (other sidecars may need it). Default 5 s. */
  readonly idleFlushMs?: number;
}

/** What a request's draw on a global limit came to. */
export type TakeResult = 'ok' | 'denied' | 'unavailable';

interface Lease {
  readonly id: string;
  readonly granted: number;
}

interface Pool {
  readonly limitId: string;
  readonly key: string;
  windowId: string;
  /** Credit held locally, drawn by requests; negative = debt (usage above what was reserved). */
  available: number;
  /** Leases of the current window, oldest first: unused credit goes back to them, newest first. */
  leases: Lease[];
  /** The oldest lease's expiry: the pool's unused credit is returned then. */
  expiresAtMs: number;
  /** Size of the last lease: the next one asks for twice as much while demand lasts. */
  lastLease: number;
  /** Window credit not leased to anyone at the last answer, and when the window resets. */
  remaining: number;
  resetAtMs: number;
  /** Until then, a request that does not fit `remaining + available` is denied without asking. */
  deniedUntilMs: number;
  /** An acquire in flight for this pool: requests wait for it instead of asking again. */
  pending: Promise<unknown> | undefined;
  /** Draws not settled yet (requests in flight), and the last draw: idle pools are flushed. */
  inUse: number;
  lastUsedMs: number;
}

/** What this sidecar knows of a (limit, key) beyond its pool's life (LocalShare needs it in an outage). */
interface KeyStats {
  /** Sidecars drawing on the key at the last grant. */
  peers: number;
  atMs: number;
  windowId: string;
  resetAtMs: number;
  /** Units this sidecar used from the key's credit in that window (draws, settled to their usage). */
  drawn: number;
}

interface Inflight {
  readonly req: v1.QuotaRequest.$Properties;
  readonly firstSentAtMs: number;
  lastSentAtMs: number;
  /** The stream generation it was last written to. */
  gen: number;
  /** An acquire recording debt: its grant is consumed, not added to a pool. */
  readonly debt: boolean;
  waiter: ((r: v1.QuotaResponse | undefined) => void) | undefined;
}

/** Unanswered acquires and releases are re-sent (after a reconnect, or every few seconds) for this long, then dropped. */
const INFLIGHT_MAX_AGE_MS = 60_000;
const RESEND_AFTER_MS = 2000;
const KEYS_MAX_AGE_MS = 3_600_000;
const MAX_INFLIGHT = 10_000;

/**
 * The sidecar end of StreamQuota: credit for global limits, held locally per (limit, key) and
 * topped up by leases from the control plane.
 *
 * - `tryTake()` is synchronous and draws from the local pool: most requests never touch the
 *   network. A pool below a quarter of its last lease is topped up in the background; only a short
 *   pool makes a request wait for `acquire()` (one acquire per pool at a time; others wait for it). Lease sizes double while a key is busy; the control plane caps them
 *   by what the window has left and by a fair share among the sidecars drawing on the key.
 * - Request ids are `q<seq>`; with the instance id they make the lease id, and an acquire whose
 *   answer was lost with its stream is re-sent on the next stream: the control plane returns the
 *   recorded grant rather than debiting twice, and a grant that arrives after its request gave up
 *   still joins the pool. Releases are re-sent the same way until answered.
 * - `settle()` returns what a request did not use to the pool, or adds usage above its draw as
 *   debt, which the next lease covers first (or which is recorded when the pool is flushed).
 * - Every second: pools whose oldest lease expires, and pools idle for `idleFlushMs`, are flushed
 *   (unused credit returned, debt recorded); unanswered messages are re-sent (on a fresh stream when
 *   the old one broke).
 * - Failure: no answer within `timeoutMs`, a broken stream, or an answer saying the shared store
 *   is down → `unavailable` (the caller applies the limit's failure mode), and for `backoffMs`
 *   every draw that needs the network answers `unavailable` at once.
 */
export class QuotaClient {
  readonly #o: QuotaClientOptions;
  readonly #client: ControlClient;
  readonly #ownClient: boolean;
  #call: ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse> | undefined;
  #gen = 0;
  readonly #pools = new Map<string, Pool>();
  readonly #inflight = new Map<string, Inflight>();
  /** Peers per (limit, key) at its last grant, kept after its pool is gone (LocalShare needs it in an outage). */
  readonly #keys = new Map<string, KeyStats>();
  #seq = 0;
  #unavailableUntilMs = 0;
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  /** For tests and metrics. */
  readonly stats: { -readonly [K in keyof QuotaStats]: number } = { acquires: 0, granted: 0, released: 0, returned: 0, unavailable: 0, resent: 0, dropped: 0 };

  constructor(o: QuotaClientOptions) {
    this.#o = o;
    if (o.client !== undefined) {
      this.#client = o.client;
      this.#ownClient = false;
    } else {
      if (o.address === undefined) throw new Error('QuotaClient needs a client or an address');
      this.#client = new ControlClient(o.address, o.credentials ?? grpc.credentials.createInsecure());
      this.#ownClient = true;
    }
    this.#timer = setInterval(() => this.tick(), 1000);
    this.#timer.unref();
  }

  #stream(): ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse> {
    if (this.#call !== undefined) return this.#call;
    const call = this.#client.streamQuota();
    const n = this.#o.node;
    call.write({ hello: { pod: n.pod, namespace: n.namespace, serviceAccount: n.serviceAccount, labels: { ...n.labels }, instanceId: n.instanceId, sidecarVersion: n.sidecarVersion } });
    call.on('data', (r: v1.QuotaResponse) => this.#onResponse(r));
    const lost = (why: string): void => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#fail(why);
    };
    call.on('error', (e: Error) => lost(e.message));
    call.on('end', () => lost('stream ended'));
    this.#call = call;
    const gen = ++this.#gen;
    // Whatever was not answered on the previous stream goes again (idempotent on the server).
    for (const f of this.#inflight.values()) {
      if (f.gen !== gen) this.#write(call, gen, f, f.gen !== 0);
    }
    return call;
  }

  #write(call: ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse>, gen: number, f: Inflight, resend: boolean): void {
    if (resend) this.stats.resent++;
    f.gen = gen;
    f.lastSentAtMs = Date.now();
    call.write(f.req);
  }

  /** The stream broke or the store is down: waiting draws give up now, new ones for `backoffMs`. */
  #fail(why: string): void {
    if (this.#unavailableUntilMs < Date.now()) this.#o.logger.warn({ why }, 'global limit credit unavailable; failure modes apply');
    this.#unavailableUntilMs = Date.now() + (this.#o.backoffMs ?? 500);
    for (const f of this.#inflight.values()) {
      const w = f.waiter;
      f.waiter = undefined;
      w?.(undefined);
    }
  }

  #send(id: string, req: v1.QuotaRequest.$Properties, wait: boolean, debt = false): Promise<v1.QuotaResponse | undefined> {
    if (this.#inflight.size >= MAX_INFLIGHT) {
      this.stats.dropped++;
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      const now = Date.now();
      const f: Inflight = { req, firstSentAtMs: now, lastSentAtMs: now, gen: 0, debt, waiter: undefined };
      let timer: NodeJS.Timeout | undefined;
      if (wait) {
        timer = setTimeout(() => {
          if (f.waiter === undefined) return;
          f.waiter = undefined;
          this.#fail('no answer from the control plane');
          resolve(undefined);
        }, this.#o.timeoutMs ?? 1000);
        f.waiter = (r) => {
          clearTimeout(timer);
          resolve(r);
        };
      } else resolve(undefined);
      this.#inflight.set(id, f);
      try {
        const call = this.#stream();
        if (f.gen !== this.#gen) this.#write(call, this.#gen, f, false);
      } catch (e) {
        this.#fail((e as Error).message);
      }
    });
  }

  #onResponse(r: v1.QuotaResponse): void {
    if (r.grant) {
      const g = r.grant;
      const f = this.#inflight.get(g.requestId ?? '');
      if (f === undefined) return;
      this.#inflight.delete(g.requestId ?? '');
      if (g.unavailable) this.#fail('the shared quota store is down');
      else if (!f.debt) this.#applyGrant(g);
      const w = f.waiter;
      f.waiter = undefined;
      w?.(r);
    } else if (r.released) {
      const rel = r.released;
      if (rel.unavailable) return; // stays in flight: re-sent by tick()
      const f = this.#inflight.get(`release:${rel.leaseId}`);
      this.#inflight.delete(`release:${rel.leaseId}`);
      this.stats.returned += Number(rel.returned ?? 0);
      const w = f?.waiter;
      if (f) f.waiter = undefined;
      w?.(r);
    }
  }

  #applyGrant(grant: v1.ILeaseGrant): void {
    const g = { limitId: grant.limitId ?? '', key: grant.key ?? '', windowId: grant.windowId ?? '', leaseId: grant.leaseId ?? '', peers: grant.peers ?? 1 };
    const id = poolId(g.limitId, g.key);
    let pool = this.#pools.get(id);
    const now = Date.now();
    if (pool !== undefined && pool.windowId !== '' && (pool.windowId !== g.windowId || pool.expiresAtMs <= now)) {
      // Another window (or an expired pool): what is left of the old one goes back first.
      void this.#flushPool(pool);
      pool = undefined;
    }
    const granted = Number(grant.granted ?? 0);
    const expiresAtMs = Number(grant.expiresAtUnixMs ?? 0);
    if (pool === undefined) {
      pool = this.#newPool(g.limitId, g.key, g.windowId, expiresAtMs);
      this.#pools.set(id, pool);
    }
    // A debt-only pool (charged while it had no lease) becomes this window's pool, debt included.
    pool.windowId = g.windowId;
    const peers = Math.max(1, g.peers);
    const known = this.#keys.get(id);
    const resetAtMs = Number(grant.windowResetUnixMs ?? 0);
    if (known === undefined || known.windowId !== g.windowId) this.#keys.set(id, { peers, atMs: now, windowId: g.windowId, resetAtMs, drawn: 0 });
    else {
      known.peers = peers;
      known.atMs = now;
    }
    pool.remaining = Number(grant.remaining ?? 0);
    pool.resetAtMs = Number(grant.windowResetUnixMs ?? 0);
    if (granted > 0) {
      this.stats.granted += granted;
      pool.available += granted;
      pool.leases.push({ id: g.leaseId, granted });
      pool.lastLease = granted;
      if (pool.leases.length === 1) pool.expiresAtMs = expiresAtMs;
    } else {
      pool.deniedUntilMs = now + (this.#o.deniedCacheMs ?? 250);
    }
  }

  /**
   * Draws `amount` from the local pool without waiting: `ok` (taken), `denied` (recently denied and
   * it does not fit the known remaining credit), `unavailable` (the control plane failed moments
   * ago), or `ask` (call `acquire()`).
   */
  tryTake(limitId: string, key: string, amount: number, nowMs = Date.now()): TakeResult | 'ask' {
    const pool = this.#pools.get(poolId(limitId, key));
    if (pool !== undefined && pool.expiresAtMs > nowMs && pool.available >= amount) {
      pool.available -= amount;
      pool.inUse++;
      pool.lastUsedMs = nowMs;
      const k = this.#keys.get(poolId(limitId, key));
      if (k !== undefined) k.drawn += amount;
      // Low water: top the pool up before it runs dry, so requests do not wait for a grant.
      if (pool.available < pool.lastLease / 4 && pool.pending === undefined && pool.remaining > 0 && nowMs >= this.#unavailableUntilMs && nowMs >= pool.deniedUntilMs) this.#refill(pool);
      return 'ok';
    }
    if (nowMs < this.#unavailableUntilMs) return 'unavailable';
    if (pool !== undefined && nowMs < pool.deniedUntilMs && nowMs < pool.resetAtMs && amount > pool.remaining + Math.max(0, pool.available)) return 'denied';
    return 'ask';
  }

  #refill(pool: Pool): void {
    const requestId = `q${++this.#seq}`;
    this.stats.acquires++;
    const wanted = Math.max(this.#o.minLease ?? 1000, pool.lastLease * 2);
    const asked = this.#send(requestId, { acquire: { requestId, limitId: pool.limitId, key: pool.key, wanted, needed: 0 } }, true);
    pool.pending = asked;
    void asked.then(() => {
      if (pool.pending === asked) pool.pending = undefined;
    });
  }

  /** Asks the control plane for credit when the pool is short, then draws `amount`. */
  async acquire(limitId: string, key: string, amount: number): Promise<TakeResult> {
    const id = poolId(limitId, key);
    for (let attempt = 0; attempt < 3; attempt++) {
      const t = this.tryTake(limitId, key, amount);
      if (t !== 'ask') return t;
      let pool = this.#pools.get(id);
      if (pool?.pending !== undefined) {
        await pool.pending;
        continue;
      }
      if (pool === undefined) {
        // A placeholder, so that concurrent requests for a new key wait for this one acquire.
        pool = this.#newPool(limitId, key, '', 0);
        this.#pools.set(id, pool);
      }
      const now = Date.now();
      // Credit (or debt) that the grant joins: a live pool's, or a debt-only pool's debt.
      const carried = pool !== undefined && (pool.expiresAtMs > now || pool.windowId === '');
      const have = carried ? pool.available : 0;
      const needed = amount - have;
      const wanted = Math.max(needed, this.#o.minLease ?? 1000, carried ? pool.lastLease * 2 : 0);
      const requestId = `q${++this.#seq}`;
      this.stats.acquires++;
      const asked = this.#send(requestId, { acquire: { requestId, limitId, key, wanted, needed } }, true);
      pool.pending = asked;
      const r = await asked;
      if (pool.pending === asked) pool.pending = undefined;
      if (r === undefined || r.grant?.unavailable === true) {
        this.stats.unavailable++;
        return 'unavailable';
      }
      const after = this.tryTake(limitId, key, amount);
      if (after === 'ok') return 'ok';
      if (Number(r.grant?.granted ?? 0) === 0) return 'denied';
    }
    return 'denied';
  }

  /**
   * Settles a draw of `taken` units that used `used`: the difference goes back to the pool, or
   * (usage above the draw: an undercounted estimate) becomes debt on the pool, covered first by the
   * next lease or recorded when the pool is flushed. Credit given back after its pool was flushed
   * (its lease expired during a long request) stays spent.
   */
  settle(limitId: string, key: string, taken: number, used: number): void {
    const id = poolId(limitId, key);
    let pool = this.#pools.get(id);
    if (pool !== undefined && pool.inUse > 0) pool.inUse--;
    const k = this.#keys.get(id);
    if (k !== undefined) k.drawn = Math.max(0, k.drawn + used - taken);
    if (used === taken || (used < taken && pool === undefined)) return;
    if (pool === undefined) {
      pool = this.#newPool(limitId, key, '', 0);
      this.#pools.set(id, pool);
    }
    pool.available += taken - used;
  }

  #newPool(limitId: string, key: string, windowId: string, expiresAtMs: number): Pool {
    return { limitId, key, windowId, available: 0, leases: [], expiresAtMs, lastLease: 0, remaining: 0, resetAtMs: 0, deniedUntilMs: 0, pending: undefined, inUse: 0, lastUsedMs: Date.now() };
  }

  /**
   * For LocalShare: the sidecars drawing on a (limit, key) at its last grant (else the most seen for
   * the limit, else 1), and what this sidecar used of it in the current window before the outage.
   */
  localShare(limitId: string, key: string, nowMs = Date.now()): { peers: number; drawn: number } {
    const k = this.#keys.get(poolId(limitId, key));
    if (k !== undefined) return { peers: k.peers, drawn: nowMs < k.resetAtMs ? k.drawn : 0 };
    let most = 1;
    const prefix = `${limitId}\u0000`;
    for (const [id, q] of this.#keys) if (id.startsWith(prefix) && q.peers > most) most = q.peers;
    return { peers: most, drawn: 0 };
  }

  /** Releases not answered yet (re-sent until they are). */
  get pendingReleases(): number {
    let n = 0;
    for (const id of this.#inflight.keys()) if (id.startsWith('release:')) n++;
    return n;
  }

  /** Credit known to be left for a (limit, key): the pool plus the window's unleased credit at the last answer. */
  remaining(limitId: string, key: string, nowMs = Date.now()): { remaining: number; resetAtMs: number } | undefined {
    const p = this.#pools.get(poolId(limitId, key));
    if (p === undefined || p.resetAtMs <= nowMs) return undefined;
    return { remaining: Math.max(0, p.remaining + Math.max(0, p.available)), resetAtMs: p.resetAtMs };
  }

  /** Returns a pool's unused credit (to its leases, newest first) and records its debt. */
  #flushPool(pool: Pool): Array<Promise<v1.QuotaResponse | undefined>> {
    this.#pools.delete(poolId(pool.limitId, pool.key));
    const sent: Array<Promise<v1.QuotaResponse | undefined>> = [];
    let unused = pool.available;
    for (let i = pool.leases.length - 1; i >= 0 && unused > 0; i--) {
      const lease = pool.leases[i] as Lease;
      const part = Math.min(unused, lease.granted);
      unused -= part;
      this.stats.released++;
      sent.push(this.#send(`release:${lease.id}`, { release: { leaseId: lease.id, unused: part, limitId: pool.limitId, key: pool.key, windowId: pool.windowId } }, true));
    }
    if (pool.available < 0) {
      // Debt: taken from the current window's credit (as much as is left) and consumed.
      const requestId = `q${++this.#seq}`;
      sent.push(this.#send(requestId, { acquire: { requestId, limitId: pool.limitId, key: pool.key, wanted: -pool.available, needed: 0 } }, false, true));
    }
    return sent;
  }

  /** Flushes expiring pools and re-sends what a broken stream left unanswered. Runs every second. */
  tick(nowMs = Date.now()): void {
    if (this.#closed) return;
    for (const pool of this.#pools.values()) {
      if (pool.pending !== undefined) continue;
      const idle = pool.inUse === 0 && nowMs - pool.lastUsedMs >= (this.#o.idleFlushMs ?? 5000);
      if (idle || pool.expiresAtMs <= nowMs + 1000) void this.#flushPool(pool);
    }
    for (const [id, k] of this.#keys) if (k.atMs < nowMs - KEYS_MAX_AGE_MS && k.resetAtMs < nowMs) this.#keys.delete(id);
    for (const [id, f] of this.#inflight) {
      if (f.firstSentAtMs < nowMs - INFLIGHT_MAX_AGE_MS) {
        this.#inflight.delete(id);
        this.stats.dropped++;
      }
    }
    if (this.#inflight.size === 0) return;
    try {
      const call = this.#stream(); // a new stream re-sends everything unanswered
      for (const f of this.#inflight.values()) {
        if (f.lastSentAtMs < nowMs - RESEND_AFTER_MS) this.#write(call, this.#gen, f, true);
      }
    } catch (e) {
      this.#fail((e as Error).message);
    }
  }

  /** Returns every pool's unused credit to the control plane (shutdown); resolves with the credit taken back. */
  async flush(): Promise<number> {
    const sent: Array<Promise<v1.QuotaResponse | undefined>> = [];
    for (const pool of [...this.#pools.values()]) sent.push(...this.#flushPool(pool));
    let returned = 0;
    for (const r of await Promise.all(sent)) returned += Number(r?.released?.returned ?? 0);
    return returned;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#call?.end();
    this.#call = undefined;
    if (this.#ownClient) this.#client.close();
  }
}

function poolId(limitId: string, key: string): string {
  return `${limitId}\u0000${key}`;
}
