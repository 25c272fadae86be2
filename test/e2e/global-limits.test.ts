/**
 * Global LLMLimits end to end: a control plane with the Redis quota store on a real redis-server,
 * ten sidecars (each with its own HTTP listener, policy stream and quota client over loopback gRPC)
 * and the fake provider. Saturating load through the sidecars' HTTP API; what was admitted is
 * summed from the provider's usage in the answers and compared with the limits.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FileSource, startControlPlane, type ControlPlane } from '@sluice/control-plane';
import { counterKey, RedisQuotaStore } from '@sluice/control-plane/redis';
import { linkSidecar, loadSidecarConfig, startSidecar, type ControlLink, type QuotaClient, type Sidecar } from '@sluice/sidecar';
import { freePorts, quietLogger, startFakeProvider, startRedis, waitFor, type FakeProvider, type TestRedis } from '@sluice/testkit';

const logger = quietLogger();
const SIDECARS = 10;
const MAX_TOKENS = 400;
// Every answer: 5 input + 350 output tokens (within every reservation: no debt in these runs).
const USAGE = { input: 5, output: 350 };
const TOKENS_PER_REQUEST = USAGE.input + USAGE.output;
// m-budget prices: 1 µ$ per input token, 4 µ$ per output token.
const COST_PER_REQUEST = USAGE.input * 1 + USAGE.output * 4;

const LIMITS = {
  tpm: 100_000,
  budget: 200_000,
  share: 40,
  restart: 30_000,
};

let dir: string;
let redis: TestRedis;
let fake: FakeProvider;
let cp: ControlPlane;
let cpAddress: string;
let admin: Redis;
const nodes: Node[] = [];
const figures: Array<Record<string, string | number>> = [];

interface Node {
  readonly sidecar: Sidecar;
  readonly link: ControlLink;
  readonly quota: QuotaClient;
}

function policyYaml(fakeUrl: string): string {
  const limit = (name: string, spec: string): string => `---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: ${name}, namespace: shop }
spec: ${spec}
`;
  return `apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: fake, namespace: shop }
spec:
  provider: openai-compatible
  endpoint: "${fakeUrl}"
  models:
    - { id: m-tpm }
    - { id: m-budget, pricing: { input: 1000000, output: 4000000 } }
    - { id: m-closed }
    - { id: m-open }
    - { id: m-share }
    - { id: m-restart }
    - { id: m-stream }
    - { id: m-shadow }
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: all, namespace: shop }
spec: { rules: [{ match: { models: ["m-*"] }, backends: [{ name: fake }], retry: { attempts: 1 } }] }
${limit('tpm', `{ unit: tokens, window: minute, max: ${LIMITS.tpm}, scope: global, match: { models: [m-tpm] } }`)}${limit(
    'budget',
    `{ unit: microUSD, window: month, calendarAligned: true, timeZone: Europe/Paris, max: ${LIMITS.budget}, scope: global, key: [{ source: label, name: team }], match: { models: [m-budget] } }`,
  )}${limit('closed', '{ unit: requests, window: hour, max: 100000, scope: global, failureMode: FailClosed, match: { models: [m-closed] } }')}${limit(
    'open',
    '{ unit: requests, window: hour, max: 100000, scope: global, failureMode: FailOpen, match: { models: [m-open] } }',
  )}${limit('share', `{ unit: requests, window: hour, max: ${LIMITS.share}, scope: global, failureMode: LocalShare, match: { models: [m-share] } }`)}${limit(
    'restart',
    `{ unit: tokens, window: hour, max: ${LIMITS.restart}, scope: global, failureMode: FailClosed, match: { models: [m-restart] } }`,
  )}${limit('stream', '{ unit: tokens, window: hour, max: 100000, scope: global, match: { models: [m-stream] } }')}${limit(
    'shadow',
    '{ unit: requests, window: hour, max: 1, scope: global, mode: shadow, match: { models: [m-shadow] } }',
  )}`;
}

async function startCp(): Promise<ControlPlane> {
  return startControlPlane({ source: new FileSource(dir), logger, grpcAddress: cpAddress, adminHost: '127.0.0.1', adminPort: 0, quotaStore: await RedisQuotaStore.connect(redis.url) });
}

async function startNode(i: number): Promise<Node> {
  const node = { pod: `pod-${i}`, namespace: 'shop', serviceAccount: 'default', labels: { team: 'search' }, instanceId: `${i}-${randomBytes(4).toString('hex')}`, sidecarVersion: 'test' };
  const config = loadSidecarConfig({}, { port: 0, adminPort: 0, host: '127.0.0.1', adminHost: '127.0.0.1', podName: node.pod, podNamespace: 'shop' });
  const sidecar = await startSidecar({ config, logger, identity: { namespace: 'shop', serviceAccount: 'default', labels: node.labels } });
  const link = linkSidecar(sidecar, { address: cpAddress, node, logger, backoffInitialMs: 50, backoffMaxMs: 300, quota: { timeoutMs: 1000, backoffMs: 200 } });
  await link.start();
  await waitFor(`sidecar ${i} has policy`, () => sidecar.snapshotVersion !== undefined, 10_000);
  return { sidecar, link, quota: link.quota };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-global-'));
  [redis, fake] = await Promise.all([startRedis(), startFakeProvider()]);
  fake.setDefault({ usage: USAGE });
  await writeFile(join(dir, 'policy.yaml'), policyYaml(fake.url));
  const [port] = await freePorts(1);
  cpAddress = `127.0.0.1:${port}`;
  cp = await startCp();
  admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  admin.on('error', () => undefined);
  await admin.connect();
  for (let i = 0; i < SIDECARS; i++) nodes.push(await startNode(i));
});

after(async () => {
  if (figures.length > 0) {
    console.log('global limit accuracy (10 sidecars, saturating load):');
    console.log('| case | limit | admitted | overshoot | denied | acquires |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const f of figures) console.log(`| ${f['case']} | ${f['limit']} | ${f['admitted']} | ${f['overshoot']} | ${f['denied']} | ${f['acquires']} |`);
  }
  for (const n of nodes) {
    await n.link.close({ flushMs: 0, usageMs: 0 });
    await n.sidecar.close();
  }
  admin?.disconnect();
  await cp?.close();
  await fake?.close();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Outcome {
  status: number;
  code: string | null;
  tokens: number;
}

async function call(n: Node, model: string): Promise<Outcome> {
  const r = await fetch(`${n.sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: MAX_TOKENS, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const body = (await r.json()) as { usage?: { total_tokens?: number } };
  return { status: r.status, code: r.headers.get('x-sluice-error-code'), tokens: r.status === 200 ? (body.usage?.total_tokens ?? 0) : 0 };
}

/** Every sidecar sends `perSidecar` concurrent request loops until each loop has been denied 3 times. */
async function saturate(model: string, perSidecar = 4): Promise<{ admitted: number; tokens: number; denied: number; codes: Set<string>; other: number }> {
  const out = { admitted: 0, tokens: 0, denied: 0, codes: new Set<string>(), other: 0 };
  const deadline = Date.now() + 30_000;
  await Promise.all(
    nodes.flatMap((n) =>
      Array.from({ length: perSidecar }, async () => {
        let denials = 0;
        while (denials < 3 && Date.now() < deadline) {
          const o = await call(n, model);
          if (o.status === 200) {
            out.admitted++;
            out.tokens += o.tokens;
          } else if (o.status === 429) {
            denials++;
            out.denied++;
            if (o.code) out.codes.add(o.code);
          } else out.other++;
        }
      }),
    ),
  );
  return out;
}

/** The shared counter of a (limit, key), summed over its windows (one, in these tests). */
async function spent(limitId: string, key = ''): Promise<number> {
  const keys = (await admin.keys(`${counterKey(limitId, key, '').replace(/[{}[\]*?\\]/g, '\\$&')}*`)).filter((k) => !k.includes(':lease:') && !k.endsWith(':drawers'));
  let total = 0;
  for (const k of keys) total += Number((await admin.get(k)) ?? 0);
  return total;
}

const acquires = (): number => nodes.reduce((a, n) => a + n.quota.stats.acquires, 0);

test('10 sidecars sharing 100,000 tokens/minute under saturating load admit at most the limit', async () => {
  // Keep the run inside one minute window.
  const msLeft = 60_000 - (Date.now() % 60_000);
  if (msLeft < 20_000) await new Promise((r) => setTimeout(r, msLeft + 50));
  const minute = Math.floor(Date.now() / 60_000);
  const a0 = acquires();
  const r = await saturate('m-tpm');
  assert.equal(Math.floor(Date.now() / 60_000), minute, 'the run stayed within one window');
  assert.equal(r.other, 0, 'every answer was 200 or 429');
  assert.deepEqual([...r.codes], ['SLUICE_ERR_LIMIT_EXCEEDED']);
  assert.equal(r.tokens, r.admitted * TOKENS_PER_REQUEST);
  assert.ok(r.tokens <= LIMITS.tpm, `admitted ${r.tokens} tokens, limit ${LIMITS.tpm}`);
  // Credit stranded at the end: pools short of one reservation, and the rest smaller than one.
  const reservation = MAX_TOKENS + 20;
  assert.ok(r.tokens >= LIMITS.tpm - (SIDECARS + 1) * reservation, `admitted ${r.tokens} of ${LIMITS.tpm}: little credit stranded`);
  figures.push({ case: 'tokens/minute, Redis up', limit: LIMITS.tpm, admitted: r.tokens, overshoot: `${Math.max(0, r.tokens - LIMITS.tpm)}`, denied: r.denied, acquires: acquires() - a0 });
  // Every sidecar returns its unused credit: the shared counter then holds exactly what was used.
  await Promise.all(nodes.map((n) => n.quota.flush()));
  assert.equal(await spent('shop/tpm'), r.tokens, 'the counter in Redis equals the tokens used: no credit lost, none counted twice');
  // The quota client's traffic is in each sidecar's metrics.
  const n0 = nodes[0]!;
  const m = await (await fetch(`${n0.sidecar.adminUrl}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'mu').exec(m)?.[1] ?? -1);
  assert.equal(value('sluice_quota_acquires_total'), n0.quota.stats.acquires);
  assert.ok(value('sluice_quota_acquires_total') > 0 && value('sluice_quota_granted_total') > 0 && value('sluice_quota_releases_total') > 0, 'credit asked for, granted and handed back');
});

test('a monthly micro-USD budget stops within one reservation, with the budget code', async () => {
  const a0 = acquires();
  const r = await saturate('m-budget');
  const cost = r.admitted * COST_PER_REQUEST;
  assert.deepEqual([...r.codes], ['SLUICE_ERR_LIMIT_BUDGET_EXHAUSTED']);
  assert.ok(cost <= LIMITS.budget, `spent ${cost} µ$ of ${LIMITS.budget}`);
  assert.equal(r.other, 0);
  const reservationMicros = 20 * 1 + MAX_TOKENS * 4;
  assert.ok(cost >= LIMITS.budget - (SIDECARS + 1) * reservationMicros, `spent ${cost} of ${LIMITS.budget}: little stranded`);
  // The credit stranded in pools goes back; an Anthropic caller then spends it until it is denied too.
  await Promise.all(nodes.map((n) => n.quota.flush()));
  let late = 0;
  let denied: Response;
  for (;;) {
    denied = await fetch(`${nodes[0]!.sidecar.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm-budget', max_tokens: MAX_TOKENS, messages: [{ role: 'user', content: 'hi' }] }),
    });
    if (denied.status !== 200) break;
    await denied.body?.cancel();
    late++;
    assert.ok(late < 20);
  }
  assert.ok(cost + late * COST_PER_REQUEST <= LIMITS.budget);
  figures.push({ case: 'µ$/month budget', limit: LIMITS.budget, admitted: `${cost}, ${cost + late * COST_PER_REQUEST} after pools returned their credit`, overshoot: `${Math.max(0, cost + late * COST_PER_REQUEST - LIMITS.budget)}`, denied: r.denied, acquires: acquires() - a0 });
  assert.ok(LIMITS.budget - (cost + late * COST_PER_REQUEST) < reservationMicros, 'what is left is less than one reservation');
  await nodes[0]!.quota.flush();
  assert.equal(await spent('shop/budget', 'team=search'), cost + late * COST_PER_REQUEST, 'Redis holds exactly what was spent');
  assert.equal(denied.status, 429);
  const body = (await denied.json()) as { type: string; error: { type: string; message: string } };
  assert.equal(body.type, 'error', 'Anthropic callers get the Anthropic error shape');
  assert.match(body.error.message, /month budget of limit shop\/budget \(team=search\) is spent/);
  assert.ok(Number(denied.headers.get('retry-after')) > 0, 'retry-after points at the next month');
});

test('Redis killed: FailClosed denies at once, FailOpen admits, LocalShare enforces max ÷ peers; all recover', async () => {
  // Every sidecar draws on each limit (twice, so every one has seen all ten peers at a grant), and
  // gives its credit back.
  for (let round = 0; round < 2; round++) {
    for (const n of nodes) for (const m of ['m-closed', 'm-open', 'm-share']) assert.equal((await call(n, m)).status, 200);
    await Promise.all(nodes.map((n) => n.quota.flush()));
  }
  redis.kill();
  const t0 = Date.now();
  const closed = await Promise.all(nodes.map((n) => call(n, 'm-closed')));
  const closedMs = Date.now() - t0;
  assert.deepEqual(
    closed.map((o) => `${o.status} ${o.code}`),
    nodes.map(() => '503 SLUICE_ERR_LIMIT_UNAVAILABLE'),
  );
  assert.ok(closedMs < 1500, `FailClosed answered without waiting (${closedMs} ms for 10 requests)`);
  const open = await Promise.all(nodes.map((n) => call(n, 'm-open')));
  assert.deepEqual(
    open.map((o) => o.status),
    nodes.map(() => 200),
  );
  // LocalShare: 40 requests/hour ÷ 10 peers = 4 per sidecar, less the 2 each used before; 10 requests each.
  const shared = await Promise.all(nodes.map(async (n) => (await Promise.all(Array.from({ length: 10 }, () => call(n, 'm-share')))).filter((o) => o.status === 200).length));
  const admittedShare = shared.reduce((a, b) => a + b, 0);
  assert.deepEqual(
    shared,
    nodes.map(() => 2),
  );
  figures.push({ case: 'requests/hour, Redis down, LocalShare', limit: LIMITS.share, admitted: admittedShare + 2 * SIDECARS, overshoot: `${Math.max(0, admittedShare + 2 * SIDECARS - LIMITS.share)}`, denied: SIDECARS * 10 - admittedShare, acquires: '-' });
  figures.push({ case: 'requests/hour, Redis down, FailClosed', limit: 100_000, admitted: 0, overshoot: '0', denied: SIDECARS, acquires: '-' });
  figures.push({ case: 'requests/hour, Redis down, FailOpen', limit: 100_000, admitted: SIDECARS, overshoot: 'unbounded by design', denied: 0, acquires: '-' });
  // Redis back (empty: persistence is off in tests): credit flows again.
  await redis.restart();
  await waitFor('FailClosed limit admits again', async () => (await call(nodes[0]!, 'm-closed')).status === 200, 15_000);
  await waitFor('every sidecar admits again', async () => (await Promise.all(nodes.map((n) => call(n, 'm-closed')))).every((o) => o.status === 200), 10_000);
  // The releases that failed while Redis was down were retried (and found the old counters gone).
  await waitFor('pending releases answered', () => nodes.every((n) => n.quota.pendingReleases === 0), 10_000);
});

test('control plane restarted mid-traffic: no credit lost or granted twice', async () => {
  const load = (ms: number): Promise<Outcome[]> => {
    const until = Date.now() + ms;
    const out: Outcome[] = [];
    return Promise.all(
      nodes.map(async (n) => {
        while (Date.now() < until) out.push(await call(n, 'm-restart'));
      }),
    ).then(() => out);
  };
  const before = await load(300);
  // The control plane goes away while sidecars hold leases and keep sending; then it comes back.
  const during = load(1500);
  await new Promise((r) => setTimeout(r, 200));
  await cp.close();
  await new Promise((r) => setTimeout(r, 500));
  cp = await startCp();
  const outcomes = [...before, ...(await during)];
  for (;;) {
    // Then until the limit is spent.
    const more = await load(300);
    outcomes.push(...more);
    if (more.every((o) => o.status !== 200)) break;
  }
  const used = outcomes.reduce((a, o) => a + o.tokens, 0);
  const unavailable = outcomes.filter((o) => o.status === 503).length;
  const statuses = new Set(outcomes.map((o) => `${o.status}${o.code ? ` ${o.code}` : ''}`));
  assert.ok([...statuses].every((s) => ['200', '429 SLUICE_ERR_LIMIT_EXCEEDED', '503 SLUICE_ERR_LIMIT_UNAVAILABLE'].includes(s)), [...statuses].join(', '));
  assert.ok(used <= LIMITS.restart, `used ${used} of ${LIMITS.restart}`);
  await Promise.all(nodes.map((n) => n.quota.flush()));
  await waitFor('pending releases answered', () => nodes.every((n) => n.quota.pendingReleases === 0), 10_000);
  assert.equal(await spent('shop/restart'), used, 'after the sidecars return their credit, Redis holds exactly what was used');
  figures.push({ case: 'tokens/hour, control plane restarted', limit: LIMITS.restart, admitted: used, overshoot: `${Math.max(0, used - LIMITS.restart)}`, denied: `${outcomes.filter((o) => o.status === 429).length} (+${unavailable} FailClosed while it was away)`, acquires: '-' });
});

test('streams that end early settle: a cut stream keeps its reservation, a refused call returns it, a complete one is charged its usage', async () => {
  const n = nodes[0]!;
  const body = (stream: boolean): string => JSON.stringify({ model: 'm-stream', max_tokens: MAX_TOKENS, stream, messages: [{ role: 'user', content: 'hi' }] });
  const post = (stream: boolean, signal?: AbortSignal): Promise<Response> =>
    fetch(`${n.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(stream), ...(signal ? { signal } : {}) });
  const counter = async (): Promise<number> => {
    await n.quota.flush();
    return spent('shop/stream');
  };
  // A complete stream: charged exactly the provider's usage.
  const done = await post(true);
  assert.equal(done.status, 200);
  assert.equal(done.headers.get('x-ratelimit-limit-tokens'), '100000', 'global limits answer with the OpenAI rate-limit headers too');
  assert.ok(Number(done.headers.get('x-ratelimit-remaining-tokens')) < 100000);
  assert.match(done.headers.get('x-ratelimit-reset-tokens') ?? '', /^\d+s$/);
  await done.text();
  await waitFor('settled', async () => (await counter()) === TOKENS_PER_REQUEST, 5000);
  // The provider refuses: nothing is charged.
  fake.enqueue({ status: 500 });
  assert.equal((await post(false)).status, 502);
  assert.equal(await counter(), TOKENS_PER_REQUEST);
  // The client leaves a slow stream after the first chunk: the provider may have produced up to
  // max_tokens, so the reservation (prompt estimate + max_tokens) stays charged.
  fake.enqueue({ chunks: 50, chunkIntervalMs: 20 });
  const ac = new AbortController();
  const cut = await post(true, ac.signal);
  await cut.body!.getReader().read();
  ac.abort();
  await waitFor('the cut stream settled', async () => (await counter()) > TOKENS_PER_REQUEST, 5000);
  const charged = (await counter()) - TOKENS_PER_REQUEST;
  assert.ok(charged >= MAX_TOKENS && charged <= MAX_TOKENS + 20, `a cut stream is charged its reservation (${charged})`);
});

test('a global limit in shadow mode is evaluated and reported, never denies', async () => {
  const n = nodes[1]!;
  const codes = [];
  for (let i = 0; i < 3; i++) codes.push((await call(n, 'm-shadow')).status);
  assert.deepEqual(codes, [200, 200, 200], 'max 1 per hour, but shadow');
  const metrics = await (await fetch(`${n.sidecar.adminUrl}/metrics`)).text();
  assert.match(metrics, /sluice_limit_decisions_total\{limit="shop\/shadow",decision="shadow_denied"\} 2/);
});
