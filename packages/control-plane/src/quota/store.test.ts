import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '@sluice/testkit';
import { MemoryQuotaStore, type QuotaStore } from './store.js';
import { counterKey, RedisQuotaStore } from './redis-store.js';

type Op =
  | { op: 'debit'; key?: string; window?: string; want: number; max: number; expect: { granted: number; spent: number; remaining: number } }
  | { op: 'credit'; lease: string; key?: string; window?: string; amount: number; expect: number };

const table: Array<{ name: string; ops: Op[] }> = [
  {
    name: 'grants until the max, then partially, then nothing',
    ops: [
      { op: 'debit', want: 400, max: 1000, expect: { granted: 400, spent: 400, remaining: 600 } },
      { op: 'debit', want: 500, max: 1000, expect: { granted: 500, spent: 900, remaining: 100 } },
      { op: 'debit', want: 500, max: 1000, expect: { granted: 100, spent: 1000, remaining: 0 } },
      { op: 'debit', want: 1, max: 1000, expect: { granted: 0, spent: 1000, remaining: 0 } },
    ],
  },
  {
    name: 'a lowered max grants nothing and never reports negative remaining',
    ops: [
      { op: 'debit', want: 800, max: 1000, expect: { granted: 800, spent: 800, remaining: 200 } },
      { op: 'debit', want: 10, max: 500, expect: { granted: 0, spent: 800, remaining: 0 } },
    ],
  },
  {
    name: 'zero want and zero max',
    ops: [
      { op: 'debit', want: 0, max: 10, expect: { granted: 0, spent: 0, remaining: 10 } },
      { op: 'debit', want: 5, max: 0, expect: { granted: 0, spent: 0, remaining: 0 } },
    ],
  },
  {
    name: 'keys and windows are separate counters',
    ops: [
      { op: 'debit', key: 'team=a', want: 10, max: 10, expect: { granted: 10, spent: 10, remaining: 0 } },
      { op: 'debit', key: 'team=b', want: 10, max: 10, expect: { granted: 10, spent: 10, remaining: 0 } },
      { op: 'debit', key: 'team=a', window: 'w2', want: 10, max: 10, expect: { granted: 10, spent: 10, remaining: 0 } },
    ],
  },
  {
    name: 'credit returns unused credit once per lease',
    ops: [
      { op: 'debit', want: 1000, max: 1000, expect: { granted: 1000, spent: 1000, remaining: 0 } },
      { op: 'credit', lease: 'L1', amount: 300, expect: 300 },
      { op: 'credit', lease: 'L1', amount: 300, expect: 0 },
      { op: 'debit', want: 1000, max: 1000, expect: { granted: 300, spent: 1000, remaining: 0 } },
      { op: 'credit', lease: 'L2', amount: 0, expect: 0 },
      { op: 'credit', lease: 'L2', amount: 50, expect: 0 },
    ],
  },
  {
    name: 'credit never takes a counter below zero',
    ops: [
      { op: 'debit', want: 100, max: 1000, expect: { granted: 100, spent: 100, remaining: 900 } },
      { op: 'credit', lease: 'L1', amount: 500, expect: 100 },
      { op: 'debit', want: 0, max: 1000, expect: { granted: 0, spent: 0, remaining: 1000 } },
    ],
  },
  {
    name: 'credit to a counter that does not exist returns nothing',
    ops: [
      { op: 'credit', lease: 'L1', window: 'gone', amount: 10, expect: 0 },
      { op: 'debit', window: 'gone', want: 5, max: 10, expect: { granted: 5, spent: 5, remaining: 5 } },
      { op: 'credit', lease: 'L1', window: 'gone', amount: 10, expect: 0 },
    ],
  },
  {
    name: 'ids with separators and braces stay distinct',
    ops: [
      { op: 'debit', key: 'a}|b', want: 3, max: 3, expect: { granted: 3, spent: 3, remaining: 0 } },
      { op: 'debit', key: 'a%7D|b', want: 3, max: 3, expect: { granted: 3, spent: 3, remaining: 0 } },
      { op: 'credit', lease: '{x}', key: 'a}|b', amount: 1, expect: 1 },
    ],
  },
];

let run = 0;
function suiteFor(name: string, make: () => QuotaStore, many: () => QuotaStore[] = () => [make()]): void {
  for (const row of table) {
    test(`${name}: ${row.name}`, async () => {
      const store = make();
      const limitId = `ns/limit-${run++}`;
      const end = Date.now() + 60_000;
      for (const [i, op] of row.ops.entries()) {
        if (op.op === 'debit') {
          assert.deepEqual(await store.debit(limitId, op.key ?? 'team=a', op.window ?? 'w1', end, op.want, op.max), op.expect, `op ${i}`);
        } else {
          assert.deepEqual(await store.credit(op.lease, limitId, op.key ?? 'team=a', op.window ?? 'w1', op.amount), { returned: op.expect }, `op ${i}`);
        }
      }
    });
  }
  test(`${name}: 20 concurrent debits never grant more than the max`, async () => {
    const clients = many();
    const limitId = `ns/race-${run++}`;
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => clients[i % clients.length]!.debit(limitId, '', `r${round}`, Date.now() + 60_000, 37 + i * 11, 1000)));
      const total = results.reduce((a, r) => a + r.granted, 0);
      assert.equal(total, 1000, `round ${round}`);
      assert.ok(results.every((r) => r.granted >= 0 && r.remaining >= 0 && r.spent <= 1000));
    }
  });
  test(`${name}: rejects non-integer units`, async () => {
    const store = make();
    await assert.rejects(store.debit('l', '', 'w', Date.now(), 1.5, 10), RangeError);
    await assert.rejects(store.credit('x', 'l', '', 'w', -1), RangeError);
  });
}

describe('MemoryQuotaStore', () => {
  suiteFor('memory', () => new MemoryQuotaStore());

  test('memory: counters and lease ids expire after window end + slack', async () => {
    let now = 1_000_000;
    const store = new MemoryQuotaStore({ now: () => now, slackMs: 1000 });
    assert.equal((await store.debit('l', '', 'w', now + 5000, 10, 10)).granted, 10);
    now += 5999;
    assert.equal((await store.debit('l', '', 'w', now + 5000, 10, 10)).granted, 0);
    now += 1;
    assert.equal((await store.debit('l', '', 'w', now + 5000, 10, 10)).granted, 10, 'a recreated window id starts empty');
  });
});

describe('RedisQuotaStore', () => {
  let redis: TestRedis;
  let admin: Redis;
  const stores: QuotaStore[] = [];
  let shared: RedisQuotaStore;

  before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    for (let i = 0; i < 5; i++) stores.push(await RedisQuotaStore.connect(redis.url));
    shared = stores[0] as RedisQuotaStore;
  });
  after(async () => {
    for (const s of stores) await s.close();
    admin.disconnect();
    await redis?.stop();
  });

  // The race uses five connections, as five control plane replicas would.
  suiteFor('redis', () => shared, () => stores);

  test('redis: keys carry one hash tag per (limit, key) and a TTL of window end + slack', async () => {
    const end = Date.now() + 30_000;
    await shared.debit('ns/ttl', 'team=a', 'd:2026-11-23', end, 5, 10);
    assert.equal(counterKey('ns/ttl', 'team=a', 'd:2026-11-23'), 'sluice:q:{ns/ttl|team=a}:d:2026-11-23');
    const pttl = await admin.pttl('sluice:q:{ns/ttl|team=a}:d:2026-11-23');
    assert.ok(pttl > 85_000 && pttl <= 90_000, `pttl ${pttl}`);
    await shared.credit('lease-1', 'ns/ttl', 'team=a', 'd:2026-11-23', 1);
    const marker = await admin.pttl('sluice:q:{ns/ttl|team=a}:d:2026-11-23:lease:lease-1');
    assert.ok(marker > 0 && marker <= pttl, `marker pttl ${marker}`);
    assert.equal(counterKey('}x', '{y}', 'w'), 'sluice:q:{%7Dx|%7By%7D}:w');
    // A debit that grants nothing creates no key.
    await shared.debit('ns/none', '', 'w', end, 0, 10);
    assert.equal(await admin.exists('sluice:q:{ns/none|}:w'), 0);
  });

  test('redis: a down server makes calls reject fast, and the store recovers', async () => {
    redis.kill();
    const t0 = Date.now();
    await assert.rejects(shared.debit('ns/down', '', 'w', Date.now() + 60_000, 1, 10));
    await assert.rejects(shared.credit('L', 'ns/down', '', 'w', 1));
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    await redis.restart();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal((await shared.debit('ns/down', '', 'w', Date.now() + 60_000, 1, 10)).granted, 1);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await assert.rejects(RedisQuotaStore.connect('redis://127.0.0.1:1'), 'connect rejects when nothing listens');
  });
});
