import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { BatchedLineWriter, createLogger, infoLineWriter } from './logger.js';

function capture(level = 'info'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      cb();
    },
  });
  return { lines, logger: createLogger({ name: 'unit', level, destination }) };
}

test("the request-line fast path writes what pino's info() writes, field for field and in order", () => {
  const { lines, logger } = capture();
  const rec = { id: 'r1', status: 200, code: undefined, costMicros: null, text: 'quote " and \u2028 é', nested: undefined, stream: false };
  logger.info(rec, 'request');
  infoLineWriter(logger)(rec, 'request');
  assert.equal(lines.length, 2);
  const [a, b] = lines.map((l) => l.replace(/"time":"[^"]+"/u, '"time":"T"'));
  assert.equal(b, a);
  const parsed = JSON.parse(lines[1] ?? '') as Record<string, unknown>;
  assert.equal(parsed['name'], 'unit');
  assert.equal(parsed['level'], 30);
  assert.ok(!Number.isNaN(Date.parse(String(parsed['time']))));
  // Interleaves with the logger's own lines, and respects its level.
  const child = capture('warn');
  infoLineWriter(child.logger)({ id: 'x' }, 'request');
  assert.equal(child.lines.length, 0);
});

test('BatchedLineWriter: lines are written in order, in one write once enough are pending, the rest on flush; a closed fd drops them', async () => {
  const { mkdtempSync, openSync, readFileSync, closeSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-log-')), 'out.log');
  const fd = openSync(file, 'w');
  const w = new BatchedLineWriter(fd, 100);
  w.write('a'.repeat(40) + '\n');
  w.write('b'.repeat(40) + '\n');
  assert.equal(readFileSync(file, 'utf8'), '', 'held until 100 characters are pending');
  w.write('ü'.repeat(30) + '\n');
  assert.equal(readFileSync(file, 'utf8'), `${'a'.repeat(40)}\n${'b'.repeat(40)}\n${'ü'.repeat(30)}\n`);
  w.write('last\n');
  w.flushSync();
  w.flushSync();
  assert.match(readFileSync(file, 'utf8'), /ü\nlast\n$/u);
  closeSync(fd);
  w.write('x'.repeat(200));
  assert.doesNotThrow(() => w.flushSync());
});
