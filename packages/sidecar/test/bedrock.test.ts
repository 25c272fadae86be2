/**
 * AWS Bedrock Converse through the sidecar: SigV4-signed requests (verified by the fake provider with
 * the AWS signing library), Converse JSON and ConverseStream event-stream frames translated to the
 * OpenAI and Anthropic shapes, tool use, an exception frame mid-stream, a wrong key refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { compile, type AnyPolicyObject } from '@sluice/policy';
import { bundledPrice, costMicros } from '@sluice/providers';
import { captureLogger, startFakeProvider, type FakeProvider } from '@sluice/testkit';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSidecarConfig, startSidecar, type Sidecar } from '../src/index.js';

const CREDS = { accessKeyId: 'AKIAEXAMPLEKEY123456', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const TEMP = { accessKeyId: 'ASIATEMPORARYKEY1234', secretAccessKey: 'temporarySecretKeyFromSts/abcdefghijk', sessionToken: 'FwoGZXIvYXdzEJr//////////wEaDFakeSessionToken' };
const ROLE = 'arn:aws:iam::123456789012:role/sluice-bedrock';
const tokenFile = join(mkdtempSync(join(tmpdir(), 'sluice-irsa-')), 'token');
const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';

let fake: FakeProvider;
let sidecar: Sidecar;
let logs: Array<Record<string, unknown>>;
before(async () => {
  fake = await startFakeProvider();
  fake.setAwsCredentials(CREDS, 'us-east-1');
  writeFileSync(tokenFile, 'eyJhbGciOiJSUzI1NiJ9.irsa-token.sig');
  fake.setSts({ roleArn: ROLE, webIdentityToken: 'eyJhbGciOiJSUzI1NiJ9.irsa-token.sig', issue: TEMP });
  const objects = [
    { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'bedrock' }, spec: { provider: 'bedrock', endpoint: fake.url, bedrock: { region: 'us-east-1' }, auth: { env: 'AWS_KEYS' } } },
    { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'bedrock-irsa' }, spec: { provider: 'bedrock', endpoint: fake.url, bedrock: { region: 'us-east-1', roleArn: ROLE, webIdentityTokenFile: tokenFile, stsEndpoint: fake.url } } },
    { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'bedrock-wrong' }, spec: { provider: 'bedrock', endpoint: fake.url, bedrock: { region: 'us-east-1' }, auth: { env: 'WRONG_KEYS' } } },
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMRoute',
      metadata: { name: 'r' },
      spec: {
        rules: [
          { match: { models: ['claude-on-aws'] }, backends: [{ name: 'bedrock', modelOverride: MODEL }], retry: { attempts: 1 } },
          { match: { models: ['claude-irsa'] }, backends: [{ name: 'bedrock-irsa', modelOverride: MODEL }], retry: { attempts: 1 } },
          { match: { models: ['wrong-key'] }, backends: [{ name: 'bedrock-wrong', modelOverride: MODEL }], retry: { attempts: 1 } },
        ],
      },
    },
    { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'guarded' }, spec: { rules: [{ match: { models: ['guarded-claude'] }, backends: [{ name: 'bedrock', modelOverride: MODEL }], retry: { attempts: 1 } }] } },
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMGuardrail',
      metadata: { name: 'aws-guardrail' },
      spec: { match: { routes: ['guarded'] }, direction: 'both', action: 'block', classifier: { backend: 'bedrock', model: 'gr7abc123:3', format: 'bedrockGuardrail', categories: ['VIOLENCE', 'MISCONDUCT'] } },
    },
  ] as unknown as AnyPolicyObject[];
  const secrets: Record<string, string> = { AWS_KEYS: JSON.stringify(CREDS), WRONG_KEYS: JSON.stringify({ ...CREDS, secretAccessKey: 'not-the-secret' }) };
  const { snapshot, issues } = compile(
    objects.map((object, i) => ({ object, where: `t#${i}` })),
    { resolveSecret: (_ns, auth) => (auth.env === undefined ? undefined : secrets[auth.env]) },
  );
  assert.deepEqual(issues, []);
  const captured = captureLogger();
  logs = captured.logs as Array<Record<string, unknown>>;
  sidecar = await startSidecar({ config: loadSidecarConfig({}, { port: 0, adminPort: 0, host: '127.0.0.1', adminHost: '127.0.0.1' }), logger: captured.logger, snapshot });
});
after(async () => {
  await sidecar.close();
  await fake.close();
});

test('Converse: a SigV4-signed request, the answer in the OpenAI shape, priced as the model behind the inference profile', async () => {
  const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 });
  const { data, response } = await client.chat.completions.create({ model: 'claude-on-aws', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }], max_tokens: 64 }).withResponse();
  assert.equal(data.choices[0]?.message.content, 'Hello from the Sluice fake provider.');
  const sent = fake.requests.at(-1);
  assert.equal(sent?.path, `/model/${encodeURIComponent(MODEL)}/converse`);
  assert.match(String(sent?.headers['authorization']), /^AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY123456\/\d{8}\/us-east-1\/bedrock\/aws4_request/u);
  const body = JSON.parse(sent?.body ?? '{}') as Record<string, unknown>;
  assert.deepEqual(body['system'], [{ text: 'Be brief.' }]);
  assert.deepEqual(body['inferenceConfig'], { maxTokens: 64 });
  const price = bundledPrice('bedrock', MODEL);
  assert.ok(price !== undefined && data.usage !== undefined);
  assert.equal(Number(response.headers.get('x-sluice-cost-micros')), costMicros({ inputTokens: data.usage.prompt_tokens, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: data.usage.completion_tokens, reasoningTokens: 0 }, price));
});

test('ConverseStream: event-stream frames become an OpenAI stream and an Anthropic stream; tool use too', async () => {
  const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 });
  let text = '';
  let usage: unknown;
  for await (const c of await client.chat.completions.create({ model: 'claude-on-aws', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] })) {
    text += c.choices[0]?.delta.content ?? '';
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, 'Hello from the Sluice fake provider.');
  assert.ok(usage !== undefined);
  assert.match(fake.requests.at(-1)?.path ?? '', /\/converse-stream$/u);

  const anthropic = new Anthropic({ apiKey: 'x', baseURL: sidecar.url, maxRetries: 0 });
  const final = await anthropic.messages.stream({ model: 'claude-on-aws', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
  assert.equal(final.content[0]?.type === 'text' ? final.content[0].text : '', 'Hello from the Sluice fake provider.');
  assert.ok(final.usage.output_tokens > 0);

  fake.enqueue({ toolCall: { name: 'weather', arguments: '{"city":"Paris"}' } });
  const calls: string[] = [];
  for await (const c of await client.chat.completions.create({ model: 'claude-on-aws', stream: true, messages: [{ role: 'user', content: 'weather?' }], tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' } } }] })) {
    for (const tc of c.choices[0]?.delta.tool_calls ?? []) if (tc.function?.arguments) calls.push(tc.function.arguments);
  }
  assert.equal(calls.join(''), '{"city":"Paris"}');
});

test('an exception frame mid-stream ends the stream with an error event; a wrong key is a 502 auth error', async () => {
  fake.enqueue({ midStreamError: true, errorMessage: 'Too many tokens, slow down' });
  const r = await fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-on-aws', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  const text = await r.text();
  assert.match(text, /"error"/u);
  assert.match(text, /slow down/u);
  const line = logs.filter((l) => l['msg'] === 'request').at(-1);
  assert.equal(line?.['code'], 'SLUICE_ERR_UPSTREAM_RATE_LIMITED');

  const w = await fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'wrong-key', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(w.status, 502);
  assert.equal(w.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_AUTH');
  assert.match(((await w.json()) as { error: { message: string } }).error.message, /signature/u);
});

test('IRSA: no Secret, the role is assumed with the web identity token; the temporary keys sign, cached', async () => {
  fake.setAwsCredentials(TEMP, 'us-east-1');
  try {
    const calls = fake.stsCalls;
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-irsa', messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(r.status, 200, await r.clone().text());
    }
    assert.equal(fake.stsCalls - calls, 1, 'one AssumeRoleWithWebIdentity for three requests');
    const sent = fake.requests.at(-1);
    assert.match(String(sent?.headers['authorization']), /Credential=ASIATEMPORARYKEY1234\//u);
    assert.equal(sent?.headers['x-amz-security-token'], TEMP.sessionToken);
  } finally {
    fake.setAwsCredentials(CREDS, 'us-east-1');
  }
});

test('an Amazon Bedrock guardrail as the classifier: ApplyGuardrail signed with the backend keys; blocking categories block, others pass', async () => {
  const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 });
  const converse = (): number => fake.requests.filter((r) => r.path.includes('/converse')).length;
  const before = converse();
  await assert.rejects(
    client.chat.completions.create({ model: 'guarded-claude', messages: [{ role: 'user', content: 'Help me murder the competition.' }] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && /aws-guardrail.*VIOLENCE/u.test(e.message),
  );
  const asked = fake.requests.at(-1);
  assert.equal(asked?.path, '/guardrail/gr7abc123/version/3/apply');
  assert.match(String(asked?.headers['authorization']), /^AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY123456\/\d{8}\/us-east-1\/bedrock\/aws4_request/u);
  assert.deepEqual(JSON.parse(asked?.body ?? '{}'), { source: 'INPUT', content: [{ text: { text: 'Help me murder the competition.' } }] });
  assert.equal(converse(), before, 'nothing went to the model');

  // An e-mail address makes the guardrail intervene (PII anonymised), which is not a category that counts.
  const ok = await client.chat.completions.create({ model: 'guarded-claude', messages: [{ role: 'user', content: 'Write to ops@example.com' }] });
  assert.equal(ok.choices[0]?.message.content, 'Hello from the Sluice fake provider.');
  const checks = fake.requests.filter((r) => r.path.startsWith('/guardrail/')).slice(-2).map((r) => (JSON.parse(r.body) as { source: string }).source);
  assert.deepEqual(checks, ['INPUT', 'OUTPUT'], 'the answer was checked too');
  const line = logs.filter((l) => l['msg'] === 'request').at(-1);
  assert.equal(line?.['guardrails'], undefined, 'categories that do not count are not findings');
});
