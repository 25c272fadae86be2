/** Every setting of the control plane, read once from the environment (`SLUICE_CP_*`). */
export interface ControlPlaneConfig {
  /** `files` (a watched directory) or `kubernetes` (CRD informers). */
  readonly source: 'files' | 'kubernetes';
  readonly policyDir: string;
  readonly grpcAddress: string;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly rootNamespace: string;
  readonly logLevel: string;
  /** TLS for the gRPC port (PEM files); required with the kubernetes source. */
  readonly grpcTlsCertFile: string;
  /** Redis for global limit counters; '' = in memory (one process only). */
  readonly redisUrl: string;
  readonly grpcTlsKeyFile: string;
  /** Kubernetes source: namespace and name of the leader-election Lease (the leader writes object status). */
  readonly leaseNamespace: string;
  readonly leaseName: string;
  /** Pod name (downward API), the base of the leader-election identity; '' = the host name. */
  readonly podName: string;
  /** Bearer token required on the admin API's `/v1/*` ('' = none). */
  readonly adminToken: string;
  /** Kubernetes source: users (or `group:<name>`) whose tokens, checked with TokenReview, may read `/v1/*` (comma-separated). */
  readonly adminAllow: string;
}

export const CONTROL_PLANE_ENV: Readonly<Record<keyof ControlPlaneConfig, { env: string; def: string; doc: string }>> = {
  source: { env: 'SLUICE_CP_SOURCE', def: 'files', doc: 'policy source: files | kubernetes' },
  policyDir: { env: 'SLUICE_CP_POLICY_DIR', def: 'examples', doc: 'directory of policy YAML (source files)' },
  grpcAddress: { env: 'SLUICE_CP_GRPC_ADDRESS', def: '127.0.0.1:4003', doc: 'gRPC listen address for sidecar streams' },
  adminHost: { env: 'SLUICE_CP_ADMIN_HOST', def: '127.0.0.1', doc: 'admin API listen address (/healthz, /ready, /v1/sidecars, /v1/policy)' },
  adminPort: { env: 'SLUICE_CP_ADMIN_PORT', def: '4002', doc: 'admin API port' },
  rootNamespace: { env: 'SLUICE_CP_ROOT_NAMESPACE', def: 'sluice-system', doc: 'objects here apply to workloads of every namespace' },
  logLevel: { env: 'SLUICE_LOG_LEVEL', def: 'info', doc: 'pino log level' },
  redisUrl: { env: 'SLUICE_CP_REDIS_URL', def: '', doc: 'Redis URL for global limit counters (StreamQuota); empty = in memory, for one control plane process only' },
  grpcTlsCertFile: { env: 'SLUICE_CP_GRPC_TLS_CERT_FILE', def: '', doc: 'TLS certificate (PEM) of the gRPC port; required with the kubernetes source' },
  grpcTlsKeyFile: { env: 'SLUICE_CP_GRPC_TLS_KEY_FILE', def: '', doc: 'TLS private key (PEM) of the gRPC port' },
  leaseNamespace: { env: 'SLUICE_CP_LEASE_NAMESPACE', def: 'sluice-system', doc: 'namespace of the leader-election Lease (source kubernetes)' },
  leaseName: { env: 'SLUICE_CP_LEASE_NAME', def: 'sluice-control-plane', doc: 'name of the leader-election Lease; its holder writes policy object status (source kubernetes)' },
  podName: { env: 'SLUICE_POD_NAME', def: '', doc: 'pod name (downward API), base of the leader-election identity; default: the host name' },
  adminToken: { env: 'SLUICE_CP_ADMIN_TOKEN', def: '', doc: 'bearer token required on the admin API /v1/* (spend, limits, sidecars, policy); empty = none' },
  adminAllow: { env: 'SLUICE_CP_ADMIN_ALLOW', def: '', doc: 'source kubernetes: users or group:<name> whose bearer tokens (TokenReview) may read /v1/*, comma-separated' },
};

export function loadControlPlaneConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<ControlPlaneConfig> = {}): ControlPlaneConfig {
  const get = (k: keyof ControlPlaneConfig): string => env[CONTROL_PLANE_ENV[k].env] ?? CONTROL_PLANE_ENV[k].def;
  const source = get('source');
  if (source !== 'files' && source !== 'kubernetes') throw new Error(`SLUICE_CP_SOURCE=${source}: must be files or kubernetes`);
  const adminPort = Number(get('adminPort'));
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) throw new Error(`SLUICE_CP_ADMIN_PORT=${get('adminPort')}: must be a port number`);
  return {
    source,
    policyDir: get('policyDir'),
    grpcAddress: get('grpcAddress'),
    adminHost: get('adminHost'),
    adminPort,
    rootNamespace: get('rootNamespace'),
    logLevel: get('logLevel'),
    grpcTlsCertFile: get('grpcTlsCertFile'),
    redisUrl: get('redisUrl'),
    grpcTlsKeyFile: get('grpcTlsKeyFile'),
    leaseNamespace: get('leaseNamespace'),
    leaseName: get('leaseName'),
    podName: get('podName'),
    adminToken: get('adminToken'),
    adminAllow: get('adminAllow'),
    ...overrides,
  };
}
