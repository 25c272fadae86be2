import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeKube, type FakeKube, waitFor as until } from '@sluice/testkit';
import { KubeSource } from './kube-source.js';
import type { ObjectStatus } from './status-view.js';
import { desiredStatus, sameStatus, StatusWriter } from './status-writer.js';

const API = 'sluice.dev/v1alpha1';

const base: ObjectStatus = {
  key: 'LLMRoute shop/main',
  kind: 'LLMRoute',
  namespace: 'shop',
  name: 'main',
  generation: 3,
  accepted: true,
  acceptedReason: 'Valid',
  acceptedMessage: 'valid',
  programmed: false,
  programmedReason: 'Pending',
  programmedMessage: '1 of 2 sidecars run it',
  sidecarsSelected: 2,
  sidecarsAcked: 1,
};
const t1 = new Date('2030-01-01T00:00:00.123Z');
const t2 = new Date('2030-01-01T00:05:00Z');

test('desiredStatus: Kubernetes condition shape, observedGeneration, sidecar counts', () => {
  assert.deepEqual(desiredStatus(base, undefined, t1), {
    observedGeneration: 3,
    conditions: [
      { type: 'Accepted', status: 'True', reason: 'Valid', message: 'valid', observedGeneration: 3, lastTransitionTime: '2030-01-01T00:00:00Z' },
      { type: 'Programmed', status: 'False', reason: 'Pending', message: '1 of 2 sidecars run it', observedGeneration: 3, lastTransitionTime: '2030-01-01T00:00:00Z' },
    ],
    sidecars: { selected: 2, acked: 1 },
  });
});

test('desiredStatus: lastTransitionTime changes only when a condition flips', () => {
  const first = desiredStatus(base, undefined, t1);
  const same = desiredStatus({ ...base, programmedMessage: 'still pending', generation: 4 }, first, t2);
  assert.equal(same.conditions[0]?.lastTransitionTime, '2030-01-01T00:00:00Z');
  assert.equal(same.conditions[1]?.lastTransitionTime, '2030-01-01T00:00:00Z', 'reason/message/generation changes are no transition');
  const flipped = desiredStatus({ ...base, programmed: true, programmedReason: 'Programmed', sidecarsAcked: 2 }, first, t2);
  assert.equal(flipped.conditions[0]?.lastTransitionTime, '2030-01-01T00:00:00Z');
  assert.equal(flipped.conditions[1]?.lastTransitionTime, '2030-01-01T00:05:00Z');
  assert.equal(flipped.conditions[1]?.status, 'True');
  const long = desiredStatus({ ...base, acceptedMessage: 'x'.repeat(40_000) }, undefined, t1);
  assert.equal(long.conditions[0]?.message.length, 32_768);
});

test('sameStatus: compares our fields only', () => {
  const d = desiredStatus(base, undefined, t1);
  assert.equal(sameStatus(d, JSON.parse(JSON.stringify(d))), true);
  assert.equal(sameStatus(d, { ...JSON.parse(JSON.stringify(d)), foreign: 1 }), true);
  assert.equal(sameStatus(d, { ...d, sidecars: { selected: 2, acked: 2 } }), false);
  assert.equal(sameStatus(d, undefined), false);
});

let kube: FakeKube;
before(async () => {
  kube = await startFakeKube();
});
after(async () => {
  await kube.close();
});


test('StatusWriter: writes /status only while leading, merge patch, skips unchanged, debounced triggers', async () => {
  kube.apply({ apiVersion: API, kind: 'LLMRoute', metadata: { name: 'main', namespace: 'shop' }, spec: { rules: [] } });
  kube.apply({ apiVersion: API, kind: 'LLMRoute', metadata: { name: 'gone', namespace: 'shop' }, spec: { rules: [] } });
  const source = new KubeSource({ kubeConfig: kube.kubeConfig() });
  await source.start(() => undefined);
  let statuses: ObjectStatus[] = [{ ...base, generation: 1 }, { ...base, key: 'LLMRoute shop/gone', name: 'gone', generation: 1 }];
  const listeners: Array<() => void> = [];
  const writer = new StatusWriter({
    kubeConfig: kube.kubeConfig(),
    controlPlane: {
      status: () => statuses,
      engine: { subscribe: (l) => (listeners.push(l), () => undefined) },
      streams: { onAnswer: (l) => (listeners.push(l), () => undefined) },
    },
    observed: (k) => source.observed(k),
    debounceMs: 20,
  });
  const statusWrites = (): typeof kube.requests => kube.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status'));
  try {
    kube.requests.length = 0;
    for (const l of listeners) l();
    await writer.flush();
    assert.equal(statusWrites().length, 0, 'a follower writes nothing');

    kube.delete(API, 'LLMRoute', 'shop', 'gone');
    await until('source saw the delete', () => source.observed('LLMRoute shop/gone') === undefined);
    writer.setLeading(true);
    await until('written', () => writer.writes === 1);
    const w = statusWrites();
    assert.equal(w.length, 1);
    assert.equal(w[0]?.path, '/apis/sluice.dev/v1alpha1/namespaces/shop/llmroutes/main/status');
    assert.equal(w[0]?.contentType, 'application/merge-patch+json');
    const stored = kube.get(API, 'LLMRoute', 'shop', 'main')?.status as { observedGeneration: number; conditions: Array<{ type: string; status: string; lastTransitionTime: string }>; sidecars: unknown };
    assert.equal(stored.observedGeneration, 1);
    assert.deepEqual(stored.conditions.map((c) => `${c.type}=${c.status}`), ['Accepted=True', 'Programmed=False']);
    assert.deepEqual(stored.sidecars, { selected: 2, acked: 1 });

    // Nothing changed: no write, whether or not the informer has seen ours yet.
    await writer.flush();
    await until('informer saw the write', () => source.observed('LLMRoute shop/main')?.status !== undefined);
    await writer.flush();
    assert.equal(statusWrites().length, 1);

    // A change (e.g. an ACK) is written soon, once for a burst of triggers.
    const ltt = stored.conditions[1]?.lastTransitionTime;
    statuses = [{ ...base, generation: 1, programmed: true, programmedReason: 'Programmed', programmedMessage: '2 of 2 sidecars run it', sidecarsAcked: 2 }];
    for (let i = 0; i < 5; i++) for (const l of listeners) l();
    await until('second write', () => writer.writes === 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(statusWrites().length, 2);
    const after = kube.get(API, 'LLMRoute', 'shop', 'main')?.status as { conditions: Array<{ status: string; lastTransitionTime: string }> };
    assert.equal(after.conditions[1]?.status, 'True');
    assert.ok(ltt !== undefined);

    // Someone overwrites the status: the next pass repairs it.
    const cur = kube.get(API, 'LLMRoute', 'shop', 'main');
    assert.ok(cur);
    kube.apply({ ...cur, status: { conditions: [] } });
    await until('informer saw the overwrite', () => Array.isArray((source.observed('LLMRoute shop/main')?.status as { conditions?: unknown[] }).conditions) && (source.observed('LLMRoute shop/main')?.status as { conditions: unknown[] }).conditions.length === 0);
    await writer.flush();
    assert.equal(statusWrites().length, 3);

    // Not leading any more: nothing is written.
    writer.setLeading(false);
    statuses = [{ ...base, generation: 1, accepted: false, acceptedReason: 'Invalid', acceptedMessage: 'bad' }];
    for (const l of listeners) l();
    await writer.flush();
    assert.equal(statusWrites().length, 3);
  } finally {
    await writer.close();
    await source.close();
  }
});
