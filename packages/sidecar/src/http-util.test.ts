import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nestedDeeperThan } from './http-util.js';

test('nestedDeeperThan counts object and array levels without recursion', () => {
  assert.equal(nestedDeeperThan({ a: 1 }, 1), false);
  assert.equal(nestedDeeperThan({ a: { b: [1] } }, 2), true);
  assert.equal(nestedDeeperThan({ a: { b: [1] } }, 3), false);
  let deep: unknown = 'x';
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.equal(nestedDeeperThan({ content: deep }, 128), true, 'no stack overflow');
  assert.equal(nestedDeeperThan({ wide: Array.from({ length: 10_000 }, (_, i) => ({ i })) }, 3), false);
});
