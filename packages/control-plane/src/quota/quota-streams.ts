import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import { windowOf, isWindowName } from '@sluice/policy/limits';
import type { Workload } from '@sluice/policy';
import { sluice } from '@sluice/protocol';
import type { Authenticator } from '../auth.js';
import { authenticateNode, serveInOrder } from '../stream-serve.js';
import type { PolicyEngine } from '../engine.js';
import type { QuotaStore } from './store.js';

import v1 = sluice.v1;

export interface QuotaStreamsOptions {
  readonly engine: PolicyEngine;
  readonly store: QuotaStore;
  readonly logger: Logger;
  readonly authenticator?: Authenticator;
  /** Longest life of a lease: the sidecar returns what is left of it by then. Default 30 s. */
  readonly leaseTtlMs?: number;
  readonly now?: () => number;
  /** A lease is at most `max / leaseFraction` of its limit (unless one request needs more). Default 10. */
  readonly leaseFraction?: number;
}

export const DEFAULT_LEASE_FRACTION = 10;

interface Caller {
  readonly workload: Workload;
  /** Lease ids of this sidecar start with this (its instance id): it can only release its own. */
  readonly prefix: string;
}

/**
 * StreamQuota: leased credit for global limits. A sidecar says hello with its node (authenticated
 * like StreamPolicy), then asks for credit per (limit, key); the control plane debits the shared
 * counter of the limit's current window atomically in the store (Redis with a Lua script, or
 * memory in the one-process mode) and grants at most what is left, in fair shares when several
 * sidecars draw on the same key, and at most a tenth of the limit per lease (so one busy sidecar
 * cannot hold a small limit's whole window). Unused credit comes back by lease id, idempotently.
 *
 * Nothing about a lease lives in this process: the lease id is `<instance id>.<request id>`, its
 * record is in the store, and a release names its counter. A restarted control plane, or another
 * replica, grants and takes back credit exactly as the first one would; an acquire re-sent after a
 * lost answer (same request id) returns the recorded grant instead of debiting twice.
 *
 * A sidecar may only draw on limits of its own snapshot. When the store fails, the answer says
 * `unavailable` and the sidecar applies the limit's failure mode.
 */
export class QuotaStreams {
  readonly #o: QuotaStreamsOptions;
  /** Totals for tests and metrics. */
  readonly counters = { granted: 0, denied: 0, returned: 0, unavailable: 0 };

  constructor(o: QuotaStreamsOptions) {
    this.#o = o;
  }

  readonly handle = (call: grpc.ServerDuplexStream<v1.QuotaRequest, v1.QuotaResponse.$Properties>): void => {
    let caller: Caller | undefined;
    serveInOrder(call, this.#o.logger, 'quota', async (req, fail) => {
      if (req.hello) {
        const n = req.hello;
        if (!n.namespace) return fail(GrpcStatus.INVALID_ARGUMENT, 'hello must carry a node with a namespace');
        if (!n.instanceId || n.instanceId.includes('.')) return fail(GrpcStatus.INVALID_ARGUMENT, 'hello must carry an instance id without dots');
        const serviceAccount = n.serviceAccount || 'default';
        if (!(await authenticateNode(call, this.#o.authenticator, { namespace: n.namespace, serviceAccount, pod: n.pod ?? '' }, fail))) return;
        caller = { workload: { namespace: n.namespace, serviceAccount, labels: { ...n.labels } }, prefix: `${n.instanceId}.` };
        return;
      }
      if (caller === undefined) return fail(GrpcStatus.FAILED_PRECONDITION, 'the first QuotaRequest must be hello');
      if (req.acquire) call.write(await this.acquire(caller, req.acquire));
      else if (req.release) call.write(await this.release(caller, req.release));
    });
  };

  /** Grants credit for one (limit, key) of the caller's snapshot; 0 when the limit is spent or unknown. */
  async acquire(c: Caller, a: v1.ILeaseAcquire): Promise<v1.QuotaResponse.$Properties> {
    const now = (this.#o.now ?? Date.now)();
    const limitId = a.limitId ?? '';
    const key = a.key ?? '';
    const requestId = a.requestId ?? '';
    const wanted = units(a.wanted);
    const needed = units(a.needed);
    const limit = this.#o.engine.snapshotFor(c.workload)?.snapshot.limits.find((l) => l.id === limitId && l.scope === 'global');
    const answer = (g: Partial<v1.ILeaseGrant>): v1.QuotaResponse.$Properties => ({ grant: { requestId, limitId, key, leaseId: '', granted: 0, expiresAtUnixMs: now, ...g } });
    if (limit === undefined || !isWindowName(limit.window) || requestId === '') {
      this.counters.denied++;
      return answer({});
    }
    const win = windowOf(limit.window, limit.calendarAligned, limit.timeZone, now);
    const leaseId = c.prefix + requestId;
    let r;
    try {
      const cap = Math.ceil(limit.max / (this.#o.leaseFraction ?? DEFAULT_LEASE_FRACTION));
      r = await this.#o.store.debit({ limitId, key, windowId: win.id, windowEndMs: win.endMs, leaseId, drawer: c.prefix, want: wanted, need: needed, max: limit.max, cap });
    } catch (e) {
      this.counters.unavailable++;
      this.#o.logger.warn({ err: e instanceof Error ? e.message : String(e), limit: limitId }, 'quota store unavailable');
      return answer({ unavailable: true, windowId: win.id, windowResetUnixMs: win.endMs });
    }
    const common = { remaining: r.remaining, peers: r.peers, windowId: win.id, windowResetUnixMs: win.endMs };
    if (r.granted === 0) {
      this.counters.denied++;
      return answer(common);
    }
    this.counters.granted += r.granted;
    return answer({ ...common, leaseId, granted: r.granted, expiresAtUnixMs: Math.min(win.endMs, now + (this.#o.leaseTtlMs ?? 30_000)) });
  }

  /** Returns unused credit of a lease (idempotent; an unknown lease, or another sidecar's, returns 0). */
  async release(c: Caller, rel: v1.ILeaseRelease): Promise<v1.QuotaResponse.$Properties> {
    const leaseId = rel.leaseId ?? '';
    if (!leaseId.startsWith(c.prefix)) return { released: { leaseId, returned: 0 } };
    try {
      const r = await this.#o.store.credit({ leaseId, limitId: rel.limitId ?? '', key: rel.key ?? '', windowId: rel.windowId ?? '', amount: units(rel.unused) });
      this.counters.returned += r.returned;
      return { released: { leaseId, returned: r.returned } };
    } catch (e) {
      this.counters.unavailable++;
      this.#o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'quota store unavailable');
      return { released: { leaseId, returned: 0, unavailable: true } };
    }
  }
}

function units(v: unknown): number {
  const n = Math.floor(Number(v ?? 0));
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}
