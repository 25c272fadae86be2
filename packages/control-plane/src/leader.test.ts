import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeKube, type FakeKube, waitFor as until } from '@sluice/testkit';
import { LeaderElector, leaderIdentity, type LeaderElectorOptions } from './leader.js';

const LEASE = 'coordination.k8s.io/v1';
let kube: FakeKube;

before(async () => {
  kube = await startFakeKube();
});
after(async () => {
  await kube.close();
});


interface Contender {
  elector: LeaderElector;
  events: string[];
}

function contender(name: string, id: string, extra: Partial<LeaderElectorOptions> = {}, fake: FakeKube = kube): Contender {
  const events: string[] = [];
  const elector = new LeaderElector({
    kubeConfig: fake.kubeConfig(),
    namespace: 'sluice-system',
    name,
    identity: id,
    leaseDurationSeconds: 1,
    renewIntervalMs: 100,
    retryIntervalMs: 50,
    renewDeadlineMs: 600,
    onStartedLeading: () => events.push('start'),
    onStoppedLeading: () => events.push('stop'),
    ...extra,
  });
  return { elector, events };
}

const holder = (name: string): string | undefined => (kube.get(LEASE, 'Lease', 'sluice-system', name)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;

test('leaderIdentity: pod name plus a random suffix', () => {
  const a = leaderIdentity('cp-0');
  const b = leaderIdentity('cp-0');
  assert.match(a, /^cp-0-[0-9a-f]{8}$/);
  assert.notEqual(a, b);
  assert.ok(leaderIdentity('').length > 9, 'host name when the pod name is unset');
});

test('three contenders: exactly one leads and renews; closing it hands over quickly', async () => {
  const cs = ['a', 'b', 'c'].map((id) => contender('race', id));
  try {
    for (const c of cs) c.elector.start();
    await until('a leader', () => cs.some((c) => c.elector.isLeader));
    await new Promise((r) => setTimeout(r, 400)); // several renew / retry rounds
    const leaders = cs.filter((c) => c.elector.isLeader);
    assert.equal(leaders.length, 1);
    const leader = leaders[0]!;
    assert.equal(holder('race'), leader.elector.identity);
    assert.deepEqual(leader.events, ['start'], 'no flapping');
    const lease = kube.get(LEASE, 'Lease', 'sluice-system', 'race');
    assert.equal((lease?.spec as { leaseDurationSeconds?: number }).leaseDurationSeconds, 1);
    assert.match(String((lease?.spec as { renewTime?: string }).renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime');

    await leader.elector.close();
    assert.deepEqual(leader.events, ['start', 'stop']);
    assert.equal(leader.elector.isLeader, false);
    const ms = await until('another leader', () => cs.some((c) => c !== leader && c.elector.isLeader));
    assert.ok(ms < 500, `released lease taken over in ${ms} ms (lease duration 1 s)`);
    assert.equal(cs.filter((c) => c.elector.isLeader).length, 1);
    const next = cs.find((c) => c.elector.isLeader)!;
    assert.equal(holder('race'), next.elector.identity);
    assert.equal((kube.get(LEASE, 'Lease', 'sluice-system', 'race')?.spec as { leaseTransitions?: number }).leaseTransitions, 1);
  } finally {
    for (const c of cs) await c.elector.close();
  }
  assert.equal(holder('race'), '', 'released on close');
});

test('a lease held by someone else is respected until it expires, then taken', async () => {
  kube.apply({ apiVersion: LEASE, kind: 'Lease', metadata: { name: 'held', namespace: 'sluice-system' }, spec: { holderIdentity: 'ghost', leaseDurationSeconds: 1, renewTime: new Date().toISOString() } });
  const c = contender('held', 'me');
  try {
    const t0 = Date.now();
    c.elector.start();
    await until('leader', () => c.elector.isLeader, 3000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 900, `waited ${waited} ms for the ghost's lease to expire`);
    assert.equal(holder('held'), 'me');

    // Someone else takes the lease over (e.g. after a partition): the elector steps down.
    const lease = kube.get(LEASE, 'Lease', 'sluice-system', 'held');
    assert.ok(lease);
    kube.apply({ ...lease, spec: { ...(lease.spec as object), holderIdentity: 'usurper', renewTime: new Date().toISOString() } });
    await until('stepped down', () => !c.elector.isLeader);
    assert.deepEqual(c.events, ['start', 'stop']);
  } finally {
    await c.elector.close();
  }
  assert.equal(holder('held'), 'usurper', 'close() does not release a lease it does not hold');
});

test('a leader that cannot renew steps down after the renew deadline', async () => {
  const own = await startFakeKube();
  const c = contender('deadline', 'solo', { requestTimeoutMs: 100 }, own);
  try {
    c.elector.start();
    await until('leader', () => c.elector.isLeader);
    await own.close();
    const ms = await until('stepped down', () => !c.elector.isLeader, 3000);
    assert.ok(ms >= 400, `stepped down after ${ms} ms`);
    assert.deepEqual(c.events, ['start', 'stop']);
  } finally {
    await c.elector.close();
  }
});
