import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sluice } from '@sluice/protocol';
import { UsageAggregator, type UsageSource } from './aggregate.js';

import v1 = sluice.v1;

const who = { namespace: 'shop', serviceAccount: 'sa', team: 't', feature: 'f', user: 'u' };
const base: UsageSource = { route: 'r', backend: 'b', model: 'm', status: 200, inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, costMicros: 0, cache: undefined, cacheSavedMicros: undefined };
const END_MS = 1_763_900_045_000;

test('response-cache hits and the cost they avoided are counted per row and survive the UsageRecord encoding', () => {
  const agg = new UsageAggregator();
  // A miss pays the provider; two hits cost nothing and carry what the cached answer cost.
  agg.add({ ...base, inputTokens: 40, outputTokens: 10, costMicros: 1_234, cache: 'miss' }, who, END_MS);
  agg.add({ ...base, cache: 'hit', cacheSavedMicros: 1_234 }, who, END_MS);
  agg.add({ ...base, cache: 'hit', cacheSavedMicros: 765.6 }, who, END_MS); // rounded: counters are integers
  // Only hits count, whatever else a record carries; no cache policy = no cache counters.
  agg.add({ ...base, costMicros: 50, cache: 'bypass', cacheSavedMicros: 999 }, who, END_MS);
  agg.add({ ...base, costMicros: 7 }, who, END_MS);
  const [row, ...rest] = agg.drain();
  assert.equal(rest.length, 0, 'one minute, one attribution key');
  assert.ok(row);
  assert.deepEqual(
    { requests: row.requests, costMicros: row.costMicros, cacheHits: row.cacheHits, cacheSavedMicros: row.cacheSavedMicros },
    { requests: 5, costMicros: 1_291, cacheHits: 2, cacheSavedMicros: 2_000 },
  );
  // What the reporter writes: the rows as UsageRecords (same field names).
  const wire = v1.UsageBatch.decode(v1.UsageBatch.encode({ reporterEpoch: 'e', seq: 1, records: [row as v1.IUsageRecord] }).finish());
  const rec = wire.records[0];
  assert.ok(rec);
  assert.equal(Number(rec.cacheHits), 2);
  assert.equal(Number(rec.cacheSavedMicros), 2_000);
  assert.equal(Number(rec.costMicros), 1_291);
  assert.equal(Number(rec.requests), 5);
});

test('a row without cache hits reports zero cache counters', () => {
  const agg = new UsageAggregator();
  agg.add({ ...base, cache: 'miss', costMicros: 3 }, who, END_MS);
  agg.addFeedback(base, who, 500, END_MS);
  const [row] = agg.drain();
  assert.equal(row?.cacheHits, 0);
  assert.equal(row?.cacheSavedMicros, 0);
});
