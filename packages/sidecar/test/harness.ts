import { Redis } from 'ioredis';
import { compile, type AnyPolicyObject, type Snapshot } from '@sluice/policy';
import { captureLogger, startFakeProvider, type FakeProvider } from '@sluice/testkit';
import { loadSidecarConfig, startSidecar, type Sidecar, type SidecarConfig, type SidecarOptions } from '../src/index.js';

export const OPENAI_KEY = 'sk-upstream-openai-key';
export const ANTHROPIC_KEY = 'sk-ant-upstream-key';

export interface Harness {
  readonly sidecar: Sidecar;
  readonly fake: FakeProvider;
  /** Parsed log lines written by the sidecar. */
  readonly logs: Array<Record<string, unknown>>;
  /** Log lines of LLM requests (`msg: request`). */
  requestLogs(): Array<Record<string, unknown>>;
  /** Waits until `n` request log lines exist. */
  waitForRequestLogs(n: number, timeoutMs?: number): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export function policy(fakeUrl: string, extra: AnyPolicyObject[] = []): AnyPolicyObject[] {
  return [
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMBackend',
      metadata: { name: 'openai' },
      spec: { provider: 'openai', endpoint: fakeUrl, auth: { env: 'OPENAI_API_KEY' }, models: [{ id: 'gpt-4o-mini' }, { id: 'gpt-4o' }] },
    },
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMBackend',
      metadata: { name: 'anthropic' },
      spec: { provider: 'anthropic', endpoint: fakeUrl, auth: { env: 'ANTHROPIC_API_KEY' }, models: [{ id: 'claude-haiku-4-5', aliases: ['fast'] }] },
    },
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMBackend',
      metadata: { name: 'dead' },
      spec: { provider: 'openai-compatible', endpoint: 'http://127.0.0.1:1', timeouts: { connectMs: 2000 } },
    },
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMRoute',
      metadata: { name: 'main' },
      spec: {
        // One attempt per request: these tests look at how each failure is answered (retries and
        // fallbacks have their own tests, in routing.test.ts).
        rules: [
          { match: { models: ['gpt-*', 'text-embedding-*'] }, backends: [{ name: 'openai' }], retry: { attempts: 1 } },
          { match: { models: ['claude-*', 'fast'] }, backends: [{ name: 'anthropic' }], retry: { attempts: 1 } },
          { match: { models: ['dead-model'] }, backends: [{ name: 'dead' }], retry: { attempts: 1 } },
        ],
      },
    },
    ...extra,
  ];
}

export function snapshotFor(objects: AnyPolicyObject[]): Snapshot {
  const env: Record<string, string> = { OPENAI_API_KEY: OPENAI_KEY, ANTHROPIC_API_KEY: ANTHROPIC_KEY };
  const { snapshot, issues } = compile(
    objects.map((object, i) => ({ object, where: `test#${i}` })),
    { resolveSecret: (_ns, auth) => (auth.env === undefined ? undefined : env[auth.env]) },
  );
  if (issues.length > 0) throw new Error(JSON.stringify(issues));
  return snapshot;
}

export async function startHarness(config: Partial<SidecarConfig> = {}, extraPolicy: AnyPolicyObject[] = [], extra: Pick<SidecarOptions, 'tracing' | 'routing' | 'identity' | 'audit'> = {}): Promise<Harness> {
  const fake = await startFakeProvider();
  const { logger, logs } = captureLogger({ name: 'sluice-sidecar' });
  const sidecar = await startSidecar({
    config: loadSidecarConfig({}, { port: 0, adminPort: 0, host: '127.0.0.1', adminHost: '127.0.0.1', ...config }),
    logger,
    // Guardrail findings go to the test's logger unless the test captures them itself.
    audit: logger,
    snapshot: snapshotFor(policy(fake.url, extraPolicy)),
    ...extra,
  });
  const requestLogs = (): Array<Record<string, unknown>> => logs.filter((l) => l['msg'] === 'request');
  return {
    sidecar,
    fake,
    logs,
    requestLogs,
    async waitForRequestLogs(n, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (requestLogs().length < n) {
        if (Date.now() > until) throw new Error(`expected ${n} request log lines, have ${requestLogs().length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return requestLogs();
    },
    async close() {
      await sidecar.close();
      await fake.close();
    },
  };
}

/** Clients connected to a Redis server, not counting the one asking. */
export async function redisClients(url: string): Promise<number> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    return Number(/connected_clients:(\d+)/u.exec(await r.info('clients'))?.[1] ?? 0) - 1;
  } finally {
    r.disconnect();
  }
}
