import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmtMs, fmtRateShort, median, percentile, summarize } from '../src/stats.js';
import { luaString } from '../src/wrk.js';

test('percentile is nearest-rank', () => {
  const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile(xs, 0), 1);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('summarize sorts numerically and reports the extremes', () => {
  const s = summarize([10, 2, 33, 4]);
  assert.equal(s.count, 4);
  assert.equal(s.min, 2);
  assert.equal(s.max, 33);
  assert.equal(s.p50, 4);
  assert.equal(s.mean, 12.25);
  assert.equal(summarize([]).count, 0);
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('formatting', () => {
  assert.equal(fmtMs(0.1234), '0.123 ms');
  assert.equal(fmtMs(Number.NaN), 'n/a');
  assert.equal(fmtRateShort(2000), '2k/s');
  assert.equal(fmtRateShort(1500), '1.5k/s');
  assert.equal(fmtRateShort(800), '800/s');
});

test('luaString escapes quotes, backslashes and newlines', () => {
  assert.equal(luaString('{"a":"b\\\\c"}\n'), '"{\\"a\\":\\"b\\\\\\\\c\\"}\\n"');
});
