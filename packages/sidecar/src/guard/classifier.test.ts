import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceError } from '@sluice/core';
import { moderate } from '@sluice/testkit';
import { classifierRequest, guardrailRef, parseAzureContentSafety, parseBedrockGuardrail, parseLlamaGuard, parseModeration, tail, type ClassifierPolicy } from './classifier.js';

const policy: ClassifierPolicy = { backend: 'b', target: undefined, model: 'omni-moderation-latest', format: 'openaiModeration', categories: undefined, thresholdMilli: 0, timeoutMs: 100, failClosed: false, maxChars: 20, streamCheckChars: 0 };
const answer = (...texts: string[]): string => JSON.stringify({ id: 'modr-1', model: 'm', results: texts.map(moderate) });

test('moderation verdicts: flagged categories, a category filter, a score threshold', () => {
  assert.deepEqual(parseModeration(answer('a calm day'), policy), []);
  assert.deepEqual(parseModeration(answer('kill it, you idiot'), policy), ['harassment', 'violence']);
  assert.deepEqual(parseModeration(answer('kill it, you idiot'), { ...policy, categories: new Set(['violence']) }), ['violence']);
  assert.deepEqual(parseModeration(answer('a fair fight'), policy), [], 'a borderline score is not flagged by the endpoint');
  assert.deepEqual(parseModeration(answer('a fair fight'), { ...policy, thresholdMilli: 300 }), ['violence'], '0.4 reaches 0.3');
  assert.deepEqual(parseModeration(answer('a fair fight'), { ...policy, thresholdMilli: 500 }), []);
  assert.deepEqual(parseModeration(answer('calm', 'counterfeit bills'), policy), ['illicit'], 'any of several results');
  assert.deepEqual(parseModeration(JSON.stringify({ results: [{ flagged: true }] }), policy), ['flagged'], 'flagged without categories still counts');
});

test('moderation answers that are not verdicts throw (onError decides)', () => {
  for (const bad of ['not json', '{}', '{"results":[]}', '{"results":[1]}', '[]']) {
    assert.throws(() => parseModeration(bad, policy), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE', bad);
  }
});

test('Llama Guard verdicts: safe, unsafe with codes, unsafe alone, a category filter; anything else throws', () => {
  const reply = (content: unknown): string => JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content } }] });
  assert.deepEqual(parseLlamaGuard(reply('safe'), { categories: undefined }), []);
  assert.deepEqual(parseLlamaGuard(reply('\n\nunsafe\nS1,S10'), { categories: undefined }), ['S1', 'S10']);
  assert.deepEqual(parseLlamaGuard(reply('unsafe'), { categories: undefined }), ['unsafe']);
  assert.deepEqual(parseLlamaGuard(reply('unsafe\nS1, S10'), { categories: new Set(['S10']) }), ['S10']);
  for (const bad of [reply('maybe'), reply(null), 'nope', '{"choices":[]}']) assert.throws(() => parseLlamaGuard(bad, { categories: undefined }), SluiceError, bad);
});

test('requests: moderation input is the direction text cut to its end; Llama Guard gets the conversation', () => {
  assert.equal(tail('abcdef', 4), 'cdef');
  assert.deepEqual(JSON.parse(classifierRequest(policy, { direction: 'input', prompt: 'x'.repeat(30) + 'END' }).body), { model: 'omni-moderation-latest', input: ['x'.repeat(17) + 'END'] });
  const out = classifierRequest(policy, { direction: 'output', prompt: 'q', answer: 'a' });
  assert.equal(out.endpoint, 'moderations');
  assert.deepEqual(JSON.parse(out.body).input, ['a']);
  const lg = classifierRequest({ ...policy, format: 'llamaGuard', model: 'llama-guard-3' }, { direction: 'output', prompt: 'q', answer: 'a' });
  assert.equal(lg.endpoint, 'chat');
  assert.deepEqual(JSON.parse(lg.body).messages, [
    { role: 'user', content: 'q' },
    { role: 'assistant', content: 'a' },
  ]);
});

test('Bedrock guardrails: the reference, the request, and the policies that acted as categories', () => {
  assert.deepEqual(guardrailRef('gr1:3'), { id: 'gr1', version: '3' });
  assert.deepEqual(guardrailRef('gr1'), { id: 'gr1', version: 'DRAFT' });
  assert.deepEqual(guardrailRef('arn:aws:bedrock:us-east-1:123456789012:guardrail/abc'), { id: 'arn:aws:bedrock:us-east-1:123456789012:guardrail/abc', version: 'DRAFT' });
  assert.deepEqual(guardrailRef('arn:aws:bedrock:us-east-1:123456789012:guardrail/abc:DRAFT'), { id: 'arn:aws:bedrock:us-east-1:123456789012:guardrail/abc', version: 'DRAFT' });
  const req = classifierRequest({ ...policy, format: 'bedrockGuardrail', model: 'gr1:3' }, { direction: 'output', prompt: 'q', answer: 'a' });
  assert.equal(req.endpoint, 'applyGuardrail');
  assert.deepEqual(JSON.parse(req.body), { source: 'OUTPUT', content: [{ text: { text: 'a' } }] });

  const answer = JSON.stringify({
    action: 'GUARDRAIL_INTERVENED',
    assessments: [
      {
        contentPolicy: { filters: [{ type: 'VIOLENCE', confidence: 'HIGH', action: 'BLOCKED' }, { type: 'INSULTS', confidence: 'LOW', action: 'NONE' }] },
        topicPolicy: { topics: [{ name: 'Investment advice', type: 'DENY', action: 'BLOCKED' }] },
        wordPolicy: { customWords: [{ match: 'acme', action: 'BLOCKED' }] },
        sensitiveInformationPolicy: { piiEntities: [{ match: 'a@b.co', type: 'EMAIL', action: 'ANONYMIZED' }], regexes: [{ name: 'ticket', match: 'T-1', action: 'NONE' }] },
      },
    ],
  });
  assert.deepEqual(parseBedrockGuardrail(answer, { categories: undefined }), ['VIOLENCE', 'pii:EMAIL', 'topic:Investment advice', 'word']);
  assert.deepEqual(parseBedrockGuardrail(answer, { categories: new Set(['VIOLENCE', 'HATE']) }), ['VIOLENCE']);
  assert.deepEqual(parseBedrockGuardrail(JSON.stringify({ action: 'NONE', assessments: [] }), { categories: undefined }), []);
  assert.deepEqual(parseBedrockGuardrail(JSON.stringify({ action: 'GUARDRAIL_INTERVENED', assessments: [{}] }), { categories: undefined }), ['intervened']);
  for (const bad of ['nope', '{}', '{"action":"MAYBE"}']) assert.throws(() => parseBedrockGuardrail(bad, { categories: undefined }), SluiceError, bad);
});

test('Azure AI Content Safety: severities against the threshold (s / 7), blocklists, the 10,000-character cap', () => {
  const answer = JSON.stringify({ blocklistsMatch: [{ blocklistName: 'brands', blocklistItemId: '1', blocklistItemText: 'acme' }], categoriesAnalysis: [{ category: 'Hate', severity: 2 }, { category: 'Violence', severity: 4 }, { category: 'Sexual', severity: 0 }] });
  assert.deepEqual(parseAzureContentSafety(answer, { categories: undefined, thresholdMilli: 0 }), ['Hate', 'Violence', 'blocklist:brands']);
  assert.deepEqual(parseAzureContentSafety(answer, { categories: undefined, thresholdMilli: 500 }), ['Violence', 'blocklist:brands'], '4/7 reaches 0.5, 2/7 does not');
  assert.deepEqual(parseAzureContentSafety(answer, { categories: new Set(['Hate']), thresholdMilli: 0 }), ['Hate']);
  for (const bad of ['nope', '{}', '{"categoriesAnalysis":7}']) assert.throws(() => parseAzureContentSafety(bad, { categories: undefined, thresholdMilli: 0 }), SluiceError, bad);
  const req = classifierRequest({ ...policy, format: 'azureContentSafety', maxChars: 50_000 }, { direction: 'input', prompt: 'x'.repeat(12_000) });
  assert.equal(req.endpoint, 'contentSafety');
  assert.equal((JSON.parse(req.body) as { text: string }).text.length, 10_000);
});
