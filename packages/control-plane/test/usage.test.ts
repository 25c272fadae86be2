/**
 * StreamUsage over real gRPC into the Redis usage store on a real redis-server (and the memory store):
 * batches are applied once whatever is resent (duplicate batch, acknowledgement lost, Redis down
 * then back), records are charged to the authenticated node's namespace, the buckets hold the sums
 * (response-cache hits and the cost they avoided included, read back through the spend API).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ControlClient, sluice } from '@sluice/protocol';
import { startRedis, quietLogger, waitFor, type TestRedis } from '@sluice/testkit';
import { FileSource, startControlPlane, type ControlPlane } from '../src/index.js';
import { RedisUsageStore } from '../src/usage/redis-store.js';
import { MemoryUsageStore, type UsageStore } from '../src/usage/store.js';
import { bucketOf, bucketsBetween, cellsOf, incrementsOf, parseField, attributionField, type UsageRecordIn } from '../src/usage/model.js';

import v1 = sluice.v1;

const logger = quietLogger();

function record(over: Partial<UsageRecordIn> = {}): UsageRecordIn {
  return {
    minuteUnix: 1_763_900_040,
    serviceAccount: 'default',
    team: 'search',
    feature: 'chat',
    user: 'u1',
    route: 'shop/main#0',
    backend: 'shop/openai',
    model: 'gpt-4o-mini',
    requests: 2,
    errors: 1,
    inputTokens: 100,
    cachedInputTokens: 10,
    cacheWriteTokens: 0,
    outputTokens: 50,
    reasoningTokens: 5,
    costMicros: 45,
    feedback: 0,
    feedbackScoreMilli: 0,
    cacheHits: 0,
    cacheSavedMicros: 0,
    ...over,
  };
}

test('model: fields round-trip with separators escaped; buckets cover a range; increments merge', () => {
  const a = { serviceAccount: 'sa', team: 'a|b', feature: '50%#off', user: '', route: 'r', backend: 'b', model: 'm' };
  const f = `${attributionField(a)}#c`;
  assert.deepEqual(parseField(f), { attribution: a, metric: 'costMicros' });
  assert.equal(parseField('garbage'), undefined);
  assert.deepEqual(bucketsBetween('hour', 7200, 7200 + 3 * 3600), ['7200', '10800', '14400']);
  assert.deepEqual(bucketsBetween('month', Date.UTC(2026, 10, 30) / 1000, Date.UTC(2027, 1, 1) / 1000), ['2026-11', '2026-12', '2027-01']);
  assert.equal(bucketOf('day', 86_400 * 3 + 5), String(86_400 * 3));
  const inc = incrementsOf([record(), record({ requests: 1, errors: 0 })]);
  const hour = inc.get(`hour\u0000${bucketOf('hour', 1_763_900_040)}`);
  assert.equal(hour?.get(`${attributionField(record())}#r`), 3);
  assert.equal(hour?.get(`${attributionField(record())}#cw`), undefined, 'zero counters are not written');
  const cells = cellsOf('shop', 'b', Object.fromEntries(hour ?? []));
  assert.equal(cells.length, 1);
  assert.equal(cells[0]?.totals.inputTokens, 200);
});

for (const kind of ['memory', 'redis'] as const) {
  describe(`StreamUsage with the ${kind} store`, () => {
    let dir: string;
    let redis: TestRedis | undefined;
    let store: UsageStore;
    let cp: ControlPlane;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sluice-usage-'));
      await writeFile(join(dir, 'empty.yaml'), '');
      if (kind === 'redis') {
        redis = await startRedis();
        store = RedisUsageStore.open(redis.url);
      } else store = new MemoryUsageStore();
      cp = await startControlPlane({ source: new FileSource(dir), logger, grpcAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0, usageStore: store });
    });
    after(async () => {
      await cp.close();
      await redis?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    /** A raw usage stream: opens with the node, then batches; acks arrive in `acks`. */
    function stream(namespace = 'shop'): { acks: v1.UsageAck[]; send(b: v1.UsageBatch.$Properties): void; close(): void } {
      const client = new ControlClient(cp.grpcAddress, grpc.credentials.createInsecure());
      const call = client.streamUsage();
      const acks: v1.UsageAck[] = [];
      call.on('data', (a: v1.UsageAck) => acks.push(a));
      call.on('error', () => undefined);
      call.write({ reporterEpoch: 'e1', seq: 0, node: { pod: 'p', namespace, serviceAccount: 'sa-1', instanceId: 'i' } });
      return {
        acks,
        send: (b) => call.write(b),
        close: () => {
          call.cancel();
          client.close();
        },
      };
    }

    const month = bucketOf('month', 1_763_900_040);
    const totals = async (ns: string): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const c of await store.read('month', [month], [ns])) for (const [k, v] of Object.entries(c.totals)) out[k] = (out[k] ?? 0) + v;
      return out;
    };

    test('a batch is applied once: a duplicate and a resend after a lost acknowledgement change nothing', async () => {
      const epoch = `dup-${kind}`;
      const s = stream();
      s.send({ reporterEpoch: epoch, seq: 1, records: [record()] });
      s.send({ reporterEpoch: epoch, seq: 1, records: [record()] });
      await waitFor('two acks', () => s.acks.length === 2);
      assert.deepEqual(
        s.acks.map((a) => [Number(a.seq), a.duplicate]),
        [
          [1, false],
          [1, true],
        ],
      );
      // Batch 2 is applied, but its acknowledgement never reaches the sidecar (stream cut):
      s.send({ reporterEpoch: epoch, seq: 2, records: [record({ requests: 5 })] });
      await waitFor('applied', async () => (await totals('shop'))['requests'] === 7);
      s.close();
      // … so it resends batch 2 (and then 3) on a new stream.
      const again = stream();
      again.send({ reporterEpoch: epoch, seq: 2, records: [record({ requests: 5 })] });
      again.send({ reporterEpoch: epoch, seq: 3, records: [record({ requests: 1, errors: 0, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningTokens: 0, costMicros: 0 })] });
      await waitFor('acks on the new stream', () => again.acks.length === 2);
      assert.deepEqual(
        again.acks.map((a) => [Number(a.seq), a.duplicate]),
        [
          [2, true],
          [3, false],
        ],
      );
      assert.deepEqual(await totals('shop'), { requests: 8, errors: 2, inputTokens: 200, cachedInputTokens: 20, cacheWriteTokens: 0, outputTokens: 100, reasoningTokens: 10, costMicros: 90, feedback: 0, feedbackScoreMilli: 0, cacheHits: 0, cacheSavedMicros: 0 });
      again.close();
    });

    test('cache hits and the cost they avoided are stored exactly once and summed by the spend API', async () => {
      const epoch = `cache-${kind}`;
      const s = stream('cache');
      // gpt: three requests all answered from the cache (free); claude: two paid requests, one hit.
      const hits = record({ model: 'gpt-4o-mini', requests: 3, errors: 0, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningTokens: 0, costMicros: 0, cacheHits: 3, cacheSavedMicros: 1_500 });
      const mixed = record({ model: 'claude-haiku-4-5', cacheHits: 1, cacheSavedMicros: 7_000 });
      s.send({ reporterEpoch: epoch, seq: 1, records: [hits, mixed] });
      s.send({ reporterEpoch: epoch, seq: 1, records: [hits, mixed] }); // a resend: nothing changes
      s.send({ reporterEpoch: epoch, seq: 2, records: [record({ model: 'gpt-4o-mini', cacheHits: 2, cacheSavedMicros: 1_000 })] });
      await waitFor('three acks', () => s.acks.length === 3);
      assert.deepEqual(
        s.acks.map((a) => [Number(a.seq), a.duplicate]),
        [
          [1, false],
          [1, true],
          [2, false],
        ],
      );
      s.close();
      const t = await totals('cache');
      assert.deepEqual([t['requests'], t['costMicros'], t['cacheHits'], t['cacheSavedMicros']], [7, 90, 6, 9_500]);
      // The spend API: totals, rows (sortable by the new counters) and series.
      const range = `namespace=cache&granularity=month&since=${1_763_900_040 - 3600}&until=${1_763_900_040 + 3600}`;
      const u = (await (await fetch(`${cp.adminUrl}/v1/usage?by=model&sort=cacheSavedMicros&${range}`)).json()) as {
        total: Record<string, number>;
        rows: Array<Record<string, number> & { key: Record<string, string> }>;
      };
      assert.deepEqual(
        u.rows.map((r) => [r.key['model'], r.requests, r.costMicros, r.cacheHits, r.cacheSavedMicros]),
        [
          ['claude-haiku-4-5', 2, 45, 1, 7_000],
          ['gpt-4o-mini', 5, 45, 5, 2_500],
        ],
      );
      assert.deepEqual([u.total['cacheHits'], u.total['cacheSavedMicros']], [6, 9_500]);
      const series = (await (await fetch(`${cp.adminUrl}/v1/usage/series?metric=cacheSavedMicros&${range}`)).json()) as { series: Array<{ values: number[]; total: number }> };
      assert.deepEqual(
        series.series.map((x) => [x.values, x.total]),
        [[[9_500], 9_500]],
      );
    });

    test('records are charged to the authenticated node (namespace and service account)', async () => {
      const s = stream('bank');
      s.send({ reporterEpoch: `ns-${kind}`, seq: 1, records: [{ ...record(), serviceAccount: 'someone-else' }] });
      await waitFor('ack', () => s.acks.length === 1);
      const cells = await store.read('month', [month], ['bank']);
      assert.equal(cells.length, 1);
      assert.equal(cells[0]?.attribution.serviceAccount, 'sa-1');
      assert.ok((await store.namespaces()).includes('bank'));
      s.close();
    });

    test('a stream that does not open with its node is refused; invalid counters are refused', async () => {
      const client = new ControlClient(cp.grpcAddress, grpc.credentials.createInsecure());
      const call = client.streamUsage();
      const err = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      call.write({ reporterEpoch: 'x', seq: 1, records: [record()] });
      assert.equal((await err).code, grpc.status.FAILED_PRECONDITION);
      client.close();
      const s = stream();
      const bad = new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (s.acks.length === 0) return;
          clearInterval(t);
          resolve();
        }, 10);
        setTimeout(() => {
          clearInterval(t);
          resolve();
        }, 500);
      });
      s.send({ reporterEpoch: `bad-${kind}`, seq: 1, records: [{ ...record(), requests: -1 }] });
      await bad;
      assert.equal(s.acks.length, 0, 'a negative counter is never acknowledged');
      s.close();
    });

    if (kind === 'redis') {
      test('Redis down: the batch is not acknowledged and its stream closes; resent on a new stream after Redis is back, it is applied once', async () => {
        const r = redis as TestRedis;
        const epoch = 'down';
        const client = new ControlClient(cp.grpcAddress, grpc.credentials.createInsecure());
        const call = client.streamUsage();
        const acks: v1.UsageAck[] = [];
        call.on('data', (a: v1.UsageAck) => acks.push(a));
        const closed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
        call.write({ reporterEpoch: epoch, seq: 0, node: { pod: 'p', namespace: 'down', serviceAccount: 'sa-1', instanceId: 'i' } });
        r.kill();
        call.write({ reporterEpoch: epoch, seq: 1, records: [record()] });
        call.write({ reporterEpoch: epoch, seq: 2, records: [record({ requests: 3 })] });
        assert.equal((await closed).code, grpc.status.UNAVAILABLE, 'the stream closes at the first batch the store cannot take');
        assert.equal(acks.length, 0, 'nothing acknowledged, nothing after it applied');
        client.close();
        await r.restart();
        await waitFor(
          'applied after resends',
          async () => {
            const s = stream('down');
            s.send({ reporterEpoch: epoch, seq: 1, records: [record()] });
            s.send({ reporterEpoch: epoch, seq: 2, records: [record({ requests: 3 })] });
            await new Promise((res) => setTimeout(res, 200));
            s.close();
            return s.acks.length === 2;
          },
          15_000,
        );
        assert.equal((await totals('down'))['requests'], 5, 'both batches applied exactly once');
      });
    }
  });
}
