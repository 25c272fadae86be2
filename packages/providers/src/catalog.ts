/**
 * Providers are data. An entry says which wire schema the provider speaks, where it lives, how the
 * gateway authenticates, and its quirks. Adding an OpenAI-compatible provider is a few lines here.
 */
export type WireSchema = 'openai' | 'anthropic' | 'gemini' | 'bedrock';

/** `batches` / `files`: the provider's batch API (OpenAI Batch with its file uploads; Anthropic Message Batches). */
export type Endpoint = 'responses' | 'chat' | 'embeddings' | 'moderations' | 'applyGuardrail' | 'contentSafety' | 'messages' | 'batches' | 'files' | 'generate' | 'streamGenerate' | 'converse' | 'converseStream';

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
  /** Models the preset is known for: each has a bundled price (a test checks it) and is listed in the README. */
  readonly defaultModels: readonly string[];
  /** Human name for the README's provider table. */
  readonly displayName: string;
}

const openaiPaths = Object.freeze({ chat: '/v1/chat/completions', embeddings: '/v1/embeddings', moderations: '/v1/moderations', batches: '/v1/batches', files: '/v1/files', responses: '/v1/responses' });
const compatiblePaths = Object.freeze({ chat: '/v1/chat/completions', embeddings: '/v1/embeddings' });
const chatOnly = Object.freeze({ chat: '/v1/chat/completions' });
/** Self-hosted and generic OpenAI-family servers: a classifier may serve the moderations API there. */
const selfHostedPaths = Object.freeze({ ...compatiblePaths, moderations: '/v1/moderations' });

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
    defaultModels: ['gpt-5', 'gpt-5-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4o', 'gpt-4o-mini', 'o3', 'o4-mini', 'text-embedding-3-small'],
    displayName: 'OpenAI',
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
    defaultModels: ['claude-opus-4-5', 'claude-sonnet-4-5', 'claude-haiku-4-5'],
    displayName: 'Anthropic',
  }),
  'openai-compatible': Object.freeze({
    id: 'openai-compatible',
    schema: 'openai',
    baseUrl: undefined,
    authHeader: 'authorization',
    authPrefix: 'Bearer ',
    headers: Object.freeze({}),
    // Servers of the OpenAI API family rarely implement its batch API.
    paths: selfHostedPaths,
    maxTokensField: 'max_tokens',
    priceFamily: 'openai',
    batchPricePercent: 0,
    defaultModels: [],
    displayName: 'Any OpenAI-compatible server (endpoint required)',
  }),
  // Azure OpenAI: one deployment per model (the upstream model name is the deployment name), the
  // api-version query parameter, an `api-key` header (or an Entra ID bearer token, LLMBackend
  // `spec.azure.auth: bearer`). `{model}` and `{apiVersion}` are filled in by the gateway.
  'azure-openai': Object.freeze({
    id: 'azure-openai',
    schema: 'openai',
    baseUrl: undefined,
    authHeader: 'api-key',
    authPrefix: '',
    headers: Object.freeze({}),
    paths: Object.freeze({
      chat: '/openai/deployments/{model}/chat/completions?api-version={apiVersion}',
      embeddings: '/openai/deployments/{model}/embeddings?api-version={apiVersion}',
    }),
    maxTokensField: 'max_completion_tokens',
    priceFamily: 'openai',
    batchPricePercent: 0,
    defaultModels: ['gpt-4.1', 'gpt-4.1-mini', 'gpt-4o', 'gpt-4o-mini', 'o4-mini', 'text-embedding-3-small'],
    displayName: 'Azure OpenAI',
  }),
  // Azure AI Content Safety (text:analyze): a guardrail classifier only, never a route's backend. The
  // resource key in `Ocp-Apim-Subscription-Key`, or Entra ID tokens (LLMBackend `spec.azure`).
  'azure-content-safety': Object.freeze({
    id: 'azure-content-safety',
    schema: 'openai',
    baseUrl: undefined,
    authHeader: 'ocp-apim-subscription-key',
    authPrefix: '',
    headers: Object.freeze({}),
    paths: Object.freeze({ contentSafety: '/contentsafety/text:analyze?api-version=2024-09-01' }),
    maxTokensField: 'max_tokens',
    priceFamily: 'self-hosted',
    batchPricePercent: 0,
    defaultModels: [],
    displayName: 'Azure AI Content Safety (guardrail classifier only; endpoint required)',
  }),
  // Google Gemini API: generateContent / streamGenerateContent (SSE), model in the path, API key header.
  gemini: Object.freeze({
    id: 'gemini',
    schema: 'gemini',
    baseUrl: 'https://generativelanguage.googleapis.com',
    authHeader: 'x-goog-api-key',
    authPrefix: '',
    headers: Object.freeze({}),
    paths: Object.freeze({ generate: '/v1beta/models/{model}:generateContent', streamGenerate: '/v1beta/models/{model}:streamGenerateContent?alt=sse' }),
    maxTokensField: 'max_tokens',
    priceFamily: 'gemini',
    batchPricePercent: 0,
    defaultModels: ['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite', 'gemini-2.0-flash'],
    displayName: 'Google Gemini API',
  }),
  // Google Vertex AI: the Gemini wire format under a project and location, authenticated by a
  // service account (the sidecar signs short-lived tokens with its key through google-auth-library).
  'vertex-ai': Object.freeze({
    id: 'vertex-ai',
    schema: 'gemini',
    baseUrl: 'https://{location}-aiplatform.googleapis.com',
    authHeader: 'authorization',
    authPrefix: '',
    headers: Object.freeze({}),
    paths: Object.freeze({
      generate: '/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent',
      streamGenerate: '/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent?alt=sse',
    }),
    maxTokensField: 'max_tokens',
    priceFamily: 'gemini',
    batchPricePercent: 0,
    defaultModels: ['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite', 'gemini-2.0-flash'],
    displayName: 'Google Vertex AI (Gemini)',
  }),
  // AWS Bedrock Converse / ConverseStream: any Bedrock model by its model id (or inference profile),
  // SigV4-signed with the credentials in the backend's Secret; streams in the AWS event-stream framing.
  bedrock: Object.freeze({
    id: 'bedrock',
    schema: 'bedrock',
    baseUrl: 'https://bedrock-runtime.{region}.amazonaws.com',
    authHeader: '',
    authPrefix: '',
    headers: Object.freeze({}),
    paths: Object.freeze({ converse: '/model/{model}/converse', converseStream: '/model/{model}/converse-stream', applyGuardrail: '/guardrail/{guardrail}/version/{version}/apply' }),
    maxTokensField: 'max_tokens',
    priceFamily: 'bedrock',
    batchPricePercent: 0,
    defaultModels: ['anthropic.claude-sonnet-4-5-20250929-v1:0', 'anthropic.claude-haiku-4-5-20251001-v1:0', 'amazon.nova-pro-v1:0', 'amazon.nova-lite-v1:0', 'meta.llama3-3-70b-instruct-v1:0'],
    displayName: 'AWS Bedrock (Converse)',
  }),
  mistral: compatible('mistral', 'Mistral AI', 'https://api.mistral.ai', selfHostedPaths, ['mistral-large-latest', 'mistral-medium-latest', 'mistral-small-latest', 'codestral-latest', 'mistral-embed']),
  groq: compatible('groq', 'Groq', 'https://api.groq.com/openai', chatOnly, ['llama-3.3-70b-versatile', 'llama-3.1-8b-instant', 'openai/gpt-oss-120b', 'openai/gpt-oss-20b']),
  deepseek: compatible('deepseek', 'DeepSeek', 'https://api.deepseek.com', chatOnly, ['deepseek-chat', 'deepseek-reasoner']),
  together: compatible('together', 'Together AI', 'https://api.together.xyz', compatiblePaths, ['meta-llama/Llama-3.3-70B-Instruct-Turbo', 'deepseek-ai/DeepSeek-V3', 'Qwen/Qwen2.5-72B-Instruct-Turbo']),
  fireworks: compatible('fireworks', 'Fireworks AI', 'https://api.fireworks.ai/inference', compatiblePaths, ['accounts/fireworks/models/llama-v3p3-70b-instruct', 'accounts/fireworks/models/deepseek-v3']),
  openrouter: compatible('openrouter', 'OpenRouter', 'https://openrouter.ai/api', chatOnly, ['openai/gpt-4o-mini', 'anthropic/claude-sonnet-4.5', 'meta-llama/llama-3.3-70b-instruct']),
  xai: compatible('xai', 'xAI', 'https://api.x.ai', chatOnly, ['grok-4', 'grok-3', 'grok-3-mini']),
  // Self-hosted servers: no list price (priced 0 unless the backend declares prices), key optional.
  vllm: compatible('vllm', 'vLLM (self-hosted)', undefined, selfHostedPaths, [], 'self-hosted'),
  ollama: compatible('ollama', 'Ollama (self-hosted)', 'http://localhost:11434', selfHostedPaths, [], 'self-hosted'),
} satisfies Record<string, ProviderSpec>);

/** A preset of the OpenAI-compatible family: the OpenAI wire format at another address, its own prices. */
function compatible(id: string, displayName: string, baseUrl: string | undefined, paths: Readonly<Partial<Record<Endpoint, string>>>, defaultModels: readonly string[], priceFamily = id): ProviderSpec {
  return Object.freeze({
    id,
    schema: 'openai',
    baseUrl,
    authHeader: 'authorization',
    authPrefix: 'Bearer ',
    headers: Object.freeze({}),
    paths,
    maxTokensField: 'max_tokens',
    priceFamily,
    batchPricePercent: 0,
    defaultModels: Object.freeze([...defaultModels]),
    displayName,
  });
}

export function providerSpec(id: string): ProviderSpec | undefined {
  return Object.hasOwn(PROVIDERS, id) ? PROVIDERS[id] : undefined;
}
