import { Redis, type RedisOptions } from 'ioredis';

/**
 * An ioredis client that fails fast instead of hanging while Redis is down: `enableOfflineQueue:
 * false` rejects commands at once while disconnected, `maxRetriesPerRequest: 1` fails commands caught
 * by a dropped connection after one reconnection attempt, `commandTimeout` bounds a server that
 * accepts but does not answer; ioredis keeps reconnecting in the background (backoff up to 2 s).
 * Not connected yet (`lazyConnect`): call `connect()`.
 */
export function redisClient(url: string, opts: { commandTimeoutMs?: number; redis?: RedisOptions } = {}): Redis {
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
  return client;
}
