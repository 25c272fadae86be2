import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSseParser } from '../../sse.js';
import { chatRequestToGemini, createGeminiStreamToChat, geminiResponseToChat, usageFromGemini } from './from-openai.js';

test('a Chat Completions request becomes a GenerateContentRequest: system, turns, tools, tool results, images, settings', () => {
  const g = chatRequestToGemini({
    model: 'gemini-2.5-flash',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
      { role: 'user', content: [{ type: 'text', text: 'What is in this image, and the weather?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0K' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }, { id: 'call_2', type: 'function', function: { name: 'time', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
      { role: 'tool', tool_call_id: 'call_2', content: 'noon' },
      { role: 'user', content: 'thanks' },
    ],
    tools: [{ type: 'function', function: { name: 'weather', description: 'Weather', parameters: { $schema: 'x', type: 'object', additionalProperties: false, properties: { city: { type: 'string' } } } } }],
    tool_choice: { type: 'function', function: { name: 'weather' } },
    temperature: 0.2,
    top_p: 0.9,
    max_completion_tokens: 100,
    stop: 'END',
    response_format: { type: 'json_object' },
  });
  assert.deepEqual(g['systemInstruction'], { parts: [{ text: 'Be brief.\n\nAnswer in French.' }] });
  assert.deepEqual(g['contents'], [
    { role: 'user', parts: [{ text: 'What is in this image, and the weather?' }, { inlineData: { mimeType: 'image/png', data: 'iVBORw0K' } }] },
    { role: 'model', parts: [{ functionCall: { name: 'weather', args: { city: 'Paris' } } }, { functionCall: { name: 'time', args: {} } }] },
    // Parallel tool results and the next user message merge into one user turn.
    { role: 'user', parts: [{ functionResponse: { name: 'weather', response: { temp: 21 } } }, { functionResponse: { name: 'time', response: { content: 'noon' } } }, { text: 'thanks' }] },
  ]);
  assert.deepEqual(g['tools'], [{ functionDeclarations: [{ name: 'weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }] }]);
  assert.deepEqual(g['toolConfig'], { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['weather'] } });
  assert.deepEqual(g['generationConfig'], { temperature: 0.2, topP: 0.9, maxOutputTokens: 100, stopSequences: ['END'], responseMimeType: 'application/json' });
});

test('what Gemini cannot take is refused with a clear error', () => {
  assert.throws(() => chatRequestToGemini({ messages: [{ role: 'user', content: 'x' }], n: 2 }), /SLUICE_ERR_ROUTE_UNSUPPORTED|n greater than 1/u);
  assert.throws(() => chatRequestToGemini({ messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }), /names no tool call/u);
  assert.throws(() => chatRequestToGemini({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.example/img' } }] }] }), /known image extension/u);
  assert.throws(() => chatRequestToGemini({ messages: [] }), /non-empty array/u);
});

test('a GenerateContentResponse becomes a chat.completion: text, tool calls, finish reasons, usage with thoughts and cache', () => {
  const r = geminiResponseToChat(
    {
      candidates: [{ content: { role: 'model', parts: [{ text: 'thinking…', thought: true }, { text: 'Hello' }, { functionCall: { name: 'weather', args: { city: 'Paris' } } }] }, finishReason: 'STOP' }],
      usageMetadata: { promptTokenCount: 100, candidatesTokenCount: 20, thoughtsTokenCount: 30, cachedContentTokenCount: 60, totalTokenCount: 150 },
      modelVersion: 'gemini-2.5-flash-001',
    },
    { model: 'gemini-2.5-flash', id: 'chatcmpl-x', created: 1 },
  );
  const choice = (r.body['choices'] as Array<Record<string, unknown>>)[0] as { message: Record<string, unknown>; finish_reason: string };
  assert.equal(choice.message['content'], 'Hello', 'thought summaries are left out');
  assert.deepEqual(choice.message['tool_calls'], [{ id: 'call_chatcmpl-x_0', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }]);
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(r.body['model'], 'gemini-2.5-flash-001');
  assert.deepEqual(r.usage, { inputTokens: 100, cachedInputTokens: 60, cacheWriteTokens: 0, outputTokens: 50, reasoningTokens: 30 });
  const len = geminiResponseToChat({ candidates: [{ content: { parts: [{ text: 'cut' }] }, finishReason: 'MAX_TOKENS' }] }, { model: 'm', id: 'i', created: 1 });
  assert.equal(((len.body['choices'] as unknown[])[0] as { finish_reason: string }).finish_reason, 'length');
  const blocked = geminiResponseToChat({ promptFeedback: { blockReason: 'SAFETY' } }, { model: 'm', id: 'i', created: 1 });
  assert.equal(((blocked.body['choices'] as unknown[])[0] as { finish_reason: string }).finish_reason, 'content_filter');
  assert.throws(() => geminiResponseToChat({ error: { code: 429, message: 'quota', status: 'RESOURCE_EXHAUSTED' } }, { model: 'm', id: 'i', created: 1 }), /quota/u);
  assert.equal(usageFromGemini(undefined), undefined);
});

const STREAM =
  'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Bon"}]},"index":0}],"modelVersion":"gemini-2.5-flash"}\r\n\r\n' +
  'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"jour é"}]},"index":0}],"modelVersion":"gemini-2.5-flash"}\r\n\r\n' +
  'data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f","args":{"a":1}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":5,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash"}\r\n\r\n';

function run(chunks: Buffer[], includeUsage = true): { out: string; usage: unknown } {
  const parser = createSseParser();
  const tr = createGeminiStreamToChat({ model: 'gemini-2.5-flash', id: 'chatcmpl-s', created: 1, includeUsage });
  let out = '';
  for (const c of chunks) for (const ev of parser.push(c)) out += tr.push(ev);
  for (const ev of parser.end()) out += tr.push(ev);
  out += tr.end();
  return { out, usage: tr.usage };
}

test('the alt=sse stream becomes chat.completion.chunk events, the same at every split offset', () => {
  const whole = run([Buffer.from(STREAM)]);
  const events = whole.out
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)) as { choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }>; usage?: Record<string, unknown> | null });
  assert.deepEqual(events[0]?.choices[0]?.delta, { role: 'assistant', content: '' });
  assert.equal(events[1]?.choices[0]?.delta['content'], 'Bon');
  assert.equal(events[2]?.choices[0]?.delta['content'], 'jour é');
  assert.deepEqual(events[3]?.choices[0]?.delta['tool_calls'], [{ index: 0, id: 'call_chatcmpl-s_0', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]);
  assert.equal(events[4]?.choices[0]?.finish_reason, 'tool_calls');
  assert.equal(events[5]?.usage?.['prompt_tokens'], 7);
  assert.ok(whole.out.endsWith('data: [DONE]\n\n'));
  assert.deepEqual(whole.usage, { inputTokens: 7, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 5, reasoningTokens: 0 });
  const bytes = Buffer.from(STREAM);
  for (let i = 1; i < bytes.length; i++) {
    assert.equal(run([bytes.subarray(0, i), bytes.subarray(i)]).out, whole.out, `split at byte ${i}`);
  }
});

test('a stream that ends without a finish reason is interrupted; an error chunk is the provider error', () => {
  const cut = STREAM.split('\r\n\r\n')[0] + '\r\n\r\n';
  assert.throws(() => run([Buffer.from(cut)]), /SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED|ended before/u);
  assert.throws(() => run([Buffer.from('data: {"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}\n\n')]), /overloaded/u);
});
