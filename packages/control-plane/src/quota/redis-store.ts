import type { Redis, RedisOptions } from 'ioredis';
import { redisClient } from '../redis-client.js';
import { checkDebit, checkUnits, DEFAULT_PEER_WINDOW_MS, DEFAULT_SLACK_MS, type CounterRef, type CreditRequest, type DebitRequest, type DebitResult, type QuotaStore, type QuotaStoreOptions } from './store.js';

// KEYS[1] counter, KEYS[2] lease record, KEYS[3] drawers (sorted set, score = last debit ms).
// ARGV want, need, max, ttlMs, nowMs, drawer, peerWindowMs, cap. Returns {granted, spent, peers}.
// The grant rule is `grantFor` in store.ts.
const DEBIT = `
local want = tonumber(ARGV[1])
local need = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]) - 1)
redis.call('PEXPIRE', KEYS[3], ttl)
local peers = redis.call('ZCARD', KEYS[3])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local prior = redis.call('GET', KEYS[2])
if prior then
  local g = tonumber(prior)
  if g < 0 then g = 0 end
  return {g, spent, peers}
end
local left = max - spent
local granted = 0
if left > 0 and need <= left then
  local share = math.ceil(left / peers)
  local cap = tonumber(ARGV[8])
  if cap > 0 and cap < share then share = cap end
  if share < need then share = need end
  if want < need then want = need end
  granted = want
  if granted > share then granted = share end
  if granted > left then granted = left end
end
if granted > 0 then
  spent = redis.call('INCRBY', KEYS[1], granted)
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  redis.call('SET', KEYS[2], granted, 'PX', redis.call('PTTL', KEYS[1]))
end
return {granted, spent, peers}
`;

// KEYS[1] counter, KEYS[2] lease record. ARGV amount. Returns the credit taken back.
const CREDIT = `
local lease = tonumber(redis.call('GET', KEYS[2]) or '-1')
if lease < 0 then return 0 end
redis.call('SET', KEYS[2], '-1', 'KEEPTTL')
local ret = tonumber(ARGV[1])
if ret > lease then ret = lease end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if ret > spent then ret = spent end
if ret <= 0 then return 0 end
redis.call('DECRBY', KEYS[1], ret)
return ret
`;

interface QuotaCommands {
  sluiceQuotaDebit(counter: string, lease: string, drawers: string, want: number, need: number, max: number, ttlMs: number, nowMs: number, drawer: string, peerWindowMs: number, cap: number): Promise<[number, number, number]>;
  sluiceQuotaCredit(counter: string, lease: string, amount: number): Promise<number>;
}

export interface RedisQuotaStoreOptions extends QuotaStoreOptions {
  /** Milliseconds before a command without a reply rejects (default 1000). */
  readonly commandTimeoutMs?: number;
  /** Extra ioredis options (merged over the defaults below). */
  readonly redis?: RedisOptions;
}

/**
 * Redis-backed `QuotaStore`: one Lua script per operation (atomic, loaded once with `defineCommand`,
 * sent as EVALSHA). Keys are Redis-Cluster-safe — the counter, lease records and drawer set of one
 * (limit, key) share a hash tag: `sluice:q:{<limitId>|<key>}:<windowId>`,
 * `sluice:q:{<limitId>|<key>}:<windowId>:lease:<leaseId>` (amount granted, `-1` once released) and
 * `sluice:q:{<limitId>|<key>}:drawers` (braces and `%` in ids percent-encoded so the tag cannot be
 * cut short). Counters and lease records expire `slackMs` after their window ends.
 *
 * Fail fast instead of hanging when Redis is down: `enableOfflineQueue: false` rejects commands at
 * once while disconnected, `maxRetriesPerRequest: 1` fails commands caught by a dropped connection
 * after one reconnection attempt, and `commandTimeout` bounds a server that accepts but does not
 * answer. The lease protocol then applies the limit's `failureMode`; ioredis keeps reconnecting in
 * the background (backoff up to 2 s) so the store recovers on its own.
 */
export class RedisQuotaStore implements QuotaStore {
  private readonly cmd: QuotaCommands;

  private constructor(
    private readonly client: Redis,
    private readonly opts: RedisQuotaStoreOptions,
  ) {
    client.defineCommand('sluiceQuotaDebit', { numberOfKeys: 3, lua: DEBIT });
    client.defineCommand('sluiceQuotaCredit', { numberOfKeys: 2, lua: CREDIT });
    this.cmd = client as unknown as QuotaCommands;
  }

  /** Connects (rejects if Redis is unreachable now) and returns the store. */
  static async connect(url: string, opts: RedisQuotaStoreOptions = {}): Promise<RedisQuotaStore> {
    const client = RedisQuotaStore.#client(url, opts);
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw e;
    }
    return new RedisQuotaStore(client, opts);
  }

  /**
   * The store without waiting for Redis: the control plane starts (and serves policy) while Redis
   * is down; quota answers say `unavailable` until ioredis has connected.
   */
  static open(url: string, opts: RedisQuotaStoreOptions = {}): RedisQuotaStore {
    const client = RedisQuotaStore.#client(url, opts);
    client.connect().catch(() => undefined); // retried by ioredis's retryStrategy
    return new RedisQuotaStore(client, opts);
  }

  static #client(url: string, opts: RedisQuotaStoreOptions): Redis {
    return redisClient(url, opts);
  }

  async debit(r: DebitRequest): Promise<DebitResult> {
    checkDebit(r);
    const now = Date.now();
    const ttlMs = Math.max(r.windowEndMs - now, 0) + (this.opts.slackMs ?? DEFAULT_SLACK_MS);
    const counter = counterKey(r.limitId, r.key, r.windowId);
    const [granted, spent, peers] = await this.cmd.sluiceQuotaDebit(
      counter,
      `${counter}:lease:${r.leaseId}`,
      drawersKey(r),
      r.want,
      r.need,
      r.max,
      ttlMs,
      now,
      r.drawer,
      this.opts.peerWindowMs ?? DEFAULT_PEER_WINDOW_MS,
      r.cap ?? 0,
    );
    return { granted: Number(granted), spent: Number(spent), remaining: Math.max(0, r.max - Number(spent)), peers: Number(peers) };
  }

  async credit(r: CreditRequest): Promise<{ returned: number }> {
    checkUnits('amount', r.amount);
    const counter = counterKey(r.limitId, r.key, r.windowId);
    const returned = await this.cmd.sluiceQuotaCredit(counter, `${counter}:lease:${r.leaseId}`, r.amount);
    return { returned: Number(returned) };
  }

  async spent(limitId: string, windowId: string): Promise<Array<{ key: string; spent: number }>> {
    const glob = (x: string): string => x.replace(/[*?[\]\\]/gu, '\\$&');
    const pattern = `sluice:q:{${glob(enc(limitId))}|*}:${glob(windowId)}`;
    const prefix = `sluice:q:{${enc(limitId)}|`;
    const suffix = `}:${windowId}`;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const k of batch) if (k.startsWith(prefix) && k.endsWith(suffix)) keys.push(k);
    } while (cursor !== '0' && keys.length < 100_000);
    if (keys.length === 0) return [];
    const values = await this.client.mget(...keys);
    return keys.map((k, i) => ({ key: dec(k.slice(prefix.length, k.length - suffix.length)), spent: Number(values[i] ?? 0) }));
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

export function counterKey(limitId: string, key: string, windowId: string): string {
  return `sluice:q:{${enc(limitId)}|${enc(key)}}:${windowId}`;
}

function enc(s: string): string {
  return s.replace(/[%{}]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function drawersKey(r: CounterRef): string {
  return `sluice:q:{${enc(r.limitId)}|${enc(r.key)}}:drawers`;
}

function dec(s: string): string {
  return s.replace(/%([0-9A-F]{2})/gu, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}
