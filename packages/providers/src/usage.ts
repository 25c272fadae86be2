/**
 * Normalised usage of one request. All fields are integer token counts.
 * - `inputTokens`: every prompt token, including those read from or written to a prompt cache.
 * - `cachedInputTokens`, `cacheWriteTokens`: the parts of `inputTokens` read from / written to cache.
 * - `outputTokens`: every generated token, including reasoning.
 * - `reasoningTokens`: the part of `outputTokens` spent on reasoning.
 */
export interface Usage {
  inputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  reasoningTokens: number;
}

export function emptyUsage(): Usage {
  return { inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 };
}

function int(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Usage from an OpenAI `usage` object (chat completions, embeddings or the final stream chunk). */
export function usageFromOpenAI(u: unknown): Usage | undefined {
  const o = obj(u);
  if (o === undefined) return undefined;
  // Chat Completions names, or the Responses API's (input/output_tokens_details).
  const pd = obj(o['prompt_tokens_details'] ?? o['input_tokens_details']);
  const cd = obj(o['completion_tokens_details'] ?? o['output_tokens_details']);
  return {
    inputTokens: int(o['prompt_tokens'] ?? o['input_tokens']),
    // DeepSeek reports cache reads as `prompt_cache_hit_tokens` (same meaning, its own name).
    cachedInputTokens: int(pd?.['cached_tokens'] ?? o['prompt_cache_hit_tokens']),
    cacheWriteTokens: 0,
    outputTokens: int(o['completion_tokens'] ?? o['output_tokens']),
    reasoningTokens: int(cd?.['reasoning_tokens']),
  };
}

/**
 * Usage from an Anthropic `usage` object. Anthropic's `input_tokens` excludes cache reads and
 * writes; the normalised `inputTokens` includes them.
 */
export function usageFromAnthropic(u: unknown): Usage | undefined {
  const o = obj(u);
  if (o === undefined) return undefined;
  const cached = int(o['cache_read_input_tokens']);
  const written = int(o['cache_creation_input_tokens']);
  return {
    inputTokens: int(o['input_tokens']) + cached + written,
    cachedInputTokens: cached,
    cacheWriteTokens: written,
    outputTokens: int(o['output_tokens']),
    reasoningTokens: 0,
  };
}

/** The OpenAI `usage` object for a normalised usage. */
export function usageToOpenAI(u: Usage): Record<string, unknown> {
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: u.cachedInputTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}

/** The Anthropic `usage` object for a normalised usage. */
export function usageToAnthropic(u: Usage): Record<string, unknown> {
  return {
    input_tokens: Math.max(0, u.inputTokens - u.cachedInputTokens - u.cacheWriteTokens),
    cache_read_input_tokens: u.cachedInputTokens,
    cache_creation_input_tokens: u.cacheWriteTokens,
    output_tokens: u.outputTokens,
  };
}
