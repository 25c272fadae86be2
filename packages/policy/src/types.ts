/**
 * The policy kinds (`sluice.dev/v1alpha1`, namespaced) as TypeScript types. The same objects come
 * from Kubernetes (CRDs) or from YAML files in the one-process mode. `schemas.ts` holds the matching
 * JSON schemas (used for validation and for the CRDs).
 */
export const API_GROUP = 'sluice.dev';
export const API_VERSION = 'sluice.dev/v1alpha1';

export const KINDS = ['LLMBackend', 'LLMRoute', 'LLMLimit', 'LLMCache', 'LLMGuardrail'] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  generation?: number;
  resourceVersion?: string;
  uid?: string;
}

/** Which workloads (pods) an object applies to, within its namespace (or every namespace from the root namespace). */
export interface WorkloadSelector {
  /** Pod labels that must all match. */
  labels?: Record<string, string>;
  /** Service accounts, any of which matches. */
  serviceAccounts?: string[];
}

/** Which requests a limit, cache or guardrail applies to. Empty = all. */
export interface RequestMatch {
  /** Route names (`LLMRoute` metadata.name). */
  routes?: string[];
  /** Model names or `*` globs, as requested by the caller. */
  models?: string[];
}

export interface ModelPricing {
  /** Integer micro-USD per million tokens. */
  input?: number;
  cachedInput?: number;
  cacheWrite?: number;
  output?: number;
  reasoning?: number;
}

export interface BackendModel {
  id: string;
  aliases?: string[];
  pricing?: ModelPricing;
  /** Capability routing: what the model takes, overriding (or, for unknown models, providing) the bundled table. */
  capabilities?: { contextWindow?: number; tools?: boolean; vision?: boolean; json?: boolean };
}

export interface BackendAuth {
  /** Kubernetes Secret (in the backend's namespace) holding the key. */
  secretRef?: { name: string; key: string };
  /** One-process mode: name of an environment variable of the control plane process. */
  env?: string;
}

export interface BackendTimeouts {
  connectMs?: number;
  /** Until response headers (for a non-streamed answer: the whole generation). */
  firstByteMs?: number;
  /** Longest silence between two chunks of a streamed body. */
  idleMs?: number;
}

export interface LLMBackendSpec {
  /** Provider id from the provider table (`PROVIDERS` in @sluice/providers). */
  provider: string;
  /** Base URL; defaults to the provider's public endpoint. */
  endpoint?: string;
  auth?: BackendAuth;
  models?: BackendModel[];
  timeouts?: BackendTimeouts;
  /** Azure OpenAI: the api-version, and how the credential is sent (`api-key` header or Entra `bearer`). */
  azure?: { apiVersion?: string; auth?: 'api-key' | 'bearer' | 'entra'; entra?: { tenantId: string; clientId: string; authorityHost?: string; federatedTokenFile?: string } };
  /** Vertex AI: the Google Cloud project and location (`us-central1`, `global`, …). The auth Secret holds a service-account key (JSON). */
  vertex?: { project: string; location: string };
  /** Bedrock: the AWS region. The auth Secret holds JSON `{accessKeyId, secretAccessKey, sessionToken?}`. */
  bedrock?: { region: string; roleArn?: string; webIdentityTokenFile?: string; stsEndpoint?: string };
}

export interface RouteBackendRef {
  /** LLMBackend name, in the route's namespace or the root namespace. */
  name: string;
  /** Model sent upstream instead of the requested one. */
  modelOverride?: string;
  /** Share of first attempts under `strategy: weighted` (default 1; 0 = fallback only). */
  weight?: number;
}

/** How the first backend of a rule is chosen; the others follow in declared order as fallbacks. */
export type RouteStrategy = 'ordered' | 'weighted' | 'least-busy' | 'latency' | 'cost';

export interface RouteRetry {
  /** Attempts in all, the first included (default 3). */
  attempts?: number;
  /** Base backoff before retrying the same backend (default 250 ms; 529 waits 4×). */
  backoffMs?: number;
  /** Longest wait before a retry; a Retry-After above it is returned to the caller instead (default 10 s). */
  maxBackoffMs?: number;
}

export interface RouteRule {
  match: { models: string[] };
  backends: RouteBackendRef[];
  strategy?: RouteStrategy;
  /** Fail over to the rule's other backends (default true). */
  fallback?: boolean;
  retry?: RouteRetry;
  /** Output cap: `max_tokens` set to this when absent, lowered to it when larger. */
  maxTokens?: number;
  timeouts?: RouteTimeouts;
  /** Identical non-streamed requests in flight at once share one upstream call (default false). */
  coalesce?: boolean;
  /** Also send a share of the requests to a candidate backend; its answer is logged, never returned. */
  shadow?: { backend: string; modelOverride?: string; percent: number };
  /** Latency-tolerant requests go through the provider's batch API. */
  batch?: RouteBatch;
  /** Opt-in: the request's texts (and the answer's) in its log line, through the PII redaction. */
  logging?: RouteLogging;
}

export interface RouteLogging {
  /** Log the request's texts (default false). */
  prompts?: boolean;
  /** Log the answer's texts (default false). */
  completions?: boolean;
  /** Longest text logged per field, in characters (default 4096); longer texts are cut. */
  maxChars?: number;
}

export interface RouteBatch {
  /** `off` (default); `header`: requests with `x-sluice-batch: true`; `always`: every request unless `x-sluice-batch: false`. */
  mode?: 'off' | 'header' | 'always';
  /** How long requests are collected before a batch is submitted (default 60 000). */
  windowMs?: number;
  /** A batch is submitted at once when it holds this many requests (default 1000). */
  maxRequests?: number;
  /** How often a submitted batch is polled (default 30 000). */
  pollMs?: number;
  /** How long the caller's connection is held for the answer before a 202 with a poll URL (default 600 000). */
  holdMs?: number;
}

export interface RouteTimeouts {
  /** Until the provider's response headers (a stream's first event); overrides the backend's. */
  firstTokenMs?: number;
  /** Longest silence between two chunks of a stream; overrides the backend's. */
  idleMs?: number;
  /** The whole request, every attempt and wait included (default none). */
  totalMs?: number;
  /** Upper bound of the `x-sluice-timeout-ms` request header (default: `totalMs`, else 10 min). */
  maxTotalMs?: number;
}

export interface LLMRouteSpec {
  workloadSelector?: WorkloadSelector;
  rules: RouteRule[];
}

export type LimitUnit = 'requests' | 'tokens' | 'inputTokens' | 'outputTokens' | 'microUSD';
export type LimitWindow = 'second' | 'minute' | 'hour' | 'day' | 'month';

export interface LimitKeyPart {
  source: 'namespace' | 'serviceAccount' | 'label' | 'header';
  /** Label or header name (for `label` and `header`). */
  name?: string;
}

export interface LLMLimitSpec {
  workloadSelector?: WorkloadSelector;
  match?: RequestMatch;
  unit: LimitUnit;
  window: LimitWindow;
  /** Windows start at calendar boundaries (e.g. the 1st of the month) in `timeZone`. */
  calendarAligned?: boolean;
  timeZone?: string;
  /** Integer units per window. */
  max: number;
  /** Parts of the counter key; empty = one counter for everything the limit matches. */
  key?: LimitKeyPart[];
  scope?: 'local' | 'global';
  failureMode?: 'FailClosed' | 'FailOpen' | 'LocalShare';
  mode?: 'enforce' | 'shadow';
  /**
   * When the limit would deny only because of the output tokens reserved for `max_tokens`, lower
   * `max_tokens` to what the credit allows instead of denying.
   */
  clampMaxTokens?: boolean;
}

export interface LLMCacheSpec {
  workloadSelector?: WorkloadSelector;
  match?: RequestMatch;
  exact?: boolean;
  semantic?: {
    /** LLMBackend serving embeddings. */
    backend: string;
    model: string;
    /** Cosine similarity threshold, 0..1. */
    threshold: number;
    /** What is embedded: the last user turn (default) or every user turn. */
    embed?: 'lastUserTurn' | 'allUserTurns';
  };
  ttlSeconds?: number;
  keyVersion?: string;
  isolation?: 'namespace' | 'team' | 'global';
  cacheNonDeterministic?: boolean;
  /** Use the shared Redis tier when the sidecar has one (default true). */
  shared?: boolean;
  /** Anthropic prompt caching: `cache_control` breakpoints on long stable prefixes (system, tools). */
  promptCaching?: { enabled: boolean; minPrefixTokens?: number };
}

export type DetectorKind = 'email' | 'phone' | 'ssn' | 'creditCard' | 'iban' | 'ip' | 'secret' | 'injection' | 'denyList' | 'regex';

export interface DetectorSpec {
  kind: DetectorKind;
  /** Words (denyList) or regular expressions (regex). */
  values?: string[];
  /** Finding label for custom detectors. */
  name?: string;
}

export interface LLMGuardrailSpec {
  workloadSelector?: WorkloadSelector;
  match?: { routes?: string[] };
  direction: 'input' | 'output' | 'both';
  action: 'redact' | 'block' | 'log';
  /** Detectors run in the sidecar (at least one of `detectors` and `classifier`). */
  detectors?: DetectorSpec[];
  /** An external moderation endpoint asked about the texts. */
  classifier?: ClassifierSpec;
}

export interface ClassifierSpec {
  /** LLMBackend serving the classifier. */
  backend: string;
  model: string;
  /**
   * `openaiModeration` (default): POST /v1/moderations; `llamaGuard`: a Llama Guard model behind a
   * chat API; `bedrockGuardrail`: an Amazon Bedrock guardrail (ApplyGuardrail) through a Bedrock
   * backend, `model` being `<guardrail id or ARN>:<version>`; `azureContentSafety`: Azure AI
   * Content Safety text analysis through an `azure-content-safety` backend.
   */
  format?: 'openaiModeration' | 'llamaGuard' | 'bedrockGuardrail' | 'azureContentSafety';
  /** Categories that count (default: every category the classifier flags). */
  categories?: string[];
  /** openaiModeration: a category counts when its score reaches this (0..1); default: the endpoint's own `flagged`. */
  threshold?: number;
  /** Longest wait for a verdict (default 2000 ms). */
  timeoutMs?: number;
  /** When the classifier fails or times out: `allow` (fail open, default) or `block` (fail closed). */
  onError?: 'allow' | 'block';
  /** Longest text sent, in characters (default 32 000; the end is cut). */
  maxChars?: number;
  /** Streamed answers, `block` guardrails: also ask every this many characters of answer (default 0: only at the end). */
  streamCheckChars?: number;
}

export interface PolicyObject<K extends Kind = Kind, S = unknown> {
  apiVersion: string;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
}

export type LLMBackend = PolicyObject<'LLMBackend', LLMBackendSpec>;
export type LLMRoute = PolicyObject<'LLMRoute', LLMRouteSpec>;
export type LLMLimit = PolicyObject<'LLMLimit', LLMLimitSpec>;
export type LLMCache = PolicyObject<'LLMCache', LLMCacheSpec>;
export type LLMGuardrail = PolicyObject<'LLMGuardrail', LLMGuardrailSpec>;
export type AnyPolicyObject = LLMBackend | LLMRoute | LLMLimit | LLMCache | LLMGuardrail;

/** `Kind namespace/name`, the identity used in issues, status and NACKs. */
export function objectKey(o: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${o.kind} ${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
}
