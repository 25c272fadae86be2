/**
 * StreamQuota over real gRPC with the Redis quota store on a real redis-server: leases never grant
 * more than a global limit's window allows, across many sidecars; unused credit comes back once;
 * a sidecar can only draw on limits of its own snapshot.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ControlClient, sluice } from '@sluice/protocol';
import { startRedis, quietLogger } from '@sluice/testkit';
import { FileSource, startControlPlane, type ControlPlane } from '../src/index.js';
import { Redis } from 'ioredis';
import { counterKey, RedisQuotaStore } from '../src/quota/redis-store.js';

import v1 = sluice.v1;

const logger = quietLogger();
let dir: string;
let redis: Awaited<ReturnType<typeof startRedis>>;
let cp: ControlPlane;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-quota-'));
  await writeFile(
    join(dir, 'policy.yaml'),
    `apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: b, namespace: shop }
spec: { provider: openai-compatible, endpoint: "http://127.0.0.1:1" }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: r, namespace: shop }
spec: { rules: [{ match: { models: ["*"] }, backends: [{ name: b }] }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: tpm, namespace: shop }
spec: { unit: tokens, window: day, max: 1000, scope: global, key: [{ source: label, name: team }] }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: other-team-only, namespace: bank }
spec: { unit: tokens, window: day, max: 1000000, scope: global }
`,
  );
  redis = await startRedis();
  cp = await startControlPlane({
    source: new FileSource(dir),
    logger,
    grpcAddress: '127.0.0.1:0',
    adminHost: '127.0.0.1',
    adminPort: 0,
    quotaStore: await RedisQuotaStore.connect(redis.url),
  });
});

after(async () => {
  await cp.close();
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A sidecar's quota stream: hello, then request/response pairs in order. */
function quotaStream(pod: string): { ask(req: v1.QuotaRequest.$Properties): Promise<v1.QuotaResponse>; close(): void } {
  const client = new ControlClient(cp.grpcAddress, grpc.credentials.createInsecure());
  const call = client.streamQuota();
  const waiting: Array<(r: v1.QuotaResponse) => void> = [];
  call.on('data', (r: v1.QuotaResponse) => waiting.shift()?.(r));
  call.on('error', () => undefined);
  call.write({ hello: { pod, namespace: 'shop', serviceAccount: 'default', labels: { team: 'search' }, instanceId: pod } });
  return {
    ask: (req) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        call.write(req);
      }),
    close: () => {
      call.end();
      client.close();
    },
  };
}

/** The shared counter of a (limit, key) in today's window. */
async function spentInRedis(limitId: string, key: string): Promise<number> {
  const r = new Redis(redis.url, { lazyConnect: true });
  await r.connect();
  try {
    const prefix = counterKey(limitId, key, '');
    const keys = (await r.keys(`${prefix.replace(/[{}[\]*?]/g, '\\$&')}*`)).filter((k) => !k.includes(':lease:') && !k.endsWith(':drawers'));
    let n = 0;
    for (const k of keys) n += Number((await r.get(k)) ?? 0);
    return n;
  } finally {
    r.disconnect();
  }
}

const acquire = (id: string, wanted: number, needed = 0, limitId = 'shop/tpm'): v1.QuotaRequest.$Properties => ({ acquire: { requestId: id, limitId, key: 'team=search', wanted, needed } });

test('grants never exceed the window, unused credit comes back once', async () => {
  const a = quotaStream('a');
  const b = quotaStream('b');
  try {
    const g1 = (await a.ask(acquire('1', 600, 600))).grant!;
    assert.equal(Number(g1.granted), 600, 'a need above the lease cap (a tenth of the limit) is granted when it fits');
    assert.equal(Number(g1.remaining), 400);
    assert.equal(g1.leaseId, 'a.1', 'lease ids are <instance id>.<request id>');
    const g2 = (await b.ask(acquire('2', 600))).grant!;
    assert.equal(Number(g2.granted), 100, 'otherwise a lease is at most a tenth of the limit (and a fair share of what is left)');
    assert.equal(g2.peers, 2);
    const g3 = (await b.ask(acquire('3', 600, 300))).grant!;
    assert.equal(Number(g3.granted), 300, 'the need is granted beyond the share and the cap when it fits');
    assert.equal(Number((await b.ask(acquire('4', 10, 1))).grant!.granted), 0, 'spent');
    const counter = { limitId: 'shop/tpm', key: 'team=search', windowId: g1.windowId };
    assert.equal(Number((await b.ask({ release: { leaseId: g1.leaseId, unused: 100, ...counter } })).released!.returned), 0, 'another sidecar cannot release it');
    const r1 = (await a.ask({ release: { leaseId: g1.leaseId, unused: 100, ...counter } })).released!;
    assert.equal(Number(r1.returned), 100);
    const again = (await a.ask({ release: { leaseId: g1.leaseId, unused: 100, ...counter } })).released!;
    assert.equal(Number(again.returned), 0, 'a lease returns its credit once');
    assert.equal(Number((await a.ask(acquire('1', 600, 600))).grant!.granted), 0, 'a replayed acquire of a released lease debits nothing');
    assert.equal(Number((await b.ask(acquire('5', 500, 100))).grant!.granted), 100, 'the returned credit is available again');
    assert.equal(Number((await a.ask(acquire('6', 10, 0, 'bank/other-team-only'))).grant!.granted), 0, 'a limit outside the caller snapshot grants nothing');
  } finally {
    a.close();
    b.close();
  }
});

test('ten sidecars racing for a fresh key get at most the limit in total', async () => {
  const streams = Array.from({ length: 10 }, (_, i) => quotaStream(`p${i}`));
  try {
    let total = 0;
    // Each sidecar asks (two at a time) until the limit says no: the grants add up to the limit exactly.
    await Promise.all(
      streams.flatMap((s, i) =>
        [0, 1].map(async (lane) => {
          for (let n = 0; ; n++) {
            const g = (await s.ask({ acquire: { requestId: `${lane}-${n}`, limitId: 'shop/tpm', key: 'team=race', wanted: 150, needed: 1 } })).grant!;
            if (Number(g.granted) === 0) return;
            total += Number(g.granted);
            assert.ok(n < 1000, `stream ${i} keeps being granted`);
          }
        }),
      ),
    );
    assert.equal(total, 1000, 'exactly the limit: no overshoot, nothing lost');
  } finally {
    for (const s of streams) s.close();
  }
});

test('sidecar quota clients: requests draw on local pools topped up by leases, never beyond the limit', async () => {
  const { QuotaClient } = await import('@sluice/sidecar');
  const clients = Array.from({ length: 10 }, (_, i) =>
    new QuotaClient({ address: cp.grpcAddress, node: { pod: `s${i}`, namespace: 'shop', serviceAccount: 'default', labels: { team: 'search' }, instanceId: `s${i}`, sidecarVersion: 't' }, logger, minLease: 100 }),
  );
  try {
    let admitted = 0;
    let denied = 0;
    // Every sidecar keeps sending 40-unit requests until its limit answers no.
    await Promise.all(
      clients.map(async (c) => {
        for (;;) {
          const ok = await c.acquire('shop/tpm', 'team=pools', 40);
          if (ok !== 'ok') {
            denied++;
            break;
          }
          admitted++;
        }
      }),
    );
    assert.equal(denied, 10);
    assert.ok(admitted * 40 <= 1000, `admitted ${admitted} × 40 units within the limit of 1,000`);
    assert.ok(admitted * 40 >= 1000 - 10 * 40, `at most one request's worth stranded per sidecar (${admitted * 40})`);
    // Unused pool credit goes back (what is left in Redis is exactly what was used), and another sidecar can use it.
    const returned = (await Promise.all(clients.map((c) => c.flush()))).reduce((a, b) => a + b, 0);
    assert.equal(await spentInRedis('shop/tpm', 'team=pools'), admitted * 40, 'the shared counter holds exactly the credit used');
    if (returned >= 40) assert.equal(await clients[0]!.acquire('shop/tpm', 'team=pools', 40), 'ok');
  } finally {
    for (const c of clients) c.close();
  }
});
