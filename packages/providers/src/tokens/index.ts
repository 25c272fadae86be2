/**
 * Prompt-token estimates for requests on the way in, used to reserve `estimate + max output` against
 * token limits before a request is sent; the reservation is settled later with the provider's real
 * usage. An undercount becomes debt, so every choice below errs high, but not wildly.
 *
 * Counting method, by model (case-insensitive; `openai/` and `ft:` prefixes ignored):
 *  - o200k_base, exact BPE via gpt-tokenizer: gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*,
 *    chatgpt-*, codex-*, gpt-oss*.
 *  - cl100k_base, exact BPE: gpt-4 (non-o), gpt-3.5*, text-embedding-*.
 *  - everything else (Claude, whose tokenizer is not public; open models; unknown names): the
 *    calibrated heuristic in ./heuristic.ts, `method: 'heuristic'`.
 *  Encodings load on the first count that needs them, never at import (./bpe.ts). Measured on
 *  Node 22.23 (fresh process, idle RSS ≈ 44 MB, after GC): o200k_base ≈ +62–65 MB RSS / +20 MB heap,
 *  ≈ 130 ms on first use; cl100k_base ≈ +38 MB RSS / +10.5 MB heap, ≈ 60 ms; both ≈ +73 MB RSS.
 *  A sidecar that only serves Claude or unknown models never pays it.
 *  If loading or encoding fails, the heuristic is used and the estimate says so.
 *
 * OpenAI chat completions (OpenAI's published counting recipe for chat models): 3 tokens per message,
 * plus the tokens of its role and of every other string field, +1 for `name`, +3 for the assistant
 * reply priming. `tool_calls` / `function_call` are counted as their JSON. `tools`, legacy
 * `functions` and a `response_format` schema are counted as their JSON serialisation (+12): the
 * provider renders them more compactly, so this overcounts slightly. Content parts: text exactly;
 * images at a fixed cost since their size is unknown here:
 *    - default (gpt-4o, 4.1, 5, o-series): high/auto detail 765 (= 85 + 4 × 170, a 1024×1024 image in
 *      4 tiles), low detail 85;
 *    - gpt-4o-mini (billed with 2833 base + 5667 per tile): high 25501, low 2833;
 *    - patch-priced models (gpt-4.1-mini/-nano, o4-mini, gpt-5-mini/-nano): 3800, the 1536-patch cap
 *      times the largest published multiplier (2.46).
 *    A larger-than-1024² high-detail image can cost more (up to 1445 at default pricing); callers
 *    sending many huge images will be under-reserved by that difference.
 *  Audio input: 1 token per 400 decoded bytes (≈ 10 tokens/s of 32 kbit/s audio; raw PCM is far
 *  cheaper, so this overcounts it). Files (PDF): 3000 tokens per page, pages = max(1, `/Type /Page`
 *  objects found, decoded bytes / 100 kB).
 *
 * Anthropic messages: 8 base + 5 per message; text, thinking and tool inputs (as JSON) counted; each
 * image 1600 (Anthropic's documented ≈ w·h/750 for the largest unresized image, ≈ 1.15 MP); PDFs as
 * above; `tools` as JSON + 350 for the tool-use system prompt Anthropic documents (~313–346).
 *
 * OpenAI embeddings: `input` strings counted exactly (no overhead); token-id arrays count their
 * length.
 *
 * Everything here is total: wrong types are skipped or counted as their JSON, nothing throws.
 * Cost is linear in the body size. 100 KB of text: heuristic ≈ 0.5 ms warm (≈ 3 ms cold JIT),
 * o200k ≈ 2–9 ms depending on how repetitive the text is (./index.test.ts prints a measurement).
 */
import { bpeCount, type EncodingName } from './bpe.js';
import { heuristicTokens } from './heuristic.js';

export { heuristicTokens } from './heuristic.js';

export interface TokenEstimate {
  readonly promptTokens: number;
  readonly maxOutputTokens: number | undefined;
  readonly method: 'tokenizer' | 'heuristic';
}

export type EstimateApi = 'openai-chat' | 'anthropic-messages' | 'openai-embeddings';

// ---- model → encoding ----

const O200K_PREFIXES = ['gpt-4o', 'gpt-4.1', 'gpt-4.5', 'gpt-5', 'o1', 'o3', 'o4', 'chatgpt-', 'codex-', 'gpt-oss'];
const CL100K_PREFIXES = ['gpt-4', 'gpt-3.5', 'text-embedding-'];

function normaliseModel(model: unknown): string {
  if (typeof model !== 'string') return '';
  let m = model.trim().toLowerCase();
  if (m.startsWith('openai/')) m = m.slice(7);
  if (m.startsWith('ft:')) m = m.slice(3);
  return m;
}

function encodingFor(m: string): EncodingName | undefined {
  for (const p of O200K_PREFIXES) if (m.startsWith(p)) return 'o200k_base';
  for (const p of CL100K_PREFIXES) if (m.startsWith(p)) return 'cl100k_base';
  return undefined;
}

/** Counts strings with the model's encoding, falling back to the heuristic (and remembering it). */
class Counter {
  method: 'tokenizer' | 'heuristic';
  private encoding: EncodingName | undefined;

  constructor(model: string) {
    this.encoding = encodingFor(model);
    this.method = this.encoding === undefined ? 'heuristic' : 'tokenizer';
  }

  text(value: unknown): number {
    if (typeof value !== 'string' || value.length === 0) return 0;
    if (this.encoding !== undefined) {
      try {
        return bpeCount(value, this.encoding);
      } catch {
        this.encoding = undefined;
        this.method = 'heuristic';
      }
    }
    return heuristicTokens(value);
  }

  /** Strings exactly; anything else as its JSON. */
  any(value: unknown): number {
    if (value === undefined || value === null) return 0;
    if (typeof value === 'string') return this.text(value);
    return this.text(safeJson(value));
  }
}

export function countTextTokens(text: string, model: string): { tokens: number; method: 'tokenizer' | 'heuristic' } {
  try {
    const c = new Counter(normaliseModel(model));
    const tokens = c.text(text);
    return { tokens, method: c.method };
  } catch {
    return { tokens: typeof text === 'string' ? heuristicTokens(text) : 0, method: 'heuristic' };
  }
}

/** Estimate for an OpenAI chat completions body (parsed JSON), Anthropic messages body, OpenAI embeddings body. */
export function estimateRequest(api: EstimateApi, body: Record<string, unknown>, model: string): TokenEstimate {
  const m = normaliseModel(model);
  const c = new Counter(m);
  const b: Record<string, unknown> = isObject(body) ? body : {};
  try {
    switch (api) {
      case 'openai-chat':
        return { promptTokens: openaiChat(c, b, m), maxOutputTokens: tokenLimit(b['max_completion_tokens']) ?? tokenLimit(b['max_tokens']), method: c.method };
      case 'anthropic-messages':
        return { promptTokens: anthropicMessages(c, b), maxOutputTokens: tokenLimit(b['max_tokens']), method: c.method };
      case 'openai-embeddings':
        return { promptTokens: embeddings(c, b['input']), maxOutputTokens: undefined, method: c.method };
      default:
        return { promptTokens: heuristicTokens(safeJson(b)), maxOutputTokens: undefined, method: 'heuristic' };
    }
  } catch {
    // Should be unreachable; never let an estimate fail a request.
    return { promptTokens: heuristicTokens(safeJson(b)), maxOutputTokens: undefined, method: 'heuristic' };
  }
}

// ---- OpenAI chat ----

const OPENAI_PER_MESSAGE = 3;
const OPENAI_PER_NAME = 1;
const OPENAI_REPLY_PRIMING = 3;
const SCHEMA_OVERHEAD = 12;

function openaiChat(c: Counter, body: Record<string, unknown>, model: string): number {
  let total = OPENAI_REPLY_PRIMING;
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    for (const msg of messages) {
      total += OPENAI_PER_MESSAGE;
      if (!isObject(msg)) {
        total += c.any(msg);
        continue;
      }
      for (const key of Object.keys(msg)) {
        const value = msg[key];
        switch (key) {
          case 'content':
            total += openaiContent(c, value, model);
            break;
          case 'name':
            total += c.any(value) + OPENAI_PER_NAME;
            break;
          default:
            // role, tool_call_id, refusal as strings; tool_calls, function_call, audio as JSON.
            total += c.any(value);
        }
      }
    }
  }
  for (const key of ['tools', 'functions'] as const) {
    const v = body[key];
    if (Array.isArray(v) && v.length > 0) total += c.any(v) + SCHEMA_OVERHEAD;
  }
  const rf = body['response_format'];
  if (isObject(rf) && rf['type'] === 'json_schema') total += c.any(rf['json_schema']) + SCHEMA_OVERHEAD;
  return total;
}

function openaiContent(c: Counter, content: unknown, model: string): number {
  if (typeof content === 'string') return c.text(content);
  if (!Array.isArray(content)) return c.any(content);
  let total = 0;
  for (const part of content) {
    if (!isObject(part)) {
      total += c.any(part);
      continue;
    }
    switch (part['type']) {
      case 'text':
        total += c.any(part['text']);
        break;
      case 'refusal':
        total += c.any(part['refusal']);
        break;
      case 'image_url': {
        const img = part['image_url'];
        total += openaiImageTokens(model, isObject(img) ? img['detail'] : undefined);
        break;
      }
      case 'input_audio': {
        const a = part['input_audio'];
        total += audioTokens(isObject(a) ? a['data'] : undefined);
        break;
      }
      case 'file': {
        const f = part['file'];
        total += isObject(f) ? c.any(f['filename']) + pdfTokens(f['file_data']) : c.any(f);
        break;
      }
      default:
        total += c.any(part);
    }
  }
  return total;
}

function openaiImageTokens(model: string, detail: unknown): number {
  const low = detail === 'low';
  if (model.startsWith('gpt-4o-mini')) return low ? 2833 : 25501;
  if (
    model.startsWith('gpt-4.1-mini') ||
    model.startsWith('gpt-4.1-nano') ||
    model.startsWith('o4-mini') ||
    model.startsWith('gpt-5-mini') ||
    model.startsWith('gpt-5-nano')
  ) {
    return 3800;
  }
  return low ? 85 : 765;
}

// ---- Anthropic messages ----

const ANTHROPIC_BASE = 8;
const ANTHROPIC_PER_MESSAGE = 5;
const ANTHROPIC_PER_BLOCK = 3;
const ANTHROPIC_TOOL_SYSTEM = 350;
const ANTHROPIC_IMAGE = 1600;
const MAX_DEPTH = 4;

function anthropicMessages(c: Counter, body: Record<string, unknown>): number {
  let total = ANTHROPIC_BASE;
  total += anthropicContent(c, body['system'], 0);
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    for (const msg of messages) {
      total += ANTHROPIC_PER_MESSAGE;
      if (isObject(msg)) total += anthropicContent(c, msg['content'], 0);
      else total += c.any(msg);
    }
  }
  const tools = body['tools'];
  if (Array.isArray(tools) && tools.length > 0) total += c.any(tools) + ANTHROPIC_TOOL_SYSTEM;
  return total;
}

function anthropicContent(c: Counter, content: unknown, depth: number): number {
  if (content === undefined || content === null) return 0;
  if (typeof content === 'string') return c.text(content);
  if (!Array.isArray(content)) return c.any(content);
  let total = 0;
  for (const block of content) total += anthropicBlock(c, block, depth);
  return total;
}

function anthropicBlock(c: Counter, block: unknown, depth: number): number {
  if (!isObject(block)) return c.any(block);
  let t = ANTHROPIC_PER_BLOCK;
  switch (block['type']) {
    case 'text':
      return t + c.any(block['text']);
    case 'thinking':
      return t + c.any(block['thinking']);
    case 'image':
      return t + ANTHROPIC_IMAGE;
    case 'document': {
      const src = block['source'];
      t += c.any(block['title']) + c.any(block['context']);
      if (!isObject(src)) return t;
      if (src['type'] === 'text') return t + c.any(src['data']);
      if (src['type'] === 'content') return t + (depth < MAX_DEPTH ? anthropicContent(c, src['content'], depth + 1) : c.any(src['content']));
      if (src['type'] === 'base64') return t + pdfTokens(src['data']);
      return t + PDF_TOKENS_PER_PAGE;
    }
    case 'tool_use':
    case 'server_tool_use':
      return t + c.any(block['name']) + c.any(block['input']);
    case 'tool_result':
      return t + c.any(block['tool_use_id']) + (depth < MAX_DEPTH ? anthropicContent(c, block['content'], depth + 1) : c.any(block['content']));
    default:
      // redacted_thinking, web search results, unknown blocks: their JSON.
      return t + c.any(block);
  }
}

// ---- OpenAI embeddings ----

function embeddings(c: Counter, input: unknown): number {
  if (typeof input === 'string') return c.text(input);
  if (!Array.isArray(input)) return c.any(input);
  let total = 0;
  for (const item of input) {
    if (typeof item === 'string') total += c.text(item);
    else if (typeof item === 'number') total += 1;
    else if (Array.isArray(item)) total += item.length;
    else total += c.any(item);
  }
  return total;
}

// ---- binary payloads ----

const AUDIO_BYTES_PER_TOKEN = 400;
const PDF_TOKENS_PER_PAGE = 3000;
const PDF_BYTES_PER_PAGE = 100_000;
const PDF_PAGE_MARKERS = ['/Type /Page', '/Type/Page'];

function base64Payload(data: unknown): string {
  if (typeof data !== 'string') return '';
  const comma = data.startsWith('data:') ? data.indexOf(',') : -1;
  return comma >= 0 ? data.slice(comma + 1) : data;
}

function audioTokens(data: unknown): number {
  const b64 = base64Payload(data);
  return Math.ceil((b64.length * 3) / 4 / AUDIO_BYTES_PER_TOKEN);
}

function pdfTokens(data: unknown): number {
  const b64 = base64Payload(data);
  if (b64.length === 0) return PDF_TOKENS_PER_PAGE;
  let pages = 0;
  try {
    const bytes = Buffer.from(b64, 'base64');
    for (const marker of PDF_PAGE_MARKERS) {
      let at = bytes.indexOf(marker);
      while (at >= 0) {
        if (bytes[at + marker.length] !== 0x73 /* 's': /Pages is the page tree */) pages++;
        at = bytes.indexOf(marker, at + marker.length);
      }
    }
    pages = Math.max(1, pages, Math.ceil(bytes.length / PDF_BYTES_PER_PAGE));
  } catch {
    pages = Math.max(1, Math.ceil((b64.length * 3) / 4 / PDF_BYTES_PER_PAGE));
  }
  return pages * PDF_TOKENS_PER_PAGE;
}

// ---- helpers ----

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenLimit(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : undefined;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return '';
  }
}
