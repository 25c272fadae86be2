import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createLogger } from '@sluice/core';
import { UpstreamPools } from '../upstream.js';
import { LocalTier } from './exact.js';
import { MAX_SYNCED_SCOPES, SemanticCache } from './semantic.js';

test('the sync state of scopes is bounded: the least recently synced are forgotten', async () => {
  let now = 0;
  const asked: string[] = [];
  // Just what #sync uses: an empty Redis.
  const redis = {
    status: 'ready',
    zrevrangebyscore: (key: string) => {
      asked.push(key);
      return Promise.resolve([]);
    },
    mget: () => Promise.resolve([]),
    get: () => Promise.resolve(null),
  } as unknown as Redis;
  const cache = new SemanticCache({ pools: new UpstreamPools(), logger: createLogger({ name: 'test', level: 'silent' }), local: new LocalTier(1 << 20), redis: () => redis, maxBytes: 1 << 20, now: () => now });
  const v = new Float32Array([1, 0]);
  for (let i = 0; i < MAX_SYNCED_SCOPES + 50; i++) await cache.lookup(`scope-${i}`, v, 0.9, true);
  assert.equal(cache.syncedScopes, MAX_SYNCED_SCOPES);
  // scope-0 was forgotten: it is synced again at once; the newest is remembered (no sync within a second).
  asked.length = 0;
  await cache.lookup('scope-0', v, 0.9, true);
  await cache.lookup(`scope-${MAX_SYNCED_SCOPES + 49}`, v, 0.9, true);
  assert.deepEqual(asked, ['sluice:sc:z:scope-0']);
  now += 1500;
  await cache.lookup(`scope-${MAX_SYNCED_SCOPES + 49}`, v, 0.9, true);
  assert.equal(asked.length, 2, 'synced again after a second');
});
