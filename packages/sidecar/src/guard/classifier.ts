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
 * - `bedrockGuardrail`: an Amazon Bedrock guardrail, `POST /guardrail/<id>/version/<v>/apply`
 *   through a Bedrock backend (SigV4 with its credentials); `GUARDRAIL_INTERVENED` with the
 *   policies that acted (content filter types such as `VIOLENCE`, `topic:<name>`, `word`,
 *   `pii:<TYPE>`, `regex:<name>`, `grounding:<type>`).
 * - `azureContentSafety`: Azure AI Content Safety `text:analyze` (at most 10,000 characters);
 *   categories (`Hate`, `SelfHarm`, `Sexual`, `Violence`) count from severity 1 of 7, or from the
 *   threshold × 7; blocklist hits are `blocklist:<name>`.
 *
 * The parsers are pure; {@link classify} does the one HTTP exchange.
 */

export interface ClassifierPolicy {
  readonly backend: string;
  /** That backend in the snapshot (resolved once; `checkSnapshot` refuses a snapshot without it). */
  readonly target: SnapshotBackend | undefined;
  readonly model: string;
  readonly format: 'openaiModeration' | 'llamaGuard' | 'bedrockGuardrail' | 'azureContentSafety';
  /** Categories that count; undefined = every flagged one. */
  readonly categories: ReadonlySet<string> | undefined;
  /** Score (0..1000) at which a category counts; 0 = the endpoint's own flags. */
  readonly thresholdMilli: number;
  readonly timeoutMs: number;
  readonly failClosed: boolean;
  readonly maxChars: number;
  /** Streamed answers: ask every this many characters too (0 = only at the end). */
  readonly streamCheckChars: number;
}

export function classifierPolicy(g: SnapshotGuardrail, backends: readonly SnapshotBackend[]): ClassifierPolicy | undefined {
  if (g.classifierBackend === '') return undefined;
  return {
    backend: g.classifierBackend,
    target: backends.find((b) => b.id === g.classifierBackend),
    model: g.classifierModel,
    format: g.classifierFormat === 'llamaGuard' || g.classifierFormat === 'bedrockGuardrail' || g.classifierFormat === 'azureContentSafety' ? g.classifierFormat : 'openaiModeration',
    categories: g.classifierCategories.length === 0 ? undefined : new Set(g.classifierCategories),
    thresholdMilli: g.classifierThresholdMilli,
    timeoutMs: g.classifierTimeoutMs > 0 ? g.classifierTimeoutMs : 2000,
    failClosed: g.classifierFailClosed,
    maxChars: g.classifierMaxChars > 0 ? g.classifierMaxChars : 32_000,
    streamCheckChars: g.classifierStreamCheckChars,
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

/** Longest text Azure AI Content Safety analyses in one call. */
const AZURE_CONTENT_SAFETY_MAX_CHARS = 10_000;

/** A Bedrock guardrail's identifier (id or ARN) and version from `<id>:<version>` (no version: DRAFT). */
export function guardrailRef(model: string): { id: string; version: string } {
  const at = model.lastIndexOf(':');
  const version = at === -1 ? '' : model.slice(at + 1);
  // An ARN without a version ends in `guardrail/<id>`: its last colon is not a version separator.
  if (at === -1 || !/^(?:[1-9][0-9]{0,7}|DRAFT)$/u.test(version)) return { id: model, version: 'DRAFT' };
  return { id: model.slice(0, at), version };
}

/** The request body for the classifier, and the backend endpoint (`paths` key) it goes to. */
export function classifierRequest(p: ClassifierPolicy, input: ClassifierInput): { endpoint: 'moderations' | 'chat' | 'applyGuardrail' | 'contentSafety'; body: string } {
  if (p.format === 'azureContentSafety') {
    const text = input.direction === 'output' ? (input.answer ?? '') : input.prompt;
    return { endpoint: 'contentSafety', body: JSON.stringify({ text: tail(text, Math.min(p.maxChars, AZURE_CONTENT_SAFETY_MAX_CHARS)), outputType: 'FourSeverityLevels' }) };
  }
  if (p.format === 'bedrockGuardrail') {
    const text = input.direction === 'output' ? (input.answer ?? '') : input.prompt;
    return { endpoint: 'applyGuardrail', body: JSON.stringify({ source: input.direction === 'output' ? 'OUTPUT' : 'INPUT', content: [{ text: { text: tail(text, p.maxChars) } }] }) };
  }
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

/** A classifier's answer as JSON; garbage is a failed classifier (`onError` decides). */
function answerJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `The ${what} answer is not JSON`);
  }
}

/** The categories that count of those a classifier named (all of them without a filter). */
function counting(named: readonly string[], p: Pick<ClassifierPolicy, 'categories'>): string[] {
  return p.categories === undefined ? [...named] : named.filter((c) => p.categories!.has(c));
}

/**
 * The categories that count in a moderation answer (OpenAI shape). Throws on an answer that is not
 * one (a classifier that answers garbage has failed, and `onError` decides).
 */
export function parseModeration(text: string, p: Pick<ClassifierPolicy, 'categories' | 'thresholdMilli'>): string[] {
  const j = answerJson(text, 'moderation');
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
  const j = answerJson(text, 'classifier');
  const choices = isObj(j) ? j['choices'] : undefined;
  const first = Array.isArray(choices) && isObj(choices[0]) ? choices[0] : undefined;
  const content = isObj(first?.['message']) ? first['message']['content'] : undefined;
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
  return counting(all, p);
}

/**
 * The categories of an ApplyGuardrail answer: none for `NONE`; for `GUARDRAIL_INTERVENED`, every
 * assessed policy entry that acted (blocked or anonymised), or `intervened` when none is named.
 */
export function parseBedrockGuardrail(text: string, p: Pick<ClassifierPolicy, 'categories'>): string[] {
  const j = answerJson(text, 'guardrail');
  const action = isObj(j) ? j['action'] : undefined;
  if (action === 'NONE') return [];
  if (action !== 'GUARDRAIL_INTERVENED') throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The guardrail answer has no action');
  const found = new Set<string>();
  const acted = (e: unknown): e is Json => isObj(e) && (e['action'] === 'BLOCKED' || e['action'] === 'ANONYMIZED' || (e['action'] === undefined && e['detected'] === true));
  const list = (o: unknown, key: string): unknown[] => (isObj(o) && Array.isArray(o[key]) ? (o[key] as unknown[]) : []);
  for (const a of isObj(j) && Array.isArray(j['assessments']) ? (j['assessments'] as unknown[]) : []) {
    if (!isObj(a)) continue;
    for (const f of list(a['contentPolicy'], 'filters')) if (acted(f)) found.add(String(f['type']));
    for (const t of list(a['topicPolicy'], 'topics')) if (acted(t)) found.add(`topic:${String(t['name'])}`);
    for (const w of [...list(a['wordPolicy'], 'customWords'), ...list(a['wordPolicy'], 'managedWordLists')]) if (acted(w)) found.add('word');
    for (const e of list(a['sensitiveInformationPolicy'], 'piiEntities')) if (acted(e)) found.add(`pii:${String(e['type'])}`);
    for (const r of list(a['sensitiveInformationPolicy'], 'regexes')) if (acted(r)) found.add(`regex:${String(r['name'])}`);
    for (const g of list(a['contextualGroundingPolicy'], 'filters')) if (acted(g)) found.add(`grounding:${String(g['type'])}`);
  }
  const all = found.size === 0 ? ['intervened'] : [...found].sort();
  return counting(all, p);
}

/**
 * The categories of an Azure AI Content Safety analysis: those whose severity (0–7) reaches the
 * threshold × 7 (any severity above 0 without one), and the blocklists that matched.
 */
export function parseAzureContentSafety(text: string, p: Pick<ClassifierPolicy, 'categories' | 'thresholdMilli'>): string[] {
  const j = answerJson(text, 'content safety');
  const analysis = isObj(j) ? j['categoriesAnalysis'] : undefined;
  if (!Array.isArray(analysis)) throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The content safety answer has no categoriesAnalysis');
  const found = new Set<string>();
  for (const a of analysis) {
    if (!isObj(a) || typeof a['category'] !== 'string' || typeof a['severity'] !== 'number') continue;
    // Severity s counts when s / 7 >= threshold (integer arithmetic: s × 1000 >= threshold‰ × 7).
    if (p.thresholdMilli > 0 ? a['severity'] * 1000 >= p.thresholdMilli * 7 : a['severity'] > 0) found.add(a['category']);
  }
  const blocklists = isObj(j) ? j['blocklistsMatch'] : undefined;
  if (Array.isArray(blocklists)) for (const b of blocklists) if (isObj(b) && typeof b['blocklistName'] === 'string') found.add(`blocklist:${b['blocklistName']}`);
  const all = [...found].sort();
  return counting(all, p);
}

/** Asks the classifier. Resolves to the categories that count; throws SluiceError when it fails. */
export async function classify(pools: UpstreamPools, p: ClassifierPolicy, input: ClassifierInput): Promise<string[]> {
  const backend = p.target;
  if (backend === undefined) throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `The classifier backend ${p.backend} is not in the policy`);
  const req = classifierRequest(p, input);
  const template = backend.paths[req.endpoint];
  if (template === undefined) throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `Backend ${backend.id} has no ${req.endpoint} API`);
  const ref = guardrailRef(p.model);
  const path = template.replace('{model}', encodeURIComponent(p.model)).replace('{guardrail}', encodeURIComponent(ref.id)).replace('{version}', encodeURIComponent(ref.version));
  const r = await callUpstream(pools, backend, { method: 'POST', path, body: req.body, timeoutMs: p.timeoutMs, maxBytes: 1024 * 1024 });
  if (r.status >= 300) throw upstreamStatusError(r.status, {}, r.text);
  if (p.format === 'bedrockGuardrail') return parseBedrockGuardrail(r.text, p);
  if (p.format === 'azureContentSafety') return parseAzureContentSafety(r.text, p);
  return p.format === 'llamaGuard' ? parseLlamaGuard(r.text, p) : parseModeration(r.text, p);
}
