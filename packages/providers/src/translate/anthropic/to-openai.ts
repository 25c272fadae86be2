/**
 * Anthropic ingress → OpenAI egress: a Messages request becomes a Chat Completions request, and the
 * OpenAI response (JSON or SSE stream) becomes an Anthropic message / Messages event stream.
 */
import type { SseEvent } from '../../sse.js';
import { sseNamed } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { emptyUsage, usageFromOpenAI, usageToAnthropic } from '../../usage.js';
import type { AnthropicContentBlock, AnthropicMessage, AnthropicStopReason, AnthropicUsage } from '../../wire/anthropic.js';
import type { StreamTranslator } from '../stream.js';
import {
  badResponse,
  interrupted,
  invalidRequest,
  isRecord,
  openaiError,
  openaiErrorEvent,
  openaiFinishToAnthropic,
  parseEventObject,
  stringifyOr,
  unsupported,
} from '../stream.js';

type Obj = Record<string, unknown>;

const SYSTEM_SEPARATOR = '\n\n';

/** Value of `o[key]`, with JSON null read as absent. */
function opt(o: Obj, key: string): unknown {
  const v = o[key];
  return v === null ? undefined : v;
}

function systemText(system: unknown): string {
  if (typeof system === 'string') return system;
  if (!Array.isArray(system)) throw invalidRequest('system', 'must be a string or an array of text blocks');
  return system
    .map((b, i) => {
      if (!isRecord(b) || b['type'] !== 'text' || typeof b['text'] !== 'string') throw invalidRequest(`system[${i}]`, 'must be a text block');
      return b['text'];
    })
    .filter((t) => t !== '')
    .join(SYSTEM_SEPARATOR);
}

function imagePart(block: Obj, path: string): Obj {
  const source = block['source'];
  if (!isRecord(source)) throw invalidRequest(`${path}.source`, 'must be an object');
  if (source['type'] === 'base64') {
    const { media_type: mediaType, data } = source;
    if (typeof mediaType !== 'string' || typeof data !== 'string') throw invalidRequest(`${path}.source`, 'needs string media_type and data');
    return { type: 'image_url', image_url: { url: `data:${mediaType};base64,${data}` } };
  }
  if (source['type'] === 'url') {
    if (typeof source['url'] !== 'string') throw invalidRequest(`${path}.source.url`, 'must be a string');
    return { type: 'image_url', image_url: { url: source['url'] } };
  }
  throw unsupported(`${path}.source.type`, 'only base64 and url image sources are supported');
}

function toolResultText(content: unknown, path: string): string {
  if (content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of content blocks');
  return content
    .map((b, i) => {
      const p = `${path}[${i}]`;
      if (!isRecord(b)) throw invalidRequest(p, 'must be an object');
      if (b['type'] === 'text') {
        if (typeof b['text'] !== 'string') throw invalidRequest(`${p}.text`, 'must be a string');
        return b['text'];
      }
      throw unsupported(`${p}.type`, `"${String(b['type'])}" blocks in tool results are not supported`);
    })
    .join('\n');
}

function isDropped(type: unknown): boolean {
  return type === 'thinking' || type === 'redacted_thinking';
}

function userMessages(content: unknown, path: string): Obj[] {
  if (typeof content === 'string') return [{ role: 'user', content }];
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of content blocks');
  const tools: Obj[] = [];
  const parts: Obj[] = [];
  content.forEach((block, j) => {
    const p = `${path}[${j}]`;
    if (!isRecord(block)) throw invalidRequest(p, 'must be an object');
    const type = block['type'];
    if (type === 'text') {
      if (typeof block['text'] !== 'string') throw invalidRequest(`${p}.text`, 'must be a string');
      parts.push({ type: 'text', text: block['text'] });
    } else if (type === 'image') {
      parts.push(imagePart(block, p));
    } else if (type === 'tool_result') {
      if (typeof block['tool_use_id'] !== 'string') throw invalidRequest(`${p}.tool_use_id`, 'must be a string');
      tools.push({ role: 'tool', tool_call_id: block['tool_use_id'], content: toolResultText(opt(block, 'content'), `${p}.content`) });
    } else if (isDropped(type)) {
      // no Chat Completions form; the model does not need its earlier reasoning
    } else if (typeof type === 'string') {
      throw unsupported(`${p}.type`, `"${type}" content blocks are not supported`);
    } else {
      throw invalidRequest(`${p}.type`, 'must be a string');
    }
  });
  const out = tools;
  if (parts.length > 0) {
    const only = parts.length === 1 ? parts[0] : undefined;
    out.push({ role: 'user', content: only !== undefined && only['type'] === 'text' ? only['text'] : parts });
  }
  return out;
}

function assistantMessage(content: unknown, path: string): Obj | undefined {
  if (typeof content === 'string') return { role: 'assistant', content };
  if (!Array.isArray(content)) throw invalidRequest(path, 'must be a string or an array of content blocks');
  const texts: string[] = [];
  const calls: Obj[] = [];
  content.forEach((block, j) => {
    const p = `${path}[${j}]`;
    if (!isRecord(block)) throw invalidRequest(p, 'must be an object');
    const type = block['type'];
    if (type === 'text') {
      if (typeof block['text'] !== 'string') throw invalidRequest(`${p}.text`, 'must be a string');
      texts.push(block['text']);
    } else if (type === 'tool_use') {
      const { id, name } = block;
      if (typeof id !== 'string') throw invalidRequest(`${p}.id`, 'must be a string');
      if (typeof name !== 'string') throw invalidRequest(`${p}.name`, 'must be a string');
      const input = block['input'] ?? {};
      if (!isRecord(input)) throw invalidRequest(`${p}.input`, 'must be an object');
      const args = stringifyOr(input, () => invalidRequest(`${p}.input`, 'is not serialisable'));
      calls.push({ id, type: 'function', function: { name, arguments: args } });
    } else if (isDropped(type)) {
      // dropped
    } else if (typeof type === 'string') {
      throw unsupported(`${p}.type`, `"${type}" content blocks are not supported`);
    } else {
      throw invalidRequest(`${p}.type`, 'must be a string');
    }
  });
  if (texts.length === 0 && calls.length === 0) return undefined;
  const msg: Obj = { role: 'assistant', content: texts.length > 0 ? texts.join('') : null };
  if (calls.length > 0) msg['tool_calls'] = calls;
  return msg;
}

function convertTools(tools: unknown): Obj[] {
  if (!Array.isArray(tools)) throw invalidRequest('tools', 'must be an array');
  return tools.map((tool, i) => {
    const path = `tools[${i}]`;
    if (!isRecord(tool)) throw invalidRequest(path, 'must be an object');
    const type = opt(tool, 'type');
    if (type !== undefined && type !== 'custom') throw unsupported(`${path}.type`, `server tool "${String(type)}" is not supported`);
    if (typeof tool['name'] !== 'string') throw invalidRequest(`${path}.name`, 'must be a string');
    const fn: Obj = { name: tool['name'] };
    const description = opt(tool, 'description');
    if (description !== undefined) {
      if (typeof description !== 'string') throw invalidRequest(`${path}.description`, 'must be a string');
      fn['description'] = description;
    }
    const schema = tool['input_schema'];
    if (!isRecord(schema)) throw invalidRequest(`${path}.input_schema`, 'must be an object');
    fn['parameters'] = schema;
    return { type: 'function', function: fn };
  });
}

function convertToolChoice(choice: unknown): unknown {
  if (!isRecord(choice)) throw invalidRequest('tool_choice', 'must be an object');
  switch (choice['type']) {
    case 'auto':
      return 'auto';
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool':
      if (typeof choice['name'] !== 'string') throw invalidRequest('tool_choice.name', 'must be a string');
      return { type: 'function', function: { name: choice['name'] } };
    default:
      throw invalidRequest('tool_choice.type', 'must be "auto", "any", "tool" or "none"');
  }
}

function finiteNumber(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(path, 'must be a number');
  return v;
}

/**
 * An Anthropic Messages request as an OpenAI Chat Completions request for `model`. Throws
 * SLUICE_ERR_REQUEST_INVALID for malformed input and SLUICE_ERR_ROUTE_UNSUPPORTED for features Chat
 * Completions cannot express.
 */
export function messagesRequestToOpenAI(
  req: Record<string, unknown>,
  model: string,
  opts: { maxTokensField?: 'max_tokens' | 'max_completion_tokens' } = {},
): Record<string, unknown> {
  if (!isRecord(req)) throw invalidRequest('body', 'must be a JSON object');
  const input = req['messages'];
  if (!Array.isArray(input)) throw invalidRequest('messages', 'must be an array');
  const messages: Obj[] = [];
  const system = opt(req, 'system');
  if (system !== undefined) {
    const text = systemText(system);
    if (text !== '') messages.push({ role: 'system', content: text });
  }
  input.forEach((msg, i) => {
    const path = `messages[${i}]`;
    if (!isRecord(msg)) throw invalidRequest(path, 'must be an object');
    const role = msg['role'];
    if (role === 'user') {
      messages.push(...userMessages(msg['content'], `${path}.content`));
    } else if (role === 'assistant') {
      const m = assistantMessage(msg['content'], `${path}.content`);
      if (m !== undefined) messages.push(m);
    } else {
      throw invalidRequest(`${path}.role`, 'must be "user" or "assistant"');
    }
  });

  const out: Obj = { model, messages };
  const maxTokens = opt(req, 'max_tokens');
  if (maxTokens !== undefined) {
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) throw invalidRequest('max_tokens', 'must be a positive integer');
    out[opts.maxTokensField ?? 'max_completion_tokens'] = maxTokens;
  }
  const temperature = opt(req, 'temperature');
  if (temperature !== undefined) out['temperature'] = finiteNumber(temperature, 'temperature');
  const topP = opt(req, 'top_p');
  if (topP !== undefined) out['top_p'] = finiteNumber(topP, 'top_p');
  const topK = opt(req, 'top_k');
  if (topK !== undefined) finiteNumber(topK, 'top_k'); // validated, then dropped: Chat Completions has no top_k
  const stops = opt(req, 'stop_sequences');
  if (stops !== undefined) {
    if (!Array.isArray(stops) || !stops.every((s) => typeof s === 'string')) throw invalidRequest('stop_sequences', 'must be an array of strings');
    if (stops.length > 0) out['stop'] = [...(stops as string[])];
  }
  const stream = opt(req, 'stream');
  if (stream !== undefined) {
    if (typeof stream !== 'boolean') throw invalidRequest('stream', 'must be a boolean');
    out['stream'] = stream;
    if (stream) out['stream_options'] = { include_usage: true };
  }
  const tools = opt(req, 'tools');
  const converted = tools === undefined ? [] : convertTools(tools);
  if (converted.length > 0) out['tools'] = converted;
  const choice = opt(req, 'tool_choice');
  if (choice !== undefined) {
    out['tool_choice'] = convertToolChoice(choice);
    const disable = opt(choice as Obj, 'disable_parallel_tool_use');
    if (disable !== undefined && typeof disable !== 'boolean') throw invalidRequest('tool_choice.disable_parallel_tool_use', 'must be a boolean');
    if (disable === true && converted.length > 0) out['parallel_tool_calls'] = false;
  }
  const metadata = opt(req, 'metadata');
  if (metadata !== undefined) {
    if (!isRecord(metadata)) throw invalidRequest('metadata', 'must be an object');
    const userId = opt(metadata, 'user_id');
    if (userId !== undefined) {
      if (typeof userId !== 'string') throw invalidRequest('metadata.user_id', 'must be a string');
      out['user'] = userId;
    }
  }
  return out;
}

function responseModel(v: unknown, fallback: string): string {
  return typeof v === 'string' && v !== '' ? v : fallback;
}

function parseArguments(args: unknown, path: string): Record<string, unknown> {
  if (args === undefined || args === null) return {};
  if (typeof args !== 'string') throw badResponse(`${path} is not a string`);
  if (args.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    throw badResponse(`${path} is not valid JSON`);
  }
  if (!isRecord(v)) throw badResponse(`${path} is not a JSON object`);
  return v;
}

function messageText(content: unknown, path: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p, i) => {
        if (isRecord(p) && typeof p['text'] === 'string') return p['text'];
        throw badResponse(`${path}[${i}] is not a text part`);
      })
      .join('');
  }
  throw badResponse(`${path} is not a string`);
}

/** An OpenAI chat.completion as an Anthropic Messages response. */
export function chatResponseToAnthropic(res: unknown, ctx: { model: string; id: string }): { body: Record<string, unknown>; usage: Usage } {
  if (!isRecord(res)) throw badResponse('response is not a JSON object');
  if (res['error'] !== undefined && res['error'] !== null) throw openaiError(res['error']);
  const choices = res['choices'];
  if (!Array.isArray(choices) || choices.length === 0) throw badResponse('response has no choices');
  const choice = choices[0];
  if (!isRecord(choice) || !isRecord(choice['message'])) throw badResponse('choices[0] has no message');
  const message = choice['message'];
  const content: AnthropicContentBlock[] = [];
  let text = messageText(message['content'], 'choices[0].message.content');
  if (text === '' && typeof message['refusal'] === 'string') text = message['refusal'];
  if (text !== '') content.push({ type: 'text', text });
  const calls = opt(message, 'tool_calls');
  if (calls !== undefined) {
    if (!Array.isArray(calls)) throw badResponse('choices[0].message.tool_calls is not an array');
    calls.forEach((call, i) => {
      const path = `choices[0].message.tool_calls[${i}]`;
      if (!isRecord(call) || !isRecord(call['function'])) throw badResponse(`${path} is not a function call`);
      const fn = call['function'];
      if (typeof call['id'] !== 'string' || typeof fn['name'] !== 'string') throw badResponse(`${path} has no id or name`);
      content.push({ type: 'tool_use', id: call['id'], name: fn['name'], input: parseArguments(fn['arguments'], `${path}.function.arguments`) });
    });
  }
  const usage = usageFromOpenAI(res['usage']) ?? emptyUsage();
  const body: AnthropicMessage = {
    id: ctx.id,
    type: 'message',
    role: 'assistant',
    model: responseModel(res['model'], ctx.model),
    content,
    stop_reason: openaiFinishToAnthropic(choice['finish_reason']),
    stop_sequence: null,
    usage: usageToAnthropic(usage) as unknown as AnthropicUsage,
  };
  return { body: body as unknown as Record<string, unknown>, usage };
}

/** Translates an OpenAI chat.completion.chunk SSE stream into Anthropic Messages SSE events. */
export function createChatStreamToAnthropic(ctx: { model: string; id: string }): StreamTranslator {
  let usage: Usage | undefined;
  let started = false;
  let done = false;
  let stopReason: AnthropicStopReason | undefined;
  let nextBlock = 0;
  /** The open content block: its Anthropic index, and for a tool call its OpenAI tool index. */
  let open: { index: number; kind: 'text' } | { index: number; kind: 'tool'; tool: number } | undefined;
  /** OpenAI tool call index → Anthropic content block index. */
  const toolBlocks = new Map<number, number>();

  function ev(type: string, body: Obj): string {
    return sseNamed(type, { type, ...body });
  }

  function start(model: unknown): string {
    if (started) return '';
    started = true;
    const message: AnthropicMessage = {
      id: ctx.id,
      type: 'message',
      role: 'assistant',
      model: responseModel(model, ctx.model),
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
    };
    return ev('message_start', { message });
  }

  function close(): string {
    if (open === undefined) return '';
    const out = ev('content_block_stop', { index: open.index });
    open = undefined;
    return out;
  }

  function text(t: string): string {
    if (t === '') return '';
    let out = '';
    if (open?.kind !== 'text') {
      out += close();
      open = { index: nextBlock++, kind: 'text' };
      out += ev('content_block_start', { index: open.index, content_block: { type: 'text', text: '' } });
    }
    return out + ev('content_block_delta', { index: open.index, delta: { type: 'text_delta', text: t } });
  }

  function toolDelta(tc: unknown, path: string): string {
    if (!isRecord(tc)) throw badResponse(`${path} is not an object`);
    const idx = tc['index'] ?? 0;
    if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0) throw badResponse(`${path}.index is not a valid index`);
    const fn = opt(tc, 'function');
    if (fn !== undefined && !isRecord(fn)) throw badResponse(`${path}.function is not an object`);
    const args = fn === undefined ? undefined : opt(fn, 'arguments');
    if (args !== undefined && typeof args !== 'string') throw badResponse(`${path}.function.arguments is not a string`);
    let out = '';
    let block = toolBlocks.get(idx);
    if (block === undefined) {
      const id = opt(tc, 'id');
      const name = fn === undefined ? undefined : opt(fn, 'name');
      if (id !== undefined && typeof id !== 'string') throw badResponse(`${path}.id is not a string`);
      if (name !== undefined && typeof name !== 'string') throw badResponse(`${path}.function.name is not a string`);
      out += close();
      block = nextBlock++;
      toolBlocks.set(idx, block);
      open = { index: block, kind: 'tool', tool: idx };
      const toolUse = { type: 'tool_use', id: id ?? `toolu_${ctx.id}_${idx}`, name: name ?? '', input: {} };
      out += ev('content_block_start', { index: block, content_block: toolUse });
    }
    if (args !== undefined && args !== '') {
      out += ev('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: args } });
    }
    return out;
  }

  function finish(): string {
    done = true;
    let out = start(undefined);
    out += close();
    const u = usageToAnthropic(usage ?? emptyUsage());
    out += ev('message_delta', { delta: { stop_reason: stopReason ?? 'end_turn', stop_sequence: null }, usage: u });
    out += ev('message_stop', {});
    return out;
  }

  return {
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    push(sse: SseEvent): string {
      if (done) return '';
      if (sse.data.trim() === '[DONE]') return finish();
      if (sse.event === 'error') throw openaiErrorEvent(sse);
      if (sse.data === '') return '';
      const chunk = parseEventObject(sse);
      if (chunk['error'] !== undefined && chunk['error'] !== null) throw openaiError(chunk['error']);
      const u = opt(chunk, 'usage');
      if (u !== undefined) usage = usageFromOpenAI(u);
      const choices = opt(chunk, 'choices') ?? [];
      if (!Array.isArray(choices)) throw badResponse('chunk choices is not an array');
      let out = start(chunk['model']);
      choices.forEach((choice, i) => {
        if (!isRecord(choice)) throw badResponse(`choices[${i}] is not an object`);
        const index = choice['index'] ?? 0;
        if (index !== 0) return; // only one choice is ever requested
        const delta = opt(choice, 'delta') ?? {};
        if (!isRecord(delta)) throw badResponse(`choices[${i}].delta is not an object`);
        const content = opt(delta, 'content');
        if (content !== undefined) {
          if (typeof content !== 'string') throw badResponse(`choices[${i}].delta.content is not a string`);
          out += text(content);
        }
        const refusal = opt(delta, 'refusal');
        if (refusal !== undefined) {
          if (typeof refusal !== 'string') throw badResponse(`choices[${i}].delta.refusal is not a string`);
          out += text(refusal);
        }
        const calls = opt(delta, 'tool_calls');
        if (calls !== undefined) {
          if (!Array.isArray(calls)) throw badResponse(`choices[${i}].delta.tool_calls is not an array`);
          calls.forEach((tc, j) => {
            out += toolDelta(tc, `choices[${i}].delta.tool_calls[${j}]`);
          });
        }
        const reason = opt(choice, 'finish_reason');
        if (reason !== undefined) stopReason = openaiFinishToAnthropic(reason);
      });
      return out;
    },
    end(): string {
      if (done) return '';
      if (stopReason === undefined) throw interrupted('[DONE]');
      return finish();
    },
  };
}
