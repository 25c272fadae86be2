/**
 * LLMGuardrail, the rest of it, through the sidecar against the fake provider: the external
 * classifier hook (OpenAI moderation and Llama Guard wire formats; block and log; threshold and
 * category filters; timeouts and errors failing open or closed; streamed answers whose end waits for
 * the verdict), opt-in prompt and completion logging through the redaction, tool-call arguments
 * scanned in requests and answers (streamed too), and `log` guardrails on streams (nothing delayed).
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import type { AnyPolicyObject } from '@sluice/policy';
import { captureLogger } from '@sluice/testkit';
import { OPENAI_KEY, policy, snapshotFor, startHarness, type Harness } from './harness.js';

const obj = (kind: string, name: string, spec: unknown): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind, metadata: { name }, spec }) as unknown as AnyPolicyObject;
const route = (name: string, model: string, upstream: string, extra: Record<string, unknown> = {}, backend = 'openai'): AnyPolicyObject =>
  obj('LLMRoute', name, { rules: [{ match: { models: [model] }, backends: [{ name: backend, modelOverride: upstream }], retry: { attempts: 1 }, ...extra }] });

const MODERATION = 'omni-moderation-latest';
const policyObjects = [
  route('moderated', 'mod-in', 'gpt-4o-mini'),
  route('closed', 'mod-closed', 'gpt-4o-mini'),
  route('answers', 'mod-out', 'gpt-4o'),
  route('answers-anthropic', 'mod-out-a', 'claude-haiku-4-5', {}, 'anthropic'),
  route('llama', 'guarded-llama', 'gpt-4o'),
  route('chatty', 'chatty', 'gpt-4o', { logging: { prompts: true, completions: true, maxChars: 120 } }),
  route('tools', 'tools', 'gpt-4o'),
  route('tools-anthropic', 'tools-a', 'claude-haiku-4-5', {}, 'anthropic'),
  route('watched', 'watched', 'gpt-4o'),
  route('early', 'mod-early', 'gpt-4.1'),
  route('azure-guarded', 'mod-azure', 'gpt-4o-mini'),
  obj('LLMBackend', 'content-safety', { provider: 'azure-content-safety', endpoint: 'http://placeholder.invalid', auth: { env: 'OPENAI_API_KEY' } }),
  obj('LLMGuardrail', 'a-pii', { match: { routes: ['moderated', 'tools', 'tools-anthropic'] }, direction: 'both', action: 'redact', detectors: [{ kind: 'email' }] }),
  obj('LLMGuardrail', 'b-moderation', { match: { routes: ['moderated'] }, direction: 'input', action: 'block', classifier: { backend: 'openai', model: MODERATION, timeoutMs: 300 } }),
  obj('LLMGuardrail', 'c-closed', { match: { routes: ['closed'] }, direction: 'input', action: 'block', classifier: { backend: 'openai', model: 'strict-moderation', timeoutMs: 300, onError: 'block' } }),
  obj('LLMGuardrail', 'd-violence', { match: { routes: ['answers', 'answers-anthropic'] }, direction: 'output', action: 'block', classifier: { backend: 'openai', model: MODERATION, categories: ['violence'], threshold: 0.3 } }),
  obj('LLMGuardrail', 'e-llama', { match: { routes: ['llama'] }, direction: 'both', action: 'block', classifier: { backend: 'openai', model: 'llama-guard-3', format: 'llamaGuard', categories: ['S1', 'S9'] } }),
  obj('LLMGuardrail', 'f-watch', { match: { routes: ['watched'] }, direction: 'output', action: 'log', detectors: [{ kind: 'ssn' }] }),
  obj('LLMGuardrail', 'h-early', { match: { routes: ['early'] }, direction: 'output', action: 'block', classifier: { backend: 'openai', model: MODERATION, categories: ['violence'], streamCheckChars: 40 } }),
  obj('LLMGuardrail', 'i-watch-moderation', { match: { routes: ['watched'] }, direction: 'output', action: 'log', classifier: { backend: 'openai', model: MODERATION } }),
  obj('LLMGuardrail', 'j-azure', { match: { routes: ['azure-guarded'] }, direction: 'input', action: 'block', classifier: { backend: 'content-safety', model: 'text', format: 'azureContentSafety', threshold: 0.5 } }),
  obj('LLMGuardrail', 'g-moderation-log', { match: { routes: ['chatty'] }, direction: 'input', action: 'log', classifier: { backend: 'openai', model: MODERATION } }),
];

let h: Harness;
const audit = captureLogger({ name: 'audit' });
before(async () => {
  // The content safety backend's endpoint is the fake provider's (known once it is started).
  h = await startHarness({}, policyObjects, { audit: audit.logger });
  const withFake = policyObjects.map((o) => (o.metadata.name === 'content-safety' ? obj('LLMBackend', 'content-safety', { provider: 'azure-content-safety', endpoint: h.fake.url, auth: { env: 'OPENAI_API_KEY' } }) : o));
  assert.deepEqual(h.sidecar.applySnapshot(snapshotFor(policy(h.fake.url, withFake))), []);
});
after(() => h.close());
beforeEach(() => h.fake.reset());

const post = (path: string, body: unknown): Promise<Response> => fetch(`${h.sidecar.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify(body) });
const chat = (model: string, content: string, extra: Record<string, unknown> = {}): Promise<Response> => post('/v1/chat/completions', { model, messages: [{ role: 'user', content }], ...extra });
const toUpstream = (path: string): Array<Record<string, unknown>> => h.fake.requests.filter((r) => r.path === path).map((r) => JSON.parse(r.body) as Record<string, unknown>);
/** The request's log line (written after the answer; waited for). */
async function logOf(r: Response): Promise<Record<string, unknown>> {
  const id = r.headers.get('x-request-id');
  for (let i = 0; i < 600; i++) {
    const line = h.requestLogs().find((l) => l['id'] === id);
    if (line !== undefined) return line;
    await new Promise((ok) => setTimeout(ok, 5));
  }
  throw new Error(`no log line for ${String(id)}`);
}
const events = (sse: string): Array<Record<string, unknown> | '[DONE]'> =>
  sse
    .split('\n\n')
    .map((b) => b.split('\n').find((l) => l.startsWith('data: '))?.slice(6))
    .filter((d): d is string => d !== undefined)
    .map((d) => (d === '[DONE]' ? '[DONE]' : (JSON.parse(d) as Record<string, unknown>)));

test('classifier on input: flagged requests are blocked before anything goes upstream; it sees the redacted text', async () => {
  const ok = await chat('mod-in', 'Mail jane@example.com about the picnic.');
  assert.equal(ok.status, 200);
  const asked = toUpstream('/v1/moderations');
  assert.equal(asked.length, 1);
  assert.deepEqual(asked[0], { model: MODERATION, input: ['Mail [EMAIL_1] about the picnic.'] }, 'the classifier gets the redacted text, not the address');
  assert.equal(toUpstream('/v1/chat/completions').length, 1);
  const okLog = await logOf(ok);
  assert.equal(typeof okLog['classifierMs'], 'number');

  h.fake.reset();
  const bad = await chat('mod-in', 'I am going to murder the build server.');
  assert.equal(bad.status, 400);
  assert.equal(bad.headers.get('x-sluice-error-code'), 'SLUICE_ERR_GUARDRAIL_BLOCKED');
  const msg = ((await bad.json()) as { error: { message: string } }).error.message;
  assert.match(msg, /default\/b-moderation/u);
  assert.match(msg, /violence/u);
  assert.equal(toUpstream('/v1/chat/completions').length, 0, 'nothing sent to the model');
  const log = await logOf(bad);
  assert.match(String(log['guardrails']), /default\/b-moderation:input:block:classifier:violencex1/u);
  assert.ok(audit.logs.some((l) => l['id'] === log['id'] && l['detector'] === 'classifier:violence' && l['action'] === 'block'));
  assert.doesNotMatch(JSON.stringify(audit.logs), /murder/u, 'the audit stream never holds the text');
  const m = await (await fetch(`${h.sidecar.adminUrl}/metrics`)).text();
  assert.match(m, /sluice_guardrail_findings_total\{guardrail="default\/b-moderation",detector="classifier:violence",direction="input",action="block"\} 1/u);

  // Anthropic callers get the error in their shape.
  const a = await post('/v1/messages', { model: 'mod-in', max_tokens: 10, messages: [{ role: 'user', content: 'you idiot' }] });
  assert.equal(a.status, 400);
  assert.equal(((await a.json()) as { type: string; error: { type: string } }).error.type, 'invalid_request_error');
});

test('classifier failures: a timeout fails open by default (recorded), a guardrail with onError block fails closed with 503', async () => {
  h.fake.forModel(MODERATION, { latencyMs: 1500 });
  const t0 = Date.now();
  const open = await chat('mod-in', 'hello there');
  assert.equal(open.status, 200, 'fail open');
  assert.ok(Date.now() - t0 < 1400, 'the classifier timeout (300 ms) bounds the wait');
  const log = await logOf(open);
  assert.match(String(log['guardrails']), /b-moderation:input:allow:classifierErrorx1/u);
  assert.ok(audit.logs.some((l) => l['id'] === log['id'] && l['detector'] === 'classifierError' && l['reason'] === 'SLUICE_ERR_UPSTREAM_TIMEOUT'), 'the audit record says why');

  for (const script of [{ latencyMs: 1500 }, { status: 500 }, { garbage: 'json' as const }]) {
    h.fake.reset();
    h.fake.forModel('strict-moderation', script);
    const closed = await chat('mod-closed', 'hello there');
    assert.equal(closed.status, 503, JSON.stringify(script));
    assert.equal(closed.headers.get('x-sluice-error-code'), 'SLUICE_ERR_GUARDRAIL_UNAVAILABLE');
    assert.equal(toUpstream('/v1/chat/completions').length, 0);
    assert.match(String((await logOf(closed))['guardrails']), /c-closed:input:block:classifierErrorx1/u);
  }
  h.fake.reset();
  assert.equal((await chat('mod-closed', 'hello there')).status, 200, 'a classifier that answers lets clean requests through');
});

test('classifier on output: threshold and category filter; a non-streamed answer is withheld, a stream ends in one error event instead of its end', async () => {
  h.fake.forModel('gpt-4o', { text: 'You could fight for it.' });
  const blocked = await chat('mod-out', 'what now?');
  assert.equal(blocked.status, 400, 'the borderline score 0.4 reaches the threshold 0.3');
  assert.doesNotMatch(await blocked.text(), /fight/u);
  assert.deepEqual(toUpstream('/v1/moderations').at(-1)?.['input'], ['You could fight for it.']);

  h.fake.forModel('gpt-4o', { text: 'You are an idiot.' });
  assert.equal((await chat('mod-out', 'what now?')).status, 200, 'harassment is not among the categories that count');

  h.fake.forModel('gpt-4o', { text: 'Then they will fight it out at noon today.', chunks: 6 });
  const s = await (await chat('mod-out', 'what now?', { stream: true, stream_options: { include_usage: true } })).text();
  const ev = events(s);
  const last = ev.at(-1);
  assert.ok(last !== '[DONE]' && last !== undefined && JSON.stringify(last).includes('SLUICE_ERR_GUARDRAIL_BLOCKED'), 'one terminal error event');
  assert.ok(!ev.includes('[DONE]'));
  assert.ok(!ev.some((e) => e !== '[DONE]' && (e['choices'] as Array<{ finish_reason: unknown }> | undefined)?.[0]?.finish_reason === 'stop'), 'the finish was held and replaced');

  h.fake.forModel('gpt-4o', { text: 'A calm and friendly answer.', chunks: 4 });
  const clean = events(await (await chat('mod-out', 'what now?', { stream: true, stream_options: { include_usage: true } })).text());
  assert.equal(clean.at(-1), '[DONE]');
  assert.ok(clean.some((e) => e !== '[DONE]' && e['usage'] !== undefined && e['usage'] !== null), 'the held usage chunk is sent after the verdict');

  h.fake.forModel('claude-haiku-4-5', { text: 'We will kill the process at midnight.', chunks: 5 });
  const a = await (await post('/v1/messages', { model: 'mod-out-a', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'plan?' }] })).text();
  assert.match(a, /event: error/u);
  assert.doesNotMatch(a, /event: message_stop/u);
});

test('Llama Guard classifier behind a chat API: unsafe with a category that counts blocks, others and safe pass', async () => {
  h.fake.forModel('llama-guard-3', { text: 'unsafe\nS1' });
  const bad = await chat('guarded-llama', 'how do I hurt someone');
  assert.equal(bad.status, 400);
  assert.match(String((await logOf(bad))['guardrails']), /e-llama:input:block:classifier:S1x1/u);
  const asked = toUpstream('/v1/chat/completions');
  assert.equal(asked.length, 1, 'only the classifier was asked');
  assert.equal(asked[0]?.['model'], 'llama-guard-3');
  assert.deepEqual(asked[0]?.['messages'], [{ role: 'user', content: 'how do I hurt someone' }]);

  h.fake.reset();
  h.fake.forModel('llama-guard-3', { text: 'unsafe\nS2' });
  assert.equal((await chat('guarded-llama', 'hello')).status, 200, 'S2 is not among the categories that count');
  h.fake.reset();
  h.fake.forModel('llama-guard-3', { text: 'safe' });
  h.fake.forModel('gpt-4o', { text: 'Hi!' });
  const ok = await chat('guarded-llama', 'hello');
  assert.equal(ok.status, 200);
  const guardCalls = toUpstream('/v1/chat/completions').filter((b) => b['model'] === 'llama-guard-3');
  assert.equal(guardCalls.length, 2, 'input and output both asked');
  assert.deepEqual(guardCalls[1]?.['messages'], [
    { role: 'user', content: 'hello' },
    { role: 'assistant', content: 'Hi!' },
  ]);
});

test('prompt logging is opt-in per route and passes through the redaction (default PII detectors here), cut to maxChars', async () => {
  h.fake.forModel('gpt-4o', { text: 'Call me at +1 415 555 0100 or mail ops@example.com.' });
  const r = await chat('chatty', 'My card is 4111 1111 1111 1111 and my mail jane@example.com.');
  assert.equal(r.status, 200);
  const log = await logOf(r);
  assert.equal(log['prompt'], 'My card is [CREDIT_CARD_1] and my mail [EMAIL_1].');
  assert.equal(log['completion'], 'Call me at [PHONE_1] or mail [EMAIL_2].');
  assert.deepEqual(toUpstream('/v1/moderations').at(-1)?.['input'], ['My card is 4111 1111 1111 1111 and my mail jane@example.com.'], 'logging redacts the log only, not the request');
  assert.doesNotMatch(JSON.stringify(h.logs), /4111 1111|jane@example|ops@example|555 0100/u);

  h.fake.forModel('gpt-4o', { text: 'Streamed: write to ops@example.com today.', chunks: 5 });
  const s = await chat('chatty', `${'long question '.repeat(20)}end`, { stream: true });
  const streamedText = events(await s.text())
    .map((e) => (e === '[DONE]' ? '' : ((e['choices'] as Array<{ delta: { content?: string } }>)[0]?.delta.content ?? '')))
    .join('');
  assert.equal(streamedText, 'Streamed: write to ops@example.com today.', 'no output guardrail on this route: the stream is unchanged');
  const sl = await logOf(s);
  assert.equal(sl['completion'], 'Streamed: write to [EMAIL_1] today.');
  assert.match(String(sl['prompt']), /^long question .*…\[\d+ more chars\]$/u);
  assert.ok(String(sl['prompt']).length < 160);

  const plain = await chat('mod-in', 'no logging here');
  assert.equal((await logOf(plain))['prompt'], undefined, 'routes without logging never log texts');
});

test('tool-call arguments are scanned: in requests, in answers, and in streamed answers (OpenAI and Anthropic)', async () => {
  const r = await post('/v1/chat/completions', {
    model: 'tools',
    messages: [
      { role: 'user', content: 'mail the report' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'send', arguments: '{"to":"jane@example.com","cc":["bob@example.org"]}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sent to jane@example.com' },
    ],
  });
  assert.equal(r.status, 200);
  const sentMsgs = toUpstream('/v1/chat/completions')[0]?.['messages'] as Array<Record<string, unknown>>;
  const args = ((sentMsgs[1]?.['tool_calls'] as Array<{ function: { arguments: string } }>)[0]?.function.arguments ?? '') as string;
  assert.deepEqual(JSON.parse(args), { to: '[EMAIL_1]', cc: ['[EMAIL_2]'] }, 'still JSON, values redacted');
  assert.equal(sentMsgs[2]?.['content'], 'sent to [EMAIL_1]');

  h.fake.forModel('gpt-4o', { toolCall: { name: 'send', arguments: '{"to":"ops@example.com","body":"SSN 123-45-6789"}' } });
  const j = (await (await chat('tools', 'send it')).json()) as { choices: Array<{ message: { tool_calls: Array<{ function: { arguments: string } }> } }> };
  assert.deepEqual(JSON.parse(j.choices[0]?.message.tool_calls[0]?.function.arguments ?? ''), { to: '[EMAIL_1]', body: 'SSN 123-45-6789' });

  h.fake.forModel('gpt-4o', { toolCall: { name: 'send', arguments: '{"to":"ops@example.com","body":"hello there"}' }, chunks: 8 });
  const s = events(await (await chat('tools', 'send it', { stream: true })).text());
  let streamed = '';
  let names = 0;
  for (const e of s) {
    if (e === '[DONE]') continue;
    for (const tc of ((e['choices'] as Array<{ delta: { tool_calls?: Array<{ function: { name?: string; arguments?: string } }> } }>)[0]?.delta.tool_calls ?? [])) {
      streamed += tc.function.arguments ?? '';
      if (tc.function.name !== undefined) names++;
    }
  }
  assert.deepEqual(JSON.parse(streamed), { to: '[EMAIL_1]', body: 'hello there' });
  assert.equal(names, 1, 'the tool call is named once');

  h.fake.forModel('claude-haiku-4-5', { toolCall: { name: 'send', arguments: '{"to":"ops@example.com"}' }, chunks: 6 });
  const a = await (await post('/v1/messages', { model: 'tools-a', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'send' }] })).text();
  let partial = '';
  for (const e of events(a)) if (e !== '[DONE]' && (e['delta'] as Record<string, unknown> | undefined)?.['type'] === 'input_json_delta') partial += String((e['delta'] as Record<string, unknown>)['partial_json']);
  assert.deepEqual(JSON.parse(partial), { to: '[EMAIL_1]' });
});

test('log guardrails scan streams without holding them back: a match split across chunks is counted once', async () => {
  h.fake.forModel('gpt-4o', { text: 'Your number is 123-45-6789, keep it safe.', chunks: 12 });
  const r = await chat('watched', 'number?', { stream: true });
  const deltas = events(await r.text())
    .map((e) => (e === '[DONE]' ? '' : ((e['choices'] as Array<{ delta: { content?: string } }>)[0]?.delta.content ?? '')))
    .filter((t) => t !== '');
  assert.equal(deltas.join(''), 'Your number is 123-45-6789, keep it safe.', 'log does not change the answer');
  assert.equal(deltas.length, 12, 'every chunk went on as it came (none held and merged)');
  assert.match(String((await logOf(r))['guardrails']), /f-watch:output:log:ssnx1/u);
});

test('the SDKs see guardrail verdicts as errors: a blocked request, and a streamed answer whose end a classifier replaced', async () => {
  const openai = new OpenAI({ apiKey: 'unused', baseURL: `${h.sidecar.url}/v1`, maxRetries: 0 });
  const anthropic = new Anthropic({ apiKey: 'unused', baseURL: h.sidecar.url, maxRetries: 0 });
  await assert.rejects(
    openai.chat.completions.create({ model: 'mod-in', messages: [{ role: 'user', content: 'I will murder the build.' }] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'SLUICE_ERR_GUARDRAIL_BLOCKED',
  );
  h.fake.forModel('strict-moderation', { status: 503 });
  await assert.rejects(
    anthropic.messages.create({ model: 'mod-closed', max_tokens: 10, messages: [{ role: 'user', content: 'hello' }] }),
    (e: unknown) => e instanceof Anthropic.APIError && e.status === 503,
  );

  h.fake.forModel('gpt-4o', { text: 'They will fight tonight, and more text follows.', chunks: 6 });
  const stream = await openai.chat.completions.create({ model: 'mod-out', stream: true, messages: [{ role: 'user', content: 'what now?' }] });
  let text = '';
  await assert.rejects(async () => {
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
  }, /SLUICE_ERR_GUARDRAIL_BLOCKED|blocked the answer/u);
  assert.match(text, /fight/u, 'the text had been sent; the end was replaced by the error');

  h.fake.forModel('claude-haiku-4-5', { text: 'A calm plan for the day.', chunks: 4 });
  const ok = await anthropic.messages.create({ model: 'mod-out-a', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'plan?' }] });
  let said = '';
  for await (const ev of ok) if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') said += ev.delta.text;
  assert.equal(said, 'A calm plan for the day.');
});

test('bodies nested too deep for a walk are refused with 400, not a stack overflow; deep tool arguments are scanned as text', async () => {
  const deep = (n: number): string => `${'['.repeat(n)}"x"${']'.repeat(n)}`;
  for (const model of ['mod-in', 'chatty']) {
    const r = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"model":"${model}","messages":[{"role":"user","content":${deep(20_000)}}]}` });
    assert.equal(r.status, 400, model);
    assert.equal(r.headers.get('x-sluice-error-code'), 'SLUICE_ERR_REQUEST_INVALID');
    assert.match(await r.text(), /more than 128 levels deep/u);
  }
  const args = `{"to":"jane@example.com","nested":${deep(5_000)}}`;
  const ok = await post('/v1/chat/completions', { model: 'tools', messages: [{ role: 'user', content: 'go' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: args } }] }, { role: 'tool', tool_call_id: 'c1', content: 'done' }] });
  assert.equal(ok.status, 200);
  const sentArgs = ((toUpstream('/v1/chat/completions').at(-1)?.['messages'] as Array<{ tool_calls?: Array<{ function: { arguments: string } }> }>)[1]?.tool_calls?.[0]?.function.arguments ?? '');
  assert.match(sentArgs, /^\{"to":"\[EMAIL_1\]","nested":\[\[\[/u, 'redacted as text, the rest as it was');
});

test('streamCheckChars: a blocking classifier is also asked while the answer streams, and a flagged stream stops early', async () => {
  const text = `Sure. Step one: murder the old process. ${'Then the rest of a long and harmless answer follows. '.repeat(12)}`;
  h.fake.forModel('gpt-4.1', { text, chunks: 60, chunkIntervalMs: 10 });
  const r = await chat('mod-early', 'plan?', { stream: true });
  const ev = events(await r.text());
  const got = ev.map((e) => (e === '[DONE]' ? '' : ((e['choices'] as Array<{ delta: { content?: string } }> | undefined)?.[0]?.delta.content ?? ''))).join('');
  assert.ok(got.length > 0 && got.length < text.length / 2, `stopped early: ${got.length} of ${text.length} characters sent`);
  assert.match(JSON.stringify(ev.at(-1)), /SLUICE_ERR_GUARDRAIL_BLOCKED/u);
  assert.ok(!ev.includes('[DONE]'));
  const log = await logOf(r);
  assert.match(String(log['guardrails']), /h-early:output:block:classifier:violencex1/u);
  assert.ok(toUpstream('/v1/moderations').length >= 1);

  // A clean stream is checked on the way and at the end, and ends normally.
  h.fake.forModel('gpt-4.1', { text: 'A harmless answer. '.repeat(20), chunks: 20, chunkIntervalMs: 2 });
  const ok = events(await (await chat('mod-early', 'plan?', { stream: true })).text());
  assert.equal(ok.at(-1), '[DONE]');
});

test('a log classifier on streamed answers holds nothing: the stream ends as it came, the verdict is in the log line', async () => {
  h.fake.forModel('gpt-4o', { text: 'They will kill the old job tonight.', chunks: 5 });
  h.fake.forModel(MODERATION, { latencyMs: 1500 });
  const t0 = Date.now();
  const r = await chat('watched', 'plan?', { stream: true, stream_options: { include_usage: true } });
  const ev = events(await r.text());
  assert.equal(ev.at(-1), '[DONE]');
  assert.ok(Date.now() - t0 < 1200, `the stream was not held for the 1,500 ms verdict (${Date.now() - t0} ms)`);
  assert.match(String((await logOf(r))['guardrails']), /i-watch-moderation:output:log:classifier:violencex1/u);
});

test('a log classifier on requests runs alongside the request: a slow verdict does not delay the answer, and is in the log line', async () => {
  h.fake.forModel(MODERATION, { latencyMs: 1500 });
  const t0 = Date.now();
  const r = await chat('chatty', 'I will murder this bug today.');
  assert.equal(r.status, 200);
  await r.text();
  assert.ok(Date.now() - t0 < 1200, `answered without waiting for the 1,500 ms verdict (${Date.now() - t0} ms)`);
  assert.match(String((await logOf(r))['guardrails']), /g-moderation-log:input:log:classifier:violencex1/u);
});

test('a log classifier on a non-streamed answer is asked after the answer is sent', async () => {
  h.fake.forModel('gpt-4o', { text: 'We kill the job at noon.' });
  h.fake.forModel(MODERATION, { latencyMs: 1500 });
  const t0 = Date.now();
  const r = await chat('watched', 'plan?');
  assert.equal(((await r.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content, 'We kill the job at noon.');
  assert.ok(Date.now() - t0 < 1200, `not held for the 1,500 ms verdict (${Date.now() - t0} ms)`);
  assert.match(String((await logOf(r))['guardrails']), /i-watch-moderation:output:log:classifier:violencex1/u);
});

test('Azure AI Content Safety as the classifier: severities against the threshold, the resource key sent', async () => {
  const bad = await chat('mod-azure', 'I will murder the build server.');
  assert.equal(bad.status, 400);
  assert.match(String((await logOf(bad))['guardrails']), /j-azure:input:block:classifier:Violencex1/u);
  const asked = h.fake.requests.filter((r) => r.path.startsWith('/contentsafety/text:analyze')).at(-1);
  assert.equal(asked?.path, '/contentsafety/text:analyze', 'with an api-version (the fake answers 404 without one)');
  assert.equal(asked?.headers['ocp-apim-subscription-key'], OPENAI_KEY);
  assert.deepEqual(JSON.parse(asked?.body ?? '{}'), { text: 'I will murder the build server.', outputType: 'FourSeverityLevels' });
  // "fight" scores severity 2 of 7: below the threshold 0.5.
  assert.equal((await chat('mod-azure', 'Should we fight this bug?')).status, 200);
});

test('nothing to classify, nothing asked: a request without text passes a fail-closed classifier that is down', async () => {
  h.fake.forModel('strict-moderation', { status: 500 });
  const r = await post('/v1/chat/completions', { model: 'mod-closed', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] });
  assert.equal(r.status, 200);
  assert.equal(toUpstream('/v1/moderations').length, 0);
});
