/**
 * What a model can take, for capability routing: context window (tokens, prompt + output) and
 * whether it accepts tools, images and JSON mode through the gateway. A bundled table by model-name
 * prefix per price family (public model documentation, 2026-11); unknown models have no entry and are
 * never skipped for lack of a capability.
 */
export interface ModelCapabilities {
  readonly contextWindow: number;
  readonly tools: boolean;
  readonly vision: boolean;
  /** `response_format` JSON mode / schemas (Anthropic has none the gateway can map). */
  readonly json: boolean;
}

const OPENAI: ReadonlyArray<readonly [string, ModelCapabilities]> = [
  ['gpt-4.1', { contextWindow: 1_047_576, tools: true, vision: true, json: true }],
  ['gpt-5', { contextWindow: 400_000, tools: true, vision: true, json: true }],
  ['gpt-4o', { contextWindow: 128_000, tools: true, vision: true, json: true }],
  ['o4-mini', { contextWindow: 200_000, tools: true, vision: true, json: true }],
  ['o3-mini', { contextWindow: 200_000, tools: true, vision: false, json: true }],
  ['o3', { contextWindow: 200_000, tools: true, vision: true, json: true }],
  ['gpt-4-turbo', { contextWindow: 128_000, tools: true, vision: true, json: true }],
  ['gpt-3.5-turbo', { contextWindow: 16_385, tools: true, vision: false, json: true }],
];

const ANTHROPIC: ReadonlyArray<readonly [string, ModelCapabilities]> = [['claude-', { contextWindow: 200_000, tools: true, vision: true, json: false }]];

/** Capabilities of `model` in a backend of price family `family` (`openai`, `anthropic`), if known. */
export function modelCapabilities(family: string, model: string): ModelCapabilities | undefined {
  const table = family === 'openai' ? OPENAI : family === 'anthropic' ? ANTHROPIC : undefined;
  if (table === undefined) return undefined;
  // Longest prefix first is not needed: the tables list more specific prefixes before shorter ones.
  for (const [prefix, caps] of table) if (model.startsWith(prefix)) return caps;
  return undefined;
}

/** What a request needs from a model. */
export interface RequestNeeds {
  readonly tools: boolean;
  readonly vision: boolean;
  readonly json: boolean;
}

/** Reads tools, images and JSON mode off an OpenAI chat or Anthropic messages body. */
export function requestNeeds(body: Record<string, unknown>): RequestNeeds {
  const tools = Array.isArray(body['tools']) && body['tools'].length > 0;
  const rf = body['response_format'];
  const json = rf !== null && typeof rf === 'object' && ['json_object', 'json_schema'].includes(String((rf as { type?: unknown }).type));
  let vision = false;
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    outer: for (const m of messages) {
      const content = (m as { content?: unknown } | null)?.content;
      if (!Array.isArray(content)) continue;
      for (const part of content) {
        const t = (part as { type?: unknown } | null)?.type;
        if (t === 'image_url' || t === 'image' || t === 'input_image') {
          vision = true;
          break outer;
        }
      }
    }
  }
  return { tools, vision, json };
}
