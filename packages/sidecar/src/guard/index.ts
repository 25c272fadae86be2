import { SluiceError } from '@sluice/core';
import type { SnapshotBackend, SnapshotGuardrail } from '@sluice/policy';
import { compileScanner, type Finding, type Scanner } from './detectors.js';
import { classifierPolicy, type ClassifierPolicy } from './classifier.js';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../http-util.js';

/**
 * LLMGuardrail on the request path: each guardrail's detectors compiled once per snapshot into one
 * scanner; per request, the texts of the request (input) or of a non-streamed answer (output) are
 * scanned and the guardrail's action applied — `redact` (typed placeholders, the same value → the
 * same placeholder within a request), `block` (an error in the caller's shape, nothing sent upstream
 * for input), `log` (allowed, recorded). Findings go to the audit log and metrics without the text.
 */

export interface CompiledGuardrail {
  readonly id: string;
  readonly input: boolean;
  readonly output: boolean;
  readonly action: 'redact' | 'block' | 'log';
  readonly scanner: Scanner;
  /** Whether the guardrail has detectors (a classifier-only guardrail has none). */
  readonly detects: boolean;
  /** The external classifier, if the guardrail has one. */
  readonly classifier: ClassifierPolicy | undefined;
  readonly routes: ReadonlySet<string> | undefined;
}

/** Does guardrail `g` apply to requests of route `routeId`? */
export function appliesTo(g: CompiledGuardrail, routeId: string): boolean {
  return g.routes === undefined || g.routes.has(routeId);
}

export function compileGuardrails(list: readonly SnapshotGuardrail[], backends: readonly SnapshotBackend[] = []): CompiledGuardrail[] {
  return list.map((g) => ({
    id: g.id,
    input: g.direction === 'input' || g.direction === 'both',
    output: g.direction === 'output' || g.direction === 'both',
    action: g.action === 'block' ? 'block' : g.action === 'log' ? 'log' : 'redact',
    scanner: compileScanner(g.detectors),
    detects: g.detectors.length > 0,
    classifier: classifierPolicy(g, backends),
    routes: g.routes.length === 0 ? undefined : new Set(g.routes),
  }));
}

/** The guardrails of one route, sorted by use; built once per snapshot and route. */
export interface RouteGuards {
  /** Input guardrails with detectors. */
  readonly input: readonly CompiledGuardrail[];
  /**
   * Guardrails with a classifier, by direction: those whose verdict can stop the request or answer
   * (`block`, or failing closed) and those that only record (`log`, failing open), which need not be
   * waited for.
   */
  readonly inputClassifiers: { readonly stopping: readonly CompiledGuardrail[]; readonly logging: readonly CompiledGuardrail[] };
  readonly outputClassifiers: { readonly stopping: readonly CompiledGuardrail[]; readonly logging: readonly CompiledGuardrail[] };
  /** The most answer text an output classifier reads (0 without one): what a stream keeps for them. */
  readonly outputClassifierChars: number;
  /** Blocking output classifiers also asked while an answer streams, and how often (characters). */
  readonly earlyChecks: readonly CompiledGuardrail[];
  readonly earlyCheckChars: number;
  /** Every output guardrail (detectors or classifier). */
  readonly output: readonly CompiledGuardrail[];
  /** Some output guardrail changes or stops answers (a streamed answer must follow one choice). */
  readonly filtersOutput: boolean;
  /** Every guardrail of the route with detectors (what logged texts are redacted with). */
  readonly detecting: readonly CompiledGuardrail[];
}

export function routeGuards(all: readonly CompiledGuardrail[], routeId: string): RouteGuards {
  const mine = all.filter((g) => appliesTo(g, routeId));
  const output = mine.filter((g) => g.output && (g.detects || g.classifier !== undefined));
  const split = (list: readonly CompiledGuardrail[]): RouteGuards['inputClassifiers'] => {
    const withClassifier = list.filter((g) => g.classifier !== undefined);
    const stops = (g: CompiledGuardrail): boolean => g.action === 'block' || g.classifier?.failClosed === true;
    return { stopping: withClassifier.filter(stops), logging: withClassifier.filter((g) => !stops(g)) };
  };
  const outputClassifiers = split(output);
  const earlyChecks = outputClassifiers.stopping.filter((g) => g.action === 'block' && g.classifier!.streamCheckChars > 0);
  return {
    input: mine.filter((g) => g.input && g.detects),
    inputClassifiers: split(mine.filter((g) => g.input)),
    outputClassifiers,
    outputClassifierChars: Math.max(0, ...output.map((g) => g.classifier?.maxChars ?? 0)),
    earlyChecks,
    earlyCheckChars: Math.min(...earlyChecks.map((g) => g.classifier!.streamCheckChars)),
    output,
    filtersOutput: output.some((g) => g.action !== 'log'),
    detecting: mine.filter((g) => g.detects),
  };
}

/** What one guardrail found in one direction (counts per detector label; never the text). */
export interface GuardFinding {
  readonly guardrail: string;
  readonly direction: 'input' | 'output';
  readonly action: string;
  readonly detector: string;
  readonly count: number;
  /** Why a classifier gave no verdict (an error code), for `classifierError` findings. */
  readonly reason?: string;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every string value inside a JSON value (tool-call arguments), edited in place; keys are left alone. */
function editStrings(v: unknown, edit: (text: string) => string): unknown {
  if (typeof v === 'string') return edit(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = editStrings(v[i], edit);
  } else if (isObj(v)) {
    for (const k of Object.keys(v)) v[k] = editStrings(v[k], edit);
  }
  return v;
}

/**
 * Tool-call arguments as OpenAI sends them (a JSON text): its string values are visited and the
 * text re-serialised only when one changed; arguments that are not JSON are visited as one text.
 */
function editArguments(args: string, edit: (text: string) => string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    return edit(args);
  }
  // Not an object, or nested too deep to walk: the arguments are one text.
  if (typeof parsed !== 'object' || parsed === null || nestedDeeperThan(parsed, MAX_JSON_DEPTH)) return edit(args);
  let changed = false;
  editStrings(parsed, (t) => {
    const e = edit(t);
    if (e !== t) changed = true;
    return e;
  });
  return changed ? JSON.stringify(parsed) : args;
}

/**
 * Visits every user-visible text of a request or answer body, in place: OpenAI chat messages
 * (string content, text parts), Anthropic system and content blocks (text, tool results), Responses
 * `input` / `instructions`, embeddings `input`, answer message contents and text blocks, and the
 * arguments of tool calls (OpenAI `tool_calls[].function.arguments`, Anthropic `tool_use.input`,
 * Responses `function_call.arguments`) in requests and answers. `edit` returns the replacement (or
 * the same string).
 */
export function visitTexts(body: Json, edit: (text: string) => string): void {
  const fix = (holder: Json | unknown[], key: string | number): void => {
    const v = (holder as Record<string | number, unknown>)[key];
    if (typeof v === 'string') (holder as Record<string | number, unknown>)[key] = edit(v);
    else if (Array.isArray(v)) v.forEach((_, i) => fix(v, i));
    else if (isObj(v)) {
      if (typeof v['text'] === 'string') v['text'] = edit(v['text']);
      if (v['content'] !== undefined) fix(v, 'content');
      if (typeof v['output'] === 'string') v['output'] = edit(v['output']);
      if (typeof v['arguments'] === 'string') v['arguments'] = editArguments(v['arguments'], edit);
      if (isObj(v['function'])) fix(v, 'function');
      if (isObj(v['function_call'])) fix(v, 'function_call'); // the legacy OpenAI functions API
      if (Array.isArray(v['tool_calls'])) fix(v, 'tool_calls');
      if (v['type'] === 'tool_use' && isObj(v['input'])) editStrings(v['input'], edit);
    }
  };
  for (const key of ['system', 'instructions', 'messages', 'input', 'prompt', 'content']) if (body[key] !== undefined) fix(body, key);
  const choices = body['choices'];
  if (Array.isArray(choices)) for (const c of choices) if (isObj(c) && isObj(c['message'])) fix(c, 'message');
  const output = body['output'];
  if (Array.isArray(output)) output.forEach((_, i) => fix(output, i));
}

/** Placeholders of one request: the same value and label always get the same `[LABEL_n]`. */
export class Placeholders {
  readonly #byValue = new Map<string, string>();
  readonly #counts = new Map<string, number>();

  for(label: string, value: string): string {
    const key = `${label}\u0000${value}`;
    let p = this.#byValue.get(key);
    if (p === undefined) {
      const n = (this.#counts.get(label) ?? 0) + 1;
      this.#counts.set(label, n);
      p = `[${label.replace(/([a-z])([A-Z])/gu, '$1_$2').toUpperCase()}_${n}]`;
      this.#byValue.set(key, p);
    }
    return p;
  }
}

/** Replaces the findings of `text` by placeholders. */
export function redact(text: string, findings: readonly Finding[], names: Placeholders): string {
  let out = '';
  let at = 0;
  for (const f of findings) {
    out += text.slice(at, f.start) + names.for(f.label, text.slice(f.start, f.end));
    at = f.end;
  }
  return out + text.slice(at);
}

/**
 * Applies the guardrails of `direction` that match the route to `body` (in place). Returns what was
 * found, and whether the body changed (redaction). Throws SLUICE_ERR_GUARDRAIL_BLOCKED on a block.
 */
export function applyGuardrails(guards: readonly CompiledGuardrail[], routeId: string, direction: 'input' | 'output', body: Json, names: Placeholders): { findings: GuardFinding[]; changed: boolean } {
  const findings: GuardFinding[] = [];
  let changed = false;
  for (const g of guards) {
    if (!(direction === 'input' ? g.input : g.output) || !g.detects || !appliesTo(g, routeId)) continue;
    const counts = new Map<string, number>();
    visitTexts(body, (text) => {
      const found = g.scanner.scan(text);
      if (found.length === 0) return text;
      for (const f of found) counts.set(f.label, (counts.get(f.label) ?? 0) + 1);
      if (g.action !== 'redact') return text;
      changed = true;
      return redact(text, found, names);
    });
    for (const [detector, count] of counts) findings.push({ guardrail: g.id, direction, action: g.action, detector, count });
    if (g.action === 'block' && counts.size > 0) {
      const err = new SluiceError('SLUICE_ERR_GUARDRAIL_BLOCKED', `Guardrail ${g.id} blocked the ${direction === 'input' ? 'request' : 'answer'}: ${[...counts.keys()].join(', ')} found`);
      (err as SluiceError & { guardFindings?: GuardFinding[] }).guardFindings = findings;
      throw err;
    }
  }
  return { findings, changed };
}
