import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { chatRequestToConverse, createConverseStreamToChat } from '@sluice/providers';
import { eventFrame, exceptionFrame } from '@sluice/testkit';
import { createAwsEventStreamParser } from './aws.js';

const FRAMES = Buffer.concat([
  eventFrame('messageStart', { role: 'assistant' }),
  eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Bon' } }),
  eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'jour é' } }),
  eventFrame('contentBlockStop', { contentBlockIndex: 0 }),
  eventFrame('contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 't1', name: 'f' } } }),
  eventFrame('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"a":' } } }),
  eventFrame('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '1}' } } }),
  eventFrame('messageStop', { stopReason: 'tool_use' }),
  eventFrame('metadata', { usage: { inputTokens: 5, outputTokens: 7, cacheReadInputTokens: 3 } }),
]);

function run(chunks: Buffer[]): string {
  const parser = createAwsEventStreamParser();
  const tr = createConverseStreamToChat({ model: 'm', id: 'chatcmpl-x', created: 1, includeUsage: true });
  let out = '';
  for (const c of chunks) for (const ev of parser.push(c)) out += tr.push(ev);
  for (const ev of parser.end()) out += tr.push(ev);
  return out + tr.end();
}

test('ConverseStream frames → chat chunks, identical whatever the byte split; usage counts cache reads as input', () => {
  const whole = run([FRAMES]);
  assert.match(whole, /"content":"Bon"/u);
  assert.match(whole, /"content":"jour é"/u);
  assert.match(whole, /"tool_calls":\[\{"index":0,"id":"t1","type":"function","function":\{"name":"f","arguments":""\}\}\]/u);
  assert.match(whole, /"finish_reason":"tool_calls"/u);
  assert.match(whole, /"prompt_tokens":8,"completion_tokens":7/u);
  assert.ok(whole.endsWith('data: [DONE]\n\n'));
  for (let i = 1; i < FRAMES.length; i += 3) assert.equal(run([FRAMES.subarray(0, i), FRAMES.subarray(i)]), whole, `split at ${i}`);
});

test('an exception frame throws its meaning; a damaged or cut frame is refused', () => {
  assert.throws(() => run([Buffer.concat([eventFrame('messageStart', { role: 'assistant' }), exceptionFrame('throttlingException', 'slow down')])]), /slow down/u);
  const damaged = Buffer.from(FRAMES);
  damaged[20] = (damaged[20] ?? 0) ^ 0xff;
  assert.throws(() => run([damaged]), /damaged|frame/u);
  assert.throws(() => run([FRAMES.subarray(0, FRAMES.length - 3)]), /SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED|middle of an event-stream frame|messageStop/u);
});

test('a chat request becomes a Converse request: system, turns, images, tool use and results, tool config', () => {
  const c = chatRequestToConverse({
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAA' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      { role: 'tool', tool_call_id: 't1', content: 'done' },
    ],
    tools: [{ type: 'function', function: { name: 'f', description: 'F', parameters: { type: 'object' } } }],
    tool_choice: 'required',
    temperature: 0.5,
    max_tokens: 10,
    stop: ['X'],
  });
  assert.deepEqual(c, {
    messages: [
      { role: 'user', content: [{ text: 'look' }, { image: { format: 'png', source: { bytes: 'AAA' } } }] },
      { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'f', input: { a: 1 } } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'done' }], status: 'success' } }] },
    ],
    system: [{ text: 'Be brief.' }],
    inferenceConfig: { maxTokens: 10, temperature: 0.5, stopSequences: ['X'] },
    toolConfig: { tools: [{ toolSpec: { name: 'f', description: 'F', inputSchema: { json: { type: 'object' } } } }], toolChoice: { any: {} } },
  });
  assert.throws(() => chatRequestToConverse({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } }), /not supported by Converse/u);
});

test('golden chat-to-bedrock/stream-tools (AWS event-stream fixture, every byte split)', () => {
  const dir = new URL('../../../providers/test/fixtures/translate/chat-to-bedrock/', import.meta.url);
  const bytes = readFileSync(new URL('stream-tools.in.eventstream', dir));
  const whole = run([bytes]);
  for (let i = 1; i < bytes.length; i++) assert.equal(run([bytes.subarray(0, i), bytes.subarray(i)]), whole, `split at ${i}`);
  const golden = new URL('stream-tools.out.sse', dir);
  if (process.env['SLUICE_UPDATE_GOLDEN'] === '1' || !existsSync(golden)) {
    if (process.env['SLUICE_UPDATE_GOLDEN'] !== '1') assert.fail('golden chat-to-bedrock/stream-tools.out.sse is missing (run with SLUICE_UPDATE_GOLDEN=1)');
    writeFileSync(golden, whole);
  } else assert.equal(whole, readFileSync(golden, 'utf8'));
});
