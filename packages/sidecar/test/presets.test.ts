/**
 * Provider presets end to end through the sidecar, each pointed at the fake provider: Azure OpenAI
 * (deployment in the path, api-version, `api-key` header or an Entra bearer token), the
 * OpenAI-compatible family (Mistral, Groq, DeepSeek with its own cache-hit usage field, xAI, Ollama
 * without a key), Google Gemini (generateContent / streamGenerateContent, translated), answered to
 * OpenAI and Anthropic callers, priced from the preset's table.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import type { AnyPolicyObject } from '@sluice/policy';
import { bundledPrice, costMicros } from '@sluice/providers';
import { startFakeProvider, type FakeProvider } from '@sluice/testkit';
import { startHarness, type Harness } from './harness.js';

const obj = (kind: string, name: string, spec: unknown): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind, metadata: { name }, spec }) as unknown as AnyPolicyObject;

let fake: FakeProvider;
let h: Harness;
let openai: OpenAI;
before(async () => {
  fake = await startFakeProvider();
  const backend = (name: string, provider: string, extra: Record<string, unknown> = {}): AnyPolicyObject => obj('LLMBackend', name, { provider, endpoint: fake.url, auth: { env: 'OPENAI_API_KEY' }, ...extra });
  h = await startHarness({}, [
    backend('azure', 'azure-openai', { azure: { apiVersion: '2024-10-21' } }),
    backend('azure-entra', 'azure-openai', { azure: { auth: 'bearer' } }),
    backend('mistral', 'mistral'),
    backend('groq', 'groq'),
    backend('deepseek', 'deepseek'),
    backend('xai', 'xai'),
    backend('together', 'together'),
    backend('fireworks', 'fireworks'),
    backend('openrouter', 'openrouter'),
    obj('LLMBackend', 'ollama', { provider: 'ollama', endpoint: fake.url }),
    backend('gemini', 'gemini'),
    obj('LLMRoute', 'presets', {
      rules: [
        { match: { models: ['az-mini'] }, backends: [{ name: 'azure', modelOverride: 'prod-gpt-4o-mini' }], retry: { attempts: 1 } },
        { match: { models: ['az-entra'] }, backends: [{ name: 'azure-entra', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 } },
        { match: { models: ['az-embed'] }, backends: [{ name: 'azure', modelOverride: 'text-embedding-3-small' }] },
        { match: { models: ['mistral-small-latest'] }, backends: [{ name: 'mistral' }], retry: { attempts: 1 } },
        { match: { models: ['llama-3.3-70b-versatile'] }, backends: [{ name: 'groq' }], retry: { attempts: 1 } },
        { match: { models: ['deepseek-chat'] }, backends: [{ name: 'deepseek' }], retry: { attempts: 1 } },
        { match: { models: ['grok-3-mini'] }, backends: [{ name: 'xai' }], retry: { attempts: 1 } },
        { match: { models: ['meta-llama/Llama-3.3-70B-Instruct-Turbo'] }, backends: [{ name: 'together' }], retry: { attempts: 1 } },
        { match: { models: ['accounts/fireworks/models/llama-v3p3-70b-instruct'] }, backends: [{ name: 'fireworks' }], retry: { attempts: 1 } },
        { match: { models: ['openai/gpt-4o-mini'] }, backends: [{ name: 'openrouter' }], retry: { attempts: 1 } },
        { match: { models: ['llama3.2'] }, backends: [{ name: 'ollama' }], retry: { attempts: 1 } },
        { match: { models: ['gemini-2.5-flash'] }, backends: [{ name: 'gemini' }], retry: { attempts: 1 } },
      ],
    }),
  ]);
  openai = new OpenAI({ apiKey: 'sk-client', baseURL: `${h.sidecar.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await h.close();
  await fake.close();
});
beforeEach(() => fake.reset());

const last = (): { path: string; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> } => {
  const r = fake.requests.at(-1);
  assert.ok(r !== undefined, 'the preset backend was called');
  return { path: r.path, headers: r.headers, body: JSON.parse(r.body) as Record<string, unknown> };
};

test('Azure OpenAI: the deployment in the path, api-version, api-key; the answer and its price in the OpenAI shape', async () => {
  const { data, response } = await openai.chat.completions.create({ model: 'az-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
  assert.equal(data.object, 'chat.completion');
  const sent = last();
  assert.equal(sent.path, '/openai/deployments/prod-gpt-4o-mini/chat/completions');
  assert.equal(sent.headers['api-key'], 'sk-upstream-openai-key');
  assert.equal(sent.headers['authorization'], undefined, 'no bearer header to Azure in api-key mode');
  assert.ok(Number(response.headers.get('x-sluice-cost-micros')) >= 0);
  // Entra ID: the credential goes as a bearer token.
  await openai.chat.completions.create({ model: 'az-entra', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(last().headers['authorization'], 'Bearer sk-upstream-openai-key');
  assert.equal(last().headers['api-key'], undefined);
  // Embeddings through a deployment too.
  const e = await openai.embeddings.create({ model: 'az-embed', input: 'hello' });
  assert.equal(e.data.length, 1);
  assert.equal(last().path, '/openai/deployments/text-embedding-3-small/embeddings');
});

test('the fake speaks Azure: without api-version the deployment path is not found, without a key it is 401', async () => {
  const post = (q: string, headers: Record<string, string>): Promise<Response> => fetch(`${fake.url}/openai/deployments/d/chat/completions${q}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"messages":[{"role":"user","content":"hi"}]}' });
  assert.equal((await post('', { 'api-key': 'k' })).status, 404);
  assert.equal((await post('?api-version=2024-10-21', {})).status, 401);
  const ok = await post('?api-version=2024-10-21', { 'api-key': 'k' });
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { model: string }).model, 'd', 'the deployment answers as the model');
});

test('OpenAI-compatible presets: Bearer key, OpenAI wire format, preset prices; an Anthropic caller is translated', async () => {
  const families: Record<string, string> = {
    'mistral-small-latest': 'mistral',
    'llama-3.3-70b-versatile': 'groq',
    'grok-3-mini': 'xai',
    'meta-llama/Llama-3.3-70B-Instruct-Turbo': 'together',
    'accounts/fireworks/models/llama-v3p3-70b-instruct': 'fireworks',
    'openai/gpt-4o-mini': 'openrouter',
  };
  for (const [model, family] of Object.entries(families)) {
    fake.reset();
    const { response, data } = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    assert.equal(data.object, 'chat.completion');
    const sent = last();
    assert.equal(sent.path, '/v1/chat/completions');
    assert.equal(sent.headers['authorization'], 'Bearer sk-upstream-openai-key');
    assert.equal(sent.body['model'], model);
    assert.equal(sent.body['max_tokens'], undefined, 'no output field invented');
    const price = bundledPrice(family, model);
    assert.ok(price !== undefined);
    const usage = data.usage;
    assert.ok(usage !== undefined);
    assert.equal(Number(response.headers.get('x-sluice-cost-micros')), costMicros({ inputTokens: usage.prompt_tokens, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: usage.completion_tokens, reasoningTokens: 0 }, price));
  }
  const anthropic = new Anthropic({ apiKey: 'sk-ant-client', baseURL: h.sidecar.url, maxRetries: 0 });
  fake.reset();
  const m = await anthropic.messages.create({ model: 'mistral-small-latest', max_tokens: 30, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(m.type, 'message');
  assert.equal(last().body['max_tokens'], 30, 'max_tokens for the OpenAI-compatible family');
});

test('DeepSeek: its prompt_cache_hit_tokens are read as cached input and priced as such', async () => {
  fake.enqueue({ usage: { input: 1000, cached: 800, output: 10 }, usageStyle: 'deepseek' });
  const r = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'deepseek-chat', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 200);
  const log = h.requestLogs().at(-1) ?? {};
  assert.equal(log['cachedInputTokens'], 800);
  const price = bundledPrice('deepseek', 'deepseek-chat');
  assert.ok(price !== undefined);
  assert.equal(log['costMicros'], costMicros({ inputTokens: 1000, cachedInputTokens: 800, cacheWriteTokens: 0, outputTokens: 10, reasoningTokens: 0 }, price));
});

test('Ollama: no key needed, priced 0', async () => {
  const { response } = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
  assert.equal(last().headers['authorization'], undefined);
  assert.equal(response.headers.get('x-sluice-cost-micros'), '0');
});

test('Gemini: the OpenAI SDK gets JSON, streams and tool calls translated from generateContent; priced from the Gemini table', async () => {
  fake.reset();
  const { data, response } = await openai.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi there' }] }).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices[0]?.message.content, 'Hello from the Sluice fake provider.');
  const sent = last();
  assert.equal(sent.path, '/v1beta/models/gemini-2.5-flash:generateContent');
  assert.equal(sent.headers['x-goog-api-key'], 'sk-upstream-openai-key');
  assert.deepEqual(sent.body['systemInstruction'], { parts: [{ text: 'Be brief.' }] });
  const price = bundledPrice('gemini', 'gemini-2.5-flash');
  assert.ok(price !== undefined && data.usage !== undefined);
  assert.equal(Number(response.headers.get('x-sluice-cost-micros')), costMicros({ inputTokens: data.usage.prompt_tokens, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: data.usage.completion_tokens, reasoningTokens: 0 }, price));

  const stream = await openai.chat.completions.create({ model: 'gemini-2.5-flash', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  let usage: unknown;
  for await (const c of stream) {
    text += c.choices[0]?.delta.content ?? '';
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, 'Hello from the Sluice fake provider.');
  assert.ok(usage !== undefined, 'the usage chunk the caller asked for');
  assert.match(fake.requests.at(-1)?.path ?? '', /:streamGenerateContent$/u);

  fake.enqueue({ toolCall: { name: 'weather', arguments: '{"city":"Paris"}' } });
  const tools = await openai.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'weather?' }], tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }] });
  assert.equal(tools.choices[0]?.finish_reason, 'tool_calls');
  const call = tools.choices[0]?.message.tool_calls?.[0];
  assert.equal(call?.type === 'function' ? call.function.arguments : undefined, '{"city":"Paris"}');
});

test('Gemini: an Anthropic SDK caller gets messages and message streams; provider errors keep their meaning', async () => {
  const anthropic = new Anthropic({ apiKey: 'sk-ant-client', baseURL: h.sidecar.url, maxRetries: 0 });
  const m = await anthropic.messages.create({ model: 'gemini-2.5-flash', max_tokens: 40, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(m.type, 'message');
  assert.equal(m.content[0]?.type === 'text' ? m.content[0].text : '', 'Hello from the Sluice fake provider.');
  assert.equal(((last().body['generationConfig'] as Record<string, unknown>)['maxOutputTokens']), 40);
  const final = await anthropic.messages.stream({ model: 'gemini-2.5-flash', max_tokens: 40, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
  assert.equal(final.content[0]?.type === 'text' ? final.content[0].text : '', 'Hello from the Sluice fake provider.');
  assert.ok(final.usage.output_tokens > 0);
  fake.enqueue({ status: 429, errorMessage: 'Resource has been exhausted (e.g. check quota).' });
  const r = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_RATE_LIMITED');
  assert.match(((await r.json()) as { error: { message: string } }).error.message, /exhausted/u);
});
