/**
 * Golden fixtures of the translator pairs added with the provider presets: Chat Completions ↔ Gemini,
 * Chat Completions ↔ Bedrock Converse (JSON; its event-stream replay is tested with the frame parser
 * in the sidecar), and Responses API ↔ Chat Completions. `SLUICE_UPDATE_GOLDEN=1` rewrites the
 * `.out` files; every stream fixture is also replayed split at every byte offset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertGolden, assertGoldenJson, fixtureNames, readBytes, readJson, replayEverySplit } from '../../test/translate/replay.js';
import { chatRequestToConverse, converseResponseToChat } from './bedrock/from-openai.js';
import { chatRequestToGemini, createGeminiStreamToChat, geminiResponseToChat } from './gemini/from-openai.js';
import { chatResponseToResponses, createChatStreamToResponses, responsesRequestToChat } from './responses/via-chat.js';

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
