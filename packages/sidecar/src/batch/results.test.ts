import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchResults } from './results.js';

test('answers are kept for their TTL after arriving, within the byte bound, oldest out first; pending entries stay', () => {
  let now = 0;
  const store = new BatchResults(4000, 1000, 100, () => now);
  let fresh = 0;
  const open = (id: string): string => store.open(id, () => `fresh${fresh++}`, () => 'batch_1', 500);
  assert.equal(open('a'), 'a');
  assert.equal(open('a'), 'fresh0', 'a taken id gets a fresh one');
  assert.deepEqual(store.get('a'), { state: 'pending', batchId: 'batch_1', pollMs: 500 });
  const sink = store.sink('a');
  sink.writeHead(200, { 'content-type': 'application/json' });
  sink.end('x'.repeat(1000));
  assert.equal(store.get('a')?.state, 'done');
  now = 900;
  open('b');
  store.sink('b').end('y'.repeat(1000));
  open('c');
  store.sink('c').end('z'.repeat(1500));
  // 3 answers > 4000 bytes: the oldest (a) went.
  assert.equal(store.get('a'), undefined);
  assert.equal(store.get('b')?.state, 'done');
  now = 1950;
  assert.equal(store.get('b'), undefined, 'b expired 1000 ms after it arrived');
  assert.equal(store.get('fresh0')?.state, 'pending', 'a pending entry does not expire');
  // A sink destroyed without an answer forgets its entry.
  const d = open('d');
  store.sink(d).destroy();
  assert.equal(store.get(d), undefined);
});

test('the entry bound pushes out even pending entries, oldest first', () => {
  const store = new BatchResults(1 << 30, 1 << 30, 2);
  store.open('1', () => 'x', () => undefined, 1);
  store.open('2', () => 'y', () => undefined, 1);
  store.open('3', () => 'z', () => undefined, 1);
  store.get('3');
  assert.equal(store.size, 2);
  assert.equal(store.get('1'), undefined);
  assert.equal(store.get('3')?.state, 'pending');
});
