import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceError } from '@sluice/core';
import type { ErrorCode } from '@sluice/core';
import type { SseEvent } from '../../sse.js';
import { chatResponseToAnthropic, createChatStreamToAnthropic, messagesRequestToOpenAI } from './to-openai.js';
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

const DIR = 'anthropic-to-chat';
const MODEL = 'gpt-4.1-mini';
const CTX = { model: 'gpt-4.1-mini', id: 'msg_sluice0001' };

function throwsCode(fn: () => unknown, code: ErrorCode, match?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SluiceError, `expected SluiceError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (match) assert.match(e.message, match);
    return true;
  });
}

function data(json: unknown): SseEvent {
  const d = typeof json === 'string' ? json : JSON.stringify(json);
  return { event: undefined, data: d, raw: `data: ${d}\n\n` };
}

function chunk(delta: Record<string, unknown>, finish: string | null = null): SseEvent {
  return data({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt-x', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
}

/** Parse Anthropic SSE text into [event, json] pairs, checking the framing. */
function events(sse: string): Array<[string, Record<string, unknown>]> {
  return sse
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const m = /^event: (\w+)\ndata: (.*)$/s.exec(block);
      assert.ok(m, `bad framing: ${block}`);
      const json = JSON.parse(m[2] ?? '') as Record<string, unknown>;
      assert.equal(json['type'], m[1]);
      return [m[1] ?? '', json];
    });
}

const req = (messages: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: 'claude', max_tokens: 10, messages, ...extra });

// ---- golden fixtures ----

for (const name of fixtureNames(DIR, '.in.json').filter((n) => n.startsWith('request-'))) {
  test(`golden ${DIR}/${name}`, () => {
    assertGoldenJson(DIR, `${name}.out.json`, messagesRequestToOpenAI(readJson(DIR, `${name}.in.json`), MODEL));
  });
}

for (const name of fixtureNames(DIR, '.in.json').filter((n) => n.startsWith('response-'))) {
  test(`golden ${DIR}/${name}`, () => {
    const { body, usage } = chatResponseToAnthropic(readJson(DIR, `${name}.in.json`), CTX);
    assertGoldenJson(DIR, `${name}.out.json`, { body, usage });
  });
}

for (const name of fixtureNames(DIR, '.in.sse')) {
  test(`golden ${DIR}/${name} (every byte split)`, () => {
    const bytes = readBytes(DIR, `${name}.in.sse`);
    const { out, tr } = replayEverySplit(bytes, () => createChatStreamToAnthropic(CTX));
    assertGolden(DIR, `${name}.out.sse`, out);
    assert.equal(tr.done, true);
    // Well-formed Anthropic event sequence: message_start first, blocks opened in index order and
    // closed before the next opens, message_delta then message_stop last.
    const evs = events(out);
    assert.equal(evs[0]?.[0], 'message_start');
    assert.deepEqual(evs.slice(-2).map((e) => e[0]), ['message_delta', 'message_stop']);
    let open: number | undefined;
    let next = 0;
    for (const [type, json] of evs) {
      if (type === 'content_block_start') {
        assert.equal(open, undefined);
        assert.equal(json['index'], next++);
        open = json['index'] as number;
      } else if (type === 'content_block_delta') {
        assert.equal(json['index'], open);
      } else if (type === 'content_block_stop') {
        assert.equal(json['index'], open);
        open = undefined;
      }
    }
    assert.equal(open, undefined);
  });
}

test('stream fixture usage comes from the usage-only chunk, which is not emitted', () => {
  const tr = createChatStreamToAnthropic(CTX);
  const out = replay([readBytes(DIR, 'stream-text.in.sse')], tr);
  assert.deepEqual(tr.usage, { inputTokens: 1043, cachedInputTokens: 1024, cacheWriteTokens: 0, outputTokens: 8, reasoningTokens: 0 });
  const delta = events(out).find(([t]) => t === 'message_delta')?.[1];
  assert.deepEqual(delta, {
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { input_tokens: 19, cache_read_input_tokens: 1024, cache_creation_input_tokens: 0, output_tokens: 8 },
  });
});

// ---- requests ----

test('request: max tokens field, stream options, sampling, metadata', () => {
  const out = messagesRequestToOpenAI(
    req([{ role: 'user', content: 'hi' }], { stream: true, temperature: 0.2, top_k: 5, stop_sequences: ['x'], metadata: { user_id: 'u' }, system: 'sys' }),
    MODEL,
  );
  assert.deepEqual(out, {
    model: MODEL,
    messages: [
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'hi' },
    ],
    max_completion_tokens: 10,
    temperature: 0.2,
    stop: ['x'],
    stream: true,
    stream_options: { include_usage: true },
    user: 'u',
  });
  const legacy = messagesRequestToOpenAI(req([{ role: 'user', content: 'hi' }], { stream: false }), MODEL, { maxTokensField: 'max_tokens' });
  assert.deepEqual(legacy, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, stream: false });
});

test('request: tool choice mapping', () => {
  const tools = [{ name: 'f', input_schema: { type: 'object' } }];
  const tc = (tool_choice: unknown): Record<string, unknown> => messagesRequestToOpenAI(req([{ role: 'user', content: 'q' }], { tools, tool_choice }), MODEL);
  assert.equal(tc({ type: 'auto' })['tool_choice'], 'auto');
  assert.equal(tc({ type: 'any' })['tool_choice'], 'required');
  assert.equal(tc({ type: 'none' })['tool_choice'], 'none');
  assert.deepEqual(tc({ type: 'tool', name: 'f' })['tool_choice'], { type: 'function', function: { name: 'f' } });
  assert.equal(tc({ type: 'auto', disable_parallel_tool_use: true })['parallel_tool_calls'], false);
  assert.equal(tc({ type: 'auto', disable_parallel_tool_use: false })['parallel_tool_calls'], undefined);
  assert.deepEqual(tc({ type: 'auto' })['tools'], [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]);
  throwsCode(() => tc({ type: 'sometimes' }), 'SLUICE_ERR_REQUEST_INVALID', /tool_choice\.type/);
  throwsCode(
    () => messagesRequestToOpenAI(req([{ role: 'user', content: 'q' }], { tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), MODEL),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /tools\[0\]\.type/,
  );
});

test('request: tool results become tool messages before the rest of the turn; thinking is dropped', () => {
  const out = messagesRequestToOpenAI(
    req([
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
      { role: 'assistant', content: [{ type: 'redacted_thinking', data: 'xx' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: { x: 'é' } }] },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'after' },
          { type: 'tool_result', tool_use_id: 't1' },
        ],
      },
    ]),
    MODEL,
  );
  assert.deepEqual(out['messages'], [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'a' },
        { type: 'text', text: 'b' },
      ],
    },
    { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"x":"é"}' } }] },
    { role: 'tool', tool_call_id: 't1', content: '' },
    { role: 'user', content: 'after' },
  ]);
});

test('request: untranslatable and invalid input', () => {
  throwsCode(
    () => messagesRequestToOpenAI(req([{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'AA' } }] }]), MODEL),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /messages\[0\]\.content\[0\]\.type/,
  );
  throwsCode(
    () =>
      messagesRequestToOpenAI(
        req([{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'image', source: { type: 'url', url: 'https://x' } }] }] }]),
        MODEL,
      ),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /content\[0\]\.type/,
  );
  throwsCode(
    () => messagesRequestToOpenAI(req([{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'f' } }] }]), MODEL),
    'SLUICE_ERR_ROUTE_UNSUPPORTED',
    /source\.type/,
  );
  const invalid: Array<[unknown, string]> = [
    [{ max_tokens: 1 }, 'messages'],
    [req([{ content: 'x' }]), 'messages[0].role'],
    [req([{ role: 'system', content: 'x' }]), 'messages[0].role'],
    [req([{ role: 'user', content: 5 }]), 'messages[0].content'],
    [req([{ role: 'user', content: [{ type: 'text' }] }]), 'messages[0].content[0].text'],
    [req([{ role: 'user', content: [{}] }]), 'messages[0].content[0].type'],
    [req([{ role: 'user', content: [{ type: 'tool_result' }] }]), 'messages[0].content[0].tool_use_id'],
    [req([{ role: 'assistant', content: [{ type: 'tool_use', id: 'x', name: 'f', input: [] }] }]), 'messages[0].content[0].input'],
    [req([{ role: 'user', content: 'x' }], { system: 5 }), 'system'],
    [req([{ role: 'user', content: 'x' }], { max_tokens: -1 }), 'max_tokens'],
    [req([{ role: 'user', content: 'x' }], { stop_sequences: 'x' }), 'stop_sequences'],
    [req([{ role: 'user', content: 'x' }], { tools: [{ name: 'f' }] }), 'tools[0].input_schema'],
    [req([{ role: 'user', content: 'x' }], { metadata: { user_id: 1 } }), 'metadata.user_id'],
  ];
  for (const [r, param] of invalid) {
    assert.throws(
      () => messagesRequestToOpenAI(r as Record<string, unknown>, MODEL),
      (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_REQUEST_INVALID' && e.param === param && e.message.includes(param),
      `expected REQUEST_INVALID at ${param}`,
    );
  }
});

// ---- responses ----

test('response: stop reasons, refusal, errors, garbage', () => {
  const reasons: Array<[unknown, string]> = [
    ['stop', 'end_turn'],
    ['length', 'max_tokens'],
    ['tool_calls', 'tool_use'],
    ['function_call', 'tool_use'],
    ['content_filter', 'refusal'],
    [null, 'end_turn'],
  ];
  for (const [o, a] of reasons) {
    const { body } = chatResponseToAnthropic({ choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: o }] }, CTX);
    assert.equal(body['stop_reason'], a);
  }
  const { body, usage } = chatResponseToAnthropic({ choices: [{ message: { content: null, refusal: 'I cannot help' }, finish_reason: 'content_filter' }] }, CTX);
  assert.deepEqual(body, {
    id: CTX.id,
    type: 'message',
    role: 'assistant',
    model: CTX.model,
    content: [{ type: 'text', text: 'I cannot help' }],
    stop_reason: 'refusal',
    stop_sequence: null,
    usage: { input_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, output_tokens: 0 },
  });
  assert.equal(usage.inputTokens, 0);
  throwsCode(() => chatResponseToAnthropic([], CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => chatResponseToAnthropic({ choices: [] }, CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => chatResponseToAnthropic({ choices: [{ message: 'x' }] }, CTX), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(
    () => chatResponseToAnthropic({ choices: [{ message: { tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{bad' } }] } }] }, CTX),
    'SLUICE_ERR_UPSTREAM_BAD_RESPONSE',
    /arguments/,
  );
  throwsCode(() => chatResponseToAnthropic({ error: { message: 'Slow down', type: 'rate_limit_exceeded' } }, CTX), 'SLUICE_ERR_UPSTREAM_RATE_LIMITED', /^Slow down$/);
});

// ---- streams ----

test('stream: end after finish_reason without [DONE] completes the message', () => {
  const tr = createChatStreamToAnthropic(CTX);
  let out = tr.push(chunk({ role: 'assistant', content: 'hé' }));
  out += tr.push(chunk({}, 'length'));
  assert.equal(tr.done, false);
  out += tr.end();
  assert.equal(tr.done, true);
  assert.deepEqual(
    events(out).map(([t]) => t),
    ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
  );
  assert.match(out, /"stop_reason":"max_tokens"/);
  assert.equal(tr.end(), '');
});

test('stream: interruption keeps partial usage; garbage and error chunks throw', () => {
  const tr = createChatStreamToAnthropic(CTX);
  tr.push(chunk({ content: 'x' }));
  tr.push(data({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 1 } }));
  throwsCode(() => tr.end(), 'SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED');
  assert.equal(tr.usage?.inputTokens, 5);

  throwsCode(() => createChatStreamToAnthropic(CTX).push(data('{"choices": [')), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => createChatStreamToAnthropic(CTX).push(data('[1]')), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => createChatStreamToAnthropic(CTX).push(data({ choices: 'x' })), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(
    () => createChatStreamToAnthropic(CTX).push(data({ error: { message: 'The server had an error', type: 'server_error' } })),
    'SLUICE_ERR_UPSTREAM_SERVER_ERROR',
    /^The server had an error$/,
  );
  throwsCode(
    () => createChatStreamToAnthropic(CTX).push({ event: 'error', data: '{"error":{"message":"busy","code":"rate_limit_exceeded"}}', raw: '' }),
    'SLUICE_ERR_UPSTREAM_RATE_LIMITED',
    /^busy$/,
  );
});

test('stream: [DONE] right away still yields a well-formed empty message', () => {
  const tr = createChatStreamToAnthropic(CTX);
  const evs = events(tr.push(data('[DONE]')) + tr.end());
  assert.deepEqual(
    evs.map(([t]) => t),
    ['message_start', 'message_delta', 'message_stop'],
  );
  assert.deepEqual((evs[0]?.[1]['message'] as Record<string, unknown>)['content'], []);
});

test('stream: tool call without id gets a generated one; text after a tool opens a new block', () => {
  const tr = createChatStreamToAnthropic(CTX);
  let out = tr.push(chunk({ tool_calls: [{ index: 0, function: { name: 'f', arguments: '{}' } }] }));
  out += tr.push(chunk({ content: 'done' }, 'stop'));
  out += tr.push(data('[DONE]'));
  const evs = events(out);
  assert.deepEqual(evs[1]?.[1], { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_msg_sluice0001_0', name: 'f', input: {} } });
  assert.deepEqual(
    evs.map(([t, j]) => `${t}${typeof j['index'] === 'number' ? `@${j['index']}` : ''}`),
    [
      'message_start',
      'content_block_start@0',
      'content_block_delta@0',
      'content_block_stop@0',
      'content_block_start@1',
      'content_block_delta@1',
      'content_block_stop@1',
      'message_delta',
      'message_stop',
    ],
  );
});

// ---- fuzz ----

test('fuzz: hostile requests only ever throw SluiceError', () => {
  const r = rng(11);
  const seeds = fixtureNames(DIR, '.in.json')
    .filter((n) => n.startsWith('request-'))
    .map((n) => readJson(DIR, `${n}.in.json`));
  for (let i = 0; i < 3000; i++) {
    const input = mutate(seeds[i % seeds.length], r);
    onlySluiceErrors(() => messagesRequestToOpenAI(input as Record<string, unknown>, MODEL), input);
  }
  for (const junk of [null, undefined, 1, 'x', [], { messages: null }, { messages: [null] }]) {
    onlySluiceErrors(() => messagesRequestToOpenAI(junk as Record<string, unknown>, MODEL), junk);
  }
});

test('fuzz: hostile responses only ever throw SluiceError', () => {
  const r = rng(12);
  const seeds = fixtureNames(DIR, '.in.json')
    .filter((n) => n.startsWith('response-'))
    .map((n) => readJson(DIR, `${n}.in.json`));
  for (let i = 0; i < 3000; i++) {
    const input = mutate(seeds[i % seeds.length], r);
    onlySluiceErrors(() => chatResponseToAnthropic(input, CTX), input);
  }
});

test('fuzz: hostile stream chunks only ever throw SluiceError', () => {
  const r = rng(13);
  const transcripts = fixtureNames(DIR, '.in.sse').map((n) =>
    readBytes(DIR, `${n}.in.sse`)
      .toString('utf8')
      .split('\n\n')
      .filter(Boolean)
      .map((b) => b.replace(/^data: /, '')),
  );
  for (let i = 0; i < 2000; i++) {
    const t = transcripts[i % transcripts.length] ?? [];
    const victim = Math.floor(r() * t.length);
    const evs = t.map((d, j) => {
      if (j !== victim || d === '[DONE]') return data(d);
      return data(r() < 0.1 ? d.slice(0, 10) : JSON.stringify(mutate(JSON.parse(d), r)));
    });
    onlySluiceErrors(() => {
      const tr = createChatStreamToAnthropic(CTX);
      for (const e of evs) tr.push(e);
      tr.end();
    }, evs[victim]?.data);
  }
});
