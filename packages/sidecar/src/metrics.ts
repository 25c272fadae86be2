import { LATENCY_BUCKETS_SECONDS, MetricsRegistry } from '@sluice/core';
import type { RequestRecord } from './handler.js';

/**
 * The sidecar's metrics, served on the admin port at /metrics. One `observe()` per request, from
 * the same record as the log line; label values come from the snapshot (routes, backends) and the
 * error table, so the series stay bounded.
 */
export class SidecarMetrics {
  readonly registry = new MetricsRegistry();
  readonly #requests = this.registry.counter('sluice_requests_total', 'LLM API requests by outcome.', ['api', 'route', 'backend', 'status', 'code']);
  readonly #tokens = this.registry.counter('sluice_tokens_total', 'Tokens reported by providers (gen_ai.client.token.usage).', ['backend', 'type']);
  readonly #cost = this.registry.counter('sluice_cost_micros_total', 'Cost in micro-USD.', ['backend']);
  readonly #duration = this.registry.histogram('sluice_request_duration_seconds', 'Whole request duration (gen_ai.server.request.duration).', LATENCY_BUCKETS_SECONDS);
  readonly #limits = this.registry.counter('sluice_limit_decisions_total', 'LLMLimit decisions other than a plain admit: denied, shadow_denied, and the failure mode applied while global credit was unavailable (FailClosed, FailOpen, LocalShare, shadow).', ['limit', 'decision']);
  readonly #ttft = this.registry.histogram('sluice_time_to_first_token_seconds', 'Time to the first streamed event (gen_ai.server.time_to_first_token).', LATENCY_BUCKETS_SECONDS);

  constructor(inFlight: () => number, snapshotVersion: () => string | undefined) {
    this.registry.gauge('sluice_inflight_requests', 'Requests being served.', () => [{ value: inFlight() }]);
    this.registry.gauge('sluice_snapshot_info', 'The applied policy snapshot.', () => {
      const v = snapshotVersion();
      return v === undefined ? [] : [{ labels: { version: v }, value: 1 }];
    });
  }

  observe(r: RequestRecord): void {
    const backend = r.backend ?? '';
    this.#requests.inc([r.api, r.route ?? '', backend, String(r.status), r.code ?? '']);
    if (backend !== '') {
      if (r.inputTokens > 0) this.#tokens.inc([backend, 'input'], r.inputTokens);
      if (r.outputTokens > 0) this.#tokens.inc([backend, 'output'], r.outputTokens);
      if (r.cachedInputTokens > 0) this.#tokens.inc([backend, 'cached_input'], r.cachedInputTokens);
      if (r.cacheWriteTokens > 0) this.#tokens.inc([backend, 'cache_write'], r.cacheWriteTokens);
      if (r.reasoningTokens > 0) this.#tokens.inc([backend, 'reasoning'], r.reasoningTokens);
      if (r.costMicros !== null && r.costMicros > 0) this.#cost.inc([backend], r.costMicros);
    }
    if (r.limit !== null && r.code !== 'SLUICE_ERR_LIMIT_UNAVAILABLE') this.#limits.inc([r.limit, 'denied']);
    if (r.limitShadowDenied !== null) for (const id of r.limitShadowDenied.split(',')) this.#limits.inc([id, 'shadow_denied']);
    if (r.limitFallbacks !== null) {
      for (const f of r.limitFallbacks.split(',')) {
        const at = f.lastIndexOf(':');
        this.#limits.inc([f.slice(0, at), f.slice(at + 1)]);
      }
    }
    this.#duration.observe(r.durMs / 1000);
    if (r.ttftMs !== null) this.#ttft.observe(r.ttftMs / 1000);
  }

  /** Requests answered without reaching the LLM handler (unknown path, wrong method, not ready). */
  observeHttp(status: number, code: string | undefined): void {
    this.#requests.inc(['http', '', '', String(status), code ?? '']);
  }
}
