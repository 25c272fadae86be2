import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSnapshot, compile, formatIssue, parseYamlDocuments } from './index.js';

const YAML = `
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: oai }
spec:
  provider: openai
  auth: { env: KEY }
  models:
    - id: gpt-4o-mini
      aliases: [small]
      pricing: { input: 1, output: 2 }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: r }
spec:
  rules:
    - match: { models: ["gpt-*", small] }
      backends: [{ name: oai }]
`;

const secrets = { resolveSecret: (_ns: string, a: { env?: string }) => (a.env === 'KEY' ? 'sk-test' : undefined) };

test('compiles backends and routes into a versioned snapshot', () => {
  const { objects, issues: parseIssues } = parseYamlDocuments(YAML, 'p.yaml');
  assert.deepEqual(parseIssues, []);
  const { snapshot, issues } = compile(objects, secrets);
  assert.deepEqual(issues, []);
  const b = snapshot.backends[0];
  assert.equal(b?.id, 'default/oai');
  assert.equal(b?.authHeader, 'authorization');
  assert.equal(b?.authValue, 'Bearer sk-test');
  assert.equal(b?.baseUrl, 'https://api.openai.com');
  assert.deepEqual(b?.aliases, { small: 'gpt-4o-mini' });
  // Unset price fields fall back to the bundled price, set ones win.
  assert.deepEqual(b?.prices['gpt-4o-mini'], { input: 1, cachedInput: 75_000, cacheWrite: 150_000, output: 2, reasoning: 600_000 });
  assert.deepEqual(snapshot.rules[0]?.exact, ['small']);
  assert.deepEqual(snapshot.rules[0]?.patterns, ['gpt-*']);
  assert.match(snapshot.version, /^[0-9a-f]{16}$/);
});

test('the version depends on content only, not on object order', () => {
  const { objects } = parseYamlDocuments(YAML, 'p.yaml');
  const a = compile(objects, secrets).snapshot.version;
  const b = compile([...objects].reverse(), secrets).snapshot.version;
  assert.equal(a, b);
  const c = compile(objects, { resolveSecret: () => 'other' }).snapshot.version;
  assert.notEqual(a, c);
});

test('invalid objects are reported with path and reason and left out', () => {
  const bad = parseYamlDocuments(
    `
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: x }
spec: { provider: nope, models: [{ id: 3 }], timeouts: { idleMs: -1 }, extra: 1 }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: r }
spec: { rules: [{ match: { models: [a] }, backends: [{ name: missing }] }] }
---
kind: Thing
`,
    'bad.yaml',
  );
  const { snapshot, issues } = compile(bad.objects, secrets);
  const text = issues.map(formatIssue);
  for (const want of [
    'LLMBackend default/x: spec.provider: must be one of "openai", "anthropic", "openai-compatible", "azure-openai", "azure-content-safety", "gemini", "vertex-ai", "bedrock", "mistral", "groq", "deepseek", "together", "fireworks", "openrouter", "xai", "vllm", "ollama"',
    'LLMBackend default/x: spec.models[0].id: must be string',
    'LLMBackend default/x: spec.timeouts.idleMs: must be >= 1',
    'LLMBackend default/x: spec.extra: is not a known field',
    'LLMRoute default/r: spec.rules[0].backends[0].name: no LLMBackend "missing" in namespace default or sluice-system',
    'Thing bad.yaml#2: apiVersion: must be sluice.dev/v1alpha1',
  ]) {
    assert.ok(text.includes(want), `missing: ${want}\n${text.join('\n')}`);
  }
  assert.ok(issues.every((i) => i.code.startsWith('SLUICE_ERR_POLICY_')));
  assert.equal(snapshot.backends.length, 0);
  assert.equal(snapshot.rules.length, 0);
});

test('YAML syntax errors and duplicates are issues, not crashes', () => {
  const r = parseYamlDocuments('a: [unclosed', 'x.yaml');
  assert.equal(r.issues.length, 1);
  const { objects } = parseYamlDocuments(YAML + '\n---\n' + YAML.split('---')[1], 'p.yaml');
  const { issues } = compile(objects, secrets);
  assert.equal(issues.length, 1);
  assert.match(formatIssue(issues[0]!), /defined more than once/);
});

test('provider presets compile to their endpoints, paths and auth: Vertex AI by location, Azure by api-version', () => {
  const backend = (name: string, spec: Record<string, unknown>): { object: unknown; where: string } => ({ object: { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name }, spec: { auth: { env: 'KEY' }, ...spec } }, where: name });
  const route = { object: { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'r' }, spec: { rules: [{ match: { models: ['a'] }, backends: [{ name: 'v' }, { name: 'g' }, { name: 'az' }, { name: 'ent' }] }] } }, where: 'r' };
  const { snapshot, issues } = compile(
    [
      backend('v', { provider: 'vertex-ai', vertex: { project: 'shop-ml', location: 'us-central1' } }),
      backend('g', { provider: 'vertex-ai', vertex: { project: 'shop-ml', location: 'global' } }),
      backend('az', { provider: 'azure-openai', endpoint: 'https://shop.openai.azure.com', azure: { apiVersion: '2025-01-01-preview' } }),
      backend('ent', { provider: 'azure-openai', endpoint: 'https://shop.openai.azure.com', azure: { auth: 'bearer' } }),
      route,
    ] as Parameters<typeof compile>[0],
    secrets,
  );
  assert.deepEqual(issues, []);
  const b = (id: string) => snapshot.backends.find((x) => x.id === `default/${id}`);
  assert.equal(b('v')?.baseUrl, 'https://us-central1-aiplatform.googleapis.com');
  assert.equal(b('v')?.paths['generate'], '/v1/projects/shop-ml/locations/us-central1/publishers/google/models/{model}:generateContent');
  assert.equal(b('v')?.authType, 'gcp-service-account');
  assert.equal(b('g')?.baseUrl, 'https://aiplatform.googleapis.com');
  assert.equal(b('az')?.paths['chat'], '/openai/deployments/{model}/chat/completions?api-version=2025-01-01-preview');
  assert.deepEqual([b('az')?.authHeader, b('az')?.authValue], ['api-key', 'sk-test']);
  assert.deepEqual([b('ent')?.authHeader, b('ent')?.authValue], ['authorization', 'Bearer sk-test']);
  assert.match(b('ent')?.paths['chat'] ?? '', /api-version=2024-10-21$/u);
  // Missing settings are reported, the objects left out.
  const bad = compile([backend('nv', { provider: 'vertex-ai' }), backend('nl', { provider: 'vllm' })] as Parameters<typeof compile>[0], secrets);
  assert.deepEqual(bad.issues.map((i) => `${i.object} ${i.path}`).sort(), ['LLMBackend default/nl spec.endpoint', 'LLMBackend default/nv spec.vertex']);
});

test('guardrail classifiers and route logging compile; a guardrail with neither detectors nor a classifier, or a classifier asked to redact, is refused', () => {
  const extra = `
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: claude }
spec: { provider: anthropic, auth: { env: KEY } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: logged }
spec:
  rules:
    - match: { models: [chatty] }
      backends: [{ name: oai }]
      logging: { prompts: true, maxChars: 500 }
    - match: { models: [claude-x] }
      backends: [{ name: claude }]
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: mod }
spec:
  direction: both
  action: block
  classifier: { backend: oai, model: omni-moderation-latest, categories: [violence], threshold: 0.35, onError: block }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: empty }
spec: { direction: input, action: log }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: redacting }
spec:
  direction: input
  action: redact
  classifier: { backend: oai, model: omni-moderation-latest }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: safety }
spec: { provider: azure-content-safety, endpoint: "https://x.cognitiveservices.azure.com", auth: { env: KEY } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: wrong }
spec: { rules: [{ match: { models: [nope] }, backends: [{ name: safety }] }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: nowhere }
spec:
  direction: input
  action: block
  classifier: { backend: missing, model: m }
`;
  const { objects } = parseYamlDocuments(YAML + extra, 'p.yaml');
  const { snapshot, issues } = compile(objects, secrets);
  assert.deepEqual(
    issues.map((i) => `${i.object} ${i.path}`).sort(),
    ['LLMGuardrail default/empty spec', 'LLMGuardrail default/nowhere spec.classifier.backend', 'LLMGuardrail default/redacting spec.action', 'LLMRoute default/wrong spec.rules[0].backends[0].name'],
  );
  const g = snapshot.guardrails.find((x) => x.id === 'default/mod');
  assert.equal(g?.classifierBackend, 'default/oai');
  assert.equal(g?.classifierFormat, 'openaiModeration');
  assert.deepEqual(g?.classifierCategories, ['violence']);
  assert.equal(g?.classifierThresholdMilli, 350);
  assert.equal(g?.classifierTimeoutMs, 2000);
  assert.equal(g?.classifierFailClosed, true);
  assert.deepEqual(g?.detectors, []);
  const rule = snapshot.rules.find((r) => r.route.startsWith('default/logged'));
  assert.deepEqual([rule?.logPrompts, rule?.logCompletions, rule?.logMaxChars], [true, false, 500]);
  // A classifier on a backend without the API it needs makes the sidecar refuse the snapshot.
  const onClaude = { ...snapshot, guardrails: [{ ...g!, classifierBackend: 'default/claude' }] };
  assert.match(checkSnapshot(onClaude).map((p) => p.message).join(';'), /no OpenAI-schema moderations API/u);
  assert.deepEqual(checkSnapshot(snapshot), []);
});
