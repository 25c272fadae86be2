import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { acceptRequestId, createAuditLogger, errorBody, infoLineWriter, newRequestId, PROMETHEUS_CONTENT_TYPE, SluiceError, type ApiShape, type Logger } from '@sluice/core';
// The snapshot entry only: the sidecar never loads the policy validator (ajv) or YAML parser.
import { checkSnapshot, type Snapshot, type SnapshotProblem } from '@sluice/policy/snapshot';
import type { SidecarConfig } from './config.js';
import { handleLlmRequest, type Endpoint } from './handler.js';
import { SidecarMetrics } from './metrics.js';
import { LimitEnforcer, type GlobalQuota, type WorkloadIdentity } from './limits/enforce.js';
import type { UsageSink } from './handler.js';
import type { Tracing } from './tracing.js';
import { Routing } from './routing/index.js';
import { Coalescer } from './routing/coalesce.js';
import { handleFeedback, RecentRequests } from './usage/feedback.js';
import { sendError } from './http-util.js';
import { createRuntime, type Runtime } from './runtime.js';
import { UpstreamPools } from './upstream.js';
import { Batcher } from './batch/batcher.js';
import { BatchResults } from './batch/results.js';
import { ResponseCache } from './cache/index.js';
import { SemanticCache } from './cache/semantic.js';
import { NO_QUOTA_STATS, type QuotaStats } from './limits/quota-stats.js';
import { batchStatusBody } from './handler.js';

const ENDPOINTS: Readonly<Record<string, Endpoint>> = Object.freeze({
  '/v1/chat/completions': { ingress: 'openai-chat', shape: 'openai' },
  '/v1/embeddings': { ingress: 'openai-embeddings', shape: 'openai' },
  '/v1/messages': { ingress: 'anthropic-messages', shape: 'anthropic' },
  '/v1/responses': { ingress: 'openai-responses', shape: 'openai' },
});

const BATCH_POLL_PREFIX = '/v1/sluice/batch/';

const shapeOfPath = (path: string): ApiShape => (path.startsWith('/v1/messages') ? 'anthropic' : 'openai');

export interface Sidecar {
  /** Resolves once both listeners are bound. */
  readonly url: string;
  readonly adminUrl: string;
  /**
   * Checks a snapshot and, if the runtime can be built from it, swaps it in atomically (requests in
   * flight finish on the old one). Returns the problems that made it refuse (empty = applied).
   */
  applySnapshot(snapshot: Snapshot): SnapshotProblem[];
  readonly snapshotVersion: string | undefined;
  /** Requests being served right now. */
  readonly inFlight: number;
  /**
   * Graceful shutdown: stop accepting, report not ready, let requests in flight (streams included)
   * finish for up to `deadlineMs`, then close everything.
   */
  drain(deadlineMs: number): Promise<{ finished: number; cut: number }>;
  close(): Promise<void>;
  /** Sets the source of global limit credit (the quota client, once the control plane address is known). */
  setQuota(quota: GlobalQuota | undefined): void;
  /** Sets where finished requests are counted (the usage reporter). */
  setUsage(usage: UsageSink | undefined): void;
}

export interface SidecarOptions {
  readonly config: SidecarConfig;
  readonly logger: Logger;
  /** First snapshot; without one the sidecar is not ready and answers 503 until one is applied. */
  readonly snapshot?: Snapshot;
  /** The pod's identity for limit keys; default: namespace and service account from the config, no labels. */
  readonly identity?: WorkloadIdentity;
  /** Credit for `scope: global` limits; without it their failure mode applies. */
  readonly quota?: GlobalQuota;
  /** OpenTelemetry traces (`createTracing`); none = tracing off. */
  readonly tracing?: Tracing;
  /** Routing state (tests pass one with a seeded random source). */
  readonly routing?: Routing;
  /** Where guardrail findings go; default: the audit log of the configuration. */
  readonly audit?: Logger;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

const hostForUrl = (a: AddressInfo): string => (a.family === 'IPv6' ? `[${a.address}]` : a.address);

/**
 * The sidecar process: the LLM API listener (loopback), the admin listener, the applied snapshot.
 */
export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const { config, logger } = options;
  const pools = new UpstreamPools();
  let runtime: Runtime | undefined;
  let usage: UsageSink | undefined;
  let inFlight = 0;
  let draining = false;
  let idle: (() => void) | undefined;
  const metrics = new SidecarMetrics(
    () => inFlight,
    () => runtime?.snapshot.version,
    () => usage?.usageStats,
  );
  const routing = options.routing ?? new Routing({ logger });
  metrics.breakers(
    () => routing.breakers.ejectedNow(routing.now()),
    () => routing.counters.ejections,
  );
  const batcher = new Batcher({ pools, logger, onBatch: (backend, outcome, n) => metrics.observeBatch(backend, outcome, n) });
  metrics.batching(() => batcher.stats);
  const logLine = infoLineWriter(logger);
  const cache = new ResponseCache({ maxBytes: config.cacheMaxBytes, maxEntryBytes: config.cacheMaxEntryBytes, redisUrl: config.cacheRedisUrl, redisTimeoutMs: config.cacheRedisTimeoutMs, logger });
  metrics.caching(() => cache.stats, () => cache.local);
  const semantic = new SemanticCache({ pools, logger, local: cache.local, redis: () => cache.redis, maxBytes: config.semanticMaxBytes });
  metrics.semanticCache(() => semantic.stats, () => semantic.index);
  // Global-limit credit traffic: the quota client's counters once one is set (zeros before).
  let quotaStats: (() => QuotaStats) | undefined;
  metrics.quota(() => quotaStats?.() ?? NO_QUOTA_STATS);
  const audit = options.audit ?? createAuditLogger(config.auditLog);
  const deps = {
    audit,
    cache,
    semantic,
    logLine,
    batcher,
    batchResults: new BatchResults(config.batchResultsMaxBytes, config.batchResultsTtlMs),
    config,
    logger,
    metrics,
    limits: new LimitEnforcer(options.quota),
    identity: options.identity ?? { namespace: config.podNamespace, serviceAccount: config.serviceAccount, labels: {} },
    usage: (): UsageSink | undefined => usage,
    tracing: options.tracing,
    recent: new RecentRequests(),
    routing,
    coalescer: new Coalescer(),
    pools,
    runtime: (): Runtime => runtime as Runtime,
  };

  function logSimple(req: IncomingMessage, id: string, status: number, code: string | undefined, t0: number): void {
    logLine({ id, api: 'http', method: req.method, path: req.url?.slice(0, 200), status, code, durMs: Math.round((performance.now() - t0) * 100) / 100 }, 'request');
    metrics.observeHttp(status, code);
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const t0 = performance.now();
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) idle?.();
    });
    if (draining) res.setHeader('connection', 'close');
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const ep = ENDPOINTS[path];
    if (ep !== undefined) {
      if (req.method !== 'POST') {
        const id = newRequestId();
        sendError(res, ep.shape, new SluiceError('SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${path}; use POST`), id);
        req.resume();
        logSimple(req, id, 405, 'SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', t0);
        return;
      }
      if (runtime === undefined) {
        const id = newRequestId();
        sendError(res, ep.shape, new SluiceError('SLUICE_ERR_NOT_READY'), id);
        req.resume();
        logSimple(req, id, 503, 'SLUICE_ERR_NOT_READY', t0);
        return;
      }
      handleLlmRequest(deps, ep, req, res).catch((e: unknown) => {
        logger.error({ err: e }, 'unhandled request failure');
        if (!res.headersSent) sendError(res, ep.shape, new SluiceError('SLUICE_ERR_INTERNAL'), newRequestId());
        else res.destroy();
      });
      return;
    }
    const hdrId = req.headers['x-request-id'];
    const id = acceptRequestId(typeof hdrId === 'string' ? hdrId : undefined) ?? newRequestId();
    if (path === '/v1/feedback') {
      if (req.method !== 'POST') {
        sendError(res, 'openai', new SluiceError('SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${path}; use POST`), id);
        req.resume();
        logSimple(req, id, 405, 'SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', t0);
        return;
      }
      handleFeedback({ recent: deps.recent, usage: deps.usage, logger, bodyTimeoutMs: config.bodyTimeoutMs }, req, res, id).then(
        (r) => logSimple(req, id, r.status, r.code, t0),
        (e: unknown) => logger.error({ err: e }, 'feedback failure'),
      );
      return;
    }
    if (path.startsWith(BATCH_POLL_PREFIX)) {
      const status = pollBatch(req, res, path.slice(BATCH_POLL_PREFIX.length), id);
      req.resume();
      logSimple(req, id, status, status === 404 ? 'SLUICE_ERR_BATCH_UNKNOWN_REQUEST' : status === 405 ? 'SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED' : undefined, t0);
      return;
    }
    if (path === '/v1/models') {
      if (runtime === undefined) {
        sendError(res, 'openai', new SluiceError('SLUICE_ERR_NOT_READY'), id);
        logSimple(req, id, 503, 'SLUICE_ERR_NOT_READY', t0);
      } else if (req.method !== 'GET') {
        sendError(res, 'openai', new SluiceError('SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${path}; use GET`), id);
        logSimple(req, id, 405, 'SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', t0);
      } else {
        const body = req.headers['anthropic-version'] !== undefined ? runtime.modelsAnthropic : runtime.modelsOpenAI;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': id });
        res.end(body);
        logSimple(req, id, 200, undefined, t0);
      }
      req.resume();
      return;
    }
    sendError(res, shapeOfPath(path), new SluiceError('SLUICE_ERR_HTTP_NOT_FOUND', `No endpoint ${req.method ?? ''} ${path.slice(0, 200)}`), id);
    req.resume();
    logSimple(req, id, 404, 'SLUICE_ERR_HTTP_NOT_FOUND', t0);
  }

  /** `GET /v1/sluice/batch/<id>`: a batched request's answer once its batch finished, 202 before. */
  function pollBatch(req: IncomingMessage, res: ServerResponse, rawId: string, id: string): number {
    const shape: ApiShape = req.headers['anthropic-version'] !== undefined ? 'anthropic' : 'openai';
    if (req.method !== 'GET') {
      sendError(res, shape, new SluiceError('SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed here; use GET`), id);
      return 405;
    }
    let pollId: string;
    try {
      pollId = decodeURIComponent(rawId);
    } catch {
      pollId = '';
    }
    const state = deps.batchResults.get(pollId);
    if (state === undefined) {
      sendError(res, shape, new SluiceError('SLUICE_ERR_BATCH_UNKNOWN_REQUEST', `No batched request ${JSON.stringify(pollId.slice(0, 100))} (unknown, expired, or the sidecar restarted)`), id);
      return 404;
    }
    if (state.state === 'pending') {
      const body = JSON.stringify(batchStatusBody(pollId, state.batchId));
      res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'retry-after': String(Math.max(1, Math.ceil(state.pollMs / 1000))), 'x-request-id': id });
      res.end(body);
      return 202;
    }
    res.writeHead(state.answer.status, state.answer.headers);
    res.end(state.answer.body);
    return state.answer.status;
  }

  const server = createServer({ headersTimeout: 30_000, requestTimeout: 0, keepAliveTimeout: 65_000 }, onRequest);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Node's HTTP parser refused the request (bad framing, header overflow): answer in the OpenAI
    // shape unless the request line shows the Anthropic endpoint.
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const raw = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 64).toString('latin1') ?? '';
    const shape: ApiShape = raw.includes('/v1/messages') ? 'anthropic' : 'openai';
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const e = new SluiceError('SLUICE_ERR_HTTP_BAD_REQUEST', status === 431 ? 'Request headers are too large' : 'Malformed HTTP request', { status });
    const body = errorBody(shape, e);
    socket.end(
      `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-sluice-error-code: ${e.code}\r\nconnection: close\r\n\r\n${body}`,
    );
    logger.info({ api: 'http', status, code: e.code, parseError: err.code }, 'request');
  });

  const admin = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    let status = 404;
    let body: string;
    if (path === '/healthz') {
      status = 200;
      body = '{"status":"ok"}';
    } else if (path === '/ready') {
      const ready = runtime !== undefined && !draining;
      status = ready ? 200 : 503;
      body = JSON.stringify({ status: draining ? 'draining' : ready ? 'ready' : 'waiting for policy', version: runtime?.snapshot.version ?? null });
    } else if (path === '/metrics') {
      const text = metrics.registry.render();
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    } else {
      body = '{"error":"not found"}';
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });

  /** Checks a snapshot and swaps it in; the problems that made it refuse otherwise. */
  function swapIn(snapshot: Snapshot): SnapshotProblem[] {
    const problems = checkSnapshot(snapshot);
    if (problems.length > 0) return problems;
    try {
      runtime = createRuntime(snapshot);
    } catch (e) {
      return [{ resource: `snapshot ${snapshot.version}`, code: 'SLUICE_ERR_POLICY_REJECTED', message: (e as Error).message }];
    }
    return [];
  }
  if (options.snapshot !== undefined) {
    const problems = swapIn(options.snapshot);
    if (problems.length > 0) throw new Error(`initial snapshot refused: ${problems.map((p) => `${p.resource}: ${p.message}`).join('; ')}`);
  }

  const [main, adm] = await Promise.all([listen(server, config.port, config.host), listen(admin, config.adminPort, config.adminHost)]);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  return {
    url: `http://${hostForUrl(main)}:${main.port}`,
    adminUrl: `http://${hostForUrl(adm)}:${adm.port}`,
    applySnapshot(snapshot) {
      const problems = swapIn(snapshot);
      if (problems.length > 0) return problems;
      pools.retain(snapshot.backends).catch((e: unknown) => logger.warn({ err: e }, 'closing unused upstream pools failed'));
      logger.info({ version: snapshot.version, backends: snapshot.backends.length, rules: snapshot.rules.length }, 'snapshot applied');
      return [];
    },
    get snapshotVersion() {
      return runtime?.snapshot.version;
    },
    get inFlight() {
      return inFlight;
    },
    setQuota(quota) {
      deps.limits.setQuota(quota);
      const counters = (quota as { readonly stats?: QuotaStats } | undefined)?.stats;
      quotaStats = counters === undefined ? undefined : () => counters;
    },
    setUsage(sink) {
      usage = sink;
    },
    async drain(deadlineMs) {
      draining = true;
      // Batches still being collected are submitted now; their callers wait within the deadline.
      batcher.flushAll();
      const closed = new Promise((r) => server.close(r));
      server.closeIdleConnections();
      const before = inFlight;
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadlineMs);
          timer.unref();
          idle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      const cut = inFlight;
      logger.info({ finished: before - cut, cut }, 'drained');
      batcher.close();
      cache.close();
      for (const s of sockets) s.destroy();
      await closed;
      await new Promise((r) => admin.close(r));
      await pools.close();
      return { finished: before - cut, cut };
    },
    async close() {
      batcher.close();
      cache.close();
      const closed = Promise.all([new Promise((r) => server.close(r)), new Promise((r) => admin.close(r))]);
      server.closeIdleConnections();
      for (const s of sockets) s.destroy();
      await closed;
      await pools.close();
    },
  };
}
