/**
 * Kubernetes end to end without a cluster: the built control plane binary in `kubernetes` mode
 * against the fake Kubernetes API (CRDs, a Secret, TokenReview, Leases), an AdmissionReview through
 * its injection webhook, and a sidecar binary started with exactly the environment the patch gave
 * it and the token the projected volume would hold. The sidecar authenticates over TLS, receives
 * its scoped snapshot (with the key from the Secret) and serves a request through the fake provider.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastJsonPatch from 'fast-json-patch';
import { startFakeKube, startFakeProvider, type FakeKube, type FakeProvider, waitFor, freePorts } from '@sluice/testkit';

const until = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15000): Promise<number> => waitFor(what, cond, timeoutMs, () => output.join('').slice(-3000));

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CP_MAIN = join(ROOT, 'packages/control-plane/dist/src/main.js');
const SIDECAR_MAIN = join(ROOT, 'packages/sidecar/dist/src/main.js');
const POD = 'chat-7d9f';

let dir: string;
let kube: FakeKube;
let fake: FakeProvider;
const children: ChildProcess[] = [];
const output: string[] = [];


function spawnNode(file: string, env: Record<string, string>): ChildProcess {
  const c = spawn(process.execPath, [file], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  c.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  c.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  children.push(c);
  return c;
}


function postJson(url: string, body: unknown, ca: Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-k8s-e2e-'));
  const ssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '1', '-subj', '/CN=e2e-ca']);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.csr'), '-subj', '/CN=sluice-control-plane']);
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl(['x509', '-req', '-in', join(dir, 'tls.csr'), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, 'tls.crt'), '-days', '1', '-extfile', join(dir, 'san.ext')]);
  kube = await startFakeKube({ resources: [{ group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false }] });
  fake = await startFakeProvider();
  kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'sluice.dev/injection': 'enabled' } } });
  kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'openai', namespace: 'shop' }, data: { apiKey: Buffer.from('sk-from-secret\n').toString('base64') } });
  kube.apply({ apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMBackend', metadata: { name: 'openai', namespace: 'shop' }, spec: { provider: 'openai', endpoint: fake.url, auth: { secretRef: { name: 'openai', key: 'apiKey' } } } });
  kube.apply({ apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'chat', namespace: 'shop' }, spec: { workloadSelector: { labels: { app: 'chat' } }, rules: [{ match: { models: ['gpt-*'] }, backends: [{ name: 'openai' }] }] } });
  kube.apply({ apiVersion: 'sluice.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'batch', namespace: 'shop' }, spec: { workloadSelector: { labels: { app: 'batch' } }, rules: [{ match: { models: ['claude-*'] }, backends: [{ name: 'openai' }] }] } });
  kube.setTokenReview('projected-token-of-chat', { authenticated: true, user: { username: 'system:serviceaccount:shop:default', extra: { 'authentication.kubernetes.io/pod-name': [POD] } } });
  await writeFile(join(dir, 'kubeconfig'), kube.kubeConfig().exportConfig());
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await kube.close();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

test('webhook-injected sidecar authenticates, gets its scoped snapshot and serves', { timeout: 60_000 }, async () => {
  const [grpc, cpAdmin, webhook, api, admin] = await freePorts(5);
  spawnNode(CP_MAIN, {
    SLUICE_CP_SOURCE: 'kubernetes',
    KUBECONFIG: join(dir, 'kubeconfig'),
    SLUICE_CP_GRPC_ADDRESS: `127.0.0.1:${grpc}`,
    SLUICE_CP_GRPC_TLS_CERT_FILE: join(dir, 'tls.crt'),
    SLUICE_CP_GRPC_TLS_KEY_FILE: join(dir, 'tls.key'),
    SLUICE_CP_ADMIN_PORT: String(cpAdmin),
    SLUICE_CP_WEBHOOK_HOST: '127.0.0.1',
    SLUICE_CP_WEBHOOK_PORT: String(webhook),
    SLUICE_CP_WEBHOOK_CERT_FILE: join(dir, 'tls.crt'),
    SLUICE_CP_WEBHOOK_KEY_FILE: join(dir, 'tls.key'),
    SLUICE_CP_SIDECAR_IMAGE: 'ghcr.io/sluice-dev/sluice:e2e',
    SLUICE_CP_SIDECAR_CONTROL_ADDRESS: `127.0.0.1:${grpc}`,
    SLUICE_CP_SIDECAR_CA_PEM_FILE: join(dir, 'ca.crt'),
    SLUICE_POD_NAMESPACE: 'sluice-system',
    SLUICE_POD_NAME: 'sluice-control-plane-0',
  });
  await until('control plane ready', async () => (await fetch(`http://127.0.0.1:${cpAdmin}/ready`)).status === 200);

  // The API server sends the pod to the webhook.
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: 'shop', labels: { app: 'chat' } },
    spec: { serviceAccountName: 'default', containers: [{ name: 'app', image: 'python:3.12-slim', env: [{ name: 'OPENAI_BASE_URL', value: 'http://keep-mine' }] }] },
  };
  const ca = await readFile(join(dir, 'ca.crt'));
  const review = await postJson(
    `https://127.0.0.1:${webhook}/inject`,
    { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'uid-1', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', object: pod } },
    ca,
  );
  assert.equal(review.status, 200);
  const response = review.json['response'] as { uid: string; allowed: boolean; patch: string; patchType: string };
  assert.equal(response.uid, 'uid-1');
  assert.equal(response.allowed, true);
  assert.equal(response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as fastJsonPatch.Operation[];
  const patched = fastJsonPatch.applyPatch(structuredClone(pod), ops, true).newDocument as unknown as {
    spec: { initContainers: Array<{ name: string; restartPolicy: string; env: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }> }>; containers: Array<{ env: Array<{ name: string; value?: string }> }>; volumes: Array<{ name: string; projected?: { sources: Array<{ serviceAccountToken?: { audience: string } }> } }> };
  };
  const sidecar = patched.spec.initContainers[0]!;
  assert.equal(sidecar.name, 'sluice-sidecar');
  assert.equal(sidecar.restartPolicy, 'Always');
  assert.ok(patched.spec.volumes.some((v) => v.projected?.sources.some((s) => s.serviceAccountToken?.audience === 'sluice')));
  const appEnv = Object.fromEntries(patched.spec.containers[0]!.env.map((e) => [e.name, e.value]));
  assert.equal(appEnv['OPENAI_BASE_URL'], 'http://keep-mine', 'an app setting is kept');
  assert.equal(appEnv['ANTHROPIC_BASE_URL'], 'http://127.0.0.1:4000');

  // Start the sidecar as the kubelet would: the patch's env, downward API values resolved, the
  // mounted files (token, labels, CA, state) placed where the env points.
  await writeFile(join(dir, 'token'), 'projected-token-of-chat');
  await writeFile(join(dir, 'labels'), 'app="chat"\n');
  const fieldRefs: Record<string, string> = { 'metadata.name': POD, 'metadata.namespace': 'shop', 'spec.serviceAccountName': 'default' };
  const files: Record<string, string> = { SLUICE_SIDECAR_TOKEN_FILE: join(dir, 'token'), SLUICE_POD_LABELS_FILE: join(dir, 'labels'), SLUICE_SIDECAR_STATE_DIR: join(dir, 'state') };
  const env: Record<string, string> = {};
  for (const e of sidecar.env) {
    const v = e.value ?? (e.valueFrom?.fieldRef ? fieldRefs[e.valueFrom.fieldRef.fieldPath] : undefined);
    assert.ok(v !== undefined, `env ${e.name} resolvable`);
    env[e.name] = files[e.name] ?? v;
  }
  for (const k of Object.keys(files)) assert.ok(k in env, `the patch sets ${k}`);
  assert.match(env['SLUICE_SIDECAR_CA_PEM'] ?? '', /^-----BEGIN CERTIFICATE-----/, 'the CA travels inline in the patch');
  // Loopback-only in tests; the ports are free ones instead of 4000/4001.
  Object.assign(env, { SLUICE_SIDECAR_PORT: String(api), SLUICE_SIDECAR_ADMIN_HOST: '127.0.0.1', SLUICE_SIDECAR_ADMIN_PORT: String(admin) });
  spawnNode(SIDECAR_MAIN, env);
  await until('sidecar ready', async () => (await fetch(`http://127.0.0.1:${admin}/ready`)).status === 200);

  const r = await fetch(`http://127.0.0.1:${api}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 200);
  assert.equal(fake.requests.at(-1)?.headers['authorization'], 'Bearer sk-from-secret', 'the key comes from the Secret');
  const scoped = await fetch(`http://127.0.0.1:${api}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(scoped.status, 404, 'the batch workload route is not in the chat pod snapshot');

  const sidecars = (await (await fetch(`http://127.0.0.1:${cpAdmin}/v1/sidecars`)).json()) as { sidecars: Array<{ pod: string; namespace: string; versionAcked: string }> };
  assert.deepEqual(sidecars.sidecars.map((s) => [s.pod, s.namespace]), [[POD, 'shop']]);
  // The leader writes status: the chat route is programmed on the one sidecar it selects.
  await until('status written', async () => {
    const o = kube.get('sluice.dev/v1alpha1', 'LLMRoute', 'shop', 'chat') as { status?: { conditions?: Array<{ type: string; status: string }> } } | undefined;
    return o?.status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True') === true;
  });
});
