/**
 * OpenAI ingress → Anthropic egress: a Chat Completions request becomes a Messages request, and the
 * Anthropic response (JSON or SSE stream) becomes a chat.completion / chat.completion.chunk stream.
 */
import type { SseEvent } from '../../sse.js';
import { sseData } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { emptyUsage, usageFromAnthropic, usageToOpenAI } from '../../usage.js';
import type { ChatChunkDelta, ChatCompletion, ChatCompletionChunk, ChatFinishReason, ChatToolCall } from '../../wire/openai.js';
import type { StreamTranslator } from '../stream.js';
import {
  AnthropicUsageTracker,
  anthropicError,
  anthropicErrorEvent,
  anthropicStopToOpenAI,
  badResponse,
  interrupted,
  invalidRequest,
  isRecord,
  parseEventObject,
  stringifyOr,
  unsupported,
} from '../stream.js';

type Block = Record<string, unknown>;

interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}

const SYSTEM_SEPARATOR = '\n\n';

/** Value of `req[key]`, with JSON null read as absent. */
function opt(req: Record<string, unknown>, key: string): unknown {
  const v = req[key];
  return v === null ? undefined : v;
}

function rejectUntranslatable(req: Record<string, unknown>): void {
  const n = opt(req, 'n');
  if (n !== undefined) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw invalidRequest('n', 'must be a positive integer');
    if (n !== 1) throw unsupported('n', 'greater than 1 (several choices) is not supported');
  }
  const logprobs = opt(req, 'logprobs');
  if (logprobs !== undefined && typeof logprobs !== 'boolean') throw invalidRequest('logprobs', 'must be a boolean');
  if (logprobs === true) throw unsupported('logprobs', 'is not supported');
  const topLogprobs = opt(req, 'top_logprobs');
  if (topLogprobs !== undefined && topLogprobs !== 0) throw unsupported('top_logprobs', 'is not supported');
  const rf = opt(req, 'response_format');
  if (rf !== undefined) {
    if (!isRecord(rf) || typeof rf['type'] !== 'string') throw invalidRequest('response_format', 'must be an object with a type');
    if (rf['type'] !== 'text') throw unsupported('response_format', `type "${rf['type']}" is not supported`);
  }
  if (opt(req, 'audio') !== undefined) throw unsupported('audio', 'audio output is not supported');
  const modalities = opt(req, 'modalities');
  if (Array.isArray(modalities) && modalities.includes('audio')) throw unsupported('modalities', 'audio output is not supported');
  if (opt(req, 'functions') !== undefined) throw unsupported('functions', 'the legacy functions API is not supported; use tools');
  if (opt(req, 'function_call') !== undefined) throw unsupported('function_call', 'the legacy functions API is not supported; use tool_choice');
}

/** Text of a system/developer message: a string or an array of text parts. */
function systemTexts(content: unknown, path: string): string[] {
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of text parts');
  return content.map((part, i) => {
    if (!isRecord(part) || part['type'] !== 'text' || typeof part['text'] !== 'string') {
      throw invalidRequest(`${path}[${i}]`, 'must be a text part');
    }
    return part['text'];
  });
}

function imageBlock(part: Record<string, unknown>, path: string): Block {
  const img = part['image_url'];
  const url = typeof img === 'string' ? img : isRecord(img) ? img['url'] : undefined;
  if (typeof url !== 'string') throw invalidRequest(`${path}.image_url.url`, 'must be a string');
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  if (url.startsWith('data:')) {
    const comma = url.indexOf(',');
    if (comma === -1) throw invalidRequest(`${path}.image_url.url`, 'is not a valid data URL');
    const header = url.slice(5, comma).split(';');
    const mediaType = (header[0] ?? '').trim().toLowerCase();
    if (!header.slice(1).some((p) => p.trim().toLowerCase() === 'base64')) {
      throw unsupported(`${path}.image_url.url`, 'data URLs must be base64-encoded');
    }
    if (mediaType === '') throw invalidRequest(`${path}.image_url.url`, 'data URL has no media type');
    return { type: 'image', source: { type: 'base64', media_type: mediaType, data: url.slice(comma + 1) } };
  }
  throw invalidRequest(`${path}.image_url.url`, 'must be an http(s) or data: URL');
}

function userBlocks(content: unknown, path: string): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of content parts');
  const out: Block[] = [];
  content.forEach((part, i) => {
    const p = `${path}[${i}]`;
    if (!isRecord(part)) throw invalidRequest(p, 'must be an object');
    switch (part['type']) {
      case 'text':
        if (typeof part['text'] !== 'string') throw invalidRequest(`${p}.text`, 'must be a string');
        if (part['text'] !== '') out.push({ type: 'text', text: part['text'] });
        break;
      case 'image_url':
        out.push(imageBlock(part, p));
        break;
      case 'input_audio':
        throw unsupported(p, 'audio input is not supported');
      case 'file':
        throw unsupported(p, 'file input is not supported');
      default:
        throw invalidRequest(`${p}.type`, 'is not a known content part type');
    }
  });
  return out;
}

function assistantBlocks(msg: Record<string, unknown>, path: string): Block[] {
  const out: Block[] = [];
  const content = opt(msg, 'content');
  if (typeof content === 'string') {
    if (content !== '') out.push({ type: 'text', text: content });
  } else if (Array.isArray(content)) {
    content.forEach((part, i) => {
      const p = `${path}.content[${i}]`;
      if (!isRecord(part)) throw invalidRequest(p, 'must be an object');
      const text = part['type'] === 'text' ? part['text'] : part['type'] === 'refusal' ? part['refusal'] : undefined;
      if (typeof text !== 'string') throw invalidRequest(p, 'must be a text or refusal part');
      if (text !== '') out.push({ type: 'text', text });
    });
  } else if (content !== undefined) {
    throw invalidRequest(`${path}.content`, 'must be a string, an array of content parts or null');
  }
  if (opt(msg, 'function_call') !== undefined) {
    throw unsupported(`${path}.function_call`, 'the legacy functions API is not supported; use tool_calls');
  }
  const calls = opt(msg, 'tool_calls');
  if (calls === undefined) return out;
  if (!Array.isArray(calls)) throw invalidRequest(`${path}.tool_calls`, 'must be an array');
  calls.forEach((call, j) => {
    const p = `${path}.tool_calls[${j}]`;
    if (!isRecord(call)) throw invalidRequest(p, 'must be an object');
    if (call['type'] !== undefined && call['type'] !== 'function') throw unsupported(`${p}.type`, 'only function tool calls are supported');
    const fn = call['function'];
    if (typeof call['id'] !== 'string') throw invalidRequest(`${p}.id`, 'must be a string');
    if (!isRecord(fn)) throw invalidRequest(`${p}.function`, 'must be an object');
    if (typeof fn['name'] !== 'string') throw invalidRequest(`${p}.function.name`, 'must be a string');
    const args = fn['arguments'];
    if (typeof args !== 'string') throw invalidRequest(`${p}.function.arguments`, 'must be a string');
    let input: unknown = {};
    if (args.trim() !== '') {
      try {
        input = JSON.parse(args);
      } catch {
        throw unsupported(`${p}.function.arguments`, 'is not valid JSON');
      }
    }
    if (!isRecord(input)) throw unsupported(`${p}.function.arguments`, 'must be a JSON object');
    out.push({ type: 'tool_use', id: call['id'], name: fn['name'], input });
  });
  return out;
}

function toolResultBlock(msg: Record<string, unknown>, path: string): Block {
  const id = msg['tool_call_id'];
  if (typeof id !== 'string') throw invalidRequest(`${path}.tool_call_id`, 'must be a string');
  const content = opt(msg, 'content');
  const block: Block = { type: 'tool_result', tool_use_id: id };
  if (typeof content === 'string') {
    if (content !== '') block['content'] = content;
  } else if (Array.isArray(content)) {
    const parts = content.map((part, i) => {
      if (!isRecord(part) || part['type'] !== 'text' || typeof part['text'] !== 'string') {
        throw invalidRequest(`${path}.content[${i}]`, 'must be a text part');
      }
      return part['text'];
    });
    const texts = parts.filter((t) => t !== '').map((text) => ({ type: 'text', text }));
    if (texts.length > 0) block['content'] = texts;
  } else if (content !== undefined) {
    throw invalidRequest(`${path}.content`, 'must be a string or an array of text parts');
  }
  return block;
}

/** Append blocks to the conversation, merging into the previous turn when the role repeats. */
function appendTurn(turns: Turn[], role: Turn['role'], blocks: Block[]): void {
  if (blocks.length === 0) return;
  const last = turns[turns.length - 1];
  if (last === undefined || last.role !== role) {
    turns.push({ role, content: [...blocks] });
    return;
  }
  for (const b of blocks) {
    if (b['type'] === 'tool_result') {
      // Anthropic wants tool results first in a user turn.
      let at = 0;
      while (at < last.content.length && last.content[at]?.['type'] === 'tool_result') at++;
      last.content.splice(at, 0, b);
    } else {
      last.content.push(b);
    }
  }
}

function convertMessages(messages: unknown): { system: string[]; turns: Turn[] } {
  if (!Array.isArray(messages)) throw invalidRequest('messages', 'must be an array');
  const system: string[] = [];
  const turns: Turn[] = [];
  messages.forEach((msg, i) => {
    const path = `messages[${i}]`;
    if (!isRecord(msg)) throw invalidRequest(path, 'must be an object');
    const role = msg['role'];
    if (typeof role !== 'string') throw invalidRequest(`${path}.role`, 'must be a string');
    switch (role) {
      case 'system':
      case 'developer':
        for (const t of systemTexts(msg['content'], `${path}.content`)) if (t !== '') system.push(t);
        break;
      case 'user':
        appendTurn(turns, 'user', userBlocks(msg['content'], `${path}.content`));
        break;
      case 'assistant':
        appendTurn(turns, 'assistant', assistantBlocks(msg, path));
        break;
      case 'tool':
        appendTurn(turns, 'user', [toolResultBlock(msg, path)]);
        break;
      case 'function':
        throw unsupported(`${path}.role`, '"function" messages (legacy functions API) are not supported; use tool messages');
      default:
        throw invalidRequest(`${path}.role`, `"${role}" is not a known role`);
    }
  });
  if (turns.length === 0) throw invalidRequest('messages', 'must contain at least one non-empty user or assistant message');
  return { system, turns };
}

function positiveInt(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw invalidRequest(path, 'must be a positive integer');
  return v;
}

function finiteNumber(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(path, 'must be a number');
  return v;
}

function convertTools(tools: unknown): Block[] {
  if (!Array.isArray(tools)) throw invalidRequest('tools', 'must be an array');
  return tools.map((tool, i) => {
    const path = `tools[${i}]`;
    if (!isRecord(tool)) throw invalidRequest(path, 'must be an object');
    if (tool['type'] !== 'function') throw unsupported(`${path}.type`, 'only function tools are supported');
    const fn = tool['function'];
    if (!isRecord(fn)) throw invalidRequest(`${path}.function`, 'must be an object');
    if (typeof fn['name'] !== 'string') throw invalidRequest(`${path}.function.name`, 'must be a string');
    const out: Block = { name: fn['name'] };
    const description = opt(fn, 'description');
    if (description !== undefined) {
      if (typeof description !== 'string') throw invalidRequest(`${path}.function.description`, 'must be a string');
      out['description'] = description;
    }
    const params = opt(fn, 'parameters');
    if (params !== undefined && !isRecord(params)) throw invalidRequest(`${path}.function.parameters`, 'must be an object');
    out['input_schema'] = params ?? { type: 'object', properties: {} };
    return out;
  });
}

function convertToolChoice(choice: unknown): Block {
  if (choice === 'auto') return { type: 'auto' };
  if (choice === 'required') return { type: 'any' };
  if (choice === 'none') return { type: 'none' };
  if (isRecord(choice)) {
    if (choice['type'] === 'function') {
      const fn = choice['function'];
      if (!isRecord(fn) || typeof fn['name'] !== 'string') throw invalidRequest('tool_choice.function.name', 'must be a string');
      return { type: 'tool', name: fn['name'] };
    }
    if (typeof choice['type'] === 'string') throw unsupported('tool_choice.type', `"${choice['type']}" is not supported`);
  }
  throw invalidRequest('tool_choice', 'must be "auto", "required", "none" or a function choice');
}

/**
 * An OpenAI Chat Completions request as an Anthropic Messages request for `model`. Throws
 * SLUICE_ERR_REQUEST_INVALID for malformed input and SLUICE_ERR_ROUTE_UNSUPPORTED for features the
 * Messages API cannot express.
 */
export function chatRequestToAnthropic(
  req: Record<string, unknown>,
  model: string,
  opts: { defaultMaxTokens?: number } = {},
): Record<string, unknown> {
  if (!isRecord(req)) throw invalidRequest('body', 'must be a JSON object');
  rejectUntranslatable(req);
  const { system, turns } = convertMessages(req['messages']);

  const out: Record<string, unknown> = { model };
  const mctField = opt(req, 'max_completion_tokens') !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = opt(req, 'max_completion_tokens') ?? opt(req, 'max_tokens') ?? opts.defaultMaxTokens ?? 4096;
  out['max_tokens'] = positiveInt(maxTokens, mctField);
  if (system.length > 0) out['system'] = system.join(SYSTEM_SEPARATOR);
  out['messages'] = turns.map((t) => {
    const only = t.content.length === 1 ? t.content[0] : undefined;
    const content = only !== undefined && only['type'] === 'text' ? only['text'] : t.content;
    return { role: t.role, content };
  });

  const temperature = opt(req, 'temperature');
  if (temperature !== undefined) out['temperature'] = Math.min(1, Math.max(0, finiteNumber(temperature, 'temperature')));
  const topP = opt(req, 'top_p');
  if (topP !== undefined) out['top_p'] = finiteNumber(topP, 'top_p');
  const stop = opt(req, 'stop');
  if (stop !== undefined) {
    const list = typeof stop === 'string' ? [stop] : stop;
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) {
      throw invalidRequest('stop', 'must be a string or an array of strings');
    }
    const seqs = (list as string[]).filter((s) => s !== '');
    if (seqs.length > 0) out['stop_sequences'] = seqs;
  }
  const stream = opt(req, 'stream');
  if (stream !== undefined) {
    if (typeof stream !== 'boolean') throw invalidRequest('stream', 'must be a boolean');
    out['stream'] = stream;
  }

  const tools = opt(req, 'tools');
  const converted = tools === undefined ? [] : convertTools(tools);
  if (converted.length > 0) out['tools'] = converted;
  const toolChoice = opt(req, 'tool_choice');
  let choice: Block | undefined = toolChoice === undefined ? undefined : convertToolChoice(toolChoice);
  const parallel = opt(req, 'parallel_tool_calls');
  if (parallel !== undefined && typeof parallel !== 'boolean') throw invalidRequest('parallel_tool_calls', 'must be a boolean');
  if (parallel === false && converted.length > 0) {
    choice ??= { type: 'auto' };
    if (choice['type'] !== 'none') choice['disable_parallel_tool_use'] = true;
  }
  if (choice !== undefined) out['tool_choice'] = choice;

  const user = opt(req, 'user');
  if (user !== undefined) {
    if (typeof user !== 'string') throw invalidRequest('user', 'must be a string');
    out['metadata'] = { user_id: user };
  }
  return out;
}

function responseModel(v: unknown, fallback: string): string {
  return typeof v === 'string' && v !== '' ? v : fallback;
}

/** An Anthropic Messages response as an OpenAI chat.completion. */
export function anthropicResponseToChat(
  res: unknown,
  ctx: { model: string; id: string; created: number },
): { body: Record<string, unknown>; usage: Usage } {
  if (!isRecord(res)) throw badResponse('response is not a JSON object');
  if (res['type'] === 'error') throw anthropicError(res['error']);
  const content = res['content'];
  if (!Array.isArray(content)) throw badResponse('response has no content array');
  const texts: string[] = [];
  const toolCalls: ChatToolCall[] = [];
  content.forEach((block, i) => {
    if (!isRecord(block)) throw badResponse(`content[${i}] is not an object`);
    if (block['type'] === 'text') {
      if (typeof block['text'] !== 'string') throw badResponse(`content[${i}].text is not a string`);
      texts.push(block['text']);
    } else if (block['type'] === 'tool_use') {
      const { id, name } = block;
      if (typeof id !== 'string' || typeof name !== 'string') throw badResponse(`content[${i}] is a tool_use block without id or name`);
      const args = stringifyOr(block['input'] ?? {}, () => badResponse(`content[${i}].input is not serialisable`));
      toolCalls.push({ id, type: 'function', function: { name, arguments: args } });
    }
    // thinking, redacted_thinking and server-side tool blocks have no Chat Completions form.
  });
  const usage = usageFromAnthropic(res['usage']) ?? emptyUsage();
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: texts.length > 0 ? texts.join('') : null,
    refusal: null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const body: ChatCompletion = {
    id: ctx.id,
    object: 'chat.completion',
    created: ctx.created,
    model: responseModel(res['model'], ctx.model),
    choices: [{ index: 0, message, finish_reason: anthropicStopToOpenAI(res['stop_reason']), logprobs: null }],
    usage: usageToOpenAI(usage) as unknown as NonNullable<ChatCompletion['usage']>,
  };
  return { body: body as unknown as Record<string, unknown>, usage };
}

/** Translates an Anthropic Messages SSE stream into OpenAI chat.completion.chunk SSE. */
export function createAnthropicStreamToChat(ctx: {
  model: string;
  id: string;
  created: number;
  includeUsage: boolean;
}): StreamTranslator {
  const tracker = new AnthropicUsageTracker();
  let model = ctx.model;
  let started = false;
  let done = false;
  let finished = false;
  /** Anthropic content block index → OpenAI tool call index. */
  const toolIndex = new Map<number, number>();

  function chunk(delta: ChatChunkDelta, finishReason: ChatFinishReason | null = null): string {
    const c: ChatCompletionChunk = {
      id: ctx.id,
      object: 'chat.completion.chunk',
      created: ctx.created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    };
    if (ctx.includeUsage) c.usage = null;
    return sseData(c);
  }

  function blockIndex(data: Record<string, unknown>, type: string): number {
    const index = data['index'];
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw badResponse(`${type} event without a valid index`);
    return index;
  }

  function requireStarted(type: string): void {
    if (!started) throw badResponse(`${type} event before message_start`);
  }

  return {
    get usage() {
      return tracker.usage;
    },
    get done() {
      return done;
    },
    push(ev: SseEvent): string {
      if (done) return '';
      if (ev.event === 'error') throw anthropicErrorEvent(ev);
      if (ev.data === '') return '';
      const data = parseEventObject(ev);
      const type = typeof data['type'] === 'string' ? data['type'] : (ev.event ?? '');
      switch (type) {
        case 'error':
          throw anthropicError(data['error']);
        case 'ping':
          return '';
        case 'message_start': {
          if (started) throw badResponse('second message_start event');
          const message = data['message'];
          if (!isRecord(message)) throw badResponse('message_start event without a message');
          started = true;
          model = responseModel(message['model'], ctx.model);
          tracker.feed(message['usage']);
          return chunk({ role: 'assistant', content: '' });
        }
        case 'content_block_start': {
          requireStarted(type);
          const index = blockIndex(data, type);
          const block = data['content_block'];
          if (!isRecord(block)) throw badResponse('content_block_start event without a content_block');
          if (block['type'] === 'tool_use') {
            const { id, name } = block;
            if (typeof id !== 'string' || typeof name !== 'string') throw badResponse('tool_use block without id or name');
            if (toolIndex.has(index)) throw badResponse(`content block ${index} started twice`);
            const n = toolIndex.size;
            toolIndex.set(index, n);
            return chunk({ tool_calls: [{ index: n, id, type: 'function', function: { name, arguments: '' } }] });
          }
          if (block['type'] === 'text' && typeof block['text'] === 'string' && block['text'] !== '') {
            return chunk({ content: block['text'] });
          }
          return '';
        }
        case 'content_block_delta': {
          requireStarted(type);
          const index = blockIndex(data, type);
          const delta = data['delta'];
          if (!isRecord(delta)) throw badResponse('content_block_delta event without a delta');
          if (delta['type'] === 'text_delta') {
            if (typeof delta['text'] !== 'string') throw badResponse('text_delta without text');
            return delta['text'] === '' ? '' : chunk({ content: delta['text'] });
          }
          if (delta['type'] === 'input_json_delta') {
            if (typeof delta['partial_json'] !== 'string') throw badResponse('input_json_delta without partial_json');
            const n = toolIndex.get(index);
            if (n === undefined || delta['partial_json'] === '') return '';
            return chunk({ tool_calls: [{ index: n, function: { arguments: delta['partial_json'] } }] });
          }
          // thinking_delta, signature_delta, citations_delta: no Chat Completions form.
          return '';
        }
        case 'content_block_stop':
          requireStarted(type);
          return '';
        case 'message_delta': {
          requireStarted(type);
          tracker.feed(data['usage']);
          const delta = isRecord(data['delta']) ? data['delta'] : {};
          const reason = delta['stop_reason'];
          if (reason === undefined || reason === null || finished) return '';
          finished = true;
          return chunk({}, anthropicStopToOpenAI(reason));
        }
        case 'message_stop': {
          requireStarted(type);
          done = true;
          let out = finished ? '' : chunk({}, 'stop');
          if (ctx.includeUsage) {
            const final: ChatCompletionChunk = {
              id: ctx.id,
              object: 'chat.completion.chunk',
              created: ctx.created,
              model,
              choices: [],
              usage: usageToOpenAI(tracker.usage ?? emptyUsage()) as unknown as NonNullable<ChatCompletionChunk['usage']>,
            };
            out += sseData(final);
          }
          return `${out}data: [DONE]\n\n`;
        }
        default:
          return '';
      }
    },
    end(): string {
      if (!done) throw interrupted('message_stop');
      return '';
    },
  };
}
