/**
 * The CustomResourceDefinitions (apiextensions.k8s.io/v1) of the five policy kinds, built from the
 * same JSON schemas that validate policy (`SPEC_SCHEMAS`), so a field is defined once.
 * `scripts/gen-crds.mjs` writes them into the Helm chart (`charts/sluice/crds/`), and
 * `npm run gen:check` fails when the committed files differ.
 *
 * Kubernetes wants a *structural* schema: every node has a `type`, `properties` and
 * `additionalProperties` never meet, no `const`. The policy schemas are close to that; the
 * differences are translated here:
 *  - `additionalProperties: false` is dropped: Kubernetes prunes unknown fields instead of
 *    rejecting them (the control plane still rejects them with its own validation, so the object
 *    gets an `Accepted=False` condition). Schema-valued `additionalProperties` (string maps) stay.
 *  - `const: x` becomes `enum: [x]`.
 *  - `status` (written by the control plane) is an object whose fields are kept as written
 *    (`x-kubernetes-preserve-unknown-fields`).
 */
import { SPEC_SCHEMAS } from './schemas.js';
import { API_GROUP, API_VERSION, KINDS, type Kind } from './types.js';

/** A JSON schema node (the subset the policy schemas use). */
export type JsonSchema = Record<string, unknown>;

export interface CrdNames {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: string[];
}

export interface CrdPrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: { openAPIV3Schema: JsonSchema };
  subresources: { status: Record<string, never> };
  additionalPrinterColumns: CrdPrinterColumn[];
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: CrdNames;
    scope: 'Namespaced';
    versions: CrdVersion[];
  };
}

/** `v1alpha1` */
export const CRD_VERSION = API_VERSION.slice(API_VERSION.indexOf('/') + 1);

/** kubectl short names: `kubectl get llmr`. */
const SHORT_NAMES: Readonly<Record<Kind, string>> = {
  LLMBackend: 'llmb',
  LLMRoute: 'llmr',
  LLMLimit: 'llml',
  LLMCache: 'llmc',
  LLMGuardrail: 'llmg',
};

const DESCRIPTIONS: Readonly<Record<Kind, string>> = {
  LLMBackend: 'An LLM provider endpoint (OpenAI, Anthropic or OpenAI-compatible), its credential, models, prices and timeouts.',
  LLMRoute: 'Which backend serves which requested model, for the workloads the route selects.',
  LLMLimit: 'A request, token or dollar limit per window, local to a sidecar or global.',
  LLMCache: 'Exact and semantic response caching.',
  LLMGuardrail: 'Detectors (PII, secrets, prompt injection, deny lists, patterns) and what to do on a finding.',
};

/** The CRD plural of a kind: lower case plus `s` (`llmroutes`). */
export function pluralOf(kind: Kind): string {
  return `${kind.toLowerCase()}s`;
}

/** `llmroutes.sluice.dev` */
export function crdName(kind: Kind): string {
  return `${pluralOf(kind)}.${API_GROUP}`;
}

/**
 * A JSON schema translated into a Kubernetes structural schema (see the file comment). Pure: the
 * input is not modified. Throws on a construct Kubernetes cannot express, so a new schema feature
 * fails generation instead of producing a CRD the API server refuses.
 */
export function toStructural(schema: JsonSchema, path = ''): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    const at = `${path}.${key}`;
    switch (key) {
      case 'additionalProperties':
        if (value === false || value === true) break; // false: Kubernetes prunes; true: the default
        out[key] = toStructural(asSchema(value, at), at);
        break;
      case 'const':
        out['enum'] = [value];
        break;
      case 'properties':
        out[key] = Object.fromEntries(Object.entries(asSchema(value, at)).map(([p, s]) => [p, toStructural(asSchema(s, `${at}.${p}`), `${at}.${p}`)]));
        break;
      case 'items':
        out[key] = toStructural(asSchema(value, at), at);
        break;
      case 'type':
      case 'description':
      case 'enum':
      case 'required':
      case 'pattern':
      case 'format':
      case 'minLength':
      case 'maxLength':
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
      case 'minItems':
      case 'maxItems':
      case 'minProperties':
      case 'maxProperties':
      case 'multipleOf':
      case 'x-kubernetes-preserve-unknown-fields':
        out[key] = value;
        break;
      default:
        throw new Error(`toStructural: ${at || key}: "${key}" has no structural-schema translation`);
    }
  }
  if (typeof out['type'] !== 'string') throw new Error(`toStructural: ${path || '(root)'}: every node of a structural schema needs a type`);
  return out;
}

function asSchema(v: unknown, at: string): JsonSchema {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`toStructural: ${at}: expected a schema object`);
  return v as JsonSchema;
}

/** The whole object's openAPIV3Schema for one kind: envelope, `spec` from SPEC_SCHEMAS, free-form `status`. */
export function crdSchema(kind: Kind): JsonSchema {
  return {
    type: 'object',
    description: DESCRIPTIONS[kind],
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: { type: 'object' },
      spec: toStructural(SPEC_SCHEMAS[kind], '.spec'),
      status: {
        type: 'object',
        description: 'Written by the Sluice control plane: Accepted and Programmed conditions, observedGeneration, sidecars selected / acknowledging.',
        'x-kubernetes-preserve-unknown-fields': true,
      },
    },
    required: ['spec'],
  };
}

const condition = (type: string, description: string): CrdPrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description,
});

/** The CustomResourceDefinition of one policy kind. */
export function crdFor(kind: Kind): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: crdName(kind), labels: { 'app.kubernetes.io/part-of': 'sluice' } },
    spec: {
      group: API_GROUP,
      names: {
        kind,
        listKind: `${kind}List`,
        plural: pluralOf(kind),
        singular: kind.toLowerCase(),
        shortNames: [SHORT_NAMES[kind]],
        categories: ['sluice'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: crdSchema(kind) },
          subresources: { status: {} },
          additionalPrinterColumns: [
            condition('Accepted', 'The control plane accepted the object (schema and references are valid).'),
            condition('Programmed', 'Every connected sidecar the object applies to runs a snapshot containing its current generation.'),
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
        },
      ],
    },
  };
}

/** The CRDs of every policy kind, in `KINDS` order. */
export function allCrds(): CustomResourceDefinition[] {
  return KINDS.map(crdFor);
}
