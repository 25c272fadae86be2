/**
 * The one-process mode behind `npm start`: control plane + sidecar over loopback gRPC, policy from
 * a watched directory. An edit takes effect within a second without a restart; a broken edit is
 * rejected while the old policy keeps serving; `sluice status` shows the sidecar.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp as copyDir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevGateway, type DevGateway } from '../src/dev.js';
import { fetchSidecars, formatSidecars } from '../src/status.js';
import { validatePaths } from '../src/validate.js';
import { waitFor as until, quietLogger } from '@sluice/testkit';

const EXAMPLES = new URL('../../../../examples/', import.meta.url);
let dir: string;
let gw: DevGateway;
const quiet = quietLogger();


const status = async (model: string): Promise<number> =>
  (await fetch(`${gw.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) })).status;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-dev-'));
  await copyDir(EXAMPLES, dir, { recursive: true });
  gw = await startDevGateway({
    policyDir: dir,
    env: {},
    fake: 'auto',
    sidecar: { port: 0, adminPort: 0 },
    grpcAddress: '127.0.0.1:0',
    cpAdminPort: 0,
    logger: quiet,
  });
});
after(async () => {
  await gw.close();
  await rm(dir, { recursive: true, force: true });
});

test('starts with the example policy, keyless backends on the fake provider', async () => {
  assert.deepEqual(gw.backends, { 'default/anthropic': 'fake', 'default/openai': 'fake' });
  assert.equal(await status('gpt-4o-mini'), 200);
  assert.equal(await status('claude-haiku-4-5'), 200);
});

test('an edit of an example file takes effect within a second, without a restart', async () => {
  assert.equal(await status('my-alias'), 404);
  const routes = await readFile(join(dir, 'routes.yaml'), 'utf8');
  await writeFile(join(dir, 'routes.yaml'), routes.replace('models: ["claude-*", "fast"]', 'models: ["claude-*", "fast", "my-alias"]'));
  const ms = await until('the alias routes', async () => (await status('my-alias')) !== 404);
  assert.ok(ms < 1000, `took ${ms} ms`);
});

test('a broken edit is rejected and the old policy keeps serving', async () => {
  const version = gw.sidecar.snapshotVersion;
  const routes = await readFile(join(dir, 'routes.yaml'), 'utf8');
  await writeFile(join(dir, 'routes.yaml'), routes.replace('- name: anthropic', '- name: 42'));
  await until('the control plane reports the problem', () => gw.controlPlane.engine.issues().some((i) => i.path.includes('backends[0].name')));
  assert.equal(gw.sidecar.snapshotVersion, version);
  assert.equal(await status('claude-haiku-4-5'), 200);
  // A guardrail the sidecar cannot compile is NACKed.
  await writeFile(join(dir, 'routes.yaml'), routes);
  await writeFile(join(dir, 'guard.yaml'), 'apiVersion: sluice.dev/v1alpha1\nkind: LLMGuardrail\nmetadata: { name: g }\nspec: { direction: input, action: block, detectors: [{ kind: regex, values: ["(x"] }] }\n');
  await until('NACK', async () => (await fetchSidecars(gw.controlPlane.adminUrl)).some((s) => s.lastNack !== null));
  assert.equal(await status('claude-haiku-4-5'), 200);
  const text = formatSidecars(await fetchSidecars(gw.controlPlane.adminUrl));
  assert.match(text, /^NAMESPACE\s+POD\s+SENT\s+ACKED\s+CONNECTED\s+LAST NACK/);
  assert.match(text, /Unterminated group/);
});

test('sluice validate finds schema, reference and sidecar-side problems', async () => {
  assert.deepEqual((await validatePaths([EXAMPLES.pathname])).problems, []);
  const r = await validatePaths([join(dir, 'guard.yaml'), EXAMPLES.pathname]);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /^guardrail default\/g: detector regex: Invalid regular expression/);
});
