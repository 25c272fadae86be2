import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promptCacheBreakpoints } from './prompt-cache.js';

const long = 'Stable instructions that repeat on every request. '.repeat(100);
const tool = (name: string, size: number): Record<string, unknown> => ({ name, description: 'd'.repeat(size), input_schema: { type: 'object' } });

test('a long system prompt gets a breakpoint on its last block; a string system becomes one text block', () => {
  assert.deepEqual(promptCacheBreakpoints({ system: long, messages: [] }, 500), { system: [{ type: 'text', text: long, cache_control: { type: 'ephemeral' } }] });
  const blocks = [{ type: 'text', text: 'a' }, { type: 'text', text: long }];
  assert.deepEqual(promptCacheBreakpoints({ system: blocks, messages: [] }, 500)?.system, [{ type: 'text', text: 'a' }, { type: 'text', text: long, cache_control: { type: 'ephemeral' } }]);
});

test('long tools get their own breakpoint; short tools count towards the system prefix', () => {
  const big = promptCacheBreakpoints({ tools: [tool('a', 10), tool('b', 4000)], system: 'short', messages: [] }, 500);
  assert.deepEqual((big?.tools?.at(-1) as { cache_control?: unknown }).cache_control, { type: 'ephemeral' });
  assert.equal((big?.tools?.[0] as { cache_control?: unknown }).cache_control, undefined);
  assert.ok(big?.system !== undefined, 'tools + system reach the minimum too');
  const small = promptCacheBreakpoints({ tools: [tool('a', 100)], system: long, messages: [] }, 500);
  assert.equal(small?.tools, undefined);
  assert.ok(small?.system !== undefined);
});

test('nothing when the prefix is short, absent, or the caller placed breakpoints itself', () => {
  assert.equal(promptCacheBreakpoints({ system: 'Be brief.', messages: [] }, 500), undefined);
  assert.equal(promptCacheBreakpoints({ messages: [{ role: 'user', content: long }] }, 500), undefined);
  assert.equal(promptCacheBreakpoints({ system: long, messages: [{ role: 'user', content: [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }] }] }, 500), undefined);
  assert.equal(promptCacheBreakpoints({ system: [{ type: 'text', text: long, cache_control: { type: 'ephemeral' } }], messages: [] }, 500), undefined);
});
