import { createSseParser, encodeSseEvent, type SseEvent } from '@sluice/providers';
import { SluiceError, type ApiShape } from '@sluice/core';
import { redact, type CompiledGuardrail, type GuardFinding, type Placeholders } from './index.js';

/**
 * Output guardrails on a streamed answer, in the caller's shape, without buffering the answer: the
 * text deltas (OpenAI `choices[].delta.content`, Anthropic `text_delta`, Responses
 * `response.output_text.delta`) go through a look-behind window as long as the longest match the
 * guardrails can produce — text older than the window is scanned, redacted and sent; the window is
 * sent at the end of the text. So a match split across chunks is still caught, and the delay a
 * chunk can suffer is bounded by the window (in characters of answer text). `block` ends the stream
 * with one terminal error event. Responses' summary events (`.done`, `response.completed`) repeat
 * the whole text: their texts are redacted with the same placeholders.
 */
export class StreamGuard {
  readonly #parser = createSseParser();
  readonly #window: number;
  #pending = '';
  /** The last text-delta event seen (its JSON), the model for the flush event. */
  #template: { event: string | undefined; data: Record<string, unknown> } | undefined;
  readonly findings = new Map<string, GuardFinding>();

  constructor(
    private readonly guards: readonly CompiledGuardrail[],
    private readonly shape: ApiShape | 'responses',
    private readonly names: Placeholders,
  ) {
    this.#window = Math.max(0, ...guards.map((g) => g.scanner.maxMatchChars));
  }

  /** SSE text on its way to the caller → what to send now. Throws SLUICE_ERR_GUARDRAIL_BLOCKED. */
  push(text: string): string {
    let out = '';
    for (const ev of this.#parser.push(text)) out += this.#event(ev);
    return out;
  }

  #record(g: CompiledGuardrail, label: string): void {
    const key = `${g.id}\u0000${label}`;
    const f = this.findings.get(key);
    this.findings.set(key, { guardrail: g.id, direction: 'output', action: g.action, detector: label, count: (f?.count ?? 0) + 1 });
  }

  /** Scans and redacts a piece of answer text that leaves the window. */
  #clean(text: string): string {
    let t = text;
    for (const g of this.guards) {
      const found = g.scanner.scan(t);
      if (found.length === 0) continue;
      for (const f of found) this.#record(g, f.label);
      if (g.action === 'block') throw new SluiceError('SLUICE_ERR_GUARDRAIL_BLOCKED', `Guardrail ${g.id} blocked the answer: ${[...new Set(found.map((f) => f.label))].join(', ')} found`);
      if (g.action === 'redact') t = redact(t, found, this.names);
    }
    return t;
  }

  /** The part of the pending text that can leave now: all but the window, never cutting a match. */
  #release(final: boolean): string {
    if (final) {
      const all = this.#pending;
      this.#pending = '';
      return all === '' ? '' : this.#clean(all);
    }
    let cut = this.#pending.length - this.#window;
    if (cut <= 0) return '';
    // Do not cut inside a match that straddles the boundary: keep it in the window.
    for (const g of this.guards) for (const f of g.scanner.scan(this.#pending)) if (f.start < cut && f.end > cut) cut = f.start;
    if (cut <= 0) return '';
    const head = this.#pending.slice(0, cut);
    this.#pending = this.#pending.slice(cut);
    return this.#clean(head);
  }

  #deltaOf(ev: SseEvent, data: Record<string, unknown>): string | undefined {
    if (this.shape === 'openai') {
      const c = Array.isArray(data['choices']) ? (data['choices'][0] as Record<string, unknown> | undefined) : undefined;
      const d = c?.['delta'] as Record<string, unknown> | undefined;
      return typeof d?.['content'] === 'string' ? d['content'] : undefined;
    }
    if (this.shape === 'anthropic') {
      const d = data['delta'] as Record<string, unknown> | undefined;
      return data['type'] === 'content_block_delta' && d?.['type'] === 'text_delta' && typeof d['text'] === 'string' ? d['text'] : undefined;
    }
    return (ev.event ?? data['type']) === 'response.output_text.delta' && typeof data['delta'] === 'string' ? data['delta'] : undefined;
  }

  #withDelta(data: Record<string, unknown>, text: string): Record<string, unknown> {
    const copy = structuredClone(data);
    if (this.shape === 'openai') ((copy['choices'] as Array<Record<string, unknown>>)[0]?.['delta'] as Record<string, unknown>)['content'] = text;
    else if (this.shape === 'anthropic') (copy['delta'] as Record<string, unknown>)['text'] = text;
    else copy['delta'] = text;
    return copy;
  }

  /** Is this the event that ends the answer's text (before which the window is flushed)? */
  #endsText(ev: SseEvent, data: Record<string, unknown> | undefined): boolean {
    if (this.shape === 'openai') {
      if (ev.data.trim() === '[DONE]') return true;
      const c = Array.isArray(data?.['choices']) ? (data['choices'][0] as Record<string, unknown> | undefined) : undefined;
      return c !== undefined && c['finish_reason'] !== null && c['finish_reason'] !== undefined;
    }
    if (this.shape === 'anthropic') return data?.['type'] === 'content_block_stop' || data?.['type'] === 'message_delta' || data?.['type'] === 'message_stop';
    const t = ev.event ?? data?.['type'];
    return t === 'response.output_text.done' || t === 'response.completed' || t === 'response.incomplete' || t === 'response.output_item.added';
  }

  #event(ev: SseEvent): string {
    let data: Record<string, unknown> | undefined;
    try {
      data = ev.data === '' || ev.data.trim() === '[DONE]' ? undefined : (JSON.parse(ev.data) as Record<string, unknown>);
    } catch {
      data = undefined;
    }
    const delta = data === undefined ? undefined : this.#deltaOf(ev, data);
    // An empty delta (the OpenAI role chunk) carries no text: it goes as it came, so the caller's first
    // byte is not delayed by the window.
    if (data !== undefined && delta !== undefined && delta !== '') {
      this.#template = { event: ev.event, data };
      this.#pending += delta;
      const ready = this.#release(false);
      return ready === '' ? '' : encodeSseEvent(JSON.stringify(this.#withDelta(data, ready)), ev.event);
    }
    let out = '';
    if (this.#endsText(ev, data) && this.#pending !== '' && this.#template !== undefined) {
      const rest = this.#release(true);
      if (rest !== '') out += encodeSseEvent(JSON.stringify(this.#withDelta(this.#template.data, rest)), this.#template.event);
    }
    if (this.shape === 'responses' && data !== undefined) {
      // Summary events repeat the text: redact it the same way (same placeholders).
      const type = ev.event ?? data['type'];
      if (type === 'response.output_text.done' || type === 'response.content_part.done' || type === 'response.output_item.done' || type === 'response.completed' || type === 'response.incomplete') {
        const copy = structuredClone(data);
        redactTexts(copy, (t) => this.#redactOnly(t));
        return out + encodeSseEvent(JSON.stringify(copy), ev.event);
      }
    }
    return out + ev.raw;
  }

  /** Redaction of already-checked text (no new findings recorded, no block). */
  #redactOnly(text: string): string {
    let t = text;
    for (const g of this.guards) {
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
      if ((k === 'text' || k === 'delta') && typeof o[k] === 'string') o[k] = edit(o[k]);
      else redactTexts(o[k], edit);
    }
  }
}
