/** A simulated pod for control plane tests: a real sidecar and its PolicyClient. */
import type { Logger } from '@sluice/core';
import { loadSidecarConfig, PolicyClient, startSidecar, type Sidecar } from '@sluice/sidecar';

export interface TestPod {
  readonly name: string;
  readonly sidecar: Sidecar;
  readonly client: PolicyClient;
  close(): Promise<void>;
}

export async function startTestPod(o: {
  address: string;
  name: string;
  logger: Logger;
  namespace?: string;
  labels?: Record<string, string>;
  stateDir?: string | undefined;
  caFile?: string | undefined;
  tokenFile?: string | undefined;
}): Promise<TestPod> {
  const sidecar = await startSidecar({ config: loadSidecarConfig({}, { port: 0, adminPort: 0, adminHost: '127.0.0.1' }), logger: o.logger });
  const client = new PolicyClient({
    address: o.address,
    node: { pod: o.name, namespace: o.namespace ?? 'shop', serviceAccount: 'default', labels: o.labels ?? {}, instanceId: o.name, sidecarVersion: 'test' },
    apply: (s) => sidecar.applySnapshot(s),
    currentVersion: () => sidecar.snapshotVersion ?? '',
    logger: o.logger,
    stateDir: o.stateDir,
    caFile: o.caFile,
    tokenFile: o.tokenFile,
    backoffInitialMs: 20,
    backoffMaxMs: 200,
  });
  await client.start();
  return {
    name: o.name,
    sidecar,
    client,
    async close() {
      client.close();
      await sidecar.close();
    },
  };
}

/** One chat completion through a sidecar. */
export function chat(sc: Sidecar, model: string): Promise<Response> {
  return fetch(`${sc.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
}
