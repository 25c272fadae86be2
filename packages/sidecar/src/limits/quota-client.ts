import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import { ControlClient, sluice, type ControlCall } from '@sluice/protocol';
import type { NodeIdentity } from '../control-client.js';

import v1 = sluice.v1;

export interface QuotaClientOptions {
  readonly address: string;
  readonly node: NodeIdentity;
  readonly credentials?: grpc.ChannelCredentials;
  readonly logger: Logger;
  /** Smallest lease asked for, so a busy key does not ask for every request (default 1,000 units). */
  readonly minLease?: number;
  /** Longest wait for a grant before giving up (the caller applies the limit's failure mode). Default 1 s. */
  readonly timeoutMs?: number;
}

interface Pool {
  /** Credit held locally, drawn by requests. */
  available: number;
  leaseId: string;
  expiresAtMs: number;
  /** Size of the last lease: the next one asks for twice as much while demand lasts. */
  lastLease: number;
}

/**
 * The sidecar end of StreamQuota: credit for global limits, held locally per (limit, key) and topped
 * up by leases from the control plane. `take()` draws from the local pool and only asks the control
 * plane when the pool is short, so most requests never wait for the network; lease sizes double
 * while a key is busy (bounded by what the limit has left). Unused credit goes back with `flush()`.
 */
export class QuotaClient {
  readonly #o: QuotaClientOptions;
  readonly #client: ControlClient;
  #call: ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse> | undefined;
  readonly #pools = new Map<string, Pool>();
  readonly #waiting = new Map<string, (r: v1.QuotaResponse) => void>();
  #seq = 0;

  constructor(o: QuotaClientOptions) {
    this.#o = o;
    this.#client = new ControlClient(o.address, o.credentials ?? grpc.credentials.createInsecure());
  }

  #stream(): ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse> {
    if (this.#call !== undefined) return this.#call;
    const call = this.#client.streamQuota();
    const n = this.#o.node;
    call.write({ hello: { pod: n.pod, namespace: n.namespace, serviceAccount: n.serviceAccount, labels: { ...n.labels }, instanceId: n.instanceId, sidecarVersion: n.sidecarVersion } });
    call.on('data', (r: v1.QuotaResponse) => {
      const id = r.grant?.requestId ?? (r.released ? `release:${r.released.leaseId}` : '');
      const w = this.#waiting.get(id);
      if (w) {
        this.#waiting.delete(id);
        w(r);
      }
    });
    const lost = (): void => {
      if (this.#call === call) this.#call = undefined;
    };
    call.on('error', (e: Error) => {
      this.#o.logger.warn({ err: e.message }, 'quota stream lost');
      lost();
    });
    call.on('end', lost);
    this.#call = call;
    return call;
  }

  #ask(id: string, req: v1.QuotaRequest.$Properties): Promise<v1.QuotaResponse | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(undefined);
      }, this.#o.timeoutMs ?? 1000);
      this.#waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.#stream().write(req);
    });
  }

  /**
   * Draws `amount` units of `limitId`/`key`. Resolves true when granted, false when the limit has no
   * credit left, undefined when the control plane did not answer in time (failure mode applies).
   */
  async take(limitId: string, key: string, amount: number, nowMs = Date.now()): Promise<boolean | undefined> {
    const id = `${limitId}\u0000${key}`;
    let pool = this.#pools.get(id);
    if (pool !== undefined && pool.expiresAtMs <= nowMs) {
      this.#pools.delete(id); // expired credit is spent, not returned
      pool = undefined;
    }
    if (pool !== undefined && pool.available >= amount) {
      pool.available -= amount;
      return true;
    }
    const have = pool?.available ?? 0;
    const wanted = Math.max(amount - have, this.#o.minLease ?? 1000, (pool?.lastLease ?? 0) * 2);
    const requestId = `q${++this.#seq}`;
    const r = await this.#ask(requestId, { acquire: { requestId, limitId, key, wanted } });
    if (r === undefined) return undefined;
    const g = r.grant;
    const granted = Number(g?.granted ?? 0);
    if (g === null || g === undefined || granted === 0) return false;
    const next: Pool = { available: have + granted, leaseId: g.leaseId ?? '', expiresAtMs: Number(g.expiresAtUnixMs ?? 0), lastLease: granted };
    // The previous lease's remainder (same window: pools expire with their window) joins the new one.
    if (next.available < amount) {
      this.#pools.set(id, next);
      return false;
    }
    next.available -= amount;
    this.#pools.set(id, next);
    return true;
  }

  /** Puts back units taken but not used (a settled request used less than it reserved). */
  giveBack(limitId: string, key: string, amount: number): void {
    const pool = this.#pools.get(`${limitId}\u0000${key}`);
    if (pool !== undefined && amount > 0) pool.available += amount;
  }

  async #release(leaseId: string, unused: number): Promise<number> {
    const r = await this.#ask(`release:${leaseId}`, { release: { leaseId, unused } });
    return Number(r?.released?.returned ?? 0);
  }

  /** Returns every pool's unused credit to the control plane (shutdown, window end). */
  async flush(): Promise<number> {
    let returned = 0;
    for (const [id, pool] of this.#pools) {
      this.#pools.delete(id);
      if (pool.available > 0 && pool.leaseId !== '') returned += await this.#release(pool.leaseId, pool.available);
    }
    return returned;
  }

  close(): void {
    this.#call?.end();
    this.#client.close();
  }
}
