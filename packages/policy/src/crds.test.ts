import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROVIDERS } from '@sluice/providers';
import { allCrds, crdFor, crdSchema, pluralOf, toStructural, type JsonSchema } from './crds.js';
import { SPEC_SCHEMAS } from './schemas.js';
import { API_GROUP, KINDS } from './types.js';

/** Every schema node with its path (properties, items, additionalProperties). */
function* nodes(s: JsonSchema, path = ''): Generator<[string, JsonSchema]> {
  yield [path || '(root)', s];
  const props = s['properties'] as Record<string, JsonSchema> | undefined;
  if (props) for (const [k, v] of Object.entries(props)) yield* nodes(v, `${path}.${k}`);
  const items = s['items'] as JsonSchema | undefined;
  if (items) yield* nodes(items, `${path}[]`);
  const ap = s['additionalProperties'];
  if (ap !== undefined && typeof ap === 'object') yield* nodes(ap as JsonSchema, `${path}{}`);
}

/** The keywords a Kubernetes structural schema may use on a node (what toStructural keeps). */
const ALLOWED = new Set([
  'type', 'description', 'properties', 'items', 'additionalProperties', 'required', 'enum', 'pattern', 'format',
  'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minItems', 'maxItems',
  'minProperties', 'maxProperties', 'multipleOf', 'x-kubernetes-preserve-unknown-fields',
]);

test('one CRD per kind: group, version, scope, names, short names, status subresource, printer columns', () => {
  const crds = allCrds();
  assert.deepEqual(crds.map((c) => c.spec.names.kind), [...KINDS]);
  const short = new Set<string>();
  for (const kind of KINDS) {
    const crd = crdFor(kind);
    assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
    assert.equal(crd.kind, 'CustomResourceDefinition');
    assert.equal(crd.spec.group, API_GROUP);
    assert.equal(crd.spec.group, 'sluice.dev');
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.equal(crd.spec.names.plural, `${kind.toLowerCase()}s`);
    assert.equal(crd.spec.names.plural, pluralOf(kind));
    assert.equal(crd.spec.names.singular, kind.toLowerCase());
    assert.equal(crd.spec.names.listKind, `${kind}List`);
    assert.equal(crd.metadata.name, `${crd.spec.names.plural}.sluice.dev`);
    assert.equal(crd.spec.names.shortNames.length, 1);
    const [sn] = crd.spec.names.shortNames;
    assert.match(sn ?? '', /^llm[a-z]$/);
    short.add(sn ?? '');
    assert.equal(crd.spec.versions.length, 1);
    const [v] = crd.spec.versions;
    assert.ok(v);
    assert.equal(v.name, 'v1alpha1');
    assert.equal(v.served, true);
    assert.equal(v.storage, true);
    assert.deepEqual(v.subresources, { status: {} });
    assert.deepEqual(
      v.additionalPrinterColumns.map((c) => [c.name, c.type, c.jsonPath]),
      [
        ['Accepted', 'string', '.status.conditions[?(@.type=="Accepted")].status'],
        ['Programmed', 'string', '.status.conditions[?(@.type=="Programmed")].status'],
        ['Age', 'date', '.metadata.creationTimestamp'],
      ],
    );
  }
  assert.deepEqual([...short].sort(), ['llmb', 'llmc', 'llmg', 'llml', 'llmr']);
});

test('openAPIV3Schema is structural for every kind', () => {
  for (const kind of KINDS) {
    const schema = crdFor(kind).spec.versions[0]?.schema.openAPIV3Schema;
    assert.ok(schema);
    for (const [path, node] of nodes(schema)) {
      const where = `${kind} ${path}`;
      assert.equal(typeof node['type'], 'string', `${where}: every node has a type`);
      for (const k of Object.keys(node)) assert.ok(ALLOWED.has(k), `${where}: keyword ${k} is not allowed in a structural schema`);
      assert.notEqual(node['additionalProperties'], false, `${where}: additionalProperties: false is dropped (Kubernetes prunes)`);
      assert.ok(!(node['properties'] !== undefined && node['additionalProperties'] !== undefined), `${where}: properties and additionalProperties are exclusive`);
      assert.ok(!('const' in node), `${where}: no const`);
      if (node['type'] === 'array') assert.ok(node['items'] !== undefined && !Array.isArray(node['items']), `${where}: arrays have one items schema`);
      if (node['required'] !== undefined) {
        const props = Object.keys((node['properties'] as Record<string, unknown> | undefined) ?? {});
        for (const r of node['required'] as string[]) assert.ok(props.includes(r), `${where}: required ${r} is a property`);
      }
      // The x-kubernetes-preserve-unknown-fields nodes are objects.
      if (node['x-kubernetes-preserve-unknown-fields'] === true) assert.equal(node['type'], 'object', where);
    }
    // Envelope: spec required, metadata free, status kept as written.
    const props = schema['properties'] as Record<string, JsonSchema>;
    assert.deepEqual(schema['required'], ['spec']);
    assert.deepEqual(props['metadata'], { type: 'object' });
    assert.equal(props['status']?.['type'], 'object');
    assert.equal(props['status']?.['x-kubernetes-preserve-unknown-fields'], true);
  }
});

test('spec schemas keep every field, constraint and string map of SPEC_SCHEMAS', () => {
  /** SPEC_SCHEMAS with additionalProperties:false removed and const → enum, computed independently. */
  const expected = (s: unknown): unknown => {
    if (Array.isArray(s)) return s.map(expected);
    if (s === null || typeof s !== 'object') return s;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      if (k === 'additionalProperties' && v === false) continue;
      if (k === 'const') out['enum'] = [v];
      else if (k === 'enum' || k === 'required') out[k] = v;
      else if (k === 'properties') out[k] = Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, expected(ps)]));
      else out[k] = expected(v);
    }
    return out;
  };
  for (const kind of KINDS) {
    const spec = (crdSchema(kind)['properties'] as Record<string, unknown>)['spec'];
    assert.deepEqual(spec, expected(SPEC_SCHEMAS[kind]), kind);
  }
  // The label map of workloadSelector stays a typed string map.
  const route = (crdSchema('LLMRoute')['properties'] as Record<string, JsonSchema>)['spec'];
  const labels = ((route?.['properties'] as Record<string, JsonSchema>)['workloadSelector']?.['properties'] as Record<string, JsonSchema>)['labels'];
  assert.equal(labels?.['type'], 'object');
  assert.equal((labels?.['additionalProperties'] as JsonSchema)['type'], 'string');
  // Enums survive (LLMBackend.spec.provider).
  const backend = (crdSchema('LLMBackend')['properties'] as Record<string, JsonSchema>)['spec'];
  assert.deepEqual((backend?.['properties'] as Record<string, JsonSchema>)['provider']?.['enum'], Object.keys(PROVIDERS));
});

test('toStructural: const → enum, drops additionalProperties false, keeps maps, refuses untranslatable nodes', () => {
  const input = {
    type: 'object',
    additionalProperties: false,
    properties: { v: { type: 'string', const: 'x' }, m: { type: 'object', additionalProperties: { type: 'integer' } } },
  };
  const copy = structuredClone(input);
  assert.deepEqual(toStructural(input), {
    type: 'object',
    properties: { v: { type: 'string', enum: ['x'] }, m: { type: 'object', additionalProperties: { type: 'integer' } } },
  });
  assert.deepEqual(input, copy, 'input not modified');
  assert.throws(() => toStructural({ type: 'object', properties: { a: { enum: ['x'] } } }), /\.properties\.a: every node of a structural schema needs a type/);
  assert.throws(() => toStructural({ type: 'string', oneOf: [] }), /"oneOf" has no structural-schema translation/);
  assert.throws(() => toStructural({ type: 'array', items: [{ type: 'string' }] }), /expected a schema object/);
});
