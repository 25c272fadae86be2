import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSseParser, encodeSseEvent, SseEventTooLargeError } from './sse.js';

const stream = 'event: a\ndata: {"x":"é"}\n\n: comment\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\r\r';

function parseAll(chunks: Uint8Array[]): Array<{ event: string | undefined; data: string; raw: string }> {
  const p = createSseParser();
  const out = chunks.flatMap((c) => p.push(c));
  return [...out, ...p.end()].map((e) => ({ event: e.event, data: e.data, raw: e.raw }));
}

test('parses events, comments, multi-line data and all three line endings', () => {
  const events = parseAll([Buffer.from(stream)]);
  assert.deepEqual(
    events.map((e) => [e.event, e.data]),
    [
      ['a', '{"x":"é"}'],
      [undefined, 'line1\nline2'],
      [undefined, '[DONE]'],
    ],
  );
  assert.equal(events[0]?.raw, 'event: a\ndata: {"x":"é"}\n\n');
});

test('gives the same events when split at every byte offset', () => {
  const bytes = Buffer.from(stream);
  const whole = parseAll([bytes]);
  for (let i = 1; i < bytes.length; i++) {
    assert.deepEqual(parseAll([bytes.subarray(0, i), bytes.subarray(i)]), whole, `split at ${i}`);
  }
});

test('end() flushes a final event without its blank line', () => {
  const p = createSseParser();
  assert.deepEqual(p.push('data: tail'), []);
  assert.deepEqual(p.end().map((e) => e.data), ['tail']);
});

test('rejects an event larger than the limit', () => {
  const p = createSseParser({ maxEventChars: 16 });
  assert.throws(() => p.push('data: ' + 'x'.repeat(32)), SseEventTooLargeError);
});

test('encodes multi-line data as several data lines', () => {
  assert.equal(encodeSseEvent('a\nb', 'e'), 'event: e\ndata: a\ndata: b\n\n');
  assert.equal(encodeSseEvent('x'), 'data: x\n\n');
});
