import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotCache } from '@sluice/policy';
import { cacheScope, cacheUse, exactKey, LocalTier, type CachedAnswer } from './exact.js';

const policy = { keyVersion: '1', isolation: 'team', cacheNonDeterministic: false } as unknown as SnapshotCache;
const answer = (body: string): CachedAnswer => ({ form: 'json', body, backend: 'b', upstreamModel: 'm', costMicros: 1, createdAtMs: 0 });
const parts = { policy, scope: 'team:shop/search', route: 'shop/r#0', ingress: 'openai-chat', stream: false, includeUsage: false, promptVersion: '' };

test('the key ignores fields that do not change the answer and key order; scope, route, form and version change it', () => {
  const base = exactKey(parts, { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(exactKey(parts, { messages: [{ content: 'hi', role: 'user' }], temperature: 0, model: 'm', user: 'u1', stream: false, metadata: { a: 1 } }), base);
  assert.notEqual(exactKey({ ...parts, scope: 'team:shop/ads' }, { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'hi' }] }), base);
  assert.notEqual(exactKey({ ...parts, stream: true }, { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'hi' }] }), base);
  assert.notEqual(exactKey({ ...parts, promptVersion: 'v2' }, { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'hi' }] }), base);
  assert.notEqual(exactKey({ ...parts, policy: { ...policy, keyVersion: '2' } }, { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'hi' }] }), base);
  assert.notEqual(exactKey(parts, { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'hi!' }] }), base);
  assert.equal(cacheScope(policy, 'shop', 'search'), 'team:shop/search');
  assert.equal(cacheScope({ ...policy, isolation: 'global' }, 'shop', 'search'), 'global');
  assert.deepEqual(cacheUse(policy, {}, { temperature: 0.3 }), { use: 'bypass', reason: 'nondeterministic' });
  assert.deepEqual(cacheUse(policy, { 'cache-control': 'no-cache' }, { temperature: 0 }), { use: 'refresh' });
});

test('the local tier: bounded in bytes, least recently used out (a hit in the older half moves), TTL', () => {
  let now = 0;
  const t = new LocalTier(20_000, () => now);
  for (let i = 0; i < 10; i++) t.set(`k${i}`, answer('x'.repeat(1000)), 60_000);
  assert.ok(t.bytes <= 20_000);
  assert.equal(t.size, 9, 'one of ten 2.1 KiB entries did not fit');
  assert.equal(t.get('k0'), undefined);
  assert.ok(t.get('k1') !== undefined, 'the oldest left: read, so it moves to the recent end');
  t.set('k10', answer('x'.repeat(1000)), 60_000);
  assert.ok(t.get('k1') !== undefined, 'the entry read survived');
  assert.equal(t.get('k2'), undefined, 'the least recently used went instead');
  now = 61_000;
  assert.equal(t.get('k10'), undefined, 'expired');
  // Many hits on one hot key do not slow lookups down (no Map churn while it is recent).
  const big = new LocalTier(1 << 30);
  for (let i = 0; i < 20_000; i++) big.set(`h${i}`, answer('y'), 60_000);
  const t0 = performance.now();
  for (let i = 0; i < 100_000; i++) big.get('h19999');
  console.log(`100,000 hits on a hot key among 20,000 entries: ${(performance.now() - t0).toFixed(1)} ms`);
});
