/**
 * End to end over real processes: the control plane binary and the sidecar binary, started the way
 * a pod starts them (environment only), talking gRPC over loopback, with the official OpenAI SDK in
 * front and the fake provider behind. Kills and restarts prove the sidecar keeps serving without
 * its control plane and comes back from its state directory.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { SIDECAR_NODE_FLAGS } from '@sluice/core';
import { startFakeProvider, type FakeProvider, waitFor, freePorts } from '@sluice/testkit';

const until = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10000): Promise<number> => waitFor(what, cond, timeoutMs);

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CP_MAIN = join(ROOT, 'packages/control-plane/dist/src/main.js');
const SIDECAR_MAIN = join(ROOT, 'packages/sidecar/dist/src/main.js');


interface Proc {
  child: ChildProcess;
  output: string[];
  stop(): Promise<number | null>;
}

function run(file: string, env: Record<string, string>, nodeFlags: readonly string[] = []): Proc {
  const child = spawn(process.execPath, [...nodeFlags, file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  return {
    child,
    output,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}


let fake: FakeProvider;
let policyDir: string;
let stateDir: string;
let ports: { grpc: number; cpAdmin: number; api: number; admin: number };
const procs: Proc[] = [];

function startCp(): Proc {
  const p = run(CP_MAIN, {
    SLUICE_CP_POLICY_DIR: policyDir,
    SLUICE_CP_GRPC_ADDRESS: `127.0.0.1:${ports.grpc}`,
    SLUICE_CP_ADMIN_HOST: '127.0.0.1',
    SLUICE_CP_ADMIN_PORT: String(ports.cpAdmin),
    E2E_OPENAI_KEY: 'sk-e2e-secret',
  });
  procs.push(p);
  return p;
}

function startSidecar(): Proc {
  const p = run(SIDECAR_MAIN, {
    SLUICE_SIDECAR_PORT: String(ports.api),
    SLUICE_SIDECAR_ADMIN_HOST: '127.0.0.1',
    SLUICE_SIDECAR_ADMIN_PORT: String(ports.admin),
    SLUICE_SIDECAR_CONTROL_ADDRESS: `127.0.0.1:${ports.grpc}`,
    SLUICE_SIDECAR_STATE_DIR: stateDir,
    SLUICE_POD_NAME: 'e2e-pod',
    SLUICE_POD_NAMESPACE: 'default',
    // As the injected container starts it (its command carries the same flags).
  }, SIDECAR_NODE_FLAGS);
  procs.push(p);
  return p;
}

const ready = async (): Promise<boolean> => (await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status === 200;

before(async () => {
  fake = await startFakeProvider();
  policyDir = await mkdtemp(join(tmpdir(), 'sluice-e2e-policy-'));
  stateDir = await mkdtemp(join(tmpdir(), 'sluice-e2e-state-'));
  const [grpc, cpAdmin, api, admin] = await freePorts(4);
  ports = { grpc: grpc!, cpAdmin: cpAdmin!, api: api!, admin: admin! };
  await writeFile(
    join(policyDir, 'policy.yaml'),
    `apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: openai }
spec: { provider: openai, endpoint: "${fake.url}", auth: { env: E2E_OPENAI_KEY }, models: [{ id: gpt-4o-mini }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: anthropic }
spec: { provider: anthropic, endpoint: "${fake.url}" }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: main }
spec: { rules: [{ match: { models: ["gpt-*"] }, backends: [{ name: openai }] }, { match: { models: ["claude-*"] }, backends: [{ name: anthropic }] }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: guarded }
spec: { rules: [{ match: { models: [guarded] }, backends: [{ name: openai, modelOverride: gpt-4o-mini }] }] }
---
# A pattern that backtracks catastrophically on "aaaa…!" (exponential in the run of a's).
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: bad-pattern }
spec: { match: { routes: [guarded] }, direction: input, action: redact, detectors: [{ kind: regex, name: runs, values: ["(a+)+$"] }] }
`,
  );
});

after(async () => {
  for (const p of procs) await p.stop();
  await fake.close();
  await rm(policyDir, { recursive: true, force: true });
  await rm(stateDir, { recursive: true, force: true });
});

test('control plane and sidecar binaries: serve, survive a control plane outage, restart from disk', async () => {
  const cp = startCp();
  const sidecar = startSidecar();
  await until('sidecar ready', ready);
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${ports.api}/v1`, apiKey: 'client-key', maxRetries: 0 });
  const a = await openai.chat.completions.create({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(a.choices[0]?.message.content, 'Hello from the Sluice fake provider.');
  await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(fake.requests.at(-1)?.headers['authorization'], 'Bearer sk-e2e-secret', 'key from the control plane environment');

  // The control plane goes away: the sidecar keeps serving.
  assert.equal(await cp.stop(), 0, 'control plane exits cleanly on SIGTERM');
  const b = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(b.choices[0]?.message.content);

  // The sidecar restarts while the control plane is still away: it serves its last good snapshot from disk.
  assert.equal(await sidecar.stop(), 0, 'sidecar exits cleanly on SIGTERM');
  startSidecar(); // stopped with the others in after()
  await until('restarted sidecar ready from disk', ready);
  const c = await openai.chat.completions.create({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(c.choices[0]?.message.content);

  // The control plane comes back with a changed policy: the sidecar reconnects and converges.
  await writeFile(join(policyDir, 'extra.yaml'), 'apiVersion: sluice.dev/v1alpha1\nkind: LLMRoute\nmetadata: { name: extra }\nspec: { rules: [{ match: { models: [fast] }, backends: [{ name: anthropic, modelOverride: claude-haiku-4-5 }] }] }\n');
  startCp();
  await until('the new route reaches the sidecar', async () => {
    const r = await fetch(`http://127.0.0.1:${ports.api}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] }) });
    return r.status === 200;
  });
  // The sidecar applies, persists, then ACKs: the control plane sees the ACK a moment later.
  type Sidecars = { sidecars: Array<{ pod: string; versionAcked: string; versionSent: string }> };
  const sidecars = async (): Promise<Sidecars['sidecars']> => ((await (await fetch(`http://127.0.0.1:${ports.cpAdmin}/v1/sidecars`)).json()) as Sidecars).sidecars;
  await until('the control plane sees the ACK', async () => (await sidecars()).some((s) => s.versionSent !== '' && s.versionAcked === s.versionSent));
  const status = await sidecars();
  assert.equal(status.length, 1);
  assert.equal(status[0]?.pod, 'e2e-pod');
});

test('a custom guardrail pattern that backtracks catastrophically cannot stall the sidecar binary', async () => {
  if (!(await ready().catch(() => false))) {
    startCp();
    startSidecar();
    await until('sidecar ready', ready);
  }
  await until('the guarded route is served', async () => (await fetch(`http://127.0.0.1:${ports.api}/v1/models`).then((r) => r.text())).includes('guarded'));
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${ports.api}/v1`, apiKey: 'client-key', maxRetries: 0, timeout: 20_000 });
  const t0 = Date.now();
  // 40 a's then "!": about 2^40 backtracking steps for (a+)+$ on V8's backtracking engine.
  const r = await openai.chat.completions.create({ model: 'guarded', messages: [{ role: 'user', content: `${'a'.repeat(40)}!` }] });
  assert.ok(r.choices[0]?.message.content);
  assert.ok(Date.now() - t0 < 5000, `answered in ${Date.now() - t0} ms`);
  assert.equal(JSON.parse(fake.requests.at(-1)?.body ?? '{}').messages[0].content, `${'a'.repeat(40)}!`, 'no match (the text does not end in a run of a’s): sent as it was');
});
