import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUNDLED_PRICES, bundledPrice, costMicros } from './pricing.js';
import { PROVIDERS } from './catalog.js';

test('cost is an integer computed from integer prices, rounded up once', () => {
  const price = bundledPrice('openai', 'gpt-4o-mini');
  assert.ok(price);
  // 1000 input at $0.15/M = 150 µ$; 200 cached at $0.075/M = 15 µ$; 500 output at $0.60/M = 300 µ$.
  const cost = costMicros({ inputTokens: 1200, cachedInputTokens: 200, cacheWriteTokens: 0, outputTokens: 500, reasoningTokens: 0 }, price);
  assert.equal(cost, 150 + 15 + 300);
  // 7 input tokens at $0.15/M = 1.05 µ$ → 2 µ$ (never under-count).
  assert.equal(costMicros({ inputTokens: 7, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 }, price), 2);
  assert.ok(Number.isInteger(cost));
});

test('anthropic cache writes and reads are priced separately', () => {
  const price = bundledPrice('anthropic', 'claude-sonnet-4-5-20250929');
  assert.ok(price);
  // 100 uncached × $3 + 1000 read × $0.30 + 2000 written × $3.75 + 10 out × $15 (per M)
  const cost = costMicros({ inputTokens: 3100, cachedInputTokens: 1000, cacheWriteTokens: 2000, outputTokens: 10, reasoningTokens: 0 }, price);
  assert.equal(cost, 300 + 300 + 7500 + 150);
});

test('reasoning tokens are part of output and priced at the reasoning price', () => {
  const price = { input: 0, cachedInput: 0, cacheWrite: 0, output: 1_000_000, reasoning: 3_000_000 };
  assert.equal(costMicros({ inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 10, reasoningTokens: 4 }, price), 6 + 12);
});

test('dated snapshots resolve to their family, unrelated names do not', () => {
  assert.equal(bundledPrice('openai', 'gpt-4o-2024-08-06'), bundledPrice('openai', 'gpt-4o'));
  assert.equal(bundledPrice('openai', 'gpt-4o-mini-2024-07-18'), bundledPrice('openai', 'gpt-4o-mini'));
  assert.equal(bundledPrice('openai', 'gpt-4o-realtime'), undefined);
  assert.equal(bundledPrice('nope', 'gpt-4o'), undefined);
});

test('every provider price family exists in the table (self-hosted: priced 0)', () => {
  for (const spec of Object.values(PROVIDERS)) {
    if (spec.priceFamily === 'self-hosted') continue;
    assert.ok(Object.keys(BUNDLED_PRICES[spec.priceFamily] ?? {}).length > 0, spec.id);
  }
});

test("every provider preset's default models have a bundled price in its family; self-hosted servers are free", () => {
  for (const spec of Object.values(PROVIDERS)) {
    assert.ok(spec.displayName.length > 0, `${spec.id} has a display name`);
    for (const m of spec.defaultModels) {
      const price = bundledPrice(spec.priceFamily, m);
      assert.ok(price !== undefined, `${spec.id}: ${m} has a price`);
      assert.ok(Number.isSafeInteger(price.input) && Number.isSafeInteger(price.output) && price.input >= 0, `${spec.id}: ${m} is priced in integer micro-USD`);
    }
  }
  assert.deepEqual(bundledPrice('self-hosted', 'llama3.1:8b'), { input: 0, cachedInput: 0, cacheWrite: 0, output: 0, reasoning: 0 });
  assert.equal(PROVIDERS['vllm']?.baseUrl, undefined, 'vLLM needs an endpoint');
  assert.equal(PROVIDERS['azure-openai']?.authHeader, 'api-key');
});
