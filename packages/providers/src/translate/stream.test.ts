import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceError } from '@sluice/core';
import { AnthropicUsageTracker, anthropicError, anthropicStopToOpenAI, openaiError, openaiFinishToAnthropic, stringifyOr } from './stream.js';

test('stop reason maps', () => {
  assert.deepEqual(
    ['end_turn', 'stop_sequence', 'pause_turn', 'max_tokens', 'tool_use', 'refusal', null, 'constructor'].map(anthropicStopToOpenAI),
    ['stop', 'stop', 'stop', 'length', 'tool_calls', 'content_filter', 'stop', 'stop'],
  );
  assert.deepEqual(
    ['stop', 'length', 'tool_calls', 'function_call', 'content_filter', undefined, '__proto__'].map(openaiFinishToAnthropic),
    ['end_turn', 'max_tokens', 'tool_use', 'tool_use', 'refusal', 'end_turn', 'end_turn'],
  );
});

test('provider error objects map to codes, keeping the message', () => {
  assert.equal(anthropicError({ type: 'overloaded_error', message: 'Overloaded' }).code, 'SLUICE_ERR_UPSTREAM_OVERLOADED');
  assert.equal(anthropicError({ type: 'rate_limit_error', message: 'x' }).code, 'SLUICE_ERR_UPSTREAM_RATE_LIMITED');
  assert.equal(anthropicError(42).code, 'SLUICE_ERR_UPSTREAM_SERVER_ERROR');
  assert.equal(anthropicError({ type: 'api_error', message: 'Internal server error' }).message, 'Internal server error');
  assert.equal(openaiError({ type: 'requests', code: 'rate_limit_exceeded', message: 'slow' }).code, 'SLUICE_ERR_UPSTREAM_RATE_LIMITED');
  assert.equal(openaiError('x').code, 'SLUICE_ERR_UPSTREAM_SERVER_ERROR');
});

test('anthropic usage tracker keeps the max of each field', () => {
  const t = new AnthropicUsageTracker();
  assert.equal(t.usage, undefined);
  t.feed('junk');
  assert.equal(t.usage, undefined);
  t.feed({ input_tokens: 10, cache_read_input_tokens: 5, output_tokens: 1 });
  t.feed({ output_tokens: 20, input_tokens: -3, cache_creation_input_tokens: 'x' });
  assert.deepEqual(t.usage, { inputTokens: 15, cachedInputTokens: 5, cacheWriteTokens: 0, outputTokens: 20, reasoningTokens: 0 });
});

test('stringifyOr never throws a TypeError', () => {
  const err = (): SluiceError => new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'nope');
  assert.throws(() => stringifyOr({ a: 1n }, err), SluiceError);
  assert.throws(() => stringifyOr(undefined, err), SluiceError);
  assert.equal(stringifyOr({ a: 'é' }, err), '{"a":"é"}');
});
