import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createSseParser } from '@sluice/providers';
import type { SseEvent } from '@sluice/providers';
import { startFakeProvider, DEFAULT_REPLY_TEXT, FAKE_OPENAI_MODELS, FAKE_EMBEDDING_DIMS, fakeEmbedding } from './fake-provider.js';
import type { FakeProvider } from './fake-provider.js';

type Json = Record<string, unknown>;

let fake: FakeProvider;

before(async () => {
  fake = await startFakeProvider();
});
after(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(fake.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const chat = (extra: Json = {}): Json => ({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'Be brief.' }, // 9 chars
    { role: 'user', content: [{ type: 'text', text: 'Hello, world!' }] }, // 13 chars
  ],
  ...extra,
});
const messages = (extra: Json = {}): Json => ({
  model: 'claude-haiku-4-5',
  max_tokens: 100,
  system: 'Be brief.',
  messages: [{ role: 'user', content: 'Hello, world!' }],
  ...extra,
});

function parseSse(text: string): SseEvent[] {
  const p = createSseParser();
  return [...p.push(text), ...p.end()];
}

async function events(res: Response): Promise<SseEvent[]> {
  return parseSse(await res.text());
}

function json(e: SseEvent): Json {
  return JSON.parse(e.data) as Json;
}

function choice(c: Json): Json {
  return (c['choices'] as Json[])[0] as Json;
}

/** Reads the body as far as it goes; `error` is set when the connection broke. */
async function readPartial(res: Response): Promise<{ text: string; error: unknown }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, error: undefined };
      text += dec.decode(value, { stream: true });
    }
  } catch (error) {
    return { text, error };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('listens on 127.0.0.1 with an ephemeral port', () => {
  assert.match(fake.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(fake.port > 0);
  assert.equal(fake.url, `http://127.0.0.1:${fake.port}`);
});

test('OpenAI chat completion: real JSON shape and default usage', async () => {
  const res = await post('/v1/chat/completions', chat());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await res.json()) as Json;
  assert.match(body['id'] as string, /^chatcmpl-\w+$/);
  assert.equal(body['object'], 'chat.completion');
  assert.equal(typeof body['created'], 'number');
  assert.ok(Math.abs((body['created'] as number) - Date.now() / 1000) < 5);
  assert.equal(body['model'], 'gpt-4o-mini');
  const c = choice(body);
  assert.equal(c['index'], 0);
  assert.equal(c['finish_reason'], 'stop');
  const message = c['message'] as Json;
  assert.equal(message['role'], 'assistant');
  assert.equal(message['content'], DEFAULT_REPLY_TEXT);
  assert.equal(message['refusal'], null);
  assert.equal(message['tool_calls'], undefined);
  assert.deepEqual(body['usage'], {
    prompt_tokens: 6, // ceil((9 + 13) / 4)
    completion_tokens: 6, // words of the default text
    total_tokens: 12,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  });
  // Ids are unique per response even though the body is cached.
  const again = (await (await post('/v1/chat/completions', chat())).json()) as Json;
  assert.notEqual(again['id'], body['id']);
  assert.equal(JSON.stringify({ ...again, id: 0, created: 0 }), JSON.stringify({ ...body, id: 0, created: 0 }));
});

test('OpenAI stream without include_usage: chunk sequence, no usage anywhere, [DONE]', async () => {
  fake.setDefault({ text: 'one two three four five', chunks: 3 });
  const res = await post('/v1/chat/completions', chat({ stream: true }));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const evs = await events(res);
  assert.equal(evs.at(-1)?.data, '[DONE]');
  assert.ok(evs.every((e) => e.event === undefined));
  const chunks = evs.slice(0, -1).map(json);
  assert.equal(chunks.length, 1 + 3 + 1);
  const ids = new Set(chunks.map((c) => c['id']));
  assert.equal(ids.size, 1);
  for (const c of chunks) {
    assert.equal(c['object'], 'chat.completion.chunk');
    assert.equal(c['model'], 'gpt-4o-mini');
    assert.ok(!('usage' in c));
  }
  assert.deepEqual(choice(chunks[0] as Json)['delta'], { role: 'assistant', content: '', refusal: null });
  const text = chunks
    .slice(1, -1)
    .map((c) => (choice(c)['delta'] as Json)['content'])
    .join('');
  assert.equal(text, 'one two three four five');
  const last = choice(chunks.at(-1) as Json);
  assert.deepEqual(last['delta'], {});
  assert.equal(last['finish_reason'], 'stop');
  assert.ok(chunks.slice(0, -1).every((c) => choice(c)['finish_reason'] === null));
});

test('OpenAI stream with include_usage: usage null on every chunk, then a usage chunk', async () => {
  fake.setDefault({ usage: { input: 50, output: 7, cached: 20, reasoning: 3 } });
  const res = await post('/v1/chat/completions', chat({ stream: true, stream_options: { include_usage: true } }));
  const evs = await events(res);
  assert.equal(evs.at(-1)?.data, '[DONE]');
  const chunks = evs.slice(0, -1).map(json);
  const final = chunks.at(-1) as Json;
  assert.deepEqual(final['choices'], []);
  const usage = final['usage'] as Json;
  assert.equal(usage['prompt_tokens'], 50);
  assert.equal(usage['completion_tokens'], 7);
  assert.equal(usage['total_tokens'], 57);
  assert.deepEqual(usage['prompt_tokens_details'], { cached_tokens: 20, audio_tokens: 0 });
  assert.equal((usage['completion_tokens_details'] as Json)['reasoning_tokens'], 3);
  for (const c of chunks.slice(0, -1)) {
    assert.ok('usage' in c);
    assert.equal(c['usage'], null);
  }
  assert.equal(choice(chunks.at(-2) as Json)['finish_reason'], 'stop');
  // The default 4 content deltas.
  assert.equal(chunks.length, 1 + 4 + 1 + 1);
});

test('Anthropic message: real JSON shape; usage consistent with OpenAI for cached tokens', async () => {
  const res = await post('/v1/messages', messages(), { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' });
  assert.equal(res.status, 200);
  const body = (await res.json()) as Json;
  assert.match(body['id'] as string, /^msg_\w+$/);
  assert.equal(body['type'], 'message');
  assert.equal(body['role'], 'assistant');
  assert.equal(body['model'], 'claude-haiku-4-5');
  assert.deepEqual(body['content'], [{ type: 'text', text: DEFAULT_REPLY_TEXT }]);
  assert.equal(body['stop_reason'], 'end_turn');
  assert.equal(body['stop_sequence'], null);
  assert.deepEqual(body['usage'], {
    input_tokens: 6, // system counts too: ceil((9 + 13) / 4)
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: 6,
  });

  const usage = { input: 100, cached: 60, cacheWrite: 10, output: 5 };
  fake.setDefault({ usage });
  const a = (await (await post('/v1/messages', messages())).json()) as Json;
  assert.deepEqual(a['usage'], {
    input_tokens: 30,
    cache_creation_input_tokens: 10,
    cache_read_input_tokens: 60,
    output_tokens: 5,
  });
  const o = (await (await post('/v1/chat/completions', chat())).json()) as Json;
  const ou = o['usage'] as Json;
  assert.equal(ou['prompt_tokens'], 100);
  assert.deepEqual(ou['prompt_tokens_details'], { cached_tokens: 60, audio_tokens: 0 });
});

test('Anthropic stream: the real event sequence, event name equal to data.type', async () => {
  fake.setDefault({ text: 'alpha beta gamma', chunks: 2, usage: { cached: 2, input: 10 } });
  const res = await post('/v1/messages', messages({ stream: true }));
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const evs = await events(res);
  assert.deepEqual(
    evs.map((e) => e.event),
    [
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ],
  );
  const data = evs.map(json);
  for (const [i, e] of evs.entries()) assert.equal(data[i]?.['type'], e.event);
  const start = (data[0] as Json)['message'] as Json;
  assert.match(start['id'] as string, /^msg_/);
  assert.deepEqual(start['content'], []);
  assert.equal(start['stop_reason'], null);
  assert.deepEqual(start['usage'], {
    input_tokens: 8,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 2,
    output_tokens: 1,
  });
  assert.deepEqual(data[1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  const text = data
    .filter((d) => d['type'] === 'content_block_delta')
    .map((d) => {
      const delta = d['delta'] as Json;
      assert.equal(delta['type'], 'text_delta');
      return delta['text'];
    })
    .join('');
  assert.equal(text, 'alpha beta gamma');
  assert.deepEqual(data[6], {
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: 3 },
  });
});

test('OpenAI tool calls: JSON and streamed tool_calls deltas', async () => {
  const toolCall = { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' };
  fake.setDefault({ toolCall });
  const body = (await (await post('/v1/chat/completions', chat())).json()) as Json;
  const c = choice(body);
  assert.equal(c['finish_reason'], 'tool_calls');
  const message = c['message'] as Json;
  assert.equal(message['content'], null);
  const calls = message['tool_calls'] as Json[];
  assert.equal(calls.length, 1);
  assert.match((calls[0] as Json)['id'] as string, /^call_\w+$/);
  assert.equal((calls[0] as Json)['type'], 'function');
  assert.deepEqual((calls[0] as Json)['function'], toolCall);

  const evs = await events(await post('/v1/chat/completions', chat({ stream: true })));
  const chunks = evs.slice(0, -1).map(json);
  const first = choice(chunks[0] as Json)['delta'] as Json;
  assert.equal(first['role'], 'assistant');
  assert.equal(first['content'], null);
  const firstCall = (first['tool_calls'] as Json[])[0] as Json;
  assert.equal(firstCall['index'], 0);
  assert.match(firstCall['id'] as string, /^call_/);
  assert.deepEqual(firstCall['function'], { name: 'get_weather', arguments: '' });
  const pieces = chunks.slice(1, -1).map((ch) => {
    const call = ((choice(ch)['delta'] as Json)['tool_calls'] as Json[])[0] as Json;
    assert.equal(call['index'], 0);
    return (call['function'] as Json)['arguments'] as string;
  });
  assert.equal(pieces.length, 4);
  assert.equal(pieces.join(''), toolCall.arguments);
  assert.equal(choice(chunks.at(-1) as Json)['finish_reason'], 'tool_calls');
});

test('Anthropic tool calls: tool_use block and input_json_delta pieces', async () => {
  const toolCall = { name: 'get_weather', arguments: '{"city":"Paris"}' };
  fake.setDefault({ toolCall, chunks: 3 });
  const body = (await (await post('/v1/messages', messages())).json()) as Json;
  assert.equal(body['stop_reason'], 'tool_use');
  const content = body['content'] as Json[];
  assert.equal(content.length, 1);
  const block = content[0] as Json;
  assert.equal(block['type'], 'tool_use');
  assert.match(block['id'] as string, /^toolu_\w+$/);
  assert.equal(block['name'], 'get_weather');
  assert.deepEqual(block['input'], { city: 'Paris' });

  const evs = await events(await post('/v1/messages', messages({ stream: true })));
  const data = evs.map(json);
  const start = data.find((d) => d['type'] === 'content_block_start') as Json;
  const cb = start['content_block'] as Json;
  assert.equal(cb['type'], 'tool_use');
  assert.equal(cb['name'], 'get_weather');
  assert.deepEqual(cb['input'], {});
  const partial = data
    .filter((d) => d['type'] === 'content_block_delta')
    .map((d) => {
      const delta = d['delta'] as Json;
      assert.equal(delta['type'], 'input_json_delta');
      return delta['partial_json'] as string;
    });
  assert.equal(partial.length, 3);
  assert.equal(partial.join(''), toolCall.arguments);
  const md = data.find((d) => d['type'] === 'message_delta') as Json;
  assert.equal((md['delta'] as Json)['stop_reason'], 'tool_use');
});

test('text followed by a tool call in both formats', async () => {
  fake.setDefault({ text: 'Let me check.', toolCall: { name: 'f', arguments: '{"a":1}' }, chunks: 2 });
  const a = await events(await post('/v1/messages', messages({ stream: true })));
  const data = a.map(json);
  const starts = data.filter((d) => d['type'] === 'content_block_start').map((d) => [d['index'], (d['content_block'] as Json)['type']]);
  assert.deepEqual(starts, [
    [0, 'text'],
    [1, 'tool_use'],
  ]);
  const stops = data.filter((d) => d['type'] === 'content_block_stop').map((d) => d['index']);
  assert.deepEqual(stops, [0, 1]);
  const o = (await (await post('/v1/chat/completions', chat())).json()) as Json;
  const m = choice(o)['message'] as Json;
  assert.equal(m['content'], 'Let me check.');
  assert.equal((m['tool_calls'] as Json[]).length, 1);
});

test('scripted errors use each provider real error shape and extra headers', async () => {
  fake.setDefault({ status: 429, headers: { 'retry-after': '7' } });
  let res = await post('/v1/chat/completions', chat({ stream: true }));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '7');
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const oe = (await res.json()) as Json;
  assert.deepEqual(Object.keys(oe), ['error']);
  const err = oe['error'] as Json;
  assert.deepEqual(Object.keys(err).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(err['param'], null);
  assert.equal(err['code'], 'rate_limit_exceeded');

  fake.setDefault({ status: 529, errorType: 'overloaded_error', errorMessage: 'Overloaded' });
  res = await post('/v1/messages', messages());
  assert.equal(res.status, 529);
  assert.deepEqual(await res.json(), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });

  fake.setDefault({ status: 500 });
  res = await post('/v1/messages', messages());
  assert.deepEqual(((await res.json()) as Json)['error'], {
    type: 'api_error',
    message: 'The server had an error while processing your request. Sorry about that!',
  });
  res = await post('/v1/chat/completions', chat());
  assert.equal(((await res.json()) as { error: Json }).error['type'], 'server_error');
});

test('unknown paths answer 404 and malformed JSON 400, in the matching shape', async () => {
  let res = await post('/v1/nope', {});
  assert.equal(res.status, 404);
  const oe = ((await res.json()) as { error: Json }).error;
  assert.equal(oe['type'], 'invalid_request_error');
  assert.equal(oe['message'], 'Invalid URL (POST /v1/nope)');

  res = await post('/v1/messages/nope', {});
  assert.equal(res.status, 404);
  assert.deepEqual(((await res.json()) as Json)['type'], 'error');

  // The batch APIs validate like the real ones.
  res = await post('/v1/messages/batches', {});
  assert.equal(res.status, 400);
  assert.equal((((await res.json()) as Json)['error'] as Json)['type'], 'invalid_request_error');
  res = await post('/v1/batches', { input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' });
  assert.equal(res.status, 400);
  res = await fetch(fake.url + '/v1/batches/batch_nope');
  assert.equal(res.status, 404);

  res = await fetch(fake.url + '/v1/other', { headers: { 'anthropic-version': '2023-06-01' } });
  assert.equal(res.status, 404);
  assert.equal((((await res.json()) as Json)['error'] as Json)['type'], 'not_found_error');

  res = await post('/v1/chat/completions', '{"model": ');
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as { error: Json }).error['type'], 'invalid_request_error');

  res = await post('/v1/messages', 'not json at all');
  assert.equal(res.status, 400);
  const ae = (await res.json()) as Json;
  assert.equal(ae['type'], 'error');
  assert.equal((ae['error'] as Json)['type'], 'invalid_request_error');
});

test('resetAfterChunks destroys the socket mid-stream after that many content deltas', async () => {
  fake.enqueue({ resetAfterChunks: 2, text: 'aa bb cc dd', chunks: 4 });
  const res = await post('/v1/chat/completions', chat({ stream: true }));
  assert.equal(res.status, 200);
  const { text, error } = await readPartial(res);
  assert.ok(error !== undefined, 'the body must fail');
  const chunks = parseSse(text).map(json);
  assert.equal(chunks.length, 3); // role chunk + 2 content deltas
  assert.equal(choice(chunks[2] as Json)['finish_reason'], null);

  fake.enqueue({ resetAfterChunks: 1, chunkIntervalMs: 5 });
  const a = await readPartial(await post('/v1/messages', messages({ stream: true })));
  assert.ok(a.error !== undefined);
  assert.deepEqual(
    parseSse(a.text).map((e) => e.event),
    ['message_start', 'content_block_start', 'ping', 'content_block_delta'],
  );

  // JSON: headers, then the socket dies before the body.
  fake.enqueue({ resetAfterChunks: 0 });
  const j = await post('/v1/chat/completions', chat());
  assert.equal(j.status, 200);
  await assert.rejects(j.text());

  // Deliberate resets are not client aborts; the server keeps serving.
  assert.equal(fake.aborted, 0);
  assert.equal((await post('/v1/chat/completions', chat())).status, 200);
});

test('counts clients that go away mid-stream and keeps serving', async () => {
  fake.setDefault({ chunkIntervalMs: 30, chunks: 10 });
  const res = await post('/v1/chat/completions', chat({ stream: true }));
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  await reader.cancel();
  // Abort during the latency wait too.
  fake.enqueue({ latencyMs: 200 });
  const ac2 = new AbortController();
  const pending = fetch(fake.url + '/v1/chat/completions', {
    method: 'POST',
    body: JSON.stringify(chat()),
    signal: ac2.signal,
  });
  await sleep(30);
  ac2.abort();
  await assert.rejects(pending);
  for (let i = 0; i < 50 && fake.aborted < 2; i++) await sleep(10);
  assert.equal(fake.aborted, 2);
  fake.reset();
  assert.equal(fake.aborted, 0);
  assert.equal((await post('/v1/chat/completions', chat())).status, 200);
});

test('scripting precedence: queue, then model, then default; reset clears', async () => {
  const reply = async (model: string): Promise<unknown> => {
    const body = (await (await post('/v1/chat/completions', chat({ model }))).json()) as Json;
    return (choice(body)['message'] as Json)['content'];
  };
  fake.setDefault({ text: 'default' });
  fake.forModel('m1', { text: 'model m1' });
  fake.enqueue({ text: 'q1' }, { text: 'q2' });
  assert.equal(await reply('m1'), 'q1');
  assert.equal(await reply('m2'), 'q2');
  assert.equal(await reply('m1'), 'model m1');
  assert.equal(await reply('m2'), 'default');
  // forModel applies to Anthropic requests too.
  const a = (await (await post('/v1/messages', messages({ model: 'm1' }))).json()) as Json;
  assert.deepEqual(a['content'], [{ type: 'text', text: 'model m1' }]);
  // A later set replaces the earlier one; the script is copied when set.
  const s = { text: 'v1' };
  fake.setDefault(s);
  s.text = 'mutated';
  assert.equal(await reply('m2'), 'v1');
  fake.reset();
  assert.equal(await reply('m1'), DEFAULT_REPLY_TEXT);
  assert.equal(fake.requests.length, 1);
});

test('embeddings: one deterministic unit vector per input, float or base64', async () => {
  const one = (await (await post('/v1/embeddings', { model: 'text-embedding-3-small', input: 'hello world' })).json()) as Json;
  assert.equal(one['object'], 'list');
  assert.equal(one['model'], 'text-embedding-3-small');
  const d = one['data'] as Json[];
  assert.equal(d.length, 1);
  assert.equal((d[0] as Json)['object'], 'embedding');
  assert.equal((d[0] as Json)['index'], 0);
  const v = (d[0] as Json)['embedding'] as number[];
  assert.equal(FAKE_EMBEDDING_DIMS, 256);
  assert.equal(v.length, FAKE_EMBEDDING_DIMS);
  assert.ok(v.every((x) => typeof x === 'number' && Number.isFinite(x) && Math.fround(x) === x));
  assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5);
  assert.deepEqual(v, fakeEmbedding('hello world'));
  assert.deepEqual(one['usage'], { prompt_tokens: 3, total_tokens: 3 });

  const many = (await (await post('/v1/embeddings', { model: 'e', input: ['a', 'hello world', 'b'] })).json()) as Json;
  const md = many['data'] as Json[];
  assert.deepEqual(
    md.map((x) => x['index']),
    [0, 1, 2],
  );
  assert.deepEqual((md[1] as Json)['embedding'], v);
  assert.notDeepEqual((md[0] as Json)['embedding'], v);
  assert.notDeepEqual((md[2] as Json)['embedding'], v);
  assert.deepEqual((md[0] as Json)['embedding'], fakeEmbedding('a'));
  assert.deepEqual((md[2] as Json)['embedding'], fakeEmbedding('b'));

  const b64 = (await (await post('/v1/embeddings', { model: 'e', input: 'hello world', encoding_format: 'base64' })).json()) as Json;
  const s = ((b64['data'] as Json[])[0] as Json)['embedding'] as string;
  const buf = Buffer.from(s, 'base64');
  assert.equal(buf.byteLength, FAKE_EMBEDDING_DIMS * 4);
  const floats = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
  assert.deepEqual(floats, v);

  const tokens = (await (await post('/v1/embeddings', { model: 'e', input: [[1, 2, 3], [3, 2, 1], [4, 5]] })).json()) as Json;
  const td = (tokens['data'] as Json[]).map((x) => x['embedding'] as number[]);
  assert.equal(td.length, 3);
  assert.deepEqual(td[0], fakeEmbedding([1, 2, 3]));
  assert.ok(cosine(td[0] ?? [], td[1] ?? []) > 0.999, 'a bag of tokens: order does not matter');
  assert.ok(cosine(td[0] ?? [], td[2] ?? []) < 0.3);
  const flat = (await (await post('/v1/embeddings', { model: 'e', input: [1, 2, 3] })).json()) as Json;
  assert.deepEqual(((flat['data'] as Json[])[0] as Json)['embedding'], td[0]);

  const bad = await post('/v1/embeddings', { model: 'e' });
  assert.equal(bad.status, 400);
});

function cosine(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

const sim = (a: string, b: string): number => cosine(fakeEmbedding(a), fakeEmbedding(b));

test('fakeEmbedding: paraphrases are close, different questions are far', () => {
  // Same content words, different phrasing, case, punctuation, inflection and stop words.
  assert.ok(sim('What is the capital of France?', 'capital of France please') >= 0.9);
  assert.ok(sim('What is the capital of France?', "Tell me: what's France's capital?") >= 0.9);
  assert.ok(sim('How do I reset my password?', 'Please tell me how to reset the password') >= 0.9);
  assert.ok(sim('Explain how vaccines work', 'how does a vaccine work') >= 0.9, 'plural and singular stem alike');
  assert.ok(sim('running shoes reviews', 'Review of shoes for run') >= 0.9, "'ing' and plural 's' stripped");
  assert.ok(sim('I walked to the stores', 'walking store') >= 0.9, "'ed' stripped");
  assert.ok(sim('boxes', 'box') >= 0.9 && sim('cities', 'city') >= 0.9);
  // One extra content word out of three: still similar, but not a paraphrase.
  const partial = sim('capital of France', 'capital of France population');
  assert.ok(partial > 0.6 && partial < 0.9, `partial overlap: ${partial}`);
  // Different questions.
  const far: [string, string][] = [
    ['What is the capital of France?', 'How do I reset my password?'],
    ['Explain how vaccines work', 'Write a haiku about autumn leaves'],
    ['How do I sort a list in Python?', 'What is the boiling point of water?'],
    ['Summarise this contract', 'Translate this sentence to Spanish'],
  ];
  for (const [a, b] of far) assert.ok(sim(a, b) <= 0.3, `${a} / ${b}: ${sim(a, b)}`);
  // France vs Germany share 'capital' only: half similar, well below a semantic-cache threshold.
  const sameShape = sim('What is the capital of France?', 'What is the capital of Germany?');
  assert.ok(sameShape > 0.3 && sameShape < 0.8, `France / Germany: ${sameShape}`);
  // Every vector is a unit vector; no content words → the same fixed vector.
  for (const t of ['What is the capital of France?', 'x', '', 'what is it?']) assert.ok(Math.abs(Math.hypot(...fakeEmbedding(t)) - 1) < 1e-5, t);
  assert.deepEqual(fakeEmbedding(''), fakeEmbedding('What is it, please?'));
  assert.ok(sim('', 'capital of France') < 0.3);
  // Deterministic.
  assert.deepEqual(fakeEmbedding('capital of France'), fakeEmbedding('capital of France'));
});

test('GET /v1/models lists models (OpenAI shape; Anthropic shape for Anthropic clients)', async () => {
  const o = (await (await fetch(fake.url + '/v1/models')).json()) as Json;
  assert.equal(o['object'], 'list');
  const ids = (o['data'] as Json[]).map((m) => {
    assert.equal(m['object'], 'model');
    return m['id'];
  });
  assert.deepEqual(ids, FAKE_OPENAI_MODELS);
  const a = (await (await fetch(fake.url + '/v1/models', { headers: { 'anthropic-version': '2023-06-01' } })).json()) as Json;
  assert.equal(a['has_more'], false);
  assert.ok((a['data'] as Json[]).every((m) => m['type'] === 'model'));
});

test('garbage answers: non-JSON JSON, HTML, and a non-JSON SSE data line', async () => {
  fake.enqueue({ garbage: 'json' }, { garbage: 'html' }, { garbage: 'sse' }, { garbage: 'sse' });
  let res = await post('/v1/chat/completions', chat());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  await assert.rejects(res.json());
  res = await post('/v1/messages', messages());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  res = await post('/v1/chat/completions', chat({ stream: true }));
  let evs = await events(res);
  assert.doesNotThrow(() => json(evs[0] as SseEvent));
  assert.throws(() => json(evs.at(-1) as SseEvent));
  res = await post('/v1/messages', messages({ stream: true }));
  evs = await events(res);
  assert.equal(evs[0]?.event, 'message_start');
  assert.throws(() => json(evs.at(-1) as SseEvent));
});

test('midStreamError sends the provider in-stream error event after the first delta', async () => {
  fake.setDefault({ midStreamError: true, chunkIntervalMs: 2 });
  const o = await events(await post('/v1/chat/completions', chat({ stream: true })));
  const od = o.map(json);
  assert.equal(od.length, 3);
  const firstDelta = (choice(od[1] as Json)['delta'] as Json)['content'] as string;
  assert.ok(firstDelta.length > 0 && DEFAULT_REPLY_TEXT.startsWith(firstDelta));
  const err = (od[2] as Json)['error'] as Json;
  assert.equal(err['type'], 'server_error');
  assert.ok(!o.some((e) => e.data === '[DONE]'));

  fake.setDefault({ midStreamError: true, errorType: 'api_error', errorMessage: 'boom' });
  const a = await events(await post('/v1/messages', messages({ stream: true })));
  assert.deepEqual(
    a.map((e) => e.event),
    ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'error'],
  );
  assert.deepEqual(json(a.at(-1) as SseEvent), { type: 'error', error: { type: 'api_error', message: 'boom' } });
  assert.equal(fake.aborted, 0);
});

test('omitUsage streams and answers without any usage', async () => {
  fake.setDefault({ omitUsage: true });
  const o = await events(await post('/v1/chat/completions', chat({ stream: true, stream_options: { include_usage: true } })));
  assert.ok(o.every((e) => !e.data.includes('usage')));
  const a = await events(await post('/v1/messages', messages({ stream: true })));
  assert.ok(a.every((e) => !e.data.includes('usage')));
  const j = (await (await post('/v1/messages', messages())).json()) as Json;
  assert.ok(!('usage' in j));
});

test('stopReason overrides the finish reason in both formats', async () => {
  fake.setDefault({ stopReason: 'length' });
  const o = (await (await post('/v1/chat/completions', chat())).json()) as Json;
  assert.equal(choice(o)['finish_reason'], 'length');
  fake.setDefault({ stopReason: 'max_tokens' });
  const a = await events(await post('/v1/messages', messages({ stream: true })));
  const md = a.map(json).find((d) => d['type'] === 'message_delta') as Json;
  assert.equal((md['delta'] as Json)['stop_reason'], 'max_tokens');
});

test('records request method, path, headers and body', async () => {
  await post('/v1/messages?beta=true', messages(), { 'x-api-key': 'sk-ant-provider', 'anthropic-version': '2023-06-01' });
  await post('/v1/chat/completions', chat(), { authorization: 'Bearer sk-provider' });
  assert.equal(fake.requests.length, 2);
  const [a, o] = fake.requests;
  assert.equal(a?.method, 'POST');
  assert.equal(a?.path, '/v1/messages');
  assert.equal(a?.headers['x-api-key'], 'sk-ant-provider');
  assert.deepEqual(JSON.parse(a?.body ?? ''), messages());
  assert.equal(o?.headers['authorization'], 'Bearer sk-provider');
  assert.equal(o?.headers['x-api-key'], undefined);
});

test('latency delays the headers and chunkIntervalMs spaces the chunks', async () => {
  fake.setDefault({ latencyMs: 60, chunkIntervalMs: 20, chunks: 3 });
  const t0 = performance.now();
  const res = await post('/v1/chat/completions', chat({ stream: true }));
  const t1 = performance.now();
  assert.ok(t1 - t0 >= 55, `headers after ${t1 - t0}ms`);
  await res.text();
  assert.ok(performance.now() - t1 >= 50);
});

test('recording can be disabled; the record keeps the last 1000', async () => {
  const quiet = await startFakeProvider({ record: false });
  try {
    const res = await fetch(quiet.url + '/v1/chat/completions', { method: 'POST', body: JSON.stringify(chat()) });
    assert.equal(res.status, 200);
    await res.text();
    assert.equal(quiet.requests.length, 0);
  } finally {
    await quiet.close();
  }
  const n = 1005;
  for (let i = 0; i < n; i += 67) {
    await Promise.all(
      Array.from({ length: Math.min(67, n - i) }, (_, k) =>
        fetch(fake.url + '/v1/models?i=' + (i + k)).then((r) => r.arrayBuffer()),
      ),
    );
  }
  assert.equal(fake.requests.length, 1000);
});

test('close() ends open streams and is idempotent', async () => {
  const f = await startFakeProvider();
  f.setDefault({ chunkIntervalMs: 1000, chunks: 5 });
  const res = await fetch(f.url + '/v1/messages', { method: 'POST', body: JSON.stringify(messages({ stream: true })) });
  const body = readPartial(res);
  await Promise.all([f.close(), f.close()]);
  const { error } = await body;
  assert.ok(error !== undefined);
});
