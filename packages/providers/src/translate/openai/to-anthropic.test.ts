import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceError } from '@sluice/core';
import type { ErrorCode } from '@sluice/core';
import type { SseEvent } from '../../sse.js';
import { sseNamed } from '../../sse.js';
import { anthropicResponseToChat, chatRequestToAnthropic, createAnthropicStreamToChat } from './to-anthropic.js';
import {
  assertGolden,
  assertGoldenJson,
  fixtureNames,
  mutate,
  onlySluiceErrors,
  readBytes,
  readJson,
  replay,
  replayEverySplit,
  rng,
} from '../../../test/translate/replay.js';

const DIR = 'chat-to-anthropic';
const MODEL = 'claude-sonnet-4-5-20250929';
const CTX = { model: 'claude-sonnet-4-5', id: 'chatcmpl-sluice0001', created: 1760000000 };

function throwsCode(fn: () => unknown, code: ErrorCode, match?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SluiceError, `expected SluiceError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (match) assert.match(e.message, match);
    return true;
  });
}

function ev(type: string, body: Record<string, unknown> = {}): SseEvent {
  const raw = sseNamed(type, { type, ...body });
  return { event: type, data: JSON.stringify({ type, ...body }), raw };
}

const user = (content: unknown): Record<string, unknown> => ({ model: 'gpt-4o', messages: [{ role: 'user', content }] });

// ---- golden fixtures ----

for (const name of fixtureNames(DIR, '.in.json').filter((n) => n.startsWith('request-'))) {
  test(`golden ${DIR}/${name}`, () => {
    assertGoldenJson(DIR, `${name}.out.json`, chatRequestToAnthropic(readJson(DIR, `${name}.in.json`), MODEL));
  });
}

for (const name of fixtureNames(DIR, '.in.json').filter((n) => n.startsWith('response-'))) {
  test(`golden ${DIR}/${name}`, () => {
    const { body, usage } = anthropicResponseToChat(readJson(DIR, `${name}.in.json`), CTX);
    assertGoldenJson(DIR, `${name}.out.json`, { body, usage });
  });
}

for (const name of fixtureNames(DIR, '.in.sse')) {
  test(`golden ${DIR}/${name} (every byte split)`, () => {
    const bytes = readBytes(DIR, `${name}.in.sse`);
    const { out, tr } = replayEverySplit(bytes, () => createAnthropicStreamToChat({ ...CTX, includeUsage: true }));
    assertGolden(DIR, `${name}.out.sse`, out);
    assert.equal(tr.done, true);
    assert.ok(tr.usage !== undefined);
    // Every chunk is a chat.completion.chunk with the same id/created/model; the stream ends with [DONE].
    const datas = out.split('\n\n').filter((s) => s !== '').map((s) => s.replace(/^data: /, ''));
    assert.equal(datas.at(-1), '[DONE]');
    const chunks = datas.slice(0, -1).map((d) => JSON.parse(d) as Record<string, unknown>);
    for (const c of chunks) {
      assert.equal(c['object'], 'chat.completion.chunk');
      assert.equal(c['id'], CTX.id);
      assert.equal(c['created'], CTX.created);
      assert.equal(c['model'], chunks[0]?.['model']);
    }
    // Without include_usage: same chunks minus the usage chunk and the `usage: null` fields.
    const plain = replay([bytes], createAnthropicStreamToChat({ ...CTX, includeUsage: false }));
    const expected = chunks
      .filter((c) => (c['choices'] as unknown[]).length > 0)
      .map((c) => {
        const { usage: _u, ...rest } = c;
        return `data: ${JSON.stringify(rest)}\n\n`;
      })
      .join('');
    assert.equal(plain, `${expected}data: [DONE]\n\n`);
  });
}

test('stream fixture usage: input includes cache, output is the cumulative count', () => {
  const tr = createAnthropicStreamToChat({ ...CTX, includeUsage: false });
  replay([readBytes(DIR, 'stream-text.in.sse')], tr);
  assert.deepEqual(tr.usage, { inputTokens: 1045, cachedInputTokens: 1024, cacheWriteTokens: 0, outputTokens: 12, reasoningTokens: 0 });
  const th = createAnthropicStreamToChat({ ...CTX, includeUsage: false });
  replay([readBytes(DIR, 'stream-thinking.in.sse')], th);
  assert.deepEqual(th.usage, { inputTokens: 2098, cachedInputTokens: 0, cacheWriteTokens: 2048, outputTokens: 120, reasoningTokens: 0 });
});

// ---- requests ----

test('request: max_tokens precedence and default', () => {
  assert.equal(chatRequestToAnthropic(user('hi'), MODEL)['max_tokens'], 4096);
  assert.equal(chatRequestToAnthropic(user('hi'), MODEL, { defaultMaxTokens: 1000 })['max_tokens'], 1000);
  assert.equal(chatRequestToAnthropic({ ...user('hi'), max_tokens: 7 }, MODEL, { defaultMaxTokens: 1000 })['max_tokens'], 7);
  assert.equal(chatRequestToAnthropic({ ...user('hi'), max_tokens: 7, max_completion_tokens: 9 }, MODEL)['max_tokens'], 9);
  assert.equal(chatRequestToAnthropic({ ...user('hi'), max_tokens: null, max_completion_tokens: null }, MODEL)['max_tokens'], 4096);
  throwsCode(() => chatRequestToAnthropic({ ...user('hi'), max_completion_tokens: 0 }, MODEL), 'SLUICE_ERR_REQUEST_INVALID', /max_completion_tokens/);
  throwsCode(() => chatRequestToAnthropic({ ...user('hi'), max_tokens: '5' }, MODEL), 'SLUICE_ERR_REQUEST_INVALID', /max_tokens/);
});

test('request: sampling, stop, user, ignored fields', () => {
  const out = chatRequestToAnthropic(
    { ...user('hi'), temperature: -0.5, top_p: 0.5, stop: ['a', 'b'], user: 'u1', seed: 1, store: true, metadata: { a: 1 }, stream_options: { include_usage: true } },
    MODEL,
  );
  assert.deepEqual(out, {
    model: MODEL,
    max_tokens: 4096,
    messages: [{ role: 'user', content: 'hi' }],
    temperature: 0,
    top_p: 0.5,
    stop_sequences: ['a', 'b'],
    metadata: { user_id: 'u1' },
  });
  assert.equal(chatRequestToAnthropic({ ...user('hi'), temperature: 2 }, MODEL)['temperature'], 1);
  assert.equal(chatRequestToAnthropic({ ...user('hi'), temperature: 0.25 }, MODEL)['temperature'], 0.25);
  throwsCode(() => chatRequestToAnthropic({ ...user('hi'), stop: [1] }, MODEL), 'SLUICE_ERR_REQUEST_INVALID', /stop/);
});

test('request: tool_choice mapping and parallel_tool_calls', () => {
  const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string' } } } } }];
  const tc = (tool_choice: unknown, extra: Record<string, unknown> = {}): unknown =>
    chatRequestToAnthropic({ ...user('hi'), tools, tool_choice, ...extra }, MODEL)['tool_choice'];
  assert.deepEqual(tc('auto'), { type: 'auto' });
  assert.deepEqual(tc('required'), { type: 'any' });
  assert.deepEqual(tc('none'), { type: 'none' });
  assert.deepEqual(tc({ type: 'function', function: { name: 'f' } }), { type: 'tool', name: 'f' });
  assert.deepEqual(tc({ type: 'function', function: { name: 'f' } }, { parallel_tool_calls: false }), {
    type: 'tool',
    name: 'f',
    disable_parallel_tool_use: true,
  });
  assert.deepEqual(tc(undefined, { parallel_tool_calls: false }), { type: 'auto', disable_parallel_tool_use: true });
  assert.deepEqual(tc('none', { parallel_tool_calls: false }), { type: 'none' });
  assert.equal(tc(undefined, { parallel_tool_calls: true }), undefined);
  throwsCode(() => tc('sometimes'), 'SLUICE_ERR_REQUEST_INVALID', /tool_choice/);
  throwsCode(() => tc({ type: 'allowed_tools', allowed_tools: {} }), 'SLUICE_ERR_ROUTE_UNSUPPORTED', /tool_choice/);
  const out = chatRequestToAnthropic({ ...user('hi'), tools }, MODEL);
  assert.deepEqual(out['tools'], [{ name: 'f', input_schema: { type: 'object', properties: { a: { type: 'string' } } } }]);
  throwsCode(
    () => chatRequestToAnthropic({ ...user('hi'), tools: [{ type: 'custom', custom: { name: 'x' } }] }, MODEL),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /tools\[0\]\.type/,
  );
  // no parallel flag without tools
  assert.equal(chatRequestToAnthropic({ ...user('hi'), parallel_tool_calls: false }, MODEL)['tool_choice'], undefined);
});

test('request: untranslatable features are SLUICE_ERR_ROUTE_UNSUPPORTED naming the field', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ n: 2 }, /\bn\b/],
    [{ logprobs: true }, /logprobs/],
    [{ top_logprobs: 3 }, /top_logprobs/],
    [{ response_format: { type: 'json_object' } }, /response_format/],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }, /response_format/],
    [{ audio: { voice: 'alloy', format: 'mp3' } }, /audio/],
    [{ modalities: ['text', 'audio'] }, /modalities/],
    [{ functions: [{ name: 'f' }] }, /functions/],
    [{ function_call: 'auto' }, /function_call/],
  ];
  for (const [extra, re] of cases) {
    throwsCode(() => chatRequestToAnthropic({ ...user('hi'), ...extra }, MODEL), 'SLUICE_ERR_ROUTE_UNSUPPORTED', re);
  }
  // Harmless values pass.
  chatRequestToAnthropic({ ...user('hi'), n: 1, logprobs: false, response_format: { type: 'text' }, audio: null }, MODEL);
  const msg = (m: Record<string, unknown>): Record<string, unknown> => ({ model: 'x', messages: [{ role: 'user', content: 'q' }, m] });
  throwsCode(() => chatRequestToAnthropic(msg({ role: 'function', name: 'f', content: 'x' }), MODEL), 'SLUICE_ERR_ROUTE_UNSUPPORTED', /messages\[1\]\.role/);
  throwsCode(
    () => chatRequestToAnthropic(msg({ role: 'assistant', content: null, function_call: { name: 'f', arguments: '{}' } }), MODEL),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /function_call/,
  );
  throwsCode(
    () =>
      chatRequestToAnthropic(
        msg({ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":' } }] }),
        MODEL,
      ),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /messages\[1\]\.tool_calls\[0\]\.function\.arguments/,
  );
  throwsCode(
    () => chatRequestToAnthropic(user([{ type: 'input_audio', input_audio: { data: 'AA', format: 'wav' } }]), MODEL),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /audio/,
  );
  throwsCode(() => chatRequestToAnthropic(user([{ type: 'image_url', image_url: { url: 'data:image/png,abc' } }]), MODEL), 'SLUICE_ERR_ROUTE_UNSUPPORTED', /base64/);
});

test('request: structurally invalid input is SLUICE_ERR_REQUEST_INVALID with the field path', () => {
  const cases: Array<[unknown, string]> = [
    [{ model: 'x' }, 'messages'],
    [{ messages: 'hi' }, 'messages'],
    [{ messages: [{ content: 'hi' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
    [{ messages: [42] }, 'messages[0]'],
    [{ messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'text', text: 1 }] }] }, 'messages[0].content[0].text'],
    [{ messages: [{ role: 'user', content: [{ type: 'video' }] }] }, 'messages[0].content[0].type'],
    [{ messages: [{ role: 'system', content: [{ type: 'image_url' }] }] }, 'messages[0].content[0]'],
    [{ messages: [{ role: 'user', content: 'q' }, { role: 'tool', content: 'x' }] }, 'messages[1].tool_call_id'],
    [{ messages: [{ role: 'assistant', content: null, tool_calls: {} }] }, 'messages[0].tool_calls'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x' } }] }] }, 'messages[0].content[0].image_url.url'],
    [{ messages: [{ role: 'system', content: 'only a system prompt' }] }, 'messages'],
    [{ messages: [{ role: 'user', content: 'x' }], tools: {} }, 'tools'],
    [{ messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
    [{ messages: [{ role: 'user', content: 'x' }], user: 5 }, 'user'],
    [{ messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }, 'temperature'],
  ];
  for (const [req, param] of cases) {
    assert.throws(
      () => chatRequestToAnthropic(req as Record<string, unknown>, MODEL),
      (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_REQUEST_INVALID' && e.param === param && e.message.includes(param),
      `expected REQUEST_INVALID at ${param} for ${JSON.stringify(req)}`,
    );
  }
  throwsCode(() => chatRequestToAnthropic(null as unknown as Record<string, unknown>, MODEL), 'SLUICE_ERR_REQUEST_INVALID');
});

test('request: messages merge by role, tool results lead their user turn, empty args are {}', () => {
  const out = chatRequestToAnthropic(
    {
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '' } }] },
        { role: 'user', content: 'note' },
        { role: 'tool', tool_call_id: 'c1', content: 'r1' },
        { role: 'assistant', content: [{ type: 'text', text: 'x' }, { type: 'refusal', refusal: 'y' }] },
        { role: 'assistant', content: 'z' },
      ],
    },
    MODEL,
  );
  assert.deepEqual(out['messages'], [
    { role: 'user', content: 'a' },
    { role: 'assistant', content: [{ type: 'tool_use', id: 'c1', name: 'f', input: {} }] },
    {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'c1', content: 'r1' },
        { type: 'text', text: 'note' },
      ],
    },
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'x' },
        { type: 'text', text: 'y' },
        { type: 'text', text: 'z' },
      ],
    },
  ]);
  assert.equal(out['system'], undefined);
});

// ---- responses ----

test('response: shapes, fallbacks and errors', () => {
  const { body, usage } = anthropicResponseToChat({ content: [], stop_reason: 'refusal' }, CTX);
  assert.deepEqual(body, {
    id: CTX.id,
    object: 'chat.completion',
    created: CTX.created,
    model: CTX.model,
    choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null }, finish_reason: 'content_filter', logprobs: null }],
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
  });
  assert.deepEqual(usage, { inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 });
  const reasons: Array<[string, string]> = [
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ];
  for (const [a, o] of reasons) {
    const b = anthropicResponseToChat({ content: [{ type: 'text', text: 't' }], stop_reason: a }, CTX).body as { choices: Array<{ finish_reason: string }> };
    assert.equal(b.choices[0]?.finish_reason, o);
  }
  throwsCode(() => anthropicResponseToChat('nope', CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => anthropicResponseToChat({ type: 'message' }, CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE', /content/);
  throwsCode(() => anthropicResponseToChat({ content: [{ type: 'text' }] }, CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => anthropicResponseToChat({ content: [{ type: 'tool_use', name: 'f' }] }, CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(
    () => anthropicResponseToChat({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, CTX),
    'SLUICE_ERR_UPSTREAM_OVERLOADED',
    /^Overloaded$/,
  );
});

// ---- streams ----

const start = ev('message_start', {
  message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } },
});

test('stream: error events map to codes and keep the provider message', () => {
  const cases: Array<[string, ErrorCode]> = [
    ['overloaded_error', 'SLUICE_ERR_UPSTREAM_OVERLOADED'],
    ['rate_limit_error', 'SLUICE_ERR_UPSTREAM_RATE_LIMITED'],
    ['api_error', 'SLUICE_ERR_UPSTREAM_SERVER_ERROR'],
    ['invalid_request_error', 'SLUICE_ERR_UPSTREAM_SERVER_ERROR'],
  ];
  for (const [type, code] of cases) {
    const tr = createAnthropicStreamToChat({ ...CTX, includeUsage: true });
    tr.push(start);
    throwsCode(() => tr.push(ev('error', { error: { type, message: `msg for ${type}` } })), code, new RegExp(`^msg for ${type}$`));
    assert.equal(tr.done, false);
    assert.deepEqual(tr.usage?.inputTokens, 10);
  }
  const tr = createAnthropicStreamToChat({ ...CTX, includeUsage: true });
  throwsCode(() => tr.push({ event: 'error', data: 'not json', raw: '' }), 'SLUICE_ERR_UPSTREAM_SERVER_ERROR');
});

test('stream: interruption, garbage and ordering', () => {
  const tr = createAnthropicStreamToChat({ ...CTX, includeUsage: true });
  tr.push(start);
  tr.push(ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
  tr.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'partial' } }));
  tr.push(ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } }));
  assert.equal(tr.usage?.outputTokens, 5);
  throwsCode(() => tr.end(), 'SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED');

  throwsCode(() => createAnthropicStreamToChat({ ...CTX, includeUsage: false }).end(), 'SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED');
  throwsCode(
    () => createAnthropicStreamToChat({ ...CTX, includeUsage: false }).push({ event: 'message_start', data: '{"type":"message_st', raw: '' }),
    'SLUICE_ERR_UPSTREAM_BAD_RESPONSE',
  );
  throwsCode(
    () => createAnthropicStreamToChat({ ...CTX, includeUsage: false }).push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'x' } })),
    'SLUICE_ERR_UPSTREAM_BAD_RESPONSE',
    /before message_start/,
  );
  const t2 = createAnthropicStreamToChat({ ...CTX, includeUsage: false });
  t2.push(start);
  throwsCode(() => t2.push(ev('content_block_start', { index: 'x', content_block: { type: 'text', text: '' } })), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
});

test('stream: message_stop without message_delta still gives a finish_reason; events after done are ignored', () => {
  const tr = createAnthropicStreamToChat({ ...CTX, includeUsage: false });
  let out = tr.push(start) + tr.push(ev('message_stop'));
  assert.equal(tr.done, true);
  out += tr.push(ev('message_stop')) + tr.end();
  const chunks = out.split('\n\n').filter(Boolean);
  assert.equal(chunks.length, 3);
  assert.match(chunks[1] ?? '', /"finish_reason":"stop"/);
  assert.equal(chunks[2], 'data: [DONE]');
  assert.match(chunks[0] ?? '', /"model":"claude-x"/);
});

// ---- fuzz ----

test('fuzz: hostile requests only ever throw SluiceError', () => {
  const r = rng(1);
  const seeds = fixtureNames(DIR, '.in.json')
    .filter((n) => n.startsWith('request-'))
    .map((n) => readJson(DIR, `${n}.in.json`));
  for (let i = 0; i < 3000; i++) {
    const input = mutate(seeds[i % seeds.length], r);
    onlySluiceErrors(() => chatRequestToAnthropic(input as Record<string, unknown>, MODEL), input);
  }
  for (const junk of [null, undefined, 1, 'x', [], [1], { messages: null }, { messages: [null] }]) {
    onlySluiceErrors(() => chatRequestToAnthropic(junk as Record<string, unknown>, MODEL), junk);
  }
});

test('fuzz: hostile responses only ever throw SluiceError', () => {
  const r = rng(2);
  const seeds = fixtureNames(DIR, '.in.json')
    .filter((n) => n.startsWith('response-'))
    .map((n) => readJson(DIR, `${n}.in.json`));
  for (let i = 0; i < 3000; i++) {
    const input = mutate(seeds[i % seeds.length], r);
    onlySluiceErrors(() => anthropicResponseToChat(input, CTX), input);
  }
});

test('fuzz: hostile stream events only ever throw SluiceError', () => {
  const r = rng(3);
  const transcripts = fixtureNames(DIR, '.in.sse').map((n) =>
    readBytes(DIR, `${n}.in.sse`)
      .toString('utf8')
      .split('\n\n')
      .filter(Boolean)
      .map((block) => {
        const [head, data] = block.split('\ndata: ');
        return { event: head?.replace('event: ', ''), json: JSON.parse(data ?? '{}') as unknown };
      }),
  );
  for (let i = 0; i < 2000; i++) {
    const t = transcripts[i % transcripts.length] ?? [];
    const victim = Math.floor(r() * t.length);
    const events: SseEvent[] = t.map((e, j) => {
      const data = j === victim ? (r() < 0.1 ? '{"type":' : JSON.stringify(mutate(e.json, r))) : JSON.stringify(e.json);
      return { event: e.event, data, raw: '' };
    });
    onlySluiceErrors(() => {
      const tr = createAnthropicStreamToChat({ ...CTX, includeUsage: true });
      for (const e of events) tr.push(e);
      tr.end();
    }, events[victim]);
  }
});
