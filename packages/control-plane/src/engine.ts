import type { Logger } from '@sluice/core';
import { compilePolicy, selectFor, buildSnapshot, objectKey, type PolicyIssue, type PolicySet, type Snapshot, type Workload } from '@sluice/policy';
import { Debouncer } from './debounce.js';
import type { PolicySource } from './source.js';

export interface EngineOptions {
  readonly source: PolicySource;
  readonly logger: Logger;
  readonly rootNamespace?: string;
  /** Debounce: compile after this much quiet (default 100 ms), at the latest this long after the first change (default 5 s). */
  readonly quietMs?: number;
  readonly maxMs?: number;
}

export interface WorkloadSnapshot {
  readonly snapshot: Snapshot;
  readonly issues: readonly PolicyIssue[];
  /** Keys (`Kind namespace/name`) of every object the snapshot was built from, backends included. */
  readonly objects: ReadonlySet<string>;
}

/**
 * The control plane's brain: turns the source's objects into a PolicySet (debounced, one compile in
 * flight) and hands out per-workload snapshots, memoised per selection, so 1,000 sidecars of ten
 * workloads cost ten snapshot builds per change.
 */
export class PolicyEngine {
  readonly #source: PolicySource;
  readonly #logger: Logger;
  readonly #rootNamespace: string | undefined;
  readonly #debouncer: Debouncer;
  readonly #listeners = new Set<() => void>();
  #set: PolicySet | undefined;
  #cache = new Map<string, WorkloadSnapshot>();
  #generation = 0;

  constructor(o: EngineOptions) {
    this.#source = o.source;
    this.#logger = o.logger;
    this.#rootNamespace = o.rootNamespace;
    this.#debouncer = new Debouncer(() => this.#compile(), {
      quietMs: o.quietMs ?? 100,
      maxMs: o.maxMs ?? 5000,
      onError: (e) => this.#logger.error({ err: e }, 'policy compile failed'),
    });
  }

  async start(): Promise<void> {
    await this.#source.start(() => this.#debouncer.trigger());
    await this.#debouncer.flush();
  }

  /** Compiles now (tests, and sources that know a change is complete). */
  flush(): Promise<void> {
    return this.#debouncer.flush();
  }

  /** Called after every compile; listeners re-check their streams. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get generation(): number {
    return this.#generation;
  }

  get policySet(): PolicySet | undefined {
    return this.#set;
  }

  /** Source and compile problems, for status and `sluice status`. */
  issues(): PolicyIssue[] {
    return [...this.#source.issues(), ...(this.#set?.issues ?? [])];
  }

  /** The snapshot for a workload, or undefined before the first compile. */
  snapshotFor(w: Workload): WorkloadSnapshot | undefined {
    const set = this.#set;
    if (set === undefined) return undefined;
    const selected = selectFor(set, w);
    const key = selected.map(objectKey).join('\n');
    let hit = this.#cache.get(key);
    if (hit === undefined) {
      const built = buildSnapshot(set, selected, { resolveSecret: (ns, auth) => this.#source.resolveSecret(ns, auth) });
      const objects = new Set(selected.map(objectKey));
      for (const b of built.snapshot.backends) objects.add(`LLMBackend ${b.id}`);
      hit = { ...built, objects };
      this.#cache.set(key, hit);
    }
    return hit;
  }

  async #compile(): Promise<void> {
    const started = performance.now();
    const set = compilePolicy(this.#source.objects(), { rootNamespace: this.#rootNamespace }, this.#set);
    this.#set = set;
    this.#cache = new Map();
    this.#generation++;
    const issues = [...this.#source.issues(), ...set.issues];
    this.#logger.info(
      { generation: this.#generation, objects: set.objects.size, issues: issues.length, stale: set.stale.size, ms: Math.round(performance.now() - started) },
      'policy compiled',
    );
    for (const i of issues) this.#logger.warn({ object: i.object, path: i.path, code: i.code }, i.message);
    for (const l of this.#listeners) l();
  }

  async close(): Promise<void> {
    this.#debouncer.close();
    await this.#source.close();
  }
}
