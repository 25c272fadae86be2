import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { acceptRequestId, errorEvent, newRequestId, SluiceError, toSluiceError, type ApiShape, type Logger } from '@sluice/core';
import {
  anthropicResponseToChat,
  chatRequestToAnthropic,
  chatResponseToAnthropic,
  batchCostMicros,
  costMicros,
  createAnthropicPassthrough,
  createAnthropicStreamToChat,
  chatRequestToConverse,
  converseResponseToChat,
  createConverseStreamToChat,
  chainStreamTranslators,
  createChatStreamToResponses,
  createResponsesPassthrough,
  chatResponseToResponses,
  responsesRequestToChat,
  chatRequestToGemini,
  createGeminiStreamToChat,
  geminiResponseToChat,
  createChatStreamToAnthropic,
  createOpenAIPassthrough,
  createSseParser,
  estimateRequest,
  modelCapabilities,
  requestNeeds,
  type ModelCapabilities,
  messagesRequestToOpenAI,
  lastMemberValue,
  promptCacheBreakpoints,
  providerSpec,
  setTopLevelMembers,
  usageFromAnthropic,
  usageFromOpenAI,
  type SseParser,
  type StreamTranslator,
  type Usage,
} from '@sluice/providers';
import type { SnapshotBackend } from '@sluice/policy';
import type { SidecarConfig } from './config.js';
import type { SidecarMetrics } from './metrics.js';
import type { Admission, AdmitResult, LimitEnforcer, WorkloadIdentity } from './limits/enforce.js';
import { attributionValue, type Attribution, type FeedbackTarget, type UsageSource } from './usage/aggregate.js';
import type { UsageStats } from './metrics.js';
import type { Tracing, UpstreamSpan } from './tracing.js';
import type { RecentRequests } from './usage/feedback.js';
import { backendFault, backoffMs, retryable, type Routing } from './routing/index.js';

/** Counts finished requests (the usage reporter). */
export interface UsageSink {
  record(r: UsageSource, a: Attribution): void;
  recordFeedback(r: FeedbackTarget, a: Attribution, scoreMilli: number): void;
  /** For /metrics (queue length, drops). */
  readonly usageStats?: UsageStats;
}
import { drained, MAX_JSON_DEPTH, nestedDeeperThan, readBody, sendError } from './http-util.js';
import type { Runtime } from './runtime.js';
import type { RouteTarget } from './router.js';
import { canonicalJson, Coalescer, type Leader } from './routing/coalesce.js';
import { loadedAws, readUpstreamBody, sendUpstream, transportError, upstreamStatusError, type UpstreamPools } from './upstream.js';
import { batchApiOf, type Batcher } from './batch/batcher.js';
import { cacheScope, cacheUse, exactKey, type CachedAnswer, type CacheHit, type ResponseCache } from './cache/index.js';
import { semanticQuery, semanticScope, type SemanticCache } from './cache/semantic.js';
import { applyGuardrails, Placeholders, type CompiledGuardrail, type GuardFinding } from './guard/index.js';
import { StreamGuard } from './guard/stream.js';
import { classify, type ClassifierInput } from './guard/classifier.js';
import { bodyText, CUT_LOOKAHEAD, loggable, logScanners } from './guard/log-texts.js';
import type { BatchResults, ResponseSink } from './batch/results.js';

export type Ingress = 'openai-chat' | 'openai-embeddings' | 'anthropic-messages' | 'openai-responses';

export interface Endpoint {
  readonly ingress: Ingress;
  readonly shape: ApiShape;
}

/** How one request travels: same format (bytes kept) or translated, and how its answer is read. */
type Mode = 'openai-pass' | 'anthropic-pass' | 'openai-to-anthropic' | 'anthropic-to-openai' | 'openai-to-gemini' | 'anthropic-to-gemini' | 'openai-to-bedrock' | 'anthropic-to-bedrock' | 'responses-via-chat' | 'responses-pass';

interface Plan {
  readonly mode: Mode;
  readonly path: string;
  readonly body: string;
  /** The client did not ask for the usage chunk the gateway forced: hide it. */
  readonly stripUsageChunk: boolean;
  readonly includeUsage: boolean;
  readonly extraHeaders: Readonly<Record<string, string>> | undefined;
  /** `responses-via-chat`: the plan of the Chat Completions form, and the caller's Responses request. */
  readonly inner?: Plan;
  readonly responsesRequest?: Json;
}

/** The fields of the one log line written per request. */
export interface RequestRecord {
  id: string;
  api: string;
  route: string | undefined;
  backend: string | undefined;
  /** The backend's provider (gen_ai.provider.name). */
  provider: string | undefined;
  model: string | undefined;
  upstreamModel: string | undefined;
  stream: boolean;
  status: number;
  code: string | undefined;
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
  costMicros: number | null;
  /** max_tokens lowered to the credit a limit allowed (limit `clampMaxTokens`). */
  clampedMaxTokens: number | undefined;
  /** max_tokens set or lowered to the route rule's `maxTokens`. */
  cappedMaxTokens: number | undefined;
  /** Upstream attempts (1 without retries or fallbacks). */
  attempts: number;
  /** Every failed attempt before the answer: `backend:status-or-code`, comma-separated. */
  failedAttempts: string | undefined;
  /** A/B (`strategy: weighted`): the backend and model the split chose (`backend/model`). */
  variant: string | undefined;
  /** Coalesced: the id of the identical request whose upstream answer this one replayed. */
  coalescedWith: string | undefined;
  /** Backends skipped for lack of a capability the request needs (`backend:reason`, comma-separated). */
  capabilitySkipped: string | undefined;
  /** Response cache (LLMCache): `hit` | `miss` | `bypass` (undefined when no cache policy applies). */
  cache: string | undefined;
  /** Why the cache was bypassed: `header` | `nondeterministic`. */
  cacheBypass: string | undefined;
  /** A hit's tier: `local` | `redis` | `semantic`. */
  cacheTier: string | undefined;
  /** A semantic hit's cosine similarity (3 decimals). */
  cacheSimilarity: number | undefined;
  /** A hit's cost avoided: what the cached answer cost when it was produced (micro-USD). */
  cacheSavedMicros: number | undefined;
  /** Guardrail findings: `guardrail:direction:action:detector×count`, comma-separated. */
  guardrails: string | undefined;
  /** Time spent waiting for external guardrail classifiers (ms, both directions). */
  classifierMs: number | undefined;
  /** Opt-in (route rule `logging`): the request's and the answer's texts, redacted and cut. */
  prompt: string | undefined;
  completion: string | undefined;
  /** Batch routing: the provider's batch id (`fallback` when the batch failed and the request was served in real time). */
  batch: string | undefined;
  /** The id to poll (`GET /v1/sluice/batch/<id>`) when the caller was answered 202 before the batch finished. */
  batchPoll: string | undefined;
  /** The limit that denied the request (`namespace/name`). */
  limit: string | undefined;
  /** Shadow limits that would have denied it, comma-separated. */
  limitShadowDenied: string | undefined;
  /** Global limits whose credit was unavailable, with the failure mode applied (`id:FailOpen,…`). */
  limitFallbacks: string | undefined;
  /** Usage attribution from the `x-sluice-feature` and `x-sluice-user` headers ('' when absent). */
  feature: string;
  user: string;
  /** Trace id of the request's span when tracing is on (OTLP). */
  traceId: string | undefined;
  ttfbMs: number | null;
  ttftMs: number | null;
  durMs: number;
}

export interface HandlerDeps {
  readonly config: SidecarConfig;
  readonly logger: Logger;
  /** The fast writer of the one line per request (`infoLineWriter` of the logger). */
  readonly logLine: (record: object, msg: string) => void;
  readonly metrics: SidecarMetrics;
  readonly limits: LimitEnforcer;
  readonly identity: WorkloadIdentity;
  /** The last requests' attribution, for `POST /v1/feedback`. */
  readonly recent: RecentRequests;
  /** Strategies, circuit breakers and the retry budget of this process. */
  readonly routing: Routing;
  readonly coalescer: Coalescer;
  /** Batch routing: the batches being collected and polled, and the answers waiting for a poll. */
  readonly batcher: Batcher;
  readonly batchResults: BatchResults;
  /** The response cache (LLMCache): local and Redis tiers. */
  readonly cache: ResponseCache;
  readonly semantic: SemanticCache;
  /** OpenTelemetry traces (OTLP) when configured. */
  readonly tracing: Tracing | undefined;
  /** Guardrail findings (their own stream; never the matched text). */
  readonly audit: Logger;
  /** Where finished requests are counted for usage accounting (StreamUsage), once connected. */
  readonly usage: () => UsageSink | undefined;
  readonly pools: UpstreamPools;
  runtime(): Runtime;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const ms = (t0: number): number => Math.round((performance.now() - t0) * 100) / 100;

/**
 * One shadow request: the same request to the rule's shadow backend, read to the end (translated
 * like a real answer, to get its usage), logged as `msg: "shadow"` with status, latency and cost,
 * counted in metrics. Never throws; has its own deadline (10 min).
 */
async function shadowRequest(deps: HandlerDeps, rt: Runtime, ep: Endpoint, t: RouteTarget, body: Json, raw: string, model: string, stream: boolean, req: IncomingMessage, id: string): Promise<void> {
  const t0 = performance.now();
  const who = { id, upstreamModel: t.upstreamModel };
  let status = 0;
  let code: string | undefined;
  let usage: Usage | undefined;
  let ttfbMs: number | null = null;
  try {
    const plan = planRequest(ep.ingress, t.backend, body, raw, model, t.upstreamModel, stream, req, deps.config);
    const up = await sendUpstream(deps.pools, { backend: t.backend, path: plan.path, body: plan.body, extraHeaders: plan.extraHeaders, signal: AbortSignal.timeout(600_000) });
    status = up.statusCode;
    ttfbMs = ms(t0);
    if (up.statusCode >= 300) {
      code = upstreamStatusError(up.statusCode, up.headers, (await readUpstreamBody(up.body, 1024 * 1024)).toString('utf8')).code;
    } else if (!stream) {
      usage = readJsonResponse(plan, await readUpstreamBody(up.body, deps.config.maxResponseBytes), who).usage;
    } else {
      const parser = streamFraming(plan).parser();
      const tr = streamTranslator(plan, who);
      for await (const chunk of up.body) for (const ev of parser.push(chunk as Buffer)) tr.push(ev);
      for (const ev of parser.end()) tr.push(ev);
      tr.end();
      usage = tr.usage;
    }
  } catch (e) {
    code = toSluiceError(e).code;
  }
  const price = usage === undefined ? undefined : rt.priceOf(t.backend, t.upstreamModel);
  const cost = usage !== undefined && price !== undefined ? costMicros(usage, price) : null;
  deps.logger.info(
    { id, route: t.route, backend: t.backend.id, upstreamModel: t.upstreamModel, stream, status, code, inputTokens: usage?.inputTokens ?? 0, outputTokens: usage?.outputTokens ?? 0, costMicros: cost, ttfbMs, durMs: ms(t0) },
    'shadow',
  );
  deps.metrics.observeShadow(t.backend.id, code, cost);
}

/**
 * Capability routing: drops the candidates whose model (bundled capability table) lacks tools,
 * images or JSON mode the request uses, or a context window for its prompt + max_tokens — as long as
 * one candidate is left (never refuses on its own: with no capable candidate the order is kept and the
 * provider decides). The prompt is counted only when the body's byte length (an upper bound of its
 * tokens) does not already fit.
 */
function capableCandidates<T extends RouteTarget>(order: readonly T[], ingress: Ingress, body: Json, raw: string): { order: readonly T[]; skipped: string[] } {
  if (ingress === 'openai-embeddings') return { order, skipped: [] };
  const needs = requestNeeds(body);
  const maxOut = [body['max_tokens'], body['max_completion_tokens']].find((v): v is number => typeof v === 'number') ?? 0;
  const bytes = Buffer.byteLength(raw);
  let prompt: number | undefined;
  const keep: T[] = [];
  const skipped: string[] = [];
  for (const c of order) {
    const caps = capabilitiesOf(c.backend, c.upstreamModel);
    let why: string | undefined;
    if (caps !== undefined) {
      if (needs.tools && !caps.tools) why = 'tools';
      else if (needs.vision && !caps.vision) why = 'vision';
      else if (needs.json && !caps.json) why = 'json';
      else if (bytes + maxOut > caps.contextWindow) {
        prompt ??= estimateOf(ingress, body, c.upstreamModel).promptTokens;
        if (prompt + maxOut > caps.contextWindow) why = 'context';
      }
    }
    if (why === undefined) keep.push(c);
    else skipped.push(`${c.backend.id}/${c.upstreamModel}:${why}`);
  }
  return keep.length === 0 ? { order, skipped: [] } : { order: keep, skipped };
}

/** The token estimate of a request (a Responses request is estimated in its Chat Completions form). */
function estimateOf(ingress: Ingress, body: Json, model: string): ReturnType<typeof estimateRequest> {
  if (ingress !== 'openai-responses') return estimateRequest(ingress, body, model);
  let chat: Json;
  try {
    chat = responsesRequestToChat(body);
  } catch {
    return estimateRequest('openai-chat', { messages: [] }, model);
  }
  return estimateRequest('openai-chat', chat, model);
}

/** The bundled capabilities of a backend's model, with the backend's declared overrides applied. */
function capabilitiesOf(backend: SnapshotBackend, model: string): ModelCapabilities | undefined {
  const base = modelCapabilities(backend.priceFamily, model);
  const o = backend.capabilities?.[model];
  if (o === undefined) return base;
  const flag = (v: string, fallback: boolean | undefined): boolean => (v === 'yes' ? true : v === 'no' ? false : (fallback ?? true));
  return {
    contextWindow: o.contextWindow > 0 ? o.contextWindow : (base?.contextWindow ?? Number.MAX_SAFE_INTEGER),
    tools: flag(o.tools, base?.tools),
    vision: flag(o.vision, base?.vision),
    json: flag(o.json, base?.json),
  };
}

/** The total timeout of a request: the header (an integer of ms, at most `maxMs`) or the rule's (0 = none). */
function totalTimeoutOf(header: string | string[] | undefined, ruleMs: number, maxMs: number): number {
  if (header === undefined) return ruleMs;
  const v = Array.isArray(header) ? header[0] : header;
  const n = Number(v);
  if (v === undefined || !/^\d{1,9}$/u.test(v) || n < 1) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'x-sluice-timeout-ms must be a positive integer of milliseconds', { param: 'x-sluice-timeout-ms' });
  return Math.min(n, maxMs > 0 ? maxMs : n);
}

/**
 * Whether a request goes through the batch API: rule mode `header` needs `x-sluice-batch: true`
 * (or `1`); `always` takes every request unless `x-sluice-batch: false` (or `0`).
 */
function wantsBatch(mode: string, header: string | string[] | undefined): boolean {
  const v = (Array.isArray(header) ? header[0] : header)?.trim().toLowerCase();
  if (mode === 'always') return v !== 'false' && v !== '0';
  return mode === 'header' && (v === 'true' || v === '1');
}

/** RFC 7240 `Prefer: respond-async`: answer 202 with a poll URL at once. */
function prefersAsync(header: string | string[] | undefined): boolean {
  const v = Array.isArray(header) ? header.join(',') : header;
  return v !== undefined && /(?:^|[,;\s])respond-async(?:$|[,;\s])/iu.test(v);
}

/** Where a batched request's answer is polled. */
export const batchPollPath = (id: string): string => `/v1/sluice/batch/${encodeURIComponent(id)}`;

/** The body of a 202 (and of a poll while the batch runs). */
export function batchStatusBody(id: string, batchId: string | undefined): Record<string, unknown> {
  return { id, object: 'sluice.batch_request', status: batchId === undefined ? 'queued' : 'submitted', batch_id: batchId ?? null, poll_url: batchPollPath(id) };
}

/** Waits `ms`, or rejects as aborted when the caller goes away meanwhile. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new SluiceError('SLUICE_ERR_REQUEST_ABORTED'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new SluiceError('SLUICE_ERR_REQUEST_ABORTED'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? (v[0] ?? '') : v;
  return out;
}

function parseJsonBody(raw: string): Json {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new SluiceError('SLUICE_ERR_REQUEST_MALFORMED_JSON', `Request body is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObj(body)) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'Request body must be a JSON object');
  if (nestedDeeperThan(body, MAX_JSON_DEPTH)) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', `Request body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`);
  return body;
}



/**
 * How a request goes to one backend. `promptCacheMin` > 0: Anthropic prompt caching (LLMCache
 * `promptCaching`), breakpoints on tool and system prefixes of at least that many tokens.
 */
function planRequest(ingress: Ingress, backend: SnapshotBackend, body: Json, raw: string, model: string, upstreamModel: string, stream: boolean, req: IncomingMessage, config: SidecarConfig, promptCacheMin = 0): Plan {
  const path = (name: string): string => {
    const p = backend.paths[name];
    if (p === undefined) throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `Backend ${backend.id} (${backend.provider}) does not serve the ${name} API`);
    // Azure OpenAI names the deployment (the upstream model) in the path.
    return p.includes('{model}') ? p.replace('{model}', encodeURIComponent(upstreamModel)) : p;
  };
  const modelEdit: Record<string, string> = upstreamModel === model ? {} : { model: JSON.stringify(upstreamModel) };
  if (ingress === 'openai-responses' && backend.paths['responses'] !== undefined) {
    // OpenAI itself: the Responses API as sent (built-in tools, reasoning items and all).
    return { mode: 'responses-pass', path: path('responses'), body: setTopLevelMembers(raw, modelEdit), stripUsageChunk: false, includeUsage: true, extraHeaders: undefined };
  }
  if (ingress === 'openai-responses') {
    // Through the Chat Completions form, to whichever backend (see translate/responses).
    const chat = responsesRequestToChat(body);
    const inner = planRequest('openai-chat', backend, chat, JSON.stringify(chat), model, upstreamModel, stream, req, config, promptCacheMin);
    return { ...inner, mode: 'responses-via-chat', inner, responsesRequest: body };
  }
  if (ingress === 'openai-embeddings') {
    if (backend.schema !== 'openai') throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `Backend ${backend.id} (${backend.provider}) has no embeddings API`);
    return { mode: 'openai-pass', path: path('embeddings'), body: setTopLevelMembers(raw, modelEdit), stripUsageChunk: false, includeUsage: false, extraHeaders: undefined };
  }
  if (ingress === 'openai-chat') {
    const so = body['stream_options'];
    if (so !== undefined && so !== null && !isObj(so)) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'stream_options must be an object', { param: 'stream_options' });
    const includeUsage = isObj(so) && so['include_usage'] === true;
    if (backend.schema === 'bedrock') {
      return { mode: 'openai-to-bedrock', path: path(stream ? 'converseStream' : 'converse'), body: JSON.stringify(chatRequestToConverse(body)), stripUsageChunk: false, includeUsage, extraHeaders: undefined };
    }
    if (backend.schema === 'gemini') {
      return { mode: 'openai-to-gemini', path: path(stream ? 'streamGenerate' : 'generate'), body: JSON.stringify(chatRequestToGemini(body)), stripUsageChunk: false, includeUsage, extraHeaders: undefined };
    }
    if (backend.schema === 'openai') {
      const edits = stream && !includeUsage ? { ...modelEdit, stream_options: JSON.stringify({ ...(isObj(so) ? so : {}), include_usage: true }) } : modelEdit;
      return { mode: 'openai-pass', path: path('chat'), body: setTopLevelMembers(raw, edits), stripUsageChunk: stream && !includeUsage, includeUsage, extraHeaders: undefined };
    }
    const translated = chatRequestToAnthropic(body, upstreamModel, { defaultMaxTokens: config.defaultMaxTokens });
    const marks = promptCacheMin > 0 ? promptCacheBreakpoints(translated as unknown as Json, promptCacheMin) : undefined;
    const out = marks === undefined ? translated : { ...translated, ...marks };
    return { mode: 'openai-to-anthropic', path: path('messages'), body: JSON.stringify(out), stripUsageChunk: false, includeUsage, extraHeaders: undefined };
  }
  // anthropic-messages
  if (backend.schema === 'anthropic') {
    const extra: Record<string, string> = {};
    for (const h of ['anthropic-version', 'anthropic-beta']) {
      const v = req.headers[h];
      if (typeof v === 'string' && v.length <= 512) extra[h] = v;
    }
    const marks = promptCacheMin > 0 ? promptCacheBreakpoints(body, promptCacheMin) : undefined;
    const edits = marks === undefined ? modelEdit : { ...modelEdit, ...(marks.tools === undefined ? {} : { tools: JSON.stringify(marks.tools) }), ...(marks.system === undefined ? {} : { system: JSON.stringify(marks.system) }) };
    return { mode: 'anthropic-pass', path: path('messages'), body: setTopLevelMembers(raw, edits), stripUsageChunk: false, includeUsage: true, extraHeaders: extra };
  }
  const translated = messagesRequestToOpenAI(body, upstreamModel, { maxTokensField: backend.maxTokensField });
  if (backend.schema === 'bedrock') {
    // Anthropic → Bedrock Converse goes through the Chat Completions form both ways, like Gemini.
    return { mode: 'anthropic-to-bedrock', path: path(stream ? 'converseStream' : 'converse'), body: JSON.stringify(chatRequestToConverse(translated as unknown as Json)), stripUsageChunk: false, includeUsage: true, extraHeaders: undefined };
  }
  if (backend.schema === 'gemini') {
    // Anthropic → Gemini goes through the Chat Completions form both ways (no third translator pair).
    return { mode: 'anthropic-to-gemini', path: path(stream ? 'streamGenerate' : 'generate'), body: JSON.stringify(chatRequestToGemini(translated as unknown as Json)), stripUsageChunk: false, includeUsage: true, extraHeaders: undefined };
  }
  return { mode: 'anthropic-to-openai', path: path('chat'), body: JSON.stringify(translated), stripUsageChunk: false, includeUsage: true, extraHeaders: undefined };
}

function readJsonResponse(plan: Plan, buf: Buffer, rec: Pick<RequestRecord, 'id' | 'upstreamModel'>): { out: string | Buffer; usage: Usage | undefined } {
  if (plan.mode === 'responses-via-chat' && plan.inner !== undefined) {
    const chat = readJsonResponse(plan.inner, buf, rec);
    let json: unknown;
    try {
      json = JSON.parse(typeof chat.out === 'string' ? chat.out : chat.out.toString('utf8'));
    } catch {
      throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The provider answered with a body that is not JSON');
    }
    const r = chatResponseToResponses(json, responsesContext(plan, rec));
    return { out: JSON.stringify(r.body), usage: chat.usage };
  }
  if (plan.mode === 'openai-pass' || plan.mode === 'anthropic-pass' || plan.mode === 'responses-pass') {
    // Passthrough: the body goes out as received; only its trailing usage object is parsed.
    const usage = lastMemberValue(buf.toString('utf8'), 'usage');
    if (usage !== undefined && usage !== null && typeof usage === 'object') {
      return { out: buf, usage: plan.mode === 'anthropic-pass' ? usageFromAnthropic(usage) : usageFromOpenAI(usage) };
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The provider answered with a body that is not JSON');
  }
  if (!isObj(json)) throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The provider answered with JSON that is not an object');
  const model = rec.upstreamModel ?? '';
  switch (plan.mode) {
    case 'openai-pass':
    case 'responses-pass':
      return { out: buf, usage: usageFromOpenAI(json['usage']) };
    case 'anthropic-pass':
      return { out: buf, usage: usageFromAnthropic(json['usage']) };
    case 'openai-to-anthropic': {
      const r = anthropicResponseToChat(json, { model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000) });
      return { out: JSON.stringify(r.body), usage: r.usage };
    }
    case 'anthropic-to-openai': {
      const r = chatResponseToAnthropic(json, { model, id: `msg_${rec.id}` });
      return { out: JSON.stringify(r.body), usage: r.usage };
    }
    case 'openai-to-gemini':
    case 'anthropic-to-gemini':
    case 'openai-to-bedrock':
    case 'anthropic-to-bedrock': {
      // Gemini and Converse answers become a chat completion; Anthropic callers get it translated on.
      const toChat = plan.mode.endsWith('gemini') ? geminiResponseToChat : converseResponseToChat;
      const chat = toChat(json, { model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000) });
      const body = plan.mode.startsWith('anthropic') ? chatResponseToAnthropic(chat.body, { model, id: `msg_${rec.id}` }).body : chat.body;
      return { out: JSON.stringify(body), usage: chat.usage };
    }
    case 'responses-via-chat':
      throw new SluiceError('SLUICE_ERR_INTERNAL', 'responses plan without its chat plan');
  }
}

/** How a plan's stream is framed upstream: SSE, or the AWS event-stream (Bedrock). */
function streamFraming(plan: Plan): { parser: () => SseParser; contentType: string } {
  const m = plan.inner?.mode ?? plan.mode;
  return m === 'openai-to-bedrock' || m === 'anthropic-to-bedrock' ? { parser: () => loadedAws().createAwsEventStreamParser(), contentType: 'application/vnd.amazon.eventstream' } : { parser: () => createSseParser(), contentType: 'text/event-stream' };
}

/** The Response object's id, time, model and the request whose settings it repeats. */
function responsesContext(plan: Plan, rec: Pick<RequestRecord, 'id' | 'upstreamModel'>): { id: string; createdAt: number; model: string; request: Json } {
  return { id: `resp_${rec.id}`, createdAt: Math.floor(Date.now() / 1000), model: rec.upstreamModel ?? '', request: plan.responsesRequest ?? {} };
}

function streamTranslator(plan: Plan, rec: Pick<RequestRecord, 'id' | 'upstreamModel'>): StreamTranslator {
  const model = rec.upstreamModel ?? '';
  switch (plan.mode) {
    case 'responses-pass':
      return createResponsesPassthrough();
    case 'responses-via-chat':
      if (plan.inner === undefined) throw new SluiceError('SLUICE_ERR_INTERNAL', 'responses plan without its chat plan');
      return chainStreamTranslators(streamTranslator(plan.inner, rec), createChatStreamToResponses(responsesContext(plan, rec)));
    case 'openai-pass':
      return createOpenAIPassthrough({ stripUsageChunk: plan.stripUsageChunk });
    case 'anthropic-pass':
      return createAnthropicPassthrough();
    case 'openai-to-anthropic':
      return createAnthropicStreamToChat({ model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000), includeUsage: plan.includeUsage });
    case 'anthropic-to-openai':
      return createChatStreamToAnthropic({ model, id: `msg_${rec.id}` });
    case 'openai-to-bedrock':
      return createConverseStreamToChat({ model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000), includeUsage: plan.includeUsage });
    case 'anthropic-to-bedrock':
      return chainStreamTranslators(createConverseStreamToChat({ model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000), includeUsage: true }), createChatStreamToAnthropic({ model, id: `msg_${rec.id}` }));
    case 'openai-to-gemini':
      return createGeminiStreamToChat({ model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000), includeUsage: plan.includeUsage });
    case 'anthropic-to-gemini':
      return chainStreamTranslators(createGeminiStreamToChat({ model, id: `chatcmpl-${rec.id}`, created: Math.floor(Date.now() / 1000), includeUsage: true }), createChatStreamToAnthropic({ model, id: `msg_${rec.id}` }));
  }
}


function sluiceHeaders(rec: RequestRecord, admission: Admission | undefined): Record<string, string> {
  return {
    ...(rec.failedAttempts === undefined ? {} : { 'x-sluice-attempts': String(rec.attempts), 'x-sluice-fallback': rec.failedAttempts }),
    ...(rec.cappedMaxTokens === undefined ? {} : { 'x-sluice-max-tokens-capped': String(rec.cappedMaxTokens) }),
    'x-request-id': rec.id,
    'x-sluice-route': rec.route ?? '',
    'x-sluice-backend': rec.backend ?? '',
    'x-sluice-model': rec.upstreamModel ?? '',
    ...admission?.headers,
    ...(rec.clampedMaxTokens === undefined ? {} : { 'x-sluice-max-tokens-clamped': String(rec.clampedMaxTokens) }),
    ...(rec.cache === undefined ? {} : { 'x-sluice-cache': rec.cache }),
    ...(rec.cacheTier === undefined ? {} : { 'x-sluice-cache-tier': rec.cacheTier }),
    ...(rec.cacheSimilarity === undefined ? {} : { 'x-sluice-cache-similarity': rec.cacheSimilarity.toFixed(3) }),
  };
}

/**
 * Runs the guardrails of one direction over `body` (in place): findings go to the audit log, the
 * metrics and the request's log line; a block throws. Returns whether the body was redacted.
 */
function guard(deps: HandlerDeps, rec: RequestRecord, guards: Runtime['guardrails'], routeId: string, direction: 'input' | 'output', body: Json, names: Placeholders): boolean {
  let findings: GuardFinding[] = [];
  try {
    const r = applyGuardrails(guards, routeId, direction, body, names);
    findings = r.findings;
    return r.changed;
  } catch (e) {
    findings = (e as { guardFindings?: GuardFinding[] }).guardFindings ?? [];
    throw e;
  } finally {
    recordFindings(deps, rec, findings);
  }
}

/** Guardrail findings to the request's log line, the audit stream and the metrics (never the text). */
function recordFindings(deps: HandlerDeps, rec: RequestRecord, findings: readonly GuardFinding[]): void {
  if (findings.length === 0) return;
  const summary = findings.map((f) => `${f.guardrail}:${f.direction}:${f.action}:${f.detector}x${f.count}`).join(',');
  rec.guardrails = rec.guardrails === undefined ? summary : `${rec.guardrails},${summary}`;
  const who = deps.identity;
  for (const f of findings) {
    deps.audit.info({ id: rec.id, guardrail: f.guardrail, direction: f.direction, action: f.action, detector: f.detector, count: f.count, ...(f.reason === undefined ? {} : { reason: f.reason }), route: rec.route, model: rec.model, namespace: who.namespace, serviceAccount: who.serviceAccount, team: who.labels[deps.config.teamLabel] ?? '', feature: rec.feature, user: rec.user }, 'guardrail finding');
    deps.metrics.observeGuardrail(f.guardrail, f.detector, f.direction, f.action, f.count);
  }
}

/** One classifier's verdict: the categories it flagged that count, or why it gave none. */
interface Verdict {
  readonly g: CompiledGuardrail;
  readonly categories: readonly string[];
  readonly error: SluiceError | undefined;
}

/** Asks the external classifiers of `guards` in parallel; never throws (a failure is a verdict). */
function askClassifiers(deps: HandlerDeps, guards: readonly CompiledGuardrail[], input: ClassifierInput): Promise<Verdict[]> {
  return Promise.all(
    guards.map((g) =>
      classify(deps.pools, g.classifier!, input).then(
        (categories): Verdict => ({ g, categories, error: undefined }),
        (e: unknown): Verdict => ({ g, categories: [], error: toSluiceError(e) }),
      ),
    ),
  );
}

/** The findings of flagged verdicts (`classifier:<category>`, the guardrail's action) and the block they make, if any. */
function flaggedFindings(verdicts: readonly Verdict[], direction: 'input' | 'output'): { findings: GuardFinding[]; stop: SluiceError | undefined } {
  const findings: GuardFinding[] = [];
  let stop: SluiceError | undefined;
  for (const v of verdicts) {
    for (const c of v.categories) findings.push({ guardrail: v.g.id, direction, action: v.g.action, detector: `classifier:${c}`, count: 1 });
    if (v.categories.length > 0 && v.g.action === 'block') stop ??= new SluiceError('SLUICE_ERR_GUARDRAIL_BLOCKED', `Guardrail ${v.g.id} blocked the ${direction === 'input' ? 'request' : 'answer'}: its classifier flagged ${v.categories.join(', ')}`);
  }
  return { findings, stop };
}

/**
 * Asks the external classifiers of `guards` (in parallel) about one direction of the request: the
 * categories each flags become findings (`classifier:<category>`) with the guardrail's action; a
 * classifier that fails or times out is a `classifierError` finding, and blocks only when its
 * guardrail fails closed. Throws SLUICE_ERR_GUARDRAIL_BLOCKED / _UNAVAILABLE after recording.
 */
async function classifyWith(deps: HandlerDeps, rec: RequestRecord, guards: readonly CompiledGuardrail[], input: ClassifierInput): Promise<void> {
  // No text (an image-only request, an empty answer): nothing to ask about.
  if ((input.direction === 'output' ? (input.answer ?? '') : input.prompt).trim() === '') return;
  const t0 = performance.now();
  const verdicts = await askClassifiers(deps, guards, input);
  rec.classifierMs = (rec.classifierMs ?? 0) + ms(t0);
  const { findings, stop: blocked } = flaggedFindings(verdicts, input.direction);
  let stop = blocked;
  for (const v of verdicts) {
    if (v.error === undefined) continue;
    const failClosed = v.g.classifier!.failClosed;
    findings.push({ guardrail: v.g.id, direction: input.direction, action: failClosed ? 'block' : 'allow', detector: 'classifierError', count: 1, reason: v.error.code });
    if (failClosed) stop ??= new SluiceError('SLUICE_ERR_GUARDRAIL_UNAVAILABLE', `The classifier of guardrail ${v.g.id} could not check the ${input.direction === 'input' ? 'request' : 'answer'} (${v.error.code}); it fails closed`);
  }
  recordFindings(deps, rec, findings);
  if (stop !== undefined) throw stop;
}

/** What the cache keeps of an answer: its bytes as the caller got them, and what it cost. */
function cachedAnswer(form: 'json' | 'sse', body: string, rec: Pick<RequestRecord, 'backend' | 'upstreamModel' | 'costMicros'>): CachedAnswer {
  return { form, body, backend: rec.backend ?? '', upstreamModel: rec.upstreamModel ?? '', costMicros: rec.costMicros ?? 0, createdAtMs: Date.now() };
}

/** Answers from the cache: the stored bytes (a JSON body, or a whole stream replayed), at no cost. */
function serveCached(rec: RequestRecord, hit: CacheHit, res: ServerResponse, admission: Admission | undefined, t0: number): void {
  rec.cache = 'hit';
  rec.cacheTier = hit.tier;
  rec.cacheSimilarity = hit.similarity;
  rec.cacheSavedMicros = hit.answer.costMicros;
  rec.backend = hit.answer.backend;
  rec.upstreamModel = hit.answer.upstreamModel;
  rec.costMicros = 0;
  rec.ttfbMs = ms(t0);
  const sse = hit.answer.form === 'sse';
  res.writeHead(200, {
    'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(hit.answer.body),
    ...(sse ? { 'cache-control': 'no-cache' } : {}),
    ...sluiceHeaders(rec, admission),
    'x-sluice-cost-micros': '0',
  });
  res.end(hit.answer.body);
  if (sse) rec.ttftMs = rec.ttfbMs;
  rec.status = 200;
}

/** Handles one LLM API call end to end and writes exactly one log line. */
export async function handleLlmRequest(deps: HandlerDeps, ep: Endpoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const t0 = performance.now();
  const hdrId = req.headers['x-request-id'];
  const rec: RequestRecord = {
    id: acceptRequestId(typeof hdrId === 'string' ? hdrId : undefined) ?? newRequestId(),
    api: ep.ingress,
    route: undefined,
    backend: undefined,
    provider: undefined,
    model: undefined,
    upstreamModel: undefined,
    stream: false,
    status: 0,
    code: undefined,
    inputTokens: 0,
    outputTokens: 0,
    cachedInputTokens: 0,
    cacheWriteTokens: 0,
    reasoningTokens: 0,
    costMicros: null,
    clampedMaxTokens: undefined,
    cappedMaxTokens: undefined,
    attempts: 0,
    failedAttempts: undefined,
    variant: undefined,
    coalescedWith: undefined,
    capabilitySkipped: undefined,
    guardrails: undefined,
    classifierMs: undefined,
    prompt: undefined,
    completion: undefined,
    cache: undefined,
    cacheBypass: undefined,
    cacheTier: undefined,
    cacheSimilarity: undefined,
    cacheSavedMicros: undefined,
    batch: undefined,
    batchPoll: undefined,
    limit: undefined,
    limitShadowDenied: undefined,
    limitFallbacks: undefined,
    traceId: undefined,
    feature: attributionValue(req.headers['x-sluice-feature']),
    user: attributionValue(req.headers['x-sluice-user']),
    ttfbMs: null,
    ttftMs: null,
    durMs: 0,
  };
  const span = deps.tracing?.start(req);
  if (span !== undefined) rec.traceId = span.traceId;
  let attempt: UpstreamSpan | undefined;
  let upstreamStatus: number | undefined;
  let endAttempt: (() => void) | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let leader: Leader | undefined;
  /** The total timeout (ms) that fired, if one did. */
  let timedOut = 0;
  const rt = deps.runtime();
  let usage: Usage | undefined;
  let backend: SnapshotBackend | undefined;
  let admission: Admission | undefined;
  /** Guardrail classifiers that only record, running alongside the request (awaited before the log line). */
  let inputLogCheck: Promise<void> | undefined;
  /** The provider answered 2xx (it may have produced tokens). */
  let answered = false;
  const ac = new AbortController();
  /** Where a non-streamed answer goes: the caller, or the poll store once the caller got a 202 (batch). */
  let answerTo: ResponseSink = res;
  /** Answered through a batch API: its price share (percent). */
  let batchPricePercent: number | undefined;
  let clientGone = false;
  res.on('close', () => {
    if (!res.writableFinished) {
      clientGone = true;
      ac.abort();
    }
  });
  try {
    const raw = (await readBody(req, deps.config.maxBodyBytes, deps.config.bodyTimeoutMs)).toString('utf8');
    const body = parseJsonBody(raw);
    const model = body['model'];
    if (model === undefined || model === null || model === '') throw new SluiceError('SLUICE_ERR_REQUEST_MODEL_MISSING', 'Request has no model', { param: 'model' });
    if (typeof model !== 'string' || model.length > 256) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'model must be a string of at most 256 characters', { param: 'model' });
    rec.model = model;
    const streamField = body['stream'];
    if (streamField !== undefined && streamField !== null && typeof streamField !== 'boolean') throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'stream must be a boolean', { param: 'stream' });
    const stream = streamField === true && ep.ingress !== 'openai-embeddings';
    rec.stream = stream;
    const target = rt.router.resolve(model);
    if (target === undefined) throw new SluiceError('SLUICE_ERR_ROUTE_MODEL_UNKNOWN', `The model ${JSON.stringify(model)} is not served by any route of this gateway`, { param: 'model' });
    backend = target.backend;
    rec.route = target.route;
    rec.backend = backend.id;
    rec.provider = backend.provider;
    rec.upstreamModel = target.upstreamModel;
    /** The route (`namespace/name`) the rule belongs to: what limits, caches and guardrails match on. */
    const routeId = target.route.slice(0, target.route.lastIndexOf('#'));
    // The whole request's deadline: the x-sluice-timeout-ms header within the rule's bound, else the rule's.
    const totalMs = totalTimeoutOf(req.headers['x-sluice-timeout-ms'], target.rule.totalTimeoutMs, target.rule.maxTotalTimeoutMs);
    if (totalMs > 0) {
      deadline = setTimeout(() => {
        timedOut = totalMs;
        ac.abort();
      }, totalMs);
    }
    // The rule's output cap: max_tokens set when absent, lowered when larger.
    let rawOut = raw;
    const cap = target.rule.maxTokens;
    if (cap > 0 && ep.ingress !== 'openai-embeddings') {
      const field =
        ep.ingress === 'openai-chat' ? (body['max_completion_tokens'] !== undefined ? 'max_completion_tokens' : body['max_tokens'] !== undefined ? 'max_tokens' : target.backend.maxTokensField) : ep.ingress === 'openai-responses' ? 'max_output_tokens' : 'max_tokens';
      const asked = body[field];
      if (typeof asked !== 'number' || asked > cap) {
        body[field] = cap;
        rec.cappedMaxTokens = cap;
        rawOut = setTopLevelMembers(raw, { [field]: String(cap) });
      }
    }
    // Guardrails on the request (LLMGuardrail input): redact in place, block, or log.
    // (Nothing is allocated for requests without guardrails: the hot path stays as it was.)
    const guards = rt.guardrails.length > 0 ? rt.guardsFor(routeId) : undefined;
    const names = guards !== undefined || target.rule.logPrompts || target.rule.logCompletions ? new Placeholders() : undefined;
    // The request's texts (after input redaction), for classifiers and prompt logging; read once.
    let promptText: string | undefined;
    const promptOf = (): string => (promptText ??= bodyText(body));
    if (names !== undefined && guards !== undefined) {
      if (guards.input.length > 0 && guard(deps, rec, guards.input, routeId, 'input', body, names)) rawOut = JSON.stringify(body);
      const ic = guards.inputClassifiers;
      // Classifiers that only record run alongside the request (the log line waits for them).
      if (ic.logging.length > 0) inputLogCheck = classifyWith(deps, rec, ic.logging, { direction: 'input', prompt: promptOf() }).catch(() => undefined);
      if (ic.stopping.length > 0) await classifyWith(deps, rec, ic.stopping, { direction: 'input', prompt: promptOf() });
      // The stream filter follows one choice: several streamed choices would pass unfiltered.
      if (stream && typeof body['n'] === 'number' && body['n'] > 1 && guards.filtersOutput) {
        throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', 'An output guardrail filters this route: streamed answers with n > 1 choices cannot be filtered', { param: 'n' });
      }
    }
    if (names !== undefined && target.rule.logPrompts) rec.prompt = loggable(promptOf(), logScanners(guards?.detecting ?? []), names, target.rule.logMaxChars);
    // Planned per attempt (each backend may need a translation); none before the first.
    let plan: Plan | undefined;
    const matching = rt.limits.limits.length === 0 ? [] : deps.limits.match(rt.limits, { routeId, model }, deps.identity, req);
    if (matching.length > 0) {
      // Reserve the estimated prompt + max_tokens (and its cost) on every matching limit; settled
      // with the provider's usage in `finally`. Tokens are estimated only when a token or money
      // limit applies (request-count limits need no estimate).
      const needsEstimate = matching.some((m) => m.limit.unit !== 'requests');
      const est = needsEstimate ? estimateOf(ep.ingress, body, target.upstreamModel) : { promptTokens: 0, maxOutputTokens: undefined };
      const outputTokens = !needsEstimate || ep.ingress === 'openai-embeddings' ? 0 : (est.maxOutputTokens ?? deps.config.defaultMaxTokens);
      const price = rt.priceOf(backend, target.upstreamModel);
      const admit = (out: number): AdmitResult | Promise<AdmitResult> => {
        const cost = price === undefined || !needsEstimate ? 0 : costMicros({ inputTokens: est.promptTokens, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: out, reasoningTokens: 0 }, price);
        return deps.limits.admit(matching, { inputTokens: est.promptTokens, outputTokens: out, microUSD: cost });
      };
      let result = await admit(outputTokens);
      if ('clampTo' in result) {
        // Lower max_tokens in the caller's request (same field it used) and plan again.
        const field = ep.ingress === 'openai-chat' && body['max_completion_tokens'] !== undefined ? 'max_completion_tokens' : ep.ingress === 'openai-responses' ? 'max_output_tokens' : 'max_tokens';
        body[field] = result.clampTo;
        rec.clampedMaxTokens = result.clampTo;
        rawOut = setTopLevelMembers(rawOut, { [field]: String(result.clampTo) });
        result = await admit(result.clampTo);
        if ('clampTo' in result) throw new SluiceError('SLUICE_ERR_LIMIT_EXCEEDED', 'The credit of a token limit changed while max_tokens was being lowered; retry');
      }
      admission = result;
      if (result.notes.shadowDenied.length > 0) rec.limitShadowDenied = result.notes.shadowDenied.join(',');
      if (result.notes.fallbacks.length > 0) rec.limitFallbacks = result.notes.fallbacks.join(',');
    }

    // Response cache (LLMCache): a hit answers here, before any upstream call; a miss is stored
    // once it has been answered in full (a stream as it passed through).
    let cacheKey: string | undefined;
    let semantic: { readonly scope: string; readonly vector: Float32Array } | undefined;
    const cachePolicy = rt.snapshot.caches.length === 0 ? undefined : rt.cacheFor(routeId, model);
    if (cachePolicy !== undefined && (cachePolicy.exact || cachePolicy.semantic)) {
      const decision = cacheUse(cachePolicy, req.headers, body, ep.ingress === 'openai-embeddings');
      if (decision.use === 'bypass') {
        rec.cache = 'bypass';
        rec.cacheBypass = decision.reason;
      } else {
        const so = body['stream_options'];
        const who = deps.identity;
        const parts = {
          policy: cachePolicy,
          scope: cacheScope(cachePolicy, who.namespace, who.labels[deps.config.teamLabel] ?? ''),
          route: target.route,
          ingress: ep.ingress,
          stream,
          includeUsage: isObj(so) && so['include_usage'] === true,
          promptVersion: attributionValue(req.headers['x-sluice-prompt-version']),
        };
        rec.cache = 'miss';
        let hit: CacheHit | undefined;
        if (cachePolicy.exact) {
          cacheKey = exactKey(parts, body);
          if (decision.use === 'use') hit = await deps.cache.lookup(cacheKey, cachePolicy.shared);
        }
        if (hit === undefined && cachePolicy.semantic && ep.ingress !== 'openai-embeddings') {
          // Semantic: the question embedded by the policy's embedding backend, compared with the
          // questions answered before in the same context.
          const q = semanticQuery(body, cachePolicy.semanticEmbed);
          const embedder = q === undefined ? undefined : rt.snapshot.backends.find((b) => b.id === cachePolicy.embeddingBackend);
          if (q !== undefined && embedder !== undefined) {
            try {
              const vector = await deps.semantic.embed(embedder, cachePolicy.embeddingModel, q.text);
              const scope = semanticScope([parts.scope, target.route, ep.ingress, stream ? (parts.includeUsage ? 'sse+usage' : 'sse') : 'json', cachePolicy.keyVersion, parts.promptVersion, cachePolicy.embeddingModel, q.context]);
              semantic = { scope, vector };
              if (decision.use === 'use') {
                const s = await deps.semantic.lookup(scope, vector, cachePolicy.similarityThresholdMilli / 1000, cachePolicy.shared);
                if (s !== undefined) {
                  hit = { answer: s.answer, tier: 'semantic', similarity: s.similarity };
                  deps.cache.stats.hits.semantic++;
                }
              }
            } catch (e) {
              // No embedding, no semantic lookup: the request goes on (exact cache and upstream).
              rec.cacheBypass = `embedding:${toSluiceError(e).code}`;
            }
          }
        }
        if (hit !== undefined) {
          answered = true;
          usage = { inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 };
          serveCached(rec, hit, res, admission, t0);
          return;
        }
      }
    }
    /** Keeps a complete answer in the exact and semantic caches the request looked up. */
    const remember = (answer: CachedAnswer): void => {
      if (cachePolicy === undefined) return;
      const ttlMs = cachePolicy.ttlSeconds * 1000;
      if (cacheKey !== undefined) deps.cache.store(cacheKey, answer, ttlMs, cachePolicy.shared);
      if (semantic !== undefined && answer.body.length <= deps.cache.maxEntryBytes) deps.semantic.store(semantic.scope, semantic.vector, answer, ttlMs, cachePolicy.shared);
    };
    const promptCacheMin = cachePolicy?.promptCaching === true ? cachePolicy.promptCachingMinTokens : 0;
    // Coalescing: an identical non-streamed request already in flight answers this one too.
    if (target.rule.coalesce && !stream) {
      const key = Coalescer.key(target.route, ep.ingress, rec.user, canonicalJson(body));
      const waiting = deps.coalescer.waitFor(key);
      if (waiting !== undefined) {
        const r = await waiting;
        if ('error' in r) throw r.error;
        rec.backend = r.backend;
        rec.upstreamModel = r.upstreamModel;
        rec.coalescedWith = r.leaderId;
        answered = true;
        // Billed once, to the leader: this caller's answer cost nothing more.
        usage = { inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 };
        rec.costMicros = 0;
        rec.ttfbMs = ms(t0);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(r.out), ...sluiceHeaders(rec, admission), 'x-sluice-coalesced-with': r.leaderId });
        res.end(r.out);
        rec.status = 200;
        return;
      }
      leader = deps.coalescer.lead(key, () => new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', 'The identical request this one was waiting for did not complete'));
    }
    // Shadow traffic: a share of the requests also goes to the rule's candidate backend, detached:
    // its answer is logged (cost, latency) and never returned; nothing it does reaches the caller.
    const shadow = target.shadow;
    if (shadow !== undefined && deps.routing.random() * 100 < target.rule.shadowPercent) {
      void shadowRequest(deps, rt, ep, shadow, body, rawOut, model, stream, req, rec.id);
    }
    // Attempts: the strategy's first choice, then the rule's other backends (fallback), or the same
    // backend again after a wait; only failures before the answer started, within the rule's attempts
    // and the process's retry budget.
    const routing = deps.routing;
    let order = routing.order(target, (c) => {
      const p = rt.priceOf(c.backend, c.upstreamModel);
      return p === undefined ? undefined : p.input + p.output;
    });
    if (order.length > 1) {
      const fit = capableCandidates(order, ep.ingress, body, rawOut);
      if (fit.skipped.length > 0) rec.capabilitySkipped = fit.skipped.join(',');
      order = fit.order;
    }
    const maxAttempts = Math.max(1, target.rule.retryAttempts);
    if (target.rule.strategy === 'weighted' && order[0] !== undefined) rec.variant = `${order[0].backend.id}/${order[0].upstreamModel}`;
    const failed: string[] = [];
    routing.budget.onRequest(routing.now());
    let next = 0;
    let up: Awaited<ReturnType<typeof sendUpstream>> | undefined;
    // Batch routing: a latency-tolerant non-streamed request goes through the first candidate with a
    // batch API and waits for the batch; a batch that cannot be submitted (or that the provider fails
    // as a whole) leaves the request to the real-time attempts below.
    let batchAnswer: Buffer | undefined;
    const batchTarget = !stream && target.rule.batchMode !== 'off' && wantsBatch(target.rule.batchMode, req.headers['x-sluice-batch']) ? order.find((c) => batchApiOf(c.backend) !== undefined) : undefined;
    if (batchTarget !== undefined) {
      backend = batchTarget.backend;
      rec.backend = backend.id;
      rec.provider = backend.provider;
      rec.upstreamModel = batchTarget.upstreamModel;
      plan = planRequest(ep.ingress, backend, body, rawOut, model, batchTarget.upstreamModel, stream, req, deps.config, promptCacheMin);
      // Waiting for a batch is the point: the rule's total timeout does not apply.
      clearTimeout(deadline);
      deadline = undefined;
      const rule = target.rule;
      const ticket = deps.batcher.enqueue(backend, batchApiOf(backend) as 'openai', plan.path, batchTarget.upstreamModel, plan.body, { windowMs: rule.batchWindowMs, maxRequests: rule.batchMaxRequests, pollMs: rule.batchPollMs });
      rec.attempts++;
      rec.batch = 'queued';
      // A caller that leaves before the batch is submitted takes its request back (nothing is billed);
      // after that the answer is still awaited, to count what it cost.
      const withdraw = (): void => void ticket.withdraw();
      ac.signal.addEventListener('abort', withdraw, { once: true });
      const goAsync = (): void => {
        if (answerTo !== res || res.headersSent || clientGone) return;
        const pollId = deps.batchResults.open(rec.id, newRequestId, () => ticket.batchId, rule.batchPollMs);
        rec.batchPoll = pollId;
        const accepted = JSON.stringify(batchStatusBody(pollId, ticket.batchId));
        res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(accepted), location: batchPollPath(pollId), 'retry-after': String(Math.max(1, Math.ceil(rule.batchPollMs / 1000))), ...sluiceHeaders(rec, admission) });
        res.end(accepted);
        answerTo = deps.batchResults.sink(pollId);
      };
      const hold = rule.batchHoldMs === 0 || prefersAsync(req.headers['prefer']) ? (goAsync(), undefined) : setTimeout(goAsync, rule.batchHoldMs);
      let outcome: Awaited<typeof ticket.outcome>;
      try {
        outcome = await ticket.outcome;
      } finally {
        clearTimeout(hold);
        ac.signal.removeEventListener('abort', withdraw);
      }
      if (outcome.kind === 'abandoned') throw clientGone ? new SluiceError('SLUICE_ERR_REQUEST_ABORTED') : new SluiceError('SLUICE_ERR_BATCH_ABANDONED');
      if (outcome.kind === 'fallback') {
        rec.batch = 'fallback';
        failed.push(`${backend.id}:batch:${outcome.error.code}`);
        rec.failedAttempts = failed.join(',');
        plan = undefined;
      } else {
        rec.batch = outcome.batchId;
        const r = outcome.result;
        if ('reason' in r) throw new SluiceError('SLUICE_ERR_UPSTREAM_TIMEOUT', `The provider's batch ${outcome.batchId} ended before this request ran (${r.reason})`);
        upstreamStatus = r.status;
        if (r.status >= 300) throw upstreamStatusError(r.status, {}, r.body);
        batchAnswer = Buffer.from(r.body);
        batchPricePercent = providerSpec(backend.provider)?.batchPricePercent ?? 100;
      }
    }
    while (batchAnswer === undefined) {
      let t = order[next] as (typeof order)[number];
      // An ejected backend is skipped while others remain (a half-open one gets its one probe).
      while (!routing.breakers.allow(t.backend.id, routing.now()) && next + 1 < order.length) t = order[++next] as (typeof order)[number];
      rec.attempts++;
      if (plan === undefined || t.backend !== backend || t.upstreamModel !== rec.upstreamModel) {
        backend = t.backend;
        rec.backend = backend.id;
        rec.provider = backend.provider;
        rec.upstreamModel = t.upstreamModel;
        try {
          plan = planRequest(ep.ingress, backend, body, rawOut, model, t.upstreamModel, stream, req, deps.config, promptCacheMin);
        } catch (e) {
          routing.breakers.release(backend.id);
          throw e;
        }
      }
      attempt = span?.upstream(backend.id, backend.baseUrl);
      const endInFlight = routing.balancer.begin(backend.id);
      const started = performance.now();
      let err: SluiceError;
      let headers: Record<string, string> | undefined;
      try {
        up = await sendUpstream(deps.pools, { backend, path: plan.path, body: plan.body, extraHeaders: plan.extraHeaders, signal: ac.signal, firstTokenTimeoutMs: target.rule.firstTokenTimeoutMs, idleTimeoutMs: target.rule.idleTimeoutMs });
        upstreamStatus = up.statusCode;
        if (up.statusCode < 300) {
          routing.breakers.record(backend.id, false, routing.now());
          routing.balancer.observeLatency(backend.id, performance.now() - started);
          endAttempt = endInFlight;
          break;
        }
        const text = (await readUpstreamBody(up.body, 1024 * 1024)).toString('utf8');
        headers = flatHeaders(up.headers);
        err = upstreamStatusError(up.statusCode, up.headers, text);
      } catch (e) {
        err = toSluiceError(e);
      }
      endInFlight();
      if (err.code === 'SLUICE_ERR_REQUEST_ABORTED') {
        routing.breakers.release(backend.id);
        throw err;
      }
      routing.breakers.record(backend.id, backendFault(err.code), routing.now());
      attempt?.end(upstreamStatus, err.code);
      attempt = undefined;
      failed.push(`${backend.id}:${upstreamStatus ?? err.code}`);
      rec.failedAttempts = failed.join(',');
      upstreamStatus = undefined;
      if (!retryable(err.code) || rec.attempts >= maxAttempts) throw err;
      // Another backend at once; else the same one after a wait (a 429's Retry-After when given;
      // one longer than the rule allows goes back to the caller instead).
      const failover = next + 1 < order.length;
      const wait = failover ? 0 : backoffMs(err.code, headers, rec.attempts, target.rule.retryBackoffMs, target.rule.retryMaxBackoffMs, Date.now(), routing.random);
      if (wait === undefined || !routing.budget.tryRetry(routing.now())) throw err;
      deps.metrics.observeRetry(backend.id, err.code);
      if (failover) {
        next++;
        continue;
      }
      await sleep(wait, ac.signal);
    }
    answered = true;
    if (plan === undefined || backend === undefined) throw new SluiceError('SLUICE_ERR_INTERNAL', 'no plan after the attempts');
    if (!stream || up === undefined) {
      const buf = batchAnswer ?? (up === undefined ? Buffer.alloc(0) : await readUpstreamBody(up.body, deps.config.maxResponseBytes));
      const read = readJsonResponse(plan, buf, rec);
      usage = read.usage;
      let out = read.out;
      /** The answer's texts, for classifiers that only record (asked once the answer is sent). */
      let loggedAnswer: string | undefined;
      if ((guards !== undefined && guards.output.length > 0) || target.rule.logCompletions) {
        // Guardrails on the answer (LLMGuardrail output), on its caller-shape JSON.
        let answer: unknown;
        try {
          answer = JSON.parse(typeof out === 'string' ? out : out.toString('utf8'));
        } catch {
          answer = undefined;
        }
        // An answer nested deeper than any request may be is not scanned half-way: it is refused.
        if (isObj(answer) && nestedDeeperThan(answer, MAX_JSON_DEPTH)) throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `The provider's answer nests more than ${MAX_JSON_DEPTH} levels deep`);
        if (isObj(answer)) {
          const answerNames = names ?? new Placeholders();
          if (guards !== undefined && guard(deps, rec, guards.output, routeId, 'output', answer, answerNames)) out = JSON.stringify(answer);
          const oc = guards?.outputClassifiers;
          if (oc !== undefined && oc.stopping.length > 0) await classifyWith(deps, rec, oc.stopping, { direction: 'output', prompt: promptOf(), answer: bodyText(answer) });
          if (oc !== undefined && oc.logging.length > 0) loggedAnswer = bodyText(answer);
          if (target.rule.logCompletions) rec.completion = loggable(bodyText(answer), logScanners(guards?.detecting ?? []), answerNames, target.rule.logMaxChars);
        }
      }
      const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out), ...sluiceHeaders(rec, admission) };
      const price = usage === undefined ? undefined : rt.priceOf(backend, rec.upstreamModel ?? target.upstreamModel);
      if (usage !== undefined && price !== undefined) {
        rec.costMicros = batchPricePercent === undefined ? costMicros(usage, price) : batchCostMicros(costMicros(usage, price), batchPricePercent);
        headers['x-sluice-cost-micros'] = rec.costMicros;
      }
      if (rec.batch !== undefined) headers['x-sluice-batch'] = rec.batch;
      if (clientGone && answerTo === res) throw new SluiceError('SLUICE_ERR_REQUEST_ABORTED');
      rec.ttfbMs = ms(t0);
      answerTo.writeHead(200, headers);
      answerTo.end(out);
      rec.status = 200;
      if (cacheKey !== undefined || semantic !== undefined) remember(cachedAnswer('json', typeof out === 'string' ? out : out.toString('utf8'), rec));
      leader?.resolve({ out, backend: backend.id, upstreamModel: rec.upstreamModel ?? target.upstreamModel, leaderId: rec.id });
      // The answer is sent: nothing may throw from here (it never does: these classifiers only record).
      if (loggedAnswer !== undefined && guards !== undefined) await classifyWith(deps, rec, guards.outputClassifiers.logging, { direction: 'output', prompt: promptOf(), answer: loggedAnswer }).catch(() => undefined);
      return;
    }
    const contentType = String(up.headers['content-type'] ?? '');
    const framing = streamFraming(plan);
    if (!contentType.includes(framing.contentType)) {
      await readUpstreamBody(up.body, 1024 * 1024).catch(() => undefined);
      throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `The provider answered a stream request with ${contentType || 'no content type'}`);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...sluiceHeaders(rec, admission) });
    res.flushHeaders();
    rec.ttfbMs = ms(t0);
    rec.status = 200;
    const parser = framing.parser();
    const tr = streamTranslator(plan, rec);
    // Output guardrails of the route filter the stream through their look-behind window; an output
    // classifier gets the answer once it is complete (the end of the stream waits for its verdict).
    const outputGuards = guards?.output ?? [];
    // Only a verdict that can stop the answer holds its end: `log` classifiers that fail open are
    // asked after the stream has ended (the log line waits for them, the caller does not).
    const stoppingClassifiers = guards?.outputClassifiers.stopping ?? [];
    const loggingClassifiers = guards?.outputClassifiers.logging ?? [];
    // Kept of the answer: what the classifiers read, and what completion logging shows (plus the
    // look-ahead that keeps a match at its cut whole).
    const collectChars = Math.max(guards?.outputClassifierChars ?? 0, target.rule.logCompletions ? target.rule.logMaxChars + CUT_LOOKAHEAD : 0);
    const streamGuard =
      outputGuards.length === 0 && !target.rule.logCompletions
        ? undefined
        : new StreamGuard(outputGuards, ep.ingress === 'openai-responses' ? 'responses' : ep.shape, names ?? new Placeholders(), { collectChars, holdTail: stoppingClassifiers.length > 0 });
    try {
      // A cacheable stream is recorded as it passes (never delaying it), up to the entry size bound.
      let recorded: string[] | undefined = cacheKey === undefined && semantic === undefined ? undefined : [];
      let recordedChars = 0;
      const forward = (raw: string): Promise<void> | undefined => (raw.length === 0 || clientGone ? undefined : send(streamGuard === undefined ? raw : streamGuard.push(raw)));
      // Blocking classifiers with `streamCheckChars` are also asked while the answer streams (one
      // check at a time, on the answer so far): a flagged verdict ends the stream at the next event.
      const early = streamGuard === undefined ? [] : (guards?.earlyChecks ?? []);
      const earlyStep = guards?.earlyCheckChars ?? Infinity;
      let checkedChars = 0;
      let checking: Promise<void> | undefined;
      let earlyStop: SluiceError | undefined;
      const checkEarly = (): void => {
        if (checking !== undefined || earlyStop !== undefined || streamGuard === undefined || streamGuard.answer.length - checkedChars < earlyStep) return;
        checkedChars = streamGuard.answer.length;
        const answer = streamGuard.answer;
        // A failed interim check is ignored: the final one applies `onError`.
        checking = askClassifiers(deps, early, { direction: 'output', prompt: promptOf(), answer }).then((verdicts) => {
          checking = undefined;
          const { findings, stop } = flaggedFindings(verdicts, 'output');
          if (stop === undefined || earlyStop !== undefined) return;
          recordFindings(deps, rec, findings);
          earlyStop = stop;
        });
      };
      const send = async (text: string): Promise<void> => {
        if (earlyStop !== undefined) throw earlyStop;
        if (early.length > 0) checkEarly();
        if (text.length === 0 || clientGone) return;
        if (rec.ttftMs === null) rec.ttftMs = ms(t0);
        if (recorded !== undefined) {
          recordedChars += text.length;
          if (recordedChars > deps.cache.maxEntryBytes) recorded = undefined;
          else recorded.push(text);
        }
        if (!res.write(text)) await drained(res);
      };
      for await (const chunk of up.body) {
        for (const ev of parser.push(chunk as Buffer)) await forward(tr.push(ev));
      }
      if (clientGone) throw new SluiceError('SLUICE_ERR_REQUEST_ABORTED');
      for (const ev of parser.end()) await forward(tr.push(ev));
      await forward(tr.end());
      if (streamGuard !== undefined && stoppingClassifiers.length > 0) {
        if (checking !== undefined) await checking;
        if (earlyStop !== undefined) throw earlyStop;
        await classifyWith(deps, rec, stoppingClassifiers, { direction: 'output', prompt: promptOf(), answer: streamGuard.answer });
        await send(streamGuard.takeTail());
      }
      res.end();
      if (streamGuard !== undefined && loggingClassifiers.length > 0) await classifyWith(deps, rec, loggingClassifiers, { direction: 'output', prompt: promptOf(), answer: streamGuard.answer }).catch(() => undefined);
      if (recorded !== undefined && !clientGone) {
        // Stored only once complete: usage read (the cost a hit avoids) and no error on the way.
        const price = tr.usage === undefined ? undefined : rt.priceOf(backend, rec.upstreamModel ?? target.upstreamModel);
        const cost = tr.usage !== undefined && price !== undefined ? costMicros(tr.usage, price) : 0;
        remember(cachedAnswer('sse', recorded.join(''), { ...rec, costMicros: cost }));
      }
    } catch (e) {
      throw clientGone ? new SluiceError('SLUICE_ERR_REQUEST_ABORTED') : transportError(e, true);
    } finally {
      usage = tr.usage;
      if (streamGuard !== undefined) {
        recordFindings(deps, rec, [...streamGuard.findings.values()]);
        if (target.rule.logCompletions) rec.completion = loggable(streamGuard.answer, logScanners(guards?.detecting ?? []), names ?? new Placeholders(), target.rule.logMaxChars);
      }
    }
  } catch (e) {
    let err = toSluiceError(e);
    if (timedOut > 0 && !clientGone) err = new SluiceError('SLUICE_ERR_UPSTREAM_TIMEOUT', `The request did not finish within its total timeout of ${timedOut} ms`);
    // Waiters get the leader's failure, unless only the leader's own caller went away.
    if (err.code !== 'SLUICE_ERR_REQUEST_ABORTED') leader?.resolve({ error: err });
    rec.code = err.code;
    rec.limit = err.headers?.['x-sluice-limit'];
    if (clientGone || err.code === 'SLUICE_ERR_REQUEST_ABORTED') {
      rec.status = 499;
      if (!answerTo.destroyed) answerTo.destroy();
    } else if (!answerTo.headersSent) {
      rec.status = err.status;
      sendError(answerTo, ep.shape, err, rec.id, err.code === 'SLUICE_ERR_REQUEST_TOO_LARGE' || err.code === 'SLUICE_ERR_REQUEST_BODY_TIMEOUT');
    } else {
      // The stream had started: one terminal error event in the caller's shape, then close.
      res.end(errorEvent(ep.shape, err, rec.id));
    }
    if (err.code === 'SLUICE_ERR_INTERNAL') deps.logger.error({ id: rec.id, err: err.cause }, 'internal error');
  } finally {
    if (usage !== undefined) {
      rec.inputTokens = usage.inputTokens;
      rec.outputTokens = usage.outputTokens;
      rec.cachedInputTokens = usage.cachedInputTokens;
      rec.cacheWriteTokens = usage.cacheWriteTokens;
      rec.reasoningTokens = usage.reasoningTokens;
      if (rec.costMicros === null && backend !== undefined && rec.upstreamModel !== undefined) {
        const price = rt.priceOf(backend, rec.upstreamModel);
        if (price !== undefined) rec.costMicros = costMicros(usage, price);
      }
    }
    if (admission !== undefined) {
      // Charge what the provider produced: its usage when the answer completed; at least the
      // reservation when a started answer was cut (client gone, stream broken); nothing otherwise.
      const actual = usage === undefined ? undefined : { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, microUSD: rec.costMicros ?? 0 };
      deps.limits.settle(admission, !answered ? 'none' : rec.code === undefined ? 'complete' : 'partial', actual);
    }
    rec.durMs = ms(t0);
    if (inputLogCheck !== undefined) await inputLogCheck;
    endAttempt?.();
    leader?.done();
    if (deadline !== undefined) clearTimeout(deadline);
    if (span !== undefined) {
      // The attempt's span covers the provider's whole answer (a stream until its end).
      attempt?.end(upstreamStatus, rec.code?.startsWith('SLUICE_ERR_UPSTREAM_') === true ? rec.code : undefined);
      span.end(rec);
    }
    deps.logLine(rec, 'request');
    deps.metrics.observe(rec);
    const who = deps.identity;
    const attribution = { namespace: who.namespace, serviceAccount: who.serviceAccount, team: who.labels[deps.config.teamLabel] ?? '', feature: rec.feature, user: rec.user };
    deps.usage()?.record(rec, attribution);
    deps.recent.remember(rec.id, { route: rec.route, backend: rec.backend, model: rec.model, attribution });
  }
}
