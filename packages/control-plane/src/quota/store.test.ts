import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '@sluice/testkit';
import { MemoryQuotaStore, type QuotaStore } from './store.js';
import { counterKey, RedisQuotaStore } from './redis-store.js';

type Debit = { granted: number; spent: number; remaining: number; peers?: number };
type Op =
  | { op: 'debit'; lease: string; drawer?: string; key?: string; window?: string; want: number; need?: number; max: number; cap?: number; expect: Debit }
  | { op: 'credit'; lease: string; key?: string; window?: string; amount: number; expect: number };

const table: Array<{ name: string; ops: Op[] }> = [
  {
    name: 'grants until the max, then nothing when the need does not fit',
    ops: [
      { op: 'debit', lease: 'L1', want: 400, max: 1000, expect: { granted: 400, spent: 400, remaining: 600 } },
      { op: 'debit', lease: 'L2', want: 500, max: 1000, expect: { granted: 500, spent: 900, remaining: 100 } },
      { op: 'debit', lease: 'L3', want: 500, need: 50, max: 1000, expect: { granted: 100, spent: 1000, remaining: 0 } },
      { op: 'debit', lease: 'L4', want: 1, need: 1, max: 1000, expect: { granted: 0, spent: 1000, remaining: 0 } },
    ],
  },
  {
    name: 'a need above what is left grants nothing and leaves the rest for smaller requests',
    ops: [
      { op: 'debit', lease: 'L1', want: 950, max: 1000, expect: { granted: 950, spent: 950, remaining: 50 } },
      { op: 'debit', lease: 'L2', want: 100, need: 60, max: 1000, expect: { granted: 0, spent: 950, remaining: 50 } },
      { op: 'debit', lease: 'L3', want: 100, need: 40, max: 1000, expect: { granted: 50, spent: 1000, remaining: 0 } },
    ],
  },
  {
    name: 'a lowered max grants nothing and never reports negative remaining',
    ops: [
      { op: 'debit', lease: 'L1', want: 800, max: 1000, expect: { granted: 800, spent: 800, remaining: 200 } },
      { op: 'debit', lease: 'L2', want: 10, max: 500, expect: { granted: 0, spent: 800, remaining: 0 } },
    ],
  },
  {
    name: 'zero want and zero max',
    ops: [
      { op: 'debit', lease: 'L1', want: 0, max: 10, expect: { granted: 0, spent: 0, remaining: 10 } },
      { op: 'debit', lease: 'L2', want: 5, max: 0, expect: { granted: 0, spent: 0, remaining: 0 } },
    ],
  },
  {
    name: 'keys and windows are separate counters',
    ops: [
      { op: 'debit', lease: 'L1', key: 'team=a', want: 10, max: 10, expect: { granted: 10, spent: 10, remaining: 0 } },
      { op: 'debit', lease: 'L1', key: 'team=b', want: 10, max: 10, expect: { granted: 10, spent: 10, remaining: 0 } },
      { op: 'debit', lease: 'L1', key: 'team=a', window: 'w2', want: 10, max: 10, expect: { granted: 10, spent: 10, remaining: 0 } },
    ],
  },
  {
    name: 'a replayed debit (same lease id) returns the recorded grant and debits nothing',
    ops: [
      { op: 'debit', lease: 'L1', want: 300, max: 1000, expect: { granted: 300, spent: 300, remaining: 700 } },
      { op: 'debit', lease: 'L1', want: 300, max: 1000, expect: { granted: 300, spent: 300, remaining: 700 } },
      { op: 'credit', lease: 'L1', amount: 300, expect: 300 },
      { op: 'debit', lease: 'L1', want: 300, max: 1000, expect: { granted: 0, spent: 0, remaining: 1000 } },
    ],
  },
  {
    name: 'credit returns unused credit once per lease, never more than the lease granted',
    ops: [
      { op: 'debit', lease: 'L1', want: 600, max: 1000, expect: { granted: 600, spent: 600, remaining: 400 } },
      { op: 'debit', lease: 'L2', want: 400, max: 1000, expect: { granted: 400, spent: 1000, remaining: 0 } },
      { op: 'credit', lease: 'L1', amount: 300, expect: 300 },
      { op: 'credit', lease: 'L1', amount: 300, expect: 0 },
      { op: 'credit', lease: 'L2', amount: 900, expect: 400 },
      { op: 'credit', lease: 'never-granted', amount: 50, expect: 0 },
      { op: 'debit', lease: 'L3', want: 1000, max: 1000, expect: { granted: 700, spent: 1000, remaining: 0 } },
    ],
  },
  {
    name: 'credit to a counter that does not exist returns nothing',
    ops: [
      { op: 'credit', lease: 'L1', window: 'gone', amount: 10, expect: 0 },
      { op: 'debit', lease: 'L1', window: 'gone', want: 5, max: 10, expect: { granted: 5, spent: 5, remaining: 5 } },
      { op: 'credit', lease: 'L1', window: 'other', amount: 10, expect: 0 },
    ],
  },
  {
    name: 'the fair share shrinks leases as more sidecars draw on a key, but never below the need',
    ops: [
      { op: 'debit', lease: 'A1', drawer: 'a', want: 800, max: 1000, expect: { granted: 800, spent: 800, remaining: 200, peers: 1 } },
      { op: 'debit', lease: 'B1', drawer: 'b', want: 800, max: 1000, expect: { granted: 100, spent: 900, remaining: 100, peers: 2 } },
      { op: 'debit', lease: 'C1', drawer: 'c', want: 800, need: 60, max: 1000, expect: { granted: 60, spent: 960, remaining: 40, peers: 3 } },
      { op: 'debit', lease: 'A2', drawer: 'a', want: 800, max: 1000, expect: { granted: 14, spent: 974, remaining: 26, peers: 3 } },
    ],
  },
  {
    name: 'a cap bounds each lease, except a need above it',
    ops: [
      { op: 'debit', lease: 'L1', want: 800, max: 1000, cap: 100, expect: { granted: 100, spent: 100, remaining: 900 } },
      { op: 'debit', lease: 'L2', want: 800, need: 300, max: 1000, cap: 100, expect: { granted: 300, spent: 400, remaining: 600 } },
    ],
  },
  {
    name: 'ids with separators and braces stay distinct',
    ops: [
      { op: 'debit', lease: '{x}', key: 'a}|b', want: 3, max: 3, expect: { granted: 3, spent: 3, remaining: 0 } },
      { op: 'debit', lease: '{x}', key: 'a%7D|b', want: 3, max: 3, expect: { granted: 3, spent: 3, remaining: 0 } },
      { op: 'credit', lease: '{x}', key: 'a}|b', amount: 1, expect: 1 },
    ],
  },
];

let run = 0;
const d = (limitId: string, windowId: string, windowEndMs: number, leaseId: string, drawer = 'd') => ({ limitId, key: '', windowId, windowEndMs, leaseId, drawer });
function suiteFor(name: string, make: () => QuotaStore, many: () => QuotaStore[] = () => [make()]): void {
  for (const row of table) {
    test(`${name}: ${row.name}`, async () => {
      const store = make();
      const limitId = `ns/limit-${run++}`;
      const end = Date.now() + 60_000;
      for (const [i, op] of row.ops.entries()) {
        if (op.op === 'debit') {
          const r = await store.debit({ limitId, key: op.key ?? 'team=a', windowId: op.window ?? 'w1', windowEndMs: end, leaseId: op.lease, drawer: op.drawer ?? 'd', want: op.want, need: op.need ?? 0, max: op.max, ...(op.cap === undefined ? {} : { cap: op.cap }) });
          assert.deepEqual(r, { peers: 1, ...op.expect }, `op ${i}`);
        } else {
          assert.deepEqual(await store.credit({ leaseId: op.lease, limitId, key: op.key ?? 'team=a', windowId: op.window ?? 'w1', amount: op.amount }), { returned: op.expect }, `op ${i}`);
        }
      }
    });
  }
  test(`${name}: 20 concurrent debits never grant more than the max`, async () => {
    const clients = many();
    const limitId = `ns/race-${run++}`;
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => clients[i % clients.length]!.debit({ limitId, key: '', windowId: `r${round}`, windowEndMs: Date.now() + 60_000, leaseId: `L${i}`, drawer: 'one', want: 37 + i * 11, need: 0, max: 1000 })));
      const total = results.reduce((a, r) => a + r.granted, 0);
      assert.equal(total, 1000, `round ${round}`);
      assert.ok(results.every((r) => r.granted >= 0 && r.remaining >= 0 && r.spent <= 1000));
    }
  });
  test(`${name}: rejects non-integer units`, async () => {
    const store = make();
    await assert.rejects(store.debit({ ...d('l', 'w', Date.now(), 'L'), want: 1.5, need: 0, max: 10 }), RangeError);
    await assert.rejects(store.debit({ ...d('l', 'w', Date.now(), ''), want: 1, need: 0, max: 10 }), RangeError);
    await assert.rejects(store.credit({ leaseId: 'x', limitId: 'l', key: '', windowId: 'w', amount: -1 }), RangeError);
  });
}

describe('MemoryQuotaStore', () => {
  suiteFor('memory', () => new MemoryQuotaStore());

  test('memory: drawers stop counting as peers after the peer window', async () => {
    let now = 1_000_000;
    const store = new MemoryQuotaStore({ now: () => now, peerWindowMs: 1000 });
    assert.equal((await store.debit({ ...d('p', 'w', now + 60_000, 'A', 'a'), want: 1, need: 0, max: 100 })).peers, 1);
    assert.equal((await store.debit({ ...d('p', 'w', now + 60_000, 'B', 'b'), want: 1, need: 0, max: 100 })).peers, 2);
    now += 1001;
    assert.equal((await store.debit({ ...d('p', 'w', now + 60_000, 'B2', 'b'), want: 1, need: 0, max: 100 })).peers, 1);
  });

  test('memory: counters and lease ids expire after window end + slack', async () => {
    let now = 1_000_000;
    const store = new MemoryQuotaStore({ now: () => now, slackMs: 1000 });
    assert.equal((await store.debit({ ...d('l', 'w', now + 5000, 'L1'), want: 10, need: 0, max: 10 })).granted, 10);
    now += 5999;
    assert.equal((await store.debit({ ...d('l', 'w', now + 5000, 'L2'), want: 10, need: 0, max: 10 })).granted, 0);
    now += 1;
    assert.equal((await store.debit({ ...d('l', 'w', now + 5000, 'L3'), want: 10, need: 0, max: 10 })).granted, 10, 'a recreated window id starts empty');
    assert.equal((await store.debit({ ...d('l', 'w', now + 5000, 'L1'), want: 10, need: 0, max: 10 })).granted, 0, 'the old lease record went with its counter');
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
    await shared.debit({ limitId: 'ns/ttl', key: 'team=a', windowId: 'd:2026-11-23', windowEndMs: end, leaseId: 'lease-1', drawer: 'x', want: 5, need: 0, max: 10 });
    assert.equal(counterKey('ns/ttl', 'team=a', 'd:2026-11-23'), 'sluice:q:{ns/ttl|team=a}:d:2026-11-23');
    const pttl = await admin.pttl('sluice:q:{ns/ttl|team=a}:d:2026-11-23');
    assert.ok(pttl > 85_000 && pttl <= 90_000, `pttl ${pttl}`);
    assert.equal(await admin.get('sluice:q:{ns/ttl|team=a}:d:2026-11-23:lease:lease-1'), '5');
    await shared.credit({ leaseId: 'lease-1', limitId: 'ns/ttl', key: 'team=a', windowId: 'd:2026-11-23', amount: 1 });
    assert.equal(await admin.get('sluice:q:{ns/ttl|team=a}:d:2026-11-23:lease:lease-1'), '-1', 'released');
    const marker = await admin.pttl('sluice:q:{ns/ttl|team=a}:d:2026-11-23:lease:lease-1');
    assert.ok(marker > 0 && marker <= pttl, `lease record pttl ${marker}`);
    assert.ok((await admin.pttl('sluice:q:{ns/ttl|team=a}:drawers')) > 85_000);
    assert.equal(counterKey('}x', '{y}', 'w'), 'sluice:q:{%7Dx|%7By%7D}:w');
    // A debit that grants nothing creates no counter.
    await shared.debit({ limitId: 'ns/none', key: '', windowId: 'w', windowEndMs: end, leaseId: 'L', drawer: 'x', want: 0, need: 0, max: 10 });
    assert.equal(await admin.exists('sluice:q:{ns/none|}:w'), 0);
  });

  test('redis: a down server makes calls reject fast, and the store recovers', async () => {
    redis.kill();
    const t0 = Date.now();
    await assert.rejects(shared.debit({ ...d('ns/down', 'w', Date.now() + 60_000, 'L0'), want: 1, need: 0, max: 10 }));
    await assert.rejects(shared.credit({ leaseId: 'L', limitId: 'ns/down', key: '', windowId: 'w', amount: 1 }));
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    await redis.restart();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal((await shared.debit({ ...d('ns/down', 'w', Date.now() + 60_000, 'L1'), want: 1, need: 0, max: 10 })).granted, 1);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await assert.rejects(RedisQuotaStore.connect('redis://127.0.0.1:1'), 'connect rejects when nothing listens');
    const lazy = RedisQuotaStore.open('redis://127.0.0.1:1');
    await assert.rejects(lazy.debit({ ...d('ns/down', 'w', Date.now() + 60_000, 'L2'), want: 1, need: 0, max: 10 }), 'open() does not wait, its calls fail while Redis is away');
    await lazy.close();
  });
});
