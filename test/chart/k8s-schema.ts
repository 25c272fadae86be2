/**
 * Offline validation of rendered manifests against the Kubernetes API types.
 *
 * There is no offline schema validator at hand (`helm template --validate`, `kubectl --dry-run`
 * and `kubectl --validate` all need an API server), but `@kubernetes/client-node` (already installed
 * for the control plane) ships every built-in API type generated from the Kubernetes OpenAPI
 * document: each model class lists its fields with their JSON names and types
 * (`attributeTypeMap`), and its declaration file marks the fields the OpenAPI document requires
 * (`'name': string` vs `'image'?: string`). Walking an object against those models finds unknown
 * or misspelt fields, wrong value types (a quoted port, a list where an object belongs) and missing
 * required fields. It does not check formats or value ranges; the chart test checks those it cares
 * about (names, ports, references between objects).
 */
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Attribute {
  readonly name: string;
  readonly baseName: string;
  readonly type: string;
  readonly format: string;
}
interface ModelClass {
  getAttributeTypeMap(): Attribute[];
}

/** The model class of each built-in `apiVersion kind` the chart renders. */
export const BUILTIN_MODELS: Readonly<Record<string, string>> = {
  'v1 Service': 'V1Service',
  'v1 ServiceAccount': 'V1ServiceAccount',
  'v1 Secret': 'V1Secret',
  'apps/v1 Deployment': 'V1Deployment',
  'policy/v1 PodDisruptionBudget': 'V1PodDisruptionBudget',
  'rbac.authorization.k8s.io/v1 ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1 ClusterRoleBinding': 'V1ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1 Role': 'V1Role',
  'rbac.authorization.k8s.io/v1 RoleBinding': 'V1RoleBinding',
  'admissionregistration.k8s.io/v1 MutatingWebhookConfiguration': 'V1MutatingWebhookConfiguration',
  'apiextensions.k8s.io/v1 CustomResourceDefinition': 'V1CustomResourceDefinition',
};

const MODELS_DIR = join(dirname(fileURLToPath(import.meta.resolve('@kubernetes/client-node'))), 'gen', 'models');
const models = k8s as unknown as Record<string, ModelClass | undefined>;
const requiredCache = new Map<string, Set<string>>();

function modelClass(name: string): ModelClass | undefined {
  const c = models[name];
  return c !== undefined && typeof c.getAttributeTypeMap === 'function' ? c : undefined;
}

/** JSON names of the fields the OpenAPI document marks required (read from the model's .d.ts). */
function requiredFields(name: string, attrs: Attribute[]): Set<string> {
  let r = requiredCache.get(name);
  if (r === undefined) {
    const dts = readFileSync(join(MODELS_DIR, `${name}.d.ts`), 'utf8');
    const tsNames = new Set([...dts.matchAll(/^\s+'([^']+)':/gm)].map((m) => m[1] ?? ''));
    r = new Set(attrs.filter((a) => tsNames.has(a.name)).map((a) => a.baseName));
    requiredCache.set(name, r);
  }
  return r;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function check(value: unknown, type: string, format: string, path: string, problems: string[]): void {
  const bad = (what: string): void => void problems.push(`${path}: ${what}, got ${JSON.stringify(value)?.slice(0, 80)}`);
  if (type === 'any' || type === 'object') return;
  if (type === 'string' || type === 'Date') {
    if (typeof value !== 'string') bad(`expected a ${type === 'Date' ? 'date string' : 'string'}`);
    return;
  }
  if (type === 'number') {
    if (typeof value !== 'number') bad('expected a number');
    else if ((format === 'int32' || format === 'int64') && !Number.isInteger(value)) bad(`expected an ${format}`);
    return;
  }
  if (type === 'boolean') {
    if (typeof value !== 'boolean') bad('expected a boolean');
    return;
  }
  if (type === 'IntOrString') {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) bad('expected an integer or a string');
    return;
  }
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return bad('expected a list');
    value.forEach((v, i) => check(v, array[1] ?? 'any', '', `${path}[${i}]`, problems));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (!isPlainObject(value)) return bad('expected a map');
    for (const [k, v] of Object.entries(value)) check(v, map[1] ?? 'any', '', `${path}.${k}`, problems);
    return;
  }
  const cls = modelClass(type);
  if (cls === undefined) {
    problems.push(`${path}: no model for type ${type} (validator out of date)`);
    return;
  }
  if (!isPlainObject(value)) return bad(`expected an object (${type})`);
  const attrs = cls.getAttributeTypeMap();
  const byJson = new Map(attrs.map((a) => [a.baseName, a]));
  for (const [k, v] of Object.entries(value)) {
    const a = byJson.get(k);
    if (a === undefined) problems.push(`${path}.${k}: unknown field of ${type}`);
    else if (v !== null) check(v, a.type, a.format, `${path}.${k}`, problems);
  }
  for (const r of requiredFields(type, attrs)) if (value[r] === undefined || value[r] === null) problems.push(`${path}.${r}: required by ${type}`);
}

/**
 * Problems of one built-in object against its Kubernetes model (empty = valid), or undefined when
 * `apiVersion kind` is not a built-in type the validator knows.
 */
export function validateBuiltin(obj: Record<string, unknown>): string[] | undefined {
  const model = BUILTIN_MODELS[`${String(obj['apiVersion'])} ${String(obj['kind'])}`];
  if (model === undefined) return undefined;
  const problems: string[] = [];
  check(obj, model, '', String(obj['kind']), problems);
  return problems;
}
