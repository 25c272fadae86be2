/**
 * JSON schemas (draft-07 subset that Kubernetes structural schemas accept) of each kind's `spec`.
 * They validate policy here (ajv) and become the CRDs' openAPIV3Schema (step 3), so there is one
 * definition of every field. `additionalProperties: false` is dropped for CRDs (Kubernetes prunes).
 */
import { PROVIDERS } from '@sluice/providers';
import type { Kind } from './types.js';

type Schema = Record<string, unknown>;

const str = (extra: Schema = {}): Schema => ({ type: 'string', minLength: 1, ...extra });
const int = (minimum: number, maximum: number, description?: string): Schema => ({ type: 'integer', minimum, maximum, ...(description ? { description } : {}) });
const obj = (properties: Record<string, Schema>, required: string[] = [], description?: string): Schema => ({
  type: 'object',
  properties,
  ...(required.length > 0 ? { required } : {}),
  additionalProperties: false,
  ...(description ? { description } : {}),
});
const list = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const oneOf = (values: string[], description?: string): Schema => ({ type: 'string', enum: values, ...(description ? { description } : {}) });

const NAME = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';
const MODEL = '^[\\w.:/@*+-]{1,200}$';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';

const workloadSelector = obj(
  {
    labels: { type: 'object', additionalProperties: { type: 'string', pattern: LABEL_VALUE, maxLength: 63 }, description: 'pod labels that must all match' },
    serviceAccounts: list(str({ pattern: NAME }), { description: 'service accounts, any of which matches' }),
  },
  [],
  'which pods of the namespace this applies to; absent = all',
);

const requestMatch = obj(
  {
    routes: list(str({ pattern: NAME }), { description: 'LLMRoute names; absent = all' }),
    models: list(str({ pattern: MODEL }), { description: 'requested model names or * globs; absent = all' }),
  },
  [],
  'which requests this applies to',
);

const microsPerMillion = int(0, 1_000_000_000_000, 'integer micro-USD per million tokens');

export const SPEC_SCHEMAS: Readonly<Record<Kind, Schema>> = {
  LLMBackend: obj(
    {
      provider: oneOf(Object.keys(PROVIDERS), 'provider id from the provider table (packages/providers/src/catalog.ts)'),
      azure: obj(
        {
          apiVersion: str({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$', description: 'api-version query parameter (default 2024-10-21)' }),
          auth: oneOf(['api-key', 'bearer', 'entra'], 'api-key header (default); bearer: a token from the Secret as Authorization: Bearer; entra: tokens the sidecar obtains from Entra ID (client secret from the Secret, or a federated token file)'),
          entra: obj(
            {
              tenantId: str({ pattern: '^[A-Za-z0-9.-]{1,100}$', description: 'Entra ID tenant (directory) id' }),
              clientId: str({ pattern: '^[A-Za-z0-9-]{1,100}$', description: 'application (client) id' }),
              authorityHost: str({ pattern: '^https?://', maxLength: 2048, description: 'default https://login.microsoftonline.com' }),
              federatedTokenFile: str({ maxLength: 4096, description: 'workload identity: file with the federated token (AZURE_FEDERATED_TOKEN_FILE on AKS), used when the backend has no auth Secret' }),
            },
            ['tenantId', 'clientId'],
            'auth: entra — the app registration the sidecar gets tokens for',
          ),
        },
        [],
        'Azure OpenAI options (provider azure-openai)',
      ),
      vertex: obj(
        {
          project: str({ pattern: '^[a-z][a-z0-9-]{4,61}[a-z0-9]$', description: 'Google Cloud project id' }),
          location: str({ pattern: '^[a-z0-9-]{1,40}$', description: 'region (us-central1, europe-west4, …) or global' }),
        },
        ['project', 'location'],
        'Vertex AI options (provider vertex-ai); the auth Secret holds a service-account key (JSON)',
      ),
      bedrock: obj(
        {
          region: str({ pattern: '^[a-z]{2}(-gov)?-[a-z]+-[0-9]$', description: 'AWS region, e.g. us-east-1' }),
          roleArn: str({ pattern: '^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$', description: 'IAM role for service accounts (IRSA): assumed with the web identity token when the backend has no auth Secret' }),
          webIdentityTokenFile: str({ maxLength: 4096, description: 'default /var/run/secrets/eks.amazonaws.com/serviceaccount/token' }),
          stsEndpoint: str({ pattern: '^https?://', maxLength: 2048, description: 'STS endpoint (default the regional one)' }),
        },
        ['region'],
        'Bedrock options (provider bedrock); the auth Secret holds JSON {accessKeyId, secretAccessKey, sessionToken?}, or roleArn names a role to assume (IRSA)',
      ),
      endpoint: str({ pattern: '^https?://', maxLength: 2048, description: 'base URL; default: the provider public endpoint' }),
      auth: obj(
        {
          secretRef: obj({ name: str({ pattern: NAME }), key: str({ maxLength: 253 }) }, ['name', 'key'], 'Secret in the backend namespace holding the key'),
          env: str({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'one-process mode: environment variable of the control plane' }),
        },
        [],
        'credential injected by the sidecar',
      ),
      models: list(
        obj(
          {
            id: str({ pattern: MODEL }),
            aliases: list(str({ pattern: MODEL })),
            pricing: obj({ input: microsPerMillion, cachedInput: microsPerMillion, cacheWrite: microsPerMillion, output: microsPerMillion, reasoning: microsPerMillion }),
            capabilities: obj(
              {
                contextWindow: int(1, 100_000_000, 'tokens, prompt + output'),
                tools: { type: 'boolean' },
                vision: { type: 'boolean' },
                json: { type: 'boolean', description: 'response_format JSON mode' },
              },
              [],
              'capability routing: what the model takes (overrides the bundled table; unset fields keep it)',
            ),
          },
          ['id'],
        ),
      ),
      timeouts: obj({ connectMs: int(1, 3_600_000), firstByteMs: int(1, 3_600_000), idleMs: int(1, 3_600_000) }),
    },
    ['provider'],
  ),
  LLMRoute: obj(
    {
      workloadSelector,
      rules: list(
        obj(
          {
            match: obj({ models: list(str({ pattern: MODEL }), { minItems: 1 }) }, ['models']),
            backends: list(obj({ name: str({ pattern: NAME }), modelOverride: str({ pattern: MODEL }), weight: int(0, 10_000, 'share of first attempts under strategy weighted (default 1; 0 = fallback only)') }, ['name']), {
              minItems: 1,
              maxItems: 16,
            }),
            strategy: oneOf(['ordered', 'weighted', 'least-busy', 'latency', 'cost'], 'how the first backend is chosen (default ordered); the others follow in declared order as fallbacks'),
            fallback: { type: 'boolean', description: 'fail over to the other backends of the rule (default true)' },
            retry: obj(
              {
                attempts: int(1, 10, 'attempts in all, the first included (default 3)'),
                backoffMs: int(0, 60_000, 'base backoff before retrying the same backend (default 250; 529 waits 4x)'),
                maxBackoffMs: int(0, 600_000, 'longest wait before a retry; a longer Retry-After is returned to the caller (default 10000)'),
              },
              [],
              'retries and fail-over',
            ),
            maxTokens: int(1, 10_000_000, 'output cap: max_tokens set when absent, lowered when larger'),
            timeouts: obj(
              {
                firstTokenMs: int(1, 3_600_000, "until the provider's response headers (a stream's first event); overrides the backend's"),
                idleMs: int(1, 3_600_000, "longest silence between two stream chunks; overrides the backend's"),
                totalMs: int(1, 3_600_000, 'the whole request, every attempt and wait included'),
                maxTotalMs: int(1, 3_600_000, 'upper bound of the x-sluice-timeout-ms request header (default totalMs, else 10 minutes)'),
              },
              [],
              'timeouts of this rule',
            ),
            coalesce: { type: 'boolean', description: 'identical non-streamed requests in flight at once (same body, route and user) share one upstream call (default false)' },
            shadow: obj(
              {
                backend: str({ pattern: NAME, description: 'LLMBackend that also gets the request' }),
                modelOverride: str({ pattern: MODEL }),
                percent: int(0, 100, 'share of requests shadowed'),
              },
              ['backend', 'percent'],
              'send a share of requests to a candidate backend too; its answer is logged with cost and latency, never returned',
            ),
            batch: obj(
              {
                mode: oneOf(['off', 'header', 'always'], 'off (default); header: requests with x-sluice-batch: true; always: every non-streamed request unless x-sluice-batch: false'),
                windowMs: int(10, 86_400_000, 'how long requests are collected before a batch is submitted (default 60000)'),
                maxRequests: int(1, 50_000, 'a batch is submitted at once when it holds this many requests (default 1000)'),
                pollMs: int(10, 3_600_000, 'how often a submitted batch is polled (default 30000)'),
                holdMs: int(0, 86_400_000, "how long the caller's connection is held for the answer; then 202 with a poll URL (default 600000)"),
              },
              [],
              "latency-tolerant requests go through the provider's batch API (OpenAI Batch, Anthropic Message Batches) at its batch price",
            ),
            logging: obj(
              {
                prompts: { type: 'boolean', description: "log the request's texts in its log line (default false)" },
                completions: { type: 'boolean', description: "log the answer's texts in its log line (default false)" },
                maxChars: int(16, 1_000_000, 'longest text logged per field, in characters (default 4096)'),
              },
              [],
              "opt-in prompt logging; texts pass through the route's guardrail redaction (or the default PII detectors) first",
            ),
          },
          ['match', 'backends'],
        ),
        { minItems: 1 },
      ),
    },
    ['rules'],
  ),
  LLMLimit: obj(
    {
      workloadSelector,
      match: requestMatch,
      unit: oneOf(['requests', 'tokens', 'inputTokens', 'outputTokens', 'microUSD']),
      window: oneOf(['second', 'minute', 'hour', 'day', 'month']),
      calendarAligned: { type: 'boolean' },
      timeZone: str({ maxLength: 64, description: 'IANA time zone for calendar-aligned windows; default UTC' }),
      max: int(0, Number.MAX_SAFE_INTEGER, 'integer units per window'),
      key: list(obj({ source: oneOf(['namespace', 'serviceAccount', 'label', 'header']), name: str({ maxLength: 253 }) }, ['source'])),
      scope: oneOf(['local', 'global']),
      failureMode: oneOf(['FailClosed', 'FailOpen', 'LocalShare']),
      mode: oneOf(['enforce', 'shadow']),
      clampMaxTokens: { type: 'boolean', description: 'lower max_tokens to the remaining credit instead of denying (token limits)' },
    },
    ['unit', 'window', 'max'],
  ),
  LLMCache: obj({
    workloadSelector,
    match: requestMatch,
    exact: { type: 'boolean' },
    semantic: obj(
      {
        backend: str({ pattern: NAME, description: 'LLMBackend serving embeddings (OpenAI embeddings API)' }),
        model: str({ pattern: MODEL }),
        threshold: { type: 'number', minimum: 0, maximum: 1, description: 'cosine similarity at or above which a cached answer is served (e.g. 0.92)' },
        embed: oneOf(['lastUserTurn', 'allUserTurns'], 'what is embedded (default lastUserTurn)'),
      },
      ['backend', 'model', 'threshold'],
    ),
    ttlSeconds: int(1, 31_536_000),
    keyVersion: str({ maxLength: 63 }),
    isolation: oneOf(['namespace', 'team', 'global']),
    cacheNonDeterministic: { type: 'boolean' },
    shared: { type: 'boolean', description: "use the shared Redis tier when the sidecar has one (default true)" },
    promptCaching: obj(
      { enabled: { type: 'boolean' }, minPrefixTokens: int(1, 1_000_000, 'only prefixes (system, tools) of at least this many tokens get a breakpoint (default 1024)') },
      ['enabled'],
      'Anthropic prompt caching: cache_control breakpoints on long stable prefixes',
    ),
  }),
  LLMGuardrail: obj(
    {
      workloadSelector,
      match: obj({ routes: list(str({ pattern: NAME })) }),
      direction: oneOf(['input', 'output', 'both']),
      action: oneOf(['redact', 'block', 'log']),
      detectors: list(
        obj(
          {
            kind: oneOf(['email', 'phone', 'ssn', 'creditCard', 'iban', 'ip', 'secret', 'injection', 'denyList', 'regex']),
            values: list({ type: 'string', minLength: 1, maxLength: 1000 }),
            name: str({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,62}$' }),
          },
          ['kind'],
        ),
        { minItems: 1 },
      ),
      classifier: obj(
        {
          backend: str({ pattern: NAME, description: 'LLMBackend serving the classifier' }),
          model: str({ pattern: MODEL }),
          format: oneOf(['openaiModeration', 'llamaGuard', 'bedrockGuardrail', 'azureContentSafety'], 'openaiModeration (default): POST /v1/moderations; llamaGuard: a Llama Guard model behind a chat API; bedrockGuardrail: an Amazon Bedrock guardrail through a Bedrock backend (model: <guardrail id or ARN>:<version>); azureContentSafety: Azure AI Content Safety text analysis through an azure-content-safety backend'),
          categories: list(str({ maxLength: 100 }), { description: 'categories that count (default: every flagged category)' }),
          threshold: { type: 'number', minimum: 0, maximum: 1, description: "openaiModeration: a category counts at this score or above (default: the endpoint's flagged)" },
          timeoutMs: int(10, 60_000, 'longest wait for a verdict (default 2000)'),
          onError: oneOf(['allow', 'block'], 'when the classifier fails or times out: allow (fail open, default) or block (fail closed)'),
          maxChars: int(100, 1_000_000, 'longest text sent, in characters (default 32000)'),
          streamCheckChars: int(0, 1_000_000, 'streamed answers, action block: also ask every this many characters of answer, so a flagged stream stops early (default 0: only at its end)'),
        },
        ['backend', 'model'],
        'an external moderation endpoint asked about the texts (action block or log)',
      ),
    },
    ['direction', 'action'],
  ),
};

/** The whole object's schema (envelope + spec) for one kind. */
export function objectSchema(kind: Kind): Schema {
  return {
    type: 'object',
    properties: {
      apiVersion: { type: 'string', const: 'sluice.dev/v1alpha1' },
      kind: { type: 'string', const: kind },
      metadata: {
        type: 'object',
        properties: { name: str({ pattern: NAME, maxLength: 253 }), namespace: str({ pattern: NAME, maxLength: 63 }) },
        required: ['name'],
      },
      spec: SPEC_SCHEMAS[kind],
      status: { type: 'object' },
    },
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
  };
}
