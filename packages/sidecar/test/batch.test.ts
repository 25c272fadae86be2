/**
 * Batch routing against the fake provider's batch APIs (OpenAI Batch with its file uploads,
 * Anthropic Message Batches): requests collected into one batch, each caller gets its own answer in
 * its own API shape at the batch price; 202 + poll URL for callers that prefer not to wait; and the
 * faults: submission refused, batch failed, poll errors, expired requests, one request's own error,
 * a caller leaving before submission.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import type { AnyPolicyObject } from '@sluice/policy';
import { waitFor } from '@sluice/testkit';
import { startHarness, type Harness } from './harness.js';

const route = (rules: unknown[]): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'batched' }, spec: { rules } }) as unknown as AnyPolicyObject;
const fast = { windowMs: 150, pollMs: 40 };

let h: Harness;
let openai: OpenAI;
let anthropic: Anthropic;
before(async () => {
  h = await startHarness({}, [
    route([
      { match: { models: ['nightly'] }, batch: { mode: 'header', ...fast }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
      { match: { models: ['nightly-claude'] }, batch: { mode: 'always', ...fast }, backends: [{ name: 'anthropic', modelOverride: 'claude-haiku-4-5' }] },
      { match: { models: ['pair'] }, batch: { mode: 'always', windowMs: 60_000, maxRequests: 2, pollMs: 40 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
      { match: { models: ['short-hold'] }, batch: { mode: 'always', windowMs: 50, pollMs: 40, holdMs: 100 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
      { match: { models: ['slow-window'] }, batch: { mode: 'always', windowMs: 400, pollMs: 40 }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }] },
      // The first backend has no batch API (OpenAI-compatible): the batch goes to the next one.
      { match: { models: ['mixed'] }, batch: { mode: 'always', ...fast }, retry: { attempts: 2 }, backends: [{ name: 'dead', modelOverride: 'x' }, { name: 'anthropic', modelOverride: 'claude-haiku-4-5' }] },
    ]),
  ]);
  openai = new OpenAI({ apiKey: 'sk-client', baseURL: `${h.sidecar.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-client', baseURL: h.sidecar.url, maxRetries: 0 });
});
after(() => h.close());
beforeEach(() => h.fake.reset());

const chat = (model: string, headers: Record<string, string> = {}, content = 'hi'): Promise<Response> =>
  fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model, messages: [{ role: 'user', content }] }) });
const realtimeCalls = (): number => h.fake.requests.filter((r) => r.path === '/v1/chat/completions' || r.path === '/v1/messages').length;
const logOf = async (id: string): Promise<Record<string, unknown>> => {
  let found: Record<string, unknown> | undefined;
  await waitFor(`log line of ${id}`, () => (found = h.requestLogs().find((l) => l['id'] === id)) !== undefined);
  return found as Record<string, unknown>;
};

test('OpenAI SDK callers marked latency-tolerant share one OpenAI batch, each gets its own answer at half price', async () => {
  const realtime = await openai.chat.completions.create({ model: 'nightly', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
  const fullCost = Number(realtime.response.headers.get('x-sluice-cost-micros'));
  assert.ok(fullCost > 0);
  assert.equal(h.fake.batches.length, 0, 'without the header the request is served in real time');
  h.fake.reset();

  const asks = ['one', 'two', 'three'].map((content) => openai.chat.completions.create({ model: 'nightly', messages: [{ role: 'user', content: 'hi' }], user: content }, { headers: { 'x-sluice-batch': 'true' } }).withResponse());
  const answers = await Promise.all(asks);
  assert.equal(h.fake.batches.length, 1, 'one batch');
  const batch = h.fake.batches[0];
  assert.equal(batch?.api, 'openai');
  assert.equal(batch?.customIds.length, 3);
  assert.deepEqual(batch?.models, ['gpt-4o-mini'], 'the upstream model is in the batch lines');
  assert.equal(realtimeCalls(), 0, 'nothing went to the real-time endpoint');
  assert.deepEqual(
    h.fake.requests.map((r) => `${r.method} ${r.path.replace(/(batch_|file-)[0-9a-f]+/gu, '$1*')}`).slice(0, 2),
    ['POST /v1/files', 'POST /v1/batches'],
    'the JSONL file is uploaded, then the batch created',
  );
  const ids = new Set<string>();
  for (const { data, response } of answers) {
    assert.equal(data.object, 'chat.completion');
    assert.ok((data.choices[0]?.message.content ?? '').length > 0);
    ids.add(data.id);
    assert.equal(response.headers.get('x-sluice-batch'), batch?.id);
    assert.equal(Number(response.headers.get('x-sluice-cost-micros')), Math.ceil(fullCost / 2), 'the batch price is half the real-time price');
    const log = await logOf(response.headers.get('x-request-id') ?? '');
    assert.equal(log['batch'], batch?.id);
    assert.equal(log['status'], 200);
    assert.equal(log['costMicros'], Math.ceil(fullCost / 2));
    assert.ok((log['inputTokens'] as number) > 0);
  }
  assert.equal(ids.size, 3, 'each caller got its own completion');
  const metrics = await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text();
  assert.match(metrics, /sluice_batches_total\{backend="default\/openai",outcome="submitted"\} [1-9]/u);
  assert.match(metrics, /sluice_batch_requests_total\{backend="default\/openai",outcome="completed"\} [3-9]/u);
});

test('Anthropic SDK callers on an always-batched route go through one Message Batch; an OpenAI caller there is translated', async () => {
  const [a, b, c] = await Promise.all([
    anthropic.messages.create({ model: 'nightly-claude', max_tokens: 50, messages: [{ role: 'user', content: 'first' }] }),
    anthropic.messages.create({ model: 'nightly-claude', max_tokens: 50, messages: [{ role: 'user', content: 'second' }] }),
    chat('nightly-claude'),
  ]);
  assert.equal(a.type, 'message');
  assert.equal(b.type, 'message');
  assert.equal(a.model, 'claude-haiku-4-5');
  assert.equal(c.status, 200);
  const translated = (await c.json()) as { object: string; choices: Array<{ message: { content: string } }> };
  assert.equal(translated.object, 'chat.completion', 'the OpenAI caller keeps its shape');
  assert.equal(h.fake.batches.length, 1);
  assert.equal(h.fake.batches[0]?.api, 'anthropic');
  assert.equal(h.fake.batches[0]?.customIds.length, 3);
  assert.equal(realtimeCalls(), 0);
  const create = h.fake.requests.find((r) => r.path === '/v1/messages/batches');
  assert.equal(create?.headers['x-api-key'], 'sk-ant-upstream-key', "the backend's credential, not the caller's");
  // x-sluice-batch: false opts a request out of an always-batched route.
  h.fake.reset();
  const now = await chat('nightly-claude', { 'x-sluice-batch': 'false' });
  assert.equal(now.status, 200);
  assert.equal(h.fake.batches.length, 0);
  assert.equal(realtimeCalls(), 1);
});

test('a batch is submitted as soon as it holds maxRequests, without waiting for its window', async () => {
  const t0 = Date.now();
  const rs = await Promise.all([chat('pair'), chat('pair')]);
  assert.deepEqual(
    rs.map((r) => r.status),
    [200, 200],
  );
  assert.ok(Date.now() - t0 < 5000, 'the 60 s window was not waited for');
  assert.equal(h.fake.batches.length, 1);
  assert.equal(h.fake.batches[0]?.customIds.length, 2);
});

test('Prefer: respond-async gets a 202 with a poll URL; the poll answers 202 until the batch is done, then the answer', async () => {
  h.fake.setBatchBehaviour({ processMs: 400 });
  const r = await chat('nightly', { 'x-sluice-batch': 'true', prefer: 'respond-async' });
  assert.equal(r.status, 202);
  const accepted = (await r.json()) as { id: string; status: string; poll_url: string; object: string };
  assert.equal(accepted.object, 'sluice.batch_request');
  assert.equal(accepted.status, 'queued');
  assert.equal(r.headers.get('location'), accepted.poll_url);
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  const poll = (): Promise<Response> => fetch(`${h.sidecar.url}${accepted.poll_url}`);
  const pending = await poll();
  assert.equal(pending.status, 202);
  assert.equal(((await pending.json()) as { id: string }).id, accepted.id);
  let done: Response | undefined;
  await waitFor(
    'the batched answer',
    async () => {
      const p = await poll();
      if (p.status === 200) done = p;
      else await p.text();
      return done !== undefined;
    },
    5000,
  );
  const body = (await (done as Response).json()) as { object: string };
  assert.equal(body.object, 'chat.completion');
  assert.equal(done?.headers.get('x-sluice-batch'), h.fake.batches[0]?.id);
  // The one log line is written when the answer arrived, with its usage and the poll id.
  const log = await logOf(r.headers.get('x-request-id') ?? '');
  assert.equal(log['status'], 200);
  assert.equal(log['batchPoll'], accepted.id);
  assert.ok((log['outputTokens'] as number) > 0);
  // Readable again until it expires; an unknown id is a 404 in the caller's shape.
  assert.equal((await poll()).status, 200);
  const unknown = await fetch(`${h.sidecar.url}/v1/sluice/batch/nope`);
  assert.equal(unknown.status, 404);
  assert.equal(unknown.headers.get('x-sluice-error-code'), 'SLUICE_ERR_BATCH_UNKNOWN_REQUEST');
  assert.equal(((await unknown.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
  const anthropicShape = await fetch(`${h.sidecar.url}/v1/sluice/batch/nope`, { headers: { 'anthropic-version': '2023-06-01' } });
  assert.equal(((await anthropicShape.json()) as { type: string }).type, 'error');
});

test('a caller held longer than holdMs gets a 202, and a failed request reaches the poller as its error', async () => {
  h.fake.setBatchBehaviour({ processMs: 500 });
  h.fake.forModel('gpt-4o-mini', { status: 400, errorMessage: 'bad things in the prompt' });
  const t0 = Date.now();
  const r = await chat('short-hold');
  assert.equal(r.status, 202);
  assert.ok(Date.now() - t0 < 450, 'answered at the hold, before the batch finished');
  const { poll_url } = (await r.json()) as { poll_url: string };
  let last: Response | undefined;
  await waitFor(
    'the batched error',
    async () => {
      last = await fetch(`${h.sidecar.url}${poll_url}`);
      if (last.status === 202) await last.text();
      return last.status !== 202;
    },
    5000,
  );
  assert.equal(last?.status, 400);
  assert.equal(last?.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_CLIENT_ERROR');
  assert.match(((await (last as Response).json()) as { error: { message: string } }).error.message, /bad things in the prompt/u);
});

test("one request's error in a batch is that caller's alone", async () => {
  h.fake.enqueue({ status: 400, errorMessage: 'this one is bad' });
  const [bad, good] = await Promise.all([chat('nightly-claude', {}, 'first'), new Promise((r) => setTimeout(r, 30)).then(() => chat('nightly-claude', {}, 'second'))]);
  assert.equal(h.fake.batches.length, 1);
  assert.equal(h.fake.batches[0]?.customIds.length, 2);
  assert.equal(bad.status, 400);
  assert.equal(bad.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_CLIENT_ERROR');
  assert.equal(good.status, 200);
});

test('a batch the provider refuses to create, or fails as a whole, is served in real time', async () => {
  h.fake.setBatchBehaviour({ createStatus: 500 });
  const r = await chat('nightly', { 'x-sluice-batch': 'true' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-sluice-batch'), 'fallback');
  assert.match(r.headers.get('x-sluice-fallback') ?? '', /^default\/openai:batch:SLUICE_ERR_UPSTREAM_SERVER_ERROR$/u);
  assert.equal(realtimeCalls(), 1);
  const log = await logOf(r.headers.get('x-request-id') ?? '');
  assert.equal(log['batch'], 'fallback');
  assert.equal(log['attempts'], 2);

  h.fake.reset();
  h.fake.setBatchBehaviour({ fail: true });
  const f = await chat('nightly', { 'x-sluice-batch': 'true' });
  assert.equal(f.status, 200);
  assert.equal(h.fake.batches.length, 1, 'the batch was submitted');
  assert.equal(realtimeCalls(), 1, 'then the request went in real time');
  assert.equal(f.headers.get('x-sluice-batch'), 'fallback');
});

test('poll errors are retried; requests of an expired batch answer 504', async () => {
  h.fake.setBatchBehaviour({ pollStatus: 500 });
  const pending = chat('nightly', { 'x-sluice-batch': 'true' });
  await waitFor('two failed polls', () => h.fake.requests.filter((r) => r.method === 'GET').length >= 2);
  h.fake.setBatchBehaviour({});
  const r = await pending;
  assert.equal(r.status, 200, 'the poll recovered');

  h.fake.reset();
  h.fake.setBatchBehaviour({ expire: true });
  const e = await chat('nightly-claude');
  assert.equal(e.status, 504);
  assert.equal(e.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_TIMEOUT');
  assert.match(((await e.json()) as { error: { message: string } }).error.message, /expired/u);
});

test('streams are not batched; a caller that leaves before submission is taken out of the batch', async () => {
  const s = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-sluice-batch': 'true' }, body: JSON.stringify({ model: 'nightly', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(s.status, 200);
  assert.match(await s.text(), /\[DONE\]/u);
  assert.equal(h.fake.batches.length, 0);

  h.fake.reset();
  const ac = new AbortController();
  const gone = chat('slow-window', { 'x-request-id': 'leaves-early' }).catch(() => undefined);
  const leaving = fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'slow-window', messages: [{ role: 'user', content: 'bye' }] }) }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  await leaving;
  const stays = await gone;
  assert.equal(stays?.status, 200);
  assert.equal(h.fake.batches.length, 1);
  assert.equal(h.fake.batches[0]?.customIds.length, 1, 'only the caller still waiting was submitted');
});

test('the batch goes to the first backend with a batch API', async () => {
  const r = await chat('mixed');
  assert.equal(r.status, 200);
  assert.equal(h.fake.batches.length, 1);
  assert.equal(h.fake.batches[0]?.api, 'anthropic');
  assert.equal(r.headers.get('x-sluice-backend'), 'default/anthropic');
});
