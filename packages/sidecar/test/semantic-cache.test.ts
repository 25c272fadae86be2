/**
 * The semantic cache with a real redis-server and the fake provider's bag-of-words embeddings: a
 * paraphrase corpus (hits) and different questions (misses) with the accuracy printed, the context
 * rule (same system prompt required), tenant isolation, cross-sidecar sharing through Redis, the
 * similarity in header and log, and an embedding failure that leaves the request served.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AnyPolicyObject } from '@sluice/policy';
import { redisCommand, startRedis, waitFor, type TestRedis } from '@sluice/testkit';
import { redisClients, startHarness, type Harness } from './harness.js';

const obj = (kind: string, name: string, spec: unknown): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind, metadata: { name }, spec }) as unknown as AnyPolicyObject;
const policy: AnyPolicyObject[] = [
  obj('LLMRoute', 'faq', { rules: [{ match: { models: ['faq-bot'] }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 } }] }),
  obj('LLMCache', 'faq', { match: { models: ['faq-bot'] }, exact: true, semantic: { backend: 'openai', model: 'text-embedding-3-small', threshold: 0.9 }, ttlSeconds: 600 }),
];

let redis: TestRedis;
let a: Harness;
let b: Harness;
let elsewhere: Harness;
before(async () => {
  redis = await startRedis();
  const id = (namespace: string) => ({ identity: { namespace, serviceAccount: 'default', labels: {} } });
  [a, b, elsewhere] = await Promise.all([startHarness({ cacheRedisUrl: redis.url }, policy, id('shop')), startHarness({ cacheRedisUrl: redis.url }, policy, id('shop')), startHarness({ cacheRedisUrl: redis.url }, policy, id('bank'))]);
  // The sidecars connect to Redis in the background: wait until all three are connected.
  await waitFor('three sidecars connected to redis', async () => (await redisClients(redis.url)) >= 3);
});
after(async () => {
  await Promise.all([a.close(), b.close(), elsewhere.close()]);
  await redis.stop();
});

const ask = (h: Harness, question: string, system = 'You answer customer questions.'): Promise<Response> =>
  fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'faq-bot', temperature: 0, messages: [{ role: 'system', content: system }, { role: 'user', content: question }] }) });
const chats = (h: Harness): number => h.fake.requests.filter((r) => r.path === '/v1/chat/completions').length;

/** Seed question, then paraphrases that must hit and different questions that must miss. */
const CORPUS: Array<{ seed: string; paraphrases: string[]; different: string[] }> = [
  { seed: 'What is the capital of France?', paraphrases: ['Tell me the capital of France', 'capital of France please', "what's the capital of france"], different: ['What is the capital of Germany?', 'What is the population of France?'] },
  { seed: 'How do I reset my password?', paraphrases: ['How can I reset my password', 'password reset: how?'], different: ['How do I change my email address?', 'How do I delete my account?'] },
  { seed: 'When does my order ship?', paraphrases: ['when will my order be shipped', 'When is my order shipping?'], different: ['Can I cancel my order?', 'When does the store open?'] },
  { seed: 'Do you offer refunds on sale items?', paraphrases: ['Are refunds offered on sale items?', 'refunds for sale items offered?'], different: ['Do you offer gift wrapping?', 'Do you ship sale items abroad?'] },
];

test('paraphrases hit, different questions miss: the accuracy over the corpus', async () => {
  let hits = 0;
  let paraphrases = 0;
  let falseHits = 0;
  let different = 0;
  const wrong: string[] = [];
  for (const c of CORPUS) {
    const seed = await ask(a, c.seed);
    assert.equal(seed.status, 200);
    await seed.text();
    for (const p of c.paraphrases) {
      paraphrases++;
      const r = await ask(a, p);
      await r.text();
      if (r.headers.get('x-sluice-cache-tier') === 'semantic') hits++;
      else wrong.push(`missed paraphrase: ${p}`);
    }
    for (const d of c.different) {
      different++;
      const r = await ask(a, d);
      await r.text();
      if (r.headers.get('x-sluice-cache') === 'hit') {
        falseHits++;
        wrong.push(`false hit: ${d}`);
      }
    }
  }
  console.log(`semantic cache corpus (threshold 0.90): paraphrase hits ${hits}/${paraphrases}, false hits ${falseHits}/${different}`);
  assert.deepEqual(wrong, []);
});

test('a semantic hit says its similarity; the log line carries it and the saving', async () => {
  const seed = await ask(a, 'Which payment methods do you accept?');
  const cost = Number(seed.headers.get('x-sluice-cost-micros'));
  const body = await seed.text();
  const r = await ask(a, 'Which payment methods are accepted?');
  assert.equal(r.headers.get('x-sluice-cache'), 'hit');
  assert.equal(r.headers.get('x-sluice-cache-tier'), 'semantic');
  const similarity = Number(r.headers.get('x-sluice-cache-similarity'));
  assert.ok(similarity >= 0.9 && similarity <= 1, `similarity ${similarity}`);
  assert.equal(await r.text(), body, "the seed's answer");
  let log: Record<string, unknown> | undefined;
  await waitFor('log line', () => (log = a.requestLogs().find((l) => l['id'] === r.headers.get('x-request-id'))) !== undefined);
  assert.equal(log?.['cacheTier'], 'semantic');
  assert.equal(log?.['cacheSimilarity'], similarity);
  assert.equal(log?.['cacheSavedMicros'], cost);
});

test('the rest of the request must be identical: another system prompt or prompt version is a miss', async () => {
  await (await ask(a, 'Is there a student discount?')).text();
  const other = await ask(a, 'Is there a student discount?', 'You are a pirate. Answer like one.');
  assert.equal(other.headers.get('x-sluice-cache'), 'miss');
  const paraphrase = (headers: Record<string, string>): Promise<Response> =>
    fetch(`${a.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'faq-bot', temperature: 0, messages: [{ role: 'system', content: 'You answer customer questions.' }, { role: 'user', content: 'is there a discount for students' }] }) });
  assert.equal((await paraphrase({})).headers.get('x-sluice-cache-tier'), 'semantic');
  assert.equal((await paraphrase({ 'x-sluice-prompt-version': 'v2' })).headers.get('x-sluice-cache'), 'miss', 'a new prompt template version starts afresh');
});

test('another sidecar of the namespace finds the entry through Redis; another namespace never does', async () => {
  const keys = async (): Promise<number> => Number((await redisCommand(redis.port, 'DBSIZE')).replace(/^:/u, ''));
  const stored = await keys();
  await (await ask(a, 'How long is the warranty on laptops?')).text();
  // The exact entry, the question's vector and its answer (the scope's index exists already).
  await waitFor('the entry in redis', async () => (await keys()) >= stored + 3);
  const before = chats(b);
  const r = await ask(b, 'how long is the laptop warranty');
  assert.equal(r.headers.get('x-sluice-cache-tier'), 'semantic');
  assert.equal(chats(b), before, 'b made no upstream call');
  const iso = await ask(elsewhere, 'How long is the warranty on laptops?');
  assert.equal(iso.headers.get('x-sluice-cache'), 'miss', 'namespace bank does not read namespace shop');
  const m = await (await fetch(`${b.sidecar.adminUrl}/metrics`)).text();
  assert.match(m, /sluice_semantic_loaded_total [1-9]/u);
});

test('an embedding failure skips the semantic lookup; the request is served', async () => {
  a.fake.enqueue({ status: 500 });
  const r = await ask(a, 'Do you have a store in Lyon?');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-sluice-cache'), 'miss');
  let log: Record<string, unknown> | undefined;
  await waitFor('log line', () => (log = a.requestLogs().find((l) => l['id'] === r.headers.get('x-request-id'))) !== undefined);
  assert.equal(log?.['cacheBypass'], 'embedding:SLUICE_ERR_UPSTREAM_SERVER_ERROR');
});
