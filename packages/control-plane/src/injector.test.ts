import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import jsonpatch from 'fast-json-patch';
import {
  admit,
  buildPatch,
  escapeJsonPointer,
  injectionDecision,
  InvalidAdmissionReviewError,
  review,
  validateInjectorOptions,
  type AdmissionReviewResponse,
  type InjectorOptions,
  type JsonPatchOperation,
  type Labels,
  type ReviewOptions,
} from './injector.js';

// dist/src/injector.test.js → packages/control-plane/test/fixtures/admission
const FIXTURES = new URL('../../test/fixtures/admission/', import.meta.url);

/* eslint-disable @typescript-eslint/no-explicit-any -- pods are free-form JSON in these assertions */
type Json = any;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
}

const OPTS: InjectorOptions = {
  image: 'ghcr.io/sluice-dev/sluice:0.1.0',
  controlAddress: 'sluice-control-plane.sluice-system.svc:9443',
  controlPlaneNamespace: 'sluice-system',
};
const ENABLED: Labels = { 'kubernetes.io/metadata.name': 'shop', 'sluice.dev/injection': 'enabled' };

function patchOf(r: AdmissionReviewResponse): JsonPatchOperation[] {
  if (r.response.patch === undefined) return [];
  assert.equal(r.response.patchType, 'JSONPatch');
  return JSON.parse(Buffer.from(r.response.patch, 'base64').toString('utf8')) as JsonPatchOperation[];
}

/** Reviews `body` and applies the returned patch (validated) to its pod; returns the new pod. */
function reviewAndApply(body: Json, opts: ReviewOptions): { review: AdmissionReviewResponse; ops: JsonPatchOperation[]; pod: Json } {
  const r = review(body, opts);
  assert.equal(r.apiVersion, 'admission.k8s.io/v1');
  assert.equal(r.kind, 'AdmissionReview');
  assert.equal(r.response.uid, body.request.uid);
  assert.equal(r.response.allowed, true);
  const ops = patchOf(r);
  const pod = jsonpatch.applyPatch(structuredClone(body.request.object), ops as jsonpatch.Operation[], true).newDocument;
  return { review: r, ops, pod };
}

function env(container: Json): Record<string, Json> {
  return Object.fromEntries((container.env ?? []).map((e: Json) => [e.name, e.value ?? e.valueFrom]));
}

test('Deployment pod: native sidecar first, volumes appended, app env only where unset, annotations', () => {
  const body = fixture('deployment-pod.json');
  const before = structuredClone(body.request.object);
  const { review: r, ops, pod } = reviewAndApply(body, { ...OPTS, namespaceLabels: ENABLED });
  assert.equal(r.response.warnings, undefined);
  assert.equal(r.response.status, undefined);
  // Existing arrays are appended to / inserted into, never replaced.
  assert.ok(ops.every((o) => o.op === 'add'));
  assert.ok(!ops.some((o) => o.path === '/spec/initContainers' || o.path === '/spec/volumes' || o.path === '/metadata/annotations'));

  // The sidecar: first init container, native sidecar, the app's own init container after it.
  assert.deepEqual(pod.spec.initContainers.map((c: Json) => c.name), ['sluice-sidecar', 'migrate']);
  assert.deepEqual(pod.spec.initContainers[1], before.spec.initContainers[0]);
  const s = pod.spec.initContainers[0];
  assert.equal(s.restartPolicy, 'Always');
  assert.equal(s.image, OPTS.image);
  assert.deepEqual(s.command, ['node', '--enable-experimental-regexp-engine-on-excessive-backtracks', 'packages/sidecar/dist/src/main.js']);
  assert.deepEqual(s.ports, [{ name: 'sluice-admin', containerPort: 4001, protocol: 'TCP' }]);
  assert.deepEqual(env(s), {
    SLUICE_SIDECAR_CONTROL_ADDRESS: 'sluice-control-plane.sluice-system.svc:9443',
    SLUICE_SIDECAR_STATE_DIR: '/var/run/sluice/state',
    SLUICE_SIDECAR_ADMIN_HOST: '0.0.0.0',
    SLUICE_POD_NAME: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } },
    SLUICE_POD_NAMESPACE: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
    SLUICE_SERVICE_ACCOUNT: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.serviceAccountName' } },
    SLUICE_POD_LABELS_FILE: '/etc/sluice/podinfo/labels',
    SLUICE_SIDECAR_TOKEN_FILE: '/var/run/secrets/sluice/token',
    SLUICE_SIDECAR_PORT: '4000',
    SLUICE_SIDECAR_ADMIN_PORT: '4001',
  });
  assert.deepEqual(s.startupProbe.httpGet, { path: '/healthz', port: 4001 });
  assert.deepEqual(s.readinessProbe.httpGet, { path: '/ready', port: 4001 });
  assert.deepEqual(s.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
  assert.equal(s.securityContext.runAsNonRoot, true);
  assert.equal(s.securityContext.readOnlyRootFilesystem, true);
  assert.equal(s.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(s.securityContext.capabilities, { drop: ['ALL'] });
  assert.deepEqual(s.securityContext.seccompProfile, { type: 'RuntimeDefault' });

  // Every mount has its volume; the pod's own volumes are untouched.
  const volumes = new Map<string, Json>(pod.spec.volumes.map((v: Json) => [v.name, v]));
  assert.deepEqual([...volumes.keys()], ['config', 'kube-api-access-x7k2p', 'sluice-state', 'sluice-podinfo', 'sluice-token']);
  for (const m of s.volumeMounts) assert.ok(volumes.has(m.name), m.name);
  assert.deepEqual(
    s.volumeMounts.map((m: Json) => [m.name, m.mountPath]),
    [
      ['sluice-state', '/var/run/sluice/state'],
      ['sluice-podinfo', '/etc/sluice/podinfo'],
      ['sluice-token', '/var/run/secrets/sluice'],
    ],
  );
  assert.deepEqual(volumes.get('sluice-state').emptyDir, { sizeLimit: '64Mi' });
  assert.deepEqual(volumes.get('sluice-podinfo').downwardAPI.items, [{ path: 'labels', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.labels' } }]);
  assert.deepEqual(volumes.get('sluice-token').projected.sources, [{ serviceAccountToken: { audience: 'sluice', expirationSeconds: 3600, path: 'token' } }]);
  assert.deepEqual(pod.spec.volumes.slice(0, 2), before.spec.volumes);

  // App env: an existing OPENAI_BASE_URL is respected; the rest appended after the app's own.
  const [chat, worker, metrics] = pod.spec.containers;
  assert.deepEqual(env(chat), {
    OPENAI_BASE_URL: 'http://llm-proxy.platform.svc:8080/v1',
    LOG_LEVEL: 'info',
    OPENAI_API_KEY: { secretKeyRef: { name: 'chat-openai', key: 'apiKey' } },
    ANTHROPIC_BASE_URL: 'http://127.0.0.1:4000',
  });
  assert.deepEqual(worker.env, [
    { name: 'QUEUE_URL', value: 'amqp://rabbitmq.shop.svc:5672' },
    { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:4000/v1' },
    { name: 'ANTHROPIC_BASE_URL', value: 'http://127.0.0.1:4000' },
  ]);
  assert.deepEqual(metrics.env, [
    { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:4000/v1' },
    { name: 'ANTHROPIC_BASE_URL', value: 'http://127.0.0.1:4000' },
  ]);

  assert.deepEqual(pod.metadata.annotations, { ...before.metadata.annotations, 'sluice.dev/status': 'injected', 'sluice.dev/injector-version': '0.1.0' });
  assert.ok(ops.some((o) => o.path === '/metadata/annotations/sluice.dev~1status'));

  // Nothing else changed.
  const strip = (p: Json): Json => {
    const c = structuredClone(p);
    delete c.spec.initContainers;
    delete c.spec.volumes;
    delete c.metadata.annotations;
    for (const x of c.spec.containers) delete x.env;
    return c;
  };
  assert.deepEqual(strip(pod), strip(before));
});

test('idempotent: the patched pod (webhook reinvocation) and the already-injected fixture get no patch', () => {
  const body = fixture('deployment-pod.json');
  const { pod } = reviewAndApply(body, { ...OPTS, namespaceLabels: ENABLED });
  const again = reviewAndApply({ ...body, request: { ...body.request, object: pod } }, { ...OPTS, namespaceLabels: ENABLED });
  assert.equal(again.review.response.patch, undefined);
  assert.equal(again.review.response.patchType, undefined);
  assert.deepEqual(again.pod, pod);
  assert.deepEqual(buildPatch(pod, OPTS), []);

  const injected = fixture('already-injected-pod.json');
  const out = admit(injected, { ...OPTS, namespaceLabels: ENABLED });
  assert.equal(out.kind, 'review');
  if (out.kind !== 'review') return;
  assert.equal(out.decision?.reason, 'already-injected');
  assert.deepEqual(out.review, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: injected.request.uid, allowed: true } });

  // Also when an older injector put the sidecar among the app containers.
  const legacy = fixture('bare-pod.json');
  legacy.request.object.spec.containers.push({ name: 'sluice-sidecar', image: 'x' });
  assert.equal(injectionDecision(legacy.request.object, ENABLED, OPTS).reason, 'already-injected');
});

test('pod without initContainers, volumes, env or annotations: whole arrays and objects are added', () => {
  const body = fixture('bare-pod.json');
  const { ops, pod } = reviewAndApply(body, { ...OPTS, namespaceLabels: { 'sluice.dev/injection': 'enabled' } });
  assert.deepEqual(
    ops.map((o) => o.path),
    ['/spec/initContainers', '/spec/volumes', '/spec/containers/0/env', '/metadata/annotations'],
  );
  assert.deepEqual(pod.spec.initContainers.map((c: Json) => [c.name, c.restartPolicy]), [['sluice-sidecar', 'Always']]);
  assert.deepEqual(pod.spec.volumes.map((v: Json) => v.name), ['sluice-state', 'sluice-podinfo', 'sluice-token']);
  assert.deepEqual(env(pod.spec.containers[0]), { OPENAI_BASE_URL: 'http://127.0.0.1:4000/v1', ANTHROPIC_BASE_URL: 'http://127.0.0.1:4000' });
  assert.deepEqual(pod.metadata.annotations, { 'sluice.dev/status': 'injected', 'sluice.dev/injector-version': '0.1.0' });
  // The second pass is a no-op.
  assert.deepEqual(buildPatch(pod, OPTS), []);
});

test('no metadata at all: /metadata is added', () => {
  const ops = buildPatch({ spec: { containers: [{ name: 'a', image: 'a' }] } }, OPTS);
  assert.deepEqual(ops.at(-1), { op: 'add', path: '/metadata', value: { annotations: { 'sluice.dev/status': 'injected', 'sluice.dev/injector-version': '0.1.0' } } });
  const pod = jsonpatch.applyPatch({ spec: { containers: [{ name: 'a', image: 'a' }] } }, ops as jsonpatch.Operation[], true).newDocument as Json;
  assert.equal(pod.metadata.annotations['sluice.dev/status'], 'injected');
});

test('existing status annotation and same-named volume are replaced/kept, not duplicated', () => {
  const pod: Json = {
    metadata: { annotations: { 'sluice.dev/status': 'stale' } },
    spec: { containers: [{ name: 'a', image: 'a', env: [] }], volumes: [{ name: 'sluice-state', emptyDir: { medium: 'Memory' } }] },
  };
  const out = jsonpatch.applyPatch(pod, buildPatch(pod, OPTS) as jsonpatch.Operation[], true).newDocument as Json;
  assert.deepEqual(out.spec.volumes.map((v: Json) => v.name), ['sluice-state', 'sluice-podinfo', 'sluice-token']);
  assert.deepEqual(out.spec.volumes[0].emptyDir, { medium: 'Memory' });
  assert.equal(out.metadata.annotations['sluice.dev/status'], 'injected');
  assert.equal(out.spec.containers[0].env.length, 2);
});

test('JSON pointer escaping', () => {
  assert.equal(escapeJsonPointer('sluice.dev/status'), 'sluice.dev~1status');
  assert.equal(escapeJsonPointer('a~b/c~1'), 'a~0b~1c~01');
  const doc = { metadata: { annotations: {} as Record<string, string> } };
  jsonpatch.applyPatch(doc, [{ op: 'add', path: `/metadata/annotations/${escapeJsonPointer('x~/y')}`, value: 'v' }], true);
  assert.deepEqual(doc.metadata.annotations, { 'x~/y': 'v' });
});

test('decision table', () => {
  const pod = (extra: Json = {}, spec: Json = {}): Json => ({
    metadata: { name: 'p', namespace: 'shop', ...extra },
    spec: { containers: [{ name: 'app', image: 'app' }], ...spec },
  });
  const cases: Array<[string, Json, Labels | undefined, string, boolean, string?]> = [
    ['namespace enabled', pod(), ENABLED, 'namespace-enabled', true],
    ['namespace labels unknown: trust the webhook selector', pod(), undefined, 'namespace-selector', true],
    ['namespace known, not enabled', pod(), { team: 'x' }, 'namespace-not-enabled', false],
    ['annotation true without the namespace label', pod({ annotations: { 'sluice.dev/inject': 'true' } }), {}, 'pod-opted-in', true],
    ['annotation TRUE (any case)', pod({ annotations: { 'sluice.dev/inject': ' TRUE ' } }), {}, 'pod-opted-in', true],
    ['annotation false in an enabled namespace', pod({ annotations: { 'sluice.dev/inject': 'false' } }), ENABLED, 'pod-opted-out', false],
    ['annotation false, labels unknown', pod({ annotations: { 'sluice.dev/inject': 'false' } }), undefined, 'pod-opted-out', false],
    ['label wins over annotation', pod({ labels: { 'sluice.dev/inject': 'false' }, annotations: { 'sluice.dev/inject': 'true' } }), ENABLED, 'pod-opted-out', false],
    ['label true', pod({ labels: { 'sluice.dev/inject': 'true' } }), {}, 'pod-opted-in', true],
    ['namespace disabled beats pod opt-in', pod({ annotations: { 'sluice.dev/inject': 'true' } }), { 'sluice.dev/injection': 'disabled' }, 'namespace-disabled', false],
    ['hostNetwork', pod({ annotations: { 'sluice.dev/inject': 'true' } }, { hostNetwork: true }), ENABLED, 'host-network', false],
    ['control plane namespace', pod({ namespace: 'sluice-system', annotations: { 'sluice.dev/inject': 'true' } }), undefined, 'control-plane-namespace', false],
    ['kube-system', pod({ namespace: 'kube-system' }), undefined, 'ignored-namespace', false],
    ['unparsable opt-in value is ignored with a warning', pod({ annotations: { 'sluice.dev/inject': 'yes' } }), ENABLED, 'namespace-enabled', true, 'sluice: ignored annotation sluice.dev/inject="yes" (expected "true" or "false")'],
    ['invalid pod', { metadata: {}, spec: { containers: 'app' } }, ENABLED, 'invalid-pod', false, 'sluice: sidecar not injected, unexpected pod shape: spec.containers is not an array'],
  ];
  for (const [name, p, labels, reason, inject, warning] of cases) {
    const d = injectionDecision(p, labels, OPTS);
    assert.equal(d.reason, reason, name);
    assert.equal(d.inject, inject, name);
    assert.equal(d.warning, warning, name);
  }
  // The request's namespace overrides the (usually absent) metadata.namespace.
  assert.equal(injectionDecision(pod({ namespace: undefined }), undefined, OPTS, 'sluice-system').reason, 'control-plane-namespace');
  assert.equal(injectionDecision(pod(), undefined, { ...OPTS, ignoredNamespaces: ['shop'] }).reason, 'ignored-namespace');
});

test('fixtures: opted-out, hostNetwork, opted-in without the namespace label', () => {
  for (const [name, labels, reason] of [
    ['opted-out-pod.json', ENABLED, 'pod-opted-out'],
    ['host-network-pod.json', ENABLED, 'host-network'],
  ] as const) {
    const body = fixture(name);
    const out = admit(body, { ...OPTS, namespaceLabels: labels });
    assert.equal(out.kind, 'review');
    if (out.kind !== 'review') continue;
    assert.equal(out.decision?.reason, reason, name);
    assert.deepEqual(out.review.response, { uid: body.request.uid, allowed: true }, name);
  }
  const body = fixture('opted-in-pod.json');
  const { pod } = reviewAndApply(body, { ...OPTS, namespaceLabels: { 'kubernetes.io/metadata.name': 'labs' } });
  assert.equal(pod.spec.initContainers[0].name, 'sluice-sidecar');
  // The notebook's explicit ANTHROPIC_BASE_URL stays; OPENAI_BASE_URL is added.
  assert.deepEqual(env(pod.spec.containers[0]), { ANTHROPIC_BASE_URL: 'https://api.anthropic.com', OPENAI_BASE_URL: 'http://127.0.0.1:4000/v1' });
});

test('sluice.dev/inject-app-env: "false" injects the sidecar but leaves app env alone', () => {
  const body = fixture('opted-in-pod.json');
  body.request.object.metadata.annotations['sluice.dev/inject-app-env'] = 'false';
  const { pod } = reviewAndApply(body, OPTS);
  assert.equal(pod.spec.initContainers[0].name, 'sluice-sidecar');
  assert.deepEqual(pod.spec.containers[0].env, [{ name: 'ANTHROPIC_BASE_URL', value: 'https://api.anthropic.com' }]);
});

test('options: CA file, extra env, pull policy, resources, runAsUser, token audience', () => {
  const body = fixture('bare-pod.json');
  const { pod } = reviewAndApply(body, {
    ...OPTS,
    caFile: '/etc/sluice/ca/ca.crt',
    extraEnv: [{ name: 'SLUICE_LOG_LEVEL', value: 'debug' }, { name: 'SLUICE_SIDECAR_STATE_DIR', value: '/ignored' }],
    imagePullPolicy: 'Always',
    resources: { requests: { cpu: '10m' } },
    runAsUser: null,
    tokenAudience: 'sluice.example.com',
    tokenExpirationSeconds: 7200,
  });
  const s = pod.spec.initContainers[0];
  assert.equal(env(s)['SLUICE_SIDECAR_CA_FILE'], '/etc/sluice/ca/ca.crt');
  assert.equal(env(s)['SLUICE_LOG_LEVEL'], 'debug');
  assert.equal(env(s)['SLUICE_SIDECAR_STATE_DIR'], '/var/run/sluice/state');
  assert.equal(s.env.filter((e: Json) => e.name === 'SLUICE_SIDECAR_STATE_DIR').length, 1);
  assert.equal(s.imagePullPolicy, 'Always');
  assert.deepEqual(s.resources, { requests: { cpu: '10m' } });
  assert.equal(s.securityContext.runAsUser, undefined);
  assert.equal(s.securityContext.runAsNonRoot, true);
  const token = pod.spec.volumes.find((v: Json) => v.name === 'sluice-token');
  assert.deepEqual(token.projected.sources[0].serviceAccountToken, { audience: 'sluice.example.com', expirationSeconds: 7200, path: 'token' });
  // Without caFile, no SLUICE_SIDECAR_CA_FILE.
  assert.equal(env(reviewAndApply(fixture('bare-pod.json'), OPTS).pod.spec.initContainers[0])['SLUICE_SIDECAR_CA_FILE'], undefined);
});

test('malformed reviews never block the pod; no uid → InvalidAdmissionReviewError', () => {
  const noUid = fixture('malformed-no-uid.json');
  assert.throws(() => review(noUid, OPTS), (e: unknown) => e instanceof InvalidAdmissionReviewError && /request\.uid is missing/.test(e.message));
  assert.deepEqual(admit('hello', OPTS), { kind: 'invalid', message: 'not an AdmissionReview: the body is not a JSON object' });
  assert.equal(admit(null, OPTS).kind, 'invalid');
  assert.equal(admit({ request: { uid: '' } }, OPTS).kind, 'invalid');

  const bad = fixture('malformed-review.json');
  const r = review(bad, OPTS);
  assert.equal(r.apiVersion, 'admission.k8s.io/v1');
  assert.equal(r.response.uid, bad.request.uid);
  assert.equal(r.response.allowed, true);
  assert.equal(r.response.patch, undefined);
  assert.match(r.response.status?.message ?? '', /not an admission\.k8s\.io\/v1 AdmissionReview/);

  const odd = fixture('malformed-containers.json');
  const o = review(odd, { ...OPTS, namespaceLabels: ENABLED });
  assert.equal(o.response.allowed, true);
  assert.equal(o.response.patch, undefined);
  assert.deepEqual(o.response.warnings, ['sluice: sidecar not injected, unexpected pod shape: spec.containers is not an array']);
  assert.match(o.response.status?.message ?? '', /spec\.containers is not an array; admitted without the sidecar/);
  assert.throws(() => buildPatch(odd.request.object, OPTS), /cannot inject: spec\.containers is not an array/);

  const shapes: Json[] = [
    { metadata: 'x', spec: { containers: [{ name: 'a' }] } },
    { metadata: { annotations: { a: 1 } }, spec: { containers: [{ name: 'a' }] } },
    { spec: { containers: [] } },
    { spec: { containers: [{ image: 'x' }] } },
    { spec: { containers: [{ name: 'a', env: {} }] } },
    { spec: { containers: [{ name: 'a' }], initContainers: {} } },
    { spec: { containers: [{ name: 'a' }], volumes: [{}] } },
    { spec: { containers: [{ name: 'a' }], hostNetwork: 'yes' } },
    { spec: null },
  ];
  for (const object of shapes) {
    const out = review({ ...odd, request: { ...odd.request, object } }, OPTS);
    assert.equal(out.response.allowed, true, JSON.stringify(object));
    assert.equal(out.response.patch, undefined, JSON.stringify(object));
    assert.equal(out.response.warnings?.length, 1, JSON.stringify(object));
  }
});

test('requests that are not a v1 pod CREATE are admitted unchanged', () => {
  const body = fixture('deployment-pod.json');
  const variants: Array<[Json, string]> = [
    [{ ...body, apiVersion: 'admission.k8s.io/v1beta1' }, 'admission.k8s.io/v1beta1'],
    [{ ...body, request: { ...body.request, operation: 'UPDATE' } }, 'admission.k8s.io/v1'],
    [{ ...body, request: { ...body.request, kind: { group: 'apps', version: 'v1', kind: 'Deployment' } } }, 'admission.k8s.io/v1'],
    [{ ...body, request: { ...body.request, subResource: 'ephemeralcontainers' } }, 'admission.k8s.io/v1'],
    [{ ...body, request: { ...body.request, object: null } }, 'admission.k8s.io/v1'],
  ];
  for (const [v, apiVersion] of variants) {
    const r = review(v, { ...OPTS, namespaceLabels: ENABLED });
    assert.equal(r.apiVersion, apiVersion);
    assert.equal(r.response.uid, body.request.uid);
    assert.equal(r.response.allowed, true);
    assert.equal(r.response.patch, undefined);
    assert.ok(r.response.status?.message);
  }
});

test('validateInjectorOptions', () => {
  validateInjectorOptions(OPTS);
  validateInjectorOptions({ ...OPTS, controlAddress: '[fd00::1]:9443' });
  assert.throws(() => validateInjectorOptions({ ...OPTS, image: ' ' }), /image is required/);
  assert.throws(() => validateInjectorOptions({ ...OPTS, controlAddress: 'sluice-control-plane' }), /not host:port/);
  assert.throws(() => validateInjectorOptions({ ...OPTS, controlPlaneNamespace: '' }), /namespace is required/);
  assert.throws(() => validateInjectorOptions({ ...OPTS, tokenExpirationSeconds: 60 }), /≥ 600/);
  assert.throws(() => validateInjectorOptions({ ...OPTS, runAsUser: 0 }), /runAsUser/);
});

test('custom sidecar ports, log level and cache Redis reach the sidecar, its probes and the apps', () => {
  const review = JSON.parse(readFileSync(new URL('../../test/fixtures/admission/bare-pod.json', import.meta.url), 'utf8')) as unknown;
  const ops = buildPatch((review as { request: { object: unknown } }).request.object, { ...OPTS, apiPort: 5000, adminPort: 5001, logLevel: 'debug', cacheRedisUrl: 'redis://cache:6379/1' });
  const text = JSON.stringify(ops);
  assert.ok(text.includes('"name":"SLUICE_SIDECAR_CACHE_REDIS_URL","value":"redis://cache:6379/1"'));
  assert.ok(!JSON.stringify(buildPatch((review as { request: { object: unknown } }).request.object, OPTS)).includes('SLUICE_SIDECAR_CACHE_REDIS_URL'), 'none by default');
  assert.ok(text.includes('"name":"SLUICE_SIDECAR_PORT","value":"5000"'));
  assert.ok(text.includes('"name":"SLUICE_SIDECAR_ADMIN_PORT","value":"5001"'));
  assert.ok(text.includes('"name":"SLUICE_LOG_LEVEL","value":"debug"'));
  assert.ok(text.includes('"path":"/ready","port":5001'));
  assert.ok(text.includes('"value":"http://127.0.0.1:5000/v1"'));
});
