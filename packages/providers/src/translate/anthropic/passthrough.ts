/**
 * Observer of an Anthropic Messages event stream forwarded to an Anthropic client as is: reads usage
 * and the terminal state, and surfaces upstream `event: error`.
 */
import type { SseEvent } from '../../sse.js';
import type { StreamTranslator } from '../stream.js';
import { AnthropicUsageTracker, anthropicError, anthropicErrorEvent, interrupted, isRecord, parseEventObject } from '../stream.js';

export function createAnthropicPassthrough(): StreamTranslator {
  const tracker = new AnthropicUsageTracker();
  let done = false;

  return {
    get usage() {
      return tracker.usage;
    },
    get done() {
      return done;
    },
    push(ev: SseEvent): string {
      if (done) return '';
      if (ev.event === 'error') throw anthropicErrorEvent(ev);
      if (ev.data === '') return ev.raw;
      const data = parseEventObject(ev);
      switch (data['type']) {
        case 'error':
          throw anthropicError(data['error']);
        case 'message_start': {
          const message = data['message'];
          if (isRecord(message)) tracker.feed(message['usage']);
          break;
        }
        case 'message_delta':
          tracker.feed(data['usage']);
          break;
        case 'message_stop':
          done = true;
          break;
        default:
          break;
      }
      return ev.raw;
    },
    end(): string {
      if (!done) throw interrupted('message_stop');
      return '';
    },
  };
}
