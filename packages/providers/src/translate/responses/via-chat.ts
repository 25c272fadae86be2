/**
 * OpenAI Responses API ingress (`POST /v1/responses`) through the Chat Completions form: a Responses
 * request becomes a Chat Completions request (which then reaches any backend the usual way), and the
 * chat answer — JSON, or the chat.completion.chunk stream — becomes a Response object or the
 * Responses streaming events (`response.created` … `response.completed`). Stateless: requests that
 * need the provider's stored conversation (`previous_response_id`) or its built-in tools are refused.
 */
import type { SseEvent } from '../../sse.js';
import { sseNamed } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { emptyUsage, usageFromOpenAI } from '../../usage.js';
import type { StreamTranslator } from '../stream.js';
import { badResponse, interrupted, invalidRequest, isRecord, parseEventObject, unsupported } from '../stream.js';

type Json = Record<string, unknown>;
const opt = (req: Json, key: string): unknown => (req[key] === null ? undefined : req[key]);

function contentParts(content: unknown, path: string, role: string): string | Json[] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of content parts');
  const parts = content.map((p, i): Json => {
    if (!isRecord(p)) throw invalidRequest(`${path}[${i}]`, 'must be an object');
    switch (p['type']) {
      case 'input_text':
      case 'output_text':
      case 'text':
        if (typeof p['text'] !== 'string') throw invalidRequest(`${path}[${i}].text`, 'must be a string');
        return { type: 'text', text: p['text'] };
      case 'input_image': {
        if (typeof p['image_url'] !== 'string') throw unsupported(`${path}[${i}]`, 'images by file_id are not supported; send image_url');
        const detail = p['detail'];
        return { type: 'image_url', image_url: detail === 'low' || detail === 'high' || detail === 'auto' ? { url: p['image_url'], detail } : { url: p['image_url'] } };
      }
      default:
        throw unsupported(`${path}[${i}]`, `content type ${JSON.stringify(p['type'])} is not supported`);
    }
  });
  // Assistant turns and system prompts are text in Chat Completions.
  if (role !== 'user') return parts.map((p) => (p['type'] === 'text' ? (p['text'] as string) : '')).join('');
  return parts;
}

/** A Responses request → a Chat Completions request (usage always asked for, to fill `usage`). */
export function responsesRequestToChat(req: Json): Json {
  if (opt(req, 'previous_response_id') !== undefined) throw unsupported('previous_response_id', 'needs the provider to keep the conversation; send the whole conversation in input');
  if (opt(req, 'conversation') !== undefined) throw unsupported('conversation', 'needs the provider to keep the conversation; send the whole conversation in input');
  if (opt(req, 'background') === true) throw unsupported('background', 'is not supported');
  const messages: Json[] = [];
  const instructions = opt(req, 'instructions');
  if (instructions !== undefined) {
    if (typeof instructions !== 'string') throw invalidRequest('instructions', 'must be a string');
    messages.push({ role: 'system', content: instructions });
  }
  const input = req['input'];
  if (typeof input === 'string') messages.push({ role: 'user', content: input });
  else if (Array.isArray(input)) {
    input.forEach((item, i) => {
      const path = `input[${i}]`;
      if (!isRecord(item)) throw invalidRequest(path, 'must be an object');
      const type = item['type'] ?? (item['role'] !== undefined ? 'message' : undefined);
      switch (type) {
        case 'message': {
          const role = item['role'];
          if (role !== 'user' && role !== 'assistant' && role !== 'system' && role !== 'developer') throw invalidRequest(`${path}.role`, 'must be user, assistant, system or developer');
          messages.push({ role, content: contentParts(item['content'], `${path}.content`, role) });
          break;
        }
        case 'function_call': {
          const { call_id: id, name, arguments: args } = item;
          if (typeof id !== 'string' || typeof name !== 'string') throw invalidRequest(path, 'a function_call needs call_id and name');
          const call = { id, type: 'function', function: { name, arguments: typeof args === 'string' ? args : '{}' } };
          const last = messages[messages.length - 1];
          // Parallel calls are consecutive items: one assistant message with several tool calls.
          if (last !== undefined && last['role'] === 'assistant' && Array.isArray(last['tool_calls'])) (last['tool_calls'] as unknown[]).push(call);
          else if (last !== undefined && last['role'] === 'assistant' && last['tool_calls'] === undefined) last['tool_calls'] = [call];
          else messages.push({ role: 'assistant', content: null, tool_calls: [call] });
          break;
        }
        case 'function_call_output': {
          const { call_id: id, output } = item;
          if (typeof id !== 'string') throw invalidRequest(`${path}.call_id`, 'must be a string');
          messages.push({ role: 'tool', tool_call_id: id, content: typeof output === 'string' ? output : JSON.stringify(output ?? '') });
          break;
        }
        case 'reasoning':
          // The provider's own reasoning items do not cross to another model.
          break;
        default:
          throw unsupported(path, `input item type ${JSON.stringify(type)} is not supported`);
      }
    });
  } else throw invalidRequest('input', 'must be a string or an array of input items');
  if (!messages.some((m) => m['role'] === 'user' || m['role'] === 'tool')) throw invalidRequest('input', 'has no user input');

  const out: Json = { model: req['model'], messages };
  const tools = opt(req, 'tools');
  if (tools !== undefined) {
    if (!Array.isArray(tools)) throw invalidRequest('tools', 'must be an array');
    out['tools'] = tools.map((t, i) => {
      if (!isRecord(t) || t['type'] !== 'function' || typeof t['name'] !== 'string') throw unsupported(`tools[${i}]`, 'only function tools are supported (built-in tools need the OpenAI Responses API itself)');
      const fn: Json = { name: t['name'] };
      if (typeof t['description'] === 'string') fn['description'] = t['description'];
      if (t['parameters'] !== undefined) fn['parameters'] = t['parameters'];
      if (typeof t['strict'] === 'boolean') fn['strict'] = t['strict'];
      return { type: 'function', function: fn };
    });
  }
  const choice = opt(req, 'tool_choice');
  if (choice !== undefined) {
    if (choice === 'auto' || choice === 'none' || choice === 'required') out['tool_choice'] = choice;
    else if (isRecord(choice) && choice['type'] === 'function' && typeof choice['name'] === 'string') out['tool_choice'] = { type: 'function', function: { name: choice['name'] } };
    else throw unsupported('tool_choice', 'only auto, none, required or a function are supported');
  }
  for (const k of ['temperature', 'top_p', 'parallel_tool_calls', 'user']) if (opt(req, k) !== undefined) out[k] = req[k];
  const maxOut = opt(req, 'max_output_tokens');
  if (maxOut !== undefined) out['max_completion_tokens'] = maxOut;
  const reasoning = opt(req, 'reasoning');
  if (isRecord(reasoning) && typeof reasoning['effort'] === 'string') out['reasoning_effort'] = reasoning['effort'];
  const text = opt(req, 'text');
  const format = isRecord(text) ? text['format'] : undefined;
  if (isRecord(format)) {
    if (format['type'] === 'json_object') out['response_format'] = { type: 'json_object' };
    else if (format['type'] === 'json_schema') out['response_format'] = { type: 'json_schema', json_schema: { name: format['name'] ?? 'response', schema: format['schema'], ...(typeof format['strict'] === 'boolean' ? { strict: format['strict'] } : {}) } };
    else if (format['type'] !== 'text') throw unsupported('text.format', `type ${JSON.stringify(format['type'])} is not supported`);
  }
  if (opt(req, 'stream') === true) {
    out['stream'] = true;
    out['stream_options'] = { include_usage: true };
  }
  return out;
}

/** The Responses `usage` object for a normalised usage. */
function responsesUsage(u: Usage): Json {
  return { input_tokens: u.inputTokens, input_tokens_details: { cached_tokens: u.cachedInputTokens }, output_tokens: u.outputTokens, output_tokens_details: { reasoning_tokens: u.reasoningTokens }, total_tokens: u.inputTokens + u.outputTokens };
}

export interface ResponsesContext {
  /** `resp_…`. */
  readonly id: string;
  readonly createdAt: number;
  readonly model: string;
  /** The caller's request, whose settings the Response object repeats. */
  readonly request: Json;
}

function shell(ctx: ResponsesContext, model: string): Json {
  const r = ctx.request;
  const format = isRecord(r['text']) && isRecord(r['text']['format']) ? r['text']['format'] : { type: 'text' };
  return {
    id: ctx.id,
    object: 'response',
    created_at: ctx.createdAt,
    status: 'in_progress',
    error: null,
    incomplete_details: null,
    instructions: typeof r['instructions'] === 'string' ? r['instructions'] : null,
    max_output_tokens: typeof r['max_output_tokens'] === 'number' ? r['max_output_tokens'] : null,
    model,
    output: [],
    parallel_tool_calls: r['parallel_tool_calls'] !== false,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: typeof r['temperature'] === 'number' ? r['temperature'] : 1,
    text: { format },
    tool_choice: r['tool_choice'] ?? 'auto',
    tools: Array.isArray(r['tools']) ? r['tools'] : [],
    top_p: typeof r['top_p'] === 'number' ? r['top_p'] : 1,
    truncation: 'disabled',
    usage: null,
    user: typeof r['user'] === 'string' ? r['user'] : null,
    metadata: isRecord(r['metadata']) ? r['metadata'] : {},
  };
}

/** Status and incomplete_details for a chat finish_reason. */
function ending(finish: unknown): { status: string; incomplete_details: Json | null } {
  if (finish === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (finish === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

/** A chat.completion → a Response object. */
export function chatResponseToResponses(chat: unknown, ctx: ResponsesContext): { body: Json; usage: Usage | undefined } {
  if (!isRecord(chat)) throw badResponse('the chat answer is not an object');
  const choice: unknown = Array.isArray(chat['choices']) ? chat['choices'][0] : undefined;
  const message = isRecord(choice) && isRecord(choice['message']) ? choice['message'] : {};
  const output: Json[] = [];
  const text = typeof message['content'] === 'string' ? message['content'] : '';
  if (text !== '' || !Array.isArray(message['tool_calls'])) {
    output.push({ type: 'message', id: `msg_${ctx.id.slice(5)}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] });
  }
  if (Array.isArray(message['tool_calls'])) {
    message['tool_calls'].forEach((tc, i) => {
      const fn = isRecord(tc) ? tc['function'] : undefined;
      if (!isRecord(tc) || !isRecord(fn)) return;
      output.push({ type: 'function_call', id: `fc_${ctx.id.slice(5)}_${i}`, call_id: tc['id'], name: fn['name'], arguments: typeof fn['arguments'] === 'string' ? fn['arguments'] : '{}', status: 'completed' });
    });
  }
  const usage = usageFromOpenAI(chat['usage']);
  const model = typeof chat['model'] === 'string' && chat['model'] !== '' ? chat['model'] : ctx.model;
  return { body: { ...shell(ctx, model), ...ending(isRecord(choice) ? choice['finish_reason'] : undefined), output, usage: responsesUsage(usage ?? emptyUsage()) }, usage };
}

interface OpenItem {
  readonly item: Json;
  readonly outputIndex: number;
  text: string;
  args: string;
}

/** The chat.completion.chunk stream → the Responses streaming events. */
export function createChatStreamToResponses(ctx: ResponsesContext): StreamTranslator {
  let seq = 0;
  let model = ctx.model;
  let started = false;
  let done = false;
  let finish: unknown;
  let usage: Usage | undefined;
  let message: OpenItem | undefined;
  const calls = new Map<number, OpenItem>();
  const output: Json[] = [];
  const ev = (type: string, data: Json): string => sseNamed(type, { type, sequence_number: seq++, ...data });
  const start = (): string => {
    if (started) return '';
    started = true;
    const r = shell(ctx, model);
    return ev('response.created', { response: r }) + ev('response.in_progress', { response: r });
  };
  const closeMessage = (): string => {
    if (message === undefined) return '';
    const m = message;
    message = undefined;
    const part = { type: 'output_text', text: m.text, annotations: [], logprobs: [] };
    const item = { ...m.item, status: 'completed', content: [part] };
    output[m.outputIndex] = item;
    return (
      ev('response.output_text.done', { item_id: m.item['id'], output_index: m.outputIndex, content_index: 0, text: m.text, logprobs: [] }) +
      ev('response.content_part.done', { item_id: m.item['id'], output_index: m.outputIndex, content_index: 0, part }) +
      ev('response.output_item.done', { output_index: m.outputIndex, item })
    );
  };
  const closeCalls = (): string => {
    let out = '';
    for (const c of calls.values()) {
      const item = { ...c.item, arguments: c.args, status: 'completed' };
      output[c.outputIndex] = item;
      out += ev('response.function_call_arguments.done', { item_id: c.item['id'], output_index: c.outputIndex, arguments: c.args }) + ev('response.output_item.done', { output_index: c.outputIndex, item });
    }
    calls.clear();
    return out;
  };
  const complete = (): string => {
    done = true;
    let out = start() + closeMessage() + closeCalls();
    const end = ending(finish);
    const response = { ...shell(ctx, model), ...end, output: output.filter((o) => o !== undefined), usage: responsesUsage(usage ?? emptyUsage()) };
    out += ev(end.status === 'completed' ? 'response.completed' : 'response.incomplete', { response });
    return out;
  };
  return {
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    push(e: SseEvent): string {
      if (done || e.data === '') return '';
      if (e.data === '[DONE]') return complete();
      const data = parseEventObject(e);
      if (typeof data['model'] === 'string' && data['model'] !== '') model = data['model'];
      const u = usageFromOpenAI(data['usage']);
      if (u !== undefined) usage = u;
      let out = start();
      const choice: unknown = Array.isArray(data['choices']) ? data['choices'][0] : undefined;
      if (!isRecord(choice)) return out;
      const delta = isRecord(choice['delta']) ? choice['delta'] : {};
      if (typeof delta['content'] === 'string' && delta['content'] !== '') {
        if (message === undefined) {
          const outputIndex = output.length;
          const item = { id: `msg_${ctx.id.slice(5)}`, type: 'message', status: 'in_progress', role: 'assistant', content: [] };
          output.push(item);
          message = { item, outputIndex, text: '', args: '' };
          out += ev('response.output_item.added', { output_index: outputIndex, item }) + ev('response.content_part.added', { item_id: item.id, output_index: outputIndex, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
        }
        message.text += delta['content'];
        out += ev('response.output_text.delta', { item_id: message.item['id'], output_index: message.outputIndex, content_index: 0, delta: delta['content'], logprobs: [] });
      }
      if (Array.isArray(delta['tool_calls'])) {
        for (const tc of delta['tool_calls']) {
          if (!isRecord(tc) || typeof tc['index'] !== 'number') throw badResponse('tool call delta without an index');
          const fn = isRecord(tc['function']) ? tc['function'] : {};
          let c = calls.get(tc['index']);
          if (c === undefined) {
            out += closeMessage();
            if (typeof tc['id'] !== 'string' || typeof fn['name'] !== 'string') throw badResponse('first tool call delta without id and name');
            const outputIndex = output.length;
            const item = { id: `fc_${ctx.id.slice(5)}_${tc['index']}`, type: 'function_call', status: 'in_progress', call_id: tc['id'], name: fn['name'], arguments: '' };
            output.push(item);
            c = { item, outputIndex, text: '', args: '' };
            calls.set(tc['index'], c);
            out += ev('response.output_item.added', { output_index: outputIndex, item });
          }
          if (typeof fn['arguments'] === 'string' && fn['arguments'] !== '') {
            c.args += fn['arguments'];
            out += ev('response.function_call_arguments.delta', { item_id: c.item['id'], output_index: c.outputIndex, delta: fn['arguments'] });
          }
        }
      }
      if (choice['finish_reason'] !== null && choice['finish_reason'] !== undefined) finish = choice['finish_reason'];
      return out;
    },
    end(): string {
      if (done) return '';
      if (finish === undefined) throw interrupted('its end');
      return complete();
    },
  };
}
