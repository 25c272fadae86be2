/**
 * Google Vertex AI through the sidecar: the Gemini format under the project and location path, a
 * service-account key in the backend's Secret, and a token signed by google-auth-library that the
 * fake provider verifies against the key's public half (a wrong key is refused with 401).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import OpenAI from 'openai';
import { compile, type AnyPolicyObject } from '@sluice/policy';
import { captureLogger, startFakeProvider, type FakeProvider } from '@sluice/testkit';
import { loadSidecarConfig, startSidecar, type Sidecar } from '../src/index.js';

const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const saKey = JSON.stringify({
  type: 'service_account',
  project_id: 'shop-ml',
  private_key_id: 'k1',
  private_key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  client_email: 'sluice@shop-ml.iam.gserviceaccount.com',
});

let fake: FakeProvider;
let sidecar: Sidecar;
before(async () => {
  fake = await startFakeProvider();
  fake.setGcpPublicKey(key.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  // Workload identity: google-auth-library finds the (fake) metadata server through GCE_METADATA_HOST.
  fake.setGcpMetadataToken('ya29.workload-identity-token');
  process.env['GCE_METADATA_HOST'] = fake.url.replace(/^http:\/\//u, '');
  delete process.env['GOOGLE_APPLICATION_CREDENTIALS'];
  const objects = [
    { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'vertex' }, spec: { provider: 'vertex-ai', endpoint: fake.url, vertex: { project: 'shop-ml', location: 'europe-west4' }, auth: { env: 'VERTEX_SA_KEY' } } },
    { apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'vertex-wi' }, spec: { provider: 'vertex-ai', endpoint: fake.url, vertex: { project: 'shop-ml', location: 'global' } } },
    {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'LLMRoute',
      metadata: { name: 'r' },
      spec: {
        rules: [
          { match: { models: ['gemini-*'] }, backends: [{ name: 'vertex' }], retry: { attempts: 1 } },
          { match: { models: ['wi-gemini'] }, backends: [{ name: 'vertex-wi', modelOverride: 'gemini-2.5-flash' }], retry: { attempts: 1 } },
        ],
      },
    },
  ] as unknown as AnyPolicyObject[];
  const { snapshot, issues } = compile(
    objects.map((object, i) => ({ object, where: `t#${i}` })),
    { resolveSecret: (_ns, auth) => (auth.env === 'VERTEX_SA_KEY' ? saKey : undefined) },
  );
  assert.deepEqual(issues, []);
  sidecar = await startSidecar({ config: loadSidecarConfig({}, { port: 0, adminPort: 0, host: '127.0.0.1', adminHost: '127.0.0.1' }), logger: captureLogger().logger, snapshot });
});
after(async () => {
  await sidecar.close();
  await fake.close();
});

test('Vertex AI: project/location path, a signed service-account token, Gemini translated both ways', async () => {
  const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.choices[0]?.message.content, 'Hello from the Sluice fake provider.');
  const sent = fake.requests.at(-1);
  assert.equal(sent?.path, '/v1/projects/shop-ml/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent');
  const token = String(sent?.headers['authorization'] ?? '').replace(/^Bearer /u, '');
  const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  assert.equal(claims['iss'], 'sluice@shop-ml.iam.gserviceaccount.com');
  assert.match(String(claims['scope']), /cloud-platform/u);
  assert.equal(JSON.stringify(sent?.headers).includes('BEGIN PRIVATE KEY'), false, 'the key itself never leaves the sidecar');
  // Streams too; and the token is reused (signed once, cached by the library).
  let text = '';
  for await (const c of await client.chat.completions.create({ model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'hi' }] })) text += c.choices[0]?.delta.content ?? '';
  assert.equal(text, 'Hello from the Sluice fake provider.');
  assert.equal(fake.requests.at(-1)?.headers['authorization'], `Bearer ${token}`);
});

test('a token signed by another key is refused by Vertex: 502 SLUICE_ERR_UPSTREAM_AUTH in the caller shape', async () => {
  fake.setGcpPublicKey(other.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const r = await fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 502);
  assert.equal(r.headers.get('x-sluice-error-code'), 'SLUICE_ERR_UPSTREAM_AUTH');
  assert.match(((await r.json()) as { error: { message: string } }).error.message, /bad signature/u);
});

test('no key: workload identity through the metadata server (application default credentials), the token cached', async () => {
  const calls = fake.gcpMetadataCalls;
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'wi-gemini', messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(r.status, 200, await r.clone().text());
  }
  const sent = fake.requests.at(-1);
  assert.equal(sent?.path, '/v1/projects/shop-ml/locations/global/publishers/google/models/gemini-2.5-flash:generateContent');
  assert.equal(sent?.headers['authorization'], 'Bearer ya29.workload-identity-token');
  assert.equal(fake.gcpMetadataCalls - calls, 1, 'one token for both requests');
});
