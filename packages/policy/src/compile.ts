import { createHash } from 'node:crypto';
import { bundledPrice, providerSpec, type ModelPrice } from '@sluice/providers';
import {
  objectKey,
  type AnyPolicyObject,
  type LLMBackend,
  type LLMCache,
  type LLMGuardrail,
  type LLMLimit,
  type LLMRoute,
  type ModelPricing,
  type WorkloadSelector,
} from './types.js';
import type { Snapshot, SnapshotBackend, SnapshotCache, SnapshotGuardrail, SnapshotLimit, SnapshotRule } from './snapshot.js';
import { validateObject, type PolicyIssue } from './validate.js';

/** Objects in this namespace apply to workloads of every namespace (like Istio's root namespace). */
export const DEFAULT_ROOT_NAMESPACE = 'sluice-system';
export const DEFAULT_TIMEOUTS = Object.freeze({ connectMs: 10_000, firstByteMs: 600_000, idleMs: 300_000 });

export interface CompileOptions {
  /** Resolves a backend's credential; undefined = not available. */
  readonly resolveSecret: (namespace: string, auth: NonNullable<LLMBackend['spec']['auth']>) => string | undefined;
  readonly rootNamespace?: string;
}

/** The identity a snapshot is scoped to: one pod's namespace, service account and labels. */
export interface Workload {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The accepted objects of a policy and the problems found. */
export interface PolicySet {
  /** Valid objects by `objectKey`, including the last good version of objects whose new version is invalid. */
  readonly objects: ReadonlyMap<string, AnyPolicyObject>;
  readonly issues: readonly PolicyIssue[];
  /** Keys of objects serving an older, last good version because the current one is invalid. */
  readonly stale: ReadonlySet<string>;
  readonly rootNamespace: string;
}

const nsOf = (o: { metadata: { namespace?: string } }): string => o.metadata.namespace ?? 'default';
const idOf = (o: AnyPolicyObject): string => `${nsOf(o)}/${o.metadata.name}`;

/** JSON with object keys sorted, so equal content always hashes equal. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export function contentHash(v: unknown): string {
  return createHash('sha256').update(canonicalJson(v)).digest('hex').slice(0, 16);
}

/** Whether a provider preset serves any model API a route can send requests to. */
function servesModels(provider: string): boolean {
  const paths = providerSpec(provider)?.paths;
  return paths === undefined || ['chat', 'messages', 'responses', 'embeddings', 'generate', 'converse'].some((k) => k in paths);
}

/** Backend lookup for an object in `ns`: its own namespace first, then the root namespace. */
function findBackend(objects: ReadonlyMap<string, AnyPolicyObject>, ns: string, name: string, root: string): LLMBackend | undefined {
  const own = objects.get(`LLMBackend ${ns}/${name}`);
  if (own !== undefined) return own as LLMBackend;
  const shared = objects.get(`LLMBackend ${root}/${name}`);
  return shared as LLMBackend | undefined;
}

function referenceIssues(o: AnyPolicyObject, objects: ReadonlyMap<string, AnyPolicyObject>, root: string): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const ns = nsOf(o);
  const missing = (path: string, name: string): void => {
    issues.push({ object: objectKey(o), path, message: `no LLMBackend ${JSON.stringify(name)} in namespace ${ns}${ns === root ? '' : ` or ${root}`}`, code: 'SLUICE_ERR_POLICY_REFERENCE' });
  };
  if (o.kind === 'LLMRoute') {
    o.spec.rules.forEach((rule, i) =>
      rule.backends.forEach((ref, j) => {
        const b = findBackend(objects, ns, ref.name, root);
        if (b === undefined) missing(`spec.rules[${i}].backends[${j}].name`, ref.name);
        else if (!servesModels(b.spec.provider)) {
          issues.push({ object: objectKey(o), path: `spec.rules[${i}].backends[${j}].name`, message: `LLMBackend ${JSON.stringify(ref.name)} (provider ${b.spec.provider}) serves no model API: it can only be a guardrail classifier`, code: 'SLUICE_ERR_POLICY_REFERENCE' });
        }
      }),
    );
  } else if (o.kind === 'LLMCache' && o.spec.semantic !== undefined) {
    if (findBackend(objects, ns, o.spec.semantic.backend, root) === undefined) missing('spec.semantic.backend', o.spec.semantic.backend);
  } else if (o.kind === 'LLMGuardrail') {
    const s = o.spec;
    if ((s.detectors === undefined || s.detectors.length === 0) && s.classifier === undefined) {
      issues.push({ object: objectKey(o), path: 'spec', message: 'needs detectors, a classifier, or both', code: 'SLUICE_ERR_POLICY_SCHEMA' });
    }
    if (s.classifier !== undefined) {
      if (findBackend(objects, ns, s.classifier.backend, root) === undefined) missing('spec.classifier.backend', s.classifier.backend);
      if (s.action === 'redact' && (s.detectors === undefined || s.detectors.length === 0)) {
        issues.push({ object: objectKey(o), path: 'spec.action', message: 'a classifier gives a verdict, not spans to redact: use block or log (or add detectors to redact)', code: 'SLUICE_ERR_POLICY_SCHEMA' });
      }
    }
  } else if (o.kind === 'LLMLimit') {
    (o.spec.key ?? []).forEach((k, i) => {
      if ((k.source === 'label' || k.source === 'header') && (k.name === undefined || k.name === '')) {
        issues.push({ object: objectKey(o), path: `spec.key[${i}].name`, message: `is required for source ${k.source}`, code: 'SLUICE_ERR_POLICY_SCHEMA' });
      }
    });
  }
  return issues;
}

/**
 * Validates every object and resolves references between them. Pure and deterministic. An object
 * whose new version is invalid keeps serving its last good version from `previous` (and is reported);
 * one that was never valid is left out. Objects referring to a missing backend are treated the same.
 */
export function compilePolicy(inputs: readonly { object: unknown; where: string }[], opts: { rootNamespace?: string }, previous?: PolicySet): PolicySet {
  const root = opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const issues: PolicyIssue[] = [];
  const valid = new Map<string, AnyPolicyObject>();
  const invalidKeys = new Set<string>();
  for (const { object, where } of inputs) {
    const r = validateObject(object, where);
    issues.push(...r.issues);
    if (r.object === undefined) {
      const meta = (object as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null) ?? {};
      if (typeof meta.kind === 'string' && typeof meta.metadata?.name === 'string') {
        invalidKeys.add(objectKey({ kind: meta.kind, metadata: { name: meta.metadata.name, namespace: typeof meta.metadata.namespace === 'string' ? meta.metadata.namespace : undefined } }));
      }
      continue;
    }
    const key = objectKey(r.object);
    if (valid.has(key)) {
      issues.push({ object: key, path: 'metadata.name', message: `defined more than once (again in ${where})`, code: 'SLUICE_ERR_POLICY_DUPLICATE' });
      continue;
    }
    valid.set(key, r.object);
  }
  const stale = new Set<string>();
  // Last good version of objects whose current version fails validation.
  for (const key of invalidKeys) {
    const old = previous?.objects.get(key);
    if (old !== undefined && !valid.has(key)) {
      valid.set(key, old);
      stale.add(key);
    }
  }
  // Reference checks, iterated because dropping a backend can break routes that named it.
  const accepted = new Map(valid);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [key, o] of accepted) {
      const problems = referenceIssues(o, accepted, root);
      if (problems.length === 0) continue;
      const old = previous?.objects.get(key);
      if (old !== undefined && old !== o && referenceIssues(old, accepted, root).length === 0) {
        accepted.set(key, old);
        stale.add(key);
      } else {
        accepted.delete(key);
      }
      issues.push(...problems);
      changed = true;
    }
  }
  const sorted = new Map([...accepted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { objects: sorted, issues: dedupe(issues), stale, rootNamespace: root };
}

function dedupe(issues: PolicyIssue[]): PolicyIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.object}\u0000${i.path}\u0000${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function selects(sel: WorkloadSelector | undefined, w: Workload): boolean {
  if (sel === undefined) return true;
  if (sel.serviceAccounts !== undefined && sel.serviceAccounts.length > 0 && !sel.serviceAccounts.includes(w.serviceAccount)) return false;
  for (const [k, v] of Object.entries(sel.labels ?? {})) if (w.labels[k] !== v) return false;
  return true;
}

/** Objects of `set` that apply to workload `w`: its namespace's first, then the root namespace's. */
export function selectFor(set: PolicySet, w: Workload): AnyPolicyObject[] {
  const own: AnyPolicyObject[] = [];
  const shared: AnyPolicyObject[] = [];
  for (const o of set.objects.values()) {
    if (o.kind === 'LLMBackend') continue;
    const ns = nsOf(o);
    if (ns !== w.namespace && ns !== set.rootNamespace) continue;
    if (!selects((o.spec as { workloadSelector?: WorkloadSelector }).workloadSelector, w)) continue;
    (ns === w.namespace ? own : shared).push(o);
  }
  return [...own, ...shared];
}

function fullPrice(family: string, model: string, override: ModelPricing): ModelPrice {
  const base = bundledPrice(family, model);
  const input = override.input ?? base?.input ?? 0;
  const output = override.output ?? base?.output ?? 0;
  return {
    input,
    cachedInput: override.cachedInput ?? base?.cachedInput ?? input,
    cacheWrite: override.cacheWrite ?? base?.cacheWrite ?? input,
    output,
    reasoning: override.reasoning ?? base?.reasoning ?? output,
  };
}

/** Vertex AI's host for a location (`global` has no regional prefix). */
function vertexHost(base: string | undefined, location: string | undefined): string | undefined {
  if (base === undefined || !base.includes('{location}')) return base;
  return location === 'global' || location === undefined ? base.replace('{location}-', '') : base.replace('{location}', location);
}

/** Azure OpenAI's GA data-plane api-version used when the backend sets none. */
const AZURE_API_VERSION = '2024-10-21';

function compileBackend(b: LLMBackend, opts: CompileOptions, issues: PolicyIssue[]): SnapshotBackend {
  const spec = providerSpec(b.spec.provider);
  if (spec === undefined) throw new Error(`validated provider ${b.spec.provider} missing from the provider table`);
  let key: string | undefined;
  if (b.spec.auth !== undefined) {
    key = opts.resolveSecret(nsOf(b), b.spec.auth);
    if (key === undefined) {
      const what = b.spec.auth.secretRef ? `Secret ${nsOf(b)}/${b.spec.auth.secretRef.name} key ${b.spec.auth.secretRef.key}` : `environment variable ${b.spec.auth.env ?? ''}`;
      issues.push({ object: objectKey(b), path: 'spec.auth', message: `${what} not found; requests go without a key`, code: 'SLUICE_ERR_POLICY_SECRET' });
    }
  }
  const bearer = b.spec.azure?.auth === 'bearer';
  const br = b.spec.bedrock;
  // IRSA: no Secret, a role to assume with the pod's web identity token.
  const irsa = spec.id === 'bedrock' && key === undefined && br?.roleArn !== undefined ? { webIdentity: { roleArn: br.roleArn, tokenFile: br.webIdentityTokenFile ?? '/var/run/secrets/eks.amazonaws.com/serviceaccount/token', stsEndpoint: br.stsEndpoint ?? `https://sts.${br.region}.amazonaws.com` } } : undefined;
  const e = b.spec.azure?.auth === 'entra' ? b.spec.azure.entra : undefined;
  const entra = e === undefined ? undefined : { tenantId: e.tenantId, clientId: e.clientId, authorityHost: (e.authorityHost ?? 'https://login.microsoftonline.com').replace(/\/+$/u, ''), federatedTokenFile: e.federatedTokenFile ?? '' };
  const prices: Record<string, ModelPrice> = {};
  const models: string[] = [];
  const aliases: Record<string, string> = {};
  const capabilities: Record<string, { contextWindow: number; tools: string; vision: string; json: string }> = {};
  for (const m of b.spec.models ?? []) {
    models.push(m.id);
    for (const a of m.aliases ?? []) aliases[a] = m.id;
    if (m.pricing !== undefined) prices[m.id] = fullPrice(spec.priceFamily, m.id, m.pricing);
    const c = m.capabilities;
    if (c !== undefined) {
      const yn = (v: boolean | undefined): string => (v === undefined ? '' : v ? 'yes' : 'no');
      capabilities[m.id] = { contextWindow: c.contextWindow ?? 0, tools: yn(c.tools), vision: yn(c.vision), json: yn(c.json) };
    }
  }
  return {
    id: idOf(b),
    provider: spec.id,
    schema: spec.schema,
    baseUrl: (b.spec.endpoint ?? vertexHost(spec.baseUrl, b.spec.vertex?.location)?.replace('{region}', b.spec.bedrock?.region ?? '') ?? '').replace(/\/+$/, '').replace(/\/v1$/, ''),
    authHeader: entra !== undefined ? 'authorization' : key === undefined ? '' : bearer ? 'authorization' : spec.authHeader,
    authValue: entra !== undefined ? JSON.stringify({ ...entra, clientSecret: key ?? '' }) : irsa !== undefined ? JSON.stringify(irsa) : key === undefined ? '' : bearer ? `Bearer ${key}` : spec.authPrefix + key,
    // Credentials the sidecar signs or exchanges rather than sends: a GCP service-account key, AWS keys
    // (region after the slash), an Entra ID app registration (authValue: its JSON).
    // Vertex AI without a Secret: Google application default credentials (GKE workload identity, the metadata server).
    authType: entra !== undefined ? 'azure-entra' : irsa !== undefined ? `aws-sigv4/${br?.region ?? ''}` : key === undefined ? (spec.id === 'vertex-ai' ? 'gcp-adc' : '') : spec.id === 'vertex-ai' ? 'gcp-service-account' : spec.id === 'bedrock' ? `aws-sigv4/${b.spec.bedrock?.region ?? ''}` : '',
    headers: { ...spec.headers },
    // `{apiVersion}` (Azure), `{project}` and `{location}` (Vertex) are the backend's; `{model}` is filled per request.
    paths: Object.fromEntries(
      Object.entries(spec.paths).map(([k, v]) => [
        k,
        v
          .replace('{apiVersion}', encodeURIComponent(b.spec.azure?.apiVersion ?? AZURE_API_VERSION))
          .replace('{project}', encodeURIComponent(b.spec.vertex?.project ?? ''))
          .replace('{location}', encodeURIComponent(b.spec.vertex?.location ?? '')),
      ]),
    ),
    maxTokensField: spec.maxTokensField,
    priceFamily: spec.priceFamily,
    prices,
    models,
    aliases,
    capabilities,
    timeouts: { ...DEFAULT_TIMEOUTS, ...b.spec.timeouts },
  };
}

const routeIds = (o: AnyPolicyObject, names: readonly string[] | undefined): string[] => (names ?? []).map((n) => `${nsOf(o)}/${n}`);

/**
 * The snapshot of one workload: the routes, limits, caches and guardrails that select it, and only
 * the backends (with their credentials) those reference. Pure; the version is the content hash.
 */
export function snapshotFor(set: PolicySet, w: Workload, opts: CompileOptions): { snapshot: Snapshot; issues: PolicyIssue[] } {
  const selected = selectFor(set, w);
  return buildSnapshot(set, selected, opts);
}

/** Snapshot of an explicit selection (see `selectFor`). */
export function buildSnapshot(set: PolicySet, selected: readonly AnyPolicyObject[], opts: CompileOptions): { snapshot: Snapshot; issues: PolicyIssue[] } {
  const issues: PolicyIssue[] = [];
  const backendObjs = new Map<string, LLMBackend>();
  const useBackend = (from: AnyPolicyObject, name: string): string => {
    const b = findBackend(set.objects, nsOf(from), name, set.rootNamespace);
    if (b === undefined) throw new Error(`unresolved backend ${name} survived compilePolicy`);
    backendObjs.set(idOf(b), b);
    return idOf(b);
  };
  const rules: SnapshotRule[] = [];
  const limits: SnapshotLimit[] = [];
  const caches: SnapshotCache[] = [];
  const guardrails: SnapshotGuardrail[] = [];
  for (const o of selected) {
    switch (o.kind) {
      case 'LLMRoute':
        (o as LLMRoute).spec.rules.forEach((rule, i) => {
          rules.push({
            route: `${idOf(o)}#${i}`,
            exact: rule.match.models.filter((m) => !m.includes('*')),
            patterns: rule.match.models.filter((m) => m.includes('*')),
            targets: rule.backends.map((ref) =>
              ref.modelOverride === undefined ? { backend: useBackend(o, ref.name), weight: ref.weight ?? 1 } : { backend: useBackend(o, ref.name), modelOverride: ref.modelOverride, weight: ref.weight ?? 1 },
            ),
            strategy: rule.strategy ?? 'ordered',
            fallback: rule.fallback ?? true,
            retryAttempts: rule.retry?.attempts ?? 3,
            retryBackoffMs: rule.retry?.backoffMs ?? 250,
            retryMaxBackoffMs: rule.retry?.maxBackoffMs ?? 10_000,
            maxTokens: rule.maxTokens ?? 0,
            firstTokenTimeoutMs: rule.timeouts?.firstTokenMs ?? 0,
            idleTimeoutMs: rule.timeouts?.idleMs ?? 0,
            totalTimeoutMs: rule.timeouts?.totalMs ?? 0,
            maxTotalTimeoutMs: rule.timeouts?.maxTotalMs ?? rule.timeouts?.totalMs ?? 600_000,
            shadow:
              rule.shadow === undefined
                ? { backend: '', weight: 0 }
                : rule.shadow.modelOverride === undefined
                  ? { backend: useBackend(o, rule.shadow.backend), weight: 0 }
                  : { backend: useBackend(o, rule.shadow.backend), modelOverride: rule.shadow.modelOverride, weight: 0 },
            shadowPercent: rule.shadow?.percent ?? 0,
            coalesce: rule.coalesce ?? false,
            batchMode: rule.batch?.mode ?? 'off',
            batchWindowMs: rule.batch?.windowMs ?? 60_000,
            batchMaxRequests: rule.batch?.maxRequests ?? 1000,
            batchPollMs: rule.batch?.pollMs ?? 30_000,
            batchHoldMs: rule.batch?.holdMs ?? 600_000,
            logPrompts: rule.logging?.prompts ?? false,
            logCompletions: rule.logging?.completions ?? false,
            logMaxChars: rule.logging?.maxChars ?? 4096,
          });
        });
        break;
      case 'LLMLimit': {
        const s = (o as LLMLimit).spec;
        limits.push({
          id: idOf(o),
          unit: s.unit,
          window: s.window,
          calendarAligned: s.calendarAligned ?? false,
          timeZone: s.timeZone ?? 'UTC',
          max: s.max,
          key: (s.key ?? []).map((k) => ({ source: k.source, name: k.name ?? '' })),
          scope: s.scope ?? 'global',
          failureMode: s.failureMode ?? 'FailClosed',
          mode: s.mode ?? 'enforce',
          clampMaxTokens: s.clampMaxTokens ?? false,
          routes: routeIds(o, s.match?.routes),
          models: [...(s.match?.models ?? [])],
        });
        break;
      }
      case 'LLMCache': {
        const s = (o as LLMCache).spec;
        caches.push({
          id: idOf(o),
          exact: s.exact ?? true,
          semantic: s.semantic !== undefined,
          embeddingBackend: s.semantic === undefined ? '' : useBackend(o, s.semantic.backend),
          embeddingModel: s.semantic?.model ?? '',
          similarityThresholdMilli: s.semantic === undefined ? 0 : Math.round(s.semantic.threshold * 1000),
          ttlSeconds: s.ttlSeconds ?? 3600,
          keyVersion: s.keyVersion ?? '1',
          isolation: s.isolation ?? 'namespace',
          cacheNonDeterministic: s.cacheNonDeterministic ?? false,
          shared: s.shared ?? true,
          semanticEmbed: s.semantic?.embed ?? 'lastUserTurn',
          promptCaching: s.promptCaching?.enabled ?? false,
          promptCachingMinTokens: s.promptCaching?.minPrefixTokens ?? 1024,
          routes: routeIds(o, s.match?.routes),
          models: [...(s.match?.models ?? [])],
        });
        break;
      }
      case 'LLMGuardrail': {
        const s = (o as LLMGuardrail).spec;
        guardrails.push({
          id: idOf(o),
          direction: s.direction,
          action: s.action,
          detectors: (s.detectors ?? []).map((d) => ({ kind: d.kind, values: [...(d.values ?? [])], name: d.name ?? '' })),
          routes: routeIds(o, s.match?.routes),
          classifierBackend: s.classifier === undefined ? '' : useBackend(o, s.classifier.backend),
          classifierModel: s.classifier?.model ?? '',
          classifierFormat: s.classifier?.format ?? 'openaiModeration',
          classifierCategories: [...(s.classifier?.categories ?? [])],
          classifierThresholdMilli: s.classifier?.threshold === undefined ? 0 : Math.max(1, Math.round(s.classifier.threshold * 1000)),
          classifierTimeoutMs: s.classifier?.timeoutMs ?? 2000,
          classifierFailClosed: s.classifier?.onError === 'block',
          classifierMaxChars: s.classifier?.maxChars ?? 32_000,
          classifierStreamCheckChars: s.classifier?.streamCheckChars ?? 0,
        });
        break;
      }
      case 'LLMBackend':
        break;
    }
  }
  const backends = [...backendObjs.values()].sort((a, b) => (idOf(a) < idOf(b) ? -1 : 1)).map((b) => compileBackend(b, opts, issues));
  const body = { backends, rules, limits, caches, guardrails };
  return { snapshot: { version: contentHash(body), ...body }, issues };
}

/**
 * One-shot compile of a whole policy for the one workload `w` (tests, `sluice validate`).
 */
export function compile(inputs: readonly { object: unknown; where: string }[], opts: CompileOptions, w: Workload = { namespace: 'default', serviceAccount: 'default', labels: {} }): { snapshot: Snapshot; issues: PolicyIssue[] } {
  const set = compilePolicy(inputs, opts);
  const r = snapshotFor(set, w, opts);
  return { snapshot: r.snapshot, issues: [...set.issues, ...r.issues] };
}
