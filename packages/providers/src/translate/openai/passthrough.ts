/**
 * Observer of an OpenAI chat.completion.chunk stream forwarded to an OpenAI client as is: reads usage
 * and the terminal state, surfaces upstream error chunks, and can swallow the usage-only final chunk
 * the gateway asked for on the client's behalf.
 */
import type { SseEvent } from '../../sse.js';
import type { Usage } from '../../usage.js';
import { usageFromOpenAI } from '../../usage.js';
import type { StreamTranslator } from '../stream.js';
import { interrupted, isRecord, openaiError, openaiErrorEvent, parseEventObject } from '../stream.js';

export function createOpenAIPassthrough(opts: { stripUsageChunk: boolean }): StreamTranslator {
  let usage: Usage | undefined;
  let done = false;
  let finished = false;

  return {
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    push(ev: SseEvent): string {
      if (done) return '';
      if (ev.event === 'error') throw openaiErrorEvent(ev);
      if (ev.data.trim() === '[DONE]') {
        done = true;
        return ev.raw;
      }
      if (ev.data === '') return ev.raw;
      const chunk = parseEventObject(ev);
      if (chunk['error'] !== undefined && chunk['error'] !== null) throw openaiError(chunk['error']);
      const u = chunk['usage'];
      if (isRecord(u)) usage = usageFromOpenAI(u);
      const choices = chunk['choices'];
      if (Array.isArray(choices)) {
        for (const c of choices) {
          if (isRecord(c) && typeof c['finish_reason'] === 'string') finished = true;
        }
        if (opts.stripUsageChunk && choices.length === 0 && isRecord(u)) return '';
      }
      return ev.raw;
    },
    end(): string {
      if (done) return '';
      if (!finished) throw interrupted('[DONE]');
      done = true;
      return 'data: [DONE]\n\n';
    },
  };
}
