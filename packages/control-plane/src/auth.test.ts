import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseServiceAccountUser, TokenAuthenticator, type TokenIdentity } from './auth.js';

const node = { namespace: 'shop', serviceAccount: 'default', pod: 'p1' };

test('binds the verified identity to the node it claims', async () => {
  const ids: Record<string, TokenIdentity | { error: string }> = {
    good: { namespace: 'shop', serviceAccount: 'default', pod: 'p1' },
    unbound: { namespace: 'shop', serviceAccount: 'default', pod: undefined },
    otherSa: { namespace: 'shop', serviceAccount: 'admin', pod: 'p1' },
    bad: { error: 'expired' },
  };
  const a = new TokenAuthenticator(async (t) => ids[t] ?? { error: 'unknown' });
  assert.equal((await a.authenticate('good', node)).ok, true);
  assert.equal((await a.authenticate('unbound', node)).ok, true, 'tokens without a pod claim bind by namespace and service account');
  assert.deepEqual(await a.authenticate('otherSa', node), { ok: false, reason: 'denied', message: 'token of shop/admin cannot stream for shop/default' });
  assert.deepEqual(await a.authenticate('good', { ...node, pod: 'p2' }), { ok: false, reason: 'denied', message: 'token bound to pod p1 cannot stream for pod p2' });
  assert.deepEqual(await a.authenticate('bad', node), { ok: false, reason: 'unauthenticated', message: 'token rejected: expired' });
  assert.equal((await a.authenticate(undefined, node)).ok, false);
});

test('caches successes for minutes, failures briefly, and never caches an unavailable verifier', async () => {
  let now = 0;
  let calls = 0;
  let down = false;
  const a = new TokenAuthenticator(
    async (t) => {
      calls++;
      if (down) throw new Error('apiserver down');
      return t === 'good' ? { namespace: 'shop', serviceAccount: 'default', pod: undefined } : { error: 'nope' };
    },
    { cacheTtlMs: 60_000, failureTtlMs: 1_000, now: () => now },
  );
  await a.authenticate('good', node);
  now = 59_000;
  await a.authenticate('good', node);
  assert.equal(calls, 1);
  now = 61_000;
  await a.authenticate('good', node);
  assert.equal(calls, 2);
  await a.authenticate('bad', node);
  now = 61_500;
  await a.authenticate('bad', node);
  assert.equal(calls, 3);
  now = 63_000;
  await a.authenticate('bad', node);
  assert.equal(calls, 4);
  down = true;
  const r = await a.authenticate('fresh', node);
  assert.equal(r.ok, false);
  down = false;
  assert.equal((await a.authenticate('good', node)).ok, true);
});

test('service account usernames', () => {
  assert.deepEqual(parseServiceAccountUser('system:serviceaccount:shop:default'), { namespace: 'shop', serviceAccount: 'default' });
  assert.equal(parseServiceAccountUser('alice'), undefined);
  assert.equal(parseServiceAccountUser('system:serviceaccount:shop'), undefined);
});
