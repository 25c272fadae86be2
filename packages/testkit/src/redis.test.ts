import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redisCommand, startRedis } from './redis.js';
import { waitFor } from './wait.js';

test('startRedis: starts, survives a kill + restart, stops', async () => {
  const r = await startRedis();
  try {
    assert.equal(r.url, `redis://127.0.0.1:${r.port}`);
    assert.equal(await redisCommand(r.port, 'PING'), '+PONG');
    assert.equal(await redisCommand(r.port, 'SET k v'), '+OK');
    r.kill();
    await waitFor('the killed server to go away', () => redisCommand(r.port, 'PING', 300).then(() => false, () => true));
    await r.restart();
    assert.equal(await redisCommand(r.port, 'PING'), '+PONG');
    assert.equal(await redisCommand(r.port, 'GET k'), '$-1', 'a restart starts empty');
    await r.restart();
    assert.equal(await redisCommand(r.port, 'PING'), '+PONG');
  } finally {
    await r.stop();
  }
  await assert.rejects(redisCommand(r.port, 'PING', 300));
  await r.stop();
});
