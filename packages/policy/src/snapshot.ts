import type { ModelPrice, WireSchema } from '@sluice/providers';
import { providerSpec } from '@sluice/providers';

/**
 * What a sidecar runs on: plain, JSON-serialisable data for one workload, produced by
 * `snapshotFor()` and versioned by the hash of its canonical form. Field names match
 * proto/sluice/v1/snapshot.proto, so it crosses gRPC with no hand mapping. The sidecar builds its
 * runtime tables from it once per snapshot.
 */
export interface Snapshot {
  /** Content hash of the canonical snapshot (same input → same version on every replica). */
  readonly version: string;
  readonly backends: readonly SnapshotBackend[];
  /** Rules in precedence order: the workload's namespace first, then the root namespace. */
  readonly rules: readonly SnapshotRule[];
  readonly limits: readonly SnapshotLimit[];
  readonly caches: readonly SnapshotCache[];
  readonly guardrails: readonly SnapshotGuardrail[];
}

export interface SnapshotBackend {
  /** `namespace/name`. */
  readonly id: string;
  readonly provider: string;
  readonly schema: WireSchema;
  readonly baseUrl: string;
  /** Header name and full value carrying the credential; empty when the backend has none. */
  readonly authHeader: string;
  readonly authValue: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly paths: Readonly<Record<string, string>>;
  readonly maxTokensField: 'max_tokens' | 'max_completion_tokens';
  readonly priceFamily: string;
  /** Per-model price overrides (complete prices, bundled values filled in). */
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** Model ids the backend declares (for /v1/models). */
  readonly models: readonly string[];
  /** Alias → model id, sent upstream in place of the alias. */
  readonly aliases: Readonly<Record<string, string>>;
  readonly timeouts: { readonly connectMs: number; readonly firstByteMs: number; readonly idleMs: number };
  /** Declared capability overrides per model id (fields left out keep the bundled table). */
  readonly capabilities: Readonly<Record<string, ModelCapabilityOverride>>;
  /** '' = `authValue` is the header value; `gcp-service-account` = `authValue` is a service-account key (JSON) the sidecar signs tokens with. */
  readonly authType: string;
}

export interface SnapshotRule {
  /** `namespace/route#index`. */
  readonly route: string;
  /** Exact names (models and aliases) this rule matches. */
  readonly exact: readonly string[];
  /** Glob patterns (`*` any run of characters). */
  readonly patterns: readonly string[];
  readonly targets: readonly SnapshotTarget[];
  /** `ordered` | `weighted` | `least-busy` | `latency` | `cost`. */
  readonly strategy: string;
  readonly fallback: boolean;
  readonly retryAttempts: number;
  readonly retryBackoffMs: number;
  readonly retryMaxBackoffMs: number;
  /** Output cap (0 = none). */
  readonly maxTokens: number;
  /** Timeouts in ms; 0 = the backend's (first token, idle) or none (total). */
  readonly firstTokenTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly totalTimeoutMs: number;
  /** Upper bound of the `x-sluice-timeout-ms` header. */
  readonly maxTotalTimeoutMs: number;
  /** Shadow traffic: the candidate (`backend` '' = none) and the share of requests (0–100). */
  readonly shadow: SnapshotTarget;
  readonly shadowPercent: number;
  readonly coalesce: boolean;
  /** Batch routing: `off` | `header` | `always`, and the batcher's timings. */
  readonly batchMode: string;
  readonly batchWindowMs: number;
  readonly batchMaxRequests: number;
  readonly batchPollMs: number;
  readonly batchHoldMs: number;
  /** Opt-in prompt logging (texts redacted) and the longest text logged per field. */
  readonly logPrompts: boolean;
  readonly logCompletions: boolean;
  readonly logMaxChars: number;
}

export interface SnapshotTarget {
  readonly backend: string;
  readonly modelOverride?: string | undefined;
  readonly weight: number;
}

export interface SnapshotLimit {
  readonly id: string;
  readonly unit: string;
  readonly window: string;
  readonly calendarAligned: boolean;
  readonly timeZone: string;
  readonly max: number;
  readonly key: readonly { readonly source: string; readonly name: string }[];
  readonly scope: string;
  readonly failureMode: string;
  readonly mode: string;
  readonly clampMaxTokens?: boolean;
  /** Route ids (`namespace/name`); empty = all. */
  readonly routes: readonly string[];
  readonly models: readonly string[];
}

export interface SnapshotCache {
  readonly id: string;
  readonly exact: boolean;
  readonly semantic: boolean;
  readonly embeddingBackend: string;
  readonly embeddingModel: string;
  readonly similarityThresholdMilli: number;
  readonly ttlSeconds: number;
  readonly keyVersion: string;
  readonly isolation: string;
  readonly cacheNonDeterministic: boolean;
  /** Use the sidecar's shared Redis tier. */
  readonly shared: boolean;
  /** `lastUserTurn` | `allUserTurns`. */
  readonly semanticEmbed: string;
  /** Anthropic `cache_control` breakpoints on prefixes of at least `promptCachingMinTokens`. */
  readonly promptCaching: boolean;
  readonly promptCachingMinTokens: number;
  readonly routes: readonly string[];
  readonly models: readonly string[];
}

export interface SnapshotGuardrail {
  readonly id: string;
  readonly direction: string;
  readonly action: string;
  readonly detectors: readonly { readonly kind: string; readonly values: readonly string[]; readonly name: string }[];
  readonly routes: readonly string[];
  /** External classifier: its backend ('' = none), model and wire format (`openaiModeration` | `llamaGuard`). */
  readonly classifierBackend: string;
  readonly classifierModel: string;
  readonly classifierFormat: string;
  /** Categories that count; empty = every flagged one. */
  readonly classifierCategories: readonly string[];
  /** Score (0..1000) at which a category counts; 0 = the endpoint's `flagged`. */
  readonly classifierThresholdMilli: number;
  readonly classifierTimeoutMs: number;
  /** Fail closed (block) when the classifier fails or times out; else fail open. */
  readonly classifierFailClosed: boolean;
  readonly classifierMaxChars: number;
  /** Streamed answers: ask every this many characters too (0 = only at the end). */
  readonly classifierStreamCheckChars: number;
}

/** A problem that makes a sidecar refuse (NACK) a snapshot. */
export interface SnapshotProblem {
  /** e.g. `backend default/openai`, `guardrail default/pii`. */
  readonly resource: string;
  readonly code: string;
  readonly message: string;
}

/**
 * The checks a sidecar runs before it swaps a snapshot in: everything its runtime will compile
 * (regular expressions, URLs, provider schemas) must compile now, so a bad snapshot is refused whole
 * and the last good one keeps serving. Pure; also run by `sluice validate`.
 */
export function checkSnapshot(s: Snapshot): SnapshotProblem[] {
  const problems: SnapshotProblem[] = [];
  const fail = (resource: string, message: string): void => {
    problems.push({ resource, code: 'SLUICE_ERR_POLICY_REJECTED', message });
  };
  const backendIds = new Set<string>();
  for (const b of s.backends) {
    backendIds.add(b.id);
    const spec = providerSpec(b.provider);
    if (spec === undefined || spec.schema !== b.schema) fail(`backend ${b.id}`, `unknown provider ${JSON.stringify(b.provider)} with schema ${JSON.stringify(b.schema)}`);
    try {
      const u = new URL(b.baseUrl);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`backend ${b.id}`, `baseUrl ${b.baseUrl} is not http(s)`);
    } catch {
      fail(`backend ${b.id}`, `baseUrl ${JSON.stringify(b.baseUrl)} is not a URL`);
    }
  }
  for (const r of s.rules) {
    for (const t of r.targets) if (!backendIds.has(t.backend)) fail(`route ${r.route}`, `target backend ${t.backend} is not in the snapshot`);
  }
  for (const g of s.guardrails) {
    if (g.classifierBackend !== '') {
      const b = s.backends.find((x) => x.id === g.classifierBackend);
      const bedrock = g.classifierFormat === 'bedrockGuardrail';
      const path = bedrock ? 'applyGuardrail' : g.classifierFormat === 'llamaGuard' ? 'chat' : g.classifierFormat === 'azureContentSafety' ? 'contentSafety' : 'moderations';
      const schema = bedrock ? 'bedrock' : 'openai';
      if (b === undefined) fail(`guardrail ${g.id}`, `classifier backend ${g.classifierBackend} is not in the snapshot`);
      else if (b.schema !== schema || b.paths[path] === undefined) fail(`guardrail ${g.id}`, `classifier backend ${g.classifierBackend} has no ${bedrock ? 'Bedrock' : 'OpenAI-schema'} ${path} API`);
      if (!['openaiModeration', 'llamaGuard', 'bedrockGuardrail', 'azureContentSafety'].includes(g.classifierFormat)) fail(`guardrail ${g.id}`, `unknown classifier format ${JSON.stringify(g.classifierFormat)}`);
    }
    for (const d of g.detectors) {
      if (d.kind !== 'regex') continue;
      for (const v of d.values) {
        try {
          new RegExp(v, 'u');
        } catch (e) {
          fail(`guardrail ${g.id}`, `detector ${d.name || 'regex'}: ${(e as Error).message}`);
        }
      }
    }
  }
  for (const l of s.limits) {
    if (l.calendarAligned) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: l.timeZone });
      } catch {
        fail(`limit ${l.id}`, `unknown time zone ${JSON.stringify(l.timeZone)}`);
      }
    }
  }
  return problems;
}

export interface ModelCapabilityOverride {
  /** 0 = not declared. */
  readonly contextWindow: number;
  /** `yes` | `no` | '' (not declared) for tools, vision, json. */
  readonly tools: string;
  readonly vision: string;
  readonly json: string;
}
