/**
 * Providers are data. An entry says which wire schema the provider speaks, where it lives, how the
 * gateway authenticates, and its quirks. Adding an OpenAI-compatible provider is a few lines here.
 */
export type WireSchema = 'openai' | 'anthropic';

export type Endpoint = 'chat' | 'embeddings' | 'messages';

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
}

const openaiPaths = Object.freeze({ chat: '/v1/chat/completions', embeddings: '/v1/embeddings' });

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
  }),
  anthropic: Object.freeze({
    id: 'anthropic',
    schema: 'anthropic',
    baseUrl: 'https://api.anthropic.com',
    authHeader: 'x-api-key',
    authPrefix: '',
    headers: Object.freeze({ 'anthropic-version': '2023-06-01' }),
    paths: Object.freeze({ messages: '/v1/messages' }),
    maxTokensField: 'max_tokens',
    priceFamily: 'anthropic',
  }),
  'openai-compatible': Object.freeze({
    id: 'openai-compatible',
    schema: 'openai',
    baseUrl: undefined,
    authHeader: 'authorization',
    authPrefix: 'Bearer ',
    headers: Object.freeze({}),
    paths: openaiPaths,
    maxTokensField: 'max_tokens',
    priceFamily: 'openai',
  }),
} satisfies Record<string, ProviderSpec>);

export function providerSpec(id: string): ProviderSpec | undefined {
  return Object.hasOwn(PROVIDERS, id) ? PROVIDERS[id] : undefined;
}
