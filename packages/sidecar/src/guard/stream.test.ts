import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseData } from '@sluice/providers';
import { compileGuardrails, Placeholders } from './index.js';
import { StreamGuard } from './stream.js';

const NO_CLASSIFIER = { classifierBackend: '', classifierModel: '', classifierFormat: '', classifierCategories: [], classifierThresholdMilli: 0, classifierTimeoutMs: 0, classifierFailClosed: false, classifierMaxChars: 0, classifierStreamCheckChars: 0 };

const guards = compileGuardrails([{ id: 'ns/pii', direction: 'output', action: 'redact', detectors: [{ kind: 'email', values: [], name: '' }, { kind: 'ssn', values: [], name: '' }], routes: [], ...NO_CLASSIFIER }]);
const chunk = (content: string): string => sseData({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }] });
const finish = sseData({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] });
const text = (sse: string): string =>
  sse
    .split('\n\n')
    .filter((b) => b.startsWith('data: {'))
    .map((b) => (JSON.parse(b.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
    .join('');

test('the look-behind window: text leaves once it is older than the longest match; nothing is lost; the hold-back is bounded', () => {
  const g = new StreamGuard(guards, 'openai', new Placeholders());
  const window = Math.max(...guards.map((x) => x.scanner.maxMatchChars));
  const answer = `${'lorem ipsum dolor sit amet '.repeat(200)}mail me at a.person@example.com, SSN 123-45-6789. ${'consectetur adipiscing '.repeat(200)}`;
  let out = '';
  let maxHeld = 0;
  let worstMs = 0;
  for (let i = 0; i < answer.length; i += 7) {
    const t0 = performance.now();
    out += g.push(chunk(answer.slice(i, i + 7)));
    worstMs = Math.max(worstMs, performance.now() - t0);
    maxHeld = Math.max(maxHeld, Math.min(i + 7, answer.length) - text(out).length);
  }
  out += g.push(finish);
  const result = text(out);
  assert.equal(result, answer.replace('a.person@example.com', '[EMAIL_1]').replace('123-45-6789', '[SSN_1]'));
  assert.ok(maxHeld <= window + 7 + 40, `held back at most the window (+ one chunk, + a match in progress): ${maxHeld} vs ${window}`);
  console.log(`look-behind window ${window} chars; most text held back ${maxHeld} chars; slowest chunk ${worstMs.toFixed(3)} ms over ${Math.ceil(answer.length / 7)} chunks`);
});

const compile = (action: string, kinds: string[]) => compileGuardrails([{ id: `ns/${action}`, direction: 'output', action, detectors: kinds.map((kind) => ({ kind, values: [], name: '' })), routes: [], ...NO_CLASSIFIER }]);

test('log guardrails: every chunk goes on at once, unchanged; a match split across chunks is counted once, at the end', () => {
  const g = new StreamGuard(compile('log', ['ssn', 'email']), 'openai', new Placeholders());
  const answer = `${'filler text '.repeat(100)}SSN 123-45-6789 and ${'more words '.repeat(100)}mail x.y@example.com end`;
  for (let i = 0; i < answer.length; i += 5) {
    const c = chunk(answer.slice(i, i + 5));
    assert.equal(g.push(c), c, 'passed through as it came');
  }
  g.push(finish);
  assert.deepEqual(
    [...g.findings.values()].map((f) => `${f.detector}:${f.count}`),
    ['ssn:1', 'email:1'],
  );
});

test('holdTail: the end of the answer waits for takeTail(); the collected answer is what was sent', () => {
  const g = new StreamGuard(compile('redact', ['email']), 'openai', new Placeholders(), { collectChars: 1000, holdTail: true });
  let out = g.push(chunk('write to a@example.com now'));
  out += g.push(finish);
  out += g.push('data: [DONE]\n\n');
  assert.equal(text(out), 'write to [EMAIL_1] now', 'the text is flushed before the end');
  assert.doesNotMatch(out, /finish_reason":"stop|\[DONE\]/u, 'the end is held');
  assert.equal(g.answer, 'write to [EMAIL_1] now');
  const rest = g.takeTail();
  assert.match(rest, /finish_reason":"stop/u);
  assert.match(rest, /data: \[DONE\]/u);
  assert.equal(g.takeTail(), '');
});

test('tool-call arguments are a channel of their own: held, redacted, the call named once (Anthropic input_json_delta too)', () => {
  const g = new StreamGuard(compile('redact', ['email']), 'openai', new Placeholders());
  const call = (args: string, first = false) =>
    sseData({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { tool_calls: [first ? { index: 0, id: 'call_1', type: 'function', function: { name: 'send', arguments: args } } : { index: 0, function: { arguments: args } }] }, finish_reason: null }] });
  const args = '{"to":"ops@example.com","n":1}';
  let out = g.push(call(args.slice(0, 3), true));
  assert.match(out, /"name":"send"/u, 'the naming chunk goes at once, its text held');
  for (let i = 3; i < args.length; i += 4) out += g.push(call(args.slice(i, i + 4)));
  out += g.push(finish);
  let streamed = '';
  for (const b of out.split('\n\n')) {
    if (!b.startsWith('data: {')) continue;
    const d = JSON.parse(b.slice(6)) as { choices: Array<{ delta: { tool_calls?: Array<{ function: { arguments?: string } }> } }> };
    streamed += d.choices[0]?.delta.tool_calls?.[0]?.function.arguments ?? '';
  }
  assert.deepEqual(JSON.parse(streamed), { to: '[EMAIL_1]', n: 1 });

  const a = new StreamGuard(compile('block', ['email']), 'anthropic', new Placeholders());
  const delta = (partial: string) => `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: partial } })}\n\n`;
  a.push(delta('{"to":"ops@exa'));
  assert.throws(() => a.push(delta('mple.com"}') + `event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n`), /blocked the answer: email/u);
});

test('one OpenAI chunk with text and a tool call: each channel is held and flushed on its own', () => {
  const g = new StreamGuard(compile('redact', ['email']), 'openai', new Placeholders());
  const both = (content: string, args: string) => sseData({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content, tool_calls: [{ index: 2, function: { arguments: args } }] }, finish_reason: null }] });
  let out = g.push(both('mail a@exa', '{"to":"b@exa'));
  out += g.push(both('mple.com', 'mple.com"}'));
  out += g.push(finish);
  let content = '';
  let args = '';
  for (const b of out.split('\n\n')) {
    if (!b.startsWith('data: {')) continue;
    const d = (JSON.parse(b.slice(6)) as { choices: Array<{ delta: { content?: string; tool_calls?: Array<{ index: number; function: { arguments: string } }> } }> }).choices[0]?.delta;
    content += d?.content ?? '';
    for (const tc of d?.tool_calls ?? []) {
      assert.equal(tc.index, 2);
      args += tc.function.arguments;
    }
  }
  assert.equal(content, 'mail [EMAIL_1]');
  assert.deepEqual(JSON.parse(args), { to: '[EMAIL_2]' });
});
