import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createLogger, type Logger } from '@sluice/core';
import type { LLMBackend, LoadedObject } from '@sluice/policy';
import { providerSpec } from '@sluice/providers';
import { FileSource, startControlPlane, staticTokenAuth, type ControlPlane, type PolicySource, type SecretRequest } from '@sluice/control-plane';
import { linkSidecar, loadSidecarConfig, readLabels, startSidecar, type PolicyClient, type Sidecar, type SidecarConfig } from '@sluice/sidecar';
import { startFakeProvider, type FakeProvider } from '@sluice/testkit';

export type FakeMode = 'auto' | 'always' | 'never';

export interface DevOptions {
  /** Directory of policy YAML, watched. */
  readonly policyDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** `auto`: backends whose key variable is unset use the fake; `always`; `never`. */
  readonly fake: FakeMode;
  readonly sidecar?: Partial<SidecarConfig>;
  /** Control plane gRPC address (loopback); port 0 = ephemeral. */
  readonly grpcAddress?: string;
  readonly cpAdminPort?: number;
  readonly logger?: Logger;
}

export interface DevGateway {
  readonly sidecar: Sidecar;
  readonly controlPlane: ControlPlane;
  readonly client: PolicyClient;
  readonly fake: FakeProvider | undefined;
  /** Backend id → where it goes ("fake" or its endpoint), as of start. */
  readonly backends: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

const isBackend = (x: unknown): x is LLMBackend =>
  typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'LLMBackend' && typeof (x as { spec?: unknown }).spec === 'object' && (x as { spec?: unknown }).spec !== null;

/**
 * Points backends without a credential at the built-in fake provider, on every reload of the
 * underlying source (a key set later, or an edited backend, is picked up like any other change).
 */
class FakeBackedSource implements PolicySource {
  readonly name: string;
  readonly #inner: PolicySource;
  readonly #fakeUrl: string;
  readonly #uses: (b: LLMBackend) => boolean;

  constructor(inner: PolicySource, fakeUrl: string, uses: (b: LLMBackend) => boolean) {
    this.#inner = inner;
    this.#fakeUrl = fakeUrl;
    this.#uses = uses;
    this.name = `${inner.name} (keyless backends → fake provider)`;
  }
  start(onChange: () => void): Promise<void> {
    return this.#inner.start(onChange);
  }
  objects(): LoadedObject[] {
    return this.#inner.objects().map((l) => {
      if (!isBackend(l.object) || !this.#uses(l.object)) return l;
      const b = l.object;
      return { where: l.where, object: { ...b, spec: { ...b.spec, endpoint: this.#fakeUrl, auth: undefined } } };
    });
  }
  issues() {
    return this.#inner.issues();
  }
  resolveSecret(ns: string, auth: SecretRequest): string | undefined {
    return this.#inner.resolveSecret(ns, auth);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/**
 * The one-process gateway: the control plane (file source, watched) and the sidecar in one process,
 * connected by the same gRPC protocol as in a cluster, over loopback. Backends without a key are
 * served by the built-in fake provider.
 */
export async function startDevGateway(o: DevOptions): Promise<DevGateway> {
  const logger = o.logger ?? createLogger({ name: 'sluice', level: o.env['SLUICE_LOG_LEVEL'] ?? 'info' });
  const files = new FileSource(resolve(o.policyDir), o.env);
  const usesFake = (b: LLMBackend): boolean => o.fake === 'always' || (o.fake === 'auto' && (b.spec.auth?.env === undefined || !o.env[b.spec.auth.env]));
  const fake = o.fake === 'never' ? undefined : await startFakeProvider({ host: '127.0.0.1', port: 0, record: false });
  const source: PolicySource = fake === undefined ? files : new FakeBackedSource(files, fake.url, usesFake);
  const cleanup: Array<() => Promise<void>> = [];
  const fail = async (e: unknown): Promise<never> => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await fake?.close();
    throw e;
  };
  let controlPlane: ControlPlane;
  try {
    controlPlane = await startControlPlane({
      source,
      logger,
      grpcAddress: o.grpcAddress ?? o.env['SLUICE_CP_GRPC_ADDRESS'] ?? '127.0.0.1:4003',
      adminHost: '127.0.0.1',
      adminPort: o.cpAdminPort ?? Number(o.env['SLUICE_CP_ADMIN_PORT'] ?? 4002),
      ...(o.env['SLUICE_CP_ADMIN_TOKEN'] ? { adminAuth: staticTokenAuth(o.env['SLUICE_CP_ADMIN_TOKEN']) } : {}),
    });
  } catch (e) {
    return fail(e);
  }
  cleanup.push(() => controlPlane.close());
  const config = loadSidecarConfig(o.env, { adminHost: o.env['SLUICE_SIDECAR_ADMIN_HOST'] ?? '127.0.0.1', ...o.sidecar });
  // Pod labels (limit keys, the team of usage attribution) from SLUICE_POD_LABELS_FILE, as in a pod.
  const labels = readLabels(config.podLabelsFile);
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar({ config, logger, identity: { namespace: config.podNamespace, serviceAccount: config.serviceAccount, labels } });
  } catch (e) {
    return fail(e);
  }
  cleanup.push(() => sidecar.close());
  const node = { pod: config.podName, namespace: config.podNamespace, serviceAccount: config.serviceAccount, labels, instanceId: randomBytes(8).toString('hex'), sidecarVersion: '0.1.0' };
  // The same three streams as in a pod (policy, global-limit credit, usage), over loopback.
  const link = linkSidecar(sidecar, { address: controlPlane.grpcAddress, node, logger, backoffInitialMs: 50, backoffMaxMs: 1000 });
  const client = link.policy;
  const firstSnapshot = new Promise<void>((resolveFirst) => {
    const off = client.onSnapshot(() => {
      off();
      resolveFirst();
    });
  });
  await link.start();
  const issues = controlPlane.engine.issues();
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000).unref());
  if ((await Promise.race([firstSnapshot, timeout])) === 'timeout') {
    await link.close({ flushMs: 0, usageMs: 0 });
    const detail = issues.length > 0 ? `; policy problems:\n${issues.map((i) => `  ${i.object}: ${i.path}: ${i.message}`).join('\n')}` : '';
    return fail(new Error(`the sidecar received no policy within 5 s${detail}`));
  }
  const backends: Record<string, string> = {};
  for (const l of source.objects()) {
    if (!isBackend(l.object)) continue;
    const id = `${l.object.metadata.namespace ?? 'default'}/${l.object.metadata.name}`;
    backends[id] = fake !== undefined && l.object.spec.endpoint === fake.url ? 'fake' : (l.object.spec.endpoint ?? providerSpec(l.object.spec.provider)?.baseUrl ?? l.object.spec.provider);
  }
  return {
    sidecar,
    controlPlane,
    client,
    fake,
    backends,
    async close() {
      await link.close({ flushMs: 1000, usageMs: 2000 });
      await sidecar.close();
      await controlPlane.close();
      await fake?.close();
    },
  };
}
