import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiException,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  makeInformer,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject, V1Lease } from '@kubernetes/client-node';
import { startFakeKube } from './fake-kube.js';
import type { FakeKube, KubeObject } from './fake-kube.js';

const GROUP = 'sluice.dev';
const VERSION = 'v1alpha1';
const API_VERSION = `${GROUP}/${VERSION}`;
const NS = 'default';
const ROUTES_PATH = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/llmroutes`;

let fake: FakeKube;
let kc: KubeConfig;
let custom: CustomObjectsApi;

before(async () => {
  fake = await startFakeKube();
  kc = fake.kubeConfig();
  custom = kc.makeApiClient(CustomObjectsApi);
});

after(async () => {
  await fake.close();
});

function route(name: string, spec: Record<string, unknown>, labels?: Record<string, string>, namespace = NS): KubeObject {
  return { apiVersion: API_VERSION, kind: 'LLMRoute', metadata: { name, namespace, ...(labels ? { labels } : {}) }, spec };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retry `check` until it stops throwing (or rethrow its last error after `timeoutMs`). */
async function eventually(check: () => void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(10);
    }
  }
}

function statusCode(err: unknown): number | undefined {
  return err instanceof ApiException ? (err.code as number) : undefined;
}

function errorBody(err: unknown): Record<string, unknown> {
  assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
  return JSON.parse(String(err.body)) as Record<string, unknown>;
}

interface WatchEvent {
  type: string;
  object: Record<string, unknown> & { metadata?: { name?: string; resourceVersion?: string } };
}

/** Open a watch with the real client; collects events and resolves `done` when the client reports the end. */
async function openWatch(
  path: string,
  query: Record<string, string | boolean | number>,
): Promise<{ events: WatchEvent[]; done: Promise<unknown>; abort: () => void }> {
  const events: WatchEvent[] = [];
  let resolveDone!: (err: unknown) => void;
  const done = new Promise<unknown>((r) => (resolveDone = r));
  const controller = await new Watch(kc).watch(
    path,
    query,
    (type, object: WatchEvent['object']) => events.push({ type, object }),
    (err) => resolveDone(err),
  );
  return { events, done, abort: () => controller.abort() };
}

const names = (events: WatchEvent[]): string[] => events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`);

test('makeInformer over CustomObjectsApi: add/update/delete, relist after expireWatches, reconnect after dropWatches', async () => {
  const listRoutes = (): Promise<KubernetesListObject<KubernetesObject>> =>
    custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'llmroutes' }) as Promise<
      KubernetesListObject<KubernetesObject>
    >;
  fake.apply(route('inf-1', { backend: 'a' }));
  const informer = makeInformer(kc, ROUTES_PATH, listRoutes);
  const events: string[] = [];
  let errors = 0;
  let stopping = false;
  informer.on('add', (o) => events.push(`add ${o.metadata?.name ?? ''}`));
  informer.on('update', (o) => events.push(`update ${o.metadata?.name ?? ''}`));
  informer.on('delete', (o) => events.push(`delete ${o.metadata?.name ?? ''}`));
  informer.on('error', () => {
    // client-node's documented pattern: a ListWatch stops on a connection error; restart it. (stop()
    // itself surfaces as an AbortError here, hence the flag.)
    if (stopping) return;
    errors++;
    setTimeout(() => void informer.start(), 20);
  });
  const listCalls = (): number => fake.requests.filter((r) => r.method === 'GET' && r.path === ROUTES_PATH && !r.query.includes('watch=')).length;
  const listsBefore = listCalls();
  const converged = (): void => {
    const cached = informer
      .list(NS)
      .map((o) => `${o.metadata?.name ?? ''}@${o.metadata?.resourceVersion ?? ''}`)
      .sort();
    const stored = fake.list(API_VERSION, 'LLMRoute', NS).map((o) => `${o.metadata.name ?? ''}@${o.metadata.resourceVersion ?? ''}`);
    assert.deepEqual(cached, stored);
  };
  try {
    await informer.start();
    await eventually(() => assert.equal(fake.openWatches, 1));
    assert.deepEqual(events, ['add inf-1']);

    fake.apply(route('inf-2', { backend: 'b' }));
    await custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: NS, plural: 'llmroutes', name: 'inf-1', body: { spec: { backend: 'a2' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(fake.delete(API_VERSION, 'LLMRoute', NS, 'inf-2'), true);
    await eventually(() => assert.deepEqual(events, ['add inf-1', 'add inf-2', 'update inf-1', 'delete inf-2']));
    await eventually(converged);
    const cachedSpec = informer.get('inf-1', NS) as (KubernetesObject & { spec?: unknown }) | undefined;
    assert.deepEqual(cachedSpec?.spec, { backend: 'a2' });
    assert.equal(listCalls() - listsBefore, 1);

    // 410 Gone on the open watch: the informer relists; changes made meanwhile show up as add/delete.
    events.length = 0;
    fake.expireWatches();
    fake.apply(route('inf-3', { backend: 'c' }));
    fake.delete(API_VERSION, 'LLMRoute', NS, 'inf-1');
    await eventually(() => assert.equal(listCalls() - listsBefore, 2));
    await eventually(converged);
    await eventually(() => assert.deepEqual(events.sort(), ['add inf-3', 'delete inf-1']));
    await eventually(() => assert.equal(fake.openWatches, 1));

    // Abrupt disconnect: the watch is re-established from the last resourceVersion and the missed
    // events are replayed from history (no relist).
    events.length = 0;
    fake.dropWatches();
    fake.apply(route('inf-4', { backend: 'd' }));
    fake.apply(route('inf-3', { backend: 'c2' }));
    await eventually(() => assert.deepEqual(events, ['add inf-4', 'update inf-3']));
    await eventually(converged);
    assert.ok(errors >= 1, 'the dropped connection surfaced as an informer error');
    assert.equal(listCalls() - listsBefore, 2, 'history replay, no relist');

    // A clean end of the watch (apiserver request timeout): ListWatch reconnects by itself.
    events.length = 0;
    const errorsBefore = errors;
    fake.endWatches();
    fake.apply(route('inf-5', { backend: 'e' }));
    await eventually(() => assert.deepEqual(events, ['add inf-5']));
    await eventually(converged);
    assert.equal(errors, errorsBefore);
  } finally {
    stopping = true;
    await informer.stop();
    await eventually(() => assert.equal(fake.openWatches, 0));
  }
});

test('Watch: replay from a resourceVersion, 410 Expired after expireWatches, selectors, bookmarks, timeoutSeconds', async () => {
  const path = `/apis/${GROUP}/${VERSION}/namespaces/w/llmroutes`;
  fake.apply(route('w-1', { n: 1 }, { tier: 'gold' }, 'w'));
  const list = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'w', plural: 'llmroutes' })) as {
    metadata: { resourceVersion: string };
    items: unknown[];
  };
  const oldRv = list.metadata.resourceVersion;
  assert.equal(list.items.length, 1);
  fake.apply(route('w-2', { n: 2 }, { tier: 'silver' }, 'w'));

  // Without a resourceVersion: synthetic ADDED for the current state. With one: only later changes.
  const fromNow = await openWatch(path, {});
  const fromOld = await openWatch(path, { resourceVersion: oldRv });
  const gold = await openWatch(path, { resourceVersion: oldRv, labelSelector: 'tier=gold' });
  await eventually(() => assert.deepEqual(names(fromNow.events), ['ADDED w-1', 'ADDED w-2']));
  await eventually(() => assert.deepEqual(names(fromOld.events), ['ADDED w-2']));
  // Moving into / out of a selector is seen as ADDED / DELETED by the selective watch.
  fake.apply(route('w-2', { n: 2 }, { tier: 'gold' }, 'w'));
  fake.apply(route('w-1', { n: 1 }, { tier: 'bronze' }, 'w'));
  await eventually(() => assert.deepEqual(names(gold.events), ['ADDED w-2', 'DELETED w-1']));
  await eventually(() => assert.deepEqual(names(fromOld.events), ['ADDED w-2', 'MODIFIED w-2', 'MODIFIED w-1']));

  // Expiry: open watches end with an ERROR 410 event.
  fake.expireWatches();
  for (const w of [fromNow, fromOld, gold]) {
    assert.equal(await w.done, null);
    const last = w.events[w.events.length - 1];
    assert.equal(last?.type, 'ERROR');
    assert.equal(last?.object.code, 410);
    assert.equal(last?.object.reason, 'Expired');
    assert.equal(last?.object.kind, 'Status');
  }
  // An old resourceVersion is now rejected with 410...
  const stale = await openWatch(path, { resourceVersion: oldRv });
  assert.equal(await stale.done, null);
  assert.deepEqual(names(stale.events), ['ERROR ']);
  assert.equal(stale.events[0]?.object.code, 410);
  // ...while a fresh one works.
  const fresh = await openWatch(path, { resourceVersion: fake.resourceVersion });
  fake.apply(route('w-3', { n: 3 }, {}, 'w'));
  await eventually(() => assert.deepEqual(names(fresh.events), ['ADDED w-3']));
  fresh.abort();
  await fresh.done;
  await eventually(() => assert.equal(fake.openWatches, 0));

  // fieldSelector + timeoutSeconds (the server ends the watch cleanly).
  const byName = await openWatch(path, { resourceVersion: fake.resourceVersion, fieldSelector: 'metadata.name=w-3', timeoutSeconds: 1 });
  fake.apply(route('w-2', { n: 22 }, {}, 'w'));
  fake.apply(route('w-3', { n: 33 }, {}, 'w'));
  const started = Date.now();
  assert.equal(await byName.done, null);
  assert.ok(Date.now() - started < 3000);
  assert.deepEqual(names(byName.events), ['MODIFIED w-3']);

  // Bookmarks, on a fake with a short interval.
  const fast = await startFakeKube({ bookmarkIntervalMs: 30 });
  try {
    const events: WatchEvent[] = [];
    const controller = await new Watch(fast.kubeConfig()).watch(
      ROUTES_PATH,
      { resourceVersion: fast.resourceVersion, allowWatchBookmarks: true },
      (type, object: WatchEvent['object']) => events.push({ type, object }),
      () => {},
    );
    await eventually(() => assert.ok(events.filter((e) => e.type === 'BOOKMARK').length >= 2));
    const bookmark = events[0]?.object;
    assert.deepEqual(bookmark, { kind: 'LLMRoute', apiVersion: API_VERSION, metadata: { resourceVersion: fast.resourceVersion } });
    controller.abort();
    const watchRequest = fast.requests.find((r) => r.path === ROUTES_PATH);
    assert.match(watchRequest?.query ?? '', /watch=true/);
    assert.match(watchRequest?.query ?? '', /allowWatchBookmarks=true/);
  } finally {
    await fast.close();
  }
});

test('status subresource: changes status but not generation; spec changes bump generation; stale writes get 409', async () => {
  const ref = { group: GROUP, version: VERSION, namespace: NS, plural: 'llmbackends', name: 'st-1' };
  const created = (await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: 'llmbackends',
    body: { apiVersion: API_VERSION, kind: 'LLMBackend', metadata: { name: 'st-1' }, spec: { url: 'http://a' }, status: { ignored: true } },
  })) as KubeObject;
  assert.equal(created.metadata.generation, 1);
  assert.equal(created.status, undefined, 'status is dropped on create when a status subresource exists');
  assert.match(created.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.match(created.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  // The generated patch methods default to application/json-patch+json.
  const patched = (await custom.patchNamespacedCustomObjectStatus({
    ...ref,
    body: [{ op: 'add', path: '/status', value: { ready: true, observedGeneration: 1 } }],
  })) as KubeObject;
  assert.deepEqual(patched.status, { ready: true, observedGeneration: 1 });
  assert.equal(patched.metadata.generation, 1);
  assert.notEqual(patched.metadata.resourceVersion, created.metadata.resourceVersion);
  assert.equal(fake.requests.at(-1)?.contentType, 'application/json-patch+json');

  // Merge patch on /status: spec changes there are ignored.
  const merged = (await custom.patchNamespacedCustomObjectStatus(
    { ...ref, body: { spec: { url: 'http://ignored' }, status: { ready: false } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )) as KubeObject;
  assert.deepEqual(merged.status, { ready: false, observedGeneration: 1 });
  assert.deepEqual(merged.spec, { url: 'http://a' });
  assert.equal(merged.metadata.generation, 1);

  // Replace /status.
  const replaced = (await custom.replaceNamespacedCustomObjectStatus({ ...ref, body: { ...merged, status: { phase: 'Ready' } } })) as KubeObject;
  assert.deepEqual(replaced.status, { phase: 'Ready' });
  assert.equal(replaced.metadata.generation, 1);

  // Main resource: status is ignored, spec bumps the generation.
  const respec = (await custom.patchNamespacedCustomObject(
    { ...ref, body: { spec: { url: 'http://b' }, status: { phase: 'Hacked' } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )) as KubeObject;
  assert.equal(respec.metadata.generation, 2);
  assert.deepEqual(respec.status, { phase: 'Ready' });
  const labelsOnly = (await custom.patchNamespacedCustomObject({
    ...ref,
    body: [{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }],
  })) as KubeObject;
  assert.equal(labelsOnly.metadata.generation, 2, 'metadata changes do not bump generation');

  // No-op update: nothing written.
  const noop = (await custom.replaceNamespacedCustomObject({ ...ref, body: labelsOnly })) as KubeObject;
  assert.equal(noop.metadata.resourceVersion, labelsOnly.metadata.resourceVersion);

  // Optimistic concurrency: stale resourceVersion on replace, JSON-patch test and merge patch.
  const stale = { ...created, spec: { url: 'http://c' } };
  await assert.rejects(custom.replaceNamespacedCustomObject({ ...ref, body: stale }), (err) => {
    assert.equal(statusCode(err), 409);
    const body = errorBody(err);
    assert.equal(body.kind, 'Status');
    assert.equal(body.reason, 'Conflict');
    assert.equal(body.status, 'Failure');
    return true;
  });
  await assert.rejects(
    custom.patchNamespacedCustomObject(
      { ...ref, body: { metadata: { resourceVersion: created.metadata.resourceVersion }, spec: { url: 'x' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ),
    (err) => statusCode(err) === 409,
  );
  await assert.rejects(
    custom.patchNamespacedCustomObject({ ...ref, body: [{ op: 'test', path: '/spec/url', value: 'nope' }] }),
    (err) => statusCode(err) === 422,
  );
  // Custom resources do not allow unconditional updates.
  const { resourceVersion: _rv, ...metaWithoutRv } = labelsOnly.metadata;
  await assert.rejects(
    custom.replaceNamespacedCustomObject({ ...ref, body: { ...labelsOnly, metadata: metaWithoutRv } }),
    (err) => statusCode(err) === 422,
  );
  const current = fake.get(API_VERSION, 'LLMBackend', NS, 'st-1');
  assert.equal(current?.metadata.generation, 2);
  assert.deepEqual(current?.spec, { url: 'http://b' });

  // Helper apply: bumps generation on spec changes only and keeps status when none is given.
  const applied = fake.apply({ apiVersion: API_VERSION, kind: 'LLMBackend', metadata: { name: 'st-1', namespace: NS }, spec: { url: 'http://d' } });
  assert.equal(applied.metadata.generation, 3);
  assert.deepEqual(applied.status, { phase: 'Ready' });
  assert.equal(applied.metadata.uid, created.metadata.uid);

  // Errors: 404 and 409 AlreadyExists as Status objects.
  await assert.rejects(custom.getNamespacedCustomObject({ ...ref, name: 'missing' }), (err) => {
    assert.equal(statusCode(err), 404);
    assert.equal(errorBody(err).reason, 'NotFound');
    assert.equal(errorBody(err).code, 404);
    return true;
  });
  await assert.rejects(
    custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'llmbackends', body: created }),
    (err) => statusCode(err) === 409 && errorBody(err).reason === 'AlreadyExists',
  );
});

test('finalizers: DELETE marks the object terminating; removing the last finalizer deletes it', async () => {
  const ref = { group: GROUP, version: VERSION, namespace: NS, plural: 'llmcaches', name: 'fin-1' };
  await custom.createNamespacedCustomObject({
    ...ref,
    body: { apiVersion: API_VERSION, kind: 'LLMCache', metadata: { name: 'fin-1', finalizers: ['sluice.dev/cleanup'] }, spec: {} },
  });
  const w = await openWatch(`/apis/${GROUP}/${VERSION}/namespaces/${NS}/llmcaches`, { resourceVersion: fake.resourceVersion });
  const terminating = (await custom.deleteNamespacedCustomObject(ref)) as KubeObject;
  assert.ok(terminating.metadata.deletionTimestamp);
  assert.ok(fake.get(API_VERSION, 'LLMCache', NS, 'fin-1'));
  await custom.patchNamespacedCustomObject({ ...ref, body: [{ op: 'remove', path: '/metadata/finalizers' }] });
  assert.equal(fake.get(API_VERSION, 'LLMCache', NS, 'fin-1'), undefined);
  await eventually(() => assert.deepEqual(names(w.events), ['MODIFIED fin-1', 'DELETED fin-1']));
  w.abort();
});

test('Lease leader election: contenders racing with create / replace-with-resourceVersion, exactly one wins', async () => {
  const coord = kc.makeApiClient(CoordinationV1Api);
  const namespace = 'sluice-system';
  const leaseName = 'sluice-control-plane';

  // Racing creates: one 201, the other 409 AlreadyExists.
  const creates = await Promise.allSettled(
    ['a', 'b'].map((id) =>
      coord.createNamespacedLease({
        namespace,
        body: { metadata: { name: leaseName }, spec: { holderIdentity: id, leaseDurationSeconds: 15, renewTime: new Date() } },
      }),
    ),
  );
  assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = creates.find((r) => r.status === 'rejected');
  assert.equal(statusCode(lost?.reason), 409);
  assert.equal(errorBody(lost?.reason).reason, 'AlreadyExists');

  // Both read the same version, both replace: one wins, the other gets 409 Conflict.
  const [readA, readB] = await Promise.all([coord.readNamespacedLease({ name: leaseName, namespace }), coord.readNamespacedLease({ name: leaseName, namespace })]);
  assert.ok(readA && readB);
  assert.equal(readA.metadata?.resourceVersion, readB.metadata?.resourceVersion);
  const take = (lease: V1Lease, id: string): Promise<V1Lease> =>
    coord.replaceNamespacedLease({
      name: leaseName,
      namespace,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: id, renewTime: new Date(), leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } },
    });
  const replaces = await Promise.allSettled([take(readA, 'a'), take(readB, 'b')]);
  assert.equal(replaces.filter((r) => r.status === 'fulfilled').length, 1);
  const conflict = replaces.find((r) => r.status === 'rejected');
  assert.equal(statusCode(conflict?.reason), 409);
  assert.equal(errorBody(conflict?.reason).reason, 'Conflict');

  // A client-go style tryAcquireOrRenew loop, several contenders, expired leases: one leader per round.
  const tryAcquireOrRenew = async (id: string, durationSeconds: number): Promise<boolean> => {
    let lease: V1Lease;
    try {
      lease = await coord.readNamespacedLease({ name: leaseName, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      try {
        await coord.createNamespacedLease({
          namespace,
          body: { metadata: { name: leaseName }, spec: { holderIdentity: id, leaseDurationSeconds: durationSeconds, renewTime: new Date() } },
        });
        return true;
      } catch (createErr) {
        if (statusCode(createErr) === 409) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? 0) * 1000 < Date.now();
    if (spec.holderIdentity && spec.holderIdentity !== id && !expired) return false;
    try {
      await coord.replaceNamespacedLease({
        name: leaseName,
        namespace,
        body: { ...lease, spec: { ...spec, holderIdentity: id, leaseDurationSeconds: durationSeconds, renewTime: new Date() } },
      });
      return true;
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
  };
  for (let round = 0; round < 5; round++) {
    // An expired lease held by someone else.
    const current = fake.get('coordination.k8s.io/v1', 'Lease', namespace, leaseName);
    assert.ok(current);
    fake.apply({ ...current, spec: { holderIdentity: 'gone', leaseDurationSeconds: 1, renewTime: new Date(Date.now() - 60_000).toISOString() } });
    const ids = ['c1', 'c2', 'c3', 'c4'];
    const results = await Promise.all(ids.map((id) => tryAcquireOrRenew(id, 30)));
    const winners = ids.filter((_, i) => results[i]);
    assert.equal(winners.length, 1, `round ${round}: winners ${winners.join(',')}`);
    const holder = fake.get('coordination.k8s.io/v1', 'Lease', namespace, leaseName)?.spec as { holderIdentity?: string } | undefined;
    assert.equal(holder?.holderIdentity, winners[0]);
    // The others now see a live lease held by the winner; the winner renews.
    const second = await Promise.all(ids.map((id) => tryAcquireOrRenew(id, 30)));
    assert.deepEqual(
      ids.filter((_, i) => second[i]),
      winners,
    );
  }
  // No lease at all: racing creates via the loop also elect exactly one.
  fake.delete('coordination.k8s.io/v1', 'Lease', namespace, leaseName);
  const fromScratch = await Promise.all(['d1', 'd2', 'd3'].map((id) => tryAcquireOrRenew(id, 30)));
  assert.equal(fromScratch.filter(Boolean).length, 1);
});

test('TokenReview returns what was set', async () => {
  const auth = kc.makeApiClient(AuthenticationV1Api);
  fake.setTokenReview('good-token', { authenticated: true, user: { username: 'system:serviceaccount:apps:web', uid: 'uid-123', groups: ['system:serviceaccounts'] } });
  const ok = await auth.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'good-token', audiences: ['sluice'] } } });
  assert.equal(ok.status?.authenticated, true);
  assert.equal(ok.status?.user?.username, 'system:serviceaccount:apps:web');
  assert.equal(ok.status?.user?.uid, 'uid-123');
  assert.deepEqual(ok.status?.user?.groups, ['system:serviceaccounts']);
  assert.deepEqual(ok.status?.audiences, ['sluice']);

  const bad = await auth.createTokenReview({ body: { spec: { token: 'unknown' } } });
  assert.equal(bad.status?.authenticated, false);
  assert.ok(bad.status?.error);

  fake.setTokenReview('aud-token', { authenticated: true, user: { username: 'u' }, audiences: ['other'] });
  const wrongAudience = await auth.createTokenReview({ body: { spec: { token: 'aud-token', audiences: ['sluice'] } } });
  assert.equal(wrongAudience.status?.authenticated, false);

  fake.setTokenReview('good-token', undefined);
  const forgotten = await auth.createTokenReview({ body: { spec: { token: 'good-token' } } });
  assert.equal(forgotten.status?.authenticated, false);
});

test('CoreV1Api secrets and pods: create, selectors, pagination, errors; discovery for KubernetesObjectApi', async () => {
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = 'core';
  for (const [name, app] of [
    ['s-1', 'web'],
    ['s-2', 'web'],
    ['s-3', 'db'],
  ] as const) {
    await core.createNamespacedSecret({ namespace, body: { metadata: { name, labels: { app } }, stringData: { k: name } } });
  }
  const web = await core.listNamespacedSecret({ namespace, labelSelector: 'app=web' });
  assert.deepEqual(
    web.items.map((s) => s.metadata?.name),
    ['s-1', 's-2'],
  );
  assert.ok(web.metadata?.resourceVersion);
  const notWeb = await core.listNamespacedSecret({ namespace, labelSelector: 'app!=web' });
  assert.deepEqual(
    notWeb.items.map((s) => s.metadata?.name),
    ['s-3'],
  );
  const setBased = await core.listNamespacedSecret({ namespace, labelSelector: 'app in (db, cache)' });
  assert.deepEqual(
    setBased.items.map((s) => s.metadata?.name),
    ['s-3'],
  );
  const byName = await core.listNamespacedSecret({ namespace, fieldSelector: 'metadata.name=s-2' });
  assert.deepEqual(
    byName.items.map((s) => s.metadata?.name),
    ['s-2'],
  );
  const page1 = await core.listNamespacedSecret({ namespace, limit: 2 });
  assert.equal(page1.items.length, 2);
  assert.ok(page1.metadata?._continue);
  const page2 = await core.listNamespacedSecret({ namespace, limit: 2, _continue: page1.metadata._continue });
  assert.deepEqual(
    page2.items.map((s) => s.metadata?.name),
    ['s-3'],
  );
  const read = await core.readNamespacedSecret({ name: 's-1', namespace });
  assert.equal(read.kind, 'Secret');
  assert.deepEqual(read.stringData, { k: 's-1' });

  await assert.rejects(core.readNamespacedSecret({ name: 'nope', namespace }), (err) => {
    assert.equal(statusCode(err), 404);
    assert.equal(errorBody(err).message, 'secrets "nope" not found');
    return true;
  });
  await assert.rejects(
    core.createNamespacedSecret({ namespace, body: { metadata: { name: 'Bad_Name' } } }),
    (err) => statusCode(err) === 422 && errorBody(err).reason === 'Invalid',
  );
  await core.deleteNamespacedSecret({ name: 's-3', namespace });
  assert.equal(fake.get('v1', 'Secret', namespace, 's-3'), undefined);

  // Pods have a status subresource too (strategic merge patch treated as merge patch).
  await core.createNamespacedPod({ namespace, body: { metadata: { name: 'p-1' }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
  const pod = await core.patchNamespacedPodStatus(
    { name: 'p-1', namespace, body: { status: { phase: 'Running' } } },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
  assert.equal(pod.status?.phase, 'Running');
  // Cluster-wide list across namespaces.
  const allSecrets = await core.listSecretForAllNamespaces();
  assert.ok(allSecrets.items.some((s) => s.metadata?.namespace === namespace));

  // KubernetesObjectApi resolves plurals through discovery.
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const got = await objects.read({ apiVersion: API_VERSION, kind: 'LLMBackend', metadata: { name: 'st-1', namespace: NS } });
  assert.equal(got.metadata?.name, 'st-1');
  const createdRoute = await objects.create({ apiVersion: API_VERSION, kind: 'LLMLimit', metadata: { name: 'lim-1', namespace: NS }, spec: { rpm: 10 } } as KubernetesObject);
  assert.equal(createdRoute.metadata?.generation, 1);
  const patchedRoute = await objects.patch({ apiVersion: API_VERSION, kind: 'LLMLimit', metadata: { name: 'lim-1', namespace: NS }, spec: { rpm: 20 } } as KubernetesObject);
  assert.equal(patchedRoute.metadata?.generation, 2);
});
