import { ceilDiv, TOKENS_PER_PRICE_UNIT } from '@sluice/core';
import type { Usage } from './usage.js';

/** Prices of one model in integer micro-USD per million tokens. */
export interface ModelPrice {
  readonly input: number;
  /** Input tokens read from a prompt cache. */
  readonly cachedInput: number;
  /** Input tokens written to a prompt cache. */
  readonly cacheWrite: number;
  readonly output: number;
  /** Reasoning (thinking) output tokens; providers bill them as output today. */
  readonly reasoning: number;
}

/** `$/M` → micro-USD per million tokens, written as integers in the table to keep it exact. */
function p(input: number, cachedInput: number, cacheWrite: number, output: number, reasoning = output): ModelPrice {
  return Object.freeze({ input, cachedInput, cacheWrite, output, reasoning });
}

/**
 * Bundled list prices (standard tier, USD per million tokens × 10^6). OpenAI and Anthropic were
 * checked 2026-11 against the providers' public pricing pages; the OpenAI-compatible presets carry
 * their last known list prices, not re-checked (this build has no network access to their pages):
 * contracts differ, so check yours. Dated snapshots (`gpt-4o-2024-08-06`,
 * `claude-sonnet-4-5-20250929`) resolve to their family entry. Override per backend model in
 * `LLMBackend.spec.models[].pricing`.
 */
export const BUNDLED_PRICES: Readonly<Record<string, Readonly<Record<string, ModelPrice>>>> = Object.freeze({
  openai: Object.freeze({
    'gpt-5.1': p(1_250_000, 125_000, 1_250_000, 10_000_000),
    'gpt-5': p(1_250_000, 125_000, 1_250_000, 10_000_000),
    'gpt-5-mini': p(250_000, 25_000, 250_000, 2_000_000),
    'gpt-5-nano': p(50_000, 5_000, 50_000, 400_000),
    'gpt-4.1': p(2_000_000, 500_000, 2_000_000, 8_000_000),
    'gpt-4.1-mini': p(400_000, 100_000, 400_000, 1_600_000),
    'gpt-4.1-nano': p(100_000, 25_000, 100_000, 400_000),
    'gpt-4o': p(2_500_000, 1_250_000, 2_500_000, 10_000_000),
    'gpt-4o-mini': p(150_000, 75_000, 150_000, 600_000),
    o1: p(15_000_000, 7_500_000, 15_000_000, 60_000_000),
    o3: p(2_000_000, 500_000, 2_000_000, 8_000_000),
    'o3-mini': p(1_100_000, 550_000, 1_100_000, 4_400_000),
    'o4-mini': p(1_100_000, 275_000, 1_100_000, 4_400_000),
    'text-embedding-3-small': p(20_000, 20_000, 20_000, 0),
    'text-embedding-3-large': p(130_000, 130_000, 130_000, 0),
    'text-embedding-ada-002': p(100_000, 100_000, 100_000, 0),
  }),
  anthropic: Object.freeze({
    'claude-opus-4-5': p(5_000_000, 500_000, 6_250_000, 25_000_000),
    'claude-opus-4-1': p(15_000_000, 1_500_000, 18_750_000, 75_000_000),
    'claude-opus-4': p(15_000_000, 1_500_000, 18_750_000, 75_000_000),
    'claude-sonnet-4-5': p(3_000_000, 300_000, 3_750_000, 15_000_000),
    'claude-sonnet-4': p(3_000_000, 300_000, 3_750_000, 15_000_000),
    'claude-3-7-sonnet': p(3_000_000, 300_000, 3_750_000, 15_000_000),
    'claude-haiku-4-5': p(1_000_000, 100_000, 1_250_000, 5_000_000),
    'claude-3-5-haiku': p(800_000, 80_000, 1_000_000, 4_000_000),
    'claude-3-haiku': p(250_000, 30_000, 300_000, 1_250_000),
  }),
  gemini: Object.freeze({
    // Prompts up to 200k tokens (2.5 Pro doubles beyond); cached input at the context-cache read price.
    'gemini-2.5-pro': p(1_250_000, 125_000, 1_250_000, 10_000_000),
    'gemini-2.5-flash': p(300_000, 30_000, 300_000, 2_500_000),
    'gemini-2.5-flash-lite': p(100_000, 10_000, 100_000, 400_000),
    'gemini-2.0-flash': p(100_000, 25_000, 100_000, 400_000),
  }),
  bedrock: Object.freeze({
    // On-demand, us-east-1; cross-region inference profiles (`us.`, `eu.` prefixes) are priced the same.
    'anthropic.claude-sonnet-4-5-20250929-v1:0': p(3_000_000, 300_000, 3_750_000, 15_000_000),
    'anthropic.claude-haiku-4-5-20251001-v1:0': p(1_000_000, 100_000, 1_250_000, 5_000_000),
    'amazon.nova-pro-v1:0': p(800_000, 200_000, 800_000, 3_200_000),
    'amazon.nova-lite-v1:0': p(60_000, 15_000, 60_000, 240_000),
    'meta.llama3-3-70b-instruct-v1:0': p(720_000, 720_000, 720_000, 720_000),
  }),
  // The OpenAI-compatible presets. Providers without prompt-cache pricing bill cached input as input.
  mistral: Object.freeze({
    'mistral-large-latest': p(2_000_000, 2_000_000, 2_000_000, 6_000_000),
    'mistral-medium-latest': p(400_000, 400_000, 400_000, 2_000_000),
    'mistral-small-latest': p(100_000, 100_000, 100_000, 300_000),
    'codestral-latest': p(300_000, 300_000, 300_000, 900_000),
    'mistral-embed': p(100_000, 100_000, 100_000, 0),
  }),
  groq: Object.freeze({
    'llama-3.3-70b-versatile': p(590_000, 590_000, 590_000, 790_000),
    'llama-3.1-8b-instant': p(50_000, 50_000, 50_000, 80_000),
    'openai/gpt-oss-120b': p(150_000, 75_000, 150_000, 600_000),
    'openai/gpt-oss-20b': p(75_000, 37_500, 75_000, 300_000),
  }),
  deepseek: Object.freeze({
    'deepseek-chat': p(280_000, 28_000, 280_000, 420_000),
    'deepseek-reasoner': p(280_000, 28_000, 280_000, 420_000),
  }),
  together: Object.freeze({
    'meta-llama/Llama-3.3-70B-Instruct-Turbo': p(880_000, 880_000, 880_000, 880_000),
    'deepseek-ai/DeepSeek-V3': p(1_250_000, 1_250_000, 1_250_000, 1_250_000),
    'Qwen/Qwen2.5-72B-Instruct-Turbo': p(1_200_000, 1_200_000, 1_200_000, 1_200_000),
  }),
  fireworks: Object.freeze({
    'accounts/fireworks/models/llama-v3p3-70b-instruct': p(900_000, 900_000, 900_000, 900_000),
    'accounts/fireworks/models/deepseek-v3': p(900_000, 900_000, 900_000, 900_000),
  }),
  openrouter: Object.freeze({
    'openai/gpt-4o-mini': p(150_000, 75_000, 150_000, 600_000),
    'anthropic/claude-sonnet-4.5': p(3_000_000, 300_000, 3_750_000, 15_000_000),
    'meta-llama/llama-3.3-70b-instruct': p(130_000, 130_000, 130_000, 400_000),
  }),
  xai: Object.freeze({
    'grok-4': p(3_000_000, 750_000, 3_000_000, 15_000_000),
    'grok-3': p(3_000_000, 750_000, 3_000_000, 15_000_000),
    'grok-3-mini': p(300_000, 75_000, 300_000, 500_000),
  }),
});

/** Self-hosted servers (vLLM, Ollama): no per-token list price. */
const FREE = p(0, 0, 0, 0);

const SNAPSHOT_SUFFIX = /^-(\d{4}-?\d{2}-?\d{2}|latest|v\d+(:\d+)?)$/;

/**
 * The bundled price of `model` at `provider` (a provider id or price family), or undefined.
 * Exact id first, then the longest family id that the model extends with a date/`latest` suffix.
 */
export function bundledPrice(family: string, model: string): ModelPrice | undefined {
  if (family === 'self-hosted') return FREE;
  // Bedrock cross-region inference profiles (`us.anthropic.…`) cost what the model costs.
  if (family === 'bedrock' && /^(us|eu|apac|global)\./u.test(model)) return bundledPrice(family, model.slice(model.indexOf('.') + 1));
  const table = BUNDLED_PRICES[family];
  if (table === undefined) return undefined;
  const exact = table[model];
  if (exact !== undefined) return exact;
  let best: string | undefined;
  for (const id of Object.keys(table)) {
    if (model.startsWith(id) && SNAPSHOT_SUFFIX.test(model.slice(id.length)) && (best === undefined || id.length > best.length)) best = id;
  }
  return best === undefined ? undefined : table[best];
}

/**
 * Cost of a request in integer micro-USD: Σ tokens × price over each token class, divided by 10^6
 * once and rounded up, so a budget never under-counts and no float touches money.
 */
export function costMicros(usage: Usage, price: ModelPrice): number {
  const cached = Math.min(usage.cachedInputTokens, usage.inputTokens);
  const written = Math.min(usage.cacheWriteTokens, usage.inputTokens - cached);
  const uncached = usage.inputTokens - cached - written;
  const reasoning = Math.min(usage.reasoningTokens, usage.outputTokens);
  const visible = usage.outputTokens - reasoning;
  const total =
    uncached * price.input +
    cached * price.cachedInput +
    written * price.cacheWrite +
    visible * price.output +
    reasoning * price.reasoning;
  return ceilDiv(total, TOKENS_PER_PRICE_UNIT);
}

/** The cost of a request served through a batch API: `percent` of its real-time cost, rounded up. */
export function batchCostMicros(realtimeMicros: number, percent: number): number {
  return ceilDiv(realtimeMicros * percent, 100);
}
