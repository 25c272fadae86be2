/** Local LLMLimits in the data path: reserve before sending, settle with real usage, 429 in the caller's shape. */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AnyPolicyObject } from '@sluice/policy';
import { estimateRequest } from '@sluice/providers';
import { startHarness, type Harness } from './harness.js';

const limit = (name: string, spec: Record<string, unknown>): AnyPolicyObject =>
  ({ apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMLimit', metadata: { name }, spec: { scope: 'local', ...spec } }) as unknown as AnyPolicyObject;

let h: Harness;
before(async () => {
  h = await startHarness({}, [
    limit('per-user-requests', { unit: 'requests', window: 'day', max: 2, key: [{ source: 'header', name: 'x-sluice-user' }], match: { models: ['gpt-4o'] } }),
    limit('tokens', { unit: 'tokens', window: 'day', max: 1000, match: { models: ['gpt-4o-mini'] } }),
    limit('budget', { unit: 'microUSD', window: 'month', calendarAligned: true, timeZone: 'Europe/Paris', max: 1500, match: { models: ['claude-haiku-4-5'] } }),
    limit('shadow', { unit: 'requests', window: 'minute', max: 0, mode: 'shadow', match: { models: ['gpt-4o'] } }),
    limit('clamped', { unit: 'outputTokens', window: 'day', max: 300, clampMaxTokens: true, match: { models: ['gpt-4.1-mini'] } }),
    // No quota client in this harness: a global limit's credit is unavailable, its failure mode applies.
    limit('global-open', { unit: 'requests', window: 'minute', max: 0, scope: 'global', failureMode: 'FailOpen', match: { models: ['gpt-4o'] } }),
    limit('global-closed', { unit: 'requests', window: 'minute', max: 1000, scope: 'global', failureMode: 'FailClosed', match: { models: ['gpt-4o-2024-08-06'] } }),
    limit('global-share', { unit: 'requests', window: 'minute', max: 2, scope: 'global', failureMode: 'LocalShare', match: { models: ['gpt-4o-mini-2024-07-18'] } }),
  ]);
});
after(() => h.close());
beforeEach(() => h.fake.reset());

const post = (path: string, body: object, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${h.sidecar.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const chat = (model: string, extra: object = {}): object => ({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

test('a per-user request limit denies the third request of that user only, with the OpenAI headers', async () => {
  const alice = { 'x-sluice-user': 'alice' };
  const first = await post('/v1/chat/completions', chat('gpt-4o'), alice);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-ratelimit-limit-requests'), '2');
  assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '1');
  assert.match(first.headers.get('x-ratelimit-reset-requests') ?? '', /^\d+s$/);
  assert.equal((await post('/v1/chat/completions', chat('gpt-4o'), alice)).status, 200);
  const third = await post('/v1/chat/completions', chat('gpt-4o'), alice);
  assert.equal(third.status, 429);
  assert.equal(third.headers.get('x-sluice-error-code'), 'SLUICE_ERR_LIMIT_EXCEEDED');
  assert.ok(Number(third.headers.get('retry-after')) >= 1);
  const body = (await third.json()) as { error: { code: string; type: string; message: string } };
  assert.equal(body.error.type, 'rate_limit_error');
  assert.match(body.error.message, /default\/per-user-requests \(x-sluice-user=alice\)/);
  assert.equal(h.fake.requests.length, 2, 'the denied request never reached the provider');
  assert.equal(third.headers.get('x-sluice-limit'), 'default/per-user-requests', 'the header names the limit that denied');
  const [firstLog, , thirdLog] = await h.waitForRequestLogs(3);
  assert.equal(firstLog?.['limitShadowDenied'], 'default/shadow', 'the shadow limit (max 0) would have denied: reported, not enforced');
  assert.equal(firstLog?.['limitFallbacks'], 'default/global-open:FailOpen', 'FailOpen admitted without global credit');
  assert.equal(thirdLog?.['limit'], 'default/per-user-requests');
  const metrics = await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text();
  assert.match(metrics, /sluice_limit_decisions_total\{limit="default\/per-user-requests",decision="denied"\} 1/);
  assert.match(metrics, /sluice_limit_decisions_total\{limit="default\/shadow",decision="shadow_denied"\} [1-9]/);
  assert.equal((await post('/v1/chat/completions', chat('gpt-4o'), { 'x-sluice-user': 'bob' })).status, 200, 'another user has its own counter');
  assert.equal((await post('/v1/chat/completions', chat('gpt-4o'))).status, 200, 'without the header the per-user limit does not apply (documented)');
});

test('token limits reserve prompt + max_tokens and settle with the real usage', async () => {
  h.fake.enqueue({ usage: { input: 10, output: 5 } });
  const ok = await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 900 }));
  assert.equal(ok.status, 200);
  // After settling, only 15 of 1,000 tokens are used: another 900-token reservation fits.
  h.fake.enqueue({ usage: { input: 10, output: 5 } });
  const again = await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 900 }));
  assert.equal(again.status, 200);
  const prompt = estimateRequest('openai-chat', chat('gpt-4o-mini') as Record<string, unknown>, 'gpt-4o-mini').promptTokens;
  assert.equal(again.headers.get('x-ratelimit-remaining-tokens'), String(1000 - 15 - (prompt + 900)), 'remaining while this request is still reserved');
  const tooBig = await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 2000 }));
  assert.equal(tooBig.status, 429);
  assert.equal(tooBig.headers.get('x-sluice-error-code'), 'SLUICE_ERR_LIMIT_EXCEEDED');
});

test('a monthly micro-USD budget stops with a distinct code, in the Anthropic shape for Anthropic callers', async () => {
  // claude-haiku-4-5: $1/M in, $5/M out. 100 in + 200 out = 100 + 1000 µ$ reserved up front.
  h.fake.enqueue({ usage: { input: 100, output: 200 } });
  const first = await post('/v1/messages', { model: 'claude-haiku-4-5', max_tokens: 200, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-sluice-cost-micros'), '1100');
  const second = await post('/v1/messages', { model: 'claude-haiku-4-5', max_tokens: 200, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(second.status, 429);
  assert.equal(second.headers.get('x-sluice-error-code'), 'SLUICE_ERR_LIMIT_BUDGET_EXHAUSTED');
  const body = (await second.json()) as { type: string; error: { type: string; message: string } };
  assert.equal(body.type, 'error');
  assert.equal(body.error.type, 'rate_limit_error');
  assert.match(body.error.message, /month budget of limit default\/budget/);
});

test('a stream the client leaves is charged at least its reservation; a failed call is not charged', async () => {
  const before = await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 10 }));
  const start = Number(before.headers.get('x-ratelimit-remaining-tokens'));
  await new Promise((r) => setTimeout(r, 20));
  // Provider 500: nothing produced, nothing kept.
  h.fake.enqueue({ status: 500 });
  assert.equal((await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 100 }))).status, 502);
  const prompt = estimateRequest('openai-chat', chat('gpt-4o-mini') as Record<string, unknown>, 'gpt-4o-mini').promptTokens;
  const probe = await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 10 }));
  const afterFailure = Number(probe.headers.get('x-ratelimit-remaining-tokens'));
  // Only the probe itself is reserved now (plus whatever the previous settled requests used).
  assert.ok(afterFailure >= start - (prompt + 10) - 20, `the failed call was returned (${start} → ${afterFailure})`);
  // A long stream the client abandons: the reservation (prompt + 300) stays charged.
  h.fake.enqueue({ chunks: 50, chunkIntervalMs: 20 });
  const ac = new AbortController();
  const res = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat('gpt-4o-mini', { max_tokens: 300, stream: true })), signal: ac.signal });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  await new Promise((r) => setTimeout(r, 100));
  const last = await post('/v1/chat/completions', chat('gpt-4o-mini', { max_tokens: 10 }));
  const remaining = Number(last.headers.get('x-ratelimit-remaining-tokens'));
  assert.ok(remaining <= afterFailure - (prompt + 300), `the abandoned stream kept its reservation (${afterFailure} → ${remaining})`);
});

test('a limit with clampMaxTokens lowers max_tokens to the credit instead of denying', async () => {
  h.fake.enqueue({ usage: { input: 5, output: 100 } });
  const r = await post('/v1/chat/completions', chat('gpt-4.1-mini', { max_tokens: 5000 }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-sluice-max-tokens-clamped'), '300');
  assert.equal((JSON.parse(h.fake.requests.at(-1)?.body ?? '{}') as { max_tokens?: number }).max_tokens, 300, 'the provider got the lowered max_tokens');
  // 100 output tokens used: the next request can have at most 200.
  const next = await post('/v1/chat/completions', chat('gpt-4.1-mini', { max_completion_tokens: 1000 }));
  assert.equal(next.headers.get('x-sluice-max-tokens-clamped'), '200');
  assert.equal((JSON.parse(h.fake.requests.at(-1)?.body ?? '{}') as { max_completion_tokens?: number }).max_completion_tokens, 200, 'the field the caller used is the one lowered');
  assert.equal(h.requestLogs().at(-1)?.['clampedMaxTokens'], 200);
});

test('without global credit, FailClosed answers 503 at once and LocalShare enforces the limit locally', async () => {
  const closed = await post('/v1/chat/completions', chat('gpt-4o-2024-08-06'));
  assert.equal(closed.status, 503);
  assert.equal(closed.headers.get('x-sluice-error-code'), 'SLUICE_ERR_LIMIT_UNAVAILABLE');
  assert.equal(closed.headers.get('retry-after'), '1');
  assert.equal(closed.headers.get('x-sluice-limit'), 'default/global-closed');
  // LocalShare with no peer count known: the whole limit (2 per minute) in this sidecar.
  const codes = [];
  for (let i = 0; i < 3; i++) codes.push((await post('/v1/chat/completions', chat('gpt-4o-mini-2024-07-18'))).status);
  assert.deepEqual(codes, [200, 200, 429]);
  const logs = h.requestLogs().slice(-3);
  assert.equal(logs[0]?.['limitFallbacks'], 'default/global-share:LocalShare');
});
