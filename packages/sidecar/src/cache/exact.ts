import { createHash } from 'node:crypto';
import type { SnapshotCache } from '@sluice/policy';
import { canonicalJson } from '../routing/coalesce.js';

/**
 * The exact response cache's pure parts: when a request may use the cache, its key, and the
 * in-sidecar tier (an LRU bounded in bytes). The Redis tier and the orchestration live in ./index.ts.
 */

/** An answer as the caller got it: the body bytes in the caller's API shape, JSON or a whole SSE stream. */
export interface CachedAnswer {
  readonly form: 'json' | 'sse';
  readonly body: string;
  readonly backend: string;
  readonly upstreamModel: string;
  /** What the answer cost when it was produced (micro-USD): the cost a hit avoids. */
  readonly costMicros: number;
  readonly createdAtMs: number;
}

/** What a request may do with the cache: read and store, store only (`refresh`), or neither. */
export type CacheUse = 'use' | 'refresh' | 'bypass';

/** Fields that never change the answer (delivery, attribution, provider-side storage flags). */
const VOLATILE = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'prompt_cache_key', 'safety_identifier', 'service_tier']);

const headerText = (v: string | string[] | undefined): string => (Array.isArray(v) ? v.join(',') : (v ?? '')).toLowerCase();

/**
 * The request's cache use: `Cache-Control: no-store` or `x-sluice-cache: bypass` → neither read nor
 * store; `Cache-Control: no-cache` or `x-sluice-cache: refresh` → store a fresh answer only. A
 * non-deterministic request (temperature absent or above 0: providers default to 1) bypasses unless
 * the policy caches those too (`deterministic`: the API has no sampling, embeddings); `reason` says why.
 */
export function cacheUse(policy: SnapshotCache, headers: Record<string, string | string[] | undefined>, body: Record<string, unknown>, deterministic = false): { use: CacheUse; reason?: string } {
  const cc = headerText(headers['cache-control']);
  const mine = headerText(headers['x-sluice-cache']);
  if (cc.includes('no-store') || mine === 'bypass') return { use: 'bypass', reason: 'header' };
  if (!policy.cacheNonDeterministic && !deterministic) {
    const t = body['temperature'];
    if (typeof t !== 'number' || t > 0) return { use: 'bypass', reason: 'nondeterministic' };
  }
  if (cc.includes('no-cache') || mine === 'refresh') return { use: 'refresh' };
  return { use: 'use' };
}

/** The tenant scope of a policy's entries: its namespace, its team, or everyone. */
export function cacheScope(policy: SnapshotCache, namespace: string, team: string): string {
  switch (policy.isolation) {
    case 'global':
      return 'global';
    case 'team':
      return `team:${namespace}/${team}`;
    default:
      return `ns:${namespace}`;
  }
}

export interface KeyParts {
  readonly policy: SnapshotCache;
  readonly scope: string;
  /** The resolved route rule (`namespace/route#i`). */
  readonly route: string;
  readonly ingress: string;
  /** Streams and JSON answers are separate entries (a stream is replayed byte for byte). */
  readonly stream: boolean;
  /** An OpenAI stream with or without its usage chunk. */
  readonly includeUsage: boolean;
  /** `x-sluice-prompt-version` (a template version the caller sends), '' when absent. */
  readonly promptVersion: string;
}

/** The exact key: SHA-256 over the key version, scope, route, API, form and the canonical body (volatile fields out). */
export function exactKey(k: KeyParts, body: Record<string, unknown>): string {
  const kept: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(body)) if (!VOLATILE.has(name)) kept[name] = v;
  return createHash('sha256')
    .update(`sluice-cache-1\u0000${k.policy.keyVersion}\u0000${k.scope}\u0000${k.route}\u0000${k.ingress}\u0000${k.stream ? (k.includeUsage ? 'sse+usage' : 'sse') : 'json'}\u0000${k.promptVersion}\u0000`)
    .update(canonicalJson(kept))
    .digest('base64url');
}

/** Bytes an entry holds in memory (UTF-16 strings, plus bookkeeping). */
export const entryBytes = (key: string, a: CachedAnswer): number => 2 * (key.length + a.body.length + a.backend.length + a.upstreamModel.length) + 160;

interface Slot {
  readonly answer: CachedAnswer;
  readonly expiresAtMs: number;
  readonly bytes: number;
  /** When it was last moved to the most-recent end (the tier's move counter). */
  movedAt: number;
}

/**
 * The in-sidecar tier: least recently used out first while over `maxBytes` (approximately: a hit
 * moves an entry only when it sits in the older half), entries expire at their TTL.
 */
export class LocalTier {
  readonly #slots = new Map<string, Slot>();
  #bytes = 0;
  #moves = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#slots.size;
  }

  get(key: string): CachedAnswer | undefined {
    const s = this.#slots.get(key);
    if (s === undefined) return undefined;
    if (s.expiresAtMs <= this.now()) {
      this.#slots.delete(key);
      this.#bytes -= s.bytes;
      return undefined;
    }
    // Most recently used last — but only entries in the older half move: deleting and re-adding a hot
    // key on every hit leaves deleted slots that V8's Map walks (measured: 17 µs per hit at 16k entries).
    if (this.#moves - s.movedAt > this.#slots.size / 2) {
      this.#slots.delete(key);
      s.movedAt = ++this.#moves;
      this.#slots.set(key, s);
    }
    return s.answer;
  }

  set(key: string, answer: CachedAnswer, ttlMs: number): void {
    const bytes = entryBytes(key, answer);
    if (bytes > this.maxBytes) return;
    const old = this.#slots.get(key);
    if (old !== undefined) {
      this.#slots.delete(key);
      this.#bytes -= old.bytes;
    }
    this.#slots.set(key, { answer, expiresAtMs: this.now() + ttlMs, bytes, movedAt: ++this.#moves });
    this.#bytes += bytes;
    for (const [k, s] of this.#slots) {
      if (this.#bytes <= this.maxBytes) break;
      this.#slots.delete(k);
      this.#bytes -= s.bytes;
    }
  }
}
