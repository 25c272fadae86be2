import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileScanner } from './detectors.js';
import { Placeholders } from './index.js';
import { bodyText, loggable, logScanners } from './log-texts.js';

test('logged texts: redacted with the request placeholders, cut without splitting a match', () => {
  const scanners = logScanners([]);
  const names = new Placeholders();
  names.for('email', 'a@example.com');
  assert.equal(loggable('to a@example.com and b@example.com', scanners, names, 1000), 'to [EMAIL_1] and [EMAIL_2]', 'the default PII detectors, the same placeholders as the request');
  const long = `${'x'.repeat(10)} card 4111 1111 1111 1111 tail`;
  const cut = loggable(long, scanners, new Placeholders(), 20);
  assert.equal(cut, `${'x'.repeat(10)} card [CREDIT_CARD_1]…[5 more chars]`, 'a match across the cut is redacted whole, never shown in part');
  const custom = [compileScanner([{ kind: 'denyList', values: ['falcon'], name: 'project' }])];
  assert.equal(loggable('Project Falcon, mail a@example.com', custom, new Placeholders(), 100), 'Project [PROJECT_1], mail a@example.com', "the route's own detectors replace the defaults");
});

test('bodyText: the texts of a request in order, tool arguments included', () => {
  assert.equal(
    bodyText({ system: 'be nice', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }, { role: 'assistant', content: null, tool_calls: [{ function: { name: 'f', arguments: '{"q":"x"}' } }] }] }),
    'be nice\n\nhi\n\nx',
  );
});

test('bodyText: the legacy function_call arguments are texts too', () => {
  assert.equal(bodyText({ messages: [{ role: 'assistant', content: null, function_call: { name: 'f', arguments: '{"to":"a@b.co"}' } }] }), 'a@b.co');
});
