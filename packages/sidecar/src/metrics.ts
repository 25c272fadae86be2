import { BoundedLabel, LATENCY_BUCKETS_SECONDS, MetricsRegistry, PER_TOKEN_BUCKETS_SECONDS, TOKEN_BUCKETS } from '@sluice/core';
import type { RequestRecord } from './handler.js';
import type { QuotaStats } from './limits/quota-stats.js';

/** What the usage reporter exposes to metrics. */
export interface UsageStats {
  readonly queued: number;
  readonly stats: { readonly droppedRecords: number; readonly batches: number; readonly acked: number };
}

const OPERATION: Readonly<Record<string, string>> = { 'openai-chat': 'chat', 'anthropic-messages': 'chat', 'openai-responses': 'chat', 'openai-embeddings': 'embeddings' };

/**
 * The sidecar's metrics, served on the admin port at /metrics. One `observe()` per request, from
 * the same record as the log line. GenAI semantic-convention instruments use their Prometheus names
 * (`gen_ai.client.token.usage` → `gen_ai_client_token_usage`, attributes with `_`); `sluice_*` are
 * the gateway's own. Label values come from the snapshot (routes, backends), the error table, or
 * through a `BoundedLabel` (models), so the series stay bounded.
 */
export class SidecarMetrics {
  readonly registry = new MetricsRegistry();
  readonly #models = new BoundedLabel(200);
  readonly #requests = this.registry.counter('sluice_requests_total', 'LLM API requests by outcome.', ['api', 'route', 'backend', 'status', 'code']);
  readonly #tokens = this.registry.counter('sluice_tokens_total', 'Tokens reported by providers, by type (input, output, cached_input, cache_write, reasoning).', ['backend', 'type']);
  readonly #cost = this.registry.counter('sluice_cost_micros_total', 'Cost in micro-USD (integer).', ['backend']);
  readonly #upstreamErrors = this.registry.counter('sluice_upstream_errors_total', 'Provider failures by backend and stable code (SLUICE_ERR_UPSTREAM_*).', ['backend', 'code']);
  readonly #retries = this.registry.counter('sluice_upstream_retries_total', 'Attempts made again (same backend after a wait, or the next backend of the rule) after a failure, by the failed backend and code.', ['backend', 'code']);
  readonly #fallbacks = this.registry.counter('sluice_fallbacks_total', 'Requests answered by another backend than the first one tried.', ['route', 'backend']);
  readonly #shadow = this.registry.counter('sluice_shadow_requests_total', 'Shadow requests (a copy to a candidate backend, never returned), by backend and outcome code (empty = answered).', ['backend', 'code']);
  readonly #shadowCost = this.registry.counter('sluice_shadow_cost_micros_total', 'Cost of shadow requests in micro-USD.', ['backend']);
  readonly #batches = this.registry.counter('sluice_batches_total', 'Batch routing: batches submitted, completed, failed by the provider (their requests served in real time) and submissions that failed, by backend.', ['backend', 'outcome']);
  readonly #batchRequests = this.registry.counter('sluice_batch_requests_total', 'Batch routing: requests in those batches, by backend and batch outcome.', ['backend', 'outcome']);
  readonly #limits = this.registry.counter('sluice_limit_decisions_total', 'LLMLimit decisions other than a plain admit: denied, shadow_denied, and the failure mode applied while global credit was unavailable (FailClosed, FailOpen, LocalShare, shadow).', ['limit', 'decision']);
  readonly #tokenUsage = this.registry.histogram(
    'gen_ai_client_token_usage',
    'gen_ai.client.token.usage: tokens per request by type (input, output), as the provider reported them.',
    TOKEN_BUCKETS,
    ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_token_type'],
  );
  readonly #duration = this.registry.histogram('gen_ai_server_request_duration_seconds', 'gen_ai.server.request.duration: whole request, as the caller saw it.', LATENCY_BUCKETS_SECONDS, [
    'gen_ai_operation_name',
    'gen_ai_request_model',
    'error_type',
  ]);
  readonly #ttft = this.registry.histogram('gen_ai_server_time_to_first_token_seconds', 'gen_ai.server.time_to_first_token: request start to the first streamed event.', LATENCY_BUCKETS_SECONDS, [
    'gen_ai_operation_name',
    'gen_ai_request_model',
  ]);
  readonly #perToken = this.registry.histogram(
    'gen_ai_server_time_per_output_token_seconds',
    'gen_ai.server.time_per_output_token: (end - first token) / (output tokens - 1), streamed answers.',
    PER_TOKEN_BUCKETS_SECONDS,
    ['gen_ai_operation_name', 'gen_ai_request_model'],
  );

  constructor(inFlight: () => number, snapshotVersion: () => string | undefined, usage: () => UsageStats | undefined = () => undefined) {
    this.registry.gauge('sluice_inflight_requests', 'Requests being served.', () => [{ value: inFlight() }]);
    this.registry.gauge('sluice_snapshot_info', 'The applied policy snapshot.', () => {
      const v = snapshotVersion();
      return v === undefined ? [] : [{ labels: { version: v }, value: 1 }];
    });
    this.registry.gauge('sluice_usage_queued_batches', 'Usage batches waiting for the control plane to acknowledge them.', () => [{ value: usage()?.queued ?? 0 }]);
    this.registry.gauge('sluice_usage_batches_acked_total', 'Usage batches acknowledged by the control plane.', () => [{ value: usage()?.stats.acked ?? 0 }], 'counter');
    this.registry.gauge('sluice_usage_dropped_records_total', 'Usage records dropped because the unacknowledged queue was full (also logged).', () => [{ value: usage()?.stats.droppedRecords ?? 0 }], 'counter');
  }

  observe(r: RequestRecord): void {
    const backend = r.backend ?? '';
    this.#requests.inc([r.api, r.route ?? '', backend, String(r.status), r.code ?? '']);
    const op = OPERATION[r.api] ?? r.api;
    // The requested model, bounded: only routed requests name a model worth a series.
    const model = r.route === undefined ? '_unrouted' : this.#models.value(r.model ?? '');
    if (backend !== '') {
      if (r.inputTokens > 0) this.#tokens.inc([backend, 'input'], r.inputTokens);
      if (r.outputTokens > 0) this.#tokens.inc([backend, 'output'], r.outputTokens);
      if (r.cachedInputTokens > 0) this.#tokens.inc([backend, 'cached_input'], r.cachedInputTokens);
      if (r.cacheWriteTokens > 0) this.#tokens.inc([backend, 'cache_write'], r.cacheWriteTokens);
      if (r.reasoningTokens > 0) this.#tokens.inc([backend, 'reasoning'], r.reasoningTokens);
      if (r.costMicros !== null && r.costMicros > 0) this.#cost.inc([backend], r.costMicros);
      if (r.inputTokens > 0 || r.outputTokens > 0) {
        const provider = r.provider ?? '';
        this.#tokenUsage.observe(r.inputTokens, [op, provider, model, 'input']);
        if (op !== 'embeddings') this.#tokenUsage.observe(r.outputTokens, [op, provider, model, 'output']);
      }
      if (r.code?.startsWith('SLUICE_ERR_UPSTREAM_') === true) this.#upstreamErrors.inc([backend, r.code]);
    }
    if (r.failedAttempts !== undefined && r.code === undefined && backend !== '') this.#fallbacks.inc([r.route ?? '', backend]);
    if (r.limit !== undefined && r.code !== 'SLUICE_ERR_LIMIT_UNAVAILABLE') this.#limits.inc([r.limit, 'denied']);
    if (r.limitShadowDenied !== undefined) for (const id of r.limitShadowDenied.split(',')) this.#limits.inc([id, 'shadow_denied']);
    if (r.limitFallbacks !== undefined) {
      for (const f of r.limitFallbacks.split(',')) {
        const at = f.lastIndexOf(':');
        this.#limits.inc([f.slice(0, at), f.slice(at + 1)]);
      }
    }
    this.#duration.observe(r.durMs / 1000, [op, model, r.code ?? '']);
    if (r.ttftMs !== null) {
      this.#ttft.observe(r.ttftMs / 1000, [op, model]);
      if (r.stream && r.outputTokens > 1 && r.code === undefined) this.#perToken.observe((r.durMs - r.ttftMs) / 1000 / (r.outputTokens - 1), [op, model]);
    }
  }

  observeShadow(backend: string, code: string | undefined, costMicros: number | null): void {
    this.#shadow.inc([backend, code ?? '']);
    if (costMicros !== null && costMicros > 0) this.#shadowCost.inc([backend], costMicros);
  }

  observeBatch(backend: string, outcome: string, requests: number): void {
    this.#batches.inc([backend, outcome]);
    this.#batchRequests.inc([backend, outcome], requests);
  }

  /** Batch routing queues, read at scrape time. */
  batching(stats: () => { readonly queued: number; readonly waiting: number; readonly openBatches: number }): void {
    this.registry.gauge('sluice_batch_queued_requests', 'Batch routing: requests collected for a batch not submitted yet.', () => [{ value: stats().queued }]);
    this.registry.gauge('sluice_batch_waiting_requests', 'Batch routing: requests in submitted batches, waiting for results.', () => [{ value: stats().waiting }]);
    this.registry.gauge('sluice_batch_open_batches', 'Batch routing: submitted batches not finished.', () => [{ value: stats().openBatches }]);
  }

  /** Response cache counters and the local tier's size, read at scrape time. */
  caching(stats: () => { readonly hits: { readonly local: number; readonly redis: number; readonly semantic: number }; readonly misses: number; readonly stores: number; readonly redisErrors: number }, local: () => { readonly bytes: number; readonly size: number }): void {
    this.registry.gauge('sluice_cache_lookups_total', 'Response cache lookups by result (hit by tier: local, redis, semantic; miss).', () => {
      const s = stats();
      return [
        { labels: { result: 'hit', tier: 'local' }, value: s.hits.local },
        { labels: { result: 'hit', tier: 'redis' }, value: s.hits.redis },
        { labels: { result: 'hit', tier: 'semantic' }, value: s.hits.semantic },
        { labels: { result: 'miss', tier: '' }, value: s.misses },
      ];
    }, 'counter');
    this.registry.gauge('sluice_cache_stores_total', 'Answers stored in the response cache.', () => [{ value: stats().stores }], 'counter');
    this.registry.gauge('sluice_cache_redis_errors_total', 'Response cache Redis commands that failed or timed out (served without the shared tier).', () => [{ value: stats().redisErrors }], 'counter');
    this.registry.gauge('sluice_cache_local_bytes', 'Bytes held by the in-sidecar cache tier.', () => [{ value: local().bytes }]);
    this.registry.gauge('sluice_cache_local_entries', 'Entries in the in-sidecar cache tier.', () => [{ value: local().size }]);
  }

  /** Semantic cache: embedding calls, Redis syncs, and the in-memory index. */
  semanticCache(stats: () => { readonly embeddings: number; readonly embedErrors: number; readonly syncs: number; readonly loaded: number }, index: () => { readonly size: number; readonly bytes: number }): void {
    this.registry.gauge('sluice_semantic_embeddings_total', 'Semantic cache: questions embedded (and failures, which skip the semantic lookup).', () => [
      { labels: { result: 'ok' }, value: stats().embeddings - stats().embedErrors },
      { labels: { result: 'error' }, value: stats().embedErrors },
    ], 'counter');
    this.registry.gauge('sluice_semantic_index_entries', 'Semantic cache: vectors in the in-memory index.', () => [{ value: index().size }]);
    this.registry.gauge('sluice_semantic_index_bytes', 'Semantic cache: bytes of the in-memory index (bounded by SLUICE_SIDECAR_SEMANTIC_MAX_BYTES).', () => [{ value: index().bytes }]);
    this.registry.gauge('sluice_semantic_loaded_total', 'Semantic cache: entries of other sidecars loaded from Redis.', () => [{ value: stats().loaded }], 'counter');
  }

  /** Global-limit credit over StreamQuota: the quota client's counters, read at scrape time. */
  quota(stats: () => QuotaStats): void {
    const c = (name: string, help: string, read: (s: QuotaStats) => number): void => {
      this.registry.gauge(name, help, () => [{ value: read(stats()) }], 'counter');
    };
    c('sluice_quota_acquires_total', 'Global limits: credit requests sent to the control plane.', (s) => s.acquires);
    c('sluice_quota_granted_total', 'Global limits: units of credit granted (tokens, requests or micro-USD, summed).', (s) => s.granted);
    c('sluice_quota_releases_total', 'Global limits: leases handed back (unused credit, on idle, expiry or shutdown).', (s) => s.released);
    c('sluice_quota_returned_total', 'Global limits: units of unused credit the control plane took back.', (s) => s.returned);
    c('sluice_quota_unavailable_total', 'Global limits: credit requests that got no answer or an unavailable store (failure modes applied).', (s) => s.unavailable);
    c('sluice_quota_resent_total', 'Global limits: requests sent again after the stream reconnected.', (s) => s.resent);
    c('sluice_quota_dropped_total', 'Global limits: requests given up (too many in flight, or unanswered too long).', (s) => s.dropped);
  }

  readonly #guardrails = this.registry.counter('sluice_guardrail_findings_total', 'LLMGuardrail findings (matches), by guardrail, detector, direction and action.', ['guardrail', 'detector', 'direction', 'action']);

  observeGuardrail(guardrail: string, detector: string, direction: string, action: string, count: number): void {
    this.#guardrails.inc([guardrail, detector, direction, action], count);
  }

  observeRetry(backend: string, code: string): void {
    this.#retries.inc([backend, code]);
  }

  /** Circuit breaker state, read at scrape time. */
  breakers(ejected: () => string[], ejections: () => ReadonlyMap<string, number>): void {
    this.registry.gauge('sluice_backend_ejected', 'Backends ejected by their circuit breaker now (1).', () => ejected().map((b) => ({ labels: { backend: b }, value: 1 })));
    this.registry.gauge('sluice_backend_ejections_total', 'Times each backend was ejected by its circuit breaker.', () => [...ejections()].map(([b, n]) => ({ labels: { backend: b }, value: n })), 'counter');
  }

  /** Requests answered without reaching the LLM handler (unknown path, wrong method, not ready). */
  observeHttp(status: number, code: string | undefined): void {
    this.#requests.inc(['http', '', '', String(status), code ?? '']);
  }
}
