/**
 * Sidecar injection for the mutating admission webhook. Pure: no I/O, no clock, no Kubernetes client.
 *
 * `review()` turns an `admission.k8s.io/v1` AdmissionReview (as received by `POST /inject`) into the
 * AdmissionReview answer, with a base64 JSON Patch that adds the Sluice sidecar to the pod. Injection is
 * never a reason to refuse a pod: every answer that can carry the request's uid is `allowed: true`;
 * a request without a uid cannot be answered in kind and is reported to the HTTP layer (400).
 *
 * The sidecar is a native sidecar (Kubernetes ≥ 1.29): an init container with `restartPolicy: Always`,
 * placed first, so it is started (its startup probe passed) before any other init container or app
 * container starts, and is stopped after them.
 */
import { SIDECAR_NODE_FLAGS } from '@sluice/core';

/** Name of the injected container; its presence makes injection idempotent. */
export const SIDECAR_NAME = 'sluice-sidecar';
/** Pod annotation or label: `"true"` opts a pod in, `"false"` out (the label wins over the annotation). */
export const INJECT_KEY = 'sluice.dev/inject';
/** Namespace label: `enabled` injects every pod of the namespace (unless opted out), `disabled` none. */
export const NAMESPACE_INJECTION_LABEL = 'sluice.dev/injection';
/** Pod annotation `"false"`: inject the sidecar but leave the app containers' environment alone. */
export const APP_ENV_ANNOTATION = 'sluice.dev/inject-app-env';
/** Pod annotations written on injection. */
export const STATUS_ANNOTATION = 'sluice.dev/status';
export const STATUS_INJECTED = 'injected';
export const VERSION_ANNOTATION = 'sluice.dev/injector-version';
/** Version of the injection template, written in `sluice.dev/injector-version`. */
export const INJECTOR_VERSION = '0.1.0';

export const SIDECAR_API_PORT = 4000;
export const SIDECAR_ADMIN_PORT = 4001;
export const STATE_DIR = '/var/run/sluice/state';
export const PODINFO_DIR = '/etc/sluice/podinfo';
export const TOKEN_DIR = '/var/run/secrets/sluice';
export const VOLUME_STATE = 'sluice-state';
export const VOLUME_PODINFO = 'sluice-podinfo';
export const VOLUME_TOKEN = 'sluice-token';

/** Environment given to every app container, only where the container does not set the name itself. */
export function appEnv(apiPort: number = SIDECAR_API_PORT): readonly { readonly name: string; readonly value: string }[] {
  return [
    { name: 'OPENAI_BASE_URL', value: `http://127.0.0.1:${apiPort}/v1` },
    { name: 'ANTHROPIC_BASE_URL', value: `http://127.0.0.1:${apiPort}` },
  ];
}

/** Namespaces never injected, whatever their labels (besides the control plane's own). */
export const DEFAULT_IGNORED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

export const DEFAULT_SIDECAR_RESOURCES: ResourceRequirements = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '512Mi' },
};

export type Labels = Readonly<Record<string, string>>;

export interface ResourceRequirements {
  readonly requests?: Readonly<Record<string, string>>;
  readonly limits?: Readonly<Record<string, string>>;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: Readonly<Record<string, unknown>>;
}

export interface InjectorOptions {
  /** Sidecar image, e.g. `ghcr.io/sluice/sluice:0.1.0` (WORKDIR /app). */
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Control plane gRPC `host:port` given to the sidecar, e.g. `sluice-control-plane.sluice-system.svc:9443`. */
  readonly controlAddress: string;
  /** The control plane's own namespace: its pods are never injected. */
  readonly controlPlaneNamespace: string;
  /** Path, inside the sidecar, of the CA bundle that verifies the control plane (SLUICE_SIDECAR_CA_FILE). */
  readonly caFile?: string;
  /**
   * The CA certificate itself (PEM, public), given to the sidecar inline as SLUICE_SIDECAR_CA_PEM:
   * a sidecar in any namespace can then verify the control plane without mounting anything.
   */
  readonly caPem?: string;
  /** Sidecar resources; default {@link DEFAULT_SIDECAR_RESOURCES}. */
  readonly resources?: ResourceRequirements;
  /** Sidecar LLM API port (loopback); default 4000. */
  readonly apiPort?: number;
  /** Sidecar admin port (probes); default 4001. */
  readonly adminPort?: number;
  /** Sidecar log level; default: the sidecar's own (info). */
  readonly logLevel?: string;
  /** Redis of the shared response cache tier (SLUICE_SIDECAR_CACHE_REDIS_URL); default none. */
  readonly cacheRedisUrl?: string;
  /** UID the sidecar runs as (runAsNonRoot needs a numeric user); default 1000; null = the image's. */
  readonly runAsUser?: number | null;
  /** Audience of the projected service-account token; default `sluice`. */
  readonly tokenAudience?: string;
  /** Lifetime of the projected token; default 3600 (kubelet refreshes it at 80 %). */
  readonly tokenExpirationSeconds?: number;
  /** More sidecar environment (e.g. SLUICE_LOG_LEVEL), appended after the injector's own. */
  readonly extraEnv?: readonly EnvVar[];
  /** Default {@link DEFAULT_IGNORED_NAMESPACES}. */
  readonly ignoredNamespaces?: readonly string[];
  /** Written in `sluice.dev/injector-version`; default {@link INJECTOR_VERSION}. */
  readonly version?: string;
}

/** Options of one review: the injector's plus what the server learnt about the request's namespace. */
export interface ReviewOptions extends InjectorOptions {
  /**
   * Labels of the request's namespace when the server could look them up; undefined = unknown, and
   * the webhook configuration's namespaceSelector (which let the request through) is trusted.
   */
  readonly namespaceLabels?: Labels | undefined;
}

export interface JsonPatchOperation {
  readonly op: 'add' | 'remove' | 'replace' | 'test';
  readonly path: string;
  readonly value?: unknown;
}

export type InjectionReason =
  | 'invalid-pod'
  | 'already-injected'
  | 'host-network'
  | 'control-plane-namespace'
  | 'ignored-namespace'
  | 'namespace-disabled'
  | 'pod-opted-out'
  | 'pod-opted-in'
  | 'namespace-enabled'
  | 'namespace-not-enabled'
  | 'namespace-selector';

export interface InjectionDecision {
  readonly inject: boolean;
  readonly reason: InjectionReason;
  /** One line for logs. */
  readonly message: string;
  /** Something the pod's author should fix (an unparsable opt-in value, an invalid pod shape). */
  readonly warning?: string;
}

export interface AdmissionStatus {
  readonly code?: number;
  readonly message: string;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON Patch document. */
  readonly patch?: string;
  readonly warnings?: readonly string[];
  readonly status?: AdmissionStatus;
}

export interface AdmissionReviewResponse {
  readonly apiVersion: string;
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** What `admit()` made of a request body. */
export type AdmissionOutcome =
  | {
      readonly kind: 'review';
      readonly review: AdmissionReviewResponse;
      readonly uid: string;
      readonly namespace: string;
      /** Pod name, or `generateName*` before the name is generated. */
      readonly pod: string;
      /** Absent when the request was not a pod creation that could be looked at. */
      readonly decision?: InjectionDecision;
      readonly patch: readonly JsonPatchOperation[];
    }
  /** No `request.uid`: cannot be answered with an AdmissionReview (the HTTP layer answers 400). */
  | { readonly kind: 'invalid'; readonly message: string };

export class InvalidAdmissionReviewError extends Error {
  override readonly name = 'InvalidAdmissionReviewError';
}

// ---------------------------------------------------------------------------------------------
// Reading a pod defensively: the API server only sends typed pods, but anything may reach the port.

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface ContainerView {
  readonly name: string;
  /** undefined = no `env` field. */
  readonly envNames: ReadonlySet<string> | undefined;
}

interface PodView {
  readonly hasMetadata: boolean;
  /** undefined = no `metadata.annotations` field. */
  readonly annotations: Readonly<Record<string, string>> | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly namespace: string | undefined;
  readonly displayName: string;
  readonly hostNetwork: boolean;
  readonly containers: readonly ContainerView[];
  /** undefined = no `spec.initContainers` field. */
  readonly initContainers: readonly ContainerView[] | undefined;
  /** undefined = no `spec.volumes` field. */
  readonly volumeNames: ReadonlySet<string> | undefined;
}

function stringMap(v: unknown, where: string): Record<string, string> | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) return `${where} is not an object`;
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') return `${where}["${k}"] is not a string`;
  return v as Record<string, string>;
}

function containerList(v: unknown, where: string): ContainerView[] | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) return `${where} is not an array`;
  const out: ContainerView[] = [];
  for (const [i, c] of v.entries()) {
    if (!isObj(c)) return `${where}[${i}] is not an object`;
    if (typeof c['name'] !== 'string') return `${where}[${i}].name is not a string`;
    const env = c['env'];
    let envNames: Set<string> | undefined;
    if (env !== undefined && env !== null) {
      if (!Array.isArray(env)) return `${where}[${i}].env is not an array`;
      envNames = new Set();
      for (const [j, e] of env.entries()) {
        if (!isObj(e) || typeof e['name'] !== 'string') return `${where}[${i}].env[${j}] has no name`;
        envNames.add(e['name']);
      }
    }
    out.push({ name: c['name'], envNames });
  }
  return out;
}

/** The parts of a pod injection looks at, or what is wrong with its shape. */
export function inspectPod(pod: unknown): { readonly pod: PodView } | { readonly problem: string } {
  if (!isObj(pod)) return { problem: 'the object is not a JSON object' };
  const metadata = pod['metadata'];
  if (metadata !== undefined && metadata !== null && !isObj(metadata)) return { problem: 'metadata is not an object' };
  const meta: Obj = isObj(metadata) ? metadata : {};
  const annotations = stringMap(meta['annotations'], 'metadata.annotations');
  if (typeof annotations === 'string') return { problem: annotations };
  const labels = stringMap(meta['labels'], 'metadata.labels');
  if (typeof labels === 'string') return { problem: labels };
  const spec = pod['spec'];
  if (!isObj(spec)) return { problem: 'spec is not an object' };
  const containers = containerList(spec['containers'], 'spec.containers');
  if (typeof containers === 'string') return { problem: containers };
  if (containers === undefined || containers.length === 0) return { problem: 'spec.containers is missing or empty' };
  const initContainers = containerList(spec['initContainers'], 'spec.initContainers');
  if (typeof initContainers === 'string') return { problem: initContainers };
  const volumes = spec['volumes'];
  let volumeNames: Set<string> | undefined;
  if (volumes !== undefined && volumes !== null) {
    if (!Array.isArray(volumes)) return { problem: 'spec.volumes is not an array' };
    volumeNames = new Set();
    for (const [i, v] of volumes.entries()) {
      if (!isObj(v) || typeof v['name'] !== 'string') return { problem: `spec.volumes[${i}] has no name` };
      volumeNames.add(v['name']);
    }
  }
  const hostNetwork = spec['hostNetwork'];
  if (hostNetwork !== undefined && hostNetwork !== null && typeof hostNetwork !== 'boolean') return { problem: 'spec.hostNetwork is not a boolean' };
  const name = typeof meta['name'] === 'string' && meta['name'] !== '' ? meta['name'] : undefined;
  const generateName = typeof meta['generateName'] === 'string' ? meta['generateName'] : '';
  return {
    pod: {
      hasMetadata: isObj(metadata),
      annotations,
      labels: labels ?? {},
      namespace: typeof meta['namespace'] === 'string' && meta['namespace'] !== '' ? meta['namespace'] : undefined,
      displayName: name ?? `${generateName}*`,
      hostNetwork: hostNetwork === true,
      containers,
      initContainers,
      volumeNames,
    },
  };
}

function hasSidecar(p: PodView): boolean {
  return p.containers.some((c) => c.name === SIDECAR_NAME) || (p.initContainers ?? []).some((c) => c.name === SIDECAR_NAME);
}

/** `"true"` / `"false"` (any case, trimmed), else undefined. */
function parseBool(v: string | undefined): boolean | undefined {
  const s = v?.trim().toLowerCase();
  return s === 'true' ? true : s === 'false' ? false : undefined;
}

/**
 * Whether to inject the sidecar into `pod`, Istio-style. In order: a pod that already has the
 * sidecar, a hostNetwork pod, a pod of the control plane's namespace or of an ignored namespace, a
 * pod of a namespace labelled `sluice.dev/injection=disabled` are skipped; then the pod's
 * `sluice.dev/inject` label or annotation decides (`"true"` opts in without the namespace label,
 * `"false"` opts out); then the namespace label `sluice.dev/injection=enabled`. When the namespace
 * labels are unknown (`undefined`), the webhook configuration's namespaceSelector, which let the
 * request through, is trusted: inject.
 *
 * `namespace` defaults to the pod's `metadata.namespace` (often absent at admission: pass the
 * request's namespace).
 */
export function injectionDecision(
  pod: unknown,
  namespaceLabels: Labels | undefined,
  opts: Pick<InjectorOptions, 'controlPlaneNamespace' | 'ignoredNamespaces'>,
  namespace?: string,
): InjectionDecision {
  const seen = inspectPod(pod);
  if ('problem' in seen) return { inject: false, reason: 'invalid-pod', message: `unexpected pod shape: ${seen.problem}`, warning: `sluice: sidecar not injected, unexpected pod shape: ${seen.problem}` };
  const p = seen.pod;
  const ns = namespace ?? p.namespace ?? '';
  if (hasSidecar(p)) return { inject: false, reason: 'already-injected', message: `the pod already has a ${SIDECAR_NAME} container` };
  if (p.hostNetwork) return { inject: false, reason: 'host-network', message: 'hostNetwork pod: the sidecar would share the node network' };
  if (ns === opts.controlPlaneNamespace) return { inject: false, reason: 'control-plane-namespace', message: `namespace ${ns} is the control plane's` };
  if ((opts.ignoredNamespaces ?? DEFAULT_IGNORED_NAMESPACES).includes(ns)) return { inject: false, reason: 'ignored-namespace', message: `namespace ${ns} is never injected` };
  const nsValue = namespaceLabels?.[NAMESPACE_INJECTION_LABEL];
  if (nsValue === 'disabled') return { inject: false, reason: 'namespace-disabled', message: `namespace ${ns} has ${NAMESPACE_INJECTION_LABEL}=disabled` };

  const raw = p.labels[INJECT_KEY] ?? p.annotations?.[INJECT_KEY];
  const where = p.labels[INJECT_KEY] !== undefined ? 'label' : 'annotation';
  const podValue = parseBool(raw);
  const warning = raw !== undefined && podValue === undefined ? `sluice: ignored ${where} ${INJECT_KEY}="${raw.slice(0, 40)}" (expected "true" or "false")` : undefined;
  const w = warning === undefined ? {} : { warning };
  if (podValue === false) return { inject: false, reason: 'pod-opted-out', message: `pod ${where} ${INJECT_KEY}=false` };
  if (podValue === true) return { inject: true, reason: 'pod-opted-in', message: `pod ${where} ${INJECT_KEY}=true` };
  if (namespaceLabels === undefined) return { inject: true, reason: 'namespace-selector', message: `namespace ${ns} labels unknown: trusting the webhook's namespaceSelector`, ...w };
  if (nsValue === 'enabled') return { inject: true, reason: 'namespace-enabled', message: `namespace ${ns} has ${NAMESPACE_INJECTION_LABEL}=enabled`, ...w };
  return { inject: false, reason: 'namespace-not-enabled', message: `namespace ${ns} has no ${NAMESPACE_INJECTION_LABEL}=enabled label and the pod did not opt in`, ...w };
}

// ---------------------------------------------------------------------------------------------
// The patch.

/** RFC 6901: `~` → `~0`, `/` → `~1` (in that order). */
export function escapeJsonPointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function fieldEnv(name: string, fieldPath: string): EnvVar {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

/** The sidecar init container (native sidecar). */
export function sidecarContainer(opts: InjectorOptions): Record<string, unknown> {
  const env: EnvVar[] = [
    { name: 'SLUICE_SIDECAR_CONTROL_ADDRESS', value: opts.controlAddress },
    { name: 'SLUICE_SIDECAR_STATE_DIR', value: STATE_DIR },
    { name: 'SLUICE_SIDECAR_ADMIN_HOST', value: '0.0.0.0' },
    fieldEnv('SLUICE_POD_NAME', 'metadata.name'),
    fieldEnv('SLUICE_POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('SLUICE_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    { name: 'SLUICE_POD_LABELS_FILE', value: `${PODINFO_DIR}/labels` },
    { name: 'SLUICE_SIDECAR_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
    { name: 'SLUICE_SIDECAR_PORT', value: String(opts.apiPort ?? SIDECAR_API_PORT) },
    { name: 'SLUICE_SIDECAR_ADMIN_PORT', value: String(opts.adminPort ?? SIDECAR_ADMIN_PORT) },
  ];
  if (opts.logLevel !== undefined && opts.logLevel !== '') env.push({ name: 'SLUICE_LOG_LEVEL', value: opts.logLevel });
  if (opts.cacheRedisUrl !== undefined && opts.cacheRedisUrl !== '') env.push({ name: 'SLUICE_SIDECAR_CACHE_REDIS_URL', value: opts.cacheRedisUrl });
  if (opts.caFile !== undefined && opts.caFile !== '') env.push({ name: 'SLUICE_SIDECAR_CA_FILE', value: opts.caFile });
  if (opts.caPem !== undefined && opts.caPem !== '') env.push({ name: 'SLUICE_SIDECAR_CA_PEM', value: opts.caPem });
  const own = new Set(env.map((e) => e.name));
  for (const e of opts.extraEnv ?? []) if (!own.has(e.name)) env.push(e);
  const runAsUser = opts.runAsUser === undefined ? 1000 : opts.runAsUser;
  return {
    name: SIDECAR_NAME,
    image: opts.image,
    ...(opts.imagePullPolicy === undefined ? {} : { imagePullPolicy: opts.imagePullPolicy }),
    restartPolicy: 'Always',
    command: ['node', ...SIDECAR_NODE_FLAGS, 'packages/sidecar/dist/src/main.js'],
    // The LLM API (4000) listens on 127.0.0.1 only: not declared. The admin port serves the probes.
    ports: [{ name: 'sluice-admin', containerPort: opts.adminPort ?? SIDECAR_ADMIN_PORT, protocol: 'TCP' }],
    env,
    resources: structuredClone(opts.resources ?? DEFAULT_SIDECAR_RESOURCES),
    volumeMounts: [
      { name: VOLUME_STATE, mountPath: STATE_DIR },
      { name: VOLUME_PODINFO, mountPath: PODINFO_DIR, readOnly: true },
      { name: VOLUME_TOKEN, mountPath: TOKEN_DIR, readOnly: true },
    ],
    // Native sidecar: the next init container and the app containers start once this probe passes.
    startupProbe: { httpGet: { path: '/healthz', port: opts.adminPort ?? SIDECAR_ADMIN_PORT }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 60 },
    // Ready once the first policy snapshot is applied: the pod is not Ready before.
    readinessProbe: { httpGet: { path: '/ready', port: opts.adminPort ?? SIDECAR_ADMIN_PORT }, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3 },
    securityContext: {
      runAsNonRoot: true,
      ...(runAsUser === null ? {} : { runAsUser, runAsGroup: runAsUser }),
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

/** The volumes the sidecar mounts. */
export function sidecarVolumes(opts: InjectorOptions): Record<string, unknown>[] {
  return [
    { name: VOLUME_STATE, emptyDir: { sizeLimit: '64Mi' } },
    { name: VOLUME_PODINFO, downwardAPI: { items: [{ path: 'labels', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.labels' } }] } },
    {
      name: VOLUME_TOKEN,
      projected: {
        sources: [{ serviceAccountToken: { audience: opts.tokenAudience ?? 'sluice', expirationSeconds: opts.tokenExpirationSeconds ?? 3600, path: 'token' } }],
      },
    },
  ];
}

/**
 * The JSON Patch (RFC 6902) that injects the sidecar into `pod`. Whole arrays and objects are added
 * where the pod has none; otherwise elements are appended (`/-`) or inserted (`/0`). Existing
 * volumes of the same names and app env vars of the same names are kept. A pod that already has the
 * sidecar gets an empty patch. Throws on a pod whose shape `inspectPod` rejects.
 */
export function buildPatch(pod: unknown, opts: InjectorOptions): JsonPatchOperation[] {
  const seen = inspectPod(pod);
  if ('problem' in seen) throw new TypeError(`cannot inject: ${seen.problem}`);
  const p = seen.pod;
  if (hasSidecar(p)) return [];
  const ops: JsonPatchOperation[] = [];

  // 1. The sidecar, first among the init containers.
  const sidecar = sidecarContainer(opts);
  if (p.initContainers === undefined) ops.push({ op: 'add', path: '/spec/initContainers', value: [sidecar] });
  else ops.push({ op: 'add', path: '/spec/initContainers/0', value: sidecar });

  // 2. Its volumes, where absent.
  const volumes = sidecarVolumes(opts).filter((v) => !p.volumeNames?.has(v.name as string));
  if (p.volumeNames === undefined) ops.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const v of volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });

  // 3. The SDKs' base URLs in every app container, where the container does not set them.
  if (parseBool(p.annotations?.[APP_ENV_ANNOTATION]) !== false) {
    for (const [i, c] of p.containers.entries()) {
      const missing = appEnv(opts.apiPort).filter((e) => !c.envNames?.has(e.name)).map((e) => ({ name: e.name, value: e.value }));
      if (missing.length === 0) continue;
      if (c.envNames === undefined) ops.push({ op: 'add', path: `/spec/containers/${i}/env`, value: missing });
      else for (const e of missing) ops.push({ op: 'add', path: `/spec/containers/${i}/env/-`, value: e });
    }
  }

  // 4. The status annotations (`add` replaces an existing member).
  const status: Record<string, string> = { [STATUS_ANNOTATION]: STATUS_INJECTED, [VERSION_ANNOTATION]: opts.version ?? INJECTOR_VERSION };
  if (!p.hasMetadata) ops.push({ op: 'add', path: '/metadata', value: { annotations: status } });
  else if (p.annotations === undefined) ops.push({ op: 'add', path: '/metadata/annotations', value: status });
  else for (const [k, v] of Object.entries(status)) ops.push({ op: 'add', path: `/metadata/annotations/${escapeJsonPointer(k)}`, value: v });
  return ops;
}

// ---------------------------------------------------------------------------------------------
// AdmissionReview in, AdmissionReview out.

export const ADMISSION_V1 = 'admission.k8s.io/v1';
const ADMISSION_V1BETA1 = 'admission.k8s.io/v1beta1';

/** `request.namespace` of a parsed body, if any: what the server looks up labels for. */
export function requestNamespace(body: unknown): string | undefined {
  if (!isObj(body) || !isObj(body['request'])) return undefined;
  const ns = body['request']['namespace'];
  return typeof ns === 'string' && ns !== '' ? ns : undefined;
}

/** `request.uid` of a parsed body, if any. */
export function requestUid(body: unknown): string | undefined {
  if (!isObj(body) || !isObj(body['request'])) return undefined;
  const uid = body['request']['uid'];
  return typeof uid === 'string' && uid !== '' ? uid : undefined;
}

/** An `allowed: true` answer that changes nothing. */
export function allowWithoutPatch(uid: string, message?: string, apiVersion: string = ADMISSION_V1): AdmissionReviewResponse {
  const response: AdmissionResponse =
    message === undefined ? { uid, allowed: true } : { uid, allowed: true, status: { message }, warnings: [truncateWarning(`sluice: ${message}`)] };
  return { apiVersion, kind: 'AdmissionReview', response };
}

/** The API server truncates long warnings; keep them short and on one line. */
function truncateWarning(s: string): string {
  const line = s.replace(/\s+/g, ' ');
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/**
 * The whole admission step: validate the AdmissionReview, decide, build the patch. Never refuses a
 * pod; returns `kind: 'invalid'` only when no `request.uid` can be found.
 */
export function admit(body: unknown, opts: ReviewOptions): AdmissionOutcome {
  const uid = requestUid(body);
  if (uid === undefined) {
    return { kind: 'invalid', message: isObj(body) ? 'not an AdmissionReview: request.uid is missing' : 'not an AdmissionReview: the body is not a JSON object' };
  }
  const b = body as Obj;
  const req = b['request'] as Obj;
  const namespace = requestNamespace(body) ?? '';
  const early = (message: string, apiVersion: string = ADMISSION_V1): AdmissionOutcome => ({
    kind: 'review',
    review: allowWithoutPatch(uid, message, apiVersion),
    uid,
    namespace,
    pod: '',
    patch: [],
  });
  if (b['apiVersion'] === ADMISSION_V1BETA1) return early(`AdmissionReview ${ADMISSION_V1BETA1} is not supported (configure admissionReviewVersions: [v1]); pod admitted without the sidecar`, ADMISSION_V1BETA1);
  if (b['apiVersion'] !== ADMISSION_V1 || b['kind'] !== 'AdmissionReview') {
    return early(`not an ${ADMISSION_V1} AdmissionReview (apiVersion ${JSON.stringify(b['apiVersion'])}, kind ${JSON.stringify(b['kind'])}); admitted without the sidecar`);
  }
  const gvk = req['kind'];
  if (!isObj(gvk) || gvk['group'] !== '' || gvk['version'] !== 'v1' || gvk['kind'] !== 'Pod') {
    return early(`request.kind is ${JSON.stringify(gvk)}, not core/v1 Pod; admitted unchanged`);
  }
  const sub = req['subResource'];
  if (sub !== undefined && sub !== null && sub !== '') return early(`subresource ${JSON.stringify(sub)} is not injected; admitted unchanged`);
  if (req['operation'] !== 'CREATE') return early(`operation ${JSON.stringify(req['operation'])} is not CREATE; admitted unchanged`);
  const pod = req['object'];
  if (!isObj(pod)) return early('request.object is not a pod object; admitted without the sidecar');

  const seen = inspectPod(pod);
  const podName = 'pod' in seen ? seen.pod.displayName : '';
  const decision = injectionDecision(pod, opts.namespaceLabels, opts, namespace === '' ? undefined : namespace);
  const patch = decision.inject ? buildPatch(pod, opts) : [];
  const warnings = decision.warning === undefined ? [] : [truncateWarning(decision.warning)];
  const response: AdmissionResponse = {
    uid,
    allowed: true,
    ...(patch.length > 0 ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
    ...(warnings.length > 0 ? { warnings } : {}),
    ...(decision.reason === 'invalid-pod' ? { status: { message: `${decision.message}; admitted without the sidecar` } } : {}),
  };
  return { kind: 'review', review: { apiVersion: ADMISSION_V1, kind: 'AdmissionReview', response }, uid, namespace, pod: podName, decision, patch };
}

/**
 * v1 AdmissionReview in, v1 AdmissionReview out (`response.uid` = `request.uid`, always allowed, a
 * base64 JSON Patch when the sidecar is injected). Throws {@link InvalidAdmissionReviewError} when the
 * body has no `request.uid` (nothing to answer: the HTTP layer answers 400).
 */
export function review(admissionReviewRequestBody: unknown, opts: ReviewOptions): AdmissionReviewResponse {
  const out = admit(admissionReviewRequestBody, opts);
  if (out.kind === 'invalid') throw new InvalidAdmissionReviewError(out.message);
  return out.review;
}

/** Checks options once, at start (a webhook that would inject a broken sidecar must not start). */
export function validateInjectorOptions(opts: InjectorOptions): void {
  if (typeof opts.image !== 'string' || opts.image.trim() === '') throw new Error('injector: the sidecar image is required');
  if (typeof opts.controlAddress !== 'string' || !/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(opts.controlAddress)) {
    throw new Error(`injector: control address ${JSON.stringify(opts.controlAddress)} is not host:port`);
  }
  if (typeof opts.controlPlaneNamespace !== 'string' || opts.controlPlaneNamespace === '') throw new Error('injector: the control plane namespace is required');
  const exp = opts.tokenExpirationSeconds;
  if (exp !== undefined && (!Number.isInteger(exp) || exp < 600)) throw new Error('injector: tokenExpirationSeconds must be an integer ≥ 600 (Kubernetes minimum)');
  if (opts.runAsUser !== undefined && opts.runAsUser !== null && (!Number.isInteger(opts.runAsUser) || opts.runAsUser <= 0)) {
    throw new Error('injector: runAsUser must be a positive integer (runAsNonRoot)');
  }
}
