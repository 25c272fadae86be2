import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSnapshot, compilePolicy, formatIssue, parseYamlDocuments, snapshotFor, type Workload } from './index.js';

const opts = { resolveSecret: (ns: string, a: { env?: string; secretRef?: { name: string; key: string } }) => (a.secretRef ? `key-of-${ns}/${a.secretRef.name}` : undefined) };

const POLICY = `
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: shared, namespace: sluice-system }
spec: { provider: openai, auth: { secretRef: { name: openai, key: apiKey } } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: private, namespace: team-a }
spec: { provider: anthropic, auth: { secretRef: { name: anthropic, key: apiKey } } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: unused, namespace: team-a }
spec: { provider: openai, auth: { secretRef: { name: other, key: apiKey } } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: platform, namespace: sluice-system }
spec: { rules: [{ match: { models: ["gpt-*"] }, backends: [{ name: shared }] }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: claude, namespace: team-a }
spec:
  workloadSelector: { labels: { app: chat } }
  rules: [{ match: { models: ["claude-*"] }, backends: [{ name: private }] }]
---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: team-budget, namespace: team-a }
spec: { unit: microUSD, window: month, calendarAligned: true, timeZone: Europe/Paris, max: 5000000, key: [{ source: label, name: team }], match: { routes: [claude] } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMCache
metadata: { name: faq, namespace: team-a }
spec: { semantic: { backend: shared, model: text-embedding-3-small, threshold: 0.92 }, ttlSeconds: 600 }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: pii, namespace: team-a }
spec:
  workloadSelector: { serviceAccounts: [billing] }
  direction: both
  action: redact
  detectors: [{ kind: email }, { kind: regex, name: ticket, values: ["TKT-[0-9]+"] }]
`;

const set = compilePolicy(parseYamlDocuments(POLICY, 'p.yaml').objects, {});
const chat: Workload = { namespace: 'team-a', serviceAccount: 'default', labels: { app: 'chat', team: 'search' } };
const billing: Workload = { namespace: 'team-a', serviceAccount: 'billing', labels: { app: 'billing' } };
const other: Workload = { namespace: 'team-b', serviceAccount: 'default', labels: { app: 'chat' } };

test('all five kinds compile without issues', () => {
  assert.deepEqual(set.issues.map(formatIssue), []);
  assert.equal(set.objects.size, 8);
});

test('a workload receives only the objects that select it, and only the backends and keys they use', () => {
  const s = snapshotFor(set, chat, opts).snapshot;
  assert.deepEqual(s.rules.map((r) => r.route), ['team-a/claude#0', 'sluice-system/platform#0'], 'own namespace first, then root');
  assert.deepEqual(s.backends.map((b) => [b.id, b.authValue]), [
    ['sluice-system/shared', 'Bearer key-of-sluice-system/openai'],
    ['team-a/private', 'key-of-team-a/anthropic'],
  ]);
  assert.ok(!JSON.stringify(s).includes('key-of-team-a/other'), 'unreferenced backend keys never leave the control plane');
  assert.deepEqual(s.limits.map((l) => [l.id, l.routes, l.timeZone, l.max]), [['team-a/team-budget', ['team-a/claude'], 'Europe/Paris', 5000000]]);
  assert.deepEqual(s.caches.map((c) => [c.embeddingBackend, c.similarityThresholdMilli]), [['sluice-system/shared', 920]]);
  assert.deepEqual(s.guardrails, [], 'guardrail selects service account billing only');

  const b = snapshotFor(set, billing, opts).snapshot;
  assert.deepEqual(b.rules.map((r) => r.route), ['sluice-system/platform#0']);
  assert.equal(b.guardrails.length, 1);

  const o = snapshotFor(set, other, opts).snapshot;
  assert.deepEqual(o.rules.map((r) => r.route), ['sluice-system/platform#0']);
  assert.deepEqual(o.backends.map((x) => x.id), ['sluice-system/shared']);
  assert.equal(o.limits.length + o.caches.length, 0);
});

test('same selection gives the same version; different selection a different one', () => {
  const a = snapshotFor(set, chat, opts).snapshot.version;
  const a2 = snapshotFor(compilePolicy([...parseYamlDocuments(POLICY, 'p.yaml').objects].reverse(), {}), chat, opts).snapshot.version;
  assert.equal(a, a2);
  assert.notEqual(a, snapshotFor(set, other, opts).snapshot.version);
});

test('an invalid new version of an object keeps its last good version serving', () => {
  const broken = POLICY.replace('models: ["claude-*"]', 'models: 7');
  const next = compilePolicy(parseYamlDocuments(broken, 'p.yaml').objects, {}, set);
  assert.ok(next.stale.has('LLMRoute team-a/claude'));
  assert.ok(next.issues.some((i) => i.object === 'LLMRoute team-a/claude' && i.path === 'spec.rules[0].match.models'));
  assert.equal(snapshotFor(next, chat, opts).snapshot.version, snapshotFor(set, chat, opts).snapshot.version);
  // Without a previous good version the object is left out.
  const fresh = compilePolicy(parseYamlDocuments(broken, 'p.yaml').objects, {});
  assert.ok(!fresh.objects.has('LLMRoute team-a/claude'));
});

test('removing a backend drops (or rolls back) the routes that named it', () => {
  const without = POLICY.replace(/apiVersion: sluice.dev\/v1alpha1\nkind: LLMBackend\nmetadata: \{ name: private[^]*?---\n/, '');
  const fresh = compilePolicy(parseYamlDocuments(without, 'p.yaml').objects, {});
  assert.ok(!fresh.objects.has('LLMRoute team-a/claude'));
  assert.ok(fresh.issues.some((i) => i.code === 'SLUICE_ERR_POLICY_REFERENCE' && i.object === 'LLMRoute team-a/claude'));
});

test('missing secrets are reported, not fatal', () => {
  const r = snapshotFor(set, chat, { resolveSecret: () => undefined });
  assert.equal(r.snapshot.backends[0]?.authHeader, '');
  assert.ok(r.issues.some((i) => i.code === 'SLUICE_ERR_POLICY_SECRET'));
});

test('checkSnapshot refuses what the sidecar cannot compile', () => {
  const s = snapshotFor(set, billing, opts).snapshot;
  assert.deepEqual(checkSnapshot(s), []);
  const bad = { ...s, guardrails: [{ ...s.guardrails[0]!, detectors: [{ kind: 'regex', name: 'x', values: ['('] }] }], limits: [{ ...snapshotFor(set, chat, opts).snapshot.limits[0]!, timeZone: 'Mars/Olympus' }] };
  const problems = checkSnapshot(bad);
  assert.equal(problems.length, 2);
  assert.match(problems[0]!.resource, /^guardrail team-a\/pii/);
  assert.match(problems[1]!.message, /Mars\/Olympus/);
});
