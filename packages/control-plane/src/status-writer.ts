import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@sluice/core';
import { API_GROUP, canonicalJson, KINDS, type Kind } from '@sluice/policy';
import { Debouncer } from './debounce.js';
import { KIND_PLURALS, KUBE_VERSION, type ObservedObject } from './kube-source.js';
import type { ObjectStatus, ProgrammedCounts } from './status-view.js';

/** A condition in the Kubernetes shape (metav1.Condition). */
export interface KubeCondition {
  readonly type: 'Accepted' | 'Programmed';
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  /** RFC 3339, seconds; changes only when `status` flips. */
  readonly lastTransitionTime: string;
}

/** The `status` the control plane writes on every policy object. */
export interface PolicyObjectStatus {
  readonly observedGeneration?: number;
  readonly conditions: readonly KubeCondition[];
  /** Connected sidecars the object applies to, and how many of them run it. */
  readonly sidecars: { readonly selected: number; readonly acked: number };
}

/** metav1.Condition.message is limited to 32768 characters. */
const MAX_MESSAGE = 32_768;

const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, 'Z');
const clip = (m: string): string => (m.length <= MAX_MESSAGE ? m : `${m.slice(0, MAX_MESSAGE - 1)}…`);

function previousCondition(previous: unknown, type: string): { status?: unknown; lastTransitionTime?: unknown } | undefined {
  const conditions = (previous as { conditions?: unknown } | null | undefined)?.conditions;
  if (!Array.isArray(conditions)) return undefined;
  return conditions.find((c: unknown): c is { type: string } => typeof c === 'object' && c !== null && (c as { type?: unknown }).type === type) as
    | { status?: unknown; lastTransitionTime?: unknown }
    | undefined;
}

/**
 * The status to write for `s`, given the status the object has now (`previous`): the transition time
 * of a condition is kept unless its status flips. Pure.
 */
export function desiredStatus(s: ObjectStatus, previous: unknown, now: Date): PolicyObjectStatus {
  const gen = s.generation === undefined ? {} : { observedGeneration: s.generation };
  const condition = (type: KubeCondition['type'], ok: boolean, reason: string, message: string): KubeCondition => {
    const status = ok ? 'True' : 'False';
    const prev = previousCondition(previous, type);
    const lastTransitionTime = prev?.status === status && typeof prev.lastTransitionTime === 'string' ? prev.lastTransitionTime : rfc3339(now);
    return { type, status, reason, message: clip(message), ...gen, lastTransitionTime };
  };
  return {
    ...gen,
    conditions: [condition('Accepted', s.accepted, s.acceptedReason, s.acceptedMessage), condition('Programmed', s.programmed, s.programmedReason, s.programmedMessage)],
    sidecars: { selected: s.sidecarsSelected, acked: s.sidecarsAcked },
  };
}

/** Whether `current` (as stored) already says what `desired` says (fields written by others are ignored). */
export function sameStatus(desired: PolicyObjectStatus, current: unknown): boolean {
  if (current === null || typeof current !== 'object') return false;
  const c = current as Record<string, unknown>;
  const ours = { observedGeneration: c['observedGeneration'], conditions: c['conditions'], sidecars: c['sidecars'] };
  return canonicalJson(ours) === canonicalJson(desired);
}

export interface StatusWriterOptions {
  readonly kubeConfig: KubeConfig;
  /** A ControlPlane (or anything with its status and change hooks). */
  readonly controlPlane: {
    status(peers?: ProgrammedCounts): ObjectStatus[];
    readonly engine: { subscribe(listener: () => void): () => void };
    readonly streams: { onAnswer(listener: () => void): () => void };
  };
  /** The object's status as the cluster has it (KubeSource.observed). */
  readonly observed: (key: string) => ObservedObject | undefined;
  readonly logger?: Logger;
  /** Write this long after the last change (default 200 ms; at the latest 5× that after the first). */
  readonly debounceMs?: number;
  /** Full pass this often even without changes (default 30 s): repairs statuses others overwrote. */
  readonly resyncMs?: number;
  /** Parallel status writes (default 4). */
  readonly concurrency?: number;
  /** The other replicas' per-object sidecar counts (AckReports.peers), summed into the status. */
  readonly peers?: () => Promise<ProgrammedCounts>;
  /** While leading with `peers`, re-read them this often (default 2 s). */
  readonly peerPollMs?: number;
  readonly now?: () => Date;
}

/**
 * Publishes every policy object's Accepted / Programmed conditions on its `status` subresource — only
 * while this replica leads (`setLeading`). A pass runs soon after a compile or a sidecar's ACK / NACK /
 * disconnect (debounced) and every `resyncMs`; an object whose status already says the same is not
 * written. Writes are JSON merge patches of `status` on `/status` (conditions replace the list;
 * status fields written by others are left alone).
 */
export class StatusWriter {
  readonly #api: CustomObjectsApi;
  readonly #o: StatusWriterOptions;
  readonly #debouncer: Debouncer;
  readonly #unsubscribe: Array<() => void> = [];
  readonly #resync: NodeJS.Timeout;
  readonly #peerPoll: NodeJS.Timeout | undefined;
  /** Per object key: what we wrote, and the resourceVersion the object had before that write. */
  readonly #written = new Map<string, { status: PolicyObjectStatus; rvBefore: string }>();
  #leading = false;
  #closed = false;
  /** Successful status writes (diagnostics, tests). */
  writes = 0;

  constructor(o: StatusWriterOptions) {
    this.#o = o;
    this.#api = o.kubeConfig.makeApiClient(CustomObjectsApi);
    const quietMs = o.debounceMs ?? 200;
    this.#debouncer = new Debouncer(() => this.#pass(), {
      quietMs,
      maxMs: quietMs * 5,
      onError: (e) => o.logger?.error({ err: e }, 'status pass failed'),
    });
    this.#unsubscribe.push(o.controlPlane.engine.subscribe(() => this.trigger()));
    this.#unsubscribe.push(o.controlPlane.streams.onAnswer(() => this.trigger()));
    this.#resync = setInterval(() => this.trigger(), o.resyncMs ?? 30_000);
    this.#resync.unref();
    // Other replicas' ACKs arrive through their reports, not through events here: poll them.
    this.#peerPoll = o.peers === undefined ? undefined : setInterval(() => this.trigger(), o.peerPollMs ?? 2000);
    this.#peerPoll?.unref();
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** Called by the leader elector. Becoming leader starts a full pass. */
  setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#written.clear();
    if (leading) this.trigger();
  }

  trigger(): void {
    if (this.#leading && !this.#closed) this.#debouncer.trigger();
  }

  /** Runs a pass now (tests). */
  flush(): Promise<void> {
    return this.#debouncer.flush();
  }

  async #pass(): Promise<void> {
    if (!this.#leading || this.#closed) return;
    const now = (this.#o.now ?? (() => new Date()))();
    let peers: ProgrammedCounts | undefined;
    if (this.#o.peers !== undefined) {
      try {
        peers = await this.#o.peers();
      } catch (e) {
        this.#o.logger?.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not read the other replicas\' ACK reports; status counts this replica only');
      }
    }
    const statuses = this.#o.controlPlane.status(peers);
    const keys = new Set(statuses.map((s) => s.key));
    for (const k of this.#written.keys()) if (!keys.has(k)) this.#written.delete(k);
    const todo = statuses.filter((s) => (KINDS as readonly string[]).includes(s.kind));
    const worker = async (): Promise<void> => {
      for (let s = todo.shift(); s !== undefined; s = todo.shift()) {
        if (!this.#leading || this.#closed) return;
        await this.#write(s, now);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.#o.concurrency ?? 4) }, worker));
  }

  async #write(s: ObjectStatus, now: Date): Promise<void> {
    const observed = this.#o.observed(s.key);
    if (observed === undefined) return; // deleted meanwhile
    // Until the informer has seen our last write, that write is the object's status.
    const mine = this.#written.get(s.key);
    const current = mine !== undefined && mine.rvBefore === observed.resourceVersion ? mine.status : observed.status;
    const desired = desiredStatus(s, current, now);
    if (sameStatus(desired, current)) return;
    try {
      await this.#api.patchNamespacedCustomObjectStatus(
        { group: API_GROUP, version: KUBE_VERSION, namespace: s.namespace, plural: KIND_PLURALS[s.kind as Kind], name: s.name, body: { status: desired } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      this.#written.set(s.key, { status: desired, rvBefore: observed.resourceVersion });
      this.writes++;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return; // deleted meanwhile
      this.#o.logger?.warn({ object: s.key, err: e instanceof Error ? e.message : String(e) }, 'could not write object status');
    }
  }

  /** Stops writing; resolves once a pass in flight has finished. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#leading = false;
    clearInterval(this.#resync);
    if (this.#peerPoll) clearInterval(this.#peerPoll);
    for (const u of this.#unsubscribe) u();
    this.#debouncer.close();
    await this.#debouncer.flush();
  }
}
