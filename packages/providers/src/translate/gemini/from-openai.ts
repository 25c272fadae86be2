/**
 * OpenAI ingress → Google Gemini egress (Gemini API `generateContent` / `streamGenerateContent`, the
 * same body on Vertex AI): a Chat Completions request becomes a GenerateContentRequest, and the
 * Gemini answer (JSON, or the `alt=sse` stream of GenerateContentResponse chunks) becomes a
 * chat.completion / chat.completion.chunk stream.
 */
import { SluiceError } from '@sluice/core';
import type { SseEvent } from '../../sse.js';
import { sseData } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { emptyUsage, usageToOpenAI } from '../../usage.js';
import type { ChatChunkDelta, ChatCompletionChunk, ChatFinishReason, ChatToolCall } from '../../wire/openai.js';
import type { StreamTranslator } from '../stream.js';
import { badResponse, interrupted, invalidRequest, isRecord, parseEventObject, parseToolArguments, pushAlternating, stringifyOr, textOfParts, unsupported } from '../stream.js';

type Json = Record<string, unknown>;

interface Content {
  role: 'user' | 'model';
  parts: Json[];
}

const opt = (req: Json, key: string): unknown => (req[key] === null ? undefined : req[key]);

/** JSON-Schema keywords Gemini's `parameters` / `responseSchema` (an OpenAPI subset) refuse. */
const SCHEMA_DROP = new Set(['$schema', 'additionalProperties', 'strict', '$id', '$defs', 'definitions', 'examples', 'default']);

function geminiSchema(v: unknown, depth = 0): unknown {
  if (depth > 32) throw invalidRequest('tools', 'schema is nested too deeply');
  if (Array.isArray(v)) return v.map((x) => geminiSchema(x, depth + 1));
  if (!isRecord(v)) return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) if (!SCHEMA_DROP.has(k)) out[k] = geminiSchema(x, depth + 1);
  return out;
}


/** A data: URL as inline data; an http(s) URL as file data (its type guessed from the extension). */
function imagePart(url: unknown, path: string): Json {
  if (typeof url !== 'string') throw invalidRequest(path, 'image_url.url must be a string');
  const data = /^data:([^;,]+);base64,(.*)$/su.exec(url);
  if (data !== null) return { inlineData: { mimeType: data[1], data: data[2] } };
  if (/^https?:\/\//u.test(url)) {
    const ext = /\.(png|jpe?g|webp|gif|heic|heif)(?:\?|$)/iu.exec(url)?.[1]?.toLowerCase();
    const mime = ext === undefined ? undefined : ext === 'jpg' ? 'image/jpeg' : `image/${ext}`;
    if (mime === undefined) throw unsupported(path, 'an image URL without a known image extension (Gemini needs its type); send it as a data: URL');
    return { fileData: { mimeType: mime, fileUri: url } };
  }
  throw invalidRequest(path, 'image_url.url must be a data: or http(s) URL');
}

function userParts(content: unknown, path: string): Json[] {
  if (typeof content === 'string') return [{ text: content }];
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of parts');
  return content.map((p, i) => {
    if (!isRecord(p)) throw invalidRequest(`${path}[${i}]`, 'must be an object');
    if (p['type'] === 'text') {
      if (typeof p['text'] !== 'string') throw invalidRequest(`${path}[${i}].text`, 'must be a string');
      return { text: p['text'] };
    }
    if (p['type'] === 'image_url') return imagePart(isRecord(p['image_url']) ? p['image_url']['url'] : undefined, `${path}[${i}]`);
    throw unsupported(`${path}[${i}]`, `part type ${JSON.stringify(p['type'])} is not supported`);
  });
}


/** Chat Completions request → GenerateContentRequest (the model goes in the URL path). */
export function chatRequestToGemini(req: Json): Json {
  const n = opt(req, 'n');
  if (n !== undefined && n !== 1) throw unsupported('n', 'greater than 1 is not supported');
  if (opt(req, 'logprobs') === true) throw unsupported('logprobs', 'is not supported');
  const messages = req['messages'];
  if (!Array.isArray(messages) || messages.length === 0) throw invalidRequest('messages', 'must be a non-empty array');
  const system: string[] = [];
  // Gemini wants user and model turns to alternate: consecutive turns of one role are merged.
  const turns: Array<{ role: Content['role']; items: Json[] }> = [];
  /** tool_call_id → function name, for the function responses that answer them. */
  const callNames = new Map<string, string>();
  const push = (role: Content['role'], parts: Json[]): void => pushAlternating(turns, role, parts);
  messages.forEach((m, i) => {
    const path = `messages[${i}]`;
    if (!isRecord(m)) throw invalidRequest(path, 'must be an object');
    switch (m['role']) {
      case 'system':
      case 'developer':
        system.push(textOfParts(m['content'], `${path}.content`));
        break;
      case 'user':
        push('user', userParts(m['content'], `${path}.content`));
        break;
      case 'assistant': {
        const parts: Json[] = [];
        const c = opt(m, 'content');
        if (c !== undefined) {
          const t = textOfParts(c, `${path}.content`);
          if (t !== '') parts.push({ text: t });
        }
        const calls = opt(m, 'tool_calls');
        if (calls !== undefined) {
          if (!Array.isArray(calls)) throw invalidRequest(`${path}.tool_calls`, 'must be an array');
          calls.forEach((tc, j) => {
            const fn = isRecord(tc) ? tc['function'] : undefined;
            if (!isRecord(tc) || !isRecord(fn) || typeof fn['name'] !== 'string') throw invalidRequest(`${path}.tool_calls[${j}]`, 'must have function.name');
            if (typeof tc['id'] === 'string') callNames.set(tc['id'], fn['name']);
            parts.push({ functionCall: { name: fn['name'], args: parseToolArguments(fn['arguments'], `${path}.tool_calls[${j}].function.arguments`) } });
          });
        }
        push('model', parts);
        break;
      }
      case 'tool': {
        const id = m['tool_call_id'];
        const name = typeof id === 'string' ? callNames.get(id) : undefined;
        if (name === undefined) throw invalidRequest(`${path}.tool_call_id`, 'names no tool call of an earlier assistant message');
        const text = textOfParts(m['content'], `${path}.content`);
        let response: unknown;
        try {
          response = JSON.parse(text);
        } catch {
          response = undefined;
        }
        push('user', [{ functionResponse: { name, response: isRecord(response) ? response : { content: text } } }]);
        break;
      }
      default:
        throw invalidRequest(`${path}.role`, `${JSON.stringify(m['role'])} is not a known role`);
    }
  });
  if (turns.length === 0) throw invalidRequest('messages', 'has no user or assistant message');
  const contents: Content[] = turns.map((t) => ({ role: t.role, parts: t.items }));

  const out: Json = { contents };
  if (system.length > 0) out['systemInstruction'] = { parts: [{ text: system.join('\n\n') }] };
  const tools = opt(req, 'tools');
  if (tools !== undefined) {
    if (!Array.isArray(tools)) throw invalidRequest('tools', 'must be an array');
    const decls = tools.map((t, i) => {
      const fn = isRecord(t) ? t['function'] : undefined;
      if (!isRecord(t) || t['type'] !== 'function' || !isRecord(fn) || typeof fn['name'] !== 'string') throw unsupported(`tools[${i}]`, 'only function tools are supported');
      const d: Json = { name: fn['name'] };
      if (typeof fn['description'] === 'string') d['description'] = fn['description'];
      if (fn['parameters'] !== undefined) d['parameters'] = geminiSchema(fn['parameters']);
      return d;
    });
    if (decls.length > 0) out['tools'] = [{ functionDeclarations: decls }];
  }
  const choice = opt(req, 'tool_choice');
  if (choice !== undefined) {
    let config: Json;
    if (choice === 'auto') config = { mode: 'AUTO' };
    else if (choice === 'none') config = { mode: 'NONE' };
    else if (choice === 'required') config = { mode: 'ANY' };
    else if (isRecord(choice) && isRecord(choice['function']) && typeof choice['function']['name'] === 'string') config = { mode: 'ANY', allowedFunctionNames: [choice['function']['name']] };
    else throw invalidRequest('tool_choice', 'must be auto, none, required or a function');
    out['toolConfig'] = { functionCallingConfig: config };
  }
  const gen: Json = {};
  const num = (key: string, to: string): void => {
    const v = opt(req, key);
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(key, 'must be a number');
    gen[to] = v;
  };
  num('temperature', 'temperature');
  num('top_p', 'topP');
  num('presence_penalty', 'presencePenalty');
  num('frequency_penalty', 'frequencyPenalty');
  num('seed', 'seed');
  const maxOut = opt(req, 'max_completion_tokens') ?? opt(req, 'max_tokens');
  if (maxOut !== undefined) {
    if (typeof maxOut !== 'number' || !Number.isInteger(maxOut) || maxOut < 1) throw invalidRequest('max_tokens', 'must be a positive integer');
    gen['maxOutputTokens'] = maxOut;
  }
  const stop = opt(req, 'stop');
  if (stop !== undefined) {
    const list = typeof stop === 'string' ? [stop] : stop;
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) throw invalidRequest('stop', 'must be a string or an array of strings');
    if (list.length > 0) gen['stopSequences'] = list;
  }
  const rf = opt(req, 'response_format');
  if (rf !== undefined) {
    if (!isRecord(rf) || typeof rf['type'] !== 'string') throw invalidRequest('response_format', 'must be an object with a type');
    if (rf['type'] === 'json_object') gen['responseMimeType'] = 'application/json';
    else if (rf['type'] === 'json_schema') {
      const js = rf['json_schema'];
      if (!isRecord(js) || !isRecord(js['schema'])) throw invalidRequest('response_format.json_schema', 'must have a schema');
      gen['responseMimeType'] = 'application/json';
      gen['responseSchema'] = geminiSchema(js['schema']);
    } else if (rf['type'] !== 'text') throw unsupported('response_format', `type "${rf['type']}" is not supported`);
  }
  if (Object.keys(gen).length > 0) out['generationConfig'] = gen;
  return out;
}

/** Normalised usage from Gemini's `usageMetadata` (thinking tokens are billed as output). */
export function usageFromGemini(u: unknown): Usage | undefined {
  if (!isRecord(u)) return undefined;
  const int = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0);
  const thoughts = int(u['thoughtsTokenCount']);
  return {
    inputTokens: int(u['promptTokenCount']) + int(u['toolUsePromptTokenCount']),
    cachedInputTokens: int(u['cachedContentTokenCount']),
    cacheWriteTokens: 0,
    outputTokens: int(u['candidatesTokenCount']) + thoughts,
    reasoningTokens: thoughts,
  };
}

/** The OpenAI finish_reason for a Gemini finishReason. */
export function geminiFinishToOpenAI(reason: unknown, calledTools: boolean): ChatFinishReason {
  switch (reason) {
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
      return 'content_filter';
    default:
      return calledTools ? 'tool_calls' : 'stop';
  }
}

/** Text and tool calls of a candidate's parts (thought summaries left out). */
function readParts(candidate: unknown, nextCall: () => string): { text: string; calls: ChatToolCall[] } {
  const content = isRecord(candidate) ? candidate['content'] : undefined;
  const parts = isRecord(content) && Array.isArray(content['parts']) ? content['parts'] : [];
  let text = '';
  const calls: ChatToolCall[] = [];
  for (const p of parts) {
    if (!isRecord(p) || p['thought'] === true) continue;
    if (typeof p['text'] === 'string') text += p['text'];
    const fc = p['functionCall'];
    if (isRecord(fc)) {
      if (typeof fc['name'] !== 'string') throw badResponse('functionCall without a name');
      const id = typeof fc['id'] === 'string' && fc['id'] !== '' ? fc['id'] : nextCall();
      calls.push({ id, type: 'function', function: { name: fc['name'], arguments: stringifyOr(fc['args'] ?? {}, () => badResponse('functionCall args are not JSON')) } });
    }
  }
  return { text, calls };
}

/** An error body in a Gemini answer (`{"error": {code, message, status}}`), as a stable gateway error. */
function geminiError(e: unknown): SluiceError {
  const err = isRecord(e) ? e : {};
  const message = typeof err['message'] === 'string' ? err['message'] : 'Provider error';
  if (err['status'] === 'RESOURCE_EXHAUSTED' || err['code'] === 429) return new SluiceError('SLUICE_ERR_UPSTREAM_RATE_LIMITED', message);
  if (err['status'] === 'UNAVAILABLE' || err['code'] === 503) return new SluiceError('SLUICE_ERR_UPSTREAM_OVERLOADED', message);
  return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', message);
}

/** GenerateContentResponse → chat.completion. */
export function geminiResponseToChat(res: unknown, ctx: { model: string; id: string; created: number }): { body: Json; usage: Usage | undefined } {
  if (!isRecord(res)) throw badResponse('the answer is not an object');
  if (res['error'] !== undefined) throw geminiError(res['error']);
  const candidates = res['candidates'];
  const first: unknown = Array.isArray(candidates) ? candidates[0] : undefined;
  let n = 0;
  const { text, calls } = readParts(first, () => `call_${ctx.id}_${n++}`);
  // No candidate: the prompt itself was blocked (promptFeedback.blockReason).
  const finish = first === undefined ? 'content_filter' : geminiFinishToOpenAI(isRecord(first) ? first['finishReason'] : undefined, calls.length > 0);
  const usage = usageFromGemini(res['usageMetadata']);
  const message: Json = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, refusal: null };
  if (calls.length > 0) message['tool_calls'] = calls;
  const model = typeof res['modelVersion'] === 'string' && res['modelVersion'] !== '' ? res['modelVersion'] : ctx.model;
  return {
    body: { id: ctx.id, object: 'chat.completion', created: ctx.created, model, choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage: usageToOpenAI(usage ?? emptyUsage()) },
    usage,
  };
}

/** The `alt=sse` stream of GenerateContentResponse chunks → chat.completion.chunk SSE. */
export function createGeminiStreamToChat(ctx: { model: string; id: string; created: number; includeUsage: boolean }): StreamTranslator {
  let usage: Usage | undefined;
  let model = ctx.model;
  let started = false;
  let finish: ChatFinishReason | undefined;
  let done = false;
  let calls = 0;
  const chunk = (delta: ChatChunkDelta, reason: ChatFinishReason | null = null): string => {
    const c: ChatCompletionChunk = { id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: reason }] };
    if (ctx.includeUsage) c.usage = null;
    return sseData(c);
  };
  const closing = (): string => {
    done = true;
    let out = chunk({}, finish ?? 'stop');
    if (ctx.includeUsage) {
      const final: ChatCompletionChunk = { id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model, choices: [], usage: usageToOpenAI(usage ?? emptyUsage()) as unknown as NonNullable<ChatCompletionChunk['usage']> };
      out += sseData(final);
    }
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
      if (done || ev.data === '') return '';
      const data = parseEventObject(ev);
      if (data['error'] !== undefined) throw geminiError(data['error']);
      if (typeof data['modelVersion'] === 'string' && data['modelVersion'] !== '') model = data['modelVersion'];
      const u = usageFromGemini(data['usageMetadata']);
      if (u !== undefined) usage = u;
      let out = '';
      if (!started) {
        started = true;
        out += chunk({ role: 'assistant', content: '' });
      }
      const candidates = data['candidates'];
      const first: unknown = Array.isArray(candidates) ? candidates[0] : undefined;
      const { text, calls: fcs } = readParts(first, () => `call_${ctx.id}_${calls}`);
      if (text !== '') out += chunk({ content: text });
      for (const c of fcs) {
        // Gemini sends each function call whole: one delta with its name and arguments.
        out += chunk({ tool_calls: [{ index: calls++, id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }] });
      }
      const reason = isRecord(first) ? first['finishReason'] : undefined;
      if (typeof reason === 'string' && reason !== '' && reason !== 'FINISH_REASON_UNSPECIFIED') finish = geminiFinishToOpenAI(reason, calls > 0);
      else if (first === undefined && isRecord(data['promptFeedback']) && data['promptFeedback']['blockReason'] !== undefined) finish = 'content_filter';
      return out;
    },
    end(): string {
      if (done) return '';
      // The stream has no terminal marker: a finish reason seen means it completed.
      if (finish === undefined) throw interrupted('a finish reason');
      return closing();
    },
  };
}
