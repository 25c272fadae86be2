/**
 * Azure OpenAI with Entra ID: the sidecar exchanges the app registration's client secret (or, with
 * workload identity, the federated token in its file) for access tokens at the token endpoint, caches
 * them, and sends them as bearer tokens; the fake provider issues the tokens and accepts only those.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { compile, type AnyPolicyObject } from '@sluice/policy';
import { captureLogger, startFakeProvider, type FakeProvider } from '@sluice/testkit';
import { loadSidecarConfig, startSidecar, type Sidecar } from '../src/index.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '0c9a5b2e-1111-2222-3333-444455556666';
const tokenFile = join(mkdtempSync(join(tmpdir(), 'sluice-entra-')), 'azure-identity-token');

let fake: FakeProvider;
let sidecar: Sidecar;
before(async () => {
  fake = await startFakeProvider();
  writeFileSync(tokenFile, 'federated-jwt-1\n');
  fake.setEntra({ tenantId: TENANT, clientId: CLIENT, clientSecret: 'app-secret', federatedToken: 'federated-jwt-1' });
  const azure = (name: string, entra: Record<string, unknown>, auth?: Record<string, unknown>): Record<string, unknown> => ({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'LLMBackend',
    metadata: { name },
    spec: { provider: 'azure-openai', endpoint: fake.url, azure: { auth: 'entra', entra: { tenantId: TENANT, clientId: CLIENT, authorityHost: fake.url, ...entra } }, ...(auth === undefined ? {} : { auth }) },
  });
  const objects = [
    azure('secret', {}, { env: 'APP_SECRET' }),
    azure('workload', { federatedTokenFile: tokenFile }),
    azure('wrong', {}, { env: 'WRONG_SECRET' }),
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMRoute',
      metadata: { name: 'r' },
      spec: {
        rules: [
          { match: { models: ['by-secret'] }, backends: [{ name: 'secret', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 } },
          { match: { models: ['by-workload'] }, backends: [{ name: 'workload', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 } },
          { match: { models: ['wrong'] }, backends: [{ name: 'wrong', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 } },
        ],
      },
    },
  ] as unknown as AnyPolicyObject[];
  const secrets: Record<string, string> = { APP_SECRET: 'app-secret', WRONG_SECRET: 'not-it' };
  const { snapshot, issues } = compile(
    objects.map((object, i) => ({ object, where: `t#${i}` })),
    { resolveSecret: (_ns, a) => (a.env === undefined ? undefined : secrets[a.env]) },
  );
  assert.deepEqual(issues, []);
  sidecar = await startSidecar({ config: loadSidecarConfig({}, { port: 0, adminPort: 0, host: '127.0.0.1', adminHost: '127.0.0.1' }), logger: captureLogger().logger, snapshot });
});
after(async () => {
  await sidecar.close();
  await fake.close();
});

const chat = (model: string): Promise<Response> => fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });

test('client credentials: one token exchange, the token sent as a bearer and reused', async () => {
  const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 });
  const before = fake.entraIssued;
  const answers = await Promise.all([0, 1, 2].map(() => client.chat.completions.create({ model: 'by-secret', messages: [{ role: 'user', content: 'hi' }] })));
  assert.ok(answers.every((a) => a.object === 'chat.completion'));
  assert.equal(fake.entraIssued - before, 1, 'concurrent requests share one exchange');
  const auth = String(fake.requests.at(-1)?.headers['authorization']);
  assert.match(auth, /^Bearer entra-[0-9a-f]{24}$/u);
  assert.equal(fake.requests.at(-1)?.headers['api-key'], undefined);
  const token = fake.requests.find((r) => r.path.endsWith('/oauth2/v2.0/token'));
  assert.equal(token?.path, `/${TENANT}/oauth2/v2.0/token`);
  assert.match(token?.body ?? '', /scope=https%3A%2F%2Fcognitiveservices\.azure\.com%2F\.default/u);
});

test('workload identity: the federated token from its file is the client assertion', async () => {
  const r = await chat('by-workload');
  assert.equal(r.status, 200);
  const exchange = fake.requests.filter((q) => q.path.endsWith('/oauth2/v2.0/token')).at(-1);
  assert.match(exchange?.body ?? '', /client_assertion=federated-jwt-1/u);
  assert.doesNotMatch(exchange?.body ?? '', /client_secret/u);
});

test('a refused exchange is a 502 SLUICE_ERR_UPSTREAM_AUTH with Entra ID\'s reason; nothing reaches Azure', async () => {
  const before = fake.requests.filter((q) => q.path.startsWith('/openai/')).length;
  const r = await chat('wrong');
  assert.equal(r.status, 502);
  assert.equal(r.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_AUTH');
  assert.match(((await r.json()) as { error: { message: string } }).error.message, /AADSTS7000215/u);
  assert.equal(fake.requests.filter((q) => q.path.startsWith('/openai/')).length, before);
});
