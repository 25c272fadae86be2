import type { ModelPrice, WireSchema } from '@sluice/providers';

/**
 * What a sidecar runs on: plain, JSON-serialisable data, produced by `compile()` and versioned by the
 * hash of its canonical form. The sidecar builds its runtime tables from it once per snapshot.
 */
export interface Snapshot {
  /** Content hash of the canonical snapshot (same input → same version on every replica). */
  readonly version: string;
  readonly backends: readonly SnapshotBackend[];
  /** Exact model names and aliases first, then patterns, in policy order. */
  readonly rules: readonly SnapshotRule[];
}

export interface SnapshotBackend {
  /** `namespace/name`. */
  readonly id: string;
  readonly provider: string;
  readonly schema: WireSchema;
  readonly baseUrl: string;
  /** Header name and full value carrying the credential; empty when the backend needs none. */
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
}

export interface SnapshotRule {
  /** `namespace/route#index`. */
  readonly route: string;
  /** Exact names (models and aliases) this rule matches. */
  readonly exact: readonly string[];
  /** Glob patterns (`*` any run of characters). */
  readonly patterns: readonly string[];
  readonly targets: readonly SnapshotTarget[];
}

export interface SnapshotTarget {
  readonly backend: string;
  readonly modelOverride: string | undefined;
}
