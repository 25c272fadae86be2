import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTopLevelMembers } from './json-splice.js';

test('replaces a top-level member and keeps every other byte', () => {
  const raw = '{ "model" : "a",\n "messages":[{"model":"inner","c":"\\"}"}], "n": 1.50e0 }';
  const out = setTopLevelMembers(raw, { model: '"b"' });
  assert.equal(out, '{ "model" : "b",\n "messages":[{"model":"inner","c":"\\"}"}], "n": 1.50e0 }');
});

test('appends missing members, also to an empty object', () => {
  assert.equal(setTopLevelMembers('{"a":1}', { s: '{"x":true}' }), '{"a":1,"s":{"x":true}}');
  assert.equal(setTopLevelMembers('{ }', { s: '1' }), '{ "s":1}');
});

test('replaces duplicate keys everywhere and handles nested arrays and literals', () => {
  const raw = '{"model":null,"x":[[1,{"a":[]}],true],"model":"z"}';
  const out = setTopLevelMembers(raw, { model: '"m"', stream_options: '{"include_usage":true}' });
  assert.deepEqual(JSON.parse(out), { model: 'm', x: [[1, { a: [] }], true], stream_options: { include_usage: true } });
  assert.equal(out.match(/"m"/g)?.length, 2);
});

test('returns the input unchanged when there is nothing to set', () => {
  const raw = '{"a":1}';
  assert.equal(setTopLevelMembers(raw, {}), raw);
});

test('lastMemberValue reads the trailing usage without parsing the body', async () => {
  const { lastMemberValue } = await import('./json-splice.js');
  const body = '{"id":"x","choices":[{"message":{"content":"a \\"usage\\": 1"}}],"usage": {"prompt_tokens":3,"completion_tokens":2}}\n';
  assert.deepEqual(lastMemberValue(body, 'usage'), { prompt_tokens: 3, completion_tokens: 2 });
  assert.equal(lastMemberValue('{"a":1}', 'usage'), undefined);
  assert.equal(lastMemberValue('<html>"usage": {}</html>', 'usage'), undefined);
  assert.equal(lastMemberValue('{"usage": {bad}', 'usage'), undefined);
});
