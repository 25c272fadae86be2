/**
 * What the bench's cases share: paths of the binaries under test, the benchmark request, the
 * placement of processes on CPUs, the Node load generator child, and starting the sidecar binary in
 * its production shape (its policy pushed over gRPC by its own control plane binary).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIDECAR_NODE_FLAGS } from '@sluice/core';
import { freePorts } from '@sluice/testkit';
import { Child, crashed, LineHub, waitForLine } from './procs.js';
import type { LoadJob, LoadResult } from './protocol.js';

/** dist/src of this package. */
export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '../../../..');
export const SIDECAR_MAIN = join(REPO_ROOT, 'packages/sidecar/dist/src/main.js');
export const CP_MAIN = join(REPO_ROOT, 'packages/control-plane/dist/src/main.js');
export const NODE = process.execPath;

export const CHAT_PATH = '/v1/chat/completions';
export const MODEL = 'gpt-4o-mini';

/** Where the processes run: the proxy under test on one CPU, everything else on the other. */
export interface Placement {
  readonly proxyCpu: number | undefined;
  readonly loadCpu: number | undefined;
}

/** A goal of the check list. */
export interface Check {
  readonly name: string;
  readonly goal: string;
  readonly value: string;
  /** undefined: not measured. */
  readonly pass: boolean | undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function progress(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Throws if a server child died on its own. */
export function assertNoCrash(): void {
  const dead = crashed();
  if (dead.length > 0) throw new Error(`child process crashed: ${dead.map((c) => c.describeExit()).join('\n')}`);
}

/** Runs one Node load generator job in a child pinned to the load CPU. */
export async function runLoadgen<T extends LoadResult>(job: LoadJob, place: Placement): Promise<T> {
  let last: string | undefined;
  const child = new Child('loadgen', NODE, [join(HERE, 'loadgen.js'), JSON.stringify(job)], {
    cpu: place.loadCpu,
    stdout: 'lines',
    onStdoutLine: (l) => {
      if (l.startsWith('{')) last = l;
    },
    stdinPipe: true,
  });
  const exit = await child.exited;
  if (exit.code !== 0 || last === undefined) throw new Error(`load generator failed: ${child.describeExit()}`);
  return JSON.parse(last) as T;
}

/** Polls `url` until it answers 200. */
export async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = errorText(e);
    }
    assertNoCrash();
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (${last})`);
}

/**
 * The benchmark policy: two backends (the same fake) under least-busy with fallback and retries, so
 * every request goes through the routing stages (ordering, capability check, breaker, in-flight
 * accounting), plus `extra` policy objects (YAML documents, each starting with `---`).
 */
export function benchPolicyYaml(fakeUrl: string, extra = ''): string {
  const backend = (name: string): string => `apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: ${name} }
spec: { provider: openai-compatible, endpoint: "${fakeUrl}", models: [{ id: ${MODEL}, pricing: { input: 150000, output: 600000 } }] }
---
`;
  return `${backend('bench')}${backend('bench-b')}apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: bench }
spec: { rules: [{ match: { models: ["gpt-*"] }, strategy: least-busy, backends: [{ name: bench }, { name: bench-b }] }] }
${extra}`;
}

/**
 * The control plane binary serving `policyYaml` from files (written to a new directory under
 * `tmp`), on `cpu`; resolves with its gRPC address once it logged it.
 */
export async function startControlPlane(o: { tmp: string; policyYaml: string; cpu: number | undefined; name?: string }): Promise<{ child: Child; grpcAddress: string }> {
  const dir = mkdtempSync(join(o.tmp, 'policy-'));
  writeFileSync(join(dir, 'bench.yaml'), o.policyYaml);
  const hub = new LineHub();
  const child = new Child(o.name ?? 'sluice control plane', NODE, [CP_MAIN], {
    cpu: o.cpu,
    env: { ...process.env, SLUICE_CP_POLICY_DIR: dir, SLUICE_CP_GRPC_ADDRESS: '127.0.0.1:0', SLUICE_CP_ADMIN_HOST: '127.0.0.1', SLUICE_CP_ADMIN_PORT: '0' },
    stdout: 'lines',
    onStdoutLine: hub.push,
    critical: true,
  });
  const grpcAddress = await waitForLine(child, hub.subscribe, (l) => /"grpc":"([^"]+)"/.exec(l)?.[1], 30_000);
  return { child, grpcAddress };
}

/**
 * The sidecar binary on `cpu`, fed by the control plane at `grpcAddress`, logging at info level to
 * /dev/null (its one log line per request is written, which is the real cost, but not kept);
 * resolves once its /ready answers 200.
 */
export async function startSidecar(o: {
  name: string;
  grpcAddress: string;
  cpu: number | undefined;
  nodeFlags?: readonly string[];
  env?: Readonly<Record<string, string>>;
  /** The sidecar binary to start (default: this build's). */
  main?: string;
}): Promise<{ child: Child; url: string; adminUrl: string }> {
  const [port, adminPort] = await freePorts(2);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SLUICE_SIDECAR_HOST: '127.0.0.1',
    SLUICE_SIDECAR_PORT: String(port),
    SLUICE_SIDECAR_ADMIN_HOST: '127.0.0.1',
    SLUICE_SIDECAR_ADMIN_PORT: String(adminPort),
    SLUICE_SIDECAR_CONTROL_ADDRESS: o.grpcAddress,
    SLUICE_LOG_LEVEL: 'info',
    ...o.env,
  };
  const child = new Child(o.name, NODE, [...SIDECAR_NODE_FLAGS, ...(o.nodeFlags ?? []), o.main ?? SIDECAR_MAIN], { cpu: o.cpu, env, stdout: 'ignore', critical: true });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitReady(`${adminUrl}/ready`, 30_000);
  return { child, url: `http://127.0.0.1:${port}`, adminUrl };
}
