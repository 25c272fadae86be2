/**
 * Routing and resilience driven by the fake provider's faults: fallback across providers (with
 * translation), connection failures, 429 with Retry-After, 529, errors that must not be retried, a
 * stream cut after its first byte, a flapping backend ejected and brought back by its breaker,
 * weighted routing under a seed, the cost strategy and the route's output cap.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AnyPolicyObject } from '@sluice/policy';
import { captureLogger } from '@sluice/testkit';
import { seededRandom } from '@sluice/core';
import { Balancer } from '../src/routing/balancer.js';
import { Routing } from '../src/routing/index.js';
import { startHarness, type Harness } from './harness.js';

const SEED = 7;
const route = (name: string, rules: unknown[]): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name }, spec: { rules } }) as unknown as AnyPolicyObject;

let h: Harness;
let routing: Routing;
const routingLog = captureLogger({ name: 'routing' });
before(async () => {
  routing = new Routing({ logger: routingLog.logger, random: seededRandom(SEED), breaker: { windowMs: 10_000, minRequests: 4, errorRate: 0.5, baseEjectMs: 400, maxEjectMs: 5000 } });
  h = await startHarness(
    {},
    [
      { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'tiny' }, spec: { provider: 'openai-compatible', endpoint: 'http://127.0.0.1:1', models: [{ id: 'tiny-model', capabilities: { contextWindow: 1000 } }] } } as unknown as AnyPolicyObject,
      route('resilient', [
        { match: { models: ['smart'] }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }, { name: 'anthropic', modelOverride: 'claude-haiku-4-5' }] },
        { match: { models: ['dead-first'] }, backends: [{ name: 'dead', modelOverride: 'gpt-4o-mini' }, { name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['patient'] }, backends: [{ name: 'anthropic', modelOverride: 'claude-haiku-4-5' }], retry: { attempts: 3, backoffMs: 50, maxBackoffMs: 2000 } },
        { match: { models: ['flaky'] }, backends: [{ name: 'openai', modelOverride: 'gpt-4.1-nano' }, { name: 'anthropic', modelOverride: 'claude-haiku-4-5' }] },
        { match: { models: ['split'] }, strategy: 'weighted', backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini', weight: 3 }, { name: 'anthropic', modelOverride: 'claude-haiku-4-5', weight: 1 }] },
        { match: { models: ['cheap'] }, strategy: 'cost', backends: [{ name: 'openai', modelOverride: 'gpt-4o' }, { name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['capped'] }, maxTokens: 100, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['no-fallback'] }, fallback: false, retry: { attempts: 1 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }, { name: 'anthropic' }] },
        { match: { models: ['shadowed'] }, shadow: { backend: 'anthropic', modelOverride: 'claude-haiku-4-5', percent: 100 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['together'] }, coalesce: true, retry: { attempts: 1 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['capable'] }, backends: [{ name: 'anthropic', modelOverride: 'claude-haiku-4-5' }, { name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['see'] }, backends: [{ name: 'openai', modelOverride: 'gpt-3.5-turbo' }, { name: 'anthropic', modelOverride: 'claude-haiku-4-5' }] },
        { match: { models: ['long'] }, backends: [{ name: 'openai', modelOverride: 'gpt-3.5-turbo' }, { name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['declared'] }, backends: [{ name: 'tiny', modelOverride: 'tiny-model' }, { name: 'openai', modelOverride: 'gpt-4o-mini' }] },
        { match: { models: ['slow-first'] }, timeouts: { firstTokenMs: 200 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o' }, { name: 'anthropic', modelOverride: 'claude-haiku-4-5' }] },
        { match: { models: ['deadline'] }, timeouts: { totalMs: 300, maxTotalMs: 2000, idleMs: 150 }, retry: { attempts: 1 }, backends: [{ name: 'anthropic', modelOverride: 'claude-sonnet-4-5' }] },
      ]),
    ],
    { routing },
  );
});
after(() => h.close());
beforeEach(() => h.fake.reset());

const chat = (model: string, extra: Record<string, unknown> = {}): Promise<Response> =>
  fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }) });
const lastLog = async (): Promise<Record<string, unknown>> => {
  const n = h.requestLogs().length;
  return (await h.waitForRequestLogs(n)).at(-1) ?? {};
};
/** Tests share the OpenAI backend's breaker: wait out an ejection and close it with a good probe. */
async function healOpenai(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (routing.breakers.ejected('default/openai', routing.now()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  h.fake.reset();
  await (await chat('capped')).text();
  h.fake.reset();
}
const upstreamModels = (): string[] => h.fake.requests.map((r) => String((JSON.parse(r.body) as { model?: string }).model));

test('an OpenAI model down falls over to an Anthropic model, translated, and says so', async () => {
  h.fake.forModel('gpt-4o-mini', { status: 503 });
  const r = await chat('smart');
  assert.equal(r.status, 200);
  const body = (await r.json()) as { object: string; choices: Array<{ message: { content: string } }> };
  assert.equal(body.object, 'chat.completion', 'the caller keeps its OpenAI shape');
  assert.equal(r.headers.get('x-sluice-attempts'), '2');
  assert.equal(r.headers.get('x-sluice-fallback'), 'default/openai:503');
  assert.deepEqual(upstreamModels(), ['gpt-4o-mini', 'claude-haiku-4-5']);
  assert.equal(h.fake.requests[1]?.path, '/v1/messages', 'the second attempt speaks Anthropic');
  const log = await lastLog();
  assert.equal(log['backend'], 'default/anthropic');
  assert.equal(log['attempts'], 2);
  assert.equal(log['failedAttempts'], 'default/openai:503');
  // A stream falls over the same way before its first byte.
  const s = await chat('smart', { stream: true });
  assert.equal(s.status, 200);
  const text = await s.text();
  assert.match(text, /data: \[DONE\]/);
  assert.equal(s.headers.get('x-sluice-fallback'), 'default/openai:503');
});

test('a refused connection fails over at once', async () => {
  const t0 = Date.now();
  const r = await chat('dead-first');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('x-sluice-fallback') ?? '', /^default\/dead:SLUICE_ERR_UPSTREAM_CONNECT$/);
  assert.ok(Date.now() - t0 < 1500, 'no backoff before another backend');
});

test('429 on the only backend is retried after its Retry-After; a Retry-After beyond the limit is returned', async () => {
  h.fake.enqueue({ status: 429, headers: { 'retry-after': '1' } });
  const t0 = Date.now();
  const r = await chat('patient');
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 >= 950, `waited for Retry-After (${Date.now() - t0} ms)`);
  assert.equal(r.headers.get('x-sluice-fallback'), 'default/anthropic:429');
  assert.equal(h.fake.requests.length, 2);
  h.fake.reset();
  h.fake.enqueue({ status: 429, headers: { 'retry-after': '30' } });
  const t1 = Date.now();
  const denied = await chat('patient');
  assert.equal(denied.status, 429);
  assert.equal(denied.headers.get('retry-after'), '30', "the provider's Retry-After reaches the caller");
  assert.ok(Date.now() - t1 < 1000, 'no 30 s wait');
  assert.equal(h.fake.requests.length, 1);
});

test('529 overloaded is retried after a longer backoff; 400 is never retried; nothing after the first streamed byte', async () => {
  h.fake.enqueue({ status: 529 });
  const r = await chat('patient');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-sluice-fallback'), 'default/anthropic:529');
  h.fake.reset();
  h.fake.enqueue({ status: 400, errorMessage: 'content filtered' });
  const bad = await chat('patient');
  assert.equal(bad.status, 400);
  assert.equal(h.fake.requests.length, 1, 'a 400 is not retried');
  h.fake.reset();
  h.fake.enqueue({ resetAfterChunks: 1, chunks: 4 });
  const cut = await chat('smart', { stream: true });
  assert.equal(cut.status, 200);
  await cut.text().catch(() => '');
  assert.equal(h.fake.requests.length, 1, 'the stream had reached the client: not retried');
  h.fake.reset();
  h.fake.forModel('gpt-4o-mini', { status: 503 });
  const none = await chat('no-fallback');
  assert.equal(none.status, 502, 'fallback off, one attempt: the failure is the answer');
  assert.equal(h.fake.requests.length, 1);
});

test('a flapping backend is ejected by its breaker, skipped, then probed and brought back', async () => {
  await healOpenai();
  const base = (await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text()).match(/sluice_backend_ejections_total\{backend="default\/openai"\} (\d+)/)?.[1] ?? '0';
  h.fake.forModel('gpt-4.1-nano', { status: 500 });
  for (let i = 0; i < 4; i++) assert.equal((await chat('flaky')).status, 200, 'every request falls over to Anthropic');
  const before = h.fake.requests.length;
  const r = await chat('flaky');
  assert.equal(r.status, 200);
  assert.equal(h.fake.requests.length - before, 1, 'the ejected backend is skipped: one upstream call');
  assert.equal(r.headers.get('x-sluice-fallback'), null);
  const metrics = await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text();
  assert.match(metrics, new RegExp(`sluice_backend_ejections_total\\{backend="default/openai"\\} ${Number(base) + 1}\n`));
  assert.match(metrics, /sluice_backend_ejected\{backend="default\/openai"\} 1/);
  assert.match(metrics, /sluice_upstream_retries_total\{backend="default\/openai",code="SLUICE_ERR_UPSTREAM_SERVER_ERROR"\} \d+/);
  assert.match(metrics, /sluice_fallbacks_total\{route="default\/resilient#3",backend="default\/anthropic"\} 4/, 'four fell over, the fifth went straight to Anthropic');
  assert.ok(routingLog.logs.some((l) => l['msg'] === 'backend ejected (circuit open)' && l['backend'] === 'default/openai'), 'the ejection is logged');
  // Healthy again; after the ejection the probe goes to OpenAI and closes the breaker.
  h.fake.reset();
  const t0 = Date.now();
  while (routing.breakers.ejected('default/openai', routing.now())) await new Promise((res) => setTimeout(res, 20));
  assert.ok(Date.now() - t0 >= 300, 'ejected for a while (400 ms × 2^(ejections − 1))');
  const probe = await chat('flaky');
  assert.equal(probe.status, 200);
  assert.deepEqual(upstreamModels(), ['gpt-4.1-nano'], 'the probe went to the recovered backend');
  assert.doesNotMatch(await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text(), /sluice_backend_ejected\{/);
});

test('weighted routing is deterministic under a seed; cost picks the cheapest model; maxTokens caps the output', async () => {
  // The routing's seeded source has been used by the tests before (jitter, picks), so the split is
  // compared with the weights, and determinism is checked on balancers of their own.
  await healOpenai();
  for (let i = 0; i < 40; i++) await (await chat('split')).text();
  const logs = h.requestLogs().slice(-40);
  const openai = logs.filter((l) => l['backend'] === 'default/openai').length;
  assert.equal(logs.filter((l) => l['variant'] === 'default/openai/gpt-4o-mini').length, openai, 'the A/B variant is in the log line');
  assert.ok(openai >= 24 && openai <= 36, `about 3 in 4 to the weight-3 backend (${openai}/40)`);
  const seq = (seed: number): number[] => {
    const b = new Balancer({ random: seededRandom(seed), ejected: () => false });
    return Array.from({ length: 10 }, () => b.order('weighted', [{ backendId: 'a', weight: 3, price: undefined }, { backendId: 'b', weight: 1, price: undefined }], true)[0] as number);
  };
  assert.deepEqual(seq(SEED), seq(SEED), 'the same seed gives the same choices');
  h.fake.reset();
  assert.equal((await chat('cheap')).status, 200);
  assert.deepEqual(upstreamModels(), ['gpt-4o-mini'], 'gpt-4o-mini is cheaper than gpt-4o');
  h.fake.reset();
  const capped = await chat('capped', { max_tokens: 5000 });
  assert.equal(capped.headers.get('x-sluice-max-tokens-capped'), '100');
  assert.equal((JSON.parse(h.fake.requests[0]?.body ?? '{}') as { max_tokens?: number }).max_tokens, 100);
  await chat('capped');
  const sent = JSON.parse(h.fake.requests[1]?.body ?? '{}') as Record<string, unknown>;
  assert.equal(sent['max_completion_tokens'] ?? sent['max_tokens'], 100, 'set when the caller gave none');
  const small = await chat('capped', { max_tokens: 20 });
  assert.equal(small.headers.get('x-sluice-max-tokens-capped'), null, 'a smaller max_tokens is left alone');
});

test('timeouts: a slow first token fails over; the total deadline answers 504; the header moves it within bounds; idle streams are cut', async () => {
  h.fake.forModel('gpt-4o', { latencyMs: 1500 });
  const t0 = Date.now();
  const r = await chat('slow-first');
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 < 1200, `did not wait for the slow backend (${Date.now() - t0} ms)`);
  assert.equal(r.headers.get('x-sluice-fallback'), 'default/openai:SLUICE_ERR_UPSTREAM_TIMEOUT');
  h.fake.reset();
  h.fake.forModel('claude-sonnet-4-5', { latencyMs: 800 });
  const t1 = Date.now();
  const late = await chat('deadline');
  assert.equal(late.status, 504);
  assert.equal(((await late.json()) as { error: { code: string; message: string } }).error.code, 'SLUICE_ERR_UPSTREAM_TIMEOUT');
  assert.ok(Date.now() - t1 < 700, `answered at the 300 ms deadline (${Date.now() - t1} ms)`);
  const longer = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-sluice-timeout-ms': '1500' }, body: JSON.stringify({ model: 'deadline', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(longer.status, 200, 'the header gives this request 1.5 s (the rule allows up to 2 s)');
  const bad = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-sluice-timeout-ms': 'soon' }, body: JSON.stringify({ model: 'deadline', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(bad.status, 400);
  h.fake.reset();
  h.fake.forModel('claude-sonnet-4-5', { chunks: 6, chunkIntervalMs: 400 });
  const idle = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-sluice-timeout-ms': '2000' }, body: JSON.stringify({ model: 'deadline', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(idle.status, 200);
  const text = await idle.text();
  assert.match(text, /SLUICE_ERR_UPSTREAM_TIMEOUT/, 'a stream silent for longer than idleMs ends with an error event');
  assert.equal(h.fake.requests.length, 1, 'not retried after the first byte');
});

test('shadow traffic: a copy goes to the candidate, is logged with cost and latency, never returned, and its failures do not matter', async () => {
  const r = await chat('shadowed');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-sluice-backend'), 'default/openai');
  const body = (await r.json()) as { object: string };
  assert.equal(body.object, 'chat.completion');
  const shadowLine = async (): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 100; i++) {
      const l = h.logs.filter((x) => x['msg'] === 'shadow').at(-1);
      if (l !== undefined && l['id'] === r.headers.get('x-request-id')) return l;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error('no shadow log line');
  };
  const s = await shadowLine();
  assert.equal(s['backend'], 'default/anthropic');
  assert.equal(s['upstreamModel'], 'claude-haiku-4-5');
  assert.equal(s['status'], 200);
  assert.ok(Number(s['costMicros']) > 0 && Number(s['durMs']) >= 0);
  assert.deepEqual(upstreamModels().sort(), ['claude-haiku-4-5', 'gpt-4o-mini']);
  h.fake.forModel('claude-haiku-4-5', { status: 500 });
  const again = await chat('shadowed');
  assert.equal(again.status, 200, 'a failing shadow never affects the caller');
  await again.text();
  for (let i = 0; i < 100 && !h.logs.some((x) => x['msg'] === 'shadow' && x['id'] === again.headers.get('x-request-id')); i++) await new Promise((res) => setTimeout(res, 20));
  assert.equal(h.logs.find((x) => x['msg'] === 'shadow' && x['id'] === again.headers.get('x-request-id'))?.['code'], 'SLUICE_ERR_UPSTREAM_SERVER_ERROR');
  const metrics = await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text();
  assert.match(metrics, /sluice_shadow_requests_total\{backend="default\/anthropic",code=""\} 1/);
  assert.match(metrics, /sluice_shadow_requests_total\{backend="default\/anthropic",code="SLUICE_ERR_UPSTREAM_SERVER_ERROR"\} 1/);
  assert.match(metrics, /sluice_shadow_cost_micros_total\{backend="default\/anthropic"\} [1-9]/);
});

test('coalescing: identical requests in flight share one upstream call, billed once; other users, streams and failures', async () => {
  h.fake.forModel('gpt-4o-mini', { latencyMs: 300 });
  const ask = (user: string, extra: Record<string, unknown> = {}): Promise<Response> =>
    fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-sluice-user': user }, body: JSON.stringify({ model: 'together', messages: [{ role: 'user', content: 'same question' }], ...extra }) });
  // Same body in another key order is the same request.
  const answers = await Promise.all([ask('ann'), ask('ann'), ask('ann'), fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-sluice-user': 'ann' }, body: JSON.stringify({ messages: [{ content: 'same question', role: 'user' }], model: 'together' }) })]);
  const bodies = await Promise.all(answers.map((r) => r.text()));
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 200]);
  assert.equal(new Set(bodies).size, 1, 'everyone gets the same answer');
  assert.equal(h.fake.requests.length, 1, 'one upstream call');
  const leaders = answers.filter((r) => r.headers.get('x-sluice-coalesced-with') === null);
  assert.equal(leaders.length, 1);
  const leaderId = leaders[0]?.headers.get('x-request-id');
  assert.deepEqual(new Set(answers.map((r) => r.headers.get('x-sluice-coalesced-with')).filter((x) => x !== null)), new Set([leaderId]));
  const logs = (await h.waitForRequestLogs(h.requestLogs().length)).slice(-4);
  assert.equal(logs.filter((l) => Number(l['costMicros']) > 0).length, 1, 'billed once, to the leader');
  assert.equal(logs.filter((l) => l['coalescedWith'] === leaderId && l['costMicros'] === 0 && l['status'] === 200).length, 3);
  h.fake.reset();
  h.fake.forModel('gpt-4o-mini', { latencyMs: 300 });
  await Promise.all([ask('ann').then((r) => r.text()), ask('bob').then((r) => r.text())]);
  assert.equal(h.fake.requests.length, 2, 'another user is another tenant');
  h.fake.reset();
  h.fake.forModel('gpt-4o-mini', { latencyMs: 300 });
  await Promise.all([ask('ann', { stream: true }).then((r) => r.text()), ask('ann', { stream: true }).then((r) => r.text())]);
  assert.equal(h.fake.requests.length, 2, 'streams are not coalesced');
  h.fake.reset();
  h.fake.forModel('gpt-4o-mini', { latencyMs: 300, status: 400, errorMessage: 'bad request' });
  const failed = await Promise.all([ask('ann'), ask('ann')]);
  assert.deepEqual(failed.map((r) => r.status), [400, 400], 'waiters get the leader failure');
  assert.equal(h.fake.requests.length, 1);
});

test('capability routing skips backends whose model lacks JSON mode, vision or the context window the request needs', async () => {
  const json = await chat('capable', { response_format: { type: 'json_object' } });
  assert.equal(json.status, 200);
  assert.equal(json.headers.get('x-sluice-backend'), 'default/openai', 'Claude has no JSON mode the gateway can map');
  assert.equal((await lastLog())['capabilitySkipped'], 'default/anthropic/claude-haiku-4-5:json');
  h.fake.reset();
  assert.equal((await chat('capable')).headers.get('x-sluice-backend'), 'default/anthropic', 'without JSON mode the declared order holds');
  const image = await fetch(`${h.sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'see', messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] }),
  });
  assert.equal(image.status, 200);
  assert.equal(image.headers.get('x-sluice-model'), 'claude-haiku-4-5', 'gpt-3.5-turbo takes no images');
  h.fake.reset();
  const long = await chat('long', { max_tokens: 20_000 });
  assert.equal(long.headers.get('x-sluice-model'), 'gpt-4o-mini', '20,000 output tokens do not fit 16,385');
  assert.equal((await lastLog())['capabilitySkipped'], 'default/openai/gpt-3.5-turbo:context');
  const short = await chat('long', { max_tokens: 200 });
  assert.equal(short.headers.get('x-sluice-model'), 'gpt-3.5-turbo');
});

test('capabilities declared on a backend model override the table (here: a 1,000-token context window)', async () => {
  const big = await chat('declared', { max_tokens: 2000 });
  assert.equal(big.status, 200);
  assert.equal(big.headers.get('x-sluice-backend'), 'default/openai');
  assert.equal(big.headers.get('x-sluice-fallback'), null, 'skipped, not tried');
  assert.equal((await lastLog())['capabilitySkipped'], 'default/tiny/tiny-model:context');
  const small = await chat('declared', { max_tokens: 10 });
  assert.equal(small.status, 200);
  assert.match(small.headers.get('x-sluice-fallback') ?? '', /^default\/tiny:SLUICE_ERR_UPSTREAM_CONNECT$/, 'small enough: tried first (and down here)');
});
