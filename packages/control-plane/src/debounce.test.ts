import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Debouncer } from './debounce.js';

test('a burst of triggers runs once after the quiet period', async () => {
  let runs = 0;
  const d = new Debouncer(async () => void runs++, { quietMs: 30, maxMs: 1000 });
  for (let i = 0; i < 5; i++) {
    d.trigger();
    await sleep(5);
  }
  assert.equal(runs, 0);
  await sleep(60);
  assert.equal(runs, 1);
  d.close();
});

test('a continuous stream of triggers still runs by the max delay', async () => {
  let runs = 0;
  const d = new Debouncer(async () => void runs++, { quietMs: 40, maxMs: 100 });
  const until = Date.now() + 180;
  while (Date.now() < until) {
    d.trigger();
    await sleep(10);
  }
  assert.ok(runs >= 1, `ran ${runs} times`);
  d.close();
});

test('one run in flight; triggers during it cause exactly one more run', async () => {
  let runs = 0;
  let active = 0;
  let maxActive = 0;
  const d = new Debouncer(
    async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await sleep(50);
      runs++;
      active--;
    },
    { quietMs: 1, maxMs: 10 },
  );
  d.trigger();
  await sleep(10);
  for (let i = 0; i < 10; i++) d.trigger();
  await sleep(200);
  assert.equal(maxActive, 1);
  assert.equal(runs, 2);
  d.close();
});
