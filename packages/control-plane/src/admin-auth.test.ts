import { test } from 'node:test';
import assert from 'node:assert/strict';
import { anyAuth, staticTokenAuth, tokenReviewAuth, type ReviewedUser } from './admin-auth.js';

test('static token: bearer required, compared exactly', async () => {
  const auth = staticTokenAuth('s3cret');
  assert.deepEqual(await auth('Bearer s3cret'), { ok: true, who: 'token' });
  assert.equal((await auth(undefined)).ok, false);
  assert.equal((await auth('Bearer s3cre')).ok, false);
  assert.equal((await auth('Basic s3cret')).ok, false);
  const r = await auth('Bearer wrong!');
  assert.ok(!r.ok && r.status === 401);
});

test('TokenReview: users and group: entries admit, others get 403, failures 401, results cached a minute', async () => {
  let now = 0;
  let calls = 0;
  const users: Record<string, ReviewedUser | { error: string }> = {
    alice: { username: 'alice@example.com', groups: ['system:authenticated'] },
    grafana: { username: 'system:serviceaccount:monitoring:grafana', groups: ['system:serviceaccounts'] },
    viewer: { username: 'bob', groups: ['sluice-viewers'] },
    bad: { error: 'token expired' },
  };
  const auth = tokenReviewAuth(
    async (t) => {
      calls++;
      if (t === 'down') throw new Error('connect ECONNREFUSED');
      return users[t] ?? { error: 'unknown token' };
    },
    ['system:serviceaccount:monitoring:grafana', 'group:sluice-viewers'],
    () => now,
  );
  assert.deepEqual(await auth('Bearer grafana'), { ok: true, who: 'system:serviceaccount:monitoring:grafana' });
  assert.deepEqual(await auth('Bearer viewer'), { ok: true, who: 'bob' });
  const denied = await auth('Bearer alice');
  assert.ok(!denied.ok && denied.status === 403 && /alice@example.com may not read/.test(denied.message));
  const expired = await auth('Bearer bad');
  assert.ok(!expired.ok && expired.status === 401 && /token expired/.test(expired.message));
  const down = await auth('Bearer down');
  assert.ok(!down.ok && down.status === 401 && /unavailable/.test(down.message));
  const before = calls;
  await auth('Bearer grafana');
  assert.equal(calls, before, 'cached');
  now += 61_000;
  await auth('Bearer grafana');
  assert.equal(calls, before + 1, 'verified again after a minute');
});

test('anyAuth: the first that admits wins; a 403 is reported over a 401', async () => {
  const review = tokenReviewAuth(async () => ({ username: 'carol', groups: [] }), ['dave']);
  const both = anyAuth([staticTokenAuth('tok'), review]);
  assert.equal((await both('Bearer tok')).ok, true);
  const r = await both('Bearer other');
  assert.ok(!r.ok && r.status === 403, 'carol is known but not allowed');
});
