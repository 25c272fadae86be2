/**
 * The official OpenAI and Anthropic SDKs, pointed at the sidecar by base URL only, against the fake
 * provider: JSON and streams, same-format passthrough and cross-format translation.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { ANTHROPIC_KEY, OPENAI_KEY, startHarness, type Harness } from './harness.js';

const FAKE_TEXT = 'Hello from the Sluice fake provider.';
let h: Harness;
let openai: OpenAI;
let anthropic: Anthropic;

before(async () => {
  h = await startHarness();
  openai = new OpenAI({ apiKey: 'sk-client-key-must-not-leak', baseURL: `${h.sidecar.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-client-key-must-not-leak', baseURL: h.sidecar.url, maxRetries: 0 });
});
after(() => h.close());
beforeEach(() => h.fake.reset());

function lastLog(): Record<string, unknown> {
  const l = h.requestLogs();
  return l[l.length - 1] ?? {};
}

describe('OpenAI SDK → OpenAI backend (passthrough)', () => {
  test('chat completion JSON with usage, cost and routing headers', async () => {
    h.fake.enqueue({ usage: { input: 1200, cached: 200, output: 500 } });
    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.choices[0]?.message.content, FAKE_TEXT);
    assert.equal(data.usage?.prompt_tokens, 1200);
    assert.equal(response.headers.get('x-sluice-backend'), 'default/openai');
    assert.equal(response.headers.get('x-sluice-model'), 'gpt-4o-mini');
    // gpt-4o-mini: 1000 × $0.15 + 200 cached × $0.075 + 500 × $0.60 per million = 150 + 15 + 300 µ$
    assert.equal(response.headers.get('x-sluice-cost-micros'), '465');
    assert.match(response.headers.get('x-request-id') ?? '', /^[0-9a-f]{24}$/);
    const sent = h.fake.requests[0];
    assert.equal(sent?.headers['authorization'], `Bearer ${OPENAI_KEY}`);
    assert.ok(!JSON.stringify(sent?.headers).includes('client-key-must-not-leak'));
    const log = await h.waitForRequestLogs(1).then(lastLog);
    assert.equal(log['costMicros'], 465);
    assert.equal(log['inputTokens'], 1200);
    assert.equal(log['cachedInputTokens'], 200);
    assert.equal(log['outputTokens'], 500);
    assert.equal(log['id'], response.headers.get('x-request-id'));
  });

  test('passthrough keeps the caller bytes and rewrites only the model for an alias', async () => {
    const body = '{"messages":[{"role":"user","content":"caf\\u00e9"}],  "model":"gpt-4o-mini","temperature":1.50}';
    const res = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.equal(h.fake.requests[0]?.body, body);
  });

  test('stream without include_usage: usage is read but the extra chunk is hidden', async () => {
    h.fake.enqueue({ chunks: 5, usage: { input: 10, output: 7 } });
    const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      assert.ok(c.choices.length > 0, 'no usage-only chunk is shown to a client that did not ask for it');
      text += c.choices[0]?.delta.content ?? '';
    }
    assert.equal(text, FAKE_TEXT);
    assert.ok(chunks >= 5);
    const upstreamBody = JSON.parse(h.fake.requests[0]?.body ?? '{}') as { stream_options?: { include_usage?: boolean } };
    assert.equal(upstreamBody.stream_options?.include_usage, true);
    const log = await h.waitForRequestLogs(1).then(lastLog);
    assert.equal(log['stream'], true);
    assert.equal(log['inputTokens'], 10);
    assert.equal(log['outputTokens'], 7);
    assert.equal(log['costMicros'], 6); // (10 × 150000 + 7 × 600000) / 10^6 = 5.7 → 6
    assert.equal(typeof log['ttftMs'], 'number');
  });

  test('stream with include_usage: the client gets the usage chunk', async () => {
    h.fake.enqueue({ usage: { input: 3, output: 2 } });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of stream) if (c.usage) usage = c.usage;
    assert.equal(usage?.prompt_tokens, 3);
    assert.equal(usage?.completion_tokens, 2);
  });

  test('embeddings', async () => {
    const { data, response } = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] }).withResponse();
    assert.equal(data.data.length, 2);
    assert.equal(response.headers.get('x-sluice-backend'), 'default/openai');
    assert.ok(Number(response.headers.get('x-sluice-cost-micros')) >= 1);
  });

  test('models list', async () => {
    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['claude-haiku-4-5', 'dead-model', 'fast', 'gpt-4o', 'gpt-4o-mini']);
  });
});

describe('OpenAI SDK → Anthropic backend (translated)', () => {
  test('chat completion JSON: system prompt, multi-turn, usage and cost', async () => {
    h.fake.enqueue({ usage: { input: 1000, cached: 100, cacheWrite: 200, output: 50 } });
    const { data, response } = await openai.chat.completions
      .create({
        model: 'claude-haiku-4-5',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
          { role: 'user', content: 'again' },
        ],
        max_tokens: 100,
      })
      .withResponse();
    assert.equal(data.choices[0]?.message.content, FAKE_TEXT);
    assert.equal(data.choices[0]?.finish_reason, 'stop');
    assert.equal(data.usage?.prompt_tokens, 1000);
    assert.equal(data.usage?.prompt_tokens_details?.cached_tokens, 100);
    const sent = h.fake.requests[0];
    assert.equal(sent?.path, '/v1/messages');
    assert.equal(sent?.headers['x-api-key'], ANTHROPIC_KEY);
    assert.equal(sent?.headers['authorization'], undefined);
    const upstream = JSON.parse(sent?.body ?? '{}') as { system?: unknown; messages: Array<{ role: string }>; max_tokens: number };
    assert.equal(upstream.system, 'You are terse.');
    assert.deepEqual(upstream.messages.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(upstream.max_tokens, 100);
    // claude-haiku-4-5: 700 × $1 + 100 × $0.10 + 200 × $1.25 + 50 × $5 per million = 700 + 10 + 250 + 250
    assert.equal(response.headers.get('x-sluice-cost-micros'), '1210');
  });

  test('stream translated event by event, with tool calls', async () => {
    h.fake.enqueue({ toolCall: { name: 'get_weather', arguments: '{"city":"Paris"}' } });
    const stream = await openai.chat.completions.create({
      model: 'fast',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      stream: true,
    });
    let args = '';
    let name = '';
    let finish: string | null | undefined;
    for await (const c of stream) {
      const tc = c.choices[0]?.delta.tool_calls?.[0];
      if (tc?.function?.name) name = tc.function.name;
      args += tc?.function?.arguments ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
    assert.equal(finish, 'tool_calls');
    const upstream = JSON.parse(h.fake.requests[0]?.body ?? '{}') as { model: string; tools: Array<{ name: string }> };
    assert.equal(upstream.model, 'claude-haiku-4-5', 'alias resolved to the backend model');
    assert.equal(upstream.tools[0]?.name, 'get_weather');
  });

  test('tool results go back as Anthropic tool_result blocks', async () => {
    await openai.chat.completions.create({
      model: 'claude-haiku-4-5',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      ],
    });
    const upstream = JSON.parse(h.fake.requests[0]?.body ?? '{}') as { messages: Array<{ role: string; content: Array<Record<string, unknown>> }> };
    assert.equal(upstream.messages[1]?.content[0]?.['type'], 'tool_use');
    assert.equal(upstream.messages[2]?.content[0]?.['type'], 'tool_result');
    assert.equal(upstream.messages[2]?.content[0]?.['tool_use_id'], 'call_1');
  });
});

describe('Anthropic SDK → Anthropic backend (passthrough)', () => {
  test('messages JSON', async () => {
    h.fake.enqueue({ usage: { input: 20, output: 4 } });
    const { data, response } = await anthropic.messages
      .create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.content[0]?.type === 'text' ? data.content[0].text : '', FAKE_TEXT);
    assert.equal(response.headers.get('x-sluice-backend'), 'default/anthropic');
    assert.equal(response.headers.get('x-sluice-cost-micros'), '40'); // 20 × $1 + 4 × $5 per million
    const sent = h.fake.requests[0];
    assert.equal(sent?.headers['x-api-key'], ANTHROPIC_KEY);
    assert.ok(!JSON.stringify(sent?.headers).includes('client-key-must-not-leak'));
  });

  test('messages stream', async () => {
    h.fake.enqueue({ chunks: 6, usage: { input: 9, output: 6 } });
    const stream = anthropic.messages.stream({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const msg = await stream.finalMessage();
    assert.equal(msg.content[0]?.type === 'text' ? msg.content[0].text : '', FAKE_TEXT);
    assert.equal(msg.usage.output_tokens, 6);
    const log = await h.waitForRequestLogs(1).then(lastLog);
    assert.equal(log['inputTokens'], 9);
    assert.equal(log['outputTokens'], 6);
  });
});

describe('Anthropic SDK → OpenAI backend (translated)', () => {
  test('messages JSON with system prompt', async () => {
    h.fake.enqueue({ usage: { input: 30, output: 5, cached: 10 } });
    const { data, response } = await anthropic.messages
      .create({ model: 'gpt-4o-mini', max_tokens: 64, system: 'be kind', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.content[0]?.type === 'text' ? data.content[0].text : '', FAKE_TEXT);
    assert.equal(data.stop_reason, 'end_turn');
    assert.equal(data.usage.input_tokens, 20);
    assert.equal(data.usage.cache_read_input_tokens, 10);
    assert.equal(response.headers.get('x-sluice-backend'), 'default/openai');
    const upstream = JSON.parse(h.fake.requests[0]?.body ?? '{}') as { messages: Array<{ role: string; content: unknown }>; max_completion_tokens?: number };
    assert.deepEqual(upstream.messages[0], { role: 'system', content: 'be kind' });
    assert.equal(upstream.max_completion_tokens, 64);
  });

  test('messages stream with tool use, translated event by event', async () => {
    h.fake.enqueue({ toolCall: { name: 'lookup', arguments: '{"q":"sluice"}' }, usage: { input: 12, output: 8 } });
    const stream = anthropic.messages.stream({
      model: 'gpt-4o-mini',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'find' }],
      tools: [{ name: 'lookup', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }],
    });
    const msg = await stream.finalMessage();
    const block = msg.content.find((b) => b.type === 'tool_use');
    assert.equal(block?.type === 'tool_use' ? block.name : '', 'lookup');
    assert.deepEqual(block?.type === 'tool_use' ? block.input : undefined, { q: 'sluice' });
    assert.equal(msg.stop_reason, 'tool_use');
    assert.equal(msg.usage.output_tokens, 8);
    const upstream = JSON.parse(h.fake.requests[0]?.body ?? '{}') as { stream_options?: { include_usage?: boolean } };
    assert.equal(upstream.stream_options?.include_usage, true);
  });

  test('models list in the Anthropic shape', async () => {
    const ids: string[] = [];
    for await (const m of anthropic.models.list()) ids.push(m.id);
    assert.ok(ids.includes('claude-haiku-4-5') && ids.includes('gpt-4o-mini'));
  });
});
