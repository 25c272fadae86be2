/**
 * The policy kinds (`sluice.dev/v1alpha1`) as TypeScript types. The same objects come from
 * Kubernetes (CRDs) or from YAML files in the one-process mode.
 */
export const API_VERSION = 'sluice.dev/v1alpha1';

export const KINDS = ['LLMBackend', 'LLMRoute'] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  generation?: number;
}

export interface ModelPricing {
  /** Integer micro-USD per million tokens. */
  input?: number;
  cachedInput?: number;
  cacheWrite?: number;
  output?: number;
  reasoning?: number;
}

export interface BackendModel {
  id: string;
  aliases?: string[];
  pricing?: ModelPricing;
}

export interface BackendAuth {
  /** Kubernetes Secret holding the key (resolved by the control plane). */
  secretRef?: { name: string; key: string };
  /** One-process mode: name of an environment variable of the process that loads the policy. */
  env?: string;
}

export interface BackendTimeouts {
  connectMs?: number;
  /** Until response headers (for a non-streamed answer: the whole generation). */
  firstByteMs?: number;
  /** Longest silence between two chunks of a streamed body. */
  idleMs?: number;
}

export interface LLMBackendSpec {
  /** Provider id from the provider table: openai | anthropic | openai-compatible. */
  provider: string;
  /** Base URL; defaults to the provider's public endpoint. */
  endpoint?: string;
  auth?: BackendAuth;
  models?: BackendModel[];
  timeouts?: BackendTimeouts;
}

export interface RouteBackendRef {
  /** LLMBackend name, in the route's namespace. */
  name: string;
  /** Model sent upstream instead of the requested one. */
  modelOverride?: string;
}

export interface RouteRule {
  match: { models: string[] };
  backends: RouteBackendRef[];
}

export interface LLMRouteSpec {
  rules: RouteRule[];
}

export interface PolicyObject<K extends Kind = Kind, S = unknown> {
  apiVersion: string;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
}

export type LLMBackend = PolicyObject<'LLMBackend', LLMBackendSpec>;
export type LLMRoute = PolicyObject<'LLMRoute', LLMRouteSpec>;
export type AnyPolicyObject = LLMBackend | LLMRoute;
