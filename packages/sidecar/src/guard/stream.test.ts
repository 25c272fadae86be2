import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseData } from '@sluice/providers';
import { compileGuardrails, Placeholders } from './index.js';
import { StreamGuard } from './stream.js';

const guards = compileGuardrails([{ id: 'ns/pii', direction: 'output', action: 'redact', detectors: [{ kind: 'email', values: [], name: '' }, { kind: 'ssn', values: [], name: '' }], routes: [] }]);
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
