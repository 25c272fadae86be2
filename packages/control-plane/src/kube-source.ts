import { CoreV1Api, CustomObjectsApi, ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '@sluice/core';
import { API_GROUP, API_VERSION, canonicalJson, KINDS, type Kind, type LoadedObject, type PolicyIssue } from '@sluice/policy';
import type { PolicySource, SecretRequest } from './source.js';

/** `v1alpha1` */
export const KUBE_VERSION = API_VERSION.slice(API_VERSION.indexOf('/') + 1);

/** The CRD plural of each policy kind (`llmroutes` …). */
export const KIND_PLURALS: Readonly<Record<Kind, string>> = Object.freeze({
  LLMBackend: 'llmbackends',
  LLMRoute: 'llmroutes',
  LLMLimit: 'llmlimits',
  LLMCache: 'llmcaches',
  LLMGuardrail: 'llmguardrails',
});

export interface BackoffOptions {
  /** First retry delay (default 500 ms); doubles per failed attempt up to `maxMs` (default 30 s), with jitter. */
  readonly initialMs?: number;
  readonly maxMs?: number;
}

/** Delay before retry number `attempt` (0-based): exponential, capped, "equal jitter" (half fixed, half random). */
export function backoffDelay(attempt: number, o: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = o.initialMs ?? 500;
  const max = o.maxMs ?? 30_000;
  const cap = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/**
 * A `Watch` that can be shut for good: every watch it opened is aborted by `close()`, and a watch
 * requested afterwards is never opened. `ListWatch.stop()` alone can leak a watch: when it is called
 * while the informer awaits its list or the watch's response headers, the informer has no request to
 * abort yet and opens the watch afterwards.
 */
class ClosableWatch extends Watch {
  readonly #open = new Set<AbortController>();
  readonly #onConnected: () => void;
  #closed = false;

  constructor(kc: KubeConfig, onConnected: () => void) {
    super(kc);
    this.#onConnected = onConnected;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.#closed) {
      const c = new AbortController();
      c.abort();
      return c;
    }
    let finished = false;
    // `done` may run before super.watch() returns (the request failed): the controller is not known yet.
    const ref: { controller?: AbortController } = {};
    const controller = await super.watch(path, queryParams, callback, (err: unknown) => {
      finished = true;
      if (ref.controller !== undefined) this.#open.delete(ref.controller);
      done(err);
    });
    ref.controller = controller;
    if (!finished) {
      this.#open.add(controller);
      if (this.#closed) controller.abort();
      else this.#onConnected();
    }
    return controller;
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#open) c.abort();
    this.#open.clear();
  }
}

export type InformerEvent = 'add' | 'update' | 'delete';

interface InformerOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** API path of the collection, e.g. `/apis/sluice.dev/v1alpha1/llmroutes`. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly onEvent: (type: InformerEvent, obj: T) => void;
  readonly backoff: BackoffOptions;
  readonly logger: Logger | undefined;
}

/**
 * One client-node informer (`ListWatch`, what `makeInformer` builds) kept alive: client-node 2
 * stops a `ListWatch` on a connection error, so it is restarted here with jittered exponential
 * backoff (it resumes from its last resourceVersion, and relists after a 410). `synced()` resolves
 * after the first successful list.
 */
class Informer<T extends KubernetesObject> {
  readonly #lw: ListWatch<T>;
  readonly #watch: ClosableWatch;
  readonly #o: InformerOptions<T>;
  #stopping = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #listed = false;
  #synced = false;
  #waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  #running: Promise<void> | undefined;

  constructor(o: InformerOptions<T>) {
    this.#o = o;
    this.#watch = new ClosableWatch(o.kubeConfig, () => {
      this.#attempt = 0;
    });
    const list = async (): Promise<KubernetesListObject<T>> => {
      const l = await o.list();
      // A list that lands after stop() must not feed the cache nor open a watch.
      if (this.#stopping) throw Object.assign(new Error('informer stopped'), { name: 'AbortError' });
      this.#listed = true;
      this.#attempt = 0;
      // ListWatch fills its cache synchronously once this promise resolves: synced from the next
      // macrotask on, without waiting for the watch request to connect.
      setImmediate(() => this.#markSynced());
      return l;
    };
    this.#lw = new ListWatch<T>(o.path, this.#watch, list, false);
    this.#lw.on('add', (obj) => o.onEvent('add', obj));
    this.#lw.on('update', (obj) => o.onEvent('update', obj));
    this.#lw.on('delete', (obj) => o.onEvent('delete', obj));
    this.#lw.on('error', (err: unknown) => this.#failed(err));
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#lw.get(name, namespace);
  }

  start(): void {
    if (this.#stopping || this.#running !== undefined) return;
    this.#listed = false;
    this.#running = this.#lw
      .start()
      .catch((e: unknown) => this.#failed(e))
      .finally(() => {
        this.#running = undefined;
        if (this.#listed) this.#markSynced();
      });
  }

  #markSynced(): void {
    if (this.#synced || this.#stopping) return;
    this.#synced = true;
    for (const w of this.#waiters) w.resolve();
    this.#waiters = [];
  }

  /** Resolves after the first complete list; rejects when stopped before that. */
  synced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (this.#stopping) return Promise.reject(new Error('informer stopped'));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #failed(err: unknown): void {
    // stop() itself surfaces as an AbortError through the error callbacks.
    if (this.#stopping) return;
    if (this.#timer !== undefined) return;
    const delay = backoffDelay(this.#attempt++, this.#o.backoff);
    this.#o.logger?.warn({ path: this.#o.path, err: errorText(err), retryMs: delay }, 'kubernetes watch failed; restarting');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#running !== undefined) {
        // The previous start is still unwinding; try again right after it.
        void this.#running.then(() => this.start());
        return;
      }
      this.start();
    }, delay);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiters) w.reject(new Error('informer stopped'));
    this.#waiters = [];
    await this.#lw.stop();
    this.#watch.close();
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
}

export interface KubeSourceOptions {
  readonly kubeConfig: KubeConfig;
  readonly logger?: Logger;
  /** Restart backoff of failed watches. */
  readonly backoff?: BackoffOptions;
  /**
   * When a backend shows up in a namespace whose Secrets are not watched yet, change notifications
   * wait up to this long (default 5 s) for that namespace's Secrets to be listed, so sidecars do not
   * get a snapshot without the key in between. `start()` waits as long for every namespace.
   */
  readonly secretSyncTimeoutMs?: number;
}

interface Entry {
  /** The object as handed to the engine: no `status`, `managedFields` or `resourceVersion`. */
  readonly object: KubernetesObject;
  readonly where: string;
  /** canonicalJson(object): an update that leaves it unchanged (a status write) is not a policy change. */
  readonly canon: string;
  /** As stored in the cluster (for the status writer). */
  readonly status: unknown;
  readonly resourceVersion: string;
}

interface SecretWatch {
  readonly informer: Informer<V1Secret>;
  /** True once listed, or once we stopped waiting for it. */
  settled: boolean;
  /** Resolves when `settled` turns true. */
  readonly done: Promise<void>;
  timer: NodeJS.Timeout | undefined;
}

/** What the status writer needs to know about an object as the cluster has it. */
export interface ObservedObject {
  readonly status: unknown;
  readonly resourceVersion: string;
}

/**
 * Policy from the cluster: one informer per policy kind (cluster-wide), plus per-namespace Secret
 * informers only where an `LLMBackend` references a Secret (started and stopped as such backends come
 * and go), so the control plane reads no Secrets it does not need. Keys come from `data[key]`
 * (base64); `auth.env` is not resolvable here.
 */
export class KubeSource implements PolicySource {
  readonly name: string;
  readonly #kc: KubeConfig;
  readonly #logger: Logger | undefined;
  readonly #backoff: BackoffOptions;
  readonly #secretSyncTimeoutMs: number;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #policy = new Map<Kind, Informer<KubernetesObject>>();
  readonly #entries = new Map<string, Entry>();
  readonly #secrets = new Map<string, SecretWatch>();
  #onChange: () => void = () => undefined;
  #started = false;
  /** start() has finished: from now on changes are announced (the engine compiles right after start). */
  #ready = false;
  #closed = false;
  /** A change arrived while a namespace's Secrets were still being listed. */
  #held = false;

  constructor(o: KubeSourceOptions) {
    this.#kc = o.kubeConfig;
    this.#logger = o.logger;
    this.#backoff = o.backoff ?? {};
    this.#secretSyncTimeoutMs = o.secretSyncTimeoutMs ?? 5000;
    this.#custom = o.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.name = `kubernetes:${o.kubeConfig.getCurrentCluster()?.server ?? '(no cluster)'}`;
  }

  async start(onChange: () => void): Promise<void> {
    if (this.#started) throw new Error('KubeSource already started');
    this.#started = true;
    this.#onChange = onChange;
    for (const kind of KINDS) {
      const plural = KIND_PLURALS[kind];
      const informer = new Informer<KubernetesObject>({
        kubeConfig: this.#kc,
        path: `/apis/${API_GROUP}/${KUBE_VERSION}/${plural}`,
        list: () => this.#custom.listClusterCustomObject({ group: API_GROUP, version: KUBE_VERSION, plural }) as Promise<KubernetesListObject<KubernetesObject>>,
        onEvent: (type, obj) => this.#policyEvent(kind, type, obj),
        backoff: this.#backoff,
        logger: this.#logger,
      });
      this.#policy.set(kind, informer);
      informer.start();
    }
    await Promise.all([...this.#policy.values()].map((i) => i.synced()));
    // Secret informers were started by the backends' add events; wait for them (bounded).
    for (;;) {
      const pending = [...this.#secrets.values()].filter((s) => !s.settled);
      if (pending.length === 0) break;
      await Promise.all(pending.map((s) => s.done));
    }
    if (this.#closed) throw new Error('KubeSource closed');
    this.#held = false;
    this.#ready = true;
  }

  #policyEvent(kind: Kind, type: InformerEvent, raw: KubernetesObject): void {
    const name = raw.metadata?.name ?? '';
    const namespace = raw.metadata?.namespace ?? 'default';
    const key = `${kind} ${namespace}/${name}`;
    if (type === 'delete') {
      if (!this.#entries.delete(key)) return;
      this.#notify();
      if (kind === 'LLMBackend') this.#reconcileSecretWatches();
      return;
    }
    const object = stripObject(raw, kind);
    const canon = canonicalJson(object);
    const prev = this.#entries.get(key);
    const status = (raw as { status?: unknown }).status;
    const resourceVersion = raw.metadata?.resourceVersion ?? '';
    if (prev !== undefined && prev.canon === canon) {
      // Only status / resourceVersion / managedFields changed: not a policy change.
      this.#entries.set(key, { ...prev, status, resourceVersion });
      return;
    }
    this.#entries.set(key, { object, where: `kube:${key}`, canon, status, resourceVersion });
    if (kind === 'LLMBackend') this.#reconcileSecretWatches();
    this.#notify();
  }

  /** Namespaces that hold an LLMBackend with a secretRef. */
  #secretNamespaces(): Set<string> {
    const out = new Set<string>();
    for (const [key, e] of this.#entries) {
      if (!key.startsWith('LLMBackend ')) continue;
      if (secretRefOf(e.object) !== undefined) out.add(e.object.metadata?.namespace ?? 'default');
    }
    return out;
  }

  #reconcileSecretWatches(): void {
    if (this.#closed) return;
    const wanted = this.#secretNamespaces();
    for (const ns of wanted) if (!this.#secrets.has(ns)) this.#watchSecrets(ns);
    for (const [ns, s] of this.#secrets) {
      if (wanted.has(ns)) continue;
      this.#secrets.delete(ns);
      if (s.timer !== undefined) clearTimeout(s.timer);
      this.#logger?.info({ namespace: ns }, 'no backend references Secrets here any more; stopped watching them');
      void s.informer.stop();
    }
    this.#releaseHeld();
  }

  #watchSecrets(namespace: string): void {
    const informer = new Informer<V1Secret>({
      kubeConfig: this.#kc,
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
      list: () => this.#core.listNamespacedSecret({ namespace }),
      onEvent: (_type, secret) => {
        if (this.#isReferenced(namespace, secret.metadata?.name ?? '')) this.#notify();
      },
      backoff: this.#backoff,
      logger: this.#logger,
    });
    let resolveDone: () => void = () => undefined;
    const done = new Promise<void>((r) => (resolveDone = r));
    const s: SecretWatch = { informer, settled: false, done, timer: undefined };
    const settle = (why: string): void => {
      if (s.settled) return;
      s.settled = true;
      resolveDone();
      if (s.timer !== undefined) clearTimeout(s.timer);
      s.timer = undefined;
      if (why === 'timeout') this.#logger?.warn({ namespace }, `Secrets of namespace ${namespace} not listed yet (${why}); policy goes on without them`);
      this.#releaseHeld();
    };
    s.timer = setTimeout(() => settle('timeout'), this.#secretSyncTimeoutMs);
    s.timer.unref();
    this.#secrets.set(namespace, s);
    informer.synced().then(
      () => settle('listed'),
      () => settle('stopped'),
    );
    this.#logger?.info({ namespace }, 'watching Secrets referenced by backends');
    informer.start();
  }

  #isReferenced(namespace: string, name: string): boolean {
    for (const [key, e] of this.#entries) {
      if (!key.startsWith(`LLMBackend ${namespace}/`)) continue;
      if (secretRefOf(e.object)?.name === name) return true;
    }
    return false;
  }

  #notify(): void {
    if (!this.#ready || this.#closed) return;
    if ([...this.#secrets.values()].some((s) => !s.settled)) {
      this.#held = true;
      return;
    }
    this.#onChange();
  }

  #releaseHeld(): void {
    if (!this.#ready || !this.#held || [...this.#secrets.values()].some((s) => !s.settled)) return;
    this.#held = false;
    if (!this.#closed) this.#onChange();
  }

  objects(): LoadedObject[] {
    return [...this.#entries.keys()].sort().map((k) => {
      const e = this.#entries.get(k) as Entry;
      return { object: e.object, where: e.where };
    });
  }

  /** The object's `status` and resourceVersion as last seen from the cluster (`key` = `Kind ns/name`). */
  observed(key: string): ObservedObject | undefined {
    const e = this.#entries.get(key);
    return e === undefined ? undefined : { status: e.status, resourceVersion: e.resourceVersion };
  }

  /** Namespaces whose Secrets are watched (tests, diagnostics). */
  watchedSecretNamespaces(): string[] {
    return [...this.#secrets.keys()].sort();
  }

  issues(): PolicyIssue[] {
    return [];
  }

  resolveSecret(namespace: string, auth: SecretRequest): string | undefined {
    const ref = auth.secretRef;
    if (ref === undefined) return undefined; // auth.env is a files-source feature
    const secret = this.#secrets.get(namespace)?.informer.get(ref.name, namespace);
    const b64 = secret?.data?.[ref.key];
    if (b64 === undefined) return undefined;
    // Keys written with `kubectl create secret --from-file` often end with a newline.
    const value = Buffer.from(b64, 'base64').toString('utf8').trim();
    return value === '' ? undefined : value;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const all = [...this.#policy.values(), ...[...this.#secrets.values()].map((s) => s.informer)];
    for (const s of this.#secrets.values()) if (s.timer !== undefined) clearTimeout(s.timer);
    this.#secrets.clear();
    await Promise.all(all.map((i) => i.stop()));
  }
}

function secretRefOf(o: KubernetesObject): { name: string; key: string } | undefined {
  const ref = (o as { spec?: { auth?: { secretRef?: { name?: unknown; key?: unknown } } } }).spec?.auth?.secretRef;
  if (ref === null || typeof ref !== 'object' || typeof ref.name !== 'string') return undefined;
  return { name: ref.name, key: typeof ref.key === 'string' ? ref.key : '' };
}

/** The object without what the server owns and policy does not need (`status`, managedFields, resourceVersion). */
function stripObject(raw: KubernetesObject, kind: Kind): KubernetesObject {
  const { status: _status, ...rest } = raw as KubernetesObject & { status?: unknown };
  const { managedFields: _mf, resourceVersion: _rv, ...metadata } = raw.metadata ?? {};
  return { ...rest, apiVersion: raw.apiVersion ?? API_VERSION, kind: raw.kind ?? kind, metadata };
}
