import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceError } from '@sluice/core';
import type { ErrorCode } from '@sluice/core';
import type { SseEvent } from '../../sse.js';
import { createOpenAIPassthrough } from './passthrough.js';
import { fixtureNames, mutate, onlySluiceErrors, readBytes, replay, replayEverySplit, rng } from '../../../test/translate/replay.js';

/** OpenAI-format transcripts live with the Anthropic-ingress fixtures (they are that translator's input). */
const DIR = 'anthropic-to-chat';

function throwsCode(fn: () => unknown, code: ErrorCode, match?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SluiceError, `expected SluiceError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (match) assert.match(e.message, match);
    return true;
  });
}

function data(d: string): SseEvent {
  return { event: undefined, data: d, raw: `data: ${d}\n\n` };
}

const USAGE: Record<string, unknown> = {
  'stream-text': { inputTokens: 1043, cachedInputTokens: 1024, cacheWriteTokens: 0, outputTokens: 8, reasoningTokens: 0 },
  'stream-tools': { inputTokens: 210, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 52, reasoningTokens: 0 },
};

for (const name of fixtureNames(DIR, '.in.sse')) {
  test(`passthrough ${DIR}/${name} is forwarded byte for byte (every byte split)`, () => {
    const bytes = readBytes(DIR, `${name}.in.sse`);
    const { out, tr } = replayEverySplit(bytes, () => createOpenAIPassthrough({ stripUsageChunk: false }));
    assert.equal(out, bytes.toString('utf8'));
    assert.equal(tr.done, true);
    assert.deepEqual(tr.usage, USAGE[name]);
  });

  test(`passthrough ${DIR}/${name} with stripUsageChunk drops only the usage-only chunk (every byte split)`, () => {
    const bytes = readBytes(DIR, `${name}.in.sse`);
    const { out, tr } = replayEverySplit(bytes, () => createOpenAIPassthrough({ stripUsageChunk: true }));
    const expected = bytes
      .toString('utf8')
      .split(/(?<=\n\n)/)
      .filter((e) => !e.includes('"choices":[],"usage":{'))
      .join('');
    assert.equal(out, expected);
    assert.ok(out.length < bytes.toString('utf8').length);
    assert.deepEqual(tr.usage, USAGE[name]);
  });
}

test('usage on a chunk that also has choices is read and never stripped', () => {
  const tr = createOpenAIPassthrough({ stripUsageChunk: true });
  const c = data('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}');
  assert.equal(tr.push(c), c.raw);
  assert.equal(tr.usage?.outputTokens, 4);
  // Upstream ended after a finish_reason without [DONE]: the client still gets one.
  assert.equal(tr.end(), 'data: [DONE]\n\n');
  assert.equal(tr.done, true);
});

test('errors, garbage and interruption', () => {
  throwsCode(
    () => createOpenAIPassthrough({ stripUsageChunk: false }).push(data('{"error":{"message":"Overloaded, retry","type":"server_error","code":"server_is_overloaded"}}')),
    'SLUICE_ERR_UPSTREAM_OVERLOADED',
    /^Overloaded, retry$/,
  );
  throwsCode(
    () => createOpenAIPassthrough({ stripUsageChunk: false }).push(data('{"error":{"message":"boom","type":"server_error"}}')),
    'SLUICE_ERR_UPSTREAM_SERVER_ERROR',
    /^boom$/,
  );
  throwsCode(() => createOpenAIPassthrough({ stripUsageChunk: false }).push(data('{"choices":')), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  const tr = createOpenAIPassthrough({ stripUsageChunk: false });
  tr.push(data('{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}'));
  assert.equal(tr.usage, undefined);
  throwsCode(() => tr.end(), 'SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED');
  assert.equal(tr.done, false);
  const done = createOpenAIPassthrough({ stripUsageChunk: false });
  assert.equal(replay([Buffer.from('data: [DONE]\n\n')], done), 'data: [DONE]\n\n');
  assert.equal(done.push(data('{"late":true}')), '');
});

test('fuzz: hostile chunks only ever throw SluiceError', () => {
  const r = rng(21);
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
    const evs = t.map((d, j) => (j !== victim || d === '[DONE]' ? data(d) : data(JSON.stringify(mutate(JSON.parse(d), r)))));
    onlySluiceErrors(() => {
      const tr = createOpenAIPassthrough({ stripUsageChunk: i % 2 === 0 });
      for (const e of evs) tr.push(e);
      tr.end();
    }, evs[victim]?.data);
  }
});
