/**
 * Every setting of the sidecar, read once from the environment. Each variable has a default and a
 * doc line; the README's configuration reference is generated from the same list by hand.
 */
export interface SidecarConfig {
  /** LLM API listen address (loopback only: the app calls localhost). */
  readonly host: string;
  readonly port: number;
  /** Admin listener (/healthz, /ready). */
  readonly adminHost: string;
  readonly adminPort: number;
  /** Largest request body accepted (413 beyond). */
  readonly maxBodyBytes: number;
  /** Time allowed to receive a whole request body (408 beyond). */
  readonly bodyTimeoutMs: number;
  /** Largest non-streamed upstream response body read. */
  readonly maxResponseBytes: number;
  /** `max_tokens` written into a translated request to Anthropic when the caller gave none. */
  readonly defaultMaxTokens: number;
  readonly logLevel: string;
  /** Control plane gRPC address (`host:port`); required by the sidecar binary. */
  readonly controlAddress: string;
  /** Directory keeping the last good snapshot across restarts ('' = memory only). */
  readonly stateDir: string;
  /** Identity announced to the control plane (Kubernetes downward API). */
  readonly podName: string;
  readonly podNamespace: string;
  readonly serviceAccount: string;
  readonly podLabelsFile: string;
  /** On SIGTERM, how long requests in flight may take to finish. */
  readonly drainTimeoutMs: number;
  /** CA of the control plane's TLS certificate ('' = plaintext, one-process mode only). */
  readonly caFile: string;
  /** The same CA inline (PEM), as the injection webhook provides it; wins over `caFile`. */
  readonly caPem: string;
  /** Projected service account token (audience sluice) sent to the control plane. */
  readonly tokenFile: string;
  /** Pod label whose value is the `team` of usage attribution. */
  readonly teamLabel: string;
  /** OTLP/HTTP endpoint for traces ('' = tracing off). */
  readonly otlpEndpoint: string;
  /** Batch routing: bytes of answers kept for callers that poll (202), and how long after they arrive. */
  readonly batchResultsMaxBytes: number;
  readonly batchResultsTtlMs: number;
  /** Response cache (LLMCache): the shared Redis tier ('' = local tier only). */
  readonly cacheRedisUrl: string;
  /** Bytes of the in-sidecar tier, and the largest answer cached. */
  readonly cacheMaxBytes: number;
  readonly cacheMaxEntryBytes: number;
  /** A Redis lookup slower than this counts as a miss. */
  readonly cacheRedisTimeoutMs: number;
  /** Bytes of semantic-cache vectors held in memory. */
  readonly semanticMaxBytes: number;
  /** Guardrail audit log file ('' = stderr). */
  readonly auditLog: string;
}

interface Var {
  readonly env: string;
  readonly doc: string;
  readonly def: string;
}

export const SIDECAR_ENV: Readonly<Record<keyof SidecarConfig, Var>> = {
  host: { env: 'SLUICE_SIDECAR_HOST', def: '127.0.0.1', doc: 'LLM API listen address' },
  port: { env: 'SLUICE_SIDECAR_PORT', def: '4000', doc: 'LLM API port' },
  adminHost: { env: 'SLUICE_SIDECAR_ADMIN_HOST', def: '0.0.0.0', doc: 'admin listen address (/healthz, /ready)' },
  adminPort: { env: 'SLUICE_SIDECAR_ADMIN_PORT', def: '4001', doc: 'admin port' },
  maxBodyBytes: { env: 'SLUICE_SIDECAR_MAX_BODY_BYTES', def: String(16 * 1024 * 1024), doc: 'largest request body accepted (413 beyond)' },
  bodyTimeoutMs: { env: 'SLUICE_SIDECAR_BODY_TIMEOUT_MS', def: '30000', doc: 'time to receive a whole request body (408 beyond)' },
  maxResponseBytes: { env: 'SLUICE_SIDECAR_MAX_RESPONSE_BYTES', def: String(64 * 1024 * 1024), doc: 'largest non-streamed provider response read' },
  defaultMaxTokens: { env: 'SLUICE_SIDECAR_DEFAULT_MAX_TOKENS', def: '4096', doc: 'max_tokens sent to Anthropic when an OpenAI caller gave none' },
  logLevel: { env: 'SLUICE_LOG_LEVEL', def: 'info', doc: 'pino log level' },
  controlAddress: { env: 'SLUICE_SIDECAR_CONTROL_ADDRESS', def: '', doc: 'control plane gRPC address host:port (sidecar binary)' },
  stateDir: { env: 'SLUICE_SIDECAR_STATE_DIR', def: '', doc: 'directory for the last good snapshot; empty = memory only' },
  podName: { env: 'SLUICE_POD_NAME', def: 'local', doc: 'pod name announced to the control plane' },
  podNamespace: { env: 'SLUICE_POD_NAMESPACE', def: 'default', doc: 'pod namespace (scopes the snapshot)' },
  serviceAccount: { env: 'SLUICE_SERVICE_ACCOUNT', def: 'default', doc: 'pod service account (scopes the snapshot)' },
  podLabelsFile: { env: 'SLUICE_POD_LABELS_FILE', def: '', doc: 'downward API file with the pod labels' },
  drainTimeoutMs: { env: 'SLUICE_SIDECAR_DRAIN_TIMEOUT_MS', def: '25000', doc: 'on SIGTERM, time for requests in flight to finish' },
  caFile: { env: 'SLUICE_SIDECAR_CA_FILE', def: '', doc: 'CA of the control plane certificate; empty = plaintext (loopback only)' },
  caPem: { env: 'SLUICE_SIDECAR_CA_PEM', def: '', doc: 'CA of the control plane certificate, inline PEM (set by the injection webhook)' },
  tokenFile: { env: 'SLUICE_SIDECAR_TOKEN_FILE', def: '', doc: 'projected service account token sent to the control plane' },
  teamLabel: { env: 'SLUICE_SIDECAR_TEAM_LABEL', def: 'team', doc: 'pod label whose value is the team in usage attribution' },
  otlpEndpoint: { env: 'SLUICE_OTEL_EXPORTER_OTLP_ENDPOINT', def: '', doc: 'OTLP/HTTP endpoint for traces (spans go to <endpoint>/v1/traces); empty = tracing off' },
  batchResultsMaxBytes: { env: 'SLUICE_SIDECAR_BATCH_RESULTS_MAX_BYTES', def: String(256 * 1024 * 1024), doc: 'batch routing: bytes of answers kept for callers that got a 202 and poll' },
  batchResultsTtlMs: { env: 'SLUICE_SIDECAR_BATCH_RESULTS_TTL_MS', def: String(24 * 3_600_000), doc: 'batch routing: how long such an answer is kept after it arrived' },
  cacheRedisUrl: { env: 'SLUICE_SIDECAR_CACHE_REDIS_URL', def: '', doc: 'response cache: Redis URL of the shared tier (redis://[:password@]host:port/db); empty = in-sidecar tier only' },
  cacheMaxBytes: { env: 'SLUICE_SIDECAR_CACHE_MAX_BYTES', def: String(64 * 1024 * 1024), doc: 'response cache: bytes of answers held in the sidecar (LRU)' },
  cacheMaxEntryBytes: { env: 'SLUICE_SIDECAR_CACHE_MAX_ENTRY_BYTES', def: String(1024 * 1024), doc: 'response cache: larger answers are not cached' },
  cacheRedisTimeoutMs: { env: 'SLUICE_SIDECAR_CACHE_REDIS_TIMEOUT_MS', def: '100', doc: 'response cache: a Redis lookup slower than this counts as a miss' },
  semanticMaxBytes: { env: 'SLUICE_SIDECAR_SEMANTIC_MAX_BYTES', def: String(64 * 1024 * 1024), doc: 'semantic cache: bytes of embedding vectors held in memory (LRU)' },
  auditLog: { env: 'SLUICE_SIDECAR_AUDIT_LOG', def: '', doc: 'guardrail audit log: a file the findings are appended to (JSON lines); empty = stderr' },
};

function intVar(v: Var, env: NodeJS.ProcessEnv, min: number, max: number): number {
  const raw = env[v.env] ?? v.def;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${v.env}=${raw}: must be an integer from ${min} to ${max}`);
  return n;
}

/** Reads the configuration; throws with the variable's name on a bad value. */
export function loadSidecarConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<SidecarConfig> = {}): SidecarConfig {
  const e = SIDECAR_ENV;
  return {
    host: env[e.host.env] ?? e.host.def,
    port: intVar(e.port, env, 0, 65535),
    adminHost: env[e.adminHost.env] ?? e.adminHost.def,
    adminPort: intVar(e.adminPort, env, 0, 65535),
    maxBodyBytes: intVar(e.maxBodyBytes, env, 1024, 1024 * 1024 * 1024),
    bodyTimeoutMs: intVar(e.bodyTimeoutMs, env, 100, 3_600_000),
    maxResponseBytes: intVar(e.maxResponseBytes, env, 1024, 1024 * 1024 * 1024),
    defaultMaxTokens: intVar(e.defaultMaxTokens, env, 1, 1_000_000),
    logLevel: env[e.logLevel.env] ?? e.logLevel.def,
    controlAddress: env[e.controlAddress.env] ?? e.controlAddress.def,
    stateDir: env[e.stateDir.env] ?? e.stateDir.def,
    podName: env[e.podName.env] ?? e.podName.def,
    podNamespace: env[e.podNamespace.env] ?? e.podNamespace.def,
    serviceAccount: env[e.serviceAccount.env] ?? e.serviceAccount.def,
    podLabelsFile: env[e.podLabelsFile.env] ?? e.podLabelsFile.def,
    drainTimeoutMs: intVar(e.drainTimeoutMs, env, 0, 3_600_000),
    caFile: env[e.caFile.env] ?? e.caFile.def,
    caPem: env[e.caPem.env] ?? e.caPem.def,
    tokenFile: env[e.tokenFile.env] ?? e.tokenFile.def,
    teamLabel: env[e.teamLabel.env] ?? e.teamLabel.def,
    otlpEndpoint: env[e.otlpEndpoint.env] ?? e.otlpEndpoint.def,
    batchResultsMaxBytes: intVar(e.batchResultsMaxBytes, env, 1024, 16 * 1024 * 1024 * 1024),
    batchResultsTtlMs: intVar(e.batchResultsTtlMs, env, 1000, 30 * 86_400_000),
    cacheRedisUrl: env[e.cacheRedisUrl.env] ?? e.cacheRedisUrl.def,
    cacheMaxBytes: intVar(e.cacheMaxBytes, env, 0, 64 * 1024 * 1024 * 1024),
    cacheMaxEntryBytes: intVar(e.cacheMaxEntryBytes, env, 1024, 1024 * 1024 * 1024),
    cacheRedisTimeoutMs: intVar(e.cacheRedisTimeoutMs, env, 1, 60_000),
    semanticMaxBytes: intVar(e.semanticMaxBytes, env, 0, 64 * 1024 * 1024 * 1024),
    auditLog: env[e.auditLog.env] ?? e.auditLog.def,
    ...overrides,
  };
}
