/**
 * The authenticated control channel: TLS on the gRPC port, sidecars send their projected token,
 * the control plane verifies it with TokenReview (the fake Kubernetes API, through the real
 * client-node), binds it to the stream's node, caches verifications, and refuses mismatches.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureLogger, quietLogger, startFakeKube, startFakeProvider, type FakeKube, type FakeProvider, waitFor as until } from '@sluice/testkit';
import { FileSource, startControlPlane, TokenAuthenticator, type ControlPlane } from '../src/index.js';
import { startTestPod, type TestPod } from './pods.js';
import { tokenReviewVerifier } from '../src/token-review.js';

const logger = quietLogger();
let dir: string;
let kube: FakeKube;
let fake: FakeProvider;
let cp: ControlPlane;
let auth: TokenAuthenticator;
const opened: TestPod[] = [];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-auth-'));
  // A CA and a server certificate for 127.0.0.1 / localhost.
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '1', '-subj', '/CN=sluice-test-ca']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.csr'), '-subj', '/CN=sluice-control-plane']);
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, 'server.crt'), '-days', '1', '-extfile', join(dir, 'san.ext')]);
  kube = await startFakeKube();
  const sa = (ns: string, name: string, pod: string) => ({ authenticated: true, user: { username: `system:serviceaccount:${ns}:${name}`, extra: { 'authentication.kubernetes.io/pod-name': [pod] } } });
  kube.setTokenReview('token-p1', sa('shop', 'default', 'p1'));
  kube.setTokenReview('token-p1-rotated', sa('shop', 'default', 'p1'));
  kube.setTokenReview('token-other-ns', sa('bank', 'default', 'b1'));
  fake = await startFakeProvider();
  await writeFile(
    join(dir, 'policy.yaml'),
    `apiVersion: sluice.dev/v1alpha1\nkind: LLMBackend\nmetadata: { name: b, namespace: shop }\nspec: { provider: openai-compatible, endpoint: "${fake.url}" }\n---\napiVersion: sluice.dev/v1alpha1\nkind: LLMRoute\nmetadata: { name: r, namespace: shop }\nspec: { rules: [{ match: { models: ["*"] }, backends: [{ name: b }] }] }\n`,
  );
  auth = new TokenAuthenticator(tokenReviewVerifier(kube.kubeConfig()));
  cp = await startControlPlane({
    source: new FileSource(dir),
    logger,
    grpcAddress: '127.0.0.1:0',
    adminHost: '127.0.0.1',
    adminPort: 0,
    tls: { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), refreshIntervalMs: 100 },
    authenticator: auth,
  });
});

after(async () => {
  for (const o of opened) await o.close();
  await cp.close();
  await kube.close();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

/** A pod whose `errors` are the reasons its policy stream was lost (from its log). */
async function pod(name: string, tokenFile: string | undefined, caFile: string | undefined = join(dir, 'ca.crt')): Promise<TestPod & { readonly errors: string[] }> {
  const { logger: log, logs } = captureLogger<{ msg?: string; why?: string }>();
  const p = await startTestPod({ address: cp.grpcAddress, name, logger: log, caFile, tokenFile });
  opened.push(p);
  return {
    ...p,
    get errors(): string[] {
      return logs.filter((l) => l.msg?.includes('reconnecting')).map((l) => l.why ?? '');
    },
  };
}


test('a sidecar with a valid token for its own pod gets its snapshot over TLS', async () => {
  await writeFile(join(dir, 'p1.token'), 'token-p1\n');
  const p = await pod('p1', join(dir, 'p1.token'));
  await until('snapshot', () => p.sidecar.snapshotVersion !== undefined);
  const r = await fetch(`${p.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 200);
  assert.ok(kube.requests.some((q) => q.path.endsWith('/tokenreviews')), 'verified through TokenReview');
});

test('mismatched identities and missing tokens are refused with a clear status', async () => {
  await writeFile(join(dir, 'other.token'), 'token-other-ns');
  const wrongNs = await pod('p2', join(dir, 'other.token'));
  await until('refusal', () => wrongNs.errors.length > 0);
  assert.match(wrongNs.errors[0] ?? '', /PERMISSION_DENIED|7 /);
  assert.match(wrongNs.errors[0] ?? '', /token of bank\/default cannot stream for shop\/default/);
  // A valid token bound to pod p1, presented by pod p3.
  const wrongPod = await pod('p3', join(dir, 'p1.token'));
  await until('refusal', () => wrongPod.errors.length > 0);
  assert.match(wrongPod.errors[0] ?? '', /token bound to pod p1 cannot stream for pod p3/);
  await writeFile(join(dir, 'bogus.token'), 'not-a-token');
  const bogus = await pod('p4', join(dir, 'bogus.token'));
  await until('refusal', () => bogus.errors.length > 0);
  assert.match(bogus.errors[0] ?? '', /UNAUTHENTICATED|16 /);
  for (const p of [wrongNs, wrongPod, bogus]) assert.equal(p.sidecar.snapshotVersion, undefined, 'no policy for a refused sidecar');
  assert.deepEqual(cp.streams.sidecars().map((s) => s.pod).sort(), ['p1']);
  // Refused sidecars keep retrying with backoff; stop them so later counts are exact.
  for (const p of [wrongNs, wrongPod, bogus]) p.client.close();
});

test('plaintext clients cannot connect to the TLS port', async () => {
  const plain = await pod('p5', undefined, undefined);
  await until('failure', () => plain.errors.length > 0);
  assert.equal(plain.sidecar.snapshotVersion, undefined);
  plain.client.close();
});

test('verifications are cached; a rotated token file is re-read on reconnect', async () => {
  const before = auth.verifications;
  const again = await pod('p1', join(dir, 'p1.token'));
  await until('snapshot', () => again.sidecar.snapshotVersion !== undefined);
  assert.equal(auth.verifications, before, 'same token: served from the cache');
  await writeFile(join(dir, 'p1.token'), 'token-p1-rotated');
  kube.requests.length = 0;
  const rotated = await pod('p1', join(dir, 'p1.token'));
  await until('snapshot', () => rotated.sidecar.snapshotVersion !== undefined);
  assert.equal(auth.verifications, before + 1, 'the new token was verified');
  assert.ok(kube.requests.some((q) => q.path.endsWith('/tokenreviews')));
});

test('a rotated serving certificate is picked up without a restart', async () => {
  // A new CA and certificate replace the files in place (as cert-manager does).
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca2.key'), '-out', join(dir, 'ca2.crt'), '-days', '1', '-subj', '/CN=sluice-test-ca-2']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'server2.key'), '-out', join(dir, 'server2.csr'), '-subj', '/CN=sluice-control-plane']);
  openssl(['x509', '-req', '-in', join(dir, 'server2.csr'), '-CA', join(dir, 'ca2.crt'), '-CAkey', join(dir, 'ca2.key'), '-CAcreateserial', '-out', join(dir, 'server2.crt'), '-days', '1', '-extfile', join(dir, 'san.ext')]);
  await rename(join(dir, 'server2.key'), join(dir, 'server.key'));
  await rename(join(dir, 'server2.crt'), join(dir, 'server.crt'));
  await new Promise((r) => setTimeout(r, 400));
  await writeFile(join(dir, 'p1.token'), 'token-p1');
  const fresh = await pod('p1', join(dir, 'p1.token'), join(dir, 'ca2.crt'));
  await until('snapshot with the new certificate', () => fresh.sidecar.snapshotVersion !== undefined);
  const stale = await pod('p1', join(dir, 'p1.token'), join(dir, 'ca.crt'));
  await until('the old CA no longer verifies new connections', () => stale.errors.length > 0);
  stale.client.close();
});
