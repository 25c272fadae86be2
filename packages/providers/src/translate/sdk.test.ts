/**
 * The translators' output, fed to the official SDKs' stream accumulators and response parsers
 * (through a custom fetch), must come out as the expected final objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { anthropicResponseToChat, createAnthropicStreamToChat } from './openai/to-anthropic.js';
import { chatResponseToAnthropic, createChatStreamToAnthropic } from './anthropic/to-openai.js';
import { readBytes, readJson, replay } from '../../test/translate/replay.js';

function fetchReturning(body: string, contentType: string): typeof fetch {
  return () => Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': contentType, 'x-request-id': 'req_test', 'request-id': 'req_test' } }));
}

function openai(body: string, contentType = 'text/event-stream'): OpenAI {
  return new OpenAI({ apiKey: 'test', baseURL: 'http://sluice.test/v1', maxRetries: 0, fetch: fetchReturning(body, contentType) });
}

function anthropic(body: string, contentType = 'text/event-stream'): Anthropic {
  return new Anthropic({ apiKey: 'test', baseURL: 'http://sluice.test', maxRetries: 0, fetch: fetchReturning(body, contentType) });
}

const CHAT_CTX = { model: 'claude-sonnet-4-5', id: 'chatcmpl-sdk', created: 1760000000 };

test('openai SDK accumulates the translated Anthropic tool stream', async () => {
  const sse = replay([readBytes('chat-to-anthropic', 'stream-tools.in.sse')], createAnthropicStreamToChat({ ...CHAT_CTX, includeUsage: true }));
  const stream = openai(sse).chat.completions.stream({
    model: 'claude-sonnet-4-5',
    messages: [{ role: 'user', content: 'weather?' }],
    stream_options: { include_usage: true },
  });
  const final = await stream.finalChatCompletion();
  assert.equal(final.id, 'chatcmpl-sdk');
  const choice = final.choices[0];
  assert.equal(choice?.finish_reason, 'tool_calls');
  assert.equal(choice?.message.content, "I'll check the weather in Zürich and the local time.");
  assert.deepEqual(
    choice?.message.tool_calls?.map((t) => (t.type === 'function' ? [t.id, t.function.name, JSON.parse(t.function.arguments)] : [])),
    [
      ['toolu_01T1x1fJ34qAmk2tNTrN7Up6', 'get_weather', { location: 'Zürich', unit: 'celsius' }],
      ['toolu_01AbCdEfGhIjKlMnOpQrStUv', 'get_time', { tz: 'Europe/Zurich' }],
    ],
  );
  assert.equal(final.usage?.prompt_tokens, 472);
  assert.equal(final.usage?.completion_tokens, 89);
});

test('openai SDK reads the translated Anthropic text stream without include_usage', async () => {
  const sse = replay([readBytes('chat-to-anthropic', 'stream-text.in.sse')], createAnthropicStreamToChat({ ...CHAT_CTX, includeUsage: false }));
  const final = await openai(sse)
    .chat.completions.stream({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
    .finalChatCompletion();
  assert.equal(final.choices[0]?.message.content, 'Bonjour, café ☕ and 🚀!');
  assert.equal(final.choices[0]?.finish_reason, 'stop');
});

test('openai SDK parses the translated Anthropic JSON response', async () => {
  const { body } = anthropicResponseToChat(readJson('chat-to-anthropic', 'response-tools.in.json'), CHAT_CTX);
  const res = await openai(JSON.stringify(body), 'application/json').chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(res.choices[0]?.finish_reason, 'tool_calls');
  assert.equal(res.choices[0]?.message.tool_calls?.length, 2);
});

test('anthropic SDK accumulates the translated OpenAI tool stream', async () => {
  const sse = replay([readBytes('anthropic-to-chat', 'stream-tools.in.sse')], createChatStreamToAnthropic({ model: 'gpt-4.1-mini', id: 'msg_sdk' }));
  const stream = anthropic(sse).messages.stream({ model: 'gpt-4.1-mini', max_tokens: 100, messages: [{ role: 'user', content: 'weather?' }] });
  const final = await stream.finalMessage();
  assert.equal(final.id, 'msg_sdk');
  assert.equal(final.stop_reason, 'tool_use');
  assert.deepEqual(
    final.content.map((b) => (b.type === 'text' ? b.text : b.type === 'tool_use' ? [b.id, b.name, b.input] : b.type)),
    ['Je vérifie.', ['call_Xk3mPq9rT2', 'get_weather', { location: 'Zürich' }], ['call_Yb7nLw4sU8', 'get_time', { tz: 'Europe/Zurich' }]],
  );
  assert.equal(final.usage.input_tokens, 210);
  assert.equal(final.usage.output_tokens, 52);
});

test('anthropic SDK reads the translated OpenAI text stream and JSON response', async () => {
  const sse = replay([readBytes('anthropic-to-chat', 'stream-text.in.sse')], createChatStreamToAnthropic({ model: 'gpt-4.1-mini', id: 'msg_sdk' }));
  const final = await anthropic(sse)
    .messages.stream({ model: 'm', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })
    .finalMessage();
  assert.deepEqual(final.content, [{ type: 'text', text: 'Bonjour, café ☕ 🚀' }]);
  assert.equal(final.usage.cache_read_input_tokens, 1024);
  assert.equal(final.usage.input_tokens, 19);

  const { body } = chatResponseToAnthropic(readJson('anthropic-to-chat', 'response-text.in.json'), { model: 'm', id: 'msg_json' });
  const res = await anthropic(JSON.stringify(body), 'application/json').messages.create({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
  assert.equal(res.stop_reason, 'max_tokens');
  assert.equal(res.content[0]?.type, 'text');
});
