import { test } from 'node:test';
import { bpeCount } from './bpe.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { countTextTokens, estimateRequest, heuristicTokens } from './index.js';

test('encodings are not loaded until the first estimate for an OpenAI model', () => {
  const url = new URL('./index.js', import.meta.url).href;
  const script = `
    import { createRequire } from 'node:module';
    const req = createRequire(import.meta.url);
    const loaded = () => Object.keys(req.cache).filter((k) => k.includes('gpt-tokenizer')).map((k) => k.replace(/.*gpt-tokenizer/, ''));
    const m = await import(${JSON.stringify(url)});
    const out = { afterImport: loaded() };
    m.estimateRequest('anthropic-messages', { messages: [{ role: 'user', content: 'hi' }] }, 'claude-sonnet-4-5');
    out.afterClaude = loaded();
    m.countTextTokens('hi', 'gpt-4o');
    out.afterGpt4o = loaded();
    console.log(JSON.stringify(out));
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Record<string, string[]>;
  assert.deepEqual(out['afterImport'], []);
  assert.deepEqual(out['afterClaude'], []);
  const after = out['afterGpt4o'] ?? [];
  assert.ok(after.some((p) => p.includes('bpeRanks/o200k_base')), JSON.stringify(after));
  assert.ok(!after.some((p) => p.includes('bpeRanks/cl100k_base')), JSON.stringify(after));
});

test('exact counts for OpenAI models', () => {
  assert.deepEqual(countTextTokens('hello world', 'gpt-4o'), { tokens: 2, method: 'tokenizer' });
  assert.deepEqual(countTextTokens('hello world', 'gpt-4'), { tokens: 2, method: 'tokenizer' });
  assert.equal(countTextTokens('', 'gpt-4o').tokens, 0);
  // o200k is much more efficient than cl100k on Cyrillic: proves the model → encoding mapping.
  const ru = 'Вчера вечером в центре города прошёл большой концерт.';
  const o = countTextTokens(ru, 'gpt-4o-2024-08-06').tokens;
  const cl = countTextTokens(ru, 'gpt-3.5-turbo').tokens;
  assert.ok(o < cl, `o200k ${o} vs cl100k ${cl}`);
  for (const m of ['gpt-4.1-mini', 'gpt-5', 'o3-mini', 'o1', 'o4-mini', 'chatgpt-4o-latest', 'openai/gpt-4o', 'ft:gpt-4o-mini:acme::x1', 'GPT-4o']) {
    assert.equal(countTextTokens(ru, m).tokens, o, m);
  }
  for (const m of ['gpt-4-turbo', 'gpt-4-0613', 'text-embedding-3-small', 'text-embedding-ada-002']) {
    assert.equal(countTextTokens(ru, m).tokens, cl, m);
  }
  // Special-token text is ordinary text, not an error.
  const special = countTextTokens('a <|endoftext|> b <|im_start|>', 'gpt-4o');
  assert.equal(special.method, 'tokenizer');
  assert.ok(special.tokens > 4);
});

test('other models use the heuristic', () => {
  for (const m of ['claude-sonnet-4-5', 'llama-3.1-70b', '', 'o-my-model']) {
    const r = countTextTokens('hello world', m);
    assert.equal(r.method, 'heuristic', m);
    assert.equal(r.tokens, heuristicTokens('hello world'));
    assert.ok(r.tokens >= 2);
  }
});

test('OpenAI chat: per-message overhead, names, priming, tools, images', () => {
  const t = (s: string): number => countTextTokens(s, 'gpt-4o').tokens;
  assert.equal(t('system'), 1);
  assert.equal(t('user'), 1);
  const body = {
    model: 'gpt-4o',
    messages: [
      { role: 'system', content: 'hello world' },
      { role: 'user', name: 'bob', content: 'hello world' },
    ],
  };
  const base = estimateRequest('openai-chat', body, 'gpt-4o');
  // 3 priming + 2 × (3 per message + role + content) + name + 1.
  assert.equal(base.promptTokens, 3 + (3 + 1 + 2) + (3 + 1 + 2 + t('bob') + 1));
  assert.equal(base.method, 'tokenizer');
  assert.equal(base.maxOutputTokens, undefined);

  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const withTools = estimateRequest('openai-chat', { ...body, tools }, 'gpt-4o');
  assert.equal(withTools.promptTokens, base.promptTokens + t(JSON.stringify(tools)) + 12);

  const image = (detail?: string): Record<string, unknown> => ({
    messages: [{ role: 'user', content: [{ type: 'text', text: 'hello world' }, { type: 'image_url', image_url: { url: 'https://x/y.png', ...(detail ? { detail } : {}) } }] }],
  });
  const textOnly = 3 + 3 + 1 + 2;
  assert.equal(estimateRequest('openai-chat', image(), 'gpt-4o').promptTokens, textOnly + 765);
  assert.equal(estimateRequest('openai-chat', image('low'), 'gpt-4o').promptTokens, textOnly + 85);
  assert.equal(estimateRequest('openai-chat', image('low'), 'gpt-4o-mini').promptTokens, textOnly + 2833);
  assert.equal(estimateRequest('openai-chat', image('high'), 'gpt-4.1-nano').promptTokens, textOnly + 3800);

  const calls = {
    messages: [
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'ok' },
    ],
  };
  const callsTokens = estimateRequest('openai-chat', calls, 'gpt-4o').promptTokens;
  const m0 = calls.messages[0];
  assert.ok(m0);
  assert.equal(callsTokens, 3 + (3 + t('assistant') + t(JSON.stringify(m0.tool_calls))) + (3 + t('tool') + t('c1') + t('ok')));
});

test('max output tokens', () => {
  assert.equal(estimateRequest('openai-chat', { max_tokens: 100 }, 'gpt-4o').maxOutputTokens, 100);
  assert.equal(estimateRequest('openai-chat', { max_tokens: 100, max_completion_tokens: 50 }, 'gpt-4o').maxOutputTokens, 50);
  assert.equal(estimateRequest('openai-chat', { max_tokens: 100, max_completion_tokens: '50' }, 'gpt-4o').maxOutputTokens, 100);
  assert.equal(estimateRequest('openai-chat', { max_tokens: -1 }, 'gpt-4o').maxOutputTokens, undefined);
  assert.equal(estimateRequest('anthropic-messages', { max_tokens: 1024 }, 'claude-opus-4-1').maxOutputTokens, 1024);
  assert.equal(estimateRequest('anthropic-messages', { max_completion_tokens: 1024 }, 'claude-opus-4-1').maxOutputTokens, undefined);
  assert.equal(estimateRequest('openai-embeddings', { input: 'x', max_tokens: 5 }, 'text-embedding-3-small').maxOutputTokens, undefined);
});

test('Anthropic messages: system, blocks, tools, images', () => {
  const h = heuristicTokens;
  const body = {
    system: 'You are terse.',
    messages: [
      { role: 'user', content: 'hello world' },
      { role: 'assistant', content: [{ type: 'text', text: 'hi' }, { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'done' }] }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] },
    ],
  };
  const r = estimateRequest('anthropic-messages', body, 'claude-sonnet-4-5');
  assert.equal(r.method, 'heuristic');
  const expected =
    8 + h('You are terse.') + 3 * 5 + h('hello world') + (3 + h('hi')) + (3 + h('f') + h('{"a":1}')) + (3 + h('t1') + 3 + h('done')) + (3 + 1600);
  assert.equal(r.promptTokens, expected);
  const tools = [{ name: 'f', description: 'does f', input_schema: { type: 'object' } }];
  assert.equal(estimateRequest('anthropic-messages', { ...body, tools }, 'claude-sonnet-4-5').promptTokens, expected + h(JSON.stringify(tools)) + 350);
  // Anthropic-shaped body for an OpenAI model: same structure, exact counting.
  assert.equal(estimateRequest('anthropic-messages', body, 'gpt-4o').method, 'tokenizer');
  // A PDF: 3000 tokens per page found.
  const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] >>\n2 0 obj << /Type /Page >>\n3 0 obj << /Type/Page >>\n').toString('base64');
  const doc = estimateRequest('anthropic-messages', { messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf } }] }] }, 'claude-sonnet-4-5');
  assert.equal(doc.promptTokens, 8 + 5 + 3 + 6000);
});

test('OpenAI embeddings: strings and token arrays, no overhead', () => {
  const m = 'text-embedding-3-small';
  assert.deepEqual(estimateRequest('openai-embeddings', { input: 'hello world' }, m), { promptTokens: 2, maxOutputTokens: undefined, method: 'tokenizer' });
  assert.equal(estimateRequest('openai-embeddings', { input: ['hello world', 'hello world'] }, m).promptTokens, 4);
  assert.equal(estimateRequest('openai-embeddings', { input: [1, 2, 3] }, m).promptTokens, 3);
  assert.equal(estimateRequest('openai-embeddings', { input: [[1, 2], [3, 4, 5]] }, m).promptTokens, 5);
  assert.equal(estimateRequest('openai-embeddings', {}, m).promptTokens, 0);
});

test('hostile input never throws', () => {
  const nested: Record<string, unknown> = {};
  let cur = nested;
  for (let i = 0; i < 20_000; i++) {
    const next: Record<string, unknown> = {};
    cur['a'] = next;
    cur = next;
  }
  const cyclic: Record<string, unknown> = { role: 'user' };
  cyclic['self'] = cyclic;
  const bodies: unknown[] = [
    null,
    undefined,
    42,
    'str',
    [],
    { messages: 'nope' },
    { messages: [null, 1, 'x', [], { role: 5, content: { weird: true } }, { content: [null, 3, { type: 'image_url' }, { type: 'input_audio', input_audio: 7 }, { type: 'file', file: { file_data: 'data:application/pdf;base64,!!!' } }] }] },
    { messages: [cyclic], tools: [cyclic] },
    { messages: [{ role: 'user', content: [nested] }], system: nested, input: nested },
    { system: [{ type: 'document', source: 5 }, { type: 'tool_result', content: { x: 1 } }], messages: [{ content: [{ type: 'document', source: { type: 'content', content: [{ type: 'text', text: 'a' }] } }] }] },
    { input: [null, {}, 'x', [null]], tools: 'x', response_format: { type: 'json_schema', json_schema: cyclic } },
    { max_tokens: Infinity, max_completion_tokens: NaN, messages: [{ content: '\ud800\udfff\ud800' }] },
  ];
  for (const api of ['openai-chat', 'anthropic-messages', 'openai-embeddings', 'bogus'] as const) {
    for (const model of ['gpt-4o', 'gpt-4', 'claude-3-haiku', undefined, 7]) {
      for (const body of bodies) {
        const r = estimateRequest(api as 'openai-chat', body as Record<string, unknown>, model as string);
        assert.ok(Number.isInteger(r.promptTokens) && r.promptTokens >= 0, `${api} ${String(model)}`);
      }
    }
  }
  assert.equal(countTextTokens(undefined as unknown as string, 'gpt-4o').tokens, 0);
  assert.equal(countTextTokens({} as unknown as string, 'claude').tokens, 0);
});

test('a 100 KB prompt: the heuristic stays above the exact count (timing printed, not asserted: speed is the benchmark\'s job)', () => {
  const para = 'The sidecar reserves estimated prompt tokens plus max_tokens before sending, then settles with real usage. ';
  const code = 'export function f(xs: number[]): number {\n  return xs.reduce((a, b) => a + b, 0); // sum\n}\n';
  let words = '';
  for (let i = 0; words.length < 40_000; i++) words += `w${((i * 2654435761) % 1000003).toString(36)} `;
  const text = (para.repeat(300) + code.repeat(300) + words).slice(0, 100_000);
  const timeIt = (model: string): { ms: number; tokens: number } => {
    countTextTokens(text, model); // warm-up (and first-use encoding load)
    const runs = 5;
    const t0 = performance.now();
    let tokens = 0;
    for (let i = 0; i < runs; i++) tokens = countTextTokens(`${i}${text}`, model).tokens;
    return { ms: (performance.now() - t0) / runs, tokens };
  };
  const heuristic = timeIt('claude-sonnet-4-5');
  const exact = timeIt('gpt-4o');
  console.log(`100 KB: heuristic ${heuristic.ms.toFixed(2)} ms (${heuristic.tokens} tokens), o200k ${exact.ms.toFixed(2)} ms (${exact.tokens} tokens)`);
  assert.ok(exact.tokens > 10_000, `o200k counted ${exact.tokens}`);
  assert.ok(heuristic.tokens >= exact.tokens * 0.95, `heuristic ${heuristic.tokens} vs exact ${exact.tokens}`);
});

test('memoised BPE counts equal fresh counts, across generation turnover', () => {
  const text = 'You are a careful assistant. Answer in French, briefly. '.repeat(20);
  const first = bpeCount(text, 'o200k_base');
  assert.equal(bpeCount(text, 'o200k_base'), first);
  // Push two generations' worth of other texts through the memo (4 MiB each).
  const filler = 'x'.repeat(60 * 1024);
  for (let i = 0; i < 150; i++) bpeCount(`${i} ${filler}`, 'o200k_base');
  assert.equal(bpeCount(text, 'o200k_base'), first);
  assert.equal(bpeCount(text, 'cl100k_base') > 0, true);
  assert.notEqual(bpeCount('hello world', 'o200k_base'), 0);
});
