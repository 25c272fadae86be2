import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '@sluice/core';

export interface LeaderElectorOptions {
  readonly kubeConfig: KubeConfig;
  /** The Lease's namespace and name (`coordination.k8s.io/v1`). */
  readonly namespace: string;
  readonly name: string;
  /** Unique per process (see `leaderIdentity`). */
  readonly identity: string;
  /** Written into the Lease: how long a holder that stops renewing keeps it (default 15). */
  readonly leaseDurationSeconds?: number;
  /** Renew period while leading (default 5000 ms). */
  readonly renewIntervalMs?: number;
  /** Acquire attempts while following (default 2000 ms, plus up to 20 % jitter). */
  readonly retryIntervalMs?: number;
  /** A leader that could not renew for this long steps down (default: 2/3 of the lease duration). */
  readonly renewDeadlineMs?: number;
  /** Give up on one API call after this long (default: min(renewDeadline / 2, 5000) ms). */
  readonly requestTimeoutMs?: number;
  readonly onStartedLeading?: () => void;
  readonly onStoppedLeading?: () => void;
  readonly logger?: Logger;
}

/** `<pod name>-<random suffix>`: unique even when a pod restarts under the same name. */
export function leaderIdentity(podName?: string): string {
  const base = podName !== undefined && podName !== '' ? podName : hostname();
  return `${base}-${randomBytes(4).toString('hex')}`;
}

function statusCode(e: unknown): number | undefined {
  if (e instanceof ApiException) return e.code as number;
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const micro = (d: Date): V1MicroTime => new V1MicroTime(d.getTime());

type Attempt = 'held' | 'other' | 'conflict';

/**
 * Lease-based leader election, client-go style: acquire the Lease when it is absent, released (empty
 * holder) or expired, renew it while holding it, every write guarded by the resourceVersion read
 * (optimistic concurrency). Expiry is judged on this process's clock (a record not seen changing for
 * `leaseDurationSeconds`), not on the holder's `renewTime`, so clock skew between nodes does not
 * matter. `close()` releases the Lease so that another replica takes over at its next retry.
 */
export class LeaderElector {
  readonly identity: string;
  readonly #api: CoordinationV1Api;
  readonly #o: LeaderElectorOptions;
  readonly #durationS: number;
  readonly #renewMs: number;
  readonly #retryMs: number;
  readonly #deadlineMs: number;
  readonly #requestMs: number;
  #leading = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #observed: { record: string; at: number } | undefined;
  #lastRenew = 0;
  #holder = '';

  constructor(o: LeaderElectorOptions) {
    this.#o = o;
    this.identity = o.identity;
    this.#api = o.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#durationS = o.leaseDurationSeconds ?? 15;
    this.#renewMs = o.renewIntervalMs ?? 5000;
    this.#retryMs = o.retryIntervalMs ?? 2000;
    this.#deadlineMs = o.renewDeadlineMs ?? Math.round((this.#durationS * 1000 * 2) / 3);
    this.#requestMs = o.requestTimeoutMs ?? Math.max(100, Math.min(Math.round(this.#deadlineMs / 2), 5000));
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Identity of the holder as last read ('' = none or unknown). */
  get holder(): string {
    return this.#holder;
  }

  start(): void {
    if (this.#closed || this.#timer !== undefined || this.#tick !== undefined) return;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick = this.#run().finally(() => {
        this.#tick = undefined;
      });
    }, ms);
  }

  async #run(): Promise<void> {
    let result: Attempt | 'error';
    try {
      result = await this.#tryAcquireOrRenew();
    } catch (e) {
      result = 'error';
      this.#o.logger?.warn({ lease: `${this.#o.namespace}/${this.#o.name}`, err: e instanceof Error ? e.message : String(e) }, 'leader election: lease request failed');
    }
    if (this.#closed) return;
    const now = Date.now();
    if (result === 'held') {
      this.#lastRenew = now;
      if (!this.#leading) {
        this.#leading = true;
        this.#o.logger?.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.identity }, 'leader election: became leader');
        this.#o.onStartedLeading?.();
      }
    } else if (this.#leading && (result === 'other' || now - this.#lastRenew > this.#deadlineMs)) {
      this.#stepDown(result === 'other' ? `lease held by ${this.#holder}` : 'could not renew the lease in time');
    }
    this.#schedule(this.#leading ? this.#renewMs : Math.round(this.#retryMs * (1 + Math.random() * 0.2)));
  }

  #stepDown(why: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#o.logger?.[why === 'closed' ? 'info' : 'warn']({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.identity }, `leader election: stopped leading (${why})`);
    this.#o.onStoppedLeading?.();
  }

  async #read(): Promise<V1Lease | undefined> {
    try {
      return await withTimeout(this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace }), this.#requestMs, 'read lease');
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  async #tryAcquireOrRenew(): Promise<Attempt> {
    const { namespace, name } = this.#o;
    const lease = await this.#read();
    const now = new Date();
    if (lease === undefined) {
      try {
        await withTimeout(
          this.#api.createNamespacedLease({
            namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace },
              spec: { holderIdentity: this.identity, leaseDurationSeconds: this.#durationS, acquireTime: micro(now), renewTime: micro(now), leaseTransitions: 0 },
            },
          }),
          this.#requestMs,
          'create lease',
        );
        this.#holder = this.identity;
        return 'held';
      } catch (e) {
        if (statusCode(e) === 409) return 'conflict'; // another replica created it first
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.#holder = holder;
    const record = `${holder}\u0000${String(spec.renewTime)}\u0000${lease.metadata?.resourceVersion ?? ''}`;
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() };
    const durationMs = (spec.leaseDurationSeconds ?? this.#durationS) * 1000;
    const expired = holder === '' || Date.now() >= this.#observed.at + durationMs;
    if (holder !== this.identity && !expired) return 'other';
    const takeover = holder !== this.identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#durationS,
        renewTime: micro(now),
        ...(takeover ? { acquireTime: micro(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    };
    try {
      await withTimeout(this.#api.replaceNamespacedLease({ name, namespace, body }), this.#requestMs, 'update lease');
    } catch (e) {
      if (statusCode(e) === 409) return 'conflict'; // someone else wrote it since our read
      throw e;
    }
    this.#holder = this.identity;
    return 'held';
  }

  /** Stops electing; when leading, releases the Lease (empty holder) and calls onStoppedLeading. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#tick;
    // A tick that was in flight may have won the lease just now (#holder) without becoming leader.
    if (!this.#leading && this.#holder !== this.identity) return;
    try {
      const lease = await this.#read();
      if (lease?.spec?.holderIdentity === this.identity) {
        const now = new Date();
        await withTimeout(
          this.#api.replaceNamespacedLease({
            name: this.#o.name,
            namespace: this.#o.namespace,
            body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: micro(now), acquireTime: micro(now) } },
          }),
          this.#requestMs,
          'release lease',
        );
        this.#o.logger?.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.identity }, 'leader election: released the lease');
      }
    } catch (e) {
      // Not fatal: the lease expires by itself.
      this.#o.logger?.warn({ err: e instanceof Error ? e.message : String(e) }, 'leader election: could not release the lease');
    }
    this.#stepDown('closed');
  }
}
