/**
 * The sidecar's usage reporter against a real control plane (gRPC on loopback, memory store): batches
 * arrive and are acknowledged; a batch the control plane refuses as malformed is dropped (counted)
 * instead of blocking every later one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ControlClient } from '@sluice/protocol';
import { captureLogger, quietLogger, waitFor } from '@sluice/testkit';
import { UsageReporter } from '@sluice/sidecar';
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

const source = (inputTokens: number) => ({ route: 'r', backend: 'b', model: 'm', status: 200, inputTokens, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 1, reasoningTokens: 0, costMicros: 3 });
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
