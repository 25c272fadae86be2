import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE, type Logger } from '@sluice/core';
import { formatIssue } from '@sluice/policy';
import { ControlService, type ControlServer } from '@sluice/protocol';
import type { Authenticator } from './auth.js';
import { PolicyEngine } from './engine.js';
import { PolicyStreams } from './policy-streams.js';
import { QuotaStreams } from './quota/quota-streams.js';
import { MemoryQuotaStore, type QuotaStore } from './quota/store.js';
import { MemoryUsageStore, type UsageStore } from './usage/store.js';
import { UsageStreams } from './usage/usage-streams.js';
import { spendApi } from './usage/api.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard/page.js';
import type { AdminAuth } from './admin-auth.js';
import { statusView, type ObjectStatus, type ProgrammedCounts } from './status-view.js';
import type { PolicySource } from './source.js';

export interface ControlPlaneOptions {
  readonly source: PolicySource;
  readonly logger: Logger;
  /** gRPC listen address, e.g. `127.0.0.1:4003` (port 0 = ephemeral). */
  readonly grpcAddress: string;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly rootNamespace?: string;
  readonly quietMs?: number;
  readonly maxMs?: number;
  /**
   * TLS for the gRPC port: PEM bytes, or files watched for rotation (cert-manager renews them in
   * place; new connections get the new certificate). Without it the port is plaintext: one-process
   * mode on loopback only.
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | { readonly certFile: string; readonly keyFile: string; readonly refreshIntervalMs?: number };
  /** Verifies each stream's bearer token and binds it to the stream's node (required with TLS in a cluster). */
  readonly authenticator?: Authenticator;
  /** Where global limit counters live: Redis in a cluster; default in memory (one process). */
  readonly quotaStore?: QuotaStore;
  /** Where usage batches land (StreamUsage): Redis in a cluster; default in memory (one process). */
  readonly usageStore?: UsageStore;
  /** Who may read the admin API's `/v1/*`; unset = anyone who reaches the port (loopback by default). */
  readonly adminAuth?: AdminAuth;
}

export interface ControlPlane {
  readonly engine: PolicyEngine;
  readonly streams: PolicyStreams;
  /** StreamQuota: leased credit for global limits. */
  readonly quota: QuotaStreams;
  /** StreamUsage: usage batches applied exactly once. */
  readonly usage: UsageStreams;
  readonly usageStore: UsageStore;
  /** `host:port` the gRPC server listens on. */
  readonly grpcAddress: string;
  readonly adminUrl: string;
  /** Accepted / Programmed status of every object of the source (`peers`: other replicas' sidecars). */
  status(peers?: ProgrammedCounts): ObjectStatus[];
  close(): Promise<void>;
}

function serverCredentials(tls: ControlPlaneOptions['tls']): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  if ('cert' in tls) return grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: tls.certFile,
    privateKeyFile: tls.keyFile,
    // grpc-js asks for a CA provider even when clients present no certificate; the serving
    // certificate stands in, unused.
    caCertificateFile: tls.certFile,
    refreshIntervalMs: tls.refreshIntervalMs ?? 60_000,
  });
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The control plane: policy source → engine (debounced compile) → StreamPolicy to every sidecar;
 * StreamQuota (leased credit for global limits); StreamUsage (usage batches, exactly once); admin
 * HTTP API for `sluice status`.
 */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const engine = new PolicyEngine({ source: o.source, logger: o.logger, rootNamespace: o.rootNamespace, quietMs: o.quietMs, maxMs: o.maxMs });
  await engine.start();
  const streams = new PolicyStreams(engine, o.logger, o.authenticator);
  const quotaStore = o.quotaStore ?? new MemoryQuotaStore();
  const quota = new QuotaStreams({ engine, store: quotaStore, logger: o.logger, ...(o.authenticator === undefined ? {} : { authenticator: o.authenticator }) });
  const usageStore = o.usageStore ?? new MemoryUsageStore();
  const usage = new UsageStreams({ store: usageStore, logger: o.logger, ...(o.authenticator === undefined ? {} : { authenticator: o.authenticator }) });
  const handlers: ControlServer = {
    streamPolicy: streams.handle,
    streamQuota: quota.handle,
    streamUsage: usage.handle,
  };
  const server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000, 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(ControlService, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    const creds = serverCredentials(o.tls);
    server.bindAsync(o.grpcAddress, creds, (err, p) => (err ? reject(err) : resolve(p)));
  });
  const host = o.grpcAddress.slice(0, o.grpcAddress.lastIndexOf(':'));

  const metrics = new MetricsRegistry();
  metrics.gauge('sluice_cp_sidecars_connected', 'Sidecars with an open policy stream.', () => [{ value: streams.sidecars().length }]);
  metrics.gauge('sluice_cp_policy_generation', 'Policy compiles so far.', () => [{ value: engine.generation }], 'counter');
  metrics.gauge('sluice_cp_policy_issues', 'Problems in the current policy (invalid objects, missing references or secrets).', () => [{ value: engine.issues().length }]);
  metrics.gauge('sluice_cp_snapshots_sent_total', 'Policy responses sent to sidecars.', () => [{ value: streams.counters.sent }], 'counter');
  metrics.gauge('sluice_cp_usage_batches_applied_total', 'Usage batches applied to the store.', () => [{ value: usage.counters.applied }], 'counter');
  metrics.gauge('sluice_cp_usage_batches_duplicate_total', 'Usage batches received again after being applied (resends; not counted twice).', () => [{ value: usage.counters.duplicates }], 'counter');
  metrics.gauge('sluice_cp_usage_batches_failed_total', 'Usage batches the store could not take (not acknowledged; the sidecar resends).', () => [{ value: usage.counters.failed }], 'counter');
  metrics.gauge('sluice_cp_snapshot_acks_total', 'Policy responses ACKed.', () => [{ value: streams.counters.acks }], 'counter');
  metrics.gauge('sluice_cp_snapshot_nacks_total', 'Policy responses NACKed.', () => [{ value: streams.counters.nacks }], 'counter');
  metrics.gauge('sluice_cp_streams_rejected_total', 'Streams refused (authentication, bad first request).', () => [{ value: streams.counters.rejected }], 'counter');

  const spendDeps = { usage: usageStore, quota: quotaStore, policy: () => engine.policySet };
  const serveV1 = async (req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams): Promise<void> => {
    if (o.adminAuth !== undefined) {
      const a = await o.adminAuth(req.headers.authorization);
      if (!a.ok) {
        res.setHeader('www-authenticate', 'Bearer');
        return json(res, a.status, { error: a.message });
      }
    }
    const spend = await spendApi(path, params, spendDeps);
    if (spend !== undefined) return json(res, spend.status, spend.body);
    switch (path) {
      case '/v1/sidecars':
        return json(res, 200, { sidecars: streams.sidecars() });
      case '/v1/status':
        return json(res, 200, { objects: statusView(o.source, engine, streams) });
      case '/v1/policy':
        return json(res, 200, {
          generation: engine.generation,
          objects: [...(engine.policySet?.objects.keys() ?? [])],
          stale: [...(engine.policySet?.stale ?? [])],
          issues: engine.issues().map((i) => ({ ...i, text: formatIssue(i) })),
        });
      default:
        return json(res, 404, { error: 'not found' });
    }
  };
  const admin: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (req.method !== 'GET') return json(res, 405, { error: 'method not allowed' });
    if (path.startsWith('/v1/')) {
      serveV1(req, res, path, url.searchParams).catch((e: unknown) => {
        o.logger.error({ err: e, path }, 'admin API failure');
        if (!res.headersSent) json(res, 503, { error: `unavailable: ${e instanceof Error ? e.message : String(e)}` });
        else res.destroy();
      });
      return;
    }
    switch (path) {
      case '/':
      case '/dashboard':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': Buffer.byteLength(DASHBOARD_HTML),
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          'content-security-policy': DASHBOARD_CSP,
        });
        res.end(DASHBOARD_HTML);
        return;
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/ready':
        return json(res, engine.policySet ? 200 : 503, { status: engine.policySet ? 'ready' : 'compiling', generation: engine.generation });
      case '/metrics': {
        const text = metrics.render();
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      default:
        return json(res, 404, { error: 'not found' });
    }
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(o.adminPort, o.adminHost, () => resolve());
  });
  const a = admin.address() as AddressInfo;
  o.logger.info({ grpc: `${host}:${port}`, admin: `${a.address}:${a.port}`, source: o.source.name }, 'control plane started');
  return {
    engine,
    streams,
    quota,
    usage,
    usageStore,
    grpcAddress: `${host}:${port}`,
    adminUrl: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    status: (peers) => statusView(o.source, engine, streams, peers),
    async close() {
      streams.closeAll();
      server.forceShutdown();
      admin.closeAllConnections();
      await new Promise((r) => admin.close(r));
      await engine.close();
      await quotaStore.close();
      await usageStore.close();
    },
  };
}
