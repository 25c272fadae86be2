/**
 * A fake LLM provider: an HTTP server speaking the real OpenAI (chat completions, embeddings, models)
 * and Anthropic (messages) wire formats, scriptable per request. Used by the gateway's tests, by
 * `npm start` without API keys and by the benchmark, so the default path is cheap: response bodies
 * are built once per (script, endpoint, model, input size) and only the id and timestamp are spliced
 * in per request; nothing is logged.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, verify } from 'node:crypto';
import { chatResponseToResponses, createChatStreamToResponses, createSseParser, sseData, sseNamed } from '@sluice/providers';
import { FakeBatches, type FakeBatchBehaviour, type FakeBatchRecord } from './fake-batches.js';
import { checkSigV4, eventFrame, exceptionFrame, type FakeAwsCredentials } from './fake-bedrock.js';

export interface FakeScript {
  /** Delay before the response headers, in milliseconds. */
  latencyMs?: number;
  /** Reply text; default {@link DEFAULT_REPLY_TEXT} (none when `toolCall` is set and `text` is not). */
  text?: string;
  /** Number of content deltas in a stream (text, or tool arguments, split into this many pieces); default 4. */
  chunks?: number;
  /** Delay between stream chunks, in milliseconds; default 0 (the whole stream is written at once). */
  chunkIntervalMs?: number;
  /** If >= 400: answer with this status and the provider's real error JSON shape. */
  status?: number;
  /** Provider error type for that error (or for `midStreamError`), e.g. 'rate_limit_error'. */
  errorType?: string;
  errorMessage?: string;
  /** Extra response headers (e.g. retry-after). */
  headers?: Record<string, string>;
  /**
   * Destroy the socket mid-stream after the preamble and this many content deltas (0: right after the
   * preamble). For a JSON answer: send the headers, then destroy before the body.
   */
  resetAfterChunks?: number;
  /** json: non-JSON body with 200 + application/json; sse: a data line that is not JSON; html: text/html 200. */
  garbage?: 'json' | 'sse' | 'html';
  /** Send the provider's in-stream error event after the first content delta, then end the stream. */
  midStreamError?: boolean;
  /** Answer with a tool call (arguments: a JSON string, as OpenAI sends it). */
  toolCall?: { name: string; arguments: string };
  /** Token counts. `input` includes the `cached` and `cacheWrite` parts; `output` includes `reasoning`. */
  usage?: { input?: number; output?: number; cached?: number; cacheWrite?: number; reasoning?: number };
  /** OpenAI-schema usage as DeepSeek reports cache hits (`prompt_cache_hit_tokens`) instead of `prompt_tokens_details`. */
  usageStyle?: 'openai' | 'deepseek';
  /** Override of the OpenAI finish_reason / Anthropic stop_reason. */
  stopReason?: string;
  /** Answer without any usage at all (no usage object, no usage chunk / usage fields in streams). */
  omitUsage?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface FakeProvider {
  /** e.g. http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** Every request received, in order (the last 1000); empty when recording is disabled. */
  readonly requests: RecordedRequest[];
  /** Requests whose client went away before the response finished (deliberate resets excluded). */
  readonly aborted: number;
  /** Script for requests without a more specific one. */
  setDefault(script: FakeScript): void;
  /** Script for requests whose body's `model` equals `model`. */
  forModel(model: string, script: FakeScript): void;
  /** One-shot scripts consumed in order by the next generation requests (take precedence). */
  enqueue(...scripts: FakeScript[]): void;
  /** The access token the fake GCE/GKE metadata server hands out (workload identity); Vertex accepts it too. */
  setGcpMetadataToken(token: string | undefined): void;
  readonly gcpMetadataCalls: number;
  /** AWS STS: the role, the web identity token it accepts, and the temporary credentials it issues. */
  setSts(sts: { roleArn: string; webIdentityToken: string; issue: { accessKeyId: string; secretAccessKey: string; sessionToken: string } } | undefined): void;
  readonly stsCalls: number;
  /** An Entra ID app registration the fake token endpoint knows; with it, Azure bearer tokens must be ones it issued. */
  setEntra(app: { tenantId: string; clientId: string; clientSecret?: string; federatedToken?: string } | undefined): void;
  /** Tokens issued by the fake Entra ID endpoint so far. */
  readonly entraIssued: number;
  /** AWS credentials (and region) whose SigV4 signature Bedrock requests must carry; undefined = Bedrock refuses every request. */
  setAwsCredentials(creds: FakeAwsCredentials | undefined, region?: string): void;
  /** Public key (PEM) whose signature Vertex AI bearer tokens must carry; undefined = any well-formed token. */
  setGcpPublicKey(pem: string | undefined): void;
  /** How the batch APIs (OpenAI Batch, Anthropic Message Batches) behave: delay, failures. */
  setBatchBehaviour(b: FakeBatchBehaviour): void;
  /** Every batch received (both APIs), in order. */
  readonly batches: readonly FakeBatchRecord[];
  /** Clear scripts, queue, recorded requests, batches and counters. */
  reset(): void;
  close(): Promise<void>;
}

export interface FakeProviderOptions {
  /** 0 (default): an ephemeral port. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Record requests (default true); the benchmark turns it off. */
  record?: boolean;
}

export const DEFAULT_REPLY_TEXT = 'Hello from the Sluice fake provider.';

/** Model ids listed by GET /v1/models. */
export const FAKE_OPENAI_MODELS: readonly string[] = Object.freeze([
  'gpt-4o',
  'gpt-4o-mini',
  'gpt-4.1-mini',
  'text-embedding-3-small',
]);
export const FAKE_ANTHROPIC_MODELS: readonly string[] = Object.freeze([
  'claude-sonnet-4-5',
  'claude-haiku-4-5',
  'claude-3-5-haiku',
]);

const MAX_RECORDED = 1000;
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_PLANS_PER_SCRIPT = 512;
const SYSTEM_FINGERPRINT = 'fp_sluicefake';
const NO_SCRIPT: FakeScript = Object.freeze({});

// ---------------------------------------------------------------------------------------------------
// Ids and body templates

const ID_PREFIX = randomBytes(5).toString('hex');
let idCounter = 0;

/** A response id suffix unique within the process (fixed width, so bodies keep their length). */
function nextId(): string {
  idCounter = (idCounter + 1) >>> 0;
  return ID_PREFIX + idCounter.toString(16).padStart(8, '0');
}

const ID_MARK = '@@sluice-fake-id@@';
const CREATED_MARK = '@@sluice-fake-created@@';
/** How the created marker appears once JSON-encoded (a string where the number goes). */
const CREATED_JSON = `"${CREATED_MARK}"`;

/** A body with slots for the response id and the `created` timestamp. */
interface Template {
  readonly parts: readonly string[];
  /** slots[i] sits between parts[i] and parts[i+1]: 0 = id, 1 = created. */
  readonly slots: readonly number[];
}

function compile(s: string): Template {
  const parts: string[] = [];
  const slots: number[] = [];
  let from = 0;
  for (;;) {
    const a = s.indexOf(ID_MARK, from);
    const b = s.indexOf(CREATED_JSON, from);
    if (a === -1 && b === -1) break;
    const isId = a !== -1 && (b === -1 || a < b);
    const at = isId ? a : b;
    parts.push(s.slice(from, at));
    slots.push(isId ? 0 : 1);
    from = at + (isId ? ID_MARK.length : CREATED_JSON.length);
  }
  parts.push(s.slice(from));
  return { parts, slots };
}

function render(t: Template, id: string, created: string): string {
  let out = t.parts[0] ?? '';
  for (let i = 0; i < t.slots.length; i++) out += (t.slots[i] === 0 ? id : created) + (t.parts[i + 1] ?? '');
  return out;
}

function joinTemplates(ts: readonly Template[]): Template {
  const parts: string[] = [''];
  const slots: number[] = [];
  for (const t of ts) {
    parts[parts.length - 1] += t.parts[0] ?? '';
    for (let i = 0; i < t.slots.length; i++) {
      slots.push(t.slots[i] ?? 0);
      parts.push(t.parts[i + 1] ?? '');
    }
  }
  return { parts, slots };
}

// ---------------------------------------------------------------------------------------------------
// What a script answers

interface Tokens {
  input: number;
  cached: number;
  cacheWrite: number;
  output: number;
  reasoning: number;
}

interface Reply {
  /** undefined: a tool call without text. */
  readonly text: string | undefined;
  readonly tool: { readonly name: string; readonly arguments: string } | undefined;
  readonly pieces: number;
  readonly tokens: Tokens;
  readonly omitUsage: boolean;
  readonly stopReason: string | undefined;
  readonly usageStyle: 'openai' | 'deepseek';
}

function countWords(s: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const space = c === 32 || (c >= 9 && c <= 13) || c === 160 || c === 0x2028 || c === 0x2029 || c === 0xfeff;
    if (space) inWord = false;
    else if (!inWord) {
      inWord = true;
      n++;
    }
  }
  return n;
}

function nonNegInt(v: number | undefined, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : fallback;
}

function resolveReply(script: FakeScript, inputTokens: number): Reply {
  const tool = script.toolCall;
  const text = script.text ?? (tool === undefined ? DEFAULT_REPLY_TEXT : undefined);
  let output = countWords(text ?? '');
  if (tool !== undefined) output += Math.max(1, countWords(tool.arguments));
  const u = script.usage ?? {};
  return {
    text,
    tool,
    pieces: Math.max(1, nonNegInt(script.chunks, 4)),
    tokens: {
      input: nonNegInt(u.input, inputTokens),
      cached: nonNegInt(u.cached, 0),
      cacheWrite: nonNegInt(u.cacheWrite, 0),
      output: nonNegInt(u.output, output),
      reasoning: nonNegInt(u.reasoning, 0),
    },
    omitUsage: script.omitUsage === true,
    usageStyle: script.usageStyle ?? 'openai',
    stopReason: script.stopReason,
  };
}

/** Split into at most `n` non-empty pieces of about equal length, never inside a code point. */
function splitPieces(s: string, n: number): string[] {
  if (s.length === 0) return [];
  const cps = Array.from(s);
  const count = Math.min(n, cps.length);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    out.push(cps.slice(Math.floor((i * cps.length) / count), Math.floor(((i + 1) * cps.length) / count)).join(''));
  }
  return out;
}

function openaiUsage(t: Tokens, style: 'openai' | 'deepseek' = 'openai'): Record<string, unknown> {
  if (style === 'deepseek') {
    // DeepSeek's own fields for its context cache, beside the OpenAI ones it keeps.
    return { prompt_tokens: t.input, completion_tokens: t.output, total_tokens: t.input + t.output, prompt_cache_hit_tokens: t.cached, prompt_cache_miss_tokens: t.input - t.cached };
  }
  return {
    prompt_tokens: t.input,
    completion_tokens: t.output,
    total_tokens: t.input + t.output,
    prompt_tokens_details: { cached_tokens: t.cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: t.reasoning,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** Anthropic's input_tokens excludes the cache reads and writes, which it reports separately. */
function anthropicUsage(t: Tokens, outputTokens: number): Record<string, unknown> {
  return {
    input_tokens: Math.max(0, t.input - t.cached - t.cacheWrite),
    cache_creation_input_tokens: t.cacheWrite,
    cache_read_input_tokens: t.cached,
    output_tokens: outputTokens,
  };
}

function parseToolInput(args: string): unknown {
  try {
    return JSON.parse(args) as unknown;
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------------------------------------------
// Errors

const OPENAI_ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  403: 'invalid_request_error',
  404: 'invalid_request_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'requests',
};
const OPENAI_ERROR_CODES: Readonly<Record<number, string>> = {
  401: 'invalid_api_key',
  429: 'rate_limit_exceeded',
};
const ANTHROPIC_ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};
const ERROR_MESSAGES: Readonly<Record<number, string>> = {
  400: 'Invalid request.',
  401: 'Incorrect API key provided.',
  402: 'Your credit balance is too low.',
  403: 'You do not have access to this resource.',
  404: 'Not found.',
  413: 'Request exceeds the maximum allowed size.',
  429: 'Rate limit reached for requests. Please try again later.',
  500: 'The server had an error while processing your request. Sorry about that!',
  502: 'Bad gateway.',
  503: 'The engine is currently overloaded, please try again later.',
  504: 'The server did not respond in time.',
  529: 'Overloaded',
};

type Shape = 'openai' | 'anthropic';

function errorType(shape: Shape, status: number, explicit: string | undefined): string {
  if (explicit !== undefined) return explicit;
  if (shape === 'openai') return OPENAI_ERROR_TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
  return ANTHROPIC_ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

function errorBody(shape: Shape, status: number, type?: string, message?: string): string {
  const msg = message ?? ERROR_MESSAGES[status] ?? (status >= 500 ? 'Internal server error.' : 'Request failed.');
  const t = errorType(shape, status, type);
  if (shape === 'openai') {
    return JSON.stringify({ error: { message: msg, type: t, param: null, code: OPENAI_ERROR_CODES[status] ?? null } });
  }
  return JSON.stringify({ type: 'error', error: { type: t, message: msg } });
}

function streamErrorFrame(shape: Shape, script: FakeScript): string {
  if (shape === 'openai') {
    return sseData({
      error: {
        message: script.errorMessage ?? ERROR_MESSAGES[500],
        type: script.errorType ?? 'server_error',
        param: null,
        code: null,
      },
    });
  }
  return sseNamed('error', {
    type: 'error',
    error: { type: script.errorType ?? 'overloaded_error', message: script.errorMessage ?? 'Overloaded' },
  });
}

// ---------------------------------------------------------------------------------------------------
// Response plans (built once per script/endpoint/model/input size, then cached)

interface StreamPlan {
  /** Frames before the first content delta (role chunk / message_start, content_block_start, ping). */
  readonly pre: Template;
  /** Content deltas; one may carry structural frames (e.g. a new content block) before its delta. */
  readonly deltas: readonly Template[];
  /** Frames after the last delta up to the end of the stream. */
  readonly post: Template;
  /** The provider's in-stream error event. */
  readonly error: Template;
  readonly whole: Template;
}

function streamPlan(pre: string, deltas: string[], post: string, error: string): StreamPlan {
  const p = compile(pre);
  const d = deltas.map(compile);
  const q = compile(post);
  return { pre: p, deltas: d, post: q, error: compile(error), whole: joinTemplates([p, ...d, q]) };
}

function openaiChatJson(r: Reply, model: string): string {
  const message: Record<string, unknown> = { role: 'assistant', content: r.text ?? null, refusal: null, annotations: [] };
  if (r.tool !== undefined) {
    message['tool_calls'] = [
      { id: 'call_' + ID_MARK, type: 'function', function: { name: r.tool.name, arguments: r.tool.arguments } },
    ];
  }
  const body: Record<string, unknown> = {
    id: 'chatcmpl-' + ID_MARK,
    object: 'chat.completion',
    created: CREATED_MARK,
    model,
    choices: [
      {
        index: 0,
        message,
        logprobs: null,
        finish_reason: r.stopReason ?? (r.tool !== undefined ? 'tool_calls' : 'stop'),
      },
    ],
  };
  if (!r.omitUsage) body['usage'] = openaiUsage(r.tokens, r.usageStyle);
  body['service_tier'] = 'default';
  body['system_fingerprint'] = SYSTEM_FINGERPRINT;
  return JSON.stringify(body);
}

function openaiChatStream(r: Reply, model: string, includeUsage: boolean, script: FakeScript): StreamPlan {
  const usageNull = includeUsage && !r.omitUsage;
  const chunk = (delta: Record<string, unknown>, finish: string | null): string => {
    const c: Record<string, unknown> = {
      id: 'chatcmpl-' + ID_MARK,
      object: 'chat.completion.chunk',
      created: CREATED_MARK,
      model,
      service_tier: 'default',
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
    if (usageNull) c['usage'] = null;
    return sseData(c);
  };
  const toolStart = (withRole: boolean): Record<string, unknown> => {
    const call = { index: 0, id: 'call_' + ID_MARK, type: 'function', function: { name: r.tool?.name, arguments: '' } };
    return withRole
      ? { role: 'assistant', content: null, tool_calls: [call], refusal: null }
      : { tool_calls: [call] };
  };
  const argDelta = (piece: string): string => chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }, null);

  let pre: string;
  const deltas: string[] = [];
  if (r.text !== undefined) {
    pre = chunk({ role: 'assistant', content: '', refusal: null }, null);
    for (const piece of splitPieces(r.text, r.pieces)) deltas.push(chunk({ content: piece }, null));
    if (r.tool !== undefined) {
      const args = splitPieces(r.tool.arguments, r.pieces);
      const start = chunk(toolStart(false), null);
      if (args.length === 0) deltas.push(start);
      args.forEach((piece, i) => deltas.push((i === 0 ? start : '') + argDelta(piece)));
    }
  } else {
    pre = chunk(toolStart(true), null);
    for (const piece of splitPieces(r.tool?.arguments ?? '', r.pieces)) deltas.push(argDelta(piece));
  }
  let post = chunk({}, r.stopReason ?? (r.tool !== undefined ? 'tool_calls' : 'stop'));
  if (usageNull) {
    post += sseData({
      id: 'chatcmpl-' + ID_MARK,
      object: 'chat.completion.chunk',
      created: CREATED_MARK,
      model,
      service_tier: 'default',
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [],
      usage: openaiUsage(r.tokens, r.usageStyle),
    });
  }
  post += 'data: [DONE]\n\n';
  return streamPlan(pre, deltas, post, streamErrorFrame('openai', script));
}

function anthropicJson(r: Reply, model: string): string {
  const content: unknown[] = [];
  if (r.text !== undefined) content.push({ type: 'text', text: r.text });
  if (r.tool !== undefined) {
    content.push({ type: 'tool_use', id: 'toolu_' + ID_MARK, name: r.tool.name, input: parseToolInput(r.tool.arguments) });
  }
  const body: Record<string, unknown> = {
    id: 'msg_' + ID_MARK,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: r.stopReason ?? (r.tool !== undefined ? 'tool_use' : 'end_turn'),
    stop_sequence: null,
  };
  if (!r.omitUsage) body['usage'] = anthropicUsage(r.tokens, r.tokens.output);
  return JSON.stringify(body);
}

function anthropicStream(r: Reply, model: string, script: FakeScript): StreamPlan {
  const message: Record<string, unknown> = {
    id: 'msg_' + ID_MARK,
    type: 'message',
    role: 'assistant',
    model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
  };
  if (!r.omitUsage) message['usage'] = anthropicUsage(r.tokens, 1);
  const blockStart = (index: number, block: unknown): string =>
    sseNamed('content_block_start', { type: 'content_block_start', index, content_block: block });
  const blockDelta = (index: number, delta: unknown): string =>
    sseNamed('content_block_delta', { type: 'content_block_delta', index, delta });
  const blockStop = (index: number): string => sseNamed('content_block_stop', { type: 'content_block_stop', index });
  const toolBlock = { type: 'tool_use', id: 'toolu_' + ID_MARK, name: r.tool?.name, input: {} };
  const ping = sseNamed('ping', { type: 'ping' });

  let pre = sseNamed('message_start', { type: 'message_start', message });
  const deltas: string[] = [];
  let last = 0;
  if (r.text !== undefined) {
    pre += blockStart(0, { type: 'text', text: '' }) + ping;
    for (const piece of splitPieces(r.text, r.pieces)) deltas.push(blockDelta(0, { type: 'text_delta', text: piece }));
    if (r.tool !== undefined) {
      last = 1;
      const start = blockStop(0) + blockStart(1, toolBlock);
      const args = splitPieces(r.tool.arguments, r.pieces);
      if (args.length === 0) deltas.push(start);
      args.forEach((piece, i) =>
        deltas.push((i === 0 ? start : '') + blockDelta(1, { type: 'input_json_delta', partial_json: piece })),
      );
    }
  } else {
    pre += blockStart(0, toolBlock) + ping;
    for (const piece of splitPieces(r.tool?.arguments ?? '', r.pieces)) {
      deltas.push(blockDelta(0, { type: 'input_json_delta', partial_json: piece }));
    }
  }
  const messageDelta: Record<string, unknown> = {
    type: 'message_delta',
    delta: { stop_reason: r.stopReason ?? (r.tool !== undefined ? 'tool_use' : 'end_turn'), stop_sequence: null },
  };
  if (!r.omitUsage) messageDelta['usage'] = { output_tokens: r.tokens.output };
  const post =
    blockStop(last) + sseNamed('message_delta', messageDelta) + sseNamed('message_stop', { type: 'message_stop' });
  return streamPlan(pre, deltas, post, streamErrorFrame('anthropic', script));
}

type Plan = Template | StreamPlan;

const planCache = new WeakMap<FakeScript, Map<string, Plan>>();

function cachedPlan(script: FakeScript, key: string, build: () => Plan): Plan {
  let m = planCache.get(script);
  if (m === undefined) {
    m = new Map();
    planCache.set(script, m);
  }
  let p = m.get(key);
  if (p === undefined) {
    if (m.size >= MAX_PLANS_PER_SCRIPT) m.clear();
    p = build();
    m.set(key, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Request helpers

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Characters of text in a message content (a string, or parts / blocks carrying text). */
function contentChars(v: unknown, depth: number): number {
  if (typeof v === 'string') return v.length;
  if (depth > 8) return 0;
  if (Array.isArray(v)) {
    let n = 0;
    for (const x of v) n += contentChars(x, depth + 1);
    return n;
  }
  if (isObject(v)) {
    let n = 0;
    const text = v['text'];
    if (typeof text === 'string') n += text.length;
    if (v['content'] !== undefined) n += contentChars(v['content'], depth + 1);
    return n;
  }
  return 0;
}

/** ceil(characters of the message contents (and the Anthropic `system`) / 4), at least 1. */
function promptTokens(body: Record<string, unknown>): number {
  let chars = contentChars(body['system'], 0);
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    for (const m of messages) if (isObject(m)) chars += contentChars(m['content'], 0);
  }
  return Math.max(1, Math.ceil(chars / 4));
}

// ---------------------------------------------------------------------------------------------------
// Embeddings: a hashed bag of words, so that paraphrases are close and different questions are far

function embeddingInputs(input: unknown): (string | number[])[] | undefined {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((x) => typeof x === 'number')) return [input as number[]];
  const out: (string | number[])[] = [];
  for (const x of input) {
    if (typeof x === 'string') out.push(x);
    else if (Array.isArray(x) && x.every((y) => typeof y === 'number')) out.push(x as number[]);
    else return undefined;
  }
  return out;
}

/** Dimensions of the fake provider's embeddings. */
export const FAKE_EMBEDDING_DIMS = 256;
const EMBEDDING_DIMS = FAKE_EMBEDDING_DIMS;

/** Words that carry no meaning for the fake embedding (question phrasing, articles, pronouns, ...). */
const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    'a an the and or but if then so of to in on at by for from with about as into than ' +
    'is are was were be been being am do does did done has have had can could would should will shall may might must ' +
    'i me my we us our you your it its he him his she her they them their this that these those there here ' +
    'what which who whom whose when where why how ' +
    'please tell show give explain know let just some any very really also kindly ' +
    'hi hello hey thanks thank'
  ).split(' '),
);

/** 32-bit FNV-1a over the UTF-16 code units of `s`, then a final avalanche so every bit is usable. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * Crude stemming: strips a trailing 'ing', 'ed', 'ies' (→ y), 'es' (after s, x, z, ch, sh) or 's' (not 'ss') when
 * at least 3 characters remain, undoubles a final consonant left by 'ing'/'ed' (running → run) and
 * drops a final 'e' (make, making → mak), so inflections of a word hash alike.
 */
function stem(w: string): string {
  let s = w;
  if (s.length >= 6 && s.endsWith('ing')) s = undouble(s.slice(0, -3));
  else if (s.length >= 5 && s.endsWith('ed')) s = undouble(s.slice(0, -2));
  else if (s.length >= 5 && s.endsWith('ies')) s = s.slice(0, -3) + 'y';
  else if (s.length >= 5 && /(?:[sxz]|ch|sh)es$/.test(s)) s = s.slice(0, -2);
  else if (s.length >= 4 && s.endsWith('s') && !s.endsWith('ss')) s = s.slice(0, -1);
  if (s.length >= 4 && s.endsWith('e')) s = s.slice(0, -1);
  return s;
}

function undouble(s: string): string {
  const n = s.length;
  return n >= 4 && s[n - 1] === s[n - 2] && !/[aeiouls]/.test(s[n - 1] ?? '') ? s.slice(0, -1) : s;
}

/**
 * The content words of a text: lowercased, "'s" and apostrophes removed (what's → what, don't →
 * dont), split on anything but letters and digits, stop words dropped, stemmed.
 */
function contentWords(text: string): string[] {
  const out: string[] = [];
  const flat = text.toLowerCase().replace(/['\u2019]s\b/g, '').replace(/['\u2019]/g, '');
  for (const w of flat.split(/[^\p{L}\p{N}]+/u)) {
    if (w === '' || STOP_WORDS.has(w)) continue;
    const s = stem(w);
    if (!STOP_WORDS.has(s)) out.push(s);
  }
  return out;
}

/** The vector for inputs without content words (or whose words cancel out): a fixed unit vector, all components equal. */
const EMPTY_EMBEDDING: readonly number[] = Object.freeze(new Array<number>(EMBEDDING_DIMS).fill(Math.fround(1 / Math.sqrt(EMBEDDING_DIMS))));

/**
 * A deterministic unit vector of float32 values: a hashed bag of words. Each content word (see
 * {@link contentWords}; for a token array, each token number) adds ±1 to one of
 * {@link FAKE_EMBEDDING_DIMS} dimensions (dimension and sign from its FNV-1a hash); the sum is
 * L2-normalised. Texts with the same content words (in any order, any phrasing around them) get the
 * same vector; texts without shared words are nearly orthogonal.
 */
function embed(input: string | readonly number[]): number[] {
  const words = typeof input === 'string' ? contentWords(input) : input.map(String);
  const v = new Array<number>(EMBEDDING_DIMS).fill(0);
  for (const w of words) {
    const h = fnv1a(w);
    const dim = h % EMBEDDING_DIMS;
    v[dim] = (v[dim] ?? 0) + (h >>> 31 === 1 ? -1 : 1);
  }
  let norm = 0;
  for (const x of v) norm += x * x;
  if (norm === 0) return [...EMPTY_EMBEDDING];
  norm = Math.sqrt(norm);
  return v.map((x) => Math.fround(x / norm));
}

/**
 * The embedding the fake provider answers for `input` (a text or a token array): use it to compute
 * expected vectors and similarities in tests.
 */
export function fakeEmbedding(input: string | readonly number[]): number[] {
  return embed(input);
}

/** An embeddings answer body; undefined when `input` is not a string or an array of strings / token arrays. */
function embeddingsJson(script: FakeScript, body: Record<string, unknown>, model: string): string | undefined {
  const inputs = embeddingInputs(body['input']);
  if (inputs === undefined) return undefined;
  const base64 = body['encoding_format'] === 'base64';
  let tokens = 0;
  const data = inputs.map((input, index) => {
    tokens += typeof input === 'string' ? Math.ceil(input.length / 4) : input.length;
    const v = embed(input);
    return {
      object: 'embedding',
      index,
      embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
    };
  });
  const promptTokens = nonNegInt(script.usage?.input, Math.max(1, tokens));
  const out: Record<string, unknown> = { object: 'list', data, model };
  if (script.omitUsage !== true) out['usage'] = { prompt_tokens: promptTokens, total_tokens: promptTokens };
  return JSON.stringify(out);
}

const GEMINI_STATUS: Readonly<Record<number, string>> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };

/** Gemini's error body: `{"error": {code, message, status}}`. */
function geminiErrorBody(status: number, message?: string): string {
  return JSON.stringify({ error: { code: status, message: message ?? ERROR_MESSAGES[status] ?? 'Request failed.', status: GEMINI_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT') } });
}

/** Words of the text parts of a GenerateContentRequest (system instruction included). */
function geminiPromptTokens(body: Record<string, unknown>): number {
  let n = 0;
  const parts = (c: unknown): void => {
    if (isObject(c) && Array.isArray(c['parts'])) for (const p of c['parts']) if (isObject(p) && typeof p['text'] === 'string') n += countWords(p['text']);
  };
  for (const c of body['contents'] as unknown[]) parts(c);
  parts(body['systemInstruction']);
  return Math.max(1, n);
}

const JSON_CONTENT_TYPE = 'application/json';
const SSE_HEADERS = Object.freeze({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });

const OPENAI_MODELS_BODY = JSON.stringify({
  object: 'list',
  data: FAKE_OPENAI_MODELS.map((id) => ({ id, object: 'model', created: 1715367049, owned_by: 'system' })),
});
const ANTHROPIC_MODELS_BODY = JSON.stringify({
  data: FAKE_ANTHROPIC_MODELS.map((id) => ({
    type: 'model',
    id,
    display_name: id,
    created_at: '2025-01-01T00:00:00Z',
  })),
  has_more: false,
  first_id: FAKE_ANTHROPIC_MODELS[0] ?? null,
  last_id: FAKE_ANTHROPIC_MODELS[FAKE_ANTHROPIC_MODELS.length - 1] ?? null,
});

const GARBAGE_JSON = '{"id": "chatcmpl-garbage", "object": <<this is not json>>';
const GARBAGE_HTML = '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>';
const GARBAGE_SSE_OPENAI = 'data: {"id":"chatcmpl-garbage","choices":[{"delta":<<not json\n\n';
const GARBAGE_SSE_ANTHROPIC = 'event: content_block_delta\ndata: {"type":"content_block_delta",<<not json\n\n';

/** Per-request state shared with the response's close listener. */
interface Exchange {
  timer: NodeJS.Timeout | undefined;
  /** The fake destroyed the socket on purpose (a scripted reset): not an abort. */
  intentional: boolean;
}

function noop(): void {}

/** Answer a whole body (Node adds its content-length). */
function sendBody(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.end(body);
}

// ---------------------------------------------------------------------------------------------------
// Server

class FakeProviderServer implements FakeProvider {
  readonly requests: RecordedRequest[] = [];
  private abortedCount = 0;
  private defaultScript: FakeScript | undefined;
  private readonly byModel = new Map<string, FakeScript>();
  private readonly queue: FakeScript[] = [];
  private closing: Promise<void> | undefined;
  private readonly batchApis = new FakeBatches((endpoint, body) => this.answerOffline(endpoint, body));
  url = '';
  port = 0;

  constructor(
    readonly server: Server,
    private readonly record: boolean,
  ) {}

  get aborted(): number {
    return this.abortedCount;
  }

  setDefault(script: FakeScript): void {
    this.defaultScript = { ...script };
  }

  forModel(model: string, script: FakeScript): void {
    this.byModel.set(model, { ...script });
  }

  enqueue(...scripts: FakeScript[]): void {
    for (const s of scripts) this.queue.push({ ...s });
  }

  get batches(): readonly FakeBatchRecord[] {
    return this.batchApis.records;
  }

  setBatchBehaviour(b: FakeBatchBehaviour): void {
    this.batchApis.behaviour = { ...b };
  }

  /** One request of a batch, answered as the real-time endpoint would (non-streamed). */
  private answerOffline(endpoint: 'chat' | 'embeddings' | 'messages', body: Record<string, unknown>): { status: number; body: string } {
    const model = typeof body['model'] === 'string' ? body['model'] : '';
    const script = this.pick(model);
    const shape: Shape = endpoint === 'messages' ? 'anthropic' : 'openai';
    if (script.status !== undefined && script.status >= 400) return { status: script.status, body: errorBody(shape, script.status, script.errorType, script.errorMessage) };
    if (endpoint === 'embeddings') {
      const out = embeddingsJson(script, body, model);
      return out === undefined ? { status: 400, body: errorBody('openai', 400, 'invalid_request_error', "'input' must be a string or an array of strings or token arrays.") } : { status: 200, body: out };
    }
    const r = resolveReply(script, promptTokens(body));
    return { status: 200, body: render(compile(endpoint === 'chat' ? openaiChatJson(r, model) : anthropicJson(r, model)), nextId(), String(Math.floor(Date.now() / 1000))) };
  }

  reset(): void {
    this.batchApis.reset();
    this.defaultScript = undefined;
    this.byModel.clear();
    this.queue.length = 0;
    this.requests.length = 0;
    this.abortedCount = 0;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private pick(model: string): FakeScript {
    return this.queue.shift() ?? this.byModel.get(model) ?? this.defaultScript ?? NO_SCRIPT;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const ex: Exchange = { timer: undefined, intentional: false };
    req.on('error', noop);
    res.on('error', noop);
    res.on('close', () => {
      if (ex.timer !== undefined) clearTimeout(ex.timer);
      ex.timer = undefined;
      if (!res.writableFinished && !ex.intentional) this.abortedCount++;
    });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      if (res.destroyed) return;
      const body = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
      this.dispatch(req, res, ex, body, size > MAX_BODY_BYTES);
    });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, ex: Exchange, body: string, tooLarge: boolean): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    if (this.record) {
      this.requests.push({ method, path, headers: req.headers, body });
      if (this.requests.length > MAX_RECORDED) this.requests.shift();
    }
    const anthropicClient = req.headers['anthropic-version'] !== undefined;
    if (FakeBatches.owns(path)) {
      const a = this.batchApis.handle(method, path, String(req.headers['content-type'] ?? ''), body, this.url);
      sendBody(res, a.status, a.contentType ?? JSON_CONTENT_TYPE, a.body);
      return;
    }
    let endpoint: 'chat' | 'embeddings' | 'moderations' | 'messages' | undefined;
    // Google Gemini API: /v1beta/models/<model>:generateContent | :streamGenerateContent?alt=sse.
    // GCE / GKE metadata server (workload identity): the service account's access token.
    if (method === 'GET' && path.startsWith('/computeMetadata/v1/')) {
      res.setHeader('metadata-flavor', 'Google');
      if (req.headers['metadata-flavor'] !== 'Google') {
        sendBody(res, 403, 'text/plain', 'Missing Metadata-Flavor:Google header.');
        return;
      }
      if (path === '/computeMetadata/v1/instance/service-accounts/default/token' && this.gcpMetadataToken !== undefined) {
        this.gcpMetadataCalls++;
        sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify({ access_token: this.gcpMetadataToken, expires_in: 3599, token_type: 'Bearer' }));
        return;
      }
      if (path === '/computeMetadata/v1/instance' || path === '/computeMetadata/v1/instance/') {
        sendBody(res, 200, 'text/plain', 'attributes/\nservice-accounts/\n');
        return;
      }
      if (path === '/computeMetadata/v1/project/project-id') {
        sendBody(res, 200, 'text/plain', 'shop-ml');
        return;
      }
      sendBody(res, 404, 'text/plain', 'Not Found');
      return;
    }
    // AWS STS AssumeRoleWithWebIdentity (IRSA): the query protocol, an XML answer.
    if (method === 'POST' && path === '/' && body.includes('Action=AssumeRoleWithWebIdentity')) {
      const form = new URLSearchParams(body);
      const sts = this.sts;
      this.stsCalls++;
      if (sts === undefined || form.get('RoleArn') !== sts.roleArn || form.get('WebIdentityToken') !== sts.webIdentityToken) {
        sendBody(res, 403, 'text/xml', '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>fake</RequestId></ErrorResponse>');
        return;
      }
      const c = sts.issue;
      const expiration = new Date(Date.now() + 3_600_000).toISOString();
      sendBody(
        res,
        200,
        'text/xml',
        `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:shop:chat</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>${sts.roleArn}/sluice</Arn><AssumedRoleId>AROAFAKE:sluice</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>${c.accessKeyId}</AccessKeyId><SecretAccessKey>${c.secretAccessKey}</SecretAccessKey><SessionToken>${c.sessionToken}</SessionToken><Expiration>${expiration}</Expiration></Credentials><Provider>oidc.eks.us-east-1.amazonaws.com</Provider><Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
      );
      return;
    }
    // Entra ID token endpoint (client credentials, with a secret or a federated assertion).
    const entraToken = /^\/([^/]+)\/oauth2\/v2\.0\/token$/u.exec(path);
    if (entraToken !== null && method === 'POST') {
      const form = new URLSearchParams(body);
      const e = this.entra;
      const ok =
        e !== undefined &&
        decodeURIComponent(entraToken[1] as string) === e.tenantId &&
        form.get('grant_type') === 'client_credentials' &&
        form.get('client_id') === e.clientId &&
        form.get('scope') === 'https://cognitiveservices.azure.com/.default' &&
        ((e.clientSecret !== undefined && form.get('client_secret') === e.clientSecret) ||
          (e.federatedToken !== undefined && form.get('client_assertion') === e.federatedToken && form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'));
      if (!ok) {
        sendBody(res, 401, JSON_CONTENT_TYPE, JSON.stringify({ error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.\r\nTrace ID: fake' }));
        return;
      }
      const token = `entra-${randomBytes(12).toString('hex')}`;
      this.entraTokens.add(token);
      this.entraIssued++;
      sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token }));
      return;
    }
    // OpenAI Responses API: the Response object, or its event stream (built from the chat reply the
    // same script gives, through the gateway's own Chat→Responses converter).
    if (path === '/v1/responses' && method === 'POST') {
      const parsed = jsonOrUndefined(body);
      if (!isObject(parsed) || parsed['input'] === undefined) {
        this.sendError(res, 'openai', 400, 'invalid_request_error', "Missing required parameter: 'input'.");
        return;
      }
      const model = typeof parsed['model'] === 'string' ? parsed['model'] : '';
      const script = this.pick(model);
      this.afterLatency(res, ex, script, () => this.responsesAnswer(res, script, parsed, model, body));
      return;
    }
    // Azure AI Content Safety: /contentsafety/text:analyze?api-version=…, the resource key (or an Entra
    // token); scripts for the model name "content-safety" apply latency and errors.
    if (path === '/contentsafety/text:analyze' && method === 'POST') {
      const script = this.byModel.get('content-safety') ?? NO_SCRIPT;
      const bearer = /^Bearer (.+)$/u.exec(String(req.headers['authorization'] ?? ''))?.[1];
      const authorized = req.headers['ocp-apim-subscription-key'] !== undefined || (bearer !== undefined && (this.entra === undefined || this.entraTokens.has(bearer)));
      if (!/(?:^|&)api-version=[^&]+/u.test(q === -1 ? '' : url.slice(q + 1))) return sendBody(res, 404, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: 'NotFound', message: 'Resource not found' } }));
      if (!authorized) return sendBody(res, 401, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint.' } }));
      const parsed = jsonOrUndefined(body);
      const text = isObject(parsed) ? parsed['text'] : undefined;
      if (typeof text !== 'string' || text.length > 10_000) return sendBody(res, 400, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: 'InvalidRequestBody', message: 'The text is missing or longer than 10000 characters.' } }));
      this.afterLatency(res, ex, script, () => {
        if (script.status !== undefined && script.status >= 400) return sendBody(res, script.status, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: 'InternalServerError', message: script.errorMessage ?? 'Request failed.' } }));
        const v = moderate(text);
        const severity = (hit: boolean, borderline: boolean, high: number): number => (hit ? high : borderline ? 2 : 0);
        sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify({
          blocklistsMatch: [],
          categoriesAnalysis: [
            { category: 'Hate', severity: severity(v.categories['harassment'] === true, false, 4) },
            { category: 'SelfHarm', severity: severity(v.categories['self-harm'] === true, false, 6) },
            { category: 'Sexual', severity: 0 },
            { category: 'Violence', severity: severity(v.categories['violence'] === true, (v.category_scores['violence'] ?? 0) >= 0.4, 6) },
          ],
        }));
      });
      return;
    }
    // AWS Bedrock ApplyGuardrail: /guardrail/<id>/version/<version>/apply, SigV4-signed.
    const guardrail = /^\/guardrail\/([^/]+)\/version\/([^/]+)\/apply$/u.exec(path);
    if (guardrail !== null && method === 'POST') {
      void this.bedrockGuardrail(req, res, ex, body, decodeURIComponent(guardrail[1] as string));
      return;
    }
    // AWS Bedrock Converse: /model/<model id>/converse | /converse-stream, SigV4-signed.
    const bedrock = /^\/model\/([^/]+)\/(converse|converse-stream)$/u.exec(path);
    if (bedrock !== null && method === 'POST') {
      void this.bedrockAnswer(req, res, ex, body, decodeURIComponent(bedrock[1] as string), bedrock[2] === 'converse-stream');
      return;
    }
    // Vertex AI: the same body under /v1/projects/<p>/locations/<l>/publishers/google/models/<model>:…,
    // with a service-account bearer token (checked against `setGcpPublicKey`).
    const vertex = /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/publishers\/google\/models\/([^/:]+):(generateContent|streamGenerateContent)$/u.exec(path);
    const gemini = vertex ?? /^\/v1(?:beta)?\/models\/([^/:]+):(generateContent|streamGenerateContent)$/u.exec(path);
    if (gemini !== null && method === 'POST') {
      const query = q === -1 ? '' : url.slice(q + 1);
      if (vertex !== null) {
        const problem = this.checkGcpToken(String(req.headers['authorization'] ?? ''));
        if (problem !== undefined) {
          sendBody(res, 401, JSON_CONTENT_TYPE, geminiErrorBody(401, `Request had invalid authentication credentials (${problem}). Expected OAuth 2 access token, login cookie or other valid authentication credential.`));
          return;
        }
      } else if (req.headers['x-goog-api-key'] === undefined && !/(?:^|&)key=[^&]+/u.test(query)) {
        sendBody(res, 403, JSON_CONTENT_TYPE, geminiErrorBody(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."));
        return;
      }
      const parsed = jsonOrUndefined(body);
      if (!isObject(parsed) || !Array.isArray(parsed['contents'])) {
        sendBody(res, 400, JSON_CONTENT_TYPE, geminiErrorBody(400, 'Invalid JSON payload received. contents is required.'));
        return;
      }
      const model = decodeURIComponent(gemini[1] as string);
      const script = this.pick(model);
      const streamed = gemini[2] === 'streamGenerateContent';
      this.afterLatency(res, ex, script, () => this.geminiAnswer(res, ex, script, parsed, model, streamed && /(?:^|&)alt=sse(?:&|$)/u.test(query)));
      return;
    }
    // Azure OpenAI: /openai/deployments/<deployment>/chat/completions?api-version=…, `api-key` header
    // (or an Entra bearer token); the deployment stands for the model.
    const azure = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/u.exec(path);
    let deployment: string | undefined;
    if (azure !== null && method === 'POST') {
      if (!/(?:^|&)api-version=[^&]+/u.test(q === -1 ? '' : url.slice(q + 1))) {
        sendBody(res, 404, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: '404', message: 'Resource not found' } }));
        return;
      }
      const bearer = /^Bearer (.+)$/u.exec(String(req.headers['authorization'] ?? ''))?.[1];
      if (this.entra !== undefined && bearer !== undefined && !this.entraTokens.has(bearer)) {
        sendBody(res, 401, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: '401', message: 'Access denied due to invalid token.' } }));
        return;
      }
      if (req.headers['api-key'] === undefined && bearer === undefined) {
        sendBody(res, 401, JSON_CONTENT_TYPE, JSON.stringify({ error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } }));
        return;
      }
      deployment = decodeURIComponent(azure[1] as string);
      endpoint = azure[2] === 'embeddings' ? 'embeddings' : 'chat';
    } else if (method === 'POST' && path === '/v1/chat/completions') endpoint = 'chat';
    else if (method === 'POST' && path === '/v1/embeddings') endpoint = 'embeddings';
    else if (method === 'POST' && path === '/v1/moderations') endpoint = 'moderations';
    else if (method === 'POST' && path === '/v1/messages') endpoint = 'messages';
    else if (method === 'GET' && path === '/v1/models') {
      // Only the default script applies here, so a model-list probe never eats one-shot scripts.
      const shape: Shape = anthropicClient ? 'anthropic' : 'openai';
      const payload = anthropicClient ? ANTHROPIC_MODELS_BODY : OPENAI_MODELS_BODY;
      this.afterLatency(res, ex, this.defaultScript ?? NO_SCRIPT, () =>
        this.respondJson(res, ex, this.defaultScript ?? NO_SCRIPT, shape, payload),
      );
      return;
    } else {
      const shape: Shape = path.startsWith('/v1/messages') || anthropicClient ? 'anthropic' : 'openai';
      const msg = shape === 'openai' ? `Invalid URL (${method} ${path})` : 'Not found';
      this.sendError(res, shape, 404, undefined, msg);
      return;
    }
    const shape: Shape = endpoint === 'messages' ? 'anthropic' : 'openai';
    if (tooLarge) {
      this.sendError(res, shape, 413, shape === 'anthropic' ? 'request_too_large' : undefined, 'Request too large.');
      return;
    }
    const parsed = jsonOrUndefined(body);
    if (!isObject(parsed)) {
      const msg =
        shape === 'openai'
          ? 'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.'
          : 'There was an error parsing the body of your request: the body is not valid JSON.';
      this.sendError(res, shape, 400, 'invalid_request_error', msg);
      return;
    }
    const model = deployment ?? (typeof parsed['model'] === 'string' ? parsed['model'] : '');
    // Moderations take only their model's script: a classifier call never eats a queued reply.
    const script = endpoint === 'moderations' ? (this.byModel.get(model) ?? NO_SCRIPT) : this.pick(model);
    this.afterLatency(res, ex, script, () => {
      if (endpoint === 'embeddings') this.embeddings(res, ex, script, parsed, model);
      else if (endpoint === 'moderations') this.moderations(res, ex, script, parsed, model);
      else this.generate(res, ex, script, parsed, model, endpoint);
    });
  }

  private afterLatency(res: ServerResponse, ex: Exchange, script: FakeScript, go: () => void): void {
    const latency = script.latencyMs ?? 0;
    if (latency > 0) {
      ex.timer = setTimeout(() => {
        ex.timer = undefined;
        if (!res.destroyed) go();
      }, latency);
    } else {
      go();
    }
  }

  private sendError(res: ServerResponse, shape: Shape, status: number, type?: string, message?: string): void {
    sendBody(res, status, JSON_CONTENT_TYPE, errorBody(shape, status, type, message));
  }

  /** Status, extra headers and garbage, common to every scripted answer. Returns true when it answered. */
  private preface(res: ServerResponse, script: FakeScript, shape: Shape, ssePrefix = ''): boolean {
    const id = 'req_' + nextId();
    res.setHeader(shape === 'openai' ? 'x-request-id' : 'request-id', id);
    if (script.headers !== undefined) {
      for (const [k, v] of Object.entries(script.headers)) res.setHeader(k, v);
    }
    const status = script.status;
    if (status !== undefined && status >= 400) {
      this.sendError(res, shape, status, script.errorType, script.errorMessage);
      return true;
    }
    switch (script.garbage) {
      case 'json':
        sendBody(res, 200, JSON_CONTENT_TYPE, GARBAGE_JSON);
        return true;
      case 'html':
        sendBody(res, 200, 'text/html; charset=utf-8', GARBAGE_HTML);
        return true;
      case 'sse':
        // A stream request gets its valid preamble first, then the garbage line.
        res.writeHead(200, SSE_HEADERS);
        res.end(ssePrefix + (shape === 'openai' ? GARBAGE_SSE_OPENAI : GARBAGE_SSE_ANTHROPIC));
        return true;
      default:
        return false;
    }
  }

  private respondJson(res: ServerResponse, ex: Exchange, script: FakeScript, shape: Shape, body: string): void {
    if (this.preface(res, script, shape)) return;
    if (script.resetAfterChunks !== undefined) {
      res.writeHead(200, { 'content-type': JSON_CONTENT_TYPE, 'content-length': String(Buffer.byteLength(body)) });
      this.destroyAfter(res, ex, '');
      return;
    }
    sendBody(res, 200, JSON_CONTENT_TYPE, body);
  }

  private responsesAnswer(res: ServerResponse, script: FakeScript, body: Record<string, unknown>, model: string, raw: string): void {
    if (this.preface(res, script, 'openai')) return;
    const input = body['input'];
    // The raw body's words stand for a structured input (JSON.stringify of a deeply nested one would overflow).
    const inputTokens = Math.max(1, typeof input === 'string' ? countWords(input) : countWords(raw));
    const r = resolveReply(script, inputTokens);
    const id = nextId();
    const created = String(Math.floor(Date.now() / 1000));
    const ctx = { id: `resp_${id}`, createdAt: Number(created), model, request: body };
    if (body['stream'] !== true) {
      const chat = JSON.parse(render(compile(openaiChatJson(r, model)), id, created)) as unknown;
      sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify(chatResponseToResponses(chat, ctx).body));
      return;
    }
    const plan = openaiChatStream(r, model, true, script);
    const parser = createSseParser();
    const tr = createChatStreamToResponses(ctx);
    let out = '';
    for (const ev of parser.push(render(plan.whole, id, created))) out += tr.push(ev);
    for (const ev of parser.end()) out += tr.push(ev);
    out += tr.end();
    res.writeHead(200, SSE_HEADERS);
    res.end(out);
  }

  private sts: { roleArn: string; webIdentityToken: string; issue: { accessKeyId: string; secretAccessKey: string; sessionToken: string } } | undefined;
  /** AssumeRoleWithWebIdentity calls received. */
  stsCalls = 0;

  setSts(sts: { roleArn: string; webIdentityToken: string; issue: { accessKeyId: string; secretAccessKey: string; sessionToken: string } } | undefined): void {
    this.sts = sts;
  }

  private entra: { tenantId: string; clientId: string; clientSecret?: string; federatedToken?: string } | undefined;
  private readonly entraTokens = new Set<string>();
  /** Tokens the fake Entra ID endpoint issued. */
  entraIssued = 0;

  setEntra(app: { tenantId: string; clientId: string; clientSecret?: string; federatedToken?: string } | undefined): void {
    this.entra = app;
  }

  private gcpPublicKey: string | undefined;
  private aws: { creds: FakeAwsCredentials; region: string } | undefined;

  setAwsCredentials(creds: FakeAwsCredentials | undefined, region = 'us-east-1'): void {
    this.aws = creds === undefined ? undefined : { creds, region };
  }

  /** A Converse answer (JSON) or a ConverseStream (event-stream frames), after checking the SigV4 signature. */
  /**
   * ApplyGuardrail: the texts judged by {@link moderate}; a flagged category becomes a content filter
   * that blocked (violence → VIOLENCE, harassment → INSULTS, illicit → MISCONDUCT, self-harm →
   * MISCONDUCT), an e-mail address an anonymised PII entity. The guardrail id's script (forModel)
   * applies latency and errors.
   */
  private async bedrockGuardrail(req: IncomingMessage, res: ServerResponse, ex: Exchange, body: string, id: string): Promise<void> {
    const refuse = bedrockRefusal(res);
    const parsed = await this.bedrockBody(req, body, refuse);
    if (parsed === undefined) return;
    const content = parsed['content'];
    if ((parsed['source'] !== 'INPUT' && parsed['source'] !== 'OUTPUT') || !Array.isArray(content)) return refuse(400, 'ValidationException', 'Malformed input request: source and content are required.');
    const script = this.byModel.get(id) ?? NO_SCRIPT;
    this.afterLatency(res, ex, script, () => {
      if (script.status !== undefined && script.status >= 400) return refuse(script.status, script.status >= 500 ? 'InternalServerException' : 'ValidationException', script.errorMessage ?? 'Request failed.');
      const text = content.map((c) => (isObject(c) && isObject(c['text']) && typeof c['text']['text'] === 'string' ? c['text']['text'] : '')).join('\n');
      const verdict = moderate(text);
      const types: Record<string, string> = { violence: 'VIOLENCE', harassment: 'INSULTS', illicit: 'MISCONDUCT', 'self-harm': 'MISCONDUCT' };
      const filters = Object.entries(types)
        .filter(([c]) => verdict.categories[c] === true)
        .map(([, type]) => ({ type, confidence: 'HIGH', filterStrength: 'HIGH', action: 'BLOCKED', detected: true }));
      const pii = /[\w.+-]+@[\w-]+\.[\w.]+/u.exec(text);
      const piiEntities = pii === null ? [] : [{ match: pii[0], type: 'EMAIL', action: 'ANONYMIZED', detected: true }];
      const intervened = filters.length > 0 || piiEntities.length > 0;
      sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify({
        usage: { topicPolicyUnits: 1, contentPolicyUnits: 1, wordPolicyUnits: 1, sensitiveInformationPolicyUnits: 1, sensitiveInformationPolicyFreeUnits: 0, contextualGroundingPolicyUnits: 0 },
        action: intervened ? 'GUARDRAIL_INTERVENED' : 'NONE',
        ...(intervened ? { actionReason: 'Guardrail blocked.' } : {}),
        outputs: intervened ? [{ text: 'Sorry, the model cannot answer this question.' }] : [],
        assessments: [{ ...(filters.length > 0 ? { contentPolicy: { filters } } : {}), ...(piiEntities.length > 0 ? { sensitiveInformationPolicy: { piiEntities } } : {}) }],
      }));
    });
  }

  /** A Bedrock request's JSON body once its SigV4 signature checks out; otherwise refused (undefined). */
  private async bedrockBody(req: IncomingMessage, body: string, refuse: ReturnType<typeof bedrockRefusal>): Promise<Record<string, unknown> | undefined> {
    if (this.aws === undefined) return refuse(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    const problem = await checkSigV4(req, body, this.aws.creds, this.aws.region);
    if (problem !== undefined) return refuse(403, 'InvalidSignatureException', `The request signature we calculated does not match the signature you provided (${problem}).`);
    const parsed = jsonOrUndefined(body);
    return isObject(parsed) ? parsed : refuse(400, 'ValidationException', 'Malformed input request: the body is not a JSON object.');
  }

  private async bedrockAnswer(req: IncomingMessage, res: ServerResponse, ex: Exchange, body: string, model: string, stream: boolean): Promise<void> {
    const refuse = bedrockRefusal(res);
    const parsed = await this.bedrockBody(req, body, refuse);
    if (parsed === undefined) return;
    if (!Array.isArray(parsed['messages'])) return refuse(400, 'ValidationException', 'Malformed input request: messages is required.');
    const script = this.pick(model);
    this.afterLatency(res, ex, script, () => {
      if (script.status !== undefined && script.status >= 400) {
        const type = script.status === 429 ? 'ThrottlingException' : script.status >= 500 ? 'InternalServerException' : 'ValidationException';
        refuse(script.status, type, script.errorMessage ?? 'Request failed.');
        return;
      }
      let words = 0;
      for (const m of parsed['messages'] as unknown[]) if (isObject(m) && Array.isArray(m['content'])) for (const b of m['content']) if (isObject(b) && typeof b['text'] === 'string') words += countWords(b['text']);
      const r = resolveReply(script, Math.max(1, words));
      const stopReason = r.stopReason ?? (r.tool === undefined ? 'end_turn' : 'tool_use');
      const usage = { inputTokens: r.tokens.input - r.tokens.cached, outputTokens: r.tokens.output, totalTokens: r.tokens.input + r.tokens.output, ...(r.tokens.cached > 0 ? { cacheReadInputTokens: r.tokens.cached } : {}) };
      const toolId = `tooluse_${nextId()}`;
      if (!stream) {
        const content = [...(r.text === undefined ? [] : [{ text: r.text }]), ...(r.tool === undefined ? [] : [{ toolUse: { toolUseId: toolId, name: r.tool.name, input: JSON.parse(r.tool.arguments) as unknown } }])];
        sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify({ output: { message: { role: 'assistant', content } }, stopReason, usage, metrics: { latencyMs: 1 } }));
        return;
      }
      const frames: Buffer[] = [eventFrame('messageStart', { role: 'assistant' })];
      for (const t of splitPieces(r.text ?? '', r.pieces)) frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: t } }));
      if (r.text !== undefined) frames.push(eventFrame('contentBlockStop', { contentBlockIndex: 0 }));
      if (r.tool !== undefined) {
        frames.push(eventFrame('contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: toolId, name: r.tool.name } } }));
        frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: r.tool.arguments } } }));
        frames.push(eventFrame('contentBlockStop', { contentBlockIndex: 1 }));
      }
      if (script.midStreamError === true) {
        res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
        res.end(Buffer.concat([...frames.slice(0, 2), exceptionFrame('throttlingException', script.errorMessage ?? 'Too many requests, please wait before trying again.')]));
        return;
      }
      frames.push(eventFrame('messageStop', { stopReason }), eventFrame('metadata', { usage, metrics: { latencyMs: 1 } }));
      res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
      if (script.resetAfterChunks !== undefined) {
        ex.intentional = true;
        res.write(Buffer.concat(frames.slice(0, 1 + script.resetAfterChunks)), () => res.destroy());
        return;
      }
      res.end(Buffer.concat(frames));
    });
  }

  setGcpPublicKey(pem: string | undefined): void {
    this.gcpPublicKey = pem;
  }

  private gcpMetadataToken: string | undefined;
  /** Token requests served by the fake metadata server. */
  gcpMetadataCalls = 0;

  setGcpMetadataToken(token: string | undefined): void {
    this.gcpMetadataToken = token;
  }

  /** Why a Vertex AI bearer token is refused (undefined = accepted): the metadata server's token, or a signed JWT with the cloud-platform scope, not expired. */
  private checkGcpToken(header: string): string | undefined {
    if (this.gcpMetadataToken !== undefined && header === `Bearer ${this.gcpMetadataToken}`) return undefined;
    const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/u.exec(header);
    if (m === null) return 'no bearer JWT';
    let head: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      head = JSON.parse(Buffer.from(m[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(m[2] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return 'JWT not JSON';
    }
    if (head['alg'] !== 'RS256') return 'JWT not RS256';
    if (typeof claims['iss'] !== 'string' || !String(claims['scope'] ?? '').includes('https://www.googleapis.com/auth/cloud-platform')) return 'no issuer or no cloud-platform scope';
    if (typeof claims['exp'] !== 'number' || claims['exp'] * 1000 < Date.now()) return 'JWT expired';
    if (this.gcpPublicKey !== undefined && !verify('RSA-SHA256', Buffer.from(`${m[1] as string}.${m[2] as string}`), this.gcpPublicKey, Buffer.from(m[3] as string, 'base64url'))) return 'bad signature';
    return undefined;
  }

  /** A Gemini answer: JSON, or the `alt=sse` stream of GenerateContentResponse chunks. */
  private geminiAnswer(res: ServerResponse, ex: Exchange, script: FakeScript, body: Record<string, unknown>, model: string, sse: boolean): void {
    if (script.headers !== undefined) for (const [k, v] of Object.entries(script.headers)) res.setHeader(k, v);
    if (script.status !== undefined && script.status >= 400) {
      sendBody(res, script.status, JSON_CONTENT_TYPE, geminiErrorBody(script.status, script.errorMessage));
      return;
    }
    const r = resolveReply(script, geminiPromptTokens(body));
    const usage = script.omitUsage === true ? undefined : { promptTokenCount: r.tokens.input, candidatesTokenCount: r.tokens.output - r.tokens.reasoning, totalTokenCount: r.tokens.input + r.tokens.output, ...(r.tokens.cached > 0 ? { cachedContentTokenCount: r.tokens.cached } : {}), ...(r.tokens.reasoning > 0 ? { thoughtsTokenCount: r.tokens.reasoning } : {}) };
    const finishReason = r.stopReason ?? (r.tool === undefined ? 'STOP' : 'STOP');
    const responseId = nextId();
    const toolPart = r.tool === undefined ? [] : [{ functionCall: { name: r.tool.name, args: JSON.parse(r.tool.arguments) as unknown } }];
    if (!sse) {
      const parts = [...(r.text === undefined ? [] : [{ text: r.text }]), ...toolPart];
      sendBody(res, 200, JSON_CONTENT_TYPE, JSON.stringify({ candidates: [{ content: { role: 'model', parts }, finishReason, index: 0 }], ...(usage === undefined ? {} : { usageMetadata: usage }), modelVersion: model, responseId }));
      return;
    }
    const pieces = splitPieces(r.text ?? '', r.pieces);
    const events = pieces.map((t) => sseData({ candidates: [{ content: { role: 'model', parts: [{ text: t }] }, index: 0 }], modelVersion: model, responseId }));
    const last = { candidates: [{ content: { role: 'model', parts: toolPart.length > 0 ? toolPart : [{ text: '' }] }, finishReason, index: 0 }], ...(usage === undefined ? {} : { usageMetadata: usage }), modelVersion: model, responseId };
    res.writeHead(200, SSE_HEADERS);
    if (script.resetAfterChunks !== undefined) {
      this.destroyAfter(res, ex, events.slice(0, Math.max(0, script.resetAfterChunks)).join(''));
      return;
    }
    if (script.midStreamError === true) {
      res.end((events[0] ?? '') + sseData({ error: { code: 500, message: script.errorMessage ?? 'An internal error has occurred.', status: 'INTERNAL' } }));
      return;
    }
    res.end(events.join('') + sseData(last));
  }

  /** Write `data` (and the headers), then destroy the socket once it is flushed. */
  private destroyAfter(res: ServerResponse, ex: Exchange, data: string): void {
    ex.intentional = true;
    res.write(data, () => res.destroy());
  }

  private embeddings(
    res: ServerResponse,
    ex: Exchange,
    script: FakeScript,
    body: Record<string, unknown>,
    model: string,
  ): void {
    const out = embeddingsJson(script, body, model);
    if (out === undefined) {
      if (this.preface(res, script, 'openai')) return;
      this.sendError(res, 'openai', 400, 'invalid_request_error', "'input' must be a string or an array of strings or token arrays.");
      return;
    }
    this.respondJson(res, ex, script, 'openai', out);
  }

  /** OpenAI moderations: each input text scored by {@link moderate} (trigger words, deterministic). */
  private moderations(res: ServerResponse, ex: Exchange, script: FakeScript, body: Record<string, unknown>, model: string): void {
    const input = body['input'];
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) && input.every((x) => typeof x === 'string') ? (input as string[]) : undefined;
    if (texts === undefined) {
      if (this.preface(res, script, 'openai')) return;
      this.sendError(res, 'openai', 400, 'invalid_request_error', "'input' must be a string or an array of strings.");
      return;
    }
    this.respondJson(res, ex, script, 'openai', JSON.stringify({ id: `modr-${nextId()}`, model: model || 'omni-moderation-latest', results: texts.map(moderate) }));
  }

  private generate(
    res: ServerResponse,
    ex: Exchange,
    script: FakeScript,
    body: Record<string, unknown>,
    model: string,
    endpoint: 'chat' | 'messages',
  ): void {
    const shape: Shape = endpoint === 'chat' ? 'openai' : 'anthropic';
    const stream = body['stream'] === true;
    const opts = body['stream_options'];
    const includeUsage = endpoint === 'chat' && stream && isObject(opts) && opts['include_usage'] === true;
    const inputTokens = promptTokens(body);
    const key = `${endpoint === 'chat' ? 'c' : 'm'}${stream ? 1 : 0}${includeUsage ? 1 : 0}|${inputTokens}|${model}`;
    const plan = cachedPlan(script, key, () => {
      const r = resolveReply(script, inputTokens);
      if (!stream) return compile(endpoint === 'chat' ? openaiChatJson(r, model) : anthropicJson(r, model));
      return endpoint === 'chat' ? openaiChatStream(r, model, includeUsage, script) : anthropicStream(r, model, script);
    });
    const id = nextId();
    const created = String(Math.floor(Date.now() / 1000));
    if (!('whole' in plan)) {
      this.respondJson(res, ex, script, shape, render(plan, id, created));
      return;
    }
    if (this.preface(res, script, shape, script.garbage === 'sse' ? render(plan.pre, id, created) : '')) return;
    this.stream(res, ex, script, plan, id, created);
  }

  private stream(res: ServerResponse, ex: Exchange, script: FakeScript, plan: StreamPlan, id: string, created: string): void {
    res.writeHead(200, SSE_HEADERS);
    const reset = script.resetAfterChunks;
    const interval = script.chunkIntervalMs ?? 0;
    if (reset === undefined && script.midStreamError !== true && !(interval > 0)) {
      res.write(render(plan.whole, id, created));
      res.end();
      return;
    }
    // Groups written one per interval: the preamble with the first delta, each further delta, the end.
    const groups: string[] = [];
    let ending: 'end' | 'reset' = 'end';
    if (reset !== undefined) {
      const n = Math.min(Math.max(0, Math.floor(reset)), plan.deltas.length);
      let first = render(plan.pre, id, created);
      if (n > 0) first += render(plan.deltas[0] as Template, id, created);
      groups.push(first);
      for (let i = 1; i < n; i++) groups.push(render(plan.deltas[i] as Template, id, created));
      ending = 'reset';
    } else if (script.midStreamError === true) {
      let first = render(plan.pre, id, created);
      if (plan.deltas.length > 0) first += render(plan.deltas[0] as Template, id, created);
      groups.push(first, render(plan.error, id, created));
    } else {
      let first = render(plan.pre, id, created);
      if (plan.deltas.length > 0) first += render(plan.deltas[0] as Template, id, created);
      groups.push(first);
      for (let i = 1; i < plan.deltas.length; i++) groups.push(render(plan.deltas[i] as Template, id, created));
      groups.push(render(plan.post, id, created));
    }
    const finish = (data: string): void => {
      if (ending === 'reset') this.destroyAfter(res, ex, data);
      else res.end(data);
    };
    if (!(interval > 0)) {
      finish(groups.join(''));
      return;
    }
    let i = 0;
    const step = (): void => {
      ex.timer = undefined;
      if (res.destroyed) return;
      const g = groups[i++] ?? '';
      if (i >= groups.length) {
        finish(g);
        return;
      }
      res.write(g);
      ex.timer = setTimeout(step, interval);
    };
    step();
  }
}

/** Start a fake provider on 127.0.0.1 (by default) and an ephemeral port (by default). */
export function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer();
  server.keepAliveTimeout = 65_000;
  const fake = new FakeProviderServer(server, options.record !== false);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => fake.handle(req, res));
  return new Promise<FakeProvider>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      fake.port = port;
      fake.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      resolve(fake);
    });
  });
}

/** The categories of OpenAI's omni moderation model. */
export const MODERATION_CATEGORIES = [
  'harassment',
  'harassment/threatening',
  'hate',
  'hate/threatening',
  'illicit',
  'illicit/violent',
  'self-harm',
  'self-harm/intent',
  'self-harm/instructions',
  'sexual',
  'sexual/minors',
  'violence',
  'violence/graphic',
] as const;

/**
 * The fake moderation verdict of one text: a category scores 0.92 (flagged) when one of its trigger
 * words is in the text, 0.4 (not flagged; for threshold tests) for its borderline word, 0.001
 * otherwise. Triggers: violence "kill", "murder" (borderline "fight"); self-harm "suicide";
 * harassment "idiot"; illicit "counterfeit".
 */
export function moderate(text: string): { flagged: boolean; categories: Record<string, boolean>; category_scores: Record<string, number> } {
  const words = new Set(text.toLowerCase().split(/[^a-z-]+/u));
  const triggers: Record<string, readonly string[]> = { violence: ['kill', 'murder'], 'self-harm': ['suicide'], harassment: ['idiot'], illicit: ['counterfeit'] };
  const borderline: Record<string, string> = { violence: 'fight' };
  const categories: Record<string, boolean> = {};
  const scores: Record<string, number> = {};
  for (const c of MODERATION_CATEGORIES) {
    const hit = (triggers[c] ?? []).some((w) => words.has(w));
    scores[c] = hit ? 0.92 : borderline[c] !== undefined && words.has(borderline[c]) ? 0.4 : 0.001;
    categories[c] = hit;
  }
  return { flagged: Object.values(categories).some(Boolean), categories, category_scores: scores };
}

/** Answers a Bedrock request with an AWS error (its type in `x-amzn-errortype`); returns undefined. */
function bedrockRefusal(res: ServerResponse): (status: number, type: string, message: string) => undefined {
  return (status, type, message) => {
    res.setHeader('x-amzn-errortype', `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`);
    sendBody(res, status, JSON_CONTENT_TYPE, JSON.stringify({ message }));
    return undefined;
  };
}

/** A request body as JSON, or undefined when it is not JSON. */
function jsonOrUndefined(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}
