/**
 * Kubernetes mode end to end: the fake API server (real client-node informers, Leases, status
 * subresource), control plane replicas over real gRPC on loopback, real sidecars with PolicyClient
 * and the fake LLM provider. Policy as CRDs, keys from Secrets, status written by the leader only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startFakeKube, startFakeProvider, type FakeKube, type FakeProvider, type KubeObject, waitFor, captureLogger } from '@sluice/testkit';
import { startKubeControlPlane, type KubeControlPlane } from '../src/kube-index.js';
import { chat, startTestPod, type TestPod } from './pods.js';

const until = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<number> => waitFor(what, cond, timeoutMs);

const { logger, logs } = captureLogger<Record<string, unknown>>();

const API = 'sluice.dev/v1alpha1';
type Pod = TestPod;
const startPod = (cp: KubeControlPlane, name: string, labels: Record<string, string>): Promise<TestPod> =>
  startTestPod({ address: cp.controlPlane.grpcAddress, name, namespace: NS, labels, logger });
const NS = 'shop';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}
interface Status {
  observedGeneration?: number;
  conditions?: Condition[];
  sidecars?: { selected: number; acked: number };
}

const obj = (kind: string, name: string, spec: Record<string, unknown>, namespace = NS): KubeObject => ({ apiVersion: API, kind, metadata: { name, namespace }, spec });
const secret = (name: string, data: Record<string, string>, namespace = NS): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace },
  type: 'Opaque',
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});
const ROUTE_MAIN = { rules: [{ match: { models: ['gpt-*'] }, backends: [{ name: 'openai' }] }] };
const ROUTE_CLAUDE = { workloadSelector: { labels: { app: 'chat' } }, rules: [{ match: { models: ['claude-*'] }, backends: [{ name: 'anthropic' }] }] };

let kube: FakeKube;
let provider: FakeProvider;
let a: KubeControlPlane;
let aClosed = false;
const pods: Pod[] = [];

async function startReplica(pod: string): Promise<KubeControlPlane> {
  return startKubeControlPlane({
    kubeConfig: kube.kubeConfig(),
    logger,
    grpcAddress: '127.0.0.1:0',
    adminHost: '127.0.0.1',
    adminPort: 0,
    quietMs: 20,
    maxMs: 200,
    lease: { namespace: 'sluice-system', name: 'sluice-control-plane', identity: `${pod}-x`, leaseDurationSeconds: 1, renewIntervalMs: 150, retryIntervalMs: 100, renewDeadlineMs: 700 },
    status: { debounceMs: 50, resyncMs: 1000, peerPollMs: 100 },
    ackReports: { refreshMs: 300, debounceMs: 30 },
    backoff: { initialMs: 20, maxMs: 200 },
  });
}




const statusOf = (kind: string, name: string): Status => (kube.get(API, kind, NS, name)?.status ?? {}) as Status;
const cond = (s: Status, type: string): Condition | undefined => s.conditions?.find((c) => c.type === type);
const generationOf = (kind: string, name: string): number => kube.get(API, kind, NS, name)?.metadata.generation ?? -1;

/** Every sidecar connected to `cp` runs what it was last sent, and no ACK is outstanding. */
const allAcked = (cp: KubeControlPlane, n: number): boolean => {
  const sidecars = cp.controlPlane.streams.sidecars();
  return sidecars.length === n && sidecars.every((s) => s.versionAcked !== '' && s.versionAcked === s.versionSent);
};
const versions = (): string[] => pods.map((p) => p.sidecar.snapshotVersion ?? '');

before(async () => {
  kube = await startFakeKube();
  provider = await startFakeProvider();
  kube.apply(secret('openai-key', { apiKey: 'sk-from-secret-1' }));
  kube.apply(obj('LLMBackend', 'openai', { provider: 'openai', endpoint: provider.url, auth: { secretRef: { name: 'openai-key', key: 'apiKey' } } }));
  kube.apply(obj('LLMBackend', 'anthropic', { provider: 'anthropic', endpoint: provider.url }));
  kube.apply(obj('LLMRoute', 'main', ROUTE_MAIN));
  a = await startReplica('cp-a');
  await until('replica A leads', () => a.elector.isLeader);
  pods.push(await startPod(a, 'chat-1', { app: 'chat' }), await startPod(a, 'chat-2', { app: 'chat' }), await startPod(a, 'batch-1', { app: 'batch' }));
  await until('all sidecars ACK the first snapshot', () => allAcked(a, 3));
});

after(async () => {
  for (const p of pods) await p.close();
  if (!aClosed) await a.close();
  await provider.close();
  await kube.close();
});

describe('kubernetes source', () => {
  test('(a) CRDs reach every sidecar; the provider key comes from the Secret; status is written', async () => {
    for (const p of pods) assert.equal((await fetch(`${p.sidecar.adminUrl}/ready`)).status, 200);
    assert.deepEqual(a.source.watchedSecretNamespaces(), [NS], 'Secrets watched only where a backend references one');
    assert.ok(kube.requests.every((r) => !r.path.includes('/secrets') || r.path === `/api/v1/namespaces/${NS}/secrets`));
    const r = await chat(pods[0]!.sidecar, 'gpt-4o-mini');
    assert.equal(r.status, 200);
    assert.equal(provider.requests.at(-1)?.headers['authorization'], 'Bearer sk-from-secret-1');
    await until('route status Programmed', () => cond(statusOf('LLMRoute', 'main'), 'Programmed')?.status === 'True');
    const st = statusOf('LLMRoute', 'main');
    assert.equal(st.observedGeneration, 1);
    assert.deepEqual(st.sidecars, { selected: 3, acked: 3 });
    const accepted = cond(st, 'Accepted');
    assert.deepEqual({ ...accepted, lastTransitionTime: undefined }, { type: 'Accepted', status: 'True', reason: 'Valid', message: 'valid', observedGeneration: 1, lastTransitionTime: undefined });
    assert.match(accepted?.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(cond(st, 'Programmed')?.reason, 'Programmed');
    await until('backend status', () => cond(statusOf('LLMBackend', 'openai'), 'Programmed')?.status === 'True');
    // The anthropic backend is referenced by no route yet: accepted, but no sidecar runs it.
    await until('anthropic status', () => cond(statusOf('LLMBackend', 'anthropic'), 'Programmed')?.reason === 'NoSidecars');
  });

  test('(b) a policy change reaches every sidecar, scoped by workload selector', async () => {
    const before = versions();
    kube.apply(obj('LLMRoute', 'claude', ROUTE_CLAUDE));
    const ms = await until('chat sidecars ACK the new policy', () => allAcked(a, 3) && pods.filter((p) => p.name.startsWith('chat')).every((p) => !before.includes(p.sidecar.snapshotVersion ?? '')));
    assert.ok(ms < 3000, `took ${ms} ms`);
    assert.equal(pods[2]!.sidecar.snapshotVersion, before[2], 'the batch workload is not selected by the new route');
    assert.equal((await chat(pods[0]!.sidecar, 'claude-haiku-4-5')).status, 200);
    assert.equal((await chat(pods[1]!.sidecar, 'claude-haiku-4-5')).status, 200);
    assert.equal((await chat(pods[2]!.sidecar, 'claude-haiku-4-5')).status, 404);
    await until('claude route status', () => {
      const s = statusOf('LLMRoute', 'claude');
      return cond(s, 'Programmed')?.status === 'True' && s.sidecars?.selected === 2 && s.sidecars.acked === 2;
    });
  });

  test('(c) an invalid object: Accepted=False with the message and generation; the last good generation keeps serving', async () => {
    const before = versions();
    const programmedSince = cond(statusOf('LLMRoute', 'main'), 'Accepted')?.lastTransitionTime;
    kube.apply(obj('LLMRoute', 'main', { rules: [{ match: { models: 5 }, backends: [{ name: 'openai' }] }] }));
    const gen = generationOf('LLMRoute', 'main');
    assert.equal(gen, 2);
    await until('Accepted=False written', () => cond(statusOf('LLMRoute', 'main'), 'Accepted')?.status === 'False');
    const st = statusOf('LLMRoute', 'main');
    const acc = cond(st, 'Accepted');
    assert.equal(acc?.reason, 'Invalid');
    assert.match(acc?.message ?? '', /spec\.rules\[0\]\.match\.models: must be array/);
    assert.equal(acc?.observedGeneration, 2);
    assert.equal(st.observedGeneration, 2);
    assert.notEqual(acc?.lastTransitionTime, undefined);
    assert.ok(programmedSince !== undefined);
    const prog = cond(st, 'Programmed');
    assert.equal(prog?.status, 'False');
    assert.equal(prog?.reason, 'Invalid');
    assert.match(prog?.message ?? '', /last valid generation keeps serving/);
    assert.deepEqual(versions(), before, 'nothing new was pushed');
    assert.equal((await chat(pods[2]!.sidecar, 'gpt-4o-mini')).status, 200, 'generation 1 keeps serving');
    // Fixed again: Accepted flips back.
    kube.apply(obj('LLMRoute', 'main', ROUTE_MAIN));
    await until('Accepted=True again', () => {
      const s = statusOf('LLMRoute', 'main');
      return cond(s, 'Accepted')?.status === 'True' && s.observedGeneration === 3 && cond(s, 'Programmed')?.status === 'True';
    });
    assert.deepEqual(versions(), before, 'same content as generation 1: same snapshot versions');
  });

  test('(d) a snapshot the sidecars NACK: Programmed=False, reason Rejected; the last good one keeps serving', async () => {
    const before = versions();
    kube.apply(obj('LLMGuardrail', 'tickets', { workloadSelector: { labels: { app: 'chat' } }, direction: 'input', action: 'block', detectors: [{ kind: 'regex', name: 'ticket', values: ['(x'] }] }));
    await until('chat sidecars NACK', () => a.controlPlane.streams.sidecars().filter((s) => s.pod.startsWith('chat')).every((s) => s.lastNack !== null));
    await until('Rejected written', () => cond(statusOf('LLMGuardrail', 'tickets'), 'Programmed')?.reason === 'Rejected');
    const st = statusOf('LLMGuardrail', 'tickets');
    assert.equal(cond(st, 'Accepted')?.status, 'True', 'schema-valid');
    const prog = cond(st, 'Programmed');
    assert.equal(prog?.status, 'False');
    assert.match(prog?.message ?? '', /sidecars refused the snapshot/);
    assert.equal(prog?.observedGeneration, 1);
    assert.deepEqual(versions(), before);
    assert.equal((await chat(pods[0]!.sidecar, 'claude-haiku-4-5')).status, 200);
    kube.delete(API, 'LLMGuardrail', NS, 'tickets');
    await until('policy without the guardrail', () => !(a.controlPlane.engine.policySet?.objects.has('LLMGuardrail shop/tickets') ?? true));
  });

  test('(e) expired and dropped watches: the source relists / resumes and converges', async () => {
    const listsBefore = kube.requests.filter((r) => r.method === 'GET' && r.path === `/apis/${API}/llmroutes` && !r.query.includes('watch=')).length;
    kube.expireWatches();
    kube.apply(obj('LLMRoute', 'extra', { rules: [{ match: { models: ['extra-*'] }, backends: [{ name: 'openai' }] }] }));
    await until('route added after 410', async () => allAcked(a, 3) && (await chat(pods[2]!.sidecar, 'extra-1')).status === 200);
    const lists = kube.requests.filter((r) => r.method === 'GET' && r.path === `/apis/${API}/llmroutes` && !r.query.includes('watch=')).length;
    assert.ok(lists > listsBefore, 'relisted after 410 Gone');
    await until('watches re-established', () => kube.openWatches === 6);

    kube.dropWatches();
    kube.delete(API, 'LLMRoute', NS, 'extra');
    await until('route removed after a dropped connection', async () => allAcked(a, 3) && (await chat(pods[2]!.sidecar, 'extra-1')).status === 404);
    await until('watches re-established', () => kube.openWatches === 6);
    assert.ok(logs.some((l) => l['msg'] === 'kubernetes watch failed; restarting'));
    // Status keeps flowing.
    kube.apply(obj('LLMRoute', 'extra2', { rules: [{ match: { models: ['extra2-*'] }, backends: [{ name: 'openai' }] }] }));
    await until('status of a route added after the reconnect', () => cond(statusOf('LLMRoute', 'extra2'), 'Programmed')?.status === 'True');
    kube.delete(API, 'LLMRoute', NS, 'extra2');
    await until('converged', () => allAcked(a, 3) && !(a.controlPlane.engine.policySet?.objects.has('LLMRoute shop/extra2') ?? true));
  });

  test('(g) a Secret rotation gives the sidecars a new version with the new key', async () => {
    const before = versions();
    kube.apply(secret('openai-key', { apiKey: 'sk-from-secret-2' }));
    await until('every sidecar runs a new version', () => allAcked(a, 3) && versions().every((v, i) => v !== before[i]));
    assert.equal((await chat(pods[2]!.sidecar, 'gpt-4o-mini')).status, 200);
    assert.equal(provider.requests.at(-1)?.headers['authorization'], 'Bearer sk-from-secret-2');
    // A Secret nobody references changes nothing.
    const now = versions();
    kube.apply(secret('unrelated', { x: 'y' }));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(versions(), now);
  });

  test('(f) two replicas: both serve streams, only the leader writes status (counting both replicas\' sidecars), closing it hands over', async () => {
    const b = await startReplica('cp-b');
    let podB: Pod | undefined;
    try {
      await new Promise((r) => setTimeout(r, 300)); // a few election rounds
      assert.equal(a.elector.isLeader, true);
      assert.equal(b.elector.isLeader, false);
      assert.equal(b.elector.holder, a.elector.identity);
      podB = await startPod(b, 'chat-b', { app: 'chat' });
      await until('B serves its sidecar', () => allAcked(b, 1));
      assert.equal(podB.sidecar.snapshotVersion, pods[0]!.sidecar.snapshotVersion, 'same policy, same version on both replicas');
      assert.equal((await chat(podB.sidecar, 'gpt-4o-mini')).status, 200);

      // A change: only A writes its status.
      const statusPatches = (): number => kube.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status')).length;
      const aWrites = a.statusWriter.writes;
      const patches = statusPatches();
      kube.apply(obj('LLMRoute', 'two', { rules: [{ match: { models: ['two-*'] }, backends: [{ name: 'openai' }] }] }));
      await until('status of the new route', () => cond(statusOf('LLMRoute', 'two'), 'Programmed')?.status === 'True' && statusOf('LLMRoute', 'two').sidecars?.acked === 4);
      await until('B ACKed too', () => allAcked(b, 1) && allAcked(a, 3));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(b.statusWriter.writes, 0, 'the follower wrote nothing');
      assert.ok(a.statusWriter.writes > aWrites);
      assert.equal(statusPatches() - patches, a.statusWriter.writes - aWrites, 'every status write seen by the API server came from the leader');
      assert.deepEqual(statusOf('LLMRoute', 'two').sidecars, { selected: 4, acked: 4 }, "the leader counts its 3 sidecars and the follower's 1 (from the follower's ACK report)");
      assert.equal(kube.list('coordination.k8s.io/v1', 'Lease', 'sluice-system').filter((l) => l.metadata.labels?.['sluice.dev/ack-report-of'] === 'sluice-control-plane').length, 2, 'one ACK report per replica');

      // The leader goes away: it releases the Lease, B takes over and writes status (its sidecars).
      for (const p of pods) await p.close();
      pods.length = 0;
      const patchesBefore = statusPatches();
      await a.close();
      aClosed = true;
      assert.equal(a.statusWriter.writes > 0, true);
      const ms = await until('B leads', () => b.elector.isLeader, 3000);
      assert.ok(ms < 1000, `took over in ${ms} ms`);
      await until('B wrote status', () => b.statusWriter.writes > 0 && statusPatches() > patchesBefore);
      await until('status reflects B', () => {
        const s = statusOf('LLMRoute', 'two');
        return s.sidecars?.selected === 1 && s.sidecars.acked === 1;
      });
    } finally {
      await podB?.close();
      await b.close();
    }
    await until('no watch left open once both replicas are closed', () => kube.openWatches === 0);
    assert.equal((kube.get('coordination.k8s.io/v1', 'Lease', 'sluice-system', 'sluice-control-plane')?.spec as { holderIdentity?: string }).holderIdentity, '', 'released');
  });
});

/** URLs of @kubernetes/client-node modules loaded by importing `modules` (in a fresh process). */
function clientNodeModulesLoadedBy(modules: string[]): string[] {
  const urls = modules.map((m) => new URL(`../src/${m}`, import.meta.url).href);
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    for (const u of ${JSON.stringify(urls)}) await import(u);
    process.stdout.write(JSON.stringify(seen.filter((u) => u.includes('@kubernetes/client-node'))));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('@kubernetes/client-node stays out of the package index and the files source', () => {
  assert.deepEqual(clientNodeModulesLoadedBy(['index.js', 'file-source.js', 'config.js']), []);
  assert.ok(clientNodeModulesLoadedBy(['kube-index.js']).length > 0, 'the check does see it when it is loaded');
});
