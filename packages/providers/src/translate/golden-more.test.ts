/**
 * Golden fixtures of the translator pairs added with the provider presets: Chat Completions ↔ Gemini,
 * Chat Completions ↔ Bedrock Converse (JSON; its event-stream replay is tested with the frame parser
 * in the sidecar), Responses API ↔ Chat Completions, and the pairs composed through the Chat
 * Completions form (Anthropic → Gemini / Bedrock, Responses → Anthropic / Gemini). `SLUICE_UPDATE_GOLDEN=1` rewrites the
 * `.out` files; every stream fixture is also replayed split at every byte offset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGolden, assertGoldenJson, fixtureNames, readBytes, readJson, replayEverySplit } from '../../test/translate/replay.js';
import { chatRequestToConverse, converseResponseToChat } from './bedrock/from-openai.js';
import { chatRequestToGemini, createGeminiStreamToChat, geminiResponseToChat } from './gemini/from-openai.js';
import { chatResponseToResponses, createChatStreamToResponses, responsesRequestToChat } from './responses/via-chat.js';
import { chainStreamTranslators } from './chain.js';
import { chatResponseToAnthropic, createChatStreamToAnthropic, messagesRequestToOpenAI } from './anthropic/to-openai.js';
import { anthropicResponseToChat, chatRequestToAnthropic, createAnthropicStreamToChat } from './openai/to-anthropic.js';
import type { StreamTranslator } from './stream.js';

const CTX = { model: 'm', id: 'chatcmpl-sluice0001', created: 1760000000 };

function pair(dir: string, request: (j: Record<string, unknown>) => unknown, response: (j: Record<string, unknown>) => unknown): void {
  for (const name of fixtureNames(dir, '.in.json')) {
    test(`golden ${dir}/${name}`, () => {
      const input = readJson(dir, `${name}.in.json`);
      assertGoldenJson(dir, `${name}.out.json`, name.startsWith('request-') ? request(input) : response(input));
    });
  }
}

pair('chat-to-gemini', chatRequestToGemini, (j) => geminiResponseToChat(j, { ...CTX, model: 'gemini-2.5-flash' }));
pair('chat-to-bedrock', chatRequestToConverse, (j) => converseResponseToChat(j, { ...CTX, model: 'anthropic.claude-haiku-4-5-20251001-v1:0' }));
const RESPONSES = { id: 'resp_sluice0001', createdAt: 1760000000, model: 'gpt-4o-mini' };
pair('responses-to-chat', responsesRequestToChat, (j) => chatResponseToResponses(j, { ...RESPONSES, request: { instructions: 'Be brief.', max_output_tokens: 50 } }));

for (const name of fixtureNames('chat-to-gemini', '.in.sse')) {
  test(`golden chat-to-gemini/${name} (every byte split)`, () => {
    const { out, tr } = replayEverySplit(readBytes('chat-to-gemini', `${name}.in.sse`), () => createGeminiStreamToChat({ ...CTX, model: 'gemini-2.5-flash', includeUsage: true }));
    assertGolden('chat-to-gemini', `${name}.out.sse`, out);
    assert.equal(tr.done, true);
    assert.ok(out.endsWith('data: [DONE]\n\n'));
  });
}

for (const name of fixtureNames('responses-to-chat', '.in.sse')) {
  test(`golden responses-to-chat/${name} (every byte split)`, () => {
    const { out, tr } = replayEverySplit(readBytes('responses-to-chat', `${name}.in.sse`), () => createChatStreamToResponses({ ...RESPONSES, request: {} }));
    assertGolden('responses-to-chat', `${name}.out.sse`, out);
    assert.equal(tr.done, true);
    // Every event carries its type and a gapless sequence number.
    const events = out
      .split('\n\n')
      .filter((e) => e !== '')
      .map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: '))?.slice(6) ?? '{}') as { type: string; sequence_number: number });
    events.forEach((e, i) => assert.equal(e.sequence_number, i));
    assert.equal(events[0]?.type, 'response.created');
    assert.equal(events.at(-1)?.type, 'response.completed');
  });
}

// The pairs served through the Chat Completions form: each is the composition of two tested pairs.
const toChat = (j: Record<string, unknown>): Record<string, unknown> => messagesRequestToOpenAI(j, 'm', { maxTokensField: 'max_tokens' }) as unknown as Record<string, unknown>;
const MSG = { model: 'm', id: 'msg_sluice0001' };
pair(
  'anthropic-to-gemini',
  (j) => chatRequestToGemini(toChat(j)),
  (j) => {
    const chat = geminiResponseToChat(j, CTX);
    return { body: chatResponseToAnthropic(chat.body, MSG).body, usage: chat.usage };
  },
);
pair(
  'anthropic-to-bedrock',
  (j) => chatRequestToConverse(toChat(j)),
  (j) => {
    const chat = converseResponseToChat(j, CTX);
    return { body: chatResponseToAnthropic(chat.body, MSG).body, usage: chat.usage };
  },
);
const RREQ = { instructions: 'Be brief.', max_output_tokens: 50 };
pair(
  'responses-to-anthropic',
  (j) => chatRequestToAnthropic(responsesRequestToChat(j), 'claude-haiku-4-5'),
  (j) => {
    const chat = anthropicResponseToChat(j, CTX);
    return chatResponseToResponses(chat.body, { ...RESPONSES, request: RREQ });
  },
);
pair(
  'responses-to-gemini',
  (j) => chatRequestToGemini(responsesRequestToChat(j)),
  (j) => chatResponseToResponses(geminiResponseToChat(j, CTX).body, { ...RESPONSES, request: RREQ }),
);

const chained: Array<[string, () => StreamTranslator]> = [
  ['anthropic-to-gemini', () => chainStreamTranslators(createGeminiStreamToChat({ ...CTX, includeUsage: true }), createChatStreamToAnthropic(MSG))],
  ['responses-to-anthropic', () => chainStreamTranslators(createAnthropicStreamToChat({ ...CTX, includeUsage: true }), createChatStreamToResponses({ ...RESPONSES, request: {} }))],
  ['responses-to-gemini', () => chainStreamTranslators(createGeminiStreamToChat({ ...CTX, includeUsage: true }), createChatStreamToResponses({ ...RESPONSES, request: {} }))],
];
for (const [dir, make] of chained) {
  for (const name of fixtureNames(dir, '.in.sse')) {
    test(`golden ${dir}/${name} (every byte split)`, () => {
      const { out, tr } = replayEverySplit(readBytes(dir, `${name}.in.sse`), make);
      assertGolden(dir, `${name}.out.sse`, out);
      assert.equal(tr.done, true);
      assert.ok(tr.usage !== undefined, 'the provider usage comes through the chain');
    });
  }
}
