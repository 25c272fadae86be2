/**
 * Usage accounting exactly once, with real processes: the control plane binary and three sidecar
 * binaries, Redis with an append-only file, the fake provider, and traffic through every sidecar
 * while things break — the control plane killed (SIGKILL) and restarted, Redis killed and restarted,
 * a sidecar stopped (SIGTERM) under load and started again. At the end the totals in Redis equal the
 * sums of the sidecars' per-request log lines, to the token and the micro-dollar.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisUsageStore } from '@sluice/control-plane/usage';
import { freePorts, startFakeProvider, startRedis, waitFor, type FakeProvider, type TestRedis } from '@sluice/testkit';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CP_MAIN = join(ROOT, 'packages/control-plane/dist/src/main.js');
const SIDECAR_MAIN = join(ROOT, 'packages/sidecar/dist/src/main.js');

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const procs: Proc[] = [];

function run(name: string, file: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [file], { env: { ...process.env, SLUICE_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const p: Proc = {
    name,
    child,
    output,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
  procs.push(p);
  return p;
}

let fake: FakeProvider;
let redis: TestRedis;
let dir: string;
let grpcPort: number;
const sidecarPorts: Array<{ api: number; admin: number }> = [];

function startCp(): Proc {
  return run('control plane', CP_MAIN, {
    SLUICE_CP_POLICY_DIR: join(dir, 'policy'),
    SLUICE_CP_GRPC_ADDRESS: `127.0.0.1:${grpcPort}`,
    SLUICE_CP_ADMIN_HOST: '127.0.0.1',
    SLUICE_CP_ADMIN_PORT: '0',
    SLUICE_CP_REDIS_URL: redis.url,
  });
}

const SIDECARS = [
  { pod: 'search-1', namespace: 'shop', team: 'search' },
  { pod: 'search-2', namespace: 'shop', team: 'search' },
  { pod: 'ledger-1', namespace: 'bank', team: 'ledger' },
];

async function startSidecar(i: number): Promise<Proc> {
  const s = SIDECARS[i]!;
  const ports = sidecarPorts[i]!;
  const labels = join(dir, `labels-${i}`);
  await writeFile(labels, `team="${s.team}"\napp="demo"\n`);
  const p = run(`sidecar ${s.pod}`, SIDECAR_MAIN, {
    SLUICE_SIDECAR_HOST: '127.0.0.1',
    SLUICE_SIDECAR_PORT: String(ports.api),
    SLUICE_SIDECAR_ADMIN_HOST: '127.0.0.1',
    SLUICE_SIDECAR_ADMIN_PORT: String(ports.admin),
    SLUICE_SIDECAR_CONTROL_ADDRESS: `127.0.0.1:${grpcPort}`,
    SLUICE_SIDECAR_DRAIN_TIMEOUT_MS: '3000',
    SLUICE_POD_NAME: s.pod,
    SLUICE_POD_NAMESPACE: s.namespace,
    SLUICE_POD_LABELS_FILE: labels,
  });
  await waitFor(`${s.pod} ready`, async () => (await fetch(`http://127.0.0.1:${ports.admin}/ready`).catch(() => undefined))?.status === 200, 15_000);
  return p;
}

const POLICY = (fakeUrl: string, ns: string): string => `apiVersion: sluice.dev/v1alpha1
kind: LLMBackend
metadata: { name: fake, namespace: ${ns} }
spec:
  provider: openai-compatible
  endpoint: "${fakeUrl}"
  models: [{ id: gpt-4o-mini, pricing: { input: 150000, output: 600000 } }, { id: claude-haiku-4-5, pricing: { input: 1000000, cachedInput: 100000, output: 5000000 } }]
---
apiVersion: sluice.dev/v1alpha1
kind: LLMRoute
metadata: { name: main, namespace: ${ns} }
spec: { rules: [{ match: { models: [gpt-4o-mini, claude-haiku-4-5] }, backends: [{ name: fake }] }] }
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-usage-e2e-'));
  await writeFile(join(dir, 'placeholder'), '');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'policy'));
  [fake, redis] = await Promise.all([startFakeProvider(), startRedis({ aof: true })]);
  await writeFile(join(dir, 'policy', 'shop.yaml'), POLICY(fake.url, 'shop'));
  await writeFile(join(dir, 'policy', 'bank.yaml'), POLICY(fake.url, 'bank'));
  const ports = await freePorts(1 + SIDECARS.length * 2);
  grpcPort = ports[0]!;
  for (let i = 0; i < SIDECARS.length; i++) sidecarPorts.push({ api: ports[1 + i * 2]!, admin: ports[2 + i * 2]! });
});

after(async () => {
  for (const p of procs) await p.stop('SIGKILL');
  await fake?.close();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

type Sums = Record<'requests' | 'errors' | 'inputTokens' | 'cachedInputTokens' | 'cacheWriteTokens' | 'outputTokens' | 'reasoningTokens' | 'costMicros', number>;
const zero = (): Sums => ({ requests: 0, errors: 0, inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, costMicros: 0 });

/** Sums of the `request` log lines of every sidecar process that ran, per namespace. */
function logSums(): Record<string, Sums> {
  const out: Record<string, Sums> = {};
  for (const p of procs) {
    if (!p.name.startsWith('sidecar')) continue;
    const ns = SIDECARS.find((s) => p.name === `sidecar ${s.pod}`)!.namespace;
    const sums = (out[ns] ??= zero());
    for (const line of p.output.join('').split('\n')) {
      if (!line.startsWith('{')) continue;
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j['msg'] !== 'request' || j['api'] === 'http') continue;
      sums.requests++;
      const status = Number(j['status']);
      if (status < 200 || status >= 300) sums.errors++;
      for (const k of ['inputTokens', 'cachedInputTokens', 'cacheWriteTokens', 'outputTokens', 'reasoningTokens', 'costMicros'] as const) sums[k] += Number(j[k] ?? 0);
    }
  }
  return out;
}

async function redisSums(store: RedisUsageStore): Promise<Record<string, Sums>> {
  const out: Record<string, Sums> = {};
  const now = Date.now() / 1000;
  const { bucketsBetween } = await import('@sluice/control-plane/usage');
  for (const c of await store.read('month', bucketsBetween('month', now - 3600, now + 60))) {
    const sums = (out[c.namespace] ??= zero());
    for (const k of Object.keys(sums) as Array<keyof Sums>) sums[k] += c.totals[k];
  }
  return out;
}

/** Requests through sidecar `i` until `stop()`; connection errors (a sidecar restarting) are skipped. */
function traffic(i: number): { stop(): Promise<number> } {
  let running = true;
  let sent = 0;
  const port = sidecarPorts[i]!.api;
  const loop = async (lane: number): Promise<void> => {
    for (let n = 0; running; n++) {
      const model = n % 7 === 3 ? 'no-such-model' : n % 2 === 0 ? 'gpt-4o-mini' : 'claude-haiku-4-5';
      const stream = n % 3 === 0;
      const path = model === 'claude-haiku-4-5' && n % 4 === 1 ? '/v1/messages' : '/v1/chat/completions';
      const body = path === '/v1/messages' ? { model, max_tokens: 64, messages: [{ role: 'user', content: `hello ${n}` }], stream } : { model, messages: [{ role: 'user', content: `hello number ${n} from lane ${lane}` }], stream };
      try {
        const r = await fetch(`http://127.0.0.1:${port}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-sluice-feature': n % 5 === 0 ? 'search' : 'chat', 'x-sluice-user': `user-${(n + lane) % 4}` },
          body: JSON.stringify(body),
        });
        await r.text();
        // A restarting sidecar answers 503 NOT_READY until its policy arrives: not an LLM request.
        if (r.headers.get('x-sluice-error-code') !== 'SLUICE_ERR_NOT_READY') sent++;
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  };
  const lanes = [loop(0), loop(1), loop(2)];
  return {
    async stop() {
      running = false;
      await Promise.all(lanes);
      return sent;
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('usage reaches Redis exactly once through control plane and Redis crashes and a sidecar restart', async () => {
  fake.setDefault({ usage: { input: 40, cached: 8, output: 25 } });
  let cp = startCp();
  const sidecars = [await startSidecar(0), await startSidecar(1), await startSidecar(2)];
  const load = [traffic(0), traffic(1), traffic(2)];
  await sleep(1500);
  // 1. The control plane dies without warning and comes back 1 s later.
  await cp.stop('SIGKILL');
  await sleep(1000);
  cp = startCp();
  await sleep(2000);
  // 2. Redis crashes (SIGKILL) and restarts from its append-only file.
  redis.kill();
  await sleep(700);
  await redis.restart();
  await sleep(2000);
  // 3. A sidecar is stopped under load (it drains and flushes its usage), then started again.
  await sidecars[2]!.stop('SIGTERM');
  assert.equal(sidecars[2]!.child.exitCode, 0, 'the sidecar exited cleanly after flushing its usage');
  sidecars[2] = await startSidecar(2);
  await sleep(1500);
  const sent = (await Promise.all(load.map((l) => l.stop()))).reduce((a, b) => a + b, 0);
  // Every sidecar stops (SIGTERM): each waits until the control plane acknowledged its last batch.
  for (const s of sidecars) await s.stop('SIGTERM');
  for (const s of sidecars) assert.equal(s.child.exitCode, 0);
  const logs = logSums();
  const store = RedisUsageStore.open(redis.url);
  try {
    let stored: Record<string, Sums> = {};
    await waitFor('Redis totals equal the log sums', async () => {
      stored = await redisSums(store);
      return JSON.stringify(stored) === JSON.stringify(logs);
    }, 20_000, () => `redis ${JSON.stringify(stored)}\nlogs  ${JSON.stringify(logs)}`).catch(() => undefined);
    console.log(`usage after the faults (${sent} requests answered to the load generator):`);
    console.log('| namespace | source | requests | errors | input | cached input | output | cost µ$ |');
    console.log('|---|---|---:|---:|---:|---:|---:|---:|');
    for (const ns of Object.keys(logs).sort()) {
      for (const [src, s] of [
        ['log lines', logs[ns]],
        ['Redis', stored[ns]],
      ] as const) {
        console.log(`| ${ns} | ${src} | ${s?.requests} | ${s?.errors} | ${s?.inputTokens} | ${s?.cachedInputTokens} | ${s?.outputTokens} | ${s?.costMicros} |`);
      }
    }
    if (JSON.stringify(stored) !== JSON.stringify(logs)) {
      for (const p of procs) for (const l of p.output.join('').split('\n')) if (/usage|quota store|not applied/.test(l) && !l.includes('"msg":"request"')) console.log(`${p.name}: ${l.slice(0, 300)}`);
    }
    assert.deepEqual(stored, logs, 'Redis holds exactly what the sidecars logged');
    assert.ok((logs['shop']?.requests ?? 0) > 100 && (logs['bank']?.requests ?? 0) > 50, 'real traffic went through');
    assert.ok((logs['shop']?.errors ?? 0) > 0, 'errors are counted too');
    assert.equal(logs['shop']!.requests + logs['bank']!.requests, sent, 'every LLM request answered was logged');
    // Attribution survives: the team label and the feature header are dimensions of the stored cells.
    const cells = await store.read('month', [(await import('@sluice/control-plane/usage')).bucketOf('month', Date.now() / 1000)], ['bank']);
    assert.ok(cells.every((c) => c.attribution.team === 'ledger'));
    assert.deepEqual([...new Set(cells.map((c) => c.attribution.feature))].sort(), ['chat', 'search']);
  } finally {
    await store.close();
    await cp.stop();
  }
});
