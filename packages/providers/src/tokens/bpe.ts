/**
 * Lazy access to gpt-tokenizer's exact BPE encodings.
 *
 * Nothing from gpt-tokenizer is loaded when this module is imported: each encoding's rank table
 * (o200k_base ≈ 2.4 MB of source, cl100k_base ≈ 1.2 MB) is `require`d through the package's
 * synchronous per-encoding CommonJS entry point the first time a count for that encoding is asked
 * for, then kept for the life of the process. See the header of ./index.ts for the measured cost.
 */
import { createRequire } from 'node:module';

export type EncodingName = 'o200k_base' | 'cl100k_base';

/** The part of gpt-tokenizer's per-encoding API this module uses. */
interface EncodingApi {
  countTokens(text: string, options?: { disallowedSpecial?: Set<string> }): number;
}

const requireCjs = createRequire(import.meta.url);
const loaded = new Map<EncodingName, EncodingApi>();
/** Special-token strings in user text are counted as ordinary text, never rejected. */
const TEXT_ONLY = { disallowedSpecial: new Set<string>() };

function load(name: EncodingName): EncodingApi {
  let api = loaded.get(name);
  if (api === undefined) {
    api = requireCjs(`gpt-tokenizer/encoding/${name}`) as EncodingApi;
    loaded.set(name, api);
  }
  return api;
}

/**
 * Counts of recent texts (system prompts, tool definitions and few-shot turns repeat from request to
 * request): two generations of at most MEMO_CHARS characters each, strings up to MEMO_MAX_TEXT
 * characters. A lookup hashes the string once, far cheaper than encoding it.
 */
const MEMO_CHARS = 4 * 1024 * 1024;
const MEMO_MAX_TEXT = 64 * 1024;
const memo: Record<EncodingName, { current: Map<string, number>; previous: Map<string, number>; chars: number }> = {
  o200k_base: { current: new Map(), previous: new Map(), chars: 0 },
  cl100k_base: { current: new Map(), previous: new Map(), chars: 0 },
};

/** Exact token count of `text` in `encoding`. May throw if the package cannot be loaded. */
export function bpeCount(text: string, encoding: EncodingName): number {
  if (text.length === 0) return 0;
  if (text.length > MEMO_MAX_TEXT) return load(encoding).countTokens(text, TEXT_ONLY);
  const m = memo[encoding];
  let n = m.current.get(text);
  if (n !== undefined) return n;
  n = m.previous.get(text) ?? load(encoding).countTokens(text, TEXT_ONLY);
  if (m.chars + text.length > MEMO_CHARS) {
    m.previous = m.current;
    m.current = new Map();
    m.chars = 0;
  }
  m.current.set(text, n);
  m.chars += text.length;
  return n;
}

/** Which encodings have been loaded so far (for tests and diagnostics). */
export function loadedEncodings(): EncodingName[] {
  return [...loaded.keys()];
}
