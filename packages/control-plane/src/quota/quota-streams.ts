import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import { windowOf, isWindowName } from '@sluice/policy/limits';
import type { Workload } from '@sluice/policy';
import { sluice } from '@sluice/protocol';
import type { Authenticator } from '../auth.js';
import type { PolicyEngine } from '../engine.js';
import type { QuotaStore } from './store.js';

import v1 = sluice.v1;

export interface QuotaStreamsOptions {
  readonly engine: PolicyEngine;
  readonly store: QuotaStore;
  readonly logger: Logger;
  readonly authenticator?: Authenticator;
  /** Longest life of a lease (its unused credit is returned by the sidecar before, or spent). Default 30 s. */
  readonly leaseTtlMs?: number;
  readonly now?: () => number;
}

interface Lease {
  readonly limitId: string;
  readonly key: string;
  readonly windowId: string;
  readonly expiresAtMs: number;
}

/**
 * StreamQuota: leased credit for global limits. A sidecar says hello with its node (authenticated
 * like StreamPolicy), then asks for credit per (limit, key); the control plane debits the shared
 * counter of the limit's current window atomically in the store (Redis with a Lua script, or
 * memory in the one-process mode) and grants at most what is left. Unused credit comes back by lease
 * id, idempotently. A sidecar may only draw on limits of its own snapshot.
 */
export class QuotaStreams {
  readonly #o: QuotaStreamsOptions;
  readonly #leases = new Map<string, Lease>();
  /** Totals for tests and metrics. */
  readonly counters = { granted: 0, denied: 0, returned: 0 };

  constructor(o: QuotaStreamsOptions) {
    this.#o = o;
  }

  readonly handle = (call: grpc.ServerDuplexStream<v1.QuotaRequest, v1.QuotaResponse.$Properties>): void => {
    let workload: Workload | undefined;
    let chain: Promise<void> = Promise.resolve();
    let closed = false;
    const fail = (code: GrpcStatus, message: string): void => {
      closed = true;
      this.#o.logger.warn({ code: GrpcStatus[code] }, `quota stream rejected: ${message}`);
      call.emit('error', Object.assign(new Error(message), { code, details: message }));
    };
    call.on('data', (req: v1.QuotaRequest) => {
      chain = chain
        .then(async () => {
          if (closed) return;
          if (req.hello) {
            const n = req.hello;
            if (!n.namespace) return fail(GrpcStatus.INVALID_ARGUMENT, 'hello must carry a node with a namespace');
            if (this.#o.authenticator) {
              const header = call.metadata.get('authorization')[0];
              const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;
              const r = await this.#o.authenticator.authenticate(token, { namespace: n.namespace, serviceAccount: n.serviceAccount || 'default', pod: n.pod ?? '' });
              if (!r.ok) return fail(r.reason === 'denied' ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.UNAUTHENTICATED, r.message);
            }
            workload = { namespace: n.namespace, serviceAccount: n.serviceAccount || 'default', labels: { ...n.labels } };
            return;
          }
          if (workload === undefined) return fail(GrpcStatus.FAILED_PRECONDITION, 'the first QuotaRequest must be hello');
          if (req.acquire) call.write(await this.acquire(workload, req.acquire));
          else if (req.release) call.write(await this.release(req.release));
        })
        .catch((e: unknown) => this.#o.logger.error({ err: e }, 'quota stream failure'));
    });
    call.on('end', () => call.end());
  };

  /** Grants credit for one (limit, key) of the caller's snapshot; 0 when the limit is spent or unknown. */
  async acquire(w: Workload, a: v1.ILeaseAcquire): Promise<v1.QuotaResponse.$Properties> {
    const now = (this.#o.now ?? Date.now)();
    const limitId = a.limitId ?? '';
    const key = a.key ?? '';
    const wanted = Math.max(0, Math.floor(Number(a.wanted ?? 0)));
    const limit = this.#o.engine.snapshotFor(w)?.snapshot.limits.find((l) => l.id === limitId && l.scope === 'global');
    const deny = (remaining = 0, resetMs = 0): v1.QuotaResponse.$Properties => {
      this.counters.denied++;
      return { grant: { requestId: a.requestId ?? '', leaseId: '', limitId, key, granted: 0, remaining, expiresAtUnixMs: now, windowResetUnixMs: resetMs } };
    };
    if (limit === undefined || !isWindowName(limit.window)) return deny();
    const win = windowOf(limit.window, limit.calendarAligned, limit.timeZone, now);
    const r = await this.#o.store.debit(limitId, key, win.id, win.endMs, wanted, limit.max);
    if (r.granted === 0) return deny(r.remaining, win.endMs);
    const leaseId = randomBytes(12).toString('hex');
    const expiresAtMs = Math.min(win.endMs, now + (this.#o.leaseTtlMs ?? 30_000));
    this.#leases.set(leaseId, { limitId, key, windowId: win.id, expiresAtMs });
    this.counters.granted += r.granted;
    return { grant: { requestId: a.requestId ?? '', leaseId, limitId, key, granted: r.granted, remaining: r.remaining, expiresAtUnixMs: expiresAtMs, windowResetUnixMs: win.endMs } };
  }

  /** Returns unused credit of a lease (idempotent by lease id; an unknown or expired lease returns 0). */
  async release(rel: v1.ILeaseRelease): Promise<v1.QuotaResponse.$Properties> {
    const leaseId = rel.leaseId ?? '';
    const lease = this.#leases.get(leaseId);
    const now = (this.#o.now ?? Date.now)();
    if (lease === undefined || lease.expiresAtMs < now) return { released: { leaseId, returned: 0 } };
    const unused = Math.max(0, Math.floor(Number(rel.unused ?? 0)));
    const r = await this.#o.store.credit(leaseId, lease.limitId, lease.key, lease.windowId, unused);
    this.#leases.delete(leaseId);
    this.counters.returned += r.returned;
    return { released: { leaseId, returned: r.returned } };
  }
}
