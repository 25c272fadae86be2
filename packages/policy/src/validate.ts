import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { KINDS, API_VERSION, type AnyPolicyObject, type Kind } from './types.js';
import { providerSpec } from '@sluice/providers';
import { objectSchema } from './schemas.js';

/** Stable codes of policy problems (in issues, CRD status and NACKs). */
export type PolicyIssueCode =
  | 'SLUICE_ERR_POLICY_YAML'
  | 'SLUICE_ERR_POLICY_SCHEMA'
  | 'SLUICE_ERR_POLICY_DUPLICATE'
  | 'SLUICE_ERR_POLICY_REFERENCE'
  | 'SLUICE_ERR_POLICY_SECRET'
  | 'SLUICE_ERR_POLICY_REJECTED';

/** One problem in one object: which object, where in it, and why. */
export interface PolicyIssue {
  /** `Kind namespace/name` (or `document file#index` when the object has no identity). */
  readonly object: string;
  /** Field path, e.g. `spec.rules[0].backends[1].name`. */
  readonly path: string;
  readonly message: string;
  readonly code: PolicyIssueCode;
}

export function formatIssue(i: PolicyIssue): string {
  return `${i.object}: ${i.path}: ${i.message}`;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

let validators: Map<Kind, ValidateFunction> | undefined;

/** Compiled once per process, on first use (never per request or per object). */
function validatorFor(kind: Kind): ValidateFunction {
  if (validators === undefined) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    validators = new Map(KINDS.map((k) => [k, ajv.compile(objectSchema(k))]));
  }
  return validators.get(kind) as ValidateFunction;
}

/** `/spec/rules/0/backends` → `spec.rules[0].backends`. */
function jsonPointerToPath(pointer: string): string {
  if (pointer === '') return '(root)';
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc === '' ? seg : `${acc}.${seg}`), '');
}

function describe(e: ErrorObject): { path: string; message: string } {
  const base = jsonPointerToPath(e.instancePath);
  const join = (child: string): string => (base === '(root)' ? child : `${base}.${child}`);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: join(String(p['missingProperty'])), message: 'is required' };
    case 'additionalProperties':
      return { path: join(String(p['additionalProperty'])), message: 'is not a known field' };
    case 'enum':
      return { path: base, message: `must be one of ${(p['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { path: base, message: `must be ${JSON.stringify(p['allowedValue'])}` };
    case 'pattern':
      return { path: base, message: `does not match ${String(p['pattern'])}` };
    default:
      return { path: base, message: e.message ?? 'is invalid' };
  }
}

function identity(input: Record<string, unknown>, where: string): string {
  const kind = typeof input['kind'] === 'string' ? input['kind'] : 'object';
  const meta = isObj(input['metadata']) ? input['metadata'] : {};
  const name = typeof meta['name'] === 'string' ? meta['name'] : undefined;
  const ns = typeof meta['namespace'] === 'string' ? meta['namespace'] : 'default';
  return name === undefined ? `${kind} ${where}` : `${kind} ${ns}/${name}`;
}

/**
 * Structural validation of one object against its kind's schema. Returns the typed object, or every
 * problem found (all of them, not just the first). Checks that span objects (a route naming a missing
 * backend) are done by `compilePolicy()`.
 */
export function validateObject(input: unknown, where: string): { object?: AnyPolicyObject; issues: PolicyIssue[] } {
  if (!isObj(input)) return { issues: [{ object: `document ${where}`, path: '(root)', message: 'must be a YAML/JSON object', code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
  const object = identity(input, where);
  const kind = input['kind'];
  if (input['apiVersion'] !== API_VERSION) {
    return { issues: [{ object, path: 'apiVersion', message: `must be ${API_VERSION}`, code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
  }
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    return { issues: [{ object, path: 'kind', message: `must be one of ${KINDS.join(', ')}`, code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
  }
  const validate = validatorFor(kind as Kind);
  if (validate(input)) {
    // A provider without a public endpoint (a self-hosted or per-tenant server) needs one.
    const spec = input['spec'] as { provider?: string; endpoint?: string; vertex?: unknown };
    const azure = (spec as { azure?: { auth?: string; entra?: unknown } }).azure;
    if (kind === 'LLMBackend' && azure?.auth === 'entra' && azure.entra === undefined) {
      return { issues: [{ object, path: 'spec.azure.entra', message: 'is required with auth: entra (tenantId and clientId)', code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
    }
    if (kind === 'LLMBackend' && spec.provider === 'bedrock' && (spec as { bedrock?: unknown }).bedrock === undefined) {
      return { issues: [{ object, path: 'spec.bedrock', message: 'is required for provider bedrock (region)', code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
    }
    if (kind === 'LLMBackend' && spec.provider === 'vertex-ai' && spec.vertex === undefined) {
      return { issues: [{ object, path: 'spec.vertex', message: 'is required for provider vertex-ai (project and location)', code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
    }
    if (kind === 'LLMBackend' && spec.endpoint === undefined && providerSpec(spec.provider ?? '')?.baseUrl === undefined) {
      return { issues: [{ object, path: 'spec.endpoint', message: `is required for provider ${spec.provider ?? ''} (it has no public endpoint)`, code: 'SLUICE_ERR_POLICY_SCHEMA' }] };
    }
    return { object: input as unknown as AnyPolicyObject, issues: [] };
  }
  const seen = new Set<string>();
  const issues: PolicyIssue[] = [];
  for (const e of validate.errors ?? []) {
    const d = describe(e);
    const k = `${d.path}\u0000${d.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    issues.push({ object, path: d.path, message: d.message, code: 'SLUICE_ERR_POLICY_SCHEMA' });
  }
  return { issues };
}
