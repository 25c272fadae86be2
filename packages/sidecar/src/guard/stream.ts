import { createSseParser, encodeSseEvent, type SseEvent } from '@sluice/providers';
import { SluiceError, type ApiShape } from '@sluice/core';
import { redact, type CompiledGuardrail, type GuardFinding, type Placeholders } from './index.js';
import type { Finding } from './detectors.js';

/**
 * Output guardrails on a streamed answer, in the caller's shape, without buffering the answer.
 *
 * The deltas of the answer — text (OpenAI `choices[].delta.content`, Anthropic `text_delta`,
 * Responses `response.output_text.delta`) and tool-call arguments (OpenAI
 * `delta.tool_calls[].function.arguments`, Anthropic `input_json_delta`, Responses
 * `response.function_call_arguments.delta`) — are followed per channel (the text, each tool call):
 *
 * - `redact` and `block` guardrails hold each channel in a look-behind window as long as the longest
 *   match they can produce: text older than the window is scanned, redacted and sent; the window
 *   is sent when the channel ends. A match split across chunks is still caught, and a chunk is held
 *   back by at most the window. `block` ends the stream with one terminal error event.
 * - `log` guardrails delay nothing: the text goes on at once, a copy is scanned behind it with the
 *   same rule (a match is counted once, when it can no longer grow).
 * - `holdTail` (an output classifier): once the answer's text has ended, the remaining events (finish
 *   reason, usage, end marker) are held until {@link takeTail}, so a verdict can still turn the end of
 *   the stream into an error event. `collectChars` keeps the answer as sent (for the classifier and
 *   for completion logging), up to that many characters.
 *
 * Responses' summary events (`.done`, `response.completed`) repeat the text: their texts are
 * redacted with the same placeholders. Tool-call arguments are scanned as the JSON text they are
 * streamed as (a value written with `\u` escapes is not seen).
 */
export interface StreamGuardOptions {
  /** Keep this many characters of the answer as sent (0: none). */
  readonly collectChars?: number;
  /** Hold the events after the end of the answer's text until takeTail(). */
  readonly holdTail?: boolean;
}

/** A piece of streamed answer in one event, and how to put a replacement back into a copy of it. */
interface Delta {
  readonly channel: string;
  readonly text: string;
  /** The event also names the tool call (id, name): it must be sent even when its text is held. */
  readonly header: boolean;
  put(copy: Record<string, unknown>, text: string): void;
}

interface Channel {
  /** Text held by redact/block guardrails. */
  pending: string;
  /** Text not yet scanned by log guardrails (already sent). */
  logPending: string;
  /** The event that carried the channel's last delta, and the event to send its held text in. */
  template: { event: string | undefined; data: Record<string, unknown>; put: (copy: Record<string, unknown>, text: string) => void } | undefined;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export class StreamGuard {
  readonly #parser = createSseParser();
  readonly #filters: readonly CompiledGuardrail[];
  readonly #loggers: readonly CompiledGuardrail[];
  readonly #window: number;
  readonly #logWindow: number;
  readonly #channels = new Map<string, Channel>();
  readonly #collectChars: number;
  readonly #holdTail: boolean;
  #answer = '';
  #textEnded = false;
  #tail = '';
  readonly findings = new Map<string, GuardFinding>();

  constructor(
    guards: readonly CompiledGuardrail[],
    private readonly shape: ApiShape | 'responses',
    private readonly names: Placeholders,
    options: StreamGuardOptions = {},
  ) {
    this.#filters = guards.filter((g) => g.detects && g.action !== 'log');
    this.#loggers = guards.filter((g) => g.detects && g.action === 'log');
    this.#window = Math.max(0, ...this.#filters.map((g) => g.scanner.maxMatchChars));
    this.#logWindow = Math.max(0, ...this.#loggers.map((g) => g.scanner.maxMatchChars));
    this.#collectChars = options.collectChars ?? 0;
    this.#holdTail = options.holdTail ?? false;
  }

  /** The answer as sent (text and tool arguments, redacted), up to `collectChars`. */
  get answer(): string {
    return this.#answer;
  }

  /** SSE text on its way to the caller → what to send now. Throws SLUICE_ERR_GUARDRAIL_BLOCKED. */
  push(text: string): string {
    let out = '';
    for (const ev of this.#parser.push(text)) out += this.#event(ev);
    return out;
  }

  /** The events held after the end of the text (holdTail), once the verdict allows them. */
  takeTail(): string {
    const t = this.#tail;
    this.#tail = '';
    return t;
  }

  #record(g: CompiledGuardrail, label: string): void {
    const key = `${g.id}\u0000${label}`;
    const f = this.findings.get(key);
    this.findings.set(key, { guardrail: g.id, direction: 'output', action: g.action, detector: label, count: (f?.count ?? 0) + 1 });
  }

  #collect(text: string): string {
    if (this.#answer.length < this.#collectChars) this.#answer += text.slice(0, this.#collectChars - this.#answer.length);
    return text;
  }

  /** Scans and redacts a piece of answer text that leaves the window. */
  #clean(text: string): string {
    let t = text;
    for (const g of this.#filters) {
      const found = g.scanner.scan(t);
      if (found.length === 0) continue;
      for (const f of found) this.#record(g, f.label);
      if (g.action === 'block') throw new SluiceError('SLUICE_ERR_GUARDRAIL_BLOCKED', `Guardrail ${g.id} blocked the answer: ${[...new Set(found.map((f) => f.label))].join(', ')} found`);
      t = redact(t, found, this.names);
    }
    return this.#collect(t);
  }

  /** The longest prefix of `text` that may be dealt with now: all but `window`, never cutting a match. */
  #cut(text: string, window: number, guards: readonly CompiledGuardrail[], scans?: Finding[][]): number {
    let cut = text.length - window;
    if (cut <= 0) return 0;
    for (const g of guards) {
      const found = g.scanner.scan(text);
      scans?.push(found);
      for (const f of found) if (f.start < cut && f.end > cut) cut = f.start;
    }
    return Math.max(0, cut);
  }

  /** The part of the channel's held text that can leave now (all of it when `final`). */
  #release(ch: Channel, final: boolean): string {
    if (this.#filters.length === 0) return '';
    const cut = final ? ch.pending.length : this.#cut(ch.pending, this.#window, this.#filters);
    if (cut <= 0) return '';
    const head = ch.pending.slice(0, cut);
    ch.pending = ch.pending.slice(cut);
    return this.#clean(head);
  }

  /** Log guardrails: counts the findings of the channel's sent text that can no longer grow. */
  #logScan(ch: Channel, final: boolean): void {
    if (this.#loggers.length === 0 || ch.logPending === '') return;
    // Scanned in steps of at least a window, so each character is scanned about twice at most.
    if (!final && ch.logPending.length < 2 * this.#logWindow + 256) return;
    const scans: Finding[][] = [];
    const cut = final ? ch.logPending.length : this.#cut(ch.logPending, this.#logWindow, this.#loggers, scans);
    if (cut <= 0) return;
    this.#loggers.forEach((g, i) => {
      const found = final ? g.scanner.scan(ch.logPending) : (scans[i] ?? []);
      for (const f of found) if (f.end <= cut) this.#record(g, f.label);
    });
    ch.logPending = ch.logPending.slice(cut);
  }

  #channel(name: string): Channel {
    let ch = this.#channels.get(name);
    if (ch === undefined) {
      ch = { pending: '', logPending: '', template: undefined };
      this.#channels.set(name, ch);
    }
    return ch;
  }

  #deltasOf(ev: SseEvent, data: Json): Delta[] {
    const out: Delta[] = [];
    if (this.shape === 'openai') {
      const c = Array.isArray(data['choices']) ? data['choices'][0] : undefined;
      const d = isObj(c) ? c['delta'] : undefined;
      if (!isObj(d)) return out;
      const delta = (copy: Json): Json => ((copy['choices'] as Json[])[0] as Json)['delta'] as Json;
      if (typeof d['content'] === 'string') out.push({ channel: 'text', text: d['content'], header: false, put: (copy, t) => void (delta(copy)['content'] = t) });
      const calls = d['tool_calls'];
      if (Array.isArray(calls)) {
        calls.forEach((tc, k) => {
          if (!isObj(tc) || !isObj(tc['function']) || typeof tc['function']['arguments'] !== 'string') return;
          const header = tc['id'] !== undefined || tc['function']['name'] !== undefined;
          out.push({ channel: `tool${typeof tc['index'] === 'number' ? tc['index'] : k}`, text: tc['function']['arguments'], header, put: (copy, t) => void ((((delta(copy)['tool_calls'] as Json[])[k] as Json)['function'] as Json)['arguments'] = t) });
        });
      }
      return out;
    }
    if (this.shape === 'anthropic') {
      const d = data['delta'];
      if (data['type'] !== 'content_block_delta' || !isObj(d)) return out;
      if (d['type'] === 'text_delta' && typeof d['text'] === 'string') out.push({ channel: 'text', text: d['text'], header: false, put: (copy, t) => void ((copy['delta'] as Json)['text'] = t) });
      else if (d['type'] === 'input_json_delta' && typeof d['partial_json'] === 'string') out.push({ channel: `block${String(data['index'])}`, text: d['partial_json'], header: false, put: (copy, t) => void ((copy['delta'] as Json)['partial_json'] = t) });
      return out;
    }
    const type = ev.event ?? data['type'];
    if (typeof data['delta'] !== 'string') return out;
    if (type === 'response.output_text.delta') out.push({ channel: 'text', text: data['delta'], header: false, put: (copy, t) => void (copy['delta'] = t) });
    else if (type === 'response.function_call_arguments.delta') out.push({ channel: `item${String(data['output_index'])}`, text: data['delta'], header: false, put: (copy, t) => void (copy['delta'] = t) });
    return out;
  }

  /** The flush event of a channel: a copy of its last delta event with the held text in place. */
  #flushEvent(name: string, ch: Channel, text: string): string {
    const tpl = ch.template;
    if (tpl === undefined || text === '') return '';
    const copy = structuredClone(tpl.data);
    if (this.shape === 'openai') {
      // A fresh delta of the channel alone: the template may name the tool call (id, name), which
      // must not repeat, or carry another channel's delta.
      const choice = (copy['choices'] as Json[])[0] as Json;
      choice['delta'] = name === 'text' ? { content: text } : { tool_calls: [{ index: Number(name.slice('tool'.length)), function: { arguments: text } }] };
    } else {
      tpl.put(copy, text);
    }
    return encodeSseEvent(JSON.stringify(copy), tpl.event);
  }

  /** Is this the event that ends the answer's text (before which every channel is flushed)? */
  #endsText(ev: SseEvent, data: Json | undefined): boolean {
    if (this.shape === 'openai') {
      if (ev.data.trim() === '[DONE]') return true;
      const c = Array.isArray(data?.['choices']) ? (data['choices'][0] as Json | undefined) : undefined;
      return c !== undefined && c['finish_reason'] !== null && c['finish_reason'] !== undefined;
    }
    if (this.shape === 'anthropic') return data?.['type'] === 'content_block_stop' || data?.['type'] === 'message_delta' || data?.['type'] === 'message_stop';
    const t = ev.event ?? data?.['type'];
    return t === 'response.output_text.done' || t === 'response.function_call_arguments.done' || t === 'response.completed' || t === 'response.incomplete' || t === 'response.output_item.added';
  }

  #event(ev: SseEvent): string {
    let data: Json | undefined;
    try {
      data = ev.data === '' || ev.data.trim() === '[DONE]' ? undefined : (JSON.parse(ev.data) as Json);
    } catch {
      data = undefined;
    }
    const deltas = isObj(data) ? this.#deltasOf(ev, data) : [];
    // An empty delta (the OpenAI role chunk) carries no text: it goes as it came, so the caller's first
    // byte is not delayed by the window.
    if (data !== undefined && deltas.some((d) => d.text !== '')) {
      let keep = false;
      const ready: string[] = [];
      for (const d of deltas) {
        const ch = this.#channel(d.channel);
        ch.template = { event: ev.event, data, put: d.put };
        if (this.#loggers.length > 0) {
          ch.logPending += d.text;
          this.#logScan(ch, false);
        }
        if (this.#filters.length === 0) {
          ready.push(this.#collect(d.text));
          keep = true;
          continue;
        }
        ch.pending += d.text;
        const r = this.#release(ch, false);
        ready.push(r);
        if (r !== '' || d.header) keep = true;
      }
      if (!keep) return '';
      let r = ev.raw;
      if (this.#filters.length > 0) {
        const copy = structuredClone(data);
        deltas.forEach((d, i) => d.put(copy, ready[i] ?? ''));
        r = encodeSseEvent(JSON.stringify(copy), ev.event);
      }
      if (!(this.#holdTail && this.#textEnded)) return r;
      this.#tail += r;
      return '';
    }
    let out = '';
    const wasEnded = this.#textEnded;
    if (this.#endsText(ev, data)) {
      for (const [name, ch] of this.#channels) {
        this.#logScan(ch, true);
        if (ch.pending !== '') out += this.#flushEvent(name, ch, this.#release(ch, true));
      }
      // The answer's end (not a content block's): what follows may be held for a verdict.
      const t = ev.event ?? data?.['type'];
      if (this.shape === 'openai' || (this.shape === 'anthropic' && (t === 'message_delta' || t === 'message_stop')) || t === 'response.completed' || t === 'response.incomplete') this.#textEnded = true;
    }
    const rest = this.#rest(ev, data);
    if (this.#holdTail && this.#textEnded) {
      // The held text of the channels goes now; the end itself (and all after it) waits.
      if (wasEnded) {
        this.#tail += out + rest;
        return '';
      }
      this.#tail += rest;
      return out;
    }
    return out + rest;
  }

  /** The event itself, after any flush: summary events redacted, the rest as it came. */
  #rest(ev: SseEvent, data: Json | undefined): string {
    if (this.shape === 'responses' && data !== undefined && this.#filters.some((g) => g.action === 'redact')) {
      // Summary events repeat the text: redact it the same way (same placeholders).
      const type = ev.event ?? data['type'];
      if (type === 'response.output_text.done' || type === 'response.function_call_arguments.done' || type === 'response.content_part.done' || type === 'response.output_item.done' || type === 'response.completed' || type === 'response.incomplete') {
        const copy = structuredClone(data);
        redactTexts(copy, (t) => this.#redactOnly(t));
        return encodeSseEvent(JSON.stringify(copy), ev.event);
      }
    }
    return ev.raw;
  }

  /** Redaction of already-checked text (no new findings recorded, no block). */
  #redactOnly(text: string): string {
    let t = text;
    for (const g of this.#filters) {
      if (g.action !== 'redact') continue;
      const found = g.scanner.scan(t);
      if (found.length > 0) t = redact(t, found, this.names);
    }
    return t;
  }
}

function redactTexts(v: unknown, edit: (t: string) => string): void {
  if (Array.isArray(v)) v.forEach((x) => redactTexts(x, edit));
  else if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if ((k === 'text' || k === 'delta' || k === 'arguments') && typeof o[k] === 'string') o[k] = edit(o[k]);
      else redactTexts(o[k], edit);
    }
  }
}
