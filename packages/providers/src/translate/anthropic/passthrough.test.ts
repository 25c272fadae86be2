import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceError } from '@sluice/core';
import type { ErrorCode } from '@sluice/core';
import type { SseEvent } from '../../sse.js';
import { sseNamed } from '../../sse.js';
import { createAnthropicPassthrough } from './passthrough.js';
import { fixtureNames, mutate, onlySluiceErrors, readBytes, replayEverySplit, rng } from '../../../test/translate/replay.js';

/** Anthropic-format transcripts live with the OpenAI-ingress fixtures (they are that translator's input). */
const DIR = 'chat-to-anthropic';

function throwsCode(fn: () => unknown, code: ErrorCode, match?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SluiceError, `expected SluiceError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (match) assert.match(e.message, match);
    return true;
  });
}

function ev(type: string, body: Record<string, unknown> = {}): SseEvent {
  const json = { type, ...body };
  return { event: type, data: JSON.stringify(json), raw: sseNamed(type, json) };
}

const USAGE: Record<string, unknown> = {
  'stream-text': { inputTokens: 1045, cachedInputTokens: 1024, cacheWriteTokens: 0, outputTokens: 12, reasoningTokens: 0 },
  'stream-tools': { inputTokens: 472, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 89, reasoningTokens: 0 },
  'stream-thinking': { inputTokens: 2098, cachedInputTokens: 0, cacheWriteTokens: 2048, outputTokens: 120, reasoningTokens: 0 },
};

for (const name of fixtureNames(DIR, '.in.sse')) {
  test(`passthrough ${DIR}/${name} is forwarded byte for byte (every byte split)`, () => {
    const bytes = readBytes(DIR, `${name}.in.sse`);
    const { out, tr } = replayEverySplit(bytes, () => createAnthropicPassthrough());
    assert.equal(out, bytes.toString('utf8'));
    assert.equal(tr.done, true);
    assert.deepEqual(tr.usage, USAGE[name]);
  });
}

const start = ev('message_start', {
  message: { id: 'm', type: 'message', role: 'assistant', model: 'c', content: [], usage: { input_tokens: 100, cache_read_input_tokens: 50, output_tokens: 1 } },
});

test('usage: message_delta output is cumulative, repeated input/cache fields take the max', () => {
  const tr = createAnthropicPassthrough();
  assert.equal(tr.usage === undefined, true);
  tr.push(start);
  assert.deepEqual(tr.usage, { inputTokens: 150, cachedInputTokens: 50, cacheWriteTokens: 0, outputTokens: 1, reasoningTokens: 0 });
  tr.push(ev('message_delta', { delta: { stop_reason: null }, usage: { output_tokens: 7 } }));
  tr.push(ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { input_tokens: 100, cache_read_input_tokens: 50, cache_creation_input_tokens: 10, output_tokens: 9 } }));
  assert.deepEqual(tr.usage, { inputTokens: 160, cachedInputTokens: 50, cacheWriteTokens: 10, outputTokens: 9, reasoningTokens: 0 });
  // Interrupted before message_stop: usage stays available, end() reports the interruption.
  throwsCode(() => tr.end(), 'SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED');
  assert.equal(tr.usage?.outputTokens, 9);
});

test('error events and garbage', () => {
  const cases: Array<[string, ErrorCode]> = [
    ['overloaded_error', 'SLUICE_ERR_UPSTREAM_OVERLOADED'],
    ['rate_limit_error', 'SLUICE_ERR_UPSTREAM_RATE_LIMITED'],
    ['api_error', 'SLUICE_ERR_UPSTREAM_SERVER_ERROR'],
  ];
  for (const [type, code] of cases) {
    const tr = createAnthropicPassthrough();
    tr.push(start);
    throwsCode(() => tr.push(ev('error', { error: { type, message: 'Provider says no' } })), code, /^Provider says no$/);
  }
  throwsCode(() => createAnthropicPassthrough().push({ event: 'content_block_delta', data: '{"type":', raw: '' }), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  throwsCode(() => createAnthropicPassthrough().push({ event: 'ping', data: '"ping"', raw: '' }), 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
});

test('fuzz: hostile events only ever throw SluiceError', () => {
  const r = rng(31);
  const transcripts = fixtureNames(DIR, '.in.sse').map((n) =>
    readBytes(DIR, `${n}.in.sse`)
      .toString('utf8')
      .split('\n\n')
      .filter(Boolean)
      .map((block) => {
        const [head, d] = block.split('\ndata: ');
        return { event: head?.replace('event: ', ''), json: JSON.parse(d ?? '{}') as unknown };
      }),
  );
  for (let i = 0; i < 2000; i++) {
    const t = transcripts[i % transcripts.length] ?? [];
    const victim = Math.floor(r() * t.length);
    const evs: SseEvent[] = t.map((e, j) => ({ event: e.event, data: JSON.stringify(j === victim ? mutate(e.json, r) : e.json), raw: '' }));
    onlySluiceErrors(() => {
      const tr = createAnthropicPassthrough();
      for (const e of evs) tr.push(e);
      tr.end();
    }, evs[victim]?.data);
  }
});
