import { providerSpec } from '@sluice/providers';
import { API_VERSION, KINDS, type AnyPolicyObject, type Kind } from './types.js';

/** One problem in one object: which object, where in it, and why. */
export interface PolicyIssue {
  /** `Kind namespace/name` (or the file and index when the object has no identity yet). */
  readonly object: string;
  /** Field path, e.g. `spec.rules[0].backends[1].name`. */
  readonly path: string;
  readonly message: string;
}

export function formatIssue(i: PolicyIssue): string {
  return `${i.object}: ${i.path}: ${i.message}`;
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const MODEL_PATTERN = /^[\w.:/@*+-]{1,200}$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  readonly issues: PolicyIssue[] = [];
  constructor(readonly object: string) {}
  fail(path: string, message: string): void {
    this.issues.push({ object: this.object, path, message });
  }
  obj(v: unknown, path: string, required = true): Obj | undefined {
    if (v === undefined && !required) return undefined;
    if (!isObj(v)) {
      this.fail(path, v === undefined ? 'is required' : 'must be an object');
      return undefined;
    }
    return v;
  }
  str(v: unknown, path: string, opts: { required?: boolean; pattern?: RegExp; what?: string } = {}): string | undefined {
    if (v === undefined && opts.required === false) return undefined;
    if (typeof v !== 'string' || v.length === 0) {
      this.fail(path, v === undefined ? 'is required' : 'must be a non-empty string');
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      this.fail(path, `${JSON.stringify(v)} is not a valid ${opts.what ?? 'value'}`);
      return undefined;
    }
    return v;
  }
  arr(v: unknown, path: string, opts: { required?: boolean; min?: number } = {}): unknown[] | undefined {
    if (v === undefined && opts.required === false) return undefined;
    if (!Array.isArray(v)) {
      this.fail(path, v === undefined ? 'is required' : 'must be a list');
      return undefined;
    }
    if (opts.min !== undefined && v.length < opts.min) {
      this.fail(path, `must have at least ${opts.min} item${opts.min === 1 ? '' : 's'}`);
      return undefined;
    }
    return v;
  }
  int(v: unknown, path: string, min: number, max: number): void {
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) this.fail(path, `must be an integer from ${min} to ${max}`);
  }
  unknownKeys(o: Obj, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) this.fail(`${path}.${k}`, 'is not a known field');
  }
}

function objectName(o: Obj, fallback: string): string {
  const kind = typeof o['kind'] === 'string' ? o['kind'] : 'object';
  const meta = isObj(o['metadata']) ? o['metadata'] : {};
  const name = typeof meta['name'] === 'string' ? meta['name'] : undefined;
  const ns = typeof meta['namespace'] === 'string' ? meta['namespace'] : 'default';
  return name === undefined ? `${kind} ${fallback}` : `${kind} ${ns}/${name}`;
}

function checkBackend(c: Checker, spec: Obj): void {
  c.unknownKeys(spec, 'spec', ['provider', 'endpoint', 'auth', 'models', 'timeouts']);
  const provider = c.str(spec['provider'], 'spec.provider');
  const known = provider === undefined ? undefined : providerSpec(provider);
  if (provider !== undefined && known === undefined) c.fail('spec.provider', `unknown provider ${JSON.stringify(provider)}`);
  const endpoint = c.str(spec['endpoint'], 'spec.endpoint', { required: false });
  if (endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      c.fail('spec.endpoint', `${JSON.stringify(endpoint)} is not a URL`);
    }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') c.fail('spec.endpoint', 'must be an http or https URL');
  } else if (known !== undefined && known.baseUrl === undefined) {
    c.fail('spec.endpoint', `is required for provider ${known.id}`);
  }
  const auth = c.obj(spec['auth'], 'spec.auth', false);
  if (auth) {
    c.unknownKeys(auth, 'spec.auth', ['secretRef', 'env']);
    const ref = c.obj(auth['secretRef'], 'spec.auth.secretRef', false);
    if (ref) {
      c.str(ref['name'], 'spec.auth.secretRef.name', { pattern: NAME, what: 'Secret name' });
      c.str(ref['key'], 'spec.auth.secretRef.key');
    }
    c.str(auth['env'], 'spec.auth.env', { required: false, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, what: 'environment variable name' });
  }
  const models = c.arr(spec['models'], 'spec.models', { required: false });
  models?.forEach((m, i) => {
    const p = `spec.models[${i}]`;
    const mo = c.obj(m, p);
    if (!mo) return;
    c.unknownKeys(mo, p, ['id', 'aliases', 'pricing']);
    c.str(mo['id'], `${p}.id`, { pattern: MODEL_PATTERN, what: 'model id' });
    c.arr(mo['aliases'], `${p}.aliases`, { required: false })?.forEach((a, j) => c.str(a, `${p}.aliases[${j}]`, { pattern: MODEL_PATTERN, what: 'alias' }));
    const pr = c.obj(mo['pricing'], `${p}.pricing`, false);
    if (pr) {
      const fields = ['input', 'cachedInput', 'cacheWrite', 'output', 'reasoning'];
      c.unknownKeys(pr, `${p}.pricing`, fields);
      for (const f of fields) c.int(pr[f], `${p}.pricing.${f}`, 0, 1_000_000_000_000);
    }
  });
  const t = c.obj(spec['timeouts'], 'spec.timeouts', false);
  if (t) {
    c.unknownKeys(t, 'spec.timeouts', ['connectMs', 'firstByteMs', 'idleMs']);
    for (const f of ['connectMs', 'firstByteMs', 'idleMs']) c.int(t[f], `spec.timeouts.${f}`, 1, 3_600_000);
  }
}

function checkRoute(c: Checker, spec: Obj): void {
  c.unknownKeys(spec, 'spec', ['rules']);
  c.arr(spec['rules'], 'spec.rules', { min: 1 })?.forEach((r, i) => {
    const p = `spec.rules[${i}]`;
    const ro = c.obj(r, p);
    if (!ro) return;
    c.unknownKeys(ro, p, ['match', 'backends']);
    const match = c.obj(ro['match'], `${p}.match`);
    if (match) {
      c.unknownKeys(match, `${p}.match`, ['models']);
      c.arr(match['models'], `${p}.match.models`, { min: 1 })?.forEach((m, j) =>
        c.str(m, `${p}.match.models[${j}]`, { pattern: MODEL_PATTERN, what: 'model name or pattern' }),
      );
    }
    c.arr(ro['backends'], `${p}.backends`, { min: 1 })?.forEach((b, j) => {
      const bp = `${p}.backends[${j}]`;
      const bo = c.obj(b, bp);
      if (!bo) return;
      c.unknownKeys(bo, bp, ['name', 'modelOverride']);
      c.str(bo['name'], `${bp}.name`, { pattern: NAME, what: 'LLMBackend name' });
      c.str(bo['modelOverride'], `${bp}.modelOverride`, { required: false, pattern: MODEL_PATTERN, what: 'model id' });
    });
  });
}

/**
 * Structural validation of one object. Returns the typed object, or the issues that stop it. Checks
 * that span objects (a route naming a missing backend) are done by `compile()`.
 */
export function validateObject(input: unknown, where: string): { object?: AnyPolicyObject; issues: PolicyIssue[] } {
  if (!isObj(input)) return { issues: [{ object: `object ${where}`, path: '(root)', message: 'must be a YAML/JSON object' }] };
  const c = new Checker(objectName(input, where));
  if (input['apiVersion'] !== API_VERSION) c.fail('apiVersion', `must be ${API_VERSION}`);
  const kind = input['kind'];
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    c.fail('kind', `must be one of ${KINDS.join(', ')}`);
    return { issues: c.issues };
  }
  const meta = c.obj(input['metadata'], 'metadata');
  if (meta) {
    c.str(meta['name'], 'metadata.name', { pattern: NAME, what: 'name' });
    c.str(meta['namespace'], 'metadata.namespace', { required: false, pattern: NAME, what: 'namespace' });
  }
  const spec = c.obj(input['spec'], 'spec');
  if (spec) {
    if ((kind as Kind) === 'LLMBackend') checkBackend(c, spec);
    else checkRoute(c, spec);
  }
  return c.issues.length > 0 ? { issues: c.issues } : { object: input as unknown as AnyPolicyObject, issues: [] };
}
