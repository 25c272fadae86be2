/** A snapshot shaped like packages/policy's `Snapshot` (every field present, as `snapshotFor()` emits). */
export function sampleSnapshot() {
  return {
    version: 'sha256:4f2c9a0e',
    backends: [
      {
        id: 'default/openai',
        provider: 'openai',
        schema: 'openai',
        baseUrl: 'https://api.openai.com',
        authHeader: 'authorization',
        authValue: 'Bearer sk-test',
        headers: { 'openai-organization': 'org-1', 'x-team': 'search' },
        paths: { chat: '/v1/chat/completions', embeddings: '/v1/embeddings' },
        maxTokensField: 'max_completion_tokens',
        priceFamily: 'openai',
        prices: {
          'gpt-4o': { input: 2_500_000, cachedInput: 1_250_000, cacheWrite: 0, output: 10_000_000, reasoning: 10_000_000 },
          // int64 values above 2^32 survive the wire as exact numbers.
          'gpt-huge': { input: 9_000_000_000_000, cachedInput: 0, cacheWrite: 0, output: Number.MAX_SAFE_INTEGER, reasoning: 4_294_967_296 },
        },
        models: ['gpt-4o', 'gpt-4o-mini', 'gpt-huge'],
        aliases: { fast: 'gpt-4o-mini' },
        timeouts: { connectMs: 2000, firstByteMs: 30_000, idleMs: 60_000 },
      },
      {
        id: 'default/anthropic',
        provider: 'anthropic',
        schema: 'anthropic',
        baseUrl: 'https://api.anthropic.com',
        authHeader: '',
        authValue: '',
        headers: {},
        paths: {},
        maxTokensField: 'max_tokens',
        priceFamily: 'anthropic',
        prices: {},
        models: [],
        aliases: {},
        timeouts: { connectMs: 0, firstByteMs: 0, idleMs: 0 },
      },
    ],
    rules: [
      {
        route: 'default/main#0',
        exact: ['gpt-4o', 'fast'],
        patterns: ['gpt-4o-*'],
        targets: [
          { backend: 'default/openai' }, // modelOverride unset
          { backend: 'default/anthropic', modelOverride: 'claude-sonnet-4-5' },
          { backend: 'default/openai', modelOverride: '' }, // set, to the empty string
        ],
      },
      { route: 'platform/fallback#0', exact: [], patterns: ['*'], targets: [{ backend: 'default/anthropic' }] },
    ],
    limits: [
      {
        id: 'default/team-budget',
        unit: 'microUSD',
        window: 'month',
        calendarAligned: true,
        timeZone: 'Europe/Berlin',
        max: 5_000_000_000_000,
        key: [
          { source: 'namespace', name: '' },
          { source: 'label', name: 'team' },
        ],
        scope: 'global',
        failureMode: 'LocalShare',
        mode: 'enforce',
        clampMaxTokens: true,
        routes: ['default/main'],
        models: ['gpt-4o*'],
      },
      {
        id: 'default/rps',
        unit: 'requests',
        window: 'second',
        calendarAligned: false,
        timeZone: '',
        max: 50,
        key: [],
        scope: 'local',
        failureMode: 'FailOpen',
        mode: 'shadow',
        clampMaxTokens: false,
        routes: [],
        models: [],
      },
    ],
    caches: [
      {
        id: 'default/exact',
        exact: true,
        semantic: true,
        embeddingBackend: 'default/openai',
        embeddingModel: 'text-embedding-3-small',
        similarityThresholdMilli: 950,
        ttlSeconds: 3600,
        keyVersion: 'v2',
        isolation: 'namespace',
        cacheNonDeterministic: false,
        routes: [],
        models: ['gpt-4o'],
      },
    ],
    guardrails: [
      {
        id: 'default/pii',
        direction: 'both',
        action: 'redact',
        detectors: [
          { kind: 'email', values: [], name: '' },
          { kind: 'denyList', values: ['project-x', 'codename'], name: 'secrets' },
          { kind: 'regex', values: ['\\bACME-\\d{6}\\b'], name: 'ticket' },
        ],
        routes: ['default/main'],
      },
    ],
  };
}
