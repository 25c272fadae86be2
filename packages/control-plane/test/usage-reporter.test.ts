/**
 * The sidecar's usage reporter against a real control plane (gRPC on loopback, memory store): batches
 * arrive and are acknowledged; a batch the control plane refuses as malformed is dropped (counted)
 * instead of blocking every later one; response-cache hits and the cost they avoided reach the
 * spend API.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ControlClient } from '@sluice/protocol';
import { captureLogger, quietLogger, waitFor } from '@sluice/testkit';
import { UsageReporter, type UsageSource } from '@sluice/sidecar';
import { FileSource, startControlPlane, type ControlPlane } from '../src/index.js';
import { bucketOf } from '../src/usage/model.js';

let dir: string;
let cp: ControlPlane;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-reporter-'));
  await writeFile(join(dir, 'empty.yaml'), '');
  cp = await startControlPlane({ source: new FileSource(dir), logger: quietLogger(), grpcAddress: '127.0.0.1:0', adminHost: '127.0.0.1', adminPort: 0 });
});
after(async () => {
  await cp.close();
  await rm(dir, { recursive: true, force: true });
});

const source = (inputTokens: number): UsageSource => ({ route: 'r', backend: 'b', model: 'm', status: 200, inputTokens, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 1, reasoningTokens: 0, costMicros: 3, cache: undefined, cacheSavedMicros: undefined });
const who = { namespace: 'shop', serviceAccount: 'sa', team: 't', feature: 'f', user: 'u' };

test('batches are acknowledged; a refused batch is dropped and counted, later ones still land', async () => {
  const client = new ControlClient(cp.grpcAddress, grpc.credentials.createInsecure());
  const { logger, logs } = captureLogger({ name: 'sidecar' });
  const r = new UsageReporter({ client, node: { pod: 'p', namespace: 'shop', serviceAccount: 'sa', labels: {}, instanceId: 'i', sidecarVersion: 't' }, logger, flushIntervalMs: 50 });
  try {
    r.record(source(-5), who); // a corrupt record: negative tokens
    r.tick();
    await waitFor('the refused batch is dropped', () => r.stats.droppedBatches === 1, 5000);
    assert.equal(r.stats.droppedRecords, 1);
    assert.ok(logs.some((l) => l['msg'] === 'usage batch refused by the control plane: dropped'));
    r.record(source(10), who);
    r.record(source(20), who);
    assert.equal(await r.close(5000), true, 'every later batch acknowledged');
    const cells = await cp.usageStore.read('month', [bucketOf('month', Date.now() / 1000)], ['shop']);
    assert.equal(cells.reduce((a, c) => a + c.totals.inputTokens, 0), 30);
    assert.equal(cells.reduce((a, c) => a + c.totals.requests, 0), 2);
  } finally {
    client.close();
  }
});

test('cache hits and their avoided cost go from the sidecar aggregate through StreamUsage to the spend API', async () => {
  const client = new ControlClient(cp.grpcAddress, grpc.credentials.createInsecure());
  const r = new UsageReporter({ client, node: { pod: 'p', namespace: 'cached', serviceAccount: 'sa', labels: {}, instanceId: 'i2', sidecarVersion: 't' }, logger: quietLogger(), flushIntervalMs: 50 });
  const req = (model: string, over: Partial<UsageSource>): UsageSource => ({ ...source(0), outputTokens: 0, costMicros: 0, model, ...over });
  try {
    // gpt: one miss (paid), two hits (free, each avoiding what the miss cost); claude: one hit, one bypass.
    r.record(req('gpt', { inputTokens: 30, outputTokens: 12, costMicros: 2_500, cache: 'miss' }), who);
    r.record(req('gpt', { cache: 'hit', cacheSavedMicros: 2_500 }), who);
    r.record(req('gpt', { cache: 'hit', cacheSavedMicros: 2_500 }), who);
    r.record(req('claude', { cache: 'hit', cacheSavedMicros: 9_000 }), who);
    r.record(req('claude', { inputTokens: 5, outputTokens: 5, costMicros: 400, cache: 'bypass' }), who);
    assert.equal(await r.close(5000), true, 'acknowledged');
  } finally {
    client.close();
  }
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${cp.adminUrl}${path}`);
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  };
  type Row = { key: Record<string, string>; requests: number; costMicros: number; cacheHits: number; cacheSavedMicros: number };
  const u = await get<{ total: Row; rows: Row[] }>('/v1/usage?by=model&since=1h&namespace=cached&sort=cacheSavedMicros');
  assert.deepEqual(
    u.rows.map((x) => [x.key['model'], x.requests, x.costMicros, x.cacheHits, x.cacheSavedMicros]),
    [
      ['claude', 2, 400, 1, 9_000],
      ['gpt', 3, 2_500, 2, 5_000],
    ],
  );
  assert.deepEqual([u.total.requests, u.total.costMicros, u.total.cacheHits, u.total.cacheSavedMicros], [5, 2_900, 3, 14_000]);
  const s = await get<{ metric: string; series: Array<{ key: unknown; values: number[]; total: number }> }>('/v1/usage/series?by=model&since=1h&namespace=cached&metric=cacheHits&top=5');
  assert.equal(s.metric, 'cacheHits');
  assert.deepEqual(
    s.series.map((x) => [x.key, x.total, x.values.reduce((a, v) => a + v, 0)]),
    [
      [{ model: 'gpt' }, 2, 2],
      [{ model: 'claude' }, 1, 1],
    ],
  );
  const saved = await get<{ series: Array<{ total: number }> }>('/v1/usage/series?since=1h&namespace=cached&metric=cacheSavedMicros');
  assert.equal(saved.series[0]?.total, 14_000);
});
