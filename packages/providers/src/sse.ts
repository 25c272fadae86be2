/**
 * Server-sent events codec (WHATWG EventSource framing), incremental: bytes in as they arrive, whole
 * events out. `raw` is the event's exact text including its blank-line terminator, so a passthrough
 * can forward an event without re-encoding it. Multi-byte characters split across chunks and any of
 * the three line endings (\n, \r\n, \r) are handled.
 */
export interface SseEvent {
  /** `event:` field; undefined when absent (the default "message" type). */
  readonly event: string | undefined;
  /** `data:` lines joined by "\n". */
  readonly data: string;
  /** The event's exact text as received, including the terminating blank line. */
  readonly raw: string;
}

export interface SseParser {
  /** Feed a chunk; returns the events it completed (often none or one). */
  push(chunk: Uint8Array | string): SseEvent[];
  /** Bytes received but not yet part of a complete event. */
  readonly pendingLength: number;
  /** Call at end of input: returns a final event if the stream ended without its blank line. */
  end(): SseEvent[];
}

export interface SseParserOptions {
  /** Upper bound of one event's size in characters; beyond it `push` throws (provider garbage). */
  readonly maxEventChars?: number;
}

export class SseEventTooLargeError extends Error {
  constructor(limit: number) {
    super(`SSE event exceeds ${limit} characters`);
    this.name = 'SseEventTooLargeError';
  }
}

export function createSseParser(options: SseParserOptions = {}): SseParser {
  const maxEventChars = options.maxEventChars ?? 8 * 1024 * 1024;
  const decoder = new TextDecoder('utf-8');
  let buf = '';
  let pos = 0; // next index of `buf` to scan for a line end
  let lineBegin = 0; // start of the current line
  let eventStart = 0; // start of the current event's raw text
  let eventName: string | undefined;
  let data: string[] = [];

  function takeEvent(end: number, out: SseEvent[]): void {
    if (data.length > 0 || eventName !== undefined) {
      out.push({ event: eventName, data: data.join('\n'), raw: buf.slice(eventStart, end) });
    }
    eventStart = end;
    eventName = undefined;
    data = [];
  }

  function field(line: string): void {
    if (line.charCodeAt(0) === 58 /* ":" comment */) return;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (name === 'data') data.push(value);
    else if (name === 'event') eventName = value;
    // `id` and `retry` are used by no LLM provider stream; ignored.
  }

  function scan(out: SseEvent[]): void {
    for (;;) {
      let nl = -1;
      for (let i = pos; i < buf.length; i++) {
        const c = buf.charCodeAt(i);
        if (c === 10 || c === 13) {
          nl = i;
          break;
        }
      }
      if (nl === -1) {
        pos = buf.length;
        break;
      }
      let next = nl + 1;
      if (buf.charCodeAt(nl) === 13) {
        // A \r at the end of input may be the first half of \r\n: wait for the next chunk.
        if (next === buf.length) {
          pos = nl;
          break;
        }
        if (buf.charCodeAt(next) === 10) next++;
      }
      const empty = nl === lineBegin;
      if (!empty) field(buf.slice(lineBegin, nl));
      pos = lineBegin = next;
      if (empty) takeEvent(next, out);
    }
    if (eventStart > 0) {
      buf = buf.slice(eventStart);
      pos -= eventStart;
      lineBegin -= eventStart;
      eventStart = 0;
    }
    if (buf.length > maxEventChars) throw new SseEventTooLargeError(maxEventChars);
  }

  return {
    push(chunk) {
      buf += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      const out: SseEvent[] = [];
      scan(out);
      return out;
    },
    get pendingLength() {
      return buf.length;
    },
    end() {
      buf += decoder.decode();
      const out: SseEvent[] = [];
      scan(out);
      // A trailing \r is a line end at end of input; a last line without terminator still counts.
      const tail = buf.slice(lineBegin).replace(/\r$/, '');
      if (tail.length > 0) field(tail);
      takeEvent(buf.length, out);
      buf = '';
      pos = lineBegin = eventStart = 0;
      return out;
    },
  };
}

/** Encode one SSE event. Data with newlines becomes several `data:` lines. */
export function encodeSseEvent(data: string, event?: string): string {
  const head = event === undefined ? '' : `event: ${event}\n`;
  if (data.indexOf('\n') === -1) return `${head}data: ${data}\n\n`;
  return `${head}${data.split('\n').map((l) => `data: ${l}`).join('\n')}\n\n`;
}

/** `data: <json>\n\n` (the OpenAI chunk framing). */
export function sseData(json: unknown): string {
  return `data: ${JSON.stringify(json)}\n\n`;
}

/** `event: <type>\ndata: <json>\n\n` (the Anthropic framing, `type` repeated in the JSON). */
export function sseNamed(event: string, json: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(json)}\n\n`;
}
