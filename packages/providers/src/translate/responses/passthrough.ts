/**
 * Observer of an OpenAI Responses event stream forwarded to an OpenAI client as is: the usage and the
 * end come from the terminal event (`response.completed`, `response.incomplete`, `response.failed`);
 * an `error` event is the provider's error.
 */
import type { SseEvent } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { usageFromOpenAI } from '../../usage.js';
import type { StreamTranslator } from '../stream.js';
import { interrupted, isRecord, openaiError, parseEventObject } from '../stream.js';

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

export function createResponsesPassthrough(): StreamTranslator {
  let usage: Usage | undefined;
  let done = false;
  return {
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    push(ev: SseEvent): string {
      if (done || ev.data === '') return done ? '' : ev.raw;
      const data = parseEventObject(ev);
      const type = typeof data['type'] === 'string' ? data['type'] : (ev.event ?? '');
      if (type === 'error') throw openaiError(data['error'] ?? data);
      if (TERMINAL.has(type)) {
        done = true;
        const response = data['response'];
        if (isRecord(response)) usage = usageFromOpenAI(response['usage']);
      }
      return ev.raw;
    },
    end(): string {
      if (!done) throw interrupted('response.completed');
      return '';
    },
  };
}
