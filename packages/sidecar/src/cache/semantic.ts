import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SluiceError, type Logger } from '@sluice/core';
import type { SnapshotBackend } from '@sluice/policy';
import { canonicalJson } from '../routing/coalesce.js';
import { callUpstream, upstreamStatusError, type UpstreamPools } from '../upstream.js';
import type { CachedAnswer, LocalTier } from './exact.js';
import { SemanticIndex } from './semantic-index.js';

/**
 * The semantic response cache: a question close enough (cosine ≥ the policy's threshold) to one
 * already answered, with everything else in the request identical, gets that answer.
 *
 * - What is embedded: the last user turn (or every user turn); the rest of the request (system
 *   prompt, earlier turns, parameters, model) must be identical — it is hashed into the entry's scope
 *   with the tenant scope, route, API, answer form, key version and prompt version.
 * - Entries live in plain Redis (Debian's Redis 7.0 has no vector search): per entry the vector
 *   (`sluice:sc:v:<id>`) and the answer (`sluice:sc:a:<id>`), and per scope a sorted set of entry ids
 *   by expiry (`sluice:sc:z:<scope>`). Each sidecar builds its nearest-neighbour index in memory
 *   (`SemanticIndex`, bounded in bytes): a scope is loaded on its first lookup and re-synced at most
 *   once a second (new ids only). Without Redis (or `shared: false`) the index and answers stay in
 *   the sidecar.
 */

export interface SemanticQuery {
  /** The text embedded. */
  readonly text: string;
  /** Hash of the rest of the request (what must be identical for an answer to fit). */
  readonly context: string;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const VOLATILE = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'prompt_cache_key', 'safety_identifier', 'service_tier']);

/** The text of a message's content: a string, or its text parts (OpenAI `text`, Anthropic `text` blocks). */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const p of content) if (isObj(p) && p['type'] === 'text' && typeof p['text'] === 'string') parts.push(p['text']);
  return parts.join('\n');
}

/**
 * The text to embed and the context hash of a chat (OpenAI) or messages (Anthropic) request;
 * undefined when there is no user text (nothing to compare).
 */
export function semanticQuery(body: Json, embed: string): SemanticQuery | undefined {
  const messages = body['messages'];
  if (!Array.isArray(messages)) return undefined;
  const userAt: number[] = [];
  messages.forEach((m, i) => {
    if (isObj(m) && m['role'] === 'user') userAt.push(i);
  });
  const chosen = embed === 'allUserTurns' ? userAt : userAt.slice(-1);
  const text = chosen
    .map((i) => contentText((messages[i] as Json)['content']))
    .filter((t) => t.length > 0)
    .join('\n');
  if (text.trim().length === 0) return undefined;
  const drop = new Set(chosen);
  const rest: Json = {};
  for (const [k, v] of Object.entries(body)) if (!VOLATILE.has(k) && k !== 'messages') rest[k] = v;
  rest['messages'] = messages.map((m, i) => (drop.has(i) ? { role: 'user', content: '\u0000embedded' } : m));
  return { text, context: createHash('sha256').update(canonicalJson(rest)).digest('base64url') };
}

/** The index scope of a request: every part that must match, hashed. */
export function semanticScope(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('base64url');
}

export interface SemanticCacheOptions {
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  /** Answers kept in the sidecar (the response cache's local tier, keys `sem:<id>`). */
  readonly local: LocalTier;
  /** The shared tier's client, once connected (undefined without one). */
  readonly redis: () => Redis | undefined;
  readonly maxBytes: number;
  readonly embedTimeoutMs?: number;
  readonly now?: () => number;
}

interface ScopeSync {
  syncedAtMs: number;
  readonly seen: Set<string>;
}

const SYNC_EVERY_MS = 1000;
/**
 * Scopes whose sync state is remembered at most (a scope is a conversation context, so there may be
 * many): the least recently synced are forgotten first; a forgotten scope is synced from scratch
 * (entries already in the index are replaced, not duplicated).
 */
export const MAX_SYNCED_SCOPES = 10_000;
/** The newest entries of a scope loaded at most. */
const SYNC_MAX = 5000;
const b64 = (v: Float32Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
function fromB64(s: string): Float32Array | undefined {
  const buf = Buffer.from(s, 'base64');
  if (buf.length === 0 || buf.length % 4 !== 0) return undefined;
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
}

export class SemanticCache {
  readonly index: SemanticIndex;
  readonly #scopes = new Map<string, ScopeSync>();
  readonly #now: () => number;
  readonly stats = { embeddings: 0, embedErrors: 0, syncs: 0, loaded: 0 };

  /** Scopes whose sync state is remembered (bounded by {@link MAX_SYNCED_SCOPES}). */
  get syncedScopes(): number {
    return this.#scopes.size;
  }

  constructor(private readonly options: SemanticCacheOptions) {
    this.#now = options.now ?? Date.now;
    this.index = new SemanticIndex({ maxBytes: Math.max(1, options.maxBytes), now: this.#now });
  }

  /** The embedding of `text` from an OpenAI-schema embeddings backend. Throws SluiceError. */
  async embed(backend: SnapshotBackend, model: string, text: string): Promise<Float32Array> {
    const template = backend.paths['embeddings'];
    if (template === undefined) throw new SluiceError('SLUICE_ERR_ROUTE_UNSUPPORTED', `Backend ${backend.id} has no embeddings API`);
    const path = template.replace('{model}', encodeURIComponent(model));
    this.stats.embeddings++;
    try {
      const r = await callUpstream(this.options.pools, backend, { method: 'POST', path, body: JSON.stringify({ model, input: text, encoding_format: 'float' }), timeoutMs: this.options.embedTimeoutMs ?? 10_000, maxBytes: 16 * 1024 * 1024 });
      if (r.status >= 300) throw upstreamStatusError(r.status, {}, r.text);
      const j = JSON.parse(r.text) as { data?: Array<{ embedding?: unknown }> };
      const e = j.data?.[0]?.embedding;
      if (Array.isArray(e) && e.length > 0 && e.every((x) => typeof x === 'number')) return Float32Array.from(e as number[]);
      if (typeof e === 'string') {
        const v = fromB64(e);
        if (v !== undefined) return v;
      }
      throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The embeddings answer has no embedding');
    } catch (e) {
      this.stats.embedErrors++;
      throw e instanceof SluiceError ? e : new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'The embeddings answer is not JSON');
    }
  }

  /** The closest answered question of the scope at or above `threshold`, and its answer. */
  async lookup(scope: string, vector: Float32Array, threshold: number, shared: boolean): Promise<{ answer: CachedAnswer; similarity: number } | undefined> {
    const client = this.options.redis();
    const redis = shared && client?.status === 'ready' ? client : undefined;
    if (redis !== undefined) await this.#sync(redis, scope).catch(() => undefined);
    const hit = this.index.search(scope, vector, threshold);
    if (hit === undefined) return undefined;
    let answer = this.options.local.get(`sem:${hit.id}`);
    if (answer === undefined && redis !== undefined) {
      try {
        const text = await redis.get(`sluice:sc:a:${hit.id}`);
        const v = text === null ? undefined : (JSON.parse(text) as CachedAnswer & { expiresAtMs: number });
        if (v !== undefined && typeof v.body === 'string' && (v.form === 'json' || v.form === 'sse') && v.expiresAtMs > this.#now()) {
          const { expiresAtMs, ...a } = v;
          answer = a;
          this.options.local.set(`sem:${hit.id}`, a, expiresAtMs - this.#now());
        }
      } catch {
        // Redis failed: a miss
      }
    }
    if (answer === undefined) {
      this.index.delete(hit.id);
      return undefined;
    }
    return { answer, similarity: Math.round(hit.similarity * 1000) / 1000 };
  }

  /** Keeps a question's vector and its answer (in the sidecar, and in Redis when `shared`). */
  store(scope: string, vector: Float32Array, answer: CachedAnswer, ttlMs: number, shared: boolean): void {
    const id = randomBytes(12).toString('base64url');
    const expiresAtMs = this.#now() + ttlMs;
    this.index.add({ id, scope, vector, expiresAtMs });
    this.options.local.set(`sem:${id}`, answer, ttlMs);
    this.#scopes.get(scope)?.seen.add(id);
    const client = this.options.redis();
    const redis = shared && client?.status === 'ready' ? client : undefined;
    if (redis === undefined) return;
    const z = `sluice:sc:z:${scope}`;
    redis
      .multi()
      .set(`sluice:sc:v:${id}`, b64(vector), 'PX', ttlMs)
      .set(`sluice:sc:a:${id}`, JSON.stringify({ ...answer, expiresAtMs }), 'PX', ttlMs)
      .zadd(z, expiresAtMs, id)
      .zremrangebyscore(z, '-inf', this.#now())
      .pexpire(z, ttlMs)
      .exec()
      .catch((e: unknown) => this.options.logger.debug({ err: (e as Error).message }, 'semantic cache store failed'));
  }

  /** Loads the scope's entries this sidecar has not seen (newest first, at most SYNC_MAX), at most once a second. */
  async #sync(redis: Redis, scope: string): Promise<void> {
    let s = this.#scopes.get(scope);
    const now = this.#now();
    if (s !== undefined && now - s.syncedAtMs < SYNC_EVERY_MS) return;
    if (s === undefined) {
      s = { syncedAtMs: now, seen: new Set() };
    } else {
      this.#scopes.delete(scope); // re-inserted below: the map's order is the order of last sync
    }
    this.#scopes.set(scope, s);
    while (this.#scopes.size > MAX_SYNCED_SCOPES) {
      const oldest = this.#scopes.keys().next().value;
      if (oldest === undefined) break;
      this.#scopes.delete(oldest);
    }
    s.syncedAtMs = now;
    this.stats.syncs++;
    const withScores = await redis.zrevrangebyscore(`sluice:sc:z:${scope}`, '+inf', String(now), 'WITHSCORES', 'LIMIT', 0, SYNC_MAX);
    const ids: string[] = [];
    const expiries: number[] = [];
    for (let i = 0; i + 1 < withScores.length; i += 2) {
      const id = withScores[i] as string;
      if (s.seen.has(id)) continue;
      ids.push(id);
      expiries.push(Number(withScores[i + 1]));
    }
    for (let i = 0; i < ids.length; i += 200) {
      const chunk = ids.slice(i, i + 200);
      const vectors = await redis.mget(chunk.map((id) => `sluice:sc:v:${id}`));
      chunk.forEach((id, j) => {
        s.seen.add(id);
        const v = vectors[j];
        const vec = v === null || v === undefined ? undefined : fromB64(v);
        if (vec !== undefined && this.index.add({ id, scope, vector: vec, expiresAtMs: expiries[i + j] as number })) this.stats.loaded++;
      });
    }
    // The seen set stays near the index's size: an id evicted from memory is not loaded again soon.
    if (s.seen.size > 4 * SYNC_MAX) s.seen.clear();
  }
}
