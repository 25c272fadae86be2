/**
 * A fake Kubernetes API server over plain HTTP (no TLS), good enough for the real
 * `@kubernetes/client-node` informers (`makeInformer` / `ListWatch`), `Watch`, the generated API
 * clients (`CustomObjectsApi`, `CoreV1Api`, `CoordinationV1Api`, `AuthenticationV1Api`) and
 * `KubernetesObjectApi` (discovery), plus a Lease-based leader election built on them.
 *
 * Model: every resource (group/version/plural) holds its objects in memory; one global counter
 * provides resourceVersions (as strings, like etcd revisions). Every write is appended to a per-resource
 * history so a watch from resourceVersion N replays the changes after N; `expireWatches()` compacts that
 * history (old resourceVersions are then answered with a 410 Expired ERROR event, as a real apiserver
 * does after etcd compaction) and `dropWatches()` cuts the open watch connections.
 *
 * Semantics follow the real apiserver where cheap: Status error objects (400/404/405/409/410/415/422),
 * optimistic concurrency on `metadata.resourceVersion` (PUT bodies, merge-patch bodies, JSON-patch
 * `test` ops, DELETE preconditions), generation bumps only on non-metadata/non-status changes, a status
 * subresource that only writes `status` (and a main resource that ignores `status` when the subresource
 * exists), no-op updates that write nothing, finalizers (DELETE of an object with finalizers only sets
 * `deletionTimestamp`; removing the last finalizer deletes it), label/field selectors on list and watch
 * (objects moving in or out of a watch's selector appear as ADDED / DELETED), `limit`/`continue`.
 *
 * PATCH content types: `application/json-patch+json` (RFC 6902; what client-node 2's generated
 * `patch*` methods send unless a `Content-Type` header middleware overrides it),
 * `application/merge-patch+json` (RFC 7386), `application/strategic-merge-patch+json` (treated as a
 * JSON merge patch: lists are replaced, `$`-directives dropped) and `application/apply-patch+yaml`
 * (JSON bodies only, treated as a merge patch that creates a missing object).
 *
 * Not modelled: authentication/authorization (any bearer token is accepted), namespaces as objects,
 * admission, defaulting, schema validation beyond object names, server-side apply field ownership.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';

export interface KubeObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: KubeObjectMeta;
  [key: string]: unknown;
}

export interface ResourceSpec {
  /** API group; '' for the core group (served under /api/v1). */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /**
   * Whether the resource has a `/status` subresource (then the main resource ignores `status` on
   * create/update and `/status` writes only `status`). Default: true, except core Secret and Lease.
   */
  statusSubresource?: boolean;
}

export interface TokenReviewResult {
  authenticated: boolean;
  user?: { username: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  /** Audiences the token is valid for; default: echo the audiences of the request. */
  audiences?: string[];
  error?: string;
}

export interface FakeKubeRequest {
  method: string;
  /** URL path without the query string. */
  path: string;
  /** Raw query string including the leading '?', or ''. */
  query: string;
  /** Request Content-Type, if any (handy to assert which patch flavour a client used). */
  contentType?: string;
}

export interface FakeKubeOptions {
  /** Extra resources served besides {@link DEFAULT_FAKE_KUBE_RESOURCES} (same group/version/plural overrides). */
  resources?: ResourceSpec[];
  /** Interval of BOOKMARK events on watches with `allowWatchBookmarks=true`; default 1000 ms. */
  bookmarkIntervalMs?: number;
  /** Events kept per resource for watch replay before the oldest are compacted away; default 10000. */
  maxHistory?: number;
  /** Bearer token put into {@link FakeKube.kubeConfig}; default 'fake-kube-token'. */
  token?: string;
}

export interface FakeKube {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The current global resourceVersion. */
  readonly resourceVersion: string;
  /** Number of open watch connections (all resources). */
  readonly openWatches: number;
  /** A KubeConfig for the client (cluster server = url, skipTLSVerify: true, a dummy token user, namespace default). */
  kubeConfig(): KubeConfig;
  /**
   * Create or replace an object of any group/version/kind (unknown kinds are registered on the fly
   * with a naive plural, namespaced iff `metadata.namespace` is set). Namespaced objects without a
   * namespace go to 'default'. Always writes: bumps resourceVersion, bumps metadata.generation when
   * anything outside metadata/status changed, keeps uid/creationTimestamp, keeps the existing
   * `status` when `obj` has none; emits ADDED/MODIFIED. Returns a copy of the stored object.
   */
  apply(obj: KubeObject): KubeObject;
  /** Delete immediately (finalizers are ignored); emits DELETED. False when absent. */
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean;
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Objects of that kind (in `namespace`, or in all namespaces), sorted by namespace and name. */
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[];
  /**
   * End every open watch (of that resource, or of all) with an ERROR event carrying a 410 Expired
   * Status, and compact the history so that every resourceVersion handed out so far is rejected with 410.
   */
  expireWatches(apiVersion?: string, kind?: string): void;
  /**
   * Destroy all open watch connections (of that resource, or of all) abruptly, like an apiserver restart.
   * Note: client-node 2's `Watch` reports that as an error ('terminated') and `ListWatch` then emits
   * 'error' and stops; the informer's owner has to `start()` it again (the client's documented pattern).
   */
  dropWatches(apiVersion?: string, kind?: string): void;
  /**
   * End all open watches (of that resource, or of all) cleanly, like the apiserver's request timeout;
   * `ListWatch` then reconnects by itself from its last resourceVersion.
   */
  endWatches(apiVersion?: string, kind?: string): void;
  /** Answer TokenReviews for `token` with `result`; `undefined` forgets the token. */
  setTokenReview(token: string, result: TokenReviewResult | undefined): void;
  /** The last 1000 requests, oldest first (assignable `length = 0` to clear). */
  readonly requests: FakeKubeRequest[];
  close(): Promise<void>;
}

const crd = (plural: string, kind: string): ResourceSpec => ({
  group: 'sluice.dev',
  version: 'v1alpha1',
  plural,
  kind,
  namespaced: true,
  statusSubresource: true,
});

export const DEFAULT_FAKE_KUBE_RESOURCES: readonly ResourceSpec[] = Object.freeze([
  crd('llmbackends', 'LLMBackend'),
  crd('llmroutes', 'LLMRoute'),
  crd('llmlimits', 'LLMLimit'),
  crd('llmcaches', 'LLMCache'),
  crd('llmguardrails', 'LLMGuardrail'),
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true, statusSubresource: false },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, statusSubresource: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true, statusSubresource: false },
]);

const MAX_REQUEST_LOG = 1000;
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const TOKEN_REVIEW_GV = 'authentication.k8s.io/v1';

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  rv: number;
  type: EventType;
  object: KubeObject;
  /** The previous state, for MODIFIED (to translate selector transitions into ADDED/DELETED). */
  prev?: KubeObject;
}

interface Watcher {
  resource: Resource;
  namespace: string | undefined;
  matches: (obj: KubeObject) => boolean;
  res: ServerResponse;
  timers: NodeJS.Timeout[];
}

interface Resource {
  spec: ResourceSpec;
  apiVersion: string;
  /** e.g. llmroutes.sluice.dev, or secrets for the core group. */
  qualified: string;
  statusSubresource: boolean;
  /** Built-in types omit kind/apiVersion on list items; custom resources keep them. */
  builtin: boolean;
  objects: Map<string, KubeObject>;
  history: HistoryEvent[];
  /** Watches from a resourceVersion below this are answered with 410. */
  compactedRv: number;
  watchers: Set<Watcher>;
}

/** An error answered as a Kubernetes Status object. */
class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** RFC 7386 JSON merge patch; `dropDirectives` strips strategic-merge `$...` keys. */
function mergePatch(target: unknown, patch: unknown, dropDirectives: boolean): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (dropDirectives && k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, dropDirectives);
  }
  return out;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new StatusError(422, 'Invalid', `invalid JSON pointer ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(token: string, arr: unknown[], forInsert: boolean): number {
  if (forInsert && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new StatusError(422, 'Invalid', `invalid array index ${JSON.stringify(token)}`);
  const i = Number(token);
  if (i > arr.length || (!forInsert && i === arr.length)) {
    throw new StatusError(422, 'Invalid', `array index ${i} out of bounds`);
  }
  return i;
}

/** Resolve the parent container of a pointer; throws 422 when a step is missing. */
function resolveParent(doc: unknown, tokens: string[], pointer: string): { parent: unknown; key: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(t, cur, false)];
    else if (isObject(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else throw new StatusError(422, 'Invalid', `path ${JSON.stringify(pointer)} does not exist`);
  }
  return { parent: cur, key: tokens[tokens.length - 1] ?? '' };
}

function pointerGet(doc: unknown, pointer: string): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const { parent, key } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(key, parent, false)];
  if (isObject(parent) && Object.hasOwn(parent, key)) return parent[key];
  throw new StatusError(422, 'Invalid', `path ${JSON.stringify(pointer)} does not exist`);
}

function pointerRemove(doc: unknown, pointer: string): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new StatusError(422, 'Invalid', 'cannot remove the document root');
  const { parent, key } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(key, parent, false), 1)[0];
  if (isObject(parent) && Object.hasOwn(parent, key)) {
    const old = parent[key];
    delete parent[key];
    return old;
  }
  throw new StatusError(422, 'Invalid', `path ${JSON.stringify(pointer)} does not exist`);
}

/** add (insert for arrays) or replace; returns the new document (the root may be replaced). */
function pointerSet(doc: unknown, pointer: string, value: unknown, mode: 'add' | 'replace'): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) {
    if (mode === 'add') parent.splice(arrayIndex(key, parent, true), 0, value);
    else parent[arrayIndex(key, parent, false)] = value;
  } else if (isObject(parent)) {
    if (mode === 'replace' && !Object.hasOwn(parent, key)) {
      throw new StatusError(422, 'Invalid', `path ${JSON.stringify(pointer)} does not exist`);
    }
    parent[key] = value;
  } else {
    throw new StatusError(422, 'Invalid', `path ${JSON.stringify(pointer)} does not exist`);
  }
  return doc;
}

/** RFC 6902 JSON patch. */
function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) {
    throw new StatusError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  }
  let doc = clone(target);
  for (const op of patch) {
    if (!isObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string') {
      throw new StatusError(400, 'BadRequest', `invalid JSON patch operation ${JSON.stringify(op)}`);
    }
    const path = op.path;
    const from = typeof op.from === 'string' ? op.from : undefined;
    switch (op.op) {
      case 'add':
      case 'replace':
        if (!('value' in op)) throw new StatusError(400, 'BadRequest', `JSON patch ${op.op} without value`);
        doc = pointerSet(doc, path, clone(op.value), op.op);
        break;
      case 'remove':
        pointerRemove(doc, path);
        break;
      case 'move': {
        if (from === undefined) throw new StatusError(400, 'BadRequest', 'JSON patch move without from');
        const v = pointerRemove(doc, from);
        doc = pointerSet(doc, path, v, 'add');
        break;
      }
      case 'copy': {
        if (from === undefined) throw new StatusError(400, 'BadRequest', 'JSON patch copy without from');
        doc = pointerSet(doc, path, clone(pointerGet(doc, from)), 'add');
        break;
      }
      case 'test':
        if (!deepEqual(pointerGet(doc, path), op.value)) {
          throw new StatusError(422, 'Invalid', `JSON patch test failed at ${JSON.stringify(path)}`);
        }
        break;
      default:
        throw new StatusError(400, 'BadRequest', `unknown JSON patch operation ${JSON.stringify(op.op)}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Selectors

type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function parseLabelSelector(selector: string): Requirement[] {
  return splitTopLevel(selector).map((term): Requirement => {
    let m = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(term);
    if (m) {
      const values = (m[3] ?? '').split(',').map((v) => v.trim()).filter((v) => v !== '');
      return { key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', values };
    }
    m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(term);
    if (m) return { key: m[1] ?? '', op: m[2] === '!=' ? 'neq' : 'eq', value: m[3] ?? '' };
    m = /^!\s*([^\s!=(),]+)$/.exec(term);
    if (m) return { key: m[1] ?? '', op: 'notexists' };
    m = /^([^\s!=(),]+)$/.exec(term);
    if (m) return { key: m[1] ?? '', op: 'exists' };
    throw new StatusError(400, 'BadRequest', `unable to parse requirement: ${JSON.stringify(term)}`);
  });
}

function matchesRequirement(req: Requirement, get: (key: string) => string | undefined): boolean {
  const v = get(req.key);
  switch (req.op) {
    case 'eq':
      return v === req.value;
    case 'neq':
      return v !== req.value;
    case 'in':
      return v !== undefined && req.values.includes(v);
    case 'notin':
      return v === undefined || !req.values.includes(v);
    case 'exists':
      return v !== undefined;
    case 'notexists':
      return v === undefined;
  }
}

function fieldValue(obj: KubeObject, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (!isObject(cur)) return '';
    cur = cur[part];
  }
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

function compileSelectors(labelSelector: string | null, fieldSelector: string | null): (obj: KubeObject) => boolean {
  const labelReqs = labelSelector ? parseLabelSelector(labelSelector) : [];
  const fieldReqs = (fieldSelector ? splitTopLevel(fieldSelector) : []).map((term) => {
    const m = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new StatusError(400, 'BadRequest', `invalid field selector: ${JSON.stringify(term)}`);
    return { path: m[1] ?? '', neq: m[2] === '!=', value: m[3] ?? '' };
  });
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    if (!labelReqs.every((r) => matchesRequirement(r, (k) => (Object.hasOwn(labels, k) ? labels[k] : undefined)))) {
      return false;
    }
    return fieldReqs.every((r) => (fieldValue(obj, r.path) === r.value) !== r.neq);
  };
}

// ---------------------------------------------------------------------------------------------

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from(randomBytes(5), (b) => alphabet[b % alphabet.length]).join('');
}

function naivePlural(kind: string): string {
  const k = kind.toLowerCase();
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  return `${k}s`;
}

function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function compareObjects(a: KubeObject, b: KubeObject): number {
  const ka = objectKey(a.metadata.namespace, a.metadata.name ?? '');
  const kb = objectKey(b.metadata.namespace, b.metadata.name ?? '');
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** True when anything outside apiVersion/kind/metadata/status differs (what bumps metadata.generation). */
function specChanged(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject): JsonObject => {
    const { apiVersion: _a, kind: _k, metadata: _m, status: _s, ...rest } = o;
    return rest;
  };
  return !deepEqual(strip(a), strip(b));
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): JsonObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new StatusError(413, 'RequestEntityTooLarge', 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StatusError(400, 'BadRequest', 'the request body is not valid JSON');
  }
}

function asKubeObject(body: unknown): KubeObject {
  if (!isObject(body)) throw new StatusError(400, 'BadRequest', 'the request body must be a JSON object');
  if (body.metadata !== undefined && !isObject(body.metadata)) {
    throw new StatusError(400, 'BadRequest', 'metadata must be an object');
  }
  return { ...body, metadata: { ...((body.metadata as KubeObjectMeta | undefined) ?? {}) } } as KubeObject;
}

interface ParsedPath {
  group: string;
  version: string;
  watchPrefix: boolean;
  namespace: string | undefined;
  plural: string;
  name: string | undefined;
  sub: string | undefined;
}

export function startFakeKube(options: FakeKubeOptions = {}): Promise<FakeKube> {
  return (async () => {
    // Loaded here rather than at module level so that importing @sluice/testkit for the other fakes
    // does not load the (large) Kubernetes client.
    const { KubeConfig: KubeConfigClass } = await import('@kubernetes/client-node');
    const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    const maxHistory = Math.max(1, options.maxHistory ?? 10_000);
    const token = options.token ?? 'fake-kube-token';

    let globalRv = 1;
    const resources = new Map<string, Resource>(); // group/version/plural
    const byKind = new Map<string, Resource>(); // apiVersion/kind
    const tokenReviews = new Map<string, TokenReviewResult>();
    const requests: FakeKubeRequest[] = [];

    const register = (spec: ResourceSpec): Resource => {
      const key = `${spec.group}/${spec.version}/${spec.plural}`;
      const existing = resources.get(key);
      if (existing) byKind.delete(`${existing.apiVersion}/${existing.spec.kind}`);
      const resource: Resource = {
        spec: { ...spec },
        apiVersion: apiVersionOf(spec.group, spec.version),
        qualified: spec.group === '' ? spec.plural : `${spec.plural}.${spec.group}`,
        statusSubresource: spec.statusSubresource ?? !(spec.group === '' && spec.plural === 'secrets'),
        builtin: spec.group === '' || spec.group.endsWith('.k8s.io'),
        objects: existing?.objects ?? new Map(),
        history: existing?.history ?? [],
        compactedRv: existing?.compactedRv ?? 0,
        watchers: existing?.watchers ?? new Set(),
      };
      resources.set(key, resource);
      byKind.set(`${resource.apiVersion}/${spec.kind}`, resource);
      return resource;
    };
    for (const spec of [...DEFAULT_FAKE_KUBE_RESOURCES, ...(options.resources ?? [])]) register(spec);

    const resourceByKind = (apiVersion: string, kind: string): Resource | undefined => byKind.get(`${apiVersion}/${kind}`);

    const selectResources = (apiVersion?: string, kind?: string): Resource[] =>
      [...resources.values()].filter(
        (r) => (apiVersion === undefined || r.apiVersion === apiVersion) && (kind === undefined || r.spec.kind === kind),
      );

    const notFound = (r: Resource, name: string): StatusError =>
      new StatusError(404, 'NotFound', `${r.qualified} "${name}" not found`, {
        name,
        group: r.spec.group,
        kind: r.spec.plural,
      });

    const conflict = (r: Resource, name: string, why: string): StatusError =>
      new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${r.qualified} "${name}": ${why}`, {
        name,
        group: r.spec.group,
        kind: r.spec.plural,
      });

    // ---- watch plumbing ----

    const writeEvent = (w: Watcher, type: string, object: unknown): void => {
      if (w.res.writableEnded || w.res.destroyed) return;
      w.res.write(`${JSON.stringify({ type, object })}\n`);
    };

    const unregisterWatcher = (w: Watcher): void => {
      for (const t of w.timers) clearTimeout(t);
      w.timers.length = 0;
      w.resource.watchers.delete(w);
    };

    const endWatcher = (w: Watcher): void => {
      unregisterWatcher(w);
      if (!w.res.writableEnded) w.res.end();
    };

    /** Translate a stored event for one watcher (namespace + selectors), like the apiserver's watch cache. */
    const deliver = (w: Watcher, ev: HistoryEvent): void => {
      const visible = (o: KubeObject | undefined): boolean =>
        o !== undefined && (w.namespace === undefined || o.metadata.namespace === w.namespace) && w.matches(o);
      if (ev.type !== 'MODIFIED') {
        if (visible(ev.object)) writeEvent(w, ev.type, ev.object);
        return;
      }
      const before = visible(ev.prev);
      const after = visible(ev.object);
      if (before && after) writeEvent(w, 'MODIFIED', ev.object);
      else if (after) writeEvent(w, 'ADDED', ev.object);
      else if (before) writeEvent(w, 'DELETED', ev.object);
    };

    const record = (r: Resource, ev: HistoryEvent): void => {
      r.history.push(ev);
      if (r.history.length > maxHistory) {
        const dropped = r.history.splice(0, r.history.length - maxHistory);
        const last = dropped[dropped.length - 1];
        if (last) r.compactedRv = last.rv;
      }
      for (const w of [...r.watchers]) deliver(w, ev);
    };

    // ---- storage primitives (all writes go through these) ----

    const commitCreate = (r: Resource, obj: KubeObject): KubeObject => {
      const rv = ++globalRv;
      const stored: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
      r.objects.set(objectKey(stored.metadata.namespace, stored.metadata.name ?? ''), stored);
      record(r, { rv, type: 'ADDED', object: stored });
      return stored;
    };

    const commitDelete = (r: Resource, prev: KubeObject): KubeObject => {
      const rv = ++globalRv;
      const last: KubeObject = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } };
      r.objects.delete(objectKey(prev.metadata.namespace, prev.metadata.name ?? ''));
      record(r, { rv, type: 'DELETED', object: last });
      return last;
    };

    /** Store `next` over `prev`; deletes instead when it is terminating and has no finalizers left. */
    const commitUpdate = (r: Resource, prev: KubeObject, next: KubeObject): KubeObject => {
      if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
        return commitDelete(r, next);
      }
      const rv = ++globalRv;
      const stored: KubeObject = { ...next, metadata: { ...next.metadata, resourceVersion: String(rv) } };
      r.objects.set(objectKey(stored.metadata.namespace, stored.metadata.name ?? ''), stored);
      record(r, { rv, type: 'MODIFIED', object: stored, prev });
      return stored;
    };

    /**
     * Build the next state of `existing` from `incoming` (server-owned metadata kept).
     * mode 'main': status kept when there is a status subresource; 'status': only status taken;
     * 'apply': everything taken, status kept when `incoming` has none.
     */
    const prepareUpdate = (r: Resource, existing: KubeObject, incoming: KubeObject, mode: 'main' | 'status' | 'apply'): KubeObject => {
      let next: KubeObject;
      if (mode === 'status') {
        next = clone(existing);
        if (incoming.status === undefined) delete next.status;
        else next.status = clone(incoming.status);
      } else {
        next = clone(incoming);
        const keepStatus = mode === 'main' ? r.statusSubresource : incoming.status === undefined;
        if (keepStatus) {
          if (existing.status === undefined) delete next.status;
          else next.status = clone(existing.status);
        }
      }
      next.apiVersion = r.apiVersion;
      next.kind = r.spec.kind;
      const meta: KubeObjectMeta = { ...next.metadata };
      meta.name = existing.metadata.name;
      if (r.spec.namespaced) meta.namespace = existing.metadata.namespace;
      else delete meta.namespace;
      meta.uid = existing.metadata.uid;
      meta.creationTimestamp = existing.metadata.creationTimestamp;
      meta.resourceVersion = existing.metadata.resourceVersion;
      if (mode !== 'apply') {
        if (existing.metadata.deletionTimestamp === undefined) delete meta.deletionTimestamp;
        else meta.deletionTimestamp = existing.metadata.deletionTimestamp;
      }
      const generation = existing.metadata.generation ?? 1;
      meta.generation = mode !== 'status' && specChanged(existing, next) ? generation + 1 : generation;
      next.metadata = meta;
      return next;
    };

    const prepareCreate = (r: Resource, incoming: KubeObject, namespace: string | undefined, fromApi: boolean): KubeObject => {
      const obj = clone(incoming);
      const meta: KubeObjectMeta = { ...obj.metadata };
      if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomSuffix()}`;
      if (!meta.name) {
        throw new StatusError(422, 'Invalid', `${r.spec.kind} "" is invalid: metadata.name: Required value: name or generateName is required`, {
          group: r.spec.group,
          kind: r.spec.kind,
        });
      }
      if (fromApi && (meta.name.length > 253 || !NAME_RE.test(meta.name))) {
        throw new StatusError(
          422,
          'Invalid',
          `${r.spec.kind} "${meta.name}" is invalid: metadata.name: Invalid value: "${meta.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
          { name: meta.name, group: r.spec.group, kind: r.spec.kind },
        );
      }
      if (r.spec.namespaced) meta.namespace = namespace ?? 'default';
      else delete meta.namespace;
      meta.uid = randomUUID();
      meta.creationTimestamp = nowTimestamp();
      meta.generation = 1;
      delete meta.resourceVersion;
      if (fromApi) delete meta.deletionTimestamp;
      obj.metadata = meta;
      obj.apiVersion = r.apiVersion;
      obj.kind = r.spec.kind;
      if (fromApi && r.statusSubresource) delete obj.status;
      return obj;
    };

    // ---- helper API ----

    const helperResource = (apiVersion: string, kind: string): Resource | undefined => resourceByKind(apiVersion, kind);

    const apply = (input: KubeObject): KubeObject => {
      if (!input || typeof input.apiVersion !== 'string' || typeof input.kind !== 'string' || !isObject(input.metadata)) {
        throw new TypeError('apply: the object needs apiVersion, kind and metadata');
      }
      let r = resourceByKind(input.apiVersion, input.kind);
      if (!r) {
        const { group, version } = splitApiVersion(input.apiVersion);
        r = register({ group, version, plural: naivePlural(input.kind), kind: input.kind, namespaced: input.metadata.namespace !== undefined });
      }
      const name = input.metadata.name;
      if (!name) throw new TypeError('apply: metadata.name is required');
      const namespace = r.spec.namespaced ? (input.metadata.namespace ?? 'default') : undefined;
      const existing = r.objects.get(objectKey(namespace, name));
      if (!existing) return clone(commitCreate(r, prepareCreate(r, input, namespace, false)));
      const next = prepareUpdate(r, existing, input, 'apply');
      const rv = ++globalRv;
      const stored: KubeObject = { ...next, metadata: { ...next.metadata, resourceVersion: String(rv) } };
      r.objects.set(objectKey(namespace, name), stored);
      record(r, { rv, type: 'MODIFIED', object: stored, prev: existing });
      return clone(stored);
    };

    // ---- REST handlers ----

    const parsePath = (pathname: string): ParsedPath | undefined => {
      let segs: string[];
      try {
        segs = pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
      } catch {
        return undefined;
      }
      let group: string;
      let version: string;
      let rest: string[];
      if (segs[0] === 'api' && segs.length >= 3) {
        group = '';
        version = segs[1] ?? '';
        rest = segs.slice(2);
      } else if (segs[0] === 'apis' && segs.length >= 4) {
        group = segs[1] ?? '';
        version = segs[2] ?? '';
        rest = segs.slice(3);
      } else {
        return undefined;
      }
      let watchPrefix = false;
      if (rest[0] === 'watch') {
        watchPrefix = true;
        rest = rest.slice(1);
      }
      let namespace: string | undefined;
      const nsIsResource = resources.has(`${group}/${version}/namespaces`);
      if (rest[0] === 'namespaces' && rest.length >= 3 && !(nsIsResource && (rest[2] === 'status' || rest[2] === 'finalize'))) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
      if (rest.length < 1 || rest.length > 3) return undefined;
      return { group, version, watchPrefix, namespace, plural: rest[0] ?? '', name: rest[1], sub: rest[2] };
    };

    const listItems = (r: Resource, namespace: string | undefined, matches: (o: KubeObject) => boolean): KubeObject[] =>
      [...r.objects.values()]
        .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && matches(o))
        .sort(compareObjects);

    const handleList = (r: Resource, namespace: string | undefined, q: URLSearchParams, res: ServerResponse): void => {
      const matches = compileSelectors(q.get('labelSelector'), q.get('fieldSelector'));
      let items = listItems(r, namespace, matches);
      const metadata: JsonObject = { resourceVersion: String(globalRv) };
      const cont = q.get('continue');
      if (cont) {
        let after: string;
        try {
          const decoded = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as unknown;
          if (!isObject(decoded) || typeof decoded.after !== 'string') throw new Error('bad token');
          after = decoded.after;
        } catch {
          throw new StatusError(400, 'BadRequest', 'invalid continue token');
        }
        items = items.filter((o) => objectKey(o.metadata.namespace, o.metadata.name ?? '') > after);
      }
      const limit = Number(q.get('limit') ?? '0');
      if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
        const last = items[limit - 1];
        metadata.remainingItemCount = items.length - limit;
        items = items.slice(0, limit);
        if (last) {
          const after = objectKey(last.metadata.namespace, last.metadata.name ?? '');
          metadata.continue = Buffer.from(JSON.stringify({ after }), 'utf8').toString('base64url');
        }
      }
      sendJson(res, 200, {
        kind: `${r.spec.kind}List`,
        apiVersion: r.apiVersion,
        metadata,
        items: items.map((o) => {
          if (!r.builtin) return o;
          const { apiVersion: _a, kind: _k, ...rest } = o;
          return rest;
        }),
      });
    };

    const handleWatch = (
      r: Resource,
      namespace: string | undefined,
      name: string | undefined,
      q: URLSearchParams,
      req: IncomingMessage,
      res: ServerResponse,
    ): void => {
      const selectorMatches = compileSelectors(q.get('labelSelector'), q.get('fieldSelector'));
      const matches = name === undefined ? selectorMatches : (o: KubeObject) => o.metadata.name === name && selectorMatches(o);
      const rvParam = q.get('resourceVersion') ?? '';
      if (rvParam !== '' && !/^\d+$/.test(rvParam)) {
        throw new StatusError(400, 'BadRequest', `invalid resourceVersion: ${JSON.stringify(rvParam)}`);
      }
      const timeoutSeconds = Number(q.get('timeoutSeconds') ?? '0');
      const sendInitialEvents = q.get('sendInitialEvents') === 'true';
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
      res.flushHeaders();
      const w: Watcher = { resource: r, namespace, matches, res, timers: [] };
      const from = rvParam === '' ? 0 : Number(rvParam);
      if (rvParam !== '' && rvParam !== '0' && from < r.compactedRv && !sendInitialEvents) {
        writeEvent(
          w,
          'ERROR',
          statusBody(410, 'Expired', `too old resource version: ${from} (${r.compactedRv})`),
        );
        res.end();
        return;
      }
      if (rvParam === '' || rvParam === '0' || sendInitialEvents) {
        // "Get state and start at most recent": synthetic ADDED events for the current state.
        for (const o of listItems(r, namespace, matches)) writeEvent(w, 'ADDED', o);
        if (sendInitialEvents) {
          writeEvent(w, 'BOOKMARK', {
            kind: r.spec.kind,
            apiVersion: r.apiVersion,
            metadata: { resourceVersion: String(globalRv), annotations: { 'k8s.io/initial-events-end': 'true' } },
          });
        }
      } else {
        for (const ev of r.history) if (ev.rv > from) deliver(w, ev);
      }
      r.watchers.add(w);
      if (q.get('allowWatchBookmarks') === 'true' && bookmarkIntervalMs > 0) {
        w.timers.push(
          setInterval(() => {
            writeEvent(w, 'BOOKMARK', { kind: r.spec.kind, apiVersion: r.apiVersion, metadata: { resourceVersion: String(globalRv) } });
          }, bookmarkIntervalMs),
        );
      }
      if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
        w.timers.push(setTimeout(() => endWatcher(w), timeoutSeconds * 1000));
      }
      res.on('close', () => unregisterWatcher(w));
    };

    const checkPreconditions = (r: Resource, existing: KubeObject, rv: unknown, uid: unknown): void => {
      const name = existing.metadata.name ?? '';
      if (typeof uid === 'string' && uid !== '' && uid !== existing.metadata.uid) {
        throw conflict(r, name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
      }
      if (typeof rv === 'string' && rv !== '' && rv !== existing.metadata.resourceVersion) {
        throw conflict(r, name, 'the object has been modified; please apply your changes to the latest version and try again');
      }
    };

    /** Write an update unless it is a no-op (like the apiserver: no new resourceVersion, no event). */
    const writeUpdate = (r: Resource, existing: KubeObject, next: KubeObject): KubeObject => {
      const comparable = (o: KubeObject): KubeObject => ({ ...o, metadata: { ...o.metadata, resourceVersion: '' } });
      if (deepEqual(comparable(existing), comparable(next))) return existing;
      return commitUpdate(r, existing, next);
    };

    const checkBodyIdentity = (r: Resource, body: KubeObject, name: string, namespace: string | undefined): void => {
      if (body.metadata.name !== undefined && body.metadata.name !== name) {
        throw new StatusError(400, 'BadRequest', `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
      }
      if (r.spec.namespaced && body.metadata.namespace !== undefined && body.metadata.namespace !== '' && body.metadata.namespace !== namespace) {
        throw new StatusError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      if (body.kind !== undefined && body.kind !== r.spec.kind) {
        throw new StatusError(400, 'BadRequest', `the kind of the object (${String(body.kind)}) does not match the resource (${r.spec.kind})`);
      }
    };

    const applyPatch = (existing: KubeObject, contentType: string, text: string): KubeObject => {
      const patch = parseJson(text);
      let out: unknown;
      switch (contentType) {
        case 'application/json-patch+json':
          out = jsonPatch(existing, patch);
          break;
        case 'application/merge-patch+json':
          out = mergePatch(existing, patch, false);
          break;
        case 'application/strategic-merge-patch+json':
        case 'application/apply-patch+yaml':
          out = mergePatch(existing, patch, true);
          break;
        default:
          throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml`);
      }
      return asKubeObject(out);
    };

    const handleResource = async (
      p: ParsedPath,
      method: string,
      q: URLSearchParams,
      req: IncomingMessage,
      res: ServerResponse,
    ): Promise<void> => {
      const r = resources.get(`${p.group}/${p.version}/${p.plural}`);
      if (!r) throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
      if (!r.spec.namespaced && p.namespace !== undefined) {
        throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
      }
      const isWatch = p.watchPrefix || q.get('watch') === 'true' || q.get('watch') === '1';
      const namespace = p.namespace;
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';

      if (p.name === undefined) {
        if (method === 'GET') {
          if (isWatch) handleWatch(r, namespace, undefined, q, req, res);
          else handleList(r, namespace, q, res);
          return;
        }
        if (r.spec.namespaced && namespace === undefined) {
          throw new StatusError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
        }
        if (method === 'POST') {
          const body = asKubeObject(parseJson(await readBody(req)));
          if (r.spec.namespaced && body.metadata.namespace && body.metadata.namespace !== namespace) {
            throw new StatusError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
          }
          const obj = prepareCreate(r, body, namespace, true);
          const name = obj.metadata.name ?? '';
          if (r.objects.has(objectKey(obj.metadata.namespace, name))) {
            throw new StatusError(409, 'AlreadyExists', `${r.qualified} "${name}" already exists`, {
              name,
              group: r.spec.group,
              kind: r.spec.plural,
            });
          }
          if (q.get('dryRun') === 'All') sendJson(res, 201, obj);
          else sendJson(res, 201, commitCreate(r, obj));
          return;
        }
        if (method === 'DELETE') {
          // deletecollection
          const matches = compileSelectors(q.get('labelSelector'), q.get('fieldSelector'));
          const deleted = listItems(r, namespace, matches).map((o) => commitDelete(r, o));
          sendJson(res, 200, { kind: `${r.spec.kind}List`, apiVersion: r.apiVersion, metadata: { resourceVersion: String(globalRv) }, items: deleted });
          return;
        }
        throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      }

      if (r.spec.namespaced && namespace === undefined) {
        throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
      }
      const name = p.name;
      if (p.sub !== undefined && !(p.sub === 'status' && r.statusSubresource)) {
        throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
      }
      const isStatus = p.sub === 'status';
      const key = objectKey(namespace, name);
      const dryRun = q.get('dryRun') === 'All';

      if (method === 'GET') {
        if (isWatch && !isStatus) {
          handleWatch(r, namespace, name, q, req, res);
          return;
        }
        const obj = r.objects.get(key);
        if (!obj) throw notFound(r, name);
        sendJson(res, 200, obj);
        return;
      }

      if (method === 'PUT') {
        const body = asKubeObject(parseJson(await readBody(req)));
        checkBodyIdentity(r, body, name, namespace);
        const existing = r.objects.get(key);
        if (!existing) throw notFound(r, name);
        if (!r.builtin && !body.metadata.resourceVersion) {
          // Custom resources do not allow unconditional updates.
          throw new StatusError(422, 'Invalid', `${r.spec.kind} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`, {
            name,
            group: r.spec.group,
            kind: r.spec.kind,
          });
        }
        checkPreconditions(r, existing, body.metadata.resourceVersion, body.metadata.uid);
        const next = prepareUpdate(r, existing, body, isStatus ? 'status' : 'main');
        sendJson(res, 200, dryRun ? next : writeUpdate(r, existing, next));
        return;
      }

      if (method === 'PATCH') {
        const text = await readBody(req);
        let existing = r.objects.get(key);
        if (!existing) {
          if (contentType !== 'application/apply-patch+yaml' || isStatus) throw notFound(r, name);
          const body = asKubeObject(mergePatch({}, parseJson(text), true));
          checkBodyIdentity(r, body, name, namespace);
          const obj = prepareCreate(r, { ...body, metadata: { ...body.metadata, name } }, namespace, true);
          sendJson(res, 201, dryRun ? obj : commitCreate(r, obj));
          return;
        }
        const patched = applyPatch(existing, contentType, text);
        checkBodyIdentity(r, patched, name, namespace);
        checkPreconditions(r, existing, patched.metadata.resourceVersion, patched.metadata.uid);
        const next = prepareUpdate(r, existing, patched, isStatus ? 'status' : 'main');
        if (!dryRun) existing = writeUpdate(r, existing, next);
        sendJson(res, 200, dryRun ? next : existing);
        return;
      }

      if (method === 'DELETE' && !isStatus) {
        const text = await readBody(req);
        const existing = r.objects.get(key);
        if (!existing) throw notFound(r, name);
        const opts = text.trim() === '' ? {} : parseJson(text);
        const pre: JsonObject = isObject(opts) && isObject(opts.preconditions) ? opts.preconditions : {};
        checkPreconditions(r, existing, pre.resourceVersion, pre.uid);
        if (dryRun) {
          sendJson(res, 200, existing);
          return;
        }
        if ((existing.metadata.finalizers ?? []).length > 0) {
          if (existing.metadata.deletionTimestamp) {
            sendJson(res, 200, existing);
            return;
          }
          const next = clone(existing);
          next.metadata.deletionTimestamp = nowTimestamp();
          next.metadata.deletionGracePeriodSeconds = 0;
          next.metadata.generation = (existing.metadata.generation ?? 1) + 1;
          sendJson(res, 200, commitUpdate(r, existing, next));
          return;
        }
        sendJson(res, 200, commitDelete(r, existing));
        return;
      }

      throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    };

    const handleTokenReview = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const body = parseJson(await readBody(req));
      const spec = isObject(body) && isObject(body.spec) ? body.spec : {};
      const reviewToken = typeof spec.token === 'string' ? spec.token : '';
      const requested = Array.isArray(spec.audiences) ? spec.audiences.filter((a): a is string => typeof a === 'string') : [];
      const result = tokenReviews.get(reviewToken);
      let status: JsonObject;
      if (!result) {
        status = { authenticated: false, user: {}, error: 'invalid bearer token' };
      } else {
        const audiences = result.audiences ?? requested;
        const audienceOk = requested.length === 0 || requested.some((a) => audiences.includes(a));
        if (!audienceOk) {
          status = { authenticated: false, user: {}, error: 'token audiences are invalid for the requested audiences' };
        } else {
          status = {
            authenticated: result.authenticated,
            user: clone(result.user ?? {}),
            ...(requested.length > 0 || result.audiences ? { audiences: requested.length > 0 ? requested.filter((a) => audiences.includes(a)) : audiences } : {}),
            ...(result.error !== undefined ? { error: result.error } : {}),
          };
        }
      }
      sendJson(res, 201, {
        kind: 'TokenReview',
        apiVersion: TOKEN_REVIEW_GV,
        metadata: { creationTimestamp: null },
        spec: clone(spec),
        status,
      });
    };

    const groupVersions = (): Map<string, Resource[]> => {
      const out = new Map<string, Resource[]>();
      for (const r of resources.values()) {
        const list = out.get(r.apiVersion) ?? [];
        list.push(r);
        out.set(r.apiVersion, list);
      }
      return out;
    };

    const handleDiscovery = (pathname: string, res: ServerResponse): boolean => {
      const segs = pathname.split('/').filter((s) => s !== '');
      const gvs = groupVersions();
      if (segs.length === 1 && segs[0] === 'api') {
        sendJson(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
        return true;
      }
      if (segs.length === 1 && segs[0] === 'apis') {
        const groups = new Map<string, string[]>();
        for (const r of resources.values()) {
          if (r.spec.group === '') continue;
          const versions = groups.get(r.spec.group) ?? [];
          if (!versions.includes(r.spec.version)) versions.push(r.spec.version);
          groups.set(r.spec.group, versions);
        }
        if (!groups.has('authentication.k8s.io')) groups.set('authentication.k8s.io', ['v1']);
        sendJson(res, 200, {
          kind: 'APIGroupList',
          apiVersion: 'v1',
          groups: [...groups].map(([name, versions]) => ({
            name,
            versions: versions.map((version) => ({ groupVersion: `${name}/${version}`, version })),
            preferredVersion: { groupVersion: `${name}/${versions[0] ?? ''}`, version: versions[0] ?? '' },
          })),
        });
        return true;
      }
      let gv: string | undefined;
      if (segs.length === 2 && segs[0] === 'api') gv = segs[1];
      else if (segs.length === 3 && segs[0] === 'apis') gv = `${segs[1] ?? ''}/${segs[2] ?? ''}`;
      if (gv === undefined) return false;
      const list = gvs.get(gv) ?? [];
      const apiResources: JsonObject[] = [];
      for (const r of list) {
        apiResources.push({
          name: r.spec.plural,
          singularName: r.spec.kind.toLowerCase(),
          namespaced: r.spec.namespaced,
          kind: r.spec.kind,
          verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
        });
        if (r.statusSubresource) {
          apiResources.push({ name: `${r.spec.plural}/status`, singularName: '', namespaced: r.spec.namespaced, kind: r.spec.kind, verbs: ['get', 'patch', 'update'] });
        }
      }
      if (gv === TOKEN_REVIEW_GV) {
        apiResources.push({ name: 'tokenreviews', singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create'] });
      }
      if (apiResources.length === 0) return false;
      sendJson(res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources: apiResources });
      return true;
    };

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const method = (req.method ?? 'GET').toUpperCase();
      const url = new URL(req.url ?? '/', 'http://fake-kube');
      const ct = req.headers['content-type'];
      requests.push({ method, path: url.pathname, query: url.search, ...(ct ? { contentType: ct } : {}) });
      if (requests.length > MAX_REQUEST_LOG) requests.splice(0, requests.length - MAX_REQUEST_LOG);
      const pathname = url.pathname.replace(/\/+$/, '') || '/';

      if (method === 'GET' && (pathname === '/healthz' || pathname === '/livez' || pathname === '/readyz')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
        return;
      }
      if (method === 'GET' && pathname === '/version') {
        sendJson(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-sluice-fake', platform: 'linux/amd64' });
        return;
      }
      if (pathname === `/apis/${TOKEN_REVIEW_GV}/tokenreviews`) {
        if (method !== 'POST') throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        await handleTokenReview(req, res);
        return;
      }
      if (method === 'GET' && handleDiscovery(pathname, res)) return;
      const parsed = parsePath(pathname);
      if (!parsed) throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
      await handleResource(parsed, method, url.searchParams, req, res);
    };

    const server: Server = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        const e =
          err instanceof StatusError ? err : new StatusError(500, 'InternalError', `internal error: ${err instanceof Error ? err.message : String(err)}`);
        if (res.headersSent) {
          // Inside a watch stream: report as an ERROR event, then end.
          if (!res.writableEnded && !res.destroyed) {
            res.end(`${JSON.stringify({ type: 'ERROR', object: statusBody(e.code, e.reason, e.message, e.details) })}\n`);
          }
          return;
        }
        sendJson(res, e.code, statusBody(e.code, e.reason, e.message, e.details));
      });
    });

    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    const url = `http://127.0.0.1:${port}`;

    const allWatchers = (apiVersion?: string, kind?: string): Watcher[] => selectResources(apiVersion, kind).flatMap((r) => [...r.watchers]);

    const fake: FakeKube = {
      url,
      port,
      get resourceVersion() {
        return String(globalRv);
      },
      get openWatches() {
        return allWatchers().length;
      },
      requests,
      kubeConfig() {
        const kc = new KubeConfigClass();
        kc.loadFromOptions({
          clusters: [{ name: 'fake-kube', server: url, skipTLSVerify: true }],
          users: [{ name: 'fake-kube-user', token }],
          contexts: [{ name: 'fake-kube', cluster: 'fake-kube', user: 'fake-kube-user', namespace: 'default' }],
          currentContext: 'fake-kube',
        });
        return kc;
      },
      apply,
      delete(apiVersion, kind, namespace, name) {
        const r = helperResource(apiVersion, kind);
        if (!r) return false;
        const existing = r.objects.get(objectKey(r.spec.namespaced ? (namespace ?? 'default') : undefined, name));
        if (!existing) return false;
        commitDelete(r, existing);
        return true;
      },
      get(apiVersion, kind, namespace, name) {
        const r = helperResource(apiVersion, kind);
        const obj = r?.objects.get(objectKey(r.spec.namespaced ? (namespace ?? 'default') : undefined, name));
        return obj ? clone(obj) : undefined;
      },
      list(apiVersion, kind, namespace) {
        const r = helperResource(apiVersion, kind);
        if (!r) return [];
        return listItems(r, namespace, () => true).map((o) => clone(o));
      },
      expireWatches(apiVersion, kind) {
        const selected = selectResources(apiVersion, kind);
        // A fresh revision so that every resourceVersion handed out so far is older than the compaction point.
        globalRv++;
        for (const r of selected) {
          r.history = [];
          r.compactedRv = globalRv;
          for (const w of [...r.watchers]) {
            writeEvent(w, 'ERROR', statusBody(410, 'Expired', `too old resource version: the watch cache was compacted at ${globalRv}`));
            endWatcher(w);
          }
        }
      },
      dropWatches(apiVersion, kind) {
        for (const w of allWatchers(apiVersion, kind)) {
          unregisterWatcher(w);
          w.res.socket?.destroy();
          w.res.destroy();
        }
      },
      endWatches(apiVersion, kind) {
        for (const w of allWatchers(apiVersion, kind)) endWatcher(w);
      },
      setTokenReview(reviewToken, result) {
        if (result === undefined) tokenReviews.delete(reviewToken);
        else tokenReviews.set(reviewToken, clone(result));
      },
      async close() {
        for (const w of allWatchers()) {
          unregisterWatcher(w);
          w.res.destroy();
        }
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      },
    };
    return fake;
  })();
}
