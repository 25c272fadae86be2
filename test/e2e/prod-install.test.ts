/**
 * The production install the image is built from (deploy/Dockerfile): the built output staged by
 * scripts/stage-prod.sh plus `npm ci --omit=dev`. Both binaries must start from it with no
 * development dependency (no TypeScript, no test kit at run time, no pinned Node).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeProvider, type FakeProvider, freePorts } from '@sluice/testkit';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let dir: string;
let fake: FakeProvider;
const children: ChildProcess[] = [];


before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-prod-'));
  fake = await startFakeProvider();
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

test('npm ci --omit=dev + built output starts the control plane and the sidecar', { timeout: 300_000 }, async () => {
  const stage = spawnSync('bash', [join(ROOT, 'scripts/stage-prod.sh'), ROOT, dir], { encoding: 'utf8' });
  assert.equal(stage.status, 0, stage.stderr);
  const install = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, encoding: 'utf8', timeout: 240_000 });
  assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
  for (const dev of ['typescript', 'eslint', 'node', 'openai', 'protobufjs-cli']) assert.ok(!existsSync(join(dir, 'node_modules', dev)), `${dev} must not be installed`);

  await writeFile(
    join(dir, 'policy.yaml'),
    `apiVersion: sluice.dev/v1alpha1\nkind: LLMBackend\nmetadata: { name: b }\nspec: { provider: openai-compatible, endpoint: "${fake.url}" }\n---\napiVersion: sluice.dev/v1alpha1\nkind: LLMRoute\nmetadata: { name: r }\nspec: { rules: [{ match: { models: ["*"] }, backends: [{ name: b }] }] }\n`,
  );
  const [grpc, cpAdmin, api, admin] = await freePorts(4);
  const env = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp' };
  const start = (main: string, extra: Record<string, string>): ChildProcess => {
    const c = spawn(process.execPath, [main], { cwd: dir, env: { ...env, ...extra }, stdio: 'ignore' });
    children.push(c);
    return c;
  };
  start('packages/control-plane/dist/src/main.js', { SLUICE_CP_POLICY_DIR: dir, SLUICE_CP_GRPC_ADDRESS: `127.0.0.1:${grpc}`, SLUICE_CP_ADMIN_PORT: String(cpAdmin) });
  start('packages/sidecar/dist/src/main.js', { SLUICE_SIDECAR_PORT: String(api), SLUICE_SIDECAR_ADMIN_HOST: '127.0.0.1', SLUICE_SIDECAR_ADMIN_PORT: String(admin), SLUICE_SIDECAR_CONTROL_ADDRESS: `127.0.0.1:${grpc}` });
  const t0 = Date.now();
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.status === 200, () => false);
    if (ok) break;
    assert.ok(Date.now() - t0 < 20_000, 'sidecar from the production install became ready');
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = await fetch(`http://127.0.0.1:${api}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 200);
});
