/**
 * The OpenAI Responses API ingress (`POST /v1/responses`) with the real OpenAI SDK: passed through to
 * OpenAI, answered by Claude and by Gemini through the Chat Completions form, JSON and streaming
 * events, function calls and their outputs, usage counted, and the requests it refuses.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { AnyPolicyObject } from '@sluice/policy';
import { startFakeProvider, type FakeProvider } from '@sluice/testkit';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
let gfake: FakeProvider;
let client: OpenAI;
before(async () => {
  gfake = await startFakeProvider();
  const gemini = { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'gemini' }, spec: { provider: 'gemini', endpoint: gfake.url, auth: { env: 'OPENAI_API_KEY' } } } as unknown as AnyPolicyObject;
  const route = { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'g' }, spec: { rules: [{ match: { models: ['gemini-*'] }, backends: [{ name: 'gemini' }], retry: { attempts: 1 } }] } } as unknown as AnyPolicyObject;
  h = await startHarness({}, [gemini, route]);
  client = new OpenAI({ apiKey: 'sk-client', baseURL: `${h.sidecar.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await h.close();
  await gfake.close();
});
beforeEach(() => {
  h.fake.reset();
  gfake.reset();
});

for (const model of ['gpt-4o-mini', 'claude-haiku-4-5', 'gemini-2.5-flash']) {
  test(`responses.create answered by ${model}: output_text, usage, the settings repeated`, async () => {
    const r = await client.responses.create({ model, instructions: 'Be brief.', input: 'Say hello', max_output_tokens: 50, temperature: 0 });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, 'Hello from the Sluice fake provider.');
    assert.equal(r.instructions, 'Be brief.');
    assert.equal(r.max_output_tokens, 50);
    assert.ok((r.usage?.input_tokens ?? 0) > 0 && (r.usage?.output_tokens ?? 0) > 0);
    const sent = JSON.parse(h.fake.requests.at(-1)?.body ?? '{}') as Record<string, unknown>;
    if (model.startsWith('gpt')) {
      // OpenAI itself gets the Responses request as sent (passthrough).
      assert.equal(h.fake.requests.at(-1)?.path, '/v1/responses');
      assert.equal(sent['instructions'], 'Be brief.');
      assert.equal(sent['max_output_tokens'], 50);
    }
    const log = h.requestLogs().at(-1) ?? {};
    assert.equal(log['api'], 'openai-responses');
    assert.equal(log['status'], 200);
    assert.equal(log['inputTokens'], r.usage?.input_tokens, 'usage counted from the answer');
    assert.equal(log['outputTokens'], r.usage?.output_tokens);
  });

  test(`streamed responses answered by ${model}: the event sequence and the final response`, async () => {
    const events: string[] = [];
    let text = '';
    let completed: OpenAI.Responses.Response | undefined;
    const stream = await client.responses.create({ model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Say hello' }] }], stream: true });
    for await (const e of stream) {
      events.push(e.type);
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed') completed = e.response;
    }
    assert.equal(events[0], 'response.created');
    assert.equal(events[1], 'response.in_progress');
    assert.ok(events.includes('response.output_item.added') && events.includes('response.content_part.added'));
    assert.deepEqual(events.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    assert.equal(text, 'Hello from the Sluice fake provider.');
    assert.ok((completed?.usage?.output_tokens ?? 0) > 0, 'usage in response.completed');
    const streamed = h.requestLogs().at(-1) ?? {};
    assert.equal(streamed['outputTokens'], completed?.usage?.output_tokens, 'a streamed answer counts its usage too');
    // The SDK's own stream helper assembles the same response.
    const final = await client.responses.stream({ model, input: 'Say hello' }).finalResponse();
    assert.equal(final.output_text, 'Hello from the Sluice fake provider.');
  });
}

test('function calls: the model calls a tool, the caller sends its output back in input', async () => {
  h.fake.enqueue({ toolCall: { name: 'weather', arguments: '{"city":"Paris"}' } });
  const tools: OpenAI.Responses.Tool[] = [{ type: 'function', name: 'weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: true }];
  const first = await client.responses.create({ model: 'claude-haiku-4-5', input: 'Weather in Paris?', tools });
  const call = first.output.find((o) => o.type === 'function_call');
  assert.ok(call !== undefined && call.type === 'function_call');
  assert.equal(call.name, 'weather');
  assert.equal(call.arguments, '{"city":"Paris"}');
  const second = await client.responses.create({
    model: 'claude-haiku-4-5',
    tools,
    input: [{ role: 'user', content: 'Weather in Paris?' }, { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments }, { type: 'function_call_output', call_id: call.call_id, output: '{"temp":21}' }],
  });
  assert.equal(second.status, 'completed');
  const sent = JSON.parse(h.fake.requests.at(-1)?.body ?? '{}') as { messages: Array<{ role: string; content: unknown }> };
  assert.equal(sent.messages[1]?.role, 'assistant');
  assert.deepEqual((sent.messages[2]?.content as Array<Record<string, unknown>>)[0], { type: 'tool_result', tool_use_id: call.call_id, content: '{"temp":21}' });

  // Streamed: the call arrives as output_item.added + arguments deltas + done.
  h.fake.enqueue({ toolCall: { name: 'weather', arguments: '{"city":"Lyon"}' } });
  const events: string[] = [];
  let args = '';
  for await (const e of await client.responses.create({ model: 'gpt-4o-mini', input: 'Weather in Lyon?', tools, stream: true })) {
    events.push(e.type);
    if (e.type === 'response.function_call_arguments.done') args = e.arguments;
  }
  assert.ok(events.includes('response.function_call_arguments.delta'));
  assert.equal(args, '{"city":"Lyon"}');
});

test('stateful requests pass through to OpenAI; to other backends they are refused in the OpenAI shape', async () => {
  const pass = await fetch(`${h.sidecar.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', input: 'hi', previous_response_id: 'resp_123', tools: [{ type: 'web_search' }] }) });
  assert.equal(pass.status, 200, 'OpenAI keeps the conversation and runs its built-in tools itself');
  assert.equal((JSON.parse(h.fake.requests.at(-1)?.body ?? '{}') as Record<string, unknown>)['previous_response_id'], 'resp_123');
  h.fake.reset();
  const r = await fetch(`${h.sidecar.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-haiku-4-5', input: 'hi', previous_response_id: 'resp_123' }) });
  assert.equal(r.status, 400);
  assert.equal(r.headers.get('x-sluice-error-code'), 'SLUICE_ERR_ROUTE_UNSUPPORTED');
  assert.match(((await r.json()) as { error: { message: string } }).error.message, /previous_response_id/u);
  const t = await fetch(`${h.sidecar.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-haiku-4-5', input: 'hi', tools: [{ type: 'web_search' }] }) });
  assert.equal(t.status, 400);
  assert.match(((await t.json()) as { error: { message: string } }).error.message, /only function tools/u);
  assert.equal(h.fake.requests.length, 0, 'nothing went upstream');
});
