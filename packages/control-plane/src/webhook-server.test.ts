import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import jsonpatch from 'fast-json-patch';
import type { AdmissionReviewResponse, InjectorOptions } from './injector.js';
import { loadWebhookOptions, startWebhookServer, type WebhookServer } from './webhook-server.js';
import { captureLogger } from '@sluice/testkit';

/* eslint-disable @typescript-eslint/no-explicit-any -- pods are free-form JSON in these assertions */
type Json = any;

const FIXTURES = new URL('../../test/fixtures/admission/', import.meta.url);
const fixtureText = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');
const fixture = (name: string): Json => JSON.parse(fixtureText(name));

const INJECTOR: InjectorOptions = {
  image: 'ghcr.io/sluice-dev/sluice:0.1.0',
  controlAddress: 'sluice-control-plane.sluice-system.svc:9443',
  controlPlaneNamespace: 'sluice-system',
};

const { logger, logs } = captureLogger<Record<string, Json>>({ level: 'debug' });

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: Json;
  /** Fingerprint of the server certificate (TLS only). */
  fingerprint?: string;
}

function call(url: string, o: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string>; ca?: string; chunked?: boolean } = {}): Promise<Reply> {
  const u = new URL(o.path ?? '/inject', url);
  const body = o.body === undefined ? undefined : Buffer.from(o.body);
  const headers: Record<string, string> = {
    ...(body ? { 'content-type': 'application/json', ...(o.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) }) } : {}),
    ...o.headers,
  };
  return new Promise((resolve, reject) => {
    const opts = { method: o.method ?? (body ? 'POST' : 'GET'), headers, agent: false as const };
    const onRes = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate?.()?.fingerprint256;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, ...(fingerprint ? { fingerprint } : {}) });
      });
      res.on('error', reject);
    };
    const req = u.protocol === 'https:' ? httpsRequest(u, { ...opts, ...(o.ca ? { ca: o.ca } : {}) }, onRes) : httpRequest(u, opts, onRes);
    req.on('error', reject);
    req.end(body);
  });
}

function patchedPod(reviewBody: Json, r: AdmissionReviewResponse): Json {
  const ops = r.response.patch === undefined ? [] : (JSON.parse(Buffer.from(r.response.patch, 'base64').toString('utf8')) as jsonpatch.Operation[]);
  return jsonpatch.applyPatch(structuredClone(reviewBody.request.object), ops, true).newDocument;
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP (test mode)

let plain: WebhookServer;
const lookups: string[] = [];
before(async () => {
  plain = await startWebhookServer({
    host: '127.0.0.1',
    port: 0,
    injector: INJECTOR,
    logger,
    namespaceLookupTimeoutMs: 100,
    namespaceLabels: async (ns) => {
      lookups.push(ns);
      if (ns === 'shop') return { 'sluice.dev/injection': 'enabled' };
      if (ns === 'broken') throw new Error('apiserver unavailable');
      if (ns === 'slow') return new Promise(() => undefined);
      if (ns === 'gone') return undefined;
      return {};
    },
  });
});
after(() => plain.close());

test('POST /inject: AdmissionReview v1 out, base64 JSONPatch that applies, logged', async () => {
  assert.equal(plain.tls, false);
  assert.match(plain.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const body = fixture('deployment-pod.json');
  const res = await call(plain.url, { body: fixtureText('deployment-pod.json') });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  const r = res.json as AdmissionReviewResponse;
  assert.equal(r.apiVersion, 'admission.k8s.io/v1');
  assert.equal(r.kind, 'AdmissionReview');
  assert.equal(r.response.uid, body.request.uid);
  assert.equal(r.response.allowed, true);
  assert.equal(r.response.patchType, 'JSONPatch');
  const pod = patchedPod(body, r);
  assert.deepEqual(pod.spec.initContainers.map((c: Json) => [c.name, c.restartPolicy]), [['sluice-sidecar', 'Always'], ['migrate', undefined]]);
  assert.equal(pod.spec.volumes.find((v: Json) => v.name === 'sluice-token').projected.sources[0].serviceAccountToken.audience, 'sluice');
  assert.equal(pod.spec.containers[0].env.find((e: Json) => e.name === 'OPENAI_BASE_URL').value, 'http://llm-proxy.platform.svc:8080/v1');
  assert.ok(lookups.includes('shop'));
  const line = logs.find((l) => l['msg'] === 'admission' && l['uid'] === body.request.uid);
  assert.equal(line?.['injected'], true);
  assert.equal(line?.['reason'], 'namespace-enabled');
  assert.equal(line?.['pod'], 'chat-7d9f8b6c5d-*');

  // Reinvocation with the patched pod: allowed, no patch.
  const again = await call(plain.url, { body: JSON.stringify({ ...body, request: { ...body.request, object: pod } }) });
  assert.equal(again.status, 200);
  assert.deepEqual(again.json, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: body.request.uid, allowed: true } });
});

test('namespace labels: known and not enabled → no sidecar; lookup failure or timeout → trust the selector', async () => {
  const body = fixture('bare-pod.json'); // namespace batch: labels {} (known, not enabled)
  const notEnabled = await call(plain.url, { body: JSON.stringify(body) });
  assert.deepEqual(notEnabled.json.response, { uid: body.request.uid, allowed: true });

  for (const ns of ['broken', 'slow', 'gone']) {
    const b = structuredClone(body);
    b.request.namespace = ns;
    b.request.object.metadata.namespace = ns;
    const t0 = Date.now();
    const res = await call(plain.url, { body: JSON.stringify(b) });
    assert.equal(res.status, 200, ns);
    assert.equal(res.json.response.patchType, 'JSONPatch', ns);
    assert.equal(patchedPod(b, res.json).spec.initContainers[0].name, 'sluice-sidecar', ns);
    assert.ok(Date.now() - t0 < 2000, ns);
  }
  assert.ok(logs.some((l) => l['msg']?.startsWith('webhook: namespace labels lookup failed') && l['namespace'] === 'slow'));

  // The pod's opt-in wins over an unlabelled namespace; its opt-out over an enabled one.
  const optIn = await call(plain.url, { body: fixtureText('opted-in-pod.json') });
  assert.equal(optIn.json.response.patchType, 'JSONPatch');
  const optOut = await call(plain.url, { body: fixtureText('opted-out-pod.json') });
  assert.equal(optOut.json.response.patch, undefined);
  const host = await call(plain.url, { body: fixtureText('host-network-pod.json') });
  assert.equal(host.json.response.patch, undefined);
  const injected = await call(plain.url, { body: fixtureText('already-injected-pod.json') });
  assert.deepEqual(injected.json.response, { uid: fixture('already-injected-pod.json').request.uid, allowed: true });
});

test('malformed bodies: 400 without a uid, allowed AdmissionReview with one', async () => {
  const noUid = await call(plain.url, { body: fixtureText('malformed-no-uid.json') });
  assert.equal(noUid.status, 400);
  assert.match(noUid.json.error, /request\.uid is missing/);

  const notJson = await call(plain.url, { body: '{"apiVersion":' });
  assert.equal(notJson.status, 400);
  assert.match(notJson.json.error, /not valid JSON/);

  const array = await call(plain.url, { body: '[]' });
  assert.equal(array.status, 400);
  assert.match(array.json.error, /not a JSON object/);

  const bad = await call(plain.url, { body: fixtureText('malformed-review.json') });
  assert.equal(bad.status, 200);
  assert.equal(bad.json.response.uid, 'c0ffee00-0000-4000-8000-000000000001');
  assert.equal(bad.json.response.allowed, true);
  assert.match(bad.json.response.status.message, /not an admission\.k8s\.io\/v1 AdmissionReview/);

  const odd = await call(plain.url, { body: fixtureText('malformed-containers.json') });
  assert.equal(odd.status, 200);
  assert.equal(odd.json.response.allowed, true);
  assert.equal(odd.json.response.patch, undefined);
  assert.deepEqual(odd.json.response.warnings, ['sluice: sidecar not injected, unexpected pod shape: spec.containers is not an array']);
});

test('HTTP layer: healthz, 404, 405, 415, 413 at 4 MiB', async () => {
  assert.deepEqual((await call(plain.url, { path: '/healthz' })).json, { status: 'ok' });
  assert.equal((await call(plain.url, { path: '/nope' })).status, 404);
  const get = await call(plain.url, { path: '/inject' });
  assert.equal(get.status, 405);
  assert.equal(get.headers['allow'], 'POST');
  assert.equal((await call(plain.url, { path: '/healthz', method: 'POST', body: '{}' })).status, 405);
  const text = await call(plain.url, { body: fixtureText('deployment-pod.json'), headers: { 'content-type': 'text/plain' } });
  assert.equal(text.status, 415);
  const charset = await call(plain.url, { body: fixtureText('deployment-pod.json'), headers: { 'content-type': 'application/json; charset=utf-8' } });
  assert.equal(charset.status, 200);

  // A body just under the limit is read (and, being junk padding in a valid review, answered 200).
  const body = fixture('bare-pod.json');
  const padded = (n: number): string => {
    const b = structuredClone(body);
    b.request.object.metadata.annotations = { pad: '' };
    const base = Buffer.byteLength(JSON.stringify(b));
    b.request.object.metadata.annotations.pad = 'x'.repeat(n - base);
    return JSON.stringify(b);
  };
  const limit = 4 * 1024 * 1024;
  const atLimit = padded(limit);
  assert.equal(Buffer.byteLength(atLimit), limit);
  assert.equal((await call(plain.url, { body: atLimit })).status, 200);
  const over = await call(plain.url, { body: padded(limit + 1) });
  assert.equal(over.status, 413);
  assert.match(over.json.error, /over the 4194304-byte limit/);
  // Without content-length (chunked), the limit applies while reading.
  const chunked = await call(plain.url, { body: padded(limit + 1), chunked: true }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  if (!(chunked instanceof Error)) assert.equal(chunked.status, 413); // or the connection was closed mid-upload
  else assert.match(chunked.message, /EPIPE|ECONNRESET|socket hang up/);
  // The server keeps serving.
  assert.equal((await call(plain.url, { path: '/healthz' })).status, 200);
});

test('start refuses bad options', async () => {
  await assert.rejects(startWebhookServer({ port: 0, host: '127.0.0.1', injector: { ...INJECTOR, image: '' }, logger }), /image is required/);
  await assert.rejects(startWebhookServer({ port: 0, host: '127.0.0.1', injector: INJECTOR, logger, tlsCert: 'x' }), /go together/);
  await assert.rejects(startWebhookServer({ port: 0, host: '127.0.0.1', injector: INJECTOR, logger, tlsCert: '/nonexistent/cert.pem', tlsKey: '/nonexistent/key.pem' }), /ENOENT/);
});

test('loadWebhookOptions from the environment', () => {
  assert.equal(loadWebhookOptions(logger, {}), undefined);
  const env = {
    SLUICE_CP_WEBHOOK_PORT: '9443',
    SLUICE_CP_WEBHOOK_CERT_FILE: '/etc/sluice/webhook/tls.crt',
    SLUICE_CP_WEBHOOK_KEY_FILE: '/etc/sluice/webhook/tls.key',
    SLUICE_CP_SIDECAR_IMAGE: 'ghcr.io/sluice-dev/sluice:0.1.0',
    SLUICE_CP_SIDECAR_CONTROL_ADDRESS: 'sluice-control-plane.sluice-system.svc:9443',
    SLUICE_CP_SIDECAR_RESOURCES: '{"requests":{"cpu":"50m"}}',
    SLUICE_POD_NAMESPACE: 'sluice',
  };
  const o = loadWebhookOptions(logger, env);
  assert.equal(o?.port, 9443);
  assert.equal(o?.host, '0.0.0.0');
  assert.equal(o?.tlsCert, '/etc/sluice/webhook/tls.crt');
  assert.deepEqual(o?.injector, {
    image: 'ghcr.io/sluice-dev/sluice:0.1.0',
    controlAddress: 'sluice-control-plane.sluice-system.svc:9443',
    controlPlaneNamespace: 'sluice',
    resources: { requests: { cpu: '50m' } },
    apiPort: 4000,
    adminPort: 4001,
  });
  assert.equal(loadWebhookOptions(logger, { ...env, SLUICE_CP_SIDECAR_CACHE_REDIS_URL: 'redis://cache:6379' })?.injector.cacheRedisUrl, 'redis://cache:6379');
  assert.throws(() => loadWebhookOptions(logger, { ...env, SLUICE_CP_SIDECAR_IMAGE: '' }), /SLUICE_CP_SIDECAR_IMAGE is required/);
  assert.throws(() => loadWebhookOptions(logger, { ...env, SLUICE_CP_WEBHOOK_KEY_FILE: undefined }), /SLUICE_CP_WEBHOOK_KEY_FILE is required/);
  assert.throws(() => loadWebhookOptions(logger, { ...env, SLUICE_CP_WEBHOOK_PORT: 'x' }), /must be a port/);
  assert.throws(() => loadWebhookOptions(logger, { ...env, SLUICE_CP_SIDECAR_RESOURCES: '{' }), /not valid JSON/);
  assert.throws(() => loadWebhookOptions(logger, { ...env, SLUICE_CP_SIDECAR_IMAGE_PULL_POLICY: 'Sometimes' }), /Always, IfNotPresent or Never/);
});

// ---------------------------------------------------------------------------------------------
// HTTPS with certificates made by openssl (skipped where openssl is missing)

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const OPENSSL = hasOpenssl();

function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:sluice-webhook.sluice-system.svc', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

test('HTTPS: PEM strings, the API server trusting the CA bundle', { skip: !OPENSSL && 'openssl not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-webhook-'));
  try {
    const a = selfSigned(dir, 'a');
    const s = await startWebhookServer({ host: '127.0.0.1', port: 0, tlsCert: a.cert, tlsKey: a.key, injector: INJECTOR, logger });
    try {
      assert.equal(s.tls, true);
      assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const body = fixture('deployment-pod.json');
      const res = await call(s.url, { body: JSON.stringify(body), ca: a.cert });
      assert.equal(res.status, 200);
      // No namespace lookup configured: the selector is trusted.
      assert.equal(patchedPod(body, res.json).spec.initContainers[0].name, 'sluice-sidecar');
      // An untrusted client is refused by TLS.
      await assert.rejects(call(s.url, { path: '/healthz' }), /self-signed|self signed/);
    } finally {
      await s.close();
    }
    // A mismatched pair does not start.
    const b = selfSigned(dir, 'b');
    await assert.rejects(startWebhookServer({ host: '127.0.0.1', port: 0, tlsCert: a.cert, tlsKey: b.key, injector: INJECTOR, logger }), /key values mismatch|KEY_VALUES_MISMATCH/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HTTPS: certificate files re-read on change; a half-written rotation keeps the old pair', { skip: !OPENSSL && 'openssl not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-webhook-'));
  try {
    const a = selfSigned(dir, 'a');
    const b = selfSigned(dir, 'b');
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, a.cert);
    writeFileSync(keyFile, a.key);
    const s = await startWebhookServer({ host: '127.0.0.1', port: 0, tlsCert: certFile, tlsKey: keyFile, tlsReloadIntervalMs: 20, injector: INJECTOR, logger });
    try {
      const first = await call(s.url, { path: '/healthz', ca: a.cert });
      assert.equal(first.status, 200);

      // Only the certificate changes (key not yet written): the pair does not load, the old one serves.
      writeFileSync(certFile, b.cert);
      assert.equal(s.reloadTls(), false);
      assert.equal((await call(s.url, { path: '/healthz', ca: a.cert })).fingerprint, first.fingerprint);
      assert.ok(logs.some((l) => l['msg'] === 'webhook: TLS certificate reload failed; keeping the current certificate'));

      // The key follows: the watcher picks the new pair up for new connections.
      writeFileSync(keyFile, b.key);
      const deadline = Date.now() + 5000;
      let now: Reply | undefined;
      while (Date.now() < deadline) {
        now = await call(s.url, { path: '/healthz', ca: `${a.cert}${b.cert}` });
        if (now.fingerprint !== first.fingerprint) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.notEqual(now?.fingerprint, first.fingerprint);
      assert.equal((await call(s.url, { path: '/healthz', ca: b.cert })).status, 200);
      assert.ok(logs.some((l) => l['msg'] === 'webhook: TLS certificate reloaded'));
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
