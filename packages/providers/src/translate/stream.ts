import { SluiceError } from '@sluice/core';
import type { SseEvent } from '../sse.js';
import type { Usage } from '../usage.js';
import { usageFromAnthropic } from '../usage.js';
import type { ChatFinishReason } from '../wire/openai.js';
import type { AnthropicStopReason } from '../wire/anthropic.js';

/**
 * One streamed response being observed or translated, event by event. Implementations are pure state
 * machines: no I/O, no timers.
 */
export interface StreamTranslator {
  /** Feed one upstream SSE event; returns SSE text to send to the client now ('' if nothing). Throws SluiceError on an upstream error event. */
  push(ev: SseEvent): string;
  /** Upstream ended. Returns final SSE text (e.g. the OpenAI 'data: [DONE]\n\n' if not yet sent). Throws SluiceError('SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED') if the upstream stream ended before its proper terminal event (Anthropic message_stop / OpenAI [DONE] or a finish_reason followed by end). */
  end(): string;
  /** Usage seen so far (undefined until the provider reported any). Must be available after a partial stream too (client disconnect → charge what was produced). */
  readonly usage: Usage | undefined;
  /** True once the upstream's terminal event was seen. */
  readonly done: boolean;
}

/** The OpenAI finish_reason for an Anthropic stop_reason (unknown or absent → 'stop'). */
export function anthropicStopToOpenAI(reason: unknown): ChatFinishReason {
  switch (reason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn
      return 'stop';
  }
}

/** The Anthropic stop_reason for an OpenAI finish_reason (unknown or absent → 'end_turn'). */
export function openaiFinishToAnthropic(reason: unknown): AnthropicStopReason {
  switch (reason) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

// ---- Internal helpers shared by the translators (not re-exported from the package). ----

/** @internal A plain JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** @internal The text of a system or assistant message's content: a string, or its text parts joined. */
export function textOfParts(content: unknown, path: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of parts');
  return content
    .map((p, i) => {
      if (!isRecord(p) || p['type'] !== 'text' || typeof p['text'] !== 'string') throw unsupported(`${path}[${i}]`, 'only text parts are supported here');
      return p['text'];
    })
    .join('');
}

/** @internal A tool call's `arguments` (a JSON string) as the object it encodes ('' or absent = {}). */
export function parseToolArguments(args: unknown, path: string): Record<string, unknown> {
  if (args === undefined || args === '') return {};
  if (typeof args !== 'string') throw invalidRequest(path, 'must be a JSON string');
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    throw invalidRequest(path, 'is not valid JSON');
  }
  if (!isRecord(v)) throw invalidRequest(path, 'must encode a JSON object');
  return v;
}

/** @internal */
export function badResponse(message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `Upstream response is malformed: ${message}`);
}

/** @internal Request that is structurally wrong; `path` names the offending field. */
export function invalidRequest(path: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_REQUEST_INVALID', `Invalid request: ${path} ${message}`, { param: path });
}

/** @internal Request that is valid but cannot be translated faithfully for the chosen backend. */
export function unsupported(path: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `Unsupported by this route's backend: ${path} ${message}`, { param: path });
}

/** @internal */
export function interrupted(what: string): SluiceError {
  return new SluiceError('SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED', `The provider stream ended before ${what}`);
}

/** @internal JSON.stringify that never throws (BigInt, cycles in caller-built objects). */
export function stringifyOr(v: unknown, onError: () => SluiceError): string {
  try {
    const s = JSON.stringify(v);
    if (typeof s !== 'string') throw onError();
    return s;
  } catch (e) {
    if (e instanceof SluiceError) throw e;
    throw onError();
  }
}

/** @internal Parse one SSE event's data as a JSON object, or throw SLUICE_ERR_UPSTREAM_BAD_RESPONSE. */
export function parseEventObject(ev: SseEvent): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(ev.data);
  } catch {
    throw badResponse(`stream event data is not JSON: ${preview(ev.data)}`);
  }
  if (!isRecord(v)) throw badResponse(`stream event data is not a JSON object: ${preview(ev.data)}`);
  return v;
}

function preview(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);
}

/** @internal The SluiceError for an Anthropic error object (`{type, message}`), keeping the provider's message. */
export function anthropicError(error: unknown): SluiceError {
  const e = isRecord(error) ? error : {};
  const type = typeof e['type'] === 'string' ? e['type'] : 'api_error';
  const message = typeof e['message'] === 'string' && e['message'] !== '' ? e['message'] : `Provider error (${type})`;
  switch (type) {
    case 'overloaded_error':
      return new SluiceError('SLUICE_ERR_UPSTREAM_OVERLOADED', message);
    case 'rate_limit_error':
      return new SluiceError('SLUICE_ERR_UPSTREAM_RATE_LIMITED', message);
    default:
      return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', message);
  }
}

/** @internal The SluiceError for an Anthropic `event: error` (data `{"type":"error","error":{...}}`). */
export function anthropicErrorEvent(ev: SseEvent): SluiceError {
  let body: unknown;
  try {
    body = JSON.parse(ev.data);
  } catch {
    return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', `Provider stream error: ${preview(ev.data)}`);
  }
  return anthropicError(isRecord(body) ? body['error'] : undefined);
}

/** @internal The SluiceError for an OpenAI error object (`{message, type, code}`), keeping the provider's message. */
export function openaiError(error: unknown): SluiceError {
  const e = isRecord(error) ? error : {};
  const type = typeof e['type'] === 'string' ? e['type'] : '';
  const code = typeof e['code'] === 'string' ? e['code'] : '';
  const message = typeof e['message'] === 'string' && e['message'] !== '' ? e['message'] : `Provider error (${type || code || 'unknown'})`;
  const kind = `${type} ${code}`;
  if (kind.includes('rate_limit')) return new SluiceError('SLUICE_ERR_UPSTREAM_RATE_LIMITED', message);
  if (kind.includes('overloaded')) return new SluiceError('SLUICE_ERR_UPSTREAM_OVERLOADED', message);
  return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', message);
}

/** @internal The SluiceError for an OpenAI-style `event: error` (data `{"error":{...}}` or the error object itself). */
export function openaiErrorEvent(ev: SseEvent): SluiceError {
  let body: unknown;
  try {
    body = JSON.parse(ev.data);
  } catch {
    return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', `Provider stream error: ${preview(ev.data)}`);
  }
  return openaiError(isRecord(body) && body['error'] !== undefined ? body['error'] : body);
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

/**
 * @internal Accumulates Anthropic stream usage: message_start carries input and cache counts,
 * message_delta the cumulative output count (and, in newer API versions, the input and cache counts
 * again). Every field keeps the largest value seen.
 */
export class AnthropicUsageTracker {
  #seen = false;
  #input = 0;
  #cacheRead = 0;
  #cacheWrite = 0;
  #output = 0;

  feed(u: unknown): void {
    if (!isRecord(u)) return;
    this.#seen = true;
    this.#input = Math.max(this.#input, count(u['input_tokens']));
    this.#cacheRead = Math.max(this.#cacheRead, count(u['cache_read_input_tokens']));
    this.#cacheWrite = Math.max(this.#cacheWrite, count(u['cache_creation_input_tokens']));
    this.#output = Math.max(this.#output, count(u['output_tokens']));
  }

  get usage(): Usage | undefined {
    if (!this.#seen) return undefined;
    return usageFromAnthropic({
      input_tokens: this.#input,
      cache_read_input_tokens: this.#cacheRead,
      cache_creation_input_tokens: this.#cacheWrite,
      output_tokens: this.#output,
    });
  }
}

/**
 * Appends a turn to a conversation whose provider wants the roles to alternate (Gemini, Bedrock
 * Converse): a turn of the same role as the last one is merged into it. Empty turns are dropped.
 */
export function pushAlternating<R extends string, T>(turns: Array<{ role: R; items: T[] }>, role: R, items: T[]): void {
  if (items.length === 0) return;
  const last = turns[turns.length - 1];
  if (last !== undefined && last.role === role) last.items.push(...items);
  else turns.push({ role, items });
}
