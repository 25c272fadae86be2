import { createHash } from 'node:crypto';
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '@sluice/core';
import { Debouncer } from './debounce.js';
import type { ProgrammedCounts } from './status-view.js';

/** Label on every ACK report Lease, valued with the leader-election Lease name. */
export const ACK_REPORT_LABEL = 'sluice.dev/ack-report-of';
const ANNOTATION = 'sluice.dev/acks';

export interface AckReportsOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The leader-election Lease name; reports are `<leaseName>-acks-<hash of identity>`. */
  readonly leaseName: string;
  readonly identity: string;
  /** This replica's per-object counts (PolicyStreams.programmed). */
  readonly counts: () => ProgrammedCounts;
  /** Subscribe to changes of those counts (ACK, NACK, connect, disconnect, compile). */
  readonly onChange: (listener: () => void) => () => void;
  readonly logger?: Logger;
  /** Report at least this often (renewal), default 10 s; a report older than 3× is ignored. */
  readonly refreshMs?: number;
  readonly debounceMs?: number;
}

type Wire = Record<string, [number, number, string?]>;

/**
 * Every control plane replica serves its own sidecars, so each knows only its own ACKs. Each replica
 * publishes its per-object counts in a Lease of its own (renewed like a heartbeat), and the leader
 * (the one replica that writes CRD status) sums the fresh reports of the others with its own.
 */
export class AckReports {
  readonly #o: AckReportsOptions;
  readonly #api: CoordinationV1Api;
  readonly #name: string;
  readonly #debouncer: Debouncer;
  readonly #timer: NodeJS.Timeout;
  readonly #off: () => void;
  #last = '';
  #closed = false;

  constructor(o: AckReportsOptions) {
    this.#o = o;
    this.#api = o.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#name = `${o.leaseName}-acks-${createHash('sha256').update(o.identity).digest('hex').slice(0, 10)}`;
    this.#debouncer = new Debouncer(() => this.#publish(false), { quietMs: o.debounceMs ?? 300, maxMs: 2000, onError: (e) => o.logger?.warn({ err: (e as Error).message }, 'ack report failed') });
    this.#off = o.onChange(() => this.#debouncer.trigger());
    this.#timer = setInterval(() => void this.#publish(true).catch(() => undefined), o.refreshMs ?? 10_000);
    this.#timer.unref();
    this.#debouncer.trigger();
  }

  get leaseName(): string {
    return this.#name;
  }

  async #publish(renew: boolean): Promise<void> {
    if (this.#closed) return;
    const wire: Wire = {};
    for (const [key, c] of this.#o.counts()) wire[key] = c.nack === undefined ? [c.selected, c.acked] : [c.selected, c.acked, c.nack.slice(0, 500)];
    const text = JSON.stringify(wire);
    if (!renew && text === this.#last) return;
    const now = new V1MicroTime();
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.#name, namespace: this.#o.namespace, labels: { [ACK_REPORT_LABEL]: this.#o.leaseName }, annotations: { [ANNOTATION]: text } },
      spec: { holderIdentity: this.#o.identity, renewTime: now, leaseDurationSeconds: Math.ceil((3 * (this.#o.refreshMs ?? 10_000)) / 1000) },
    };
    try {
      const current = await this.#api.readNamespacedLease({ name: this.#name, namespace: this.#o.namespace });
      body.metadata = { ...body.metadata, resourceVersion: current.metadata?.resourceVersion };
      await this.#api.replaceNamespacedLease({ name: this.#name, namespace: this.#o.namespace, body });
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
      await this.#api.createNamespacedLease({ namespace: this.#o.namespace, body });
    }
    this.#last = text;
  }

  /** The other replicas' fresh reports, summed per object. */
  async peers(now = Date.now()): Promise<ProgrammedCounts> {
    const list = await this.#api.listNamespacedLease({ namespace: this.#o.namespace, labelSelector: `${ACK_REPORT_LABEL}=${this.#o.leaseName}` });
    const sum: ProgrammedCounts = new Map();
    for (const l of list.items) {
      if (l.metadata?.name === this.#name || l.spec?.holderIdentity === this.#o.identity) continue;
      const renewed = l.spec?.renewTime === undefined ? 0 : new Date(l.spec.renewTime as unknown as string | Date).getTime();
      if (now - renewed > (l.spec?.leaseDurationSeconds ?? 30) * 1000) continue; // that replica is gone
      let wire: Wire;
      try {
        wire = JSON.parse(l.metadata?.annotations?.[ANNOTATION] ?? '{}') as Wire;
      } catch {
        continue;
      }
      for (const [key, [selected, acked, nack]] of Object.entries(wire)) {
        const e = sum.get(key) ?? { selected: 0, acked: 0, nack: undefined };
        e.selected += selected;
        e.acked += acked;
        if (nack !== undefined) e.nack = nack;
        sum.set(key, e);
      }
    }
    return sum;
  }

  /** Stops reporting and deletes this replica's report. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#off();
    clearInterval(this.#timer);
    this.#debouncer.close();
    try {
      await this.#api.deleteNamespacedLease({ name: this.#name, namespace: this.#o.namespace });
    } catch {
      // already gone, or the API server is away: it expires by itself
    }
  }
}
