import { resolve } from 'node:path';
import { createLogger, type Logger } from '@sluice/core';
import { compile, formatIssue, loadPolicyDir, type LLMBackend } from '@sluice/policy';
import { loadSidecarConfig, startSidecar, type Sidecar, type SidecarConfig } from '@sluice/sidecar';
import { startFakeProvider, type FakeProvider } from '@sluice/testkit';

export interface DevOptions {
  /** Directory of policy YAML (LLMBackend, LLMRoute). */
  readonly policyDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** `auto`: backends whose key variable is unset use the fake; `always`; `never`. */
  readonly fake: 'auto' | 'always' | 'never';
  readonly config?: Partial<SidecarConfig>;
  readonly logger?: Logger;
}

export interface DevGateway {
  readonly sidecar: Sidecar;
  readonly fake: FakeProvider | undefined;
  /** Backend id → where it goes ("fake" or its endpoint). */
  readonly backends: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

/**
 * The one-process gateway: policy from a directory, credentials from the environment, the built-in
 * fake provider standing in for every backend without a key.
 */
export async function startDevGateway(o: DevOptions): Promise<DevGateway> {
  const loaded = await loadPolicyDir(resolve(o.policyDir));
  const needsFake = (b: LLMBackend): boolean => o.fake === 'always' || (o.fake === 'auto' && (b.spec.auth?.env === undefined || !o.env[b.spec.auth.env]));
  const isBackend = (x: unknown): x is LLMBackend => typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'LLMBackend' && typeof (x as { spec?: unknown }).spec === 'object';
  const faked = loaded.objects.filter((l) => isBackend(l.object) && needsFake(l.object));
  const fake = faked.length > 0 ? await startFakeProvider({ host: '127.0.0.1', port: 0, record: false }) : undefined;
  const objects = loaded.objects.map((l) => {
    if (fake === undefined || !faked.includes(l)) return l;
    const b = l.object as LLMBackend;
    // Same object, pointed at the fake; the fake ignores credentials.
    return { where: l.where, object: { ...b, spec: { ...b.spec, endpoint: fake.url, auth: undefined } } };
  });
  const { snapshot, issues } = compile(objects, {
    resolveSecret: (_ns, auth) => (auth.env === undefined ? undefined : o.env[auth.env]),
  });
  const all = [...loaded.issues, ...issues];
  if (all.length > 0) {
    await fake?.close();
    throw new Error(`policy in ${o.policyDir} has problems:\n${all.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
  }
  const config = loadSidecarConfig(o.env, { adminHost: o.env['SLUICE_SIDECAR_ADMIN_HOST'] ?? '127.0.0.1', ...o.config });
  const logger = o.logger ?? createLogger({ name: 'sluice-sidecar', level: config.logLevel });
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar({ config, logger, snapshot });
  } catch (e) {
    await fake?.close();
    throw e;
  }
  const backends: Record<string, string> = {};
  for (const b of snapshot.backends) backends[b.id] = fake !== undefined && b.baseUrl === fake.url ? 'fake' : b.baseUrl;
  return {
    sidecar,
    fake,
    backends,
    async close() {
      await sidecar.close();
      await fake?.close();
    },
  };
}
