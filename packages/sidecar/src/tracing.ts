/**
 * Traces with OpenTelemetry: one SERVER span per LLM request and one CLIENT span per upstream
 * attempt, exported over OTLP/HTTP (JSON) when an endpoint is configured. With no endpoint nothing of
 * the SDK is loaded and the request path pays one `undefined` check.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '@sluice/core';

/** The fields of a finished request the spans describe (a subset of the log record). */
export interface TracedRecord {
  readonly api: string;
  readonly provider: string | undefined;
  readonly model: string | undefined;
  readonly upstreamModel: string | undefined;
  readonly route: string | undefined;
  readonly backend: string | undefined;
  readonly status: number;
  readonly code: string | undefined;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costMicros: number | null;
  readonly stream: boolean;
  readonly id: string;
}

export interface UpstreamSpan {
  /** Ends the attempt with the provider's HTTP status, or the error code when there was none. */
  end(status: number | undefined, code?: string): void;
}

export interface RequestSpan {
  readonly traceId: string;
  upstream(backend: string, url: string): UpstreamSpan;
  end(r: TracedRecord): void;
}

export interface Tracing {
  start(req: IncomingMessage): RequestSpan;
  /** Exports what is buffered (tests, shutdown). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** OTLP/HTTP base URL, e.g. `http://otel-collector:4318`; spans go to `<endpoint>/v1/traces`. */
  readonly endpoint: string;
  readonly serviceName?: string;
  readonly pod: string;
  readonly namespace: string;
  readonly logger: Logger;
}

const OPERATION: Readonly<Record<string, string>> = { 'openai-chat': 'chat', 'anthropic-messages': 'chat', 'openai-embeddings': 'embeddings' };

/** Loads the SDK and starts exporting. */
export async function createTracing(o: TracingOptions): Promise<Tracing> {
  const api = await import('@opentelemetry/api');
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const url = `${o.endpoint.replace(/\/+$/u, '')}/v1/traces`;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': o.serviceName ?? 'sluice-sidecar', 'service.version': '0.1.0', 'k8s.pod.name': o.pod, 'k8s.namespace.name': o.namespace }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000, maxQueueSize: 4096, maxExportBatchSize: 512 })],
  });
  const tracer = provider.getTracer('sluice-sidecar', '0.1.0');
  const propagator = new W3CTraceContextPropagator();
  const getter = {
    keys: (h: IncomingMessage['headers']): string[] => Object.keys(h),
    get: (h: IncomingMessage['headers'], key: string): string | string[] | undefined => h[key],
  };
  o.logger.info({ url }, 'tracing: exporting spans over OTLP/HTTP');
  return {
    start(req) {
      // Continue the caller's trace when it sends W3C traceparent.
      const parent = propagator.extract(api.ROOT_CONTEXT, req.headers, getter);
      const span = tracer.startSpan('llm request', { kind: api.SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? 'POST', 'url.path': (req.url ?? '').split('?')[0] ?? '' } }, parent);
      const ctx = api.trace.setSpan(parent, span);
      return {
        traceId: span.spanContext().traceId,
        upstream(backend, target) {
          let host = '';
          try {
            host = new URL(target).host;
          } catch {
            // a malformed URL fails the attempt itself
          }
          const s = tracer.startSpan(`POST ${host}`, { kind: api.SpanKind.CLIENT, attributes: { 'sluice.backend': backend, 'server.address': host, 'http.request.method': 'POST' } }, ctx);
          let ended = false;
          return {
            end(status, code) {
              if (ended) return;
              ended = true;
              if (status !== undefined) s.setAttribute('http.response.status_code', status);
              if (code !== undefined) {
                s.setAttribute('error.type', code);
                s.setStatus({ code: api.SpanStatusCode.ERROR, message: code });
              }
              s.end();
            },
          };
        },
        end(r) {
          const op = OPERATION[r.api] ?? r.api;
          span.updateName(`${op} ${r.model ?? ''}`.trim());
          span.setAttributes({
            'gen_ai.operation.name': op,
            'http.response.status_code': r.status,
            'sluice.request_id': r.id,
            'sluice.stream': r.stream,
          });
          if (r.provider !== undefined) span.setAttribute('gen_ai.provider.name', r.provider);
          if (r.model !== undefined) span.setAttribute('gen_ai.request.model', r.model);
          if (r.upstreamModel !== undefined) span.setAttribute('gen_ai.response.model', r.upstreamModel);
          if (r.route !== undefined) span.setAttribute('sluice.route', r.route);
          if (r.backend !== undefined) span.setAttribute('sluice.backend', r.backend);
          if (r.inputTokens > 0 || r.outputTokens > 0) span.setAttributes({ 'gen_ai.usage.input_tokens': r.inputTokens, 'gen_ai.usage.output_tokens': r.outputTokens });
          if (r.costMicros !== null) span.setAttribute('sluice.cost_micros', r.costMicros);
          if (r.code !== undefined) {
            span.setAttribute('error.type', r.code);
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: r.code });
          }
          span.end();
        },
      };
    },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
