import { SluiceError } from '@sluice/core';
import type { SnapshotBackend, SnapshotGuardrail } from '@sluice/policy';
import { callUpstream, upstreamStatusError, type UpstreamPools } from '../upstream.js';

/**
 * The external classifier of an LLMGuardrail: the texts of a request (or of its answer) are sent to
 * a moderation endpoint served by one of the snapshot's backends, with the backend's credential,
 * and its verdict — the categories it flags — is turned into findings. Two wire formats:
 *
 * - `openaiModeration`: `POST /v1/moderations {model, input: [text]}` → `results[].categories`
 *   (booleans) and `category_scores`; OpenAI's, Mistral's, and any self-hosted classifier that
 *   speaks it. A category counts when flagged, or, with a threshold, when its score reaches it.
 * - `llamaGuard`: a Llama Guard model behind an OpenAI-schema chat API (vLLM, Ollama, …). The
 *   conversation is sent as chat messages; the model answers `safe`, or `unsafe` and a line of
 *   category codes (`S1,S10`).
 *
 * The parsers are pure; {@link classify} does the one HTTP exchange.
 */

export interface ClassifierPolicy {
  readonly backend: string;
  readonly model: string;
  readonly format: 'openaiModeration' | 'llamaGuard';
  /** Categories that count; undefined = every flagged one. */
  readonly categories: ReadonlySet<string> | undefined;
  /** Score (0..1000) at which a category counts; 0 = the endpoint's own flags. */
  readonly thresholdMilli: number;
  readonly timeoutMs: number;
  readonly failClosed: boolean;
  readonly maxChars: number;
}

export function classifierPolicy(g: SnapshotGuardrail): ClassifierPolicy | undefined {
  if (g.classifierBackend === '') return undefined;
  return {
    backend: g.classifierBackend,
    model: g.classifierModel,
    format: g.classifierFormat === 'llamaGuard' ? 'llamaGuard' : 'openaiModeration',
    categories: g.classifierCategories.length === 0 ? undefined : new Set(g.classifierCategories),
    thresholdMilli: g.classifierThresholdMilli,
    timeoutMs: g.classifierTimeoutMs > 0 ? g.classifierTimeoutMs : 2000,
    failClosed: g.classifierFailClosed,
    maxChars: g.classifierMaxChars > 0 ? g.classifierMaxChars : 32_000,
  };
}

/** What is asked: the user's side of the conversation, and (for output) the answer. */
export interface ClassifierInput {
  readonly direction: 'input' | 'output';
  /** The request's texts (already redacted by the detectors, if any redact). */
  readonly prompt: string;
  /** The answer's text (output only). */
  readonly answer?: string;
}

/** `text` cut to its last `max` characters (the end of a conversation matters most). */
export function tail(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}

/** The request body for the classifier, and the backend endpoint (`paths` key) it goes to. */
export function classifierRequest(p: ClassifierPolicy, input: ClassifierInput): { endpoint: 'moderations' | 'chat'; body: string } {
  if (p.format === 'llamaGuard') {
    const messages: Array<{ role: string; content: string }> = [{ role: 'user', content: tail(input.prompt, p.maxChars) }];
    if (input.direction === 'output') messages.push({ role: 'assistant', content: tail(input.answer ?? '', p.maxChars) });
    return { endpoint: 'chat', body: JSON.stringify({ model: p.model, messages, max_tokens: 32, temperature: 0, stream: false }) };
  }
  const text = input.direction === 'output' ? (input.answer ?? '') : input.prompt;
  return { endpoint: 'moderations', body: JSON.stringify({ model: p.model, input: [tail(text, p.maxChars)] }) };
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The categories that count in a moderation answer (OpenAI shape). Throws on an answer that is not
 * one (a classifier that answers garbage has failed, and `onError` decides).
 */
export function parseModeration(text: string, p: Pick<ClassifierPolicy, 'categories' | 'thresholdMilli'>): string[] {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The moderation answer is not JSON');
  }
  const results = isObj(j) ? j['results'] : undefined;
  if (!Array.isArray(results) || results.length === 0 || !results.every(isObj)) throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The moderation answer has no results');
  const found = new Set<string>();
  for (const r of results as Json[]) {
    const cats = isObj(r['categories']) ? r['categories'] : {};
    const scores = isObj(r['category_scores']) ? r['category_scores'] : {};
    const names = new Set([...Object.keys(cats), ...Object.keys(scores)]);
    for (const name of names) {
      if (p.categories !== undefined && !p.categories.has(name)) continue;
      const score = scores[name];
      const hit = p.thresholdMilli > 0 ? typeof score === 'number' && score * 1000 >= p.thresholdMilli : cats[name] === true;
      if (hit) found.add(name);
    }
    // An endpoint that flags without naming categories still counts (when no filter is set).
    if (found.size === 0 && p.categories === undefined && p.thresholdMilli === 0 && r['flagged'] === true && names.size === 0) found.add('flagged');
  }
  return [...found].sort();
}

/**
 * The categories of a Llama Guard verdict in a chat completion: [] for `safe`, the codes after
 * `unsafe` (or `unsafe` alone when it names none). Throws on anything else.
 */
export function parseLlamaGuard(text: string, p: Pick<ClassifierPolicy, 'categories'>): string[] {
  let content: unknown;
  try {
    const j = JSON.parse(text) as unknown;
    const choices = isObj(j) ? j['choices'] : undefined;
    const first = Array.isArray(choices) && isObj(choices[0]) ? choices[0] : undefined;
    content = isObj(first?.['message']) ? first['message']['content'] : undefined;
  } catch {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The classifier answer is not JSON');
  }
  if (typeof content !== 'string') throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The classifier answer has no message content');
  const lines = content.trim().split(/\s*\n\s*/u);
  const verdict = (lines[0] ?? '').toLowerCase();
  if (verdict === 'safe') return [];
  if (verdict !== 'unsafe') throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The classifier answered neither safe nor unsafe');
  const codes = (lines[1] ?? '')
    .split(/[\s,]+/u)
    .map((c) => c.trim())
    .filter((c) => /^[A-Za-z0-9_/-]{1,40}$/u.test(c));
  const all = codes.length === 0 ? ['unsafe'] : codes;
  return p.categories === undefined ? all : all.filter((c) => p.categories!.has(c));
}

/** Asks the classifier. Resolves to the categories that count; throws SluiceError when it fails. */
export async function classify(pools: UpstreamPools, backend: SnapshotBackend, p: ClassifierPolicy, input: ClassifierInput): Promise<string[]> {
  const req = classifierRequest(p, input);
  const path = backend.paths[req.endpoint];
  if (path === undefined) throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `Backend ${backend.id} has no ${req.endpoint} API`);
  const r = await callUpstream(pools, backend, { method: 'POST', path: path.replace('{model}', encodeURIComponent(p.model)), body: req.body, timeoutMs: p.timeoutMs, maxBytes: 1024 * 1024 });
  if (r.status >= 300) throw upstreamStatusError(r.status, {}, r.text);
  return p.format === 'llamaGuard' ? parseLlamaGuard(r.text, p) : parseModeration(r.text, p);
}
