import { Redis, type RedisOptions } from 'ioredis';
import { checkUnits, DEFAULT_LEASE_TTL_MS, DEFAULT_SLACK_MS, type DebitResult, type QuotaStore } from './store.js';

// KEYS[1] counter. ARGV want, max, ttlMs (for a new counter). Returns {granted, spent}.
const DEBIT = `
local want = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = max - spent
if granted > want then granted = want end
if granted < 0 then granted = 0 end
if granted > 0 then
  spent = redis.call('INCRBY', KEYS[1], granted)
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
return {granted, spent}
`;

// KEYS[1] counter, KEYS[2] lease marker. ARGV amount, marker ttl when the counter is gone. Returns returned.
const CREDIT = `
local pttl = redis.call('PTTL', KEYS[1])
local ttl = tonumber(ARGV[2])
if pttl > 0 then ttl = pttl end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ttl) then return 0 end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local ret = tonumber(ARGV[1])
if ret > spent then ret = spent end
if ret <= 0 then return 0 end
redis.call('DECRBY', KEYS[1], ret)
return ret
`;

interface QuotaCommands {
  sluiceQuotaDebit(counter: string, want: number, max: number, ttlMs: number): Promise<[number, number]>;
  sluiceQuotaCredit(counter: string, marker: string, amount: number, ttlMs: number): Promise<number>;
}

export interface RedisQuotaStoreOptions {
  readonly slackMs?: number;
  readonly leaseTtlMs?: number;
  /** Milliseconds before a command without a reply rejects (default 1000). */
  readonly commandTimeoutMs?: number;
  /** Extra ioredis options (merged over the defaults below). */
  readonly redis?: RedisOptions;
}

/**
 * Redis-backed `QuotaStore`: one Lua script per operation (atomic, loaded once with `defineCommand`,
 * sent as EVALSHA). Keys are Redis-Cluster-safe — the counter and the lease markers of one
 * (limit, key) share a hash tag: `sluice:q:{<limitId>|<key>}:<windowId>` and
 * `sluice:q:{<limitId>|<key>}:<windowId>:lease:<leaseId>` (braces and `%` in ids percent-encoded so
 * the tag cannot be cut short). A counter expires `slackMs` after its window ends; a lease marker
 * (SET NX, making `credit` idempotent) lives as long as its counter.
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
    client.defineCommand('sluiceQuotaDebit', { numberOfKeys: 1, lua: DEBIT });
    client.defineCommand('sluiceQuotaCredit', { numberOfKeys: 2, lua: CREDIT });
    this.cmd = client as unknown as QuotaCommands;
  }

  /** Connects (rejects if Redis is unreachable now) and returns the store. */
  static async connect(url: string, opts: RedisQuotaStoreOptions = {}): Promise<RedisQuotaStore> {
    const client = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 1000,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 100, 2000),
      ...opts.redis,
    });
    // Errors surface through the rejected commands; without a listener ioredis would log each one.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw e;
    }
    return new RedisQuotaStore(client, opts);
  }

  async debit(limitId: string, key: string, windowId: string, windowEndMs: number, want: number, max: number): Promise<DebitResult> {
    checkUnits('want', want);
    checkUnits('max', max);
    const slack = this.opts.slackMs ?? DEFAULT_SLACK_MS;
    const ttlMs = Math.max(windowEndMs - Date.now(), 0) + slack;
    const [granted, spent] = await this.cmd.sluiceQuotaDebit(counterKey(limitId, key, windowId), want, max, ttlMs);
    return { granted: Number(granted), spent: Number(spent), remaining: Math.max(0, max - Number(spent)) };
  }

  async credit(leaseId: string, limitId: string, key: string, windowId: string, amount: number): Promise<{ returned: number }> {
    checkUnits('amount', amount);
    const counter = counterKey(limitId, key, windowId);
    const returned = await this.cmd.sluiceQuotaCredit(counter, `${counter}:lease:${leaseId}`, amount, this.opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS);
    return { returned: Number(returned) };
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
