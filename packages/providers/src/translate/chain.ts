/**
 * Two stream translators in a row, for the pairs served through the Chat Completions form (Anthropic
 * → Gemini or Bedrock, Responses → any non-OpenAI backend): the first one's SSE output is parsed again
 * and fed to the second. Usage is the first one's (the provider's own report).
 */
import { createSseParser } from '../sse.js';
import type { StreamTranslator } from './stream.js';

export function chainStreamTranslators(first: StreamTranslator, second: StreamTranslator): StreamTranslator {
  const parser = createSseParser();
  const feed = (text: string): string => {
    let out = '';
    for (const ev of parser.push(text)) out += second.push(ev);
    return out;
  };
  return {
    get usage() {
      return first.usage;
    },
    get done() {
      return second.done;
    },
    push: (ev) => feed(first.push(ev)),
    end: () => {
      let out = feed(first.end());
      for (const ev of parser.end()) out += second.push(ev);
      return out + second.end();
    },
  };
}
