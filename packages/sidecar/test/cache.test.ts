/**
 * The exact response cache with a real redis-server: local hits, cross-sidecar hits through Redis,
 * TTL expiry, tenant isolation, bypass headers, non-deterministic requests, streams recorded and
 * replayed byte for byte (cut streams never stored), embeddings, Redis down.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import type { AnyPolicyObject } from '@sluice/policy';
import { redisCommand, startRedis, waitFor, type TestRedis } from '@sluice/testkit';
import { redisClients, startHarness, type Harness } from './harness.js';

const obj = (kind: string, name: string, spec: unknown): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind, metadata: { name }, spec }) as unknown as AnyPolicyObject;
const policy: AnyPolicyObject[] = [
  obj('LLMRoute', 'cached', {
    rules: [
      { match: { models: ['cached-gpt', 'chatty', 'short-lived', 'local-only'] }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 } },
      { match: { models: ['cached-claude'] }, backends: [{ name: 'anthropic', modelOverride: 'claude-haiku-4-5' }], retry: { attempts: 1 } },
      { match: { models: ['prompt-cached'] }, backends: [{ name: 'anthropic', modelOverride: 'claude-haiku-4-5' }], retry: { attempts: 1 } },
      { match: { models: ['cached-embed'] }, backends: [{ name: 'openai', modelOverride: 'text-embedding-3-small' }] },
    ],
  }),
  obj('LLMCache', 'a-team', { match: { routes: ['cached'], models: ['cached-gpt', 'cached-claude', 'cached-embed'] }, isolation: 'team', ttlSeconds: 60 }),
  obj('LLMCache', 'b-short', { match: { models: ['short-lived'] }, ttlSeconds: 1 }),
  obj('LLMCache', 'c-chatty', { match: { models: ['chatty'] }, cacheNonDeterministic: true }),
  obj('LLMCache', 'd-local', { match: { models: ['local-only'] }, shared: false }),
  // Provider prompt caching only (exact: false): no response cache, breakpoints on long prefixes.
  obj('LLMCache', 'e-prompt', { match: { models: ['prompt-cached'] }, exact: false, promptCaching: { enabled: true, minPrefixTokens: 200 } }),
];

let redis: TestRedis;
let a: Harness;
let b: Harness;
let other: Harness;
before(async () => {
  redis = await startRedis();
  const config = { cacheRedisUrl: redis.url };
  const identity = (team: string) => ({ identity: { namespace: 'shop', serviceAccount: 'default', labels: { team } } });
  [a, b, other] = await Promise.all([startHarness(config, policy, identity('search')), startHarness(config, policy, identity('search')), startHarness(config, policy, identity('ads'))]);
  // The sidecars connect to Redis in the background: wait until all three are connected.
  await waitFor('three sidecars connected to redis', async () => (await redisClients(redis.url)) >= 3);
});
after(async () => {
  await Promise.all([a.close(), b.close(), other.close()]);
  await redis.stop();
});

let n = 0;
/** A question no other test asks. */
const fresh = (): string => `question ${process.pid} ${Date.now()} ${n++}`;
const chat = (h: Harness, model: string, content: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model, temperature: 0, messages: [{ role: 'user', content }], ...extra }) });
const upstreamCalls = (h: Harness): number => h.fake.requests.filter((r) => r.method === 'POST').length;
const logOf = async (h: Harness, id: string | null): Promise<Record<string, unknown>> => {
  let found: Record<string, unknown> | undefined;
  await waitFor(`log line ${id ?? ''}`, () => (found = h.requestLogs().find((l) => l['id'] === id)) !== undefined);
  return found as Record<string, unknown>;
};

test('a repeated deterministic request is answered from the local tier, at no cost, with the saving logged', async () => {
  const q = fresh();
  const before = upstreamCalls(a);
  const first = await chat(a, 'cached-gpt', q);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-sluice-cache'), 'miss');
  const firstBody = await first.text();
  const cost = Number(first.headers.get('x-sluice-cost-micros'));
  assert.ok(cost > 0);
  // `user` and `stream: false` do not change the answer: same entry.
  const second = await chat(a, 'cached-gpt', q, { user: 'someone-else', stream: false });
  assert.equal(second.status, 200);
  assert.equal(second.headers.get('x-sluice-cache'), 'hit');
  assert.equal(second.headers.get('x-sluice-cache-tier'), 'local');
  assert.equal(second.headers.get('x-sluice-cost-micros'), '0');
  assert.equal(await second.text(), firstBody, 'the same bytes');
  assert.equal(upstreamCalls(a) - before, 1, 'one upstream call for two requests');
  const log = await logOf(a, second.headers.get('x-request-id'));
  assert.equal(log['cache'], 'hit');
  assert.equal(log['cacheTier'], 'local');
  assert.equal(log['costMicros'], 0);
  assert.equal(log['cacheSavedMicros'], cost);
  assert.equal(log['inputTokens'], 0);
  // A different question is a miss.
  const third = await chat(a, 'cached-gpt', `${q} and more`);
  assert.equal(third.headers.get('x-sluice-cache'), 'miss');
});

test("another sidecar of the same team gets the answer from Redis; another team's sidecar never sees it", async () => {
  const q = fresh();
  const keys = async (): Promise<number> => Number((await redisCommand(redis.port, 'DBSIZE')).replace(/^:/u, ''));
  const stored = await keys();
  const first = await chat(a, 'cached-gpt', q);
  const body = await first.text();
  await waitFor('the answer stored in redis', async () => (await keys()) > stored);
  const fromRedis = await chat(b, 'cached-gpt', q);
  assert.equal(fromRedis.headers.get('x-sluice-cache'), 'hit');
  assert.equal(fromRedis.headers.get('x-sluice-cache-tier'), 'redis');
  assert.equal(await fromRedis.text(), body);
  assert.equal(upstreamCalls(b), 0, 'sidecar b never called its provider');
  const before = upstreamCalls(other);
  const isolated = await chat(other, 'cached-gpt', q);
  assert.equal(isolated.headers.get('x-sluice-cache'), 'miss', 'team ads does not read team search');
  assert.equal(upstreamCalls(other) - before, 1);
  // Now b holds a local copy too.
  const again = await chat(b, 'cached-gpt', q);
  assert.equal(again.headers.get('x-sluice-cache-tier'), 'local');
});

test('a shared: false policy keeps answers in the sidecar', async () => {
  const q = fresh();
  await (await chat(a, 'local-only', q)).text();
  assert.equal((await chat(a, 'local-only', q)).headers.get('x-sluice-cache'), 'hit');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await chat(b, 'local-only', q)).headers.get('x-sluice-cache'), 'miss');
});

test('entries expire after their TTL', async () => {
  const q = fresh();
  await (await chat(a, 'short-lived', q)).text();
  assert.equal((await chat(a, 'short-lived', q)).headers.get('x-sluice-cache'), 'hit');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await chat(a, 'short-lived', q)).headers.get('x-sluice-cache'), 'miss');
});

test('non-deterministic requests bypass unless the policy caches them; no-store, no-cache and x-sluice-cache', async () => {
  const q = fresh();
  const hot = await chat(a, 'cached-gpt', q, { temperature: 0.7 });
  assert.equal(hot.headers.get('x-sluice-cache'), 'bypass');
  assert.equal((await logOf(a, hot.headers.get('x-request-id')))['cacheBypass'], 'nondeterministic');
  const noTemp = await fetch(`${a.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'cached-gpt', messages: [{ role: 'user', content: q }] }) });
  assert.equal(noTemp.headers.get('x-sluice-cache'), 'bypass', 'providers default to temperature 1');
  await (await chat(a, 'chatty', q, { temperature: 1 })).text();
  assert.equal((await chat(a, 'chatty', q, { temperature: 1 })).headers.get('x-sluice-cache'), 'hit', 'cacheNonDeterministic: true');

  const q2 = fresh();
  assert.equal((await chat(a, 'cached-gpt', q2, {}, { 'cache-control': 'no-store' })).headers.get('x-sluice-cache'), 'bypass');
  assert.equal((await chat(a, 'cached-gpt', q2)).headers.get('x-sluice-cache'), 'miss', 'no-store stored nothing');
  assert.equal((await chat(a, 'cached-gpt', q2)).headers.get('x-sluice-cache'), 'hit');
  assert.equal((await chat(a, 'cached-gpt', q2, {}, { 'cache-control': 'no-cache' })).headers.get('x-sluice-cache'), 'miss', 'no-cache does not read');
  assert.equal((await chat(a, 'cached-gpt', q2, {}, { 'x-sluice-cache': 'bypass' })).headers.get('x-sluice-cache'), 'bypass');
});

test('a streamed miss is recorded as it passes and replayed byte for byte; a cut stream is never stored', async () => {
  const q = fresh();
  const streamOpts = { stream: true, stream_options: { include_usage: true } };
  const first = await chat(a, 'cached-gpt', q, streamOpts);
  assert.equal(first.headers.get('x-sluice-cache'), 'miss');
  const original = await first.text();
  assert.match(original, /"usage":\{/u);
  const replay = await chat(a, 'cached-gpt', q, streamOpts);
  assert.equal(replay.headers.get('x-sluice-cache'), 'hit');
  assert.match(replay.headers.get('content-type') ?? '', /text\/event-stream/u);
  assert.equal(await replay.text(), original, 'the replay is the original stream');
  // A stream and a JSON answer are separate entries.
  assert.equal((await chat(a, 'cached-gpt', q)).headers.get('x-sluice-cache'), 'miss');

  const q2 = fresh();
  a.fake.enqueue({ resetAfterChunks: 1 });
  const cut = await chat(a, 'cached-gpt', q2, streamOpts);
  await cut.text().catch(() => '');
  assert.equal((await chat(a, 'cached-gpt', q2, streamOpts)).headers.get('x-sluice-cache'), 'miss', 'the cut stream was not stored');
});

test('Anthropic SDK callers: messages and message streams are cached in their own shape', async () => {
  const client = new Anthropic({ apiKey: 'sk-ant-client', baseURL: a.sidecar.url, maxRetries: 0 });
  const q = fresh();
  const params = { model: 'cached-claude', max_tokens: 50, temperature: 0, messages: [{ role: 'user' as const, content: q }] };
  const first = await client.messages.create(params).withResponse();
  assert.equal(first.response.headers.get('x-sluice-cache'), 'miss');
  const second = await client.messages.create(params).withResponse();
  assert.equal(second.response.headers.get('x-sluice-cache'), 'hit');
  assert.deepEqual(second.data, first.data);
  const s1 = await client.messages.stream(params).finalMessage();
  const s2stream = client.messages.stream(params);
  const s2 = await s2stream.finalMessage();
  assert.deepEqual(s2, s1, 'the replayed stream assembles into the same message');
  assert.ok(s2.usage.output_tokens > 0, 'with its usage');
});

test('embeddings are cached (no sampling); the local tier stays within its byte bound', async () => {
  const input = fresh();
  const e = (): Promise<Response> => fetch(`${a.sidecar.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'cached-embed', input }) });
  assert.equal((await e()).headers.get('x-sluice-cache'), 'miss');
  const hit = await e();
  assert.equal(hit.headers.get('x-sluice-cache'), 'hit');
  assert.equal(((await hit.json()) as { data: unknown[] }).data.length, 1);

  const small = await startHarness({ cacheMaxBytes: 8 * 1024 }, policy, { identity: { namespace: 'shop', serviceAccount: 'default', labels: { team: 'search' } } });
  try {
    for (let i = 0; i < 30; i++) await (await chat(small, 'cached-gpt', `${fresh()} ${'pad '.repeat(50)}`)).text();
    const m = await (await fetch(`${small.sidecar.adminUrl}/metrics`)).text();
    const bytes = Number(/sluice_cache_local_bytes (\d+)/u.exec(m)?.[1]);
    const entries = Number(/sluice_cache_local_entries (\d+)/u.exec(m)?.[1]);
    assert.ok(bytes > 0 && bytes <= 8 * 1024, `local tier holds ${bytes} bytes`);
    assert.ok(entries > 0 && entries < 30, `older entries were evicted (${entries} left)`);
  } finally {
    await small.close();
  }
});

test('Redis down: the cache is bypassed to the local tier and upstream, requests are still served', async () => {
  redis.kill();
  const q = fresh();
  const r1 = await chat(b, 'cached-gpt', q);
  assert.equal(r1.status, 200);
  assert.equal(r1.headers.get('x-sluice-cache'), 'miss');
  await r1.text();
  const r2 = await chat(other, 'cached-gpt', q);
  assert.equal(r2.status, 200);
  const r3 = await chat(b, 'cached-gpt', q);
  assert.equal(r3.headers.get('x-sluice-cache-tier'), 'local', 'the local tier still serves');
  const m = await (await fetch(`${b.sidecar.adminUrl}/metrics`)).text();
  assert.match(m, /sluice_cache_lookups_total\{result="hit",tier="redis"\} [1-9]/u);
  await redis.restart();
});

test('Anthropic prompt caching: breakpoints on a long system prompt and tools, translated requests too; cache reads are billed as such', async () => {
  const longSystem = 'You are the support assistant of a shop. '.repeat(60);
  const tools = [{ name: 'lookup_order', description: 'Finds an order by id. '.repeat(80), input_schema: { type: 'object', properties: { id: { type: 'string' } } } }];
  a.fake.reset();
  a.fake.enqueue({ usage: { input: 1200, cached: 1000, output: 10 } });
  const r = await fetch(`${a.sidecar.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model: 'prompt-cached', max_tokens: 20, system: longSystem, tools, messages: [{ role: 'user', content: 'where is my order?' }] }) });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-sluice-cache'), null, 'no response cache on this policy');
  const sent = JSON.parse(a.fake.requests.at(-1)?.body ?? '{}') as { system: Array<{ text: string; cache_control?: unknown }>; tools: Array<{ cache_control?: unknown }> };
  assert.deepEqual(sent.system, [{ type: 'text', text: longSystem, cache_control: { type: 'ephemeral' } }]);
  assert.deepEqual(sent.tools.at(-1)?.cache_control, { type: 'ephemeral' });
  const log = await logOf(a, r.headers.get('x-request-id'));
  assert.equal(log['cachedInputTokens'], 1000, 'cache reads reported');
  // The cost uses the cache-read price for those 1000 tokens (Haiku 4.5: $1/M input, $0.10/M cache read, $5/M output).
  assert.equal(log['costMicros'], Math.ceil((200 * 1 + 1000 * 0.1 + 10 * 5)));

  // A short prefix gets no breakpoint; an OpenAI caller translated to Claude gets them too.
  await (await fetch(`${a.sidecar.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model: 'prompt-cached', max_tokens: 20, system: 'Be brief.', messages: [{ role: 'user', content: 'hi' }] }) })).text();
  assert.equal(a.fake.requests.at(-1)?.body.includes('cache_control'), false);
  await (await chat(a, 'prompt-cached', 'hi', { messages: [{ role: 'system', content: longSystem }, { role: 'user', content: 'hi' }] })).text();
  const translated = JSON.parse(a.fake.requests.at(-1)?.body ?? '{}') as { system: Array<{ cache_control?: unknown }> };
  assert.deepEqual(translated.system.at(-1)?.cache_control, { type: 'ephemeral' });
});
