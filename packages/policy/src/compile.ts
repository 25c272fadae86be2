import { createHash } from 'node:crypto';
import { bundledPrice, providerSpec, type ModelPrice } from '@sluice/providers';
import type { AnyPolicyObject, LLMBackend, LLMRoute, ModelPricing } from './types.js';
import type { Snapshot, SnapshotBackend, SnapshotRule } from './snapshot.js';
import { validateObject, type PolicyIssue } from './validate.js';

export interface CompileOptions {
  /** Resolves a backend's credential; undefined = not available (the backend sends no key). */
  readonly resolveSecret: (namespace: string, auth: NonNullable<LLMBackend['spec']['auth']>) => string | undefined;
}

export interface CompileResult {
  readonly snapshot: Snapshot;
  /** Problems found; objects with problems are left out of the snapshot, the rest still compiles. */
  readonly issues: readonly PolicyIssue[];
}

export const DEFAULT_TIMEOUTS = Object.freeze({ connectMs: 10_000, firstByteMs: 600_000, idleMs: 300_000 });

const nsOf = (o: AnyPolicyObject): string => o.metadata.namespace ?? 'default';
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

function compileBackend(b: LLMBackend, opts: CompileOptions): SnapshotBackend {
  const spec = providerSpec(b.spec.provider);
  if (spec === undefined) throw new Error('validated provider missing'); // unreachable after validation
  const key = b.spec.auth === undefined ? undefined : opts.resolveSecret(nsOf(b), b.spec.auth);
  const prices: Record<string, ModelPrice> = {};
  const models: string[] = [];
  const aliases: Record<string, string> = {};
  for (const m of b.spec.models ?? []) {
    models.push(m.id);
    for (const a of m.aliases ?? []) aliases[a] = m.id;
    if (m.pricing !== undefined) prices[m.id] = fullPrice(spec.priceFamily, m.id, m.pricing);
  }
  return {
    id: idOf(b),
    provider: spec.id,
    schema: spec.schema,
    baseUrl: (b.spec.endpoint ?? spec.baseUrl ?? '').replace(/\/+$/, ''),
    authHeader: key === undefined ? '' : spec.authHeader,
    authValue: key === undefined ? '' : spec.authPrefix + key,
    headers: { ...spec.headers },
    paths: { ...spec.paths },
    maxTokensField: spec.maxTokensField,
    priceFamily: spec.priceFamily,
    prices,
    models,
    aliases,
    timeouts: { ...DEFAULT_TIMEOUTS, ...b.spec.timeouts },
  };
}

/**
 * Pure and deterministic: the same objects (in any order) and secrets give the same snapshot and
 * version. Objects that fail validation, and routes naming unknown backends, are reported and left
 * out; everything else is served.
 */
export function compile(inputs: readonly { object: unknown; where: string }[], opts: CompileOptions): CompileResult {
  const issues: PolicyIssue[] = [];
  const objects: AnyPolicyObject[] = [];
  const seen = new Set<string>();
  for (const { object, where } of inputs) {
    const r = validateObject(object, where);
    issues.push(...r.issues);
    if (r.object === undefined) continue;
    const key = `${r.object.kind} ${idOf(r.object)}`;
    if (seen.has(key)) {
      issues.push({ object: key, path: 'metadata.name', message: `defined more than once (again in ${where})` });
      continue;
    }
    seen.add(key);
    objects.push(r.object);
  }
  const byId = (a: AnyPolicyObject, b: AnyPolicyObject): number => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0);
  const backends = objects.filter((o): o is LLMBackend => o.kind === 'LLMBackend').sort(byId).map((b) => compileBackend(b, opts));
  const backendIds = new Set(backends.map((b) => b.id));
  const rules: SnapshotRule[] = [];
  for (const route of objects.filter((o): o is LLMRoute => o.kind === 'LLMRoute').sort(byId)) {
    const ns = nsOf(route);
    const routeIssues: PolicyIssue[] = [];
    route.spec.rules.forEach((rule, i) => {
      rule.backends.forEach((ref, j) => {
        if (!backendIds.has(`${ns}/${ref.name}`)) {
          routeIssues.push({ object: `LLMRoute ${idOf(route)}`, path: `spec.rules[${i}].backends[${j}].name`, message: `no LLMBackend ${JSON.stringify(ref.name)} in namespace ${ns}` });
        }
      });
    });
    if (routeIssues.length > 0) {
      issues.push(...routeIssues);
      continue;
    }
    route.spec.rules.forEach((rule, i) => {
      rules.push({
        route: `${idOf(route)}#${i}`,
        exact: rule.match.models.filter((m) => !m.includes('*')),
        patterns: rule.match.models.filter((m) => m.includes('*')),
        targets: rule.backends.map((ref) => ({ backend: `${ns}/${ref.name}`, modelOverride: ref.modelOverride })),
      });
    });
  }
  const body = { backends, rules };
  const version = createHash('sha256').update(canonicalJson(body)).digest('hex').slice(0, 16);
  return { snapshot: { version, ...body }, issues };
}
