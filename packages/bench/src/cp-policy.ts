/**
 * The policy of the control-plane case: a small but realistic cluster. Five team namespaces with two
 * applications each (ten workloads, hence ten distinct snapshots), shared objects in the root
 * namespace, and per namespace its own backends, a namespace-wide route, one route per application,
 * budgets, a token limit, a cache and a guardrail: 56 objects in six files.
 *
 * The measured change rewrites the root namespace's file (`sluice-system.yaml`), switching where the
 * `fast` alias of the shared route goes. Every workload selects that route, so every snapshot
 * changes and every stream gets a push.
 */

export const ROOT_NAMESPACE = 'sluice-system';

/** The file the measured change rewrites (alternating `rootPolicy(0)` and `rootPolicy(1)`). */
export const CHANGED_FILE = `${ROOT_NAMESPACE}.yaml`;

/** Environment variables holding the (fake) provider keys the backends reference (`auth.env`). */
export const KEY_ENV: Readonly<Record<string, string>> = {
  SLUICE_BENCH_OPENAI_KEY: 'sk-bench-openai-not-a-real-key',
  SLUICE_BENCH_ANTHROPIC_KEY: 'sk-ant-bench-not-a-real-key',
  SLUICE_BENCH_TEAM_KEY: 'sk-bench-team-not-a-real-key',
};

export interface Workload {
  readonly namespace: string;
  readonly app: string;
}

const TEAMS: ReadonlyArray<{ readonly namespace: string; readonly apps: readonly [string, string] }> = [
  { namespace: 'shop', apps: ['checkout', 'recommend'] },
  { namespace: 'search', apps: ['query', 'indexer'] },
  { namespace: 'support', apps: ['chatbot', 'triage'] },
  { namespace: 'analytics', apps: ['reports', 'etl'] },
  { namespace: 'platform', apps: ['docs', 'devtools'] },
];

/** The ten workloads; simulated pod `i` belongs to `WORKLOADS[i % WORKLOADS.length]`. */
export const WORKLOADS: readonly Workload[] = TEAMS.flatMap((t) => t.apps.map((app) => ({ namespace: t.namespace, app })));

/** Shared objects of the root namespace; `variant` (0 or 1) is the measured change. */
export function rootPolicy(variant: 0 | 1): string {
  const fast = variant === 0 ? '{ name: anthropic, modelOverride: claude-haiku-4-5 }' : '{ name: openai, modelOverride: gpt-4o-mini }';
  return `# Shared by every namespace (root namespace). The benchmark flips where "fast" goes.
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: openai, namespace: ${ROOT_NAMESPACE} }
spec:
  provider: openai
  auth: { env: SLUICE_BENCH_OPENAI_KEY }
  models:
    - { id: gpt-4o-mini, aliases: [small] }
    - { id: gpt-4o }
    - { id: gpt-4.1-mini }
    - { id: gpt-5-mini }
    - { id: text-embedding-3-small, pricing: { input: 20000, output: 0 } }
  timeouts: { connectMs: 5000, firstByteMs: 120000, idleMs: 60000 }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: anthropic, namespace: ${ROOT_NAMESPACE} }
spec:
  provider: anthropic
  auth: { env: SLUICE_BENCH_ANTHROPIC_KEY }
  models:
    - { id: claude-haiku-4-5 }
    - { id: claude-sonnet-4-5 }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: local, namespace: ${ROOT_NAMESPACE} }
spec:
  provider: openai-compatible
  endpoint: http://vllm.${ROOT_NAMESPACE}.svc.cluster.local:8000/v1
  models:
    - { id: llama-3.1-8b-instruct, pricing: { input: 0, output: 0 } }
    - { id: qwen2.5-7b-instruct, pricing: { input: 0, output: 0 } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: shared, namespace: ${ROOT_NAMESPACE} }
spec:
  rules:
    - match: { models: ["gpt-*", "o3*", "o4*", small, "text-embedding-*"] }
      backends: [{ name: openai }]
    - match: { models: ["claude-*"] }
      backends: [{ name: anthropic }]
    - match: { models: [fast] }
      backends: [${fast}]
    - match: { models: ["llama-*", "qwen*"] }
      backends: [{ name: local }]
---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: cluster-rpm, namespace: ${ROOT_NAMESPACE} }
spec:
  unit: requests
  window: minute
  max: 6000
  key: [{ source: namespace }]
  scope: global
  failureMode: LocalShare
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: secrets, namespace: ${ROOT_NAMESPACE} }
spec:
  direction: input
  action: block
  detectors: [{ kind: secret }, { kind: injection }]
`;
}

function teamPolicy(namespace: string, apps: readonly [string, string]): string {
  const perApp = apps
    .map(
      (app) => `---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: ${app}, namespace: ${namespace} }
spec:
  workloadSelector: { labels: { app: ${app} } }
  rules:
    - match: { models: [${app}-default] }
      backends: [{ name: ${namespace}-openai, modelOverride: gpt-4o-mini }]
    - match: { models: [${app}-large] }
      backends: [{ name: ${namespace}-openai, modelOverride: gpt-4o }]
    - match: { models: [${app}-local] }
      backends: [{ name: vllm, modelOverride: llama-3.1-70b-instruct }]
---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: ${app}-budget, namespace: ${namespace} }
spec:
  workloadSelector: { labels: { app: ${app} } }
  unit: microUSD
  window: month
  calendarAligned: true
  timeZone: Europe/Paris
  max: 250000000
  key: [{ source: label, name: team }]
  match: { routes: [${app}] }
`,
    )
    .join('');
  return `# Team namespace ${namespace}: its own backends, routes, limits, cache and guardrail.
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: ${namespace}-openai, namespace: ${namespace} }
spec:
  provider: openai
  auth: { env: SLUICE_BENCH_TEAM_KEY }
  models:
    - { id: gpt-4o-mini, pricing: { input: 150000, output: 600000 } }
    - { id: gpt-4o }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: vllm, namespace: ${namespace} }
spec:
  provider: openai-compatible
  endpoint: http://vllm.${namespace}.svc.cluster.local:8000
  models:
    - { id: llama-3.1-70b-instruct, pricing: { input: 0, output: 0 } }
  timeouts: { firstByteMs: 300000 }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: default, namespace: ${namespace} }
spec:
  rules:
    - match: { models: ["gpt-4o*"] }
      backends: [{ name: ${namespace}-openai }]
    - match: { models: ["llama-3.1-70b*"] }
      backends: [{ name: vllm }]
${perApp}---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: tokens, namespace: ${namespace} }
spec:
  unit: tokens
  window: minute
  max: 2000000
  key: [{ source: serviceAccount }]
  scope: local
  failureMode: FailOpen
---
apiVersion: sluice.dev/v1alpha1
kind: LLMCache
metadata: { name: faq, namespace: ${namespace} }
spec:
  workloadSelector: { labels: { app: ${apps[0]} } }
  exact: true
  ttlSeconds: 3600
  isolation: namespace
---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: pii, namespace: ${namespace} }
spec:
  direction: both
  action: redact
  detectors:
    - { kind: email }
    - { kind: phone }
    - { kind: regex, name: ticket, values: ["TKT-[0-9]{6}"] }
`;
}

/** Every file of the policy directory (root namespace at `variant`), name → YAML. */
export function policyFiles(variant: 0 | 1 = 0): Map<string, string> {
  const files = new Map<string, string>([[CHANGED_FILE, rootPolicy(variant)]]);
  for (const t of TEAMS) files.set(`${t.namespace}.yaml`, teamPolicy(t.namespace, t.apps));
  return files;
}

/** Identity of simulated pod `i` (what a sidecar sends in `node`). */
export function podIdentity(i: number): { pod: string; namespace: string; serviceAccount: string; labels: Record<string, string> } {
  const w = WORKLOADS[i % WORKLOADS.length];
  if (w === undefined) throw new Error('no workloads');
  const hash = `7f9c${(i % WORKLOADS.length).toString(16)}d5b8`;
  return {
    pod: `${w.app}-${hash}-${i.toString(36).padStart(5, '0')}`,
    namespace: w.namespace,
    serviceAccount: w.app,
    labels: { app: w.app, team: w.namespace, 'pod-template-hash': hash },
  };
}
