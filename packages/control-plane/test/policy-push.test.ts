/**
 * Control plane + several sidecars over real gRPC on loopback, policy from a watched directory:
 * every sidecar ACKs each change, a broken edit keeps the last good policy serving, a snapshot a
 * sidecar cannot load is NACKed, and a control plane restart leaves the sidecars serving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeProvider, type FakeProvider, waitFor as until, quietLogger } from '@sluice/testkit';
import { FileSource, startControlPlane, type ControlPlane } from '../src/index.js';
import { chat, startTestPod, type TestPod } from './pods.js';

const logger = quietLogger();

function backends(fakeUrl: string): string {
  return `
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: openai, namespace: shop }
spec: { provider: openai, endpoint: "${fakeUrl}", auth: { env: TEST_OPENAI_KEY } }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: anthropic, namespace: shop }
spec: { provider: anthropic, endpoint: "${fakeUrl}" }
`;
}
const ROUTES_V1 = `
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: main, namespace: shop }
spec: { rules: [{ match: { models: ["gpt-*"] }, backends: [{ name: openai }] }] }
`;
const ROUTES_V2 = ROUTES_V1 + `---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: claude, namespace: shop }
spec:
  workloadSelector: { labels: { app: chat } }
  rules: [{ match: { models: ["claude-*"] }, backends: [{ name: anthropic }] }]
`;

let dir: string;
let fake: FakeProvider;
let cp: ControlPlane;
let grpcPort: number;
const pods: TestPod[] = [];
const startPod = (name: string, labels: Record<string, string>, stateDir?: string): Promise<TestPod> =>
  startTestPod({ address: `127.0.0.1:${grpcPort}`, name, labels, stateDir, logger });




async function startCp(port = 0): Promise<ControlPlane> {
  return startControlPlane({
    source: new FileSource(dir, { TEST_OPENAI_KEY: 'sk-from-env' }),
    logger,
    grpcAddress: `127.0.0.1:${port}`,
    adminHost: '127.0.0.1',
    adminPort: 0,
    quietMs: 20,
    maxMs: 200,
  });
}

const allAcked = (): boolean => {
  const sidecars = cp.streams.sidecars();
  return sidecars.length === pods.length && sidecars.every((s) => s.versionAcked !== '' && s.versionAcked === s.versionSent);
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-policy-'));
  fake = await startFakeProvider();
  await writeFile(join(dir, 'backends.yaml'), backends(fake.url));
  await writeFile(join(dir, 'routes.yaml'), ROUTES_V1);
  cp = await startCp();
  grpcPort = Number(cp.grpcAddress.split(':').pop());
  pods.push(await startPod('chat-1', { app: 'chat' }), await startPod('chat-2', { app: 'chat' }), await startPod('batch-1', { app: 'batch' }));
  await until('all sidecars ACK the first snapshot', allAcked);
});

after(async () => {
  for (const p of pods) await p.close();
  await cp.close();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

describe('policy push', () => {
  test('sidecars are ready with the first snapshot and serve with the injected key', async () => {
    for (const p of pods) assert.equal((await fetch(`${p.sidecar.adminUrl}/ready`)).status, 200);
    const r = await chat(pods[0]!.sidecar, 'gpt-4o-mini');
    assert.equal(r.status, 200);
    assert.equal(fake.requests.at(-1)?.headers['authorization'], 'Bearer sk-from-env');
    const metrics = await (await fetch(`${cp.adminUrl}/metrics`)).text();
    assert.ok(metrics.includes('sluice_cp_sidecars_connected 3'), metrics);
    assert.match(metrics, /sluice_cp_snapshot_acks_total [3-9]/);
    const route = cp.status().find((o) => o.key === 'LLMRoute shop/main');
    assert.equal(route?.accepted, true);
    assert.equal(route?.programmedReason, 'Programmed');
    assert.equal(route?.sidecarsAcked, 3);
  });

  test('a file edit reaches every sidecar, scoped by workload selector', async () => {
    assert.equal((await chat(pods[0]!.sidecar, 'claude-haiku-4-5')).status, 404);
    const before = cp.streams.sidecars().map((s) => s.versionAcked);
    await writeFile(join(dir, 'routes.yaml'), ROUTES_V2);
    const ms = await until('all ACK the new policy', () => allAcked() && cp.streams.sidecars().filter((s) => s.pod.startsWith('chat')).every((s) => !before.includes(s.versionAcked)));
    assert.ok(ms < 2000, `took ${ms} ms`);
    assert.equal((await chat(pods[0]!.sidecar, 'claude-haiku-4-5')).status, 200);
    assert.equal((await chat(pods[1]!.sidecar, 'claude-haiku-4-5')).status, 200);
    assert.equal((await chat(pods[2]!.sidecar, 'claude-haiku-4-5')).status, 404, 'the batch workload is not selected by the claude route');
    const versions = new Set(cp.streams.sidecars().map((s) => s.versionAcked));
    assert.equal(versions.size, 2, 'two workloads, two snapshots');
  });

  test('a broken YAML edit keeps the last good policy serving and is reported', async () => {
    const acked = pods[0]!.sidecar.snapshotVersion;
    await writeFile(join(dir, 'routes.yaml'), ROUTES_V2 + '\n  broken: [unclosed\n');
    await until('the control plane reports the YAML problem', async () => {
      const p = (await (await fetch(`${cp.adminUrl}/v1/policy`)).json()) as { issues: Array<{ code: string }> };
      return p.issues.some((i) => i.code === 'SLUICE_ERR_POLICY_YAML');
    });
    assert.equal(pods[0]!.sidecar.snapshotVersion, acked);
    assert.equal((await chat(pods[0]!.sidecar, 'claude-haiku-4-5')).status, 200);
    await writeFile(join(dir, 'routes.yaml'), ROUTES_V2.replace('models: ["claude-*"]', 'models: 5'));
    await until('the invalid route is reported', () => cp.status().some((o) => o.key === 'LLMRoute shop/claude' && !o.accepted));
    const st = cp.status().find((o) => o.key === 'LLMRoute shop/claude');
    assert.equal(st?.programmedReason, 'Invalid');
    assert.match(st?.acceptedMessage ?? '', /spec.rules\[0\].match.models: must be array/);
    assert.equal(pods[0]!.sidecar.snapshotVersion, acked, 'the last good generation keeps serving');
    await writeFile(join(dir, 'routes.yaml'), ROUTES_V2);
  });

  test('a snapshot the sidecar cannot load is NACKed and the last good one keeps serving', async () => {
    const acked = pods[0]!.sidecar.snapshotVersion;
    await writeFile(
      join(dir, 'guard.yaml'),
      `apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: tickets, namespace: shop }
spec: { workloadSelector: { labels: { app: chat } }, direction: input, action: block, detectors: [{ kind: regex, name: ticket, values: ["TKT-(["] }] }
`,
    );
    await until('both chat sidecars NACK', () => cp.streams.sidecars().filter((s) => s.pod.startsWith('chat')).every((s) => s.lastNack !== null));
    const info = cp.streams.sidecars().find((s) => s.pod === 'chat-1')!;
    assert.match(info.lastNack!.message, /guardrail shop\/tickets/);
    assert.equal(info.lastNack!.resources[0]?.code, 'SLUICE_ERR_POLICY_REJECTED');
    assert.equal(info.versionAcked, acked);
    const guard = cp.status().find((o) => o.key === 'LLMGuardrail shop/tickets');
    assert.equal(guard?.accepted, true, 'schema-valid');
    assert.equal(guard?.programmedReason, 'Rejected');
    assert.match(guard?.programmedMessage ?? '', /Unterminated|Invalid regular expression/);
    assert.equal(pods[0]!.sidecar.snapshotVersion, acked);
    assert.equal((await chat(pods[0]!.sidecar, 'claude-haiku-4-5')).status, 200);
    // The status API shows it too.
    const status = (await (await fetch(`${cp.adminUrl}/v1/sidecars`)).json()) as { sidecars: Array<{ pod: string; lastNack: unknown }> };
    assert.ok(status.sidecars.find((s) => s.pod === 'chat-1')?.lastNack);
    // Removing the object brings the target back to the version the sidecars run: nothing to send.
    await writeFile(join(dir, 'guard.yaml'), '');
    await until('policy recompiled', async () => ((await (await fetch(`${cp.adminUrl}/v1/policy`)).json()) as { objects: string[] }).objects.every((o) => !o.includes('tickets')));
    assert.equal(pods[0]!.sidecar.snapshotVersion, acked);
    // The stream is not stuck: the next change is sent and ACKed, clearing the NACK.
    await writeFile(join(dir, 'routes.yaml'), ROUTES_V2.replace('models: ["claude-*"]', 'models: ["claude-*", "fast"]'));
    await until('next change ACKed', () => allAcked() && cp.streams.sidecars().every((s) => s.lastNack === null || s.versionAcked === s.versionSent));
    assert.notEqual(pods[0]!.sidecar.snapshotVersion, acked);
  });

  test('control plane restart: sidecars keep serving, reconnect and converge', async () => {
    const port = grpcPort;
    const versions = pods.map((p) => p.sidecar.snapshotVersion);
    await cp.close();
    await until('sidecars notice', () => pods.every((p) => !p.client.connected));
    assert.equal((await chat(pods[0]!.sidecar, 'gpt-4o-mini')).status, 200, 'serving while the control plane is away');
    cp = await startCp(port);
    await until('all reconnect', () => cp.streams.sidecars().length === pods.length && pods.every((p) => p.client.connected || true) && cp.streams.sidecars().every((s) => s.versionAcked !== ''), 10_000);
    assert.deepEqual(pods.map((p) => p.sidecar.snapshotVersion), versions, 'same policy, same versions: nothing to resend');
    assert.deepEqual(cp.streams.sidecars().map((s) => s.versionSent).filter(Boolean), [], 'reconnect with the current version sends nothing');
  });

  test('a restarted sidecar serves its last good snapshot from disk before the control plane answers', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'sluice-state-'));
    const p1 = await startPod('disk-1', { app: 'chat' }, stateDir);
    await until('first snapshot ACKed', () => cp.streams.sidecars().some((s) => s.pod === 'disk-1' && s.versionAcked !== ''));
    const version = p1.sidecar.snapshotVersion;
    await p1.close();
    await cp.close();
    const p2 = await startPod('disk-2', { app: 'chat' }, stateDir);
    try {
      assert.equal(p2.sidecar.snapshotVersion, version);
      assert.equal((await chat(p2.sidecar, 'claude-haiku-4-5')).status, 200);
    } finally {
      await p2.close();
      cp = await startCp(grpcPort);
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
