/**
 * OpenAI ingress → AWS Bedrock Converse egress (`/model/{id}/converse`, `/model/{id}/converse-stream`):
 * a Chat Completions request becomes a Converse request, and the Converse answer (JSON, or the
 * ConverseStream events — the AWS event-stream frames decoded into `{event: <type>, data: <json>}`
 * by the caller) becomes a chat.completion / chat.completion.chunk stream.
 */
import { SluiceError } from '@sluice/core';
import type { SseEvent } from '../../sse.js';
import { sseData } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { emptyUsage, usageToOpenAI } from '../../usage.js';
import type { ChatChunkDelta, ChatCompletionChunk, ChatFinishReason, ChatToolCall } from '../../wire/openai.js';
import type { StreamTranslator } from '../stream.js';
import { anthropicStopToOpenAI, badResponse, interrupted, invalidRequest, isRecord, parseEventObject, parseToolArguments, pushAlternating, stringifyOr, textOfParts, unsupported } from '../stream.js';

type Json = Record<string, unknown>;
const opt = (req: Json, key: string): unknown => (req[key] === null ? undefined : req[key]);
const IMAGE_FORMATS: Readonly<Record<string, string>> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' };


function userBlocks(content: unknown, path: string): Json[] {
  if (typeof content === 'string') return [{ text: content }];
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of parts');
  return content.map((p, i): Json => {
    if (!isRecord(p)) throw invalidRequest(`${path}[${i}]`, 'must be an object');
    if (p['type'] === 'text' && typeof p['text'] === 'string') return { text: p['text'] };
    if (p['type'] === 'image_url') {
      const url = isRecord(p['image_url']) ? p['image_url']['url'] : undefined;
      const m = typeof url === 'string' ? /^data:([^;,]+);base64,(.*)$/su.exec(url) : null;
      const format = m === null ? undefined : IMAGE_FORMATS[(m[1] as string).toLowerCase()];
      if (m === null || format === undefined) throw unsupported(`${path}[${i}]`, 'Bedrock takes images as base64 data: URLs of PNG, JPEG, GIF or WebP');
      return { image: { format, source: { bytes: m[2] } } };
    }
    throw unsupported(`${path}[${i}]`, `part type ${JSON.stringify(p['type'])} is not supported`);
  });
}

/** Chat Completions request → Converse request (the model id goes in the URL path). */
export function chatRequestToConverse(req: Json): Json {
  const n = opt(req, 'n');
  if (n !== undefined && n !== 1) throw unsupported('n', 'greater than 1 is not supported');
  if (opt(req, 'logprobs') === true) throw unsupported('logprobs', 'is not supported');
  const rf = opt(req, 'response_format');
  if (isRecord(rf) && rf['type'] !== 'text') throw unsupported('response_format', `type "${String(rf['type'])}" is not supported by Converse`);
  const messages = req['messages'];
  if (!Array.isArray(messages) || messages.length === 0) throw invalidRequest('messages', 'must be a non-empty array');
  const system: Json[] = [];
  // Converse wants user and assistant turns to alternate: consecutive ones are merged.
  const turns: Array<{ role: 'user' | 'assistant'; items: Json[] }> = [];
  const push = (role: 'user' | 'assistant', content: Json[]): void => pushAlternating(turns, role, content);
  messages.forEach((m, i) => {
    const path = `messages[${i}]`;
    if (!isRecord(m)) throw invalidRequest(path, 'must be an object');
    switch (m['role']) {
      case 'system':
      case 'developer':
        system.push({ text: textOfParts(m['content'], `${path}.content`) });
        break;
      case 'user':
        push('user', userBlocks(m['content'], `${path}.content`));
        break;
      case 'assistant': {
        const blocks: Json[] = [];
        const c = opt(m, 'content');
        if (c !== undefined) {
          const t = textOfParts(c, `${path}.content`);
          if (t !== '') blocks.push({ text: t });
        }
        const calls = opt(m, 'tool_calls');
        if (Array.isArray(calls)) {
          calls.forEach((tc, j) => {
            const fn = isRecord(tc) ? tc['function'] : undefined;
            if (!isRecord(tc) || typeof tc['id'] !== 'string' || !isRecord(fn) || typeof fn['name'] !== 'string') throw invalidRequest(`${path}.tool_calls[${j}]`, 'must have id and function.name');
            blocks.push({ toolUse: { toolUseId: tc['id'], name: fn['name'], input: parseToolArguments(fn['arguments'], `${path}.tool_calls[${j}].function.arguments`) } });
          });
        }
        push('assistant', blocks);
        break;
      }
      case 'tool': {
        if (typeof m['tool_call_id'] !== 'string') throw invalidRequest(`${path}.tool_call_id`, 'must be a string');
        push('user', [{ toolResult: { toolUseId: m['tool_call_id'], content: [{ text: textOfParts(m['content'], `${path}.content`) }], status: 'success' } }]);
        break;
      }
      default:
        throw invalidRequest(`${path}.role`, `${JSON.stringify(m['role'])} is not a known role`);
    }
  });
  if (turns.length === 0) throw invalidRequest('messages', 'has no user or assistant message');
  const out: Json = { messages: turns.map((t) => ({ role: t.role, content: t.items })) };
  if (system.length > 0) out['system'] = system;
  const inference: Json = {};
  const maxOut = opt(req, 'max_completion_tokens') ?? opt(req, 'max_tokens');
  if (maxOut !== undefined) {
    if (typeof maxOut !== 'number' || !Number.isInteger(maxOut) || maxOut < 1) throw invalidRequest('max_tokens', 'must be a positive integer');
    inference['maxTokens'] = maxOut;
  }
  for (const [from, to] of [['temperature', 'temperature'], ['top_p', 'topP']] as const) {
    const v = opt(req, from);
    if (v === undefined) continue;
    if (typeof v !== 'number') throw invalidRequest(from, 'must be a number');
    inference[to] = v;
  }
  const stop = opt(req, 'stop');
  if (stop !== undefined) inference['stopSequences'] = typeof stop === 'string' ? [stop] : stop;
  if (Object.keys(inference).length > 0) out['inferenceConfig'] = inference;
  const tools = opt(req, 'tools');
  if (Array.isArray(tools) && tools.length > 0) {
    const specs = tools.map((t, i) => {
      const fn = isRecord(t) ? t['function'] : undefined;
      if (!isRecord(t) || t['type'] !== 'function' || !isRecord(fn) || typeof fn['name'] !== 'string') throw unsupported(`tools[${i}]`, 'only function tools are supported');
      return { toolSpec: { name: fn['name'], ...(typeof fn['description'] === 'string' ? { description: fn['description'] } : {}), inputSchema: { json: fn['parameters'] ?? { type: 'object', properties: {} } } } };
    });
    const config: Json = { tools: specs };
    const choice = opt(req, 'tool_choice');
    if (choice === 'required') config['toolChoice'] = { any: {} };
    else if (isRecord(choice) && isRecord(choice['function']) && typeof choice['function']['name'] === 'string') config['toolChoice'] = { tool: { name: choice['function']['name'] } };
    else if (choice === 'none') throw unsupported('tool_choice', '"none" with tools is not supported by Converse (leave the tools out)');
    else config['toolChoice'] = { auto: {} };
    out['toolConfig'] = config;
  }
  return out;
}

/** Normalised usage from a Converse `usage` object (its input count excludes cache reads and writes). */
export function usageFromConverse(u: unknown): Usage | undefined {
  if (!isRecord(u)) return undefined;
  const int = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0);
  const read = int(u['cacheReadInputTokens']);
  const written = int(u['cacheWriteInputTokens']);
  return { inputTokens: int(u['inputTokens']) + read + written, cachedInputTokens: read, cacheWriteTokens: written, outputTokens: int(u['outputTokens']), reasoningTokens: 0 };
}

/** Converse stop reasons are Anthropic's, plus its guardrail and content-filter stops. */
function finishOf(reason: unknown): ChatFinishReason {
  return reason === 'guardrail_intervened' || reason === 'content_filtered' ? 'content_filter' : anthropicStopToOpenAI(reason);
}

/** A Converse exception (`{message}` with its type) as a stable gateway error. */
export function converseError(type: string, payload: unknown): SluiceError {
  const message = isRecord(payload) && typeof payload['message'] === 'string' ? payload['message'] : type;
  if (type === 'throttlingException') return new SluiceError('SLUICE_ERR_UPSTREAM_RATE_LIMITED', message);
  if (type === 'serviceUnavailableException' || type === 'modelNotReadyException') return new SluiceError('SLUICE_ERR_UPSTREAM_OVERLOADED', message);
  return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', `${type}: ${message}`);
}

/** Converse response → chat.completion. */
export function converseResponseToChat(res: unknown, ctx: { model: string; id: string; created: number }): { body: Json; usage: Usage | undefined } {
  if (!isRecord(res)) throw badResponse('the answer is not an object');
  const output = res['output'];
  const message = isRecord(output) && isRecord(output['message']) ? output['message'] : undefined;
  if (message === undefined) throw badResponse('the Converse answer has no output.message');
  let content = '';
  const calls: ChatToolCall[] = [];
  for (const b of Array.isArray(message['content']) ? message['content'] : []) {
    if (!isRecord(b)) continue;
    if (typeof b['text'] === 'string') content += b['text'];
    const tu = b['toolUse'];
    if (isRecord(tu) && typeof tu['toolUseId'] === 'string' && typeof tu['name'] === 'string') calls.push({ id: tu['toolUseId'], type: 'function', function: { name: tu['name'], arguments: stringifyOr(tu['input'] ?? {}, () => badResponse('toolUse input is not JSON')) } });
  }
  const usage = usageFromConverse(res['usage']);
  const msg: Json = { role: 'assistant', content: content === '' && calls.length > 0 ? null : content, refusal: null };
  if (calls.length > 0) msg['tool_calls'] = calls;
  return { body: { id: ctx.id, object: 'chat.completion', created: ctx.created, model: ctx.model, choices: [{ index: 0, message: msg, logprobs: null, finish_reason: finishOf(res['stopReason']) }], usage: usageToOpenAI(usage ?? emptyUsage()) }, usage };
}

/** ConverseStream events (`event` = the frame's :event-type, `data` = its JSON payload) → chat.completion.chunk SSE. */
export function createConverseStreamToChat(ctx: { model: string; id: string; created: number; includeUsage: boolean }): StreamTranslator {
  let usage: Usage | undefined;
  let finish: ChatFinishReason | undefined;
  let stopped = false;
  let done = false;
  /** contentBlockIndex → tool call index. */
  const tools = new Map<number, number>();
  const chunk = (delta: ChatChunkDelta, reason: ChatFinishReason | null = null): string => {
    const c: ChatCompletionChunk = { id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model: ctx.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: reason }] };
    if (ctx.includeUsage) c.usage = null;
    return sseData(c);
  };
  const close = (): string => {
    done = true;
    let out = chunk({}, finish ?? 'stop');
    if (ctx.includeUsage) out += sseData({ id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model: ctx.model, choices: [], usage: usageToOpenAI(usage ?? emptyUsage()) });
    return `${out}data: [DONE]\n\n`;
  };
  return {
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    push(ev: SseEvent): string {
      if (done) return '';
      const type = ev.event ?? '';
      const data = parseEventObject(ev);
      switch (type) {
        case 'messageStart':
          return chunk({ role: 'assistant', content: '' });
        case 'contentBlockStart': {
          const start = isRecord(data['start']) ? data['start']['toolUse'] : undefined;
          const index = data['contentBlockIndex'];
          if (!isRecord(start) || typeof index !== 'number') return '';
          if (typeof start['toolUseId'] !== 'string' || typeof start['name'] !== 'string') throw badResponse('toolUse start without id or name');
          const n = tools.size;
          tools.set(index, n);
          return chunk({ tool_calls: [{ index: n, id: start['toolUseId'], type: 'function', function: { name: start['name'], arguments: '' } }] });
        }
        case 'contentBlockDelta': {
          const delta = isRecord(data['delta']) ? data['delta'] : {};
          if (typeof delta['text'] === 'string') return delta['text'] === '' ? '' : chunk({ content: delta['text'] });
          const tu = delta['toolUse'];
          const n = typeof data['contentBlockIndex'] === 'number' ? tools.get(data['contentBlockIndex']) : undefined;
          if (isRecord(tu) && typeof tu['input'] === 'string' && n !== undefined && tu['input'] !== '') return chunk({ tool_calls: [{ index: n, function: { arguments: tu['input'] } }] });
          return '';
        }
        case 'contentBlockStop':
          return '';
        case 'messageStop':
          finish = finishOf(data['stopReason']);
          stopped = true;
          return '';
        case 'metadata': {
          const u = usageFromConverse(data['usage']);
          if (u !== undefined) usage = u;
          return stopped ? close() : '';
        }
        default:
          // Exception frames arrive as `exception:<type>`; event types added later are ignored.
          if (type.startsWith('exception:')) throw converseError(type.slice(10), data);
          return '';
      }
    },
    end(): string {
      if (done) return '';
      if (!stopped) throw interrupted('messageStop');
      return close();
    },
  };
}
