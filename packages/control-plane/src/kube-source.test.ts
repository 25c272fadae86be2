import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { startFakeKube, type FakeKube, type KubeObject, waitFor as until, captureLogger } from '@sluice/testkit';
import { backoffDelay, KubeSource } from './kube-source.js';

const API = 'sluice.dev/v1alpha1';
let kube: FakeKube;

before(async () => {
  kube = await startFakeKube();
});
after(async () => {
  await kube.close();
});


const backend = (ns: string, name: string, auth?: Record<string, unknown>): KubeObject => ({
  apiVersion: API,
  kind: 'LLMBackend',
  metadata: { name, namespace: ns },
  spec: { provider: 'openai', ...(auth ? { auth } : {}) },
});
const route = (ns: string, name: string, models: unknown): KubeObject => ({
  apiVersion: API,
  kind: 'LLMRoute',
  metadata: { name, namespace: ns },
  spec: { rules: [{ match: { models }, backends: [{ name: 'b' }] }] },
});
const secret = (ns: string, name: string, data: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: ns },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});

/** Removes every policy object and Secret the tests created. */
function wipe(): void {
  for (const kind of ['LLMBackend', 'LLMRoute', 'LLMLimit', 'LLMCache', 'LLMGuardrail']) {
    for (const o of kube.list(API, kind)) kube.delete(API, kind, o.metadata.namespace, o.metadata.name ?? '');
  }
  for (const o of kube.list('v1', 'Secret')) kube.delete('v1', 'Secret', o.metadata.namespace, o.metadata.name ?? '');
}

const { logger, logs } = captureLogger<{ msg?: string; path?: string }>();

function newSource(): KubeSource {
  return new KubeSource({ kubeConfig: kube.kubeConfig(), logger, backoff: { initialMs: 20, maxMs: 200 }, secretSyncTimeoutMs: 2000 });
}

test('backoffDelay: exponential, capped, jittered within [cap/2, cap]', () => {
  assert.equal(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 0), 50);
  assert.equal(backoffDelay(0, { initialMs: 100, maxMs: 1000 }, () => 1), 100);
  assert.equal(backoffDelay(3, { initialMs: 100, maxMs: 1000 }, () => 1), 800);
  assert.equal(backoffDelay(10, { initialMs: 100, maxMs: 1000 }, () => 1), 1000);
  assert.equal(backoffDelay(1000, { initialMs: 100, maxMs: 1000 }, () => 0.5), 750);
});

test('start() lists every kind; objects come without status/managedFields, with generation; changes call onChange', async () => {
  wipe();
  kube.apply({ ...backend('shop', 'b'), status: { conditions: [] }, metadata: { name: 'b', namespace: 'shop', managedFields: [{ manager: 'kubectl' }] } });
  kube.apply(route('shop', 'main', ['gpt-*']));
  const src = newSource();
  let changes = 0;
  try {
    await src.start(() => changes++);
    const objs = src.objects();
    assert.deepEqual(
      objs.map((o) => o.where),
      ['kube:LLMBackend shop/b', 'kube:LLMRoute shop/main'],
    );
    const b = objs[0]?.object as { status?: unknown; metadata: Record<string, unknown> };
    assert.equal(b.status, undefined);
    assert.equal(b.metadata['managedFields'], undefined);
    assert.equal(b.metadata['generation'], 1);
    assert.equal(b.metadata['name'], 'b');
    assert.equal(src.observed('LLMBackend shop/b')?.status !== undefined, true, 'status stays visible to the status writer');
    assert.deepEqual(src.issues(), []);

    const c0 = changes;
    kube.apply(route('shop', 'main', ['gpt-4o']));
    await until('update seen', () => changes > c0);
    assert.deepEqual((src.objects()[1]?.object as { spec: { rules: Array<{ match: unknown }> } }).spec.rules[0]?.match, { models: ['gpt-4o'] });
    assert.equal((src.objects()[1]?.object as { metadata: { generation: number } }).metadata.generation, 2);

    // A status-only write (the status writer's own) is not a policy change.
    const c1 = changes;
    const stored = kube.get(API, 'LLMRoute', 'shop', 'main');
    assert.ok(stored);
    kube.apply({ ...stored, status: { observedGeneration: 2 } });
    await until('status seen', () => (src.observed('LLMRoute shop/main')?.status as { observedGeneration?: number } | undefined)?.observedGeneration === 2);
    assert.equal(changes, c1);

    kube.apply({ apiVersion: API, kind: 'LLMGuardrail', metadata: { name: 'g', namespace: 'other' }, spec: { direction: 'input', action: 'block', detectors: [{ kind: 'email' }] } });
    await until('add seen', () => src.objects().some((o) => o.where === 'kube:LLMGuardrail other/g'));
    const c2 = changes;
    kube.delete(API, 'LLMRoute', 'shop', 'main');
    await until('delete seen', () => changes > c2 && !src.objects().some((o) => o.where === 'kube:LLMRoute shop/main'));
  } finally {
    await src.close();
  }
  await until('no watch left', () => kube.openWatches === 0);
});

test('Secrets: watched only in namespaces with a secretRef backend; decoded; rotation and removal', async () => {
  wipe();
  kube.apply(backend('team-a', 'openai', { secretRef: { name: 'keys', key: 'openai' } }));
  kube.apply(backend('team-b', 'plain'));
  kube.apply(backend('team-c', 'envonly', { env: 'OPENAI_API_KEY' }));
  kube.apply(secret('team-a', 'keys', { openai: 'sk-one\n', other: 'x' }));
  kube.apply(secret('team-b', 'unrelated', { k: 'v' }));
  kube.requests.length = 0;
  const src = newSource();
  let changes = 0;
  try {
    await src.start(() => changes++);
    assert.deepEqual(src.watchedSecretNamespaces(), ['team-a']);
    const secretRequests = kube.requests.filter((r) => r.path.includes('/secrets'));
    assert.ok(secretRequests.length > 0);
    assert.ok(secretRequests.every((r) => r.path === '/api/v1/namespaces/team-a/secrets'), JSON.stringify(secretRequests));
    assert.equal(src.resolveSecret('team-a', { secretRef: { name: 'keys', key: 'openai' } }), 'sk-one', 'base64-decoded, trailing newline dropped');
    assert.equal(src.resolveSecret('team-a', { secretRef: { name: 'keys', key: 'missing' } }), undefined);
    assert.equal(src.resolveSecret('team-b', { secretRef: { name: 'unrelated', key: 'k' } }), undefined, 'not watched');
    assert.equal(src.resolveSecret('team-c', { env: 'PATH' }), undefined, 'auth.env is not available in Kubernetes mode');

    // Rotation of the referenced Secret is a change; an unreferenced Secret in the namespace is not.
    let c = changes;
    kube.apply(secret('team-a', 'keys', { openai: 'sk-two', other: 'x' }));
    await until('rotation seen', () => changes > c);
    assert.equal(src.resolveSecret('team-a', { secretRef: { name: 'keys', key: 'openai' } }), 'sk-two');
    c = changes;
    kube.apply(secret('team-a', 'tls', { crt: 'x' }));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(changes, c);

    // A backend in a new namespace: its Secrets are listed before the change is announced.
    kube.apply(secret('team-d', 'k', { key: 'sk-d' }));
    let seenAtChange: string | undefined = 'unset';
    await src.close(); // restart with a source that records what onChange sees
    const src2 = newSource();
    try {
      await src2.start(() => {
        seenAtChange = src2.resolveSecret('team-d', { secretRef: { name: 'k', key: 'key' } });
      });
      kube.apply(backend('team-d', 'd', { secretRef: { name: 'k', key: 'key' } }));
      await until('team-d watched', () => src2.watchedSecretNamespaces().includes('team-d'));
      await until('change announced', () => seenAtChange !== 'unset');
      assert.equal(seenAtChange, 'sk-d', 'onChange waited for the namespace Secrets');

      // The last secretRef backend of a namespace goes: its Secret watch stops.
      await until('5 kinds + Secrets of team-a and team-d watched', () => kube.openWatches === 7);
      kube.delete(API, 'LLMBackend', 'team-d', 'd');
      await until('team-d unwatched', () => !src2.watchedSecretNamespaces().includes('team-d'));
      await until('watch closed', () => kube.openWatches === 6);
      assert.equal(src2.resolveSecret('team-d', { secretRef: { name: 'k', key: 'key' } }), undefined);
      // Switching a backend from secretRef to no auth also stops the watch.
      kube.apply(backend('team-a', 'openai'));
      await until('team-a unwatched', () => src2.watchedSecretNamespaces().length === 0);
      await until('only the policy watches left', () => kube.openWatches === 5);
    } finally {
      await src2.close();
    }
  } finally {
    await src.close();
  }
  await until('no watch left', () => kube.openWatches === 0);
});

test('dropped and expired watches: restarted with backoff, relisted, converged', async () => {
  wipe();
  kube.apply(route('shop', 'r1', ['a']));
  kube.apply(backend('shop', 'b', { secretRef: { name: 's', key: 'k' } }));
  kube.apply(secret('shop', 's', { k: 'one' }));
  const src = newSource();
  try {
    await src.start(() => undefined);
    await until('6 watches', () => kube.openWatches === 6);
    logs.length = 0;
    kube.dropWatches();
    kube.apply(route('shop', 'r2', ['b']));
    kube.apply(secret('shop', 's', { k: 'two' }));
    await until('converged after drop', () => src.objects().some((o) => o.where === 'kube:LLMRoute shop/r2') && src.resolveSecret('shop', { secretRef: { name: 's', key: 'k' } }) === 'two');
    await until('watches back', () => kube.openWatches === 6);
    assert.equal(logs.filter((l) => l.msg === 'kubernetes watch failed; restarting').length, 6, 'each dropped watch was restarted');
    const lists = (): number => kube.requests.filter((r) => r.method === 'GET' && !r.query.includes('watch=')).length;
    const listsBefore = lists();
    kube.expireWatches();
    kube.delete(API, 'LLMRoute', 'shop', 'r1');
    kube.apply(secret('shop', 's', { k: 'three' }));
    await until('converged after 410', () => !src.objects().some((o) => o.where === 'kube:LLMRoute shop/r1') && src.resolveSecret('shop', { secretRef: { name: 's', key: 'k' } }) === 'three');
    assert.equal(lists() - listsBefore, 6, 'every informer relisted after 410');
    await until('watches back', () => kube.openWatches === 6);
  } finally {
    await src.close();
  }
  await until('no watch left', () => kube.openWatches === 0);
});

test('an unreachable API server: start() keeps retrying and close() ends it', async () => {
  // A port nobody listens on.
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const kc = kube.kubeConfig();
  const cluster = kc.getCurrentCluster();
  assert.ok(cluster);
  const { KubeConfig } = await import('@kubernetes/client-node');
  const dead = new KubeConfig();
  dead.loadFromOptions({
    clusters: [{ ...cluster, server: `http://127.0.0.1:${port}` }],
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  const src = new KubeSource({ kubeConfig: dead, backoff: { initialMs: 10, maxMs: 50 } });
  const started = src.start(() => undefined);
  let settled = false;
  started.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(settled, false, 'still waiting for the first list');
  await src.close();
  await assert.rejects(started, /stopped|closed/);
});
