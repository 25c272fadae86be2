/**
 * Providers are data. An entry says which wire schema the provider speaks, where it lives, how the
 * gateway authenticates, and its quirks. Adding an OpenAI-compatible provider is a few lines here.
 */
export type WireSchema = 'openai' | 'anthropic';

/** `batches` / `files`: the provider's batch API (OpenAI Batch with its file uploads; Anthropic Message Batches). */
export type Endpoint = 'chat' | 'embeddings' | 'messages' | 'batches' | 'files';

export interface ProviderSpec {
  readonly id: string;
  readonly schema: WireSchema;
  /** Default base URL (origin + path prefix); undefined when the backend must give one. */
  readonly baseUrl: string | undefined;
  /** Header carrying the key, and the prefix before it. */
  readonly authHeader: string;
  readonly authPrefix: string;
  /** Headers sent on every request. */
  readonly headers: Readonly<Record<string, string>>;
  /** Path (appended to the base URL) of each endpoint the provider serves. */
  readonly paths: Readonly<Partial<Record<Endpoint, string>>>;
  /** Name of the output-length field when the gateway writes one into an OpenAI-schema request. */
  readonly maxTokensField: 'max_tokens' | 'max_completion_tokens';
  /** Price family in the bundled pricing table. */
  readonly priceFamily: string;
  /** Share of the real-time price a request costs through the batch API (percent; 0 = no batch API). */
  readonly batchPricePercent: number;
}

const openaiPaths = Object.freeze({ chat: '/v1/chat/completions', embeddings: '/v1/embeddings', batches: '/v1/batches', files: '/v1/files' });
const compatiblePaths = Object.freeze({ chat: '/v1/chat/completions', embeddings: '/v1/embeddings' });

export const PROVIDERS: Readonly<Record<string, ProviderSpec>> = Object.freeze({
  openai: Object.freeze({
    id: 'openai',
    schema: 'openai',
    baseUrl: 'https://api.openai.com',
    authHeader: 'authorization',
    authPrefix: 'Bearer ',
    headers: Object.freeze({}),
    paths: openaiPaths,
    maxTokensField: 'max_completion_tokens',
    priceFamily: 'openai',
    batchPricePercent: 50,
  }),
  anthropic: Object.freeze({
    id: 'anthropic',
    schema: 'anthropic',
    baseUrl: 'https://api.anthropic.com',
    authHeader: 'x-api-key',
    authPrefix: '',
    headers: Object.freeze({ 'anthropic-version': '2023-06-01' }),
    paths: Object.freeze({ messages: '/v1/messages', batches: '/v1/messages/batches' }),
    maxTokensField: 'max_tokens',
    priceFamily: 'anthropic',
    batchPricePercent: 50,
  }),
  'openai-compatible': Object.freeze({
    id: 'openai-compatible',
    schema: 'openai',
    baseUrl: undefined,
    authHeader: 'authorization',
    authPrefix: 'Bearer ',
    headers: Object.freeze({}),
    // Servers of the OpenAI API family rarely implement its batch API.
    paths: compatiblePaths,
    maxTokensField: 'max_tokens',
    priceFamily: 'openai',
    batchPricePercent: 0,
  }),
} satisfies Record<string, ProviderSpec>);

export function providerSpec(id: string): ProviderSpec | undefined {
  return Object.hasOwn(PROVIDERS, id) ? PROVIDERS[id] : undefined;
}
