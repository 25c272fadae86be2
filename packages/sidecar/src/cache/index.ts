import type { Redis } from 'ioredis';
import type { Logger } from '@sluice/core';
import { LocalTier, type CachedAnswer } from './exact.js';

export { cacheScope, cacheUse, exactKey, LocalTier, type CachedAnswer, type CacheUse } from './exact.js';

export interface CacheHit {
  readonly answer: CachedAnswer;
  readonly tier: 'local' | 'redis' | 'semantic';
  /** Semantic hits: the cosine similarity of the question to the cached one. */
  readonly similarity?: number;
}

export interface ResponseCacheOptions {
  readonly maxBytes: number;
  readonly maxEntryBytes: number;
  /** The shared tier; '' = none. */
  readonly redisUrl: string;
  readonly redisTimeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** How an entry is kept in Redis: the answer and when it expires (so a copy into the local tier keeps it). */
interface Stored extends CachedAnswer {
  readonly expiresAtMs: number;
}

const REDIS_PREFIX = 'sluice:rc:';

function readStored(text: string | null): Stored | undefined {
  if (text === null) return undefined;
  try {
    const v = JSON.parse(text) as Partial<Stored>;
    if ((v.form === 'json' || v.form === 'sse') && typeof v.body === 'string' && typeof v.backend === 'string' && typeof v.upstreamModel === 'string' && Number.isSafeInteger(v.costMicros) && typeof v.expiresAtMs === 'number' && typeof v.createdAtMs === 'number') {
      return v as Stored;
    }
  } catch {
    // a foreign or damaged value: a miss
  }
  return undefined;
}

/**
 * The response cache's two tiers: the in-sidecar LRU, then (policy `shared`) Redis, so one pod's
 * answer serves the others. Redis is best effort: a lookup that fails or takes longer than
 * `redisTimeoutMs` is a miss, a store that fails is dropped, and the request never waits for a store.
 * Redis state changes are logged once each (not per request).
 */
export class ResponseCache {
  readonly local: LocalTier;
  #redis: Redis | undefined;
  #closed = false;
  readonly #now: () => number;
  #redisHealthy = true;
  readonly stats = { hits: { local: 0, redis: 0, semantic: 0 }, misses: 0, stores: 0, redisErrors: 0 };

  constructor(private readonly options: ResponseCacheOptions) {
    this.#now = options.now ?? Date.now;
    this.local = new LocalTier(options.maxBytes, this.#now);
    // ioredis is loaded only when a shared tier is configured; until it is connected, lookups use the local tier.
    if (options.redisUrl !== '') void this.#connect(options.redisUrl);
  }

  async #connect(url: string): Promise<void> {
    const { Redis } = await import('ioredis');
    if (this.#closed) return;
    const client = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.options.redisTimeoutMs,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    client.on('error', () => undefined);
    client.on('ready', () => this.#health(true));
    this.#redis = client;
  }

  get maxEntryBytes(): number {
    return this.options.maxEntryBytes;
  }

  #health(ok: boolean, err?: unknown): void {
    if (!ok) this.stats.redisErrors++;
    if (ok === this.#redisHealthy) return;
    this.#redisHealthy = ok;
    if (ok) this.options.logger.info('response cache: Redis tier reachable again');
    else this.options.logger.warn({ err: (err as Error | undefined)?.message }, 'response cache: Redis tier unavailable, serving from the local tier and upstream');
  }

  /** The local tier, then Redis (`shared`); a Redis hit is copied into the local tier. */
  async lookup(key: string, shared: boolean): Promise<CacheHit | undefined> {
    const local = this.local.get(key);
    if (local !== undefined) {
      this.stats.hits.local++;
      return { answer: local, tier: 'local' };
    }
    if (shared && this.#redis !== undefined && this.#redis.status === 'ready') {
      try {
        const stored = readStored(await this.#redis.get(REDIS_PREFIX + key));
        this.#health(true);
        const left = stored === undefined ? 0 : stored.expiresAtMs - this.#now();
        if (stored !== undefined && left > 0) {
          const { expiresAtMs: _drop, ...answer } = stored;
          this.local.set(key, answer, left);
          this.stats.hits.redis++;
          return { answer, tier: 'redis' };
        }
      } catch (e) {
        this.#health(false, e);
      }
    }
    this.stats.misses++;
    return undefined;
  }

  /** Keeps an answer for `ttlMs` in the local tier and (`shared`) in Redis, without waiting for Redis. */
  store(key: string, answer: CachedAnswer, ttlMs: number, shared: boolean): void {
    if (answer.body.length > this.options.maxEntryBytes) return;
    this.stats.stores++;
    this.local.set(key, answer, ttlMs);
    if (!shared || this.#redis === undefined || this.#redis.status !== 'ready') return;
    const value = JSON.stringify({ ...answer, expiresAtMs: this.#now() + ttlMs } satisfies Stored);
    this.#redis.set(REDIS_PREFIX + key, value, 'PX', ttlMs).then(
      () => this.#health(true),
      (e: unknown) => this.#health(false, e),
    );
  }

  /** The Redis client for the semantic tier (entries and index), when there is one. */
  get redis(): Redis | undefined {
    return this.#redis;
  }

  close(): void {
    this.#closed = true;
    this.#redis?.disconnect();
  }
}
