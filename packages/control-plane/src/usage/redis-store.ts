import type { Redis, RedisOptions } from 'ioredis';
import { redisClient } from '../redis-client.js';
import { bucketEnd, cellsOf, incrementsOf, RETENTION_MS, type Granularity, type UsageCell, type UsageRecordIn } from './model.js';
import { checkBatch, SEQ_TTL_MS, type UsageStore } from './store.js';

// KEYS[1] the epoch's sequence high-water mark, KEYS[2..n+1] bucket hashes.
// ARGV[1] seq, ARGV[2] high-water mark TTL (ms), ARGV[3] n, ARGV[4..3+n] each bucket's expiry (unix ms),
// then triples (bucket index 1..n, field, increment). Returns 1 applied, 0 duplicate.
const APPLY = `
local seq = tonumber(ARGV[1])
local hwm = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq <= hwm then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local n = tonumber(ARGV[3])
local i = 4 + n
while i <= #ARGV do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i]) + 1], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
for k = 1, n do redis.call('PEXPIREAT', KEYS[k + 1], ARGV[3 + k]) end
return 1
`;

interface UsageCommands {
  sluiceUsageApply(numKeys: number, ...args: Array<string | number>): Promise<number>;
}

export interface RedisUsageStoreOptions {
  readonly commandTimeoutMs?: number;
  readonly redis?: RedisOptions;
}

/**
 * Redis-backed `UsageStore`. A batch is applied by one Lua script (atomic: the high-water mark and
 * every increment, or nothing). Keys are Redis-Cluster-safe: every key a batch touches belongs to its
 * namespace's hash slot — `sluice:u:{<namespace>}:seq:<epoch>` and
 * `sluice:u:{<namespace>}:<granularity>:<bucket>` (minute, hour, day: unix seconds of the bucket's
 * start, UTC; month: `YYYY-MM`) — so namespaces spread over a cluster. Buckets expire after their
 * retention (minute 2 days, hour 35 days, day 400 days, month 5 years). The set
 * `sluice:u:namespaces` lists the namespaces that reported (for queries).
 */
export class RedisUsageStore implements UsageStore {
  private readonly cmd: UsageCommands;

  private constructor(private readonly client: Redis) {
    client.defineCommand('sluiceUsageApply', { lua: APPLY });
    this.cmd = client as unknown as UsageCommands;
  }

  /** Connects in the background: calls fail fast while Redis is away (the sidecars resend). */
  static open(url: string, opts: RedisUsageStoreOptions = {}): RedisUsageStore {
    const client = redisClient(url, { commandTimeoutMs: opts.commandTimeoutMs ?? 2000, ...(opts.redis === undefined ? {} : { redis: opts.redis }) });
    client.connect().catch(() => undefined);
    return new RedisUsageStore(client);
  }

  async apply(namespace: string, epoch: string, seq: number, records: readonly UsageRecordIn[]): Promise<'applied' | 'duplicate'> {
    checkBatch(epoch, seq, records);
    const tag = `sluice:u:{${enc(namespace)}}`;
    const keys: string[] = [`${tag}:seq:${epoch}`];
    const expiries: number[] = [];
    const triples: Array<string | number> = [];
    for (const [k, fields] of incrementsOf(records)) {
      const [g, bucket] = k.split('\u0000') as [Granularity, string];
      keys.push(`${tag}:${g}:${bucket}`);
      expiries.push(bucketEnd(g, bucket) * 1000 + RETENTION_MS[g]);
      const index = keys.length - 1;
      for (const [f, v] of fields) triples.push(index, f, v);
    }
    // The index first (idempotent): a batch applied is always findable by queries.
    await this.client.sadd('sluice:u:namespaces', namespace);
    const r = await this.cmd.sluiceUsageApply(keys.length, ...keys, seq, SEQ_TTL_MS, keys.length - 1, ...expiries, ...triples);
    return Number(r) === 0 ? 'duplicate' : 'applied';
  }

  async read(g: Granularity, buckets: readonly string[], namespaces?: readonly string[]): Promise<UsageCell[]> {
    const nsList = namespaces ?? (await this.namespaces());
    const out: UsageCell[] = [];
    const pipeline = this.client.pipeline();
    const order: Array<[string, string]> = [];
    for (const ns of nsList) {
      for (const b of buckets) {
        pipeline.hgetall(`sluice:u:{${enc(ns)}}:${g}:${b}`);
        order.push([ns, b]);
      }
    }
    if (order.length === 0) return out;
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([err, hash], i) => {
      if (err !== null) throw err;
      const [ns, b] = order[i] as [string, string];
      out.push(...cellsOf(ns, b, hash as Record<string, string>));
    });
    return out;
  }

  async namespaces(): Promise<string[]> {
    return (await this.client.smembers('sluice:u:namespaces')).sort();
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

function enc(s: string): string {
  return s.replace(/[%{}]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
