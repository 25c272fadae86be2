/**
 * The cache case of `npm run bench`: what an exact response-cache hit costs next to a proxied miss.
 *
 * Processes: a real `redis-server` (testkit `startRedis`, pinned to the load CPU), one control plane
 * (files source, load CPU) pushing the benchmark policy plus an `LLMCache` (exact, ttl one day, on
 * the benchmark model) to two sidecar binaries on the proxy CPU, both with
 * `SLUICE_SIDECAR_CACHE_REDIS_URL`:
 * - sidecar A (default local tier) serves the **miss** row (every request a different body, so the
 *   whole miss path runs: key, local lookup, Redis GET, the fake provider, local store, Redis SET)
 *   and the **local hit** row (one body, primed once);
 * - sidecar B (`SLUICE_SIDECAR_CACHE_MAX_BYTES=0`: its local tier holds nothing) serves the
 *   **Redis hit** row: the same body, stored in Redis by A.
 *
 * Bodies carry `"temperature": 0` (deterministic, so cacheable without `cacheNonDeterministic`).
 * Probe requests check the `x-sluice-cache` / `x-sluice-cache-tier` headers before any load, and
 * every load phase is checked against the sidecar's own lookup counters (`/metrics`,
 * `sluice_cache_lookups_total`): a miss phase must count no hit, a hit phase nothing but hits of its
 * tier. Anything else fails the case.
 *
 * Per row: a closed-loop warm-up, max req/s (closed loop, wrk when the bench uses it, with a Lua
 * `request` hook for every row so the generator costs the same), then p50/p99 at a fixed rate (open
 * loop, latency from the scheduled send time), one row at a time so each path is measured alone;
 * then the same rate straight to the fake, as a reference (what client, loopback and wake-ups cost).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { startRedis, type TestRedis } from '@sluice/testkit';
import { benchPolicyYaml, CHAT_PATH, errorText, MODEL, progress, runLoadgen, sleep, startControlPlane, startSidecar, type Check, type Placement } from './harness.js';
import { childPids, commandExists, memoryOf, pinPid, type Child } from './procs.js';
import type { ProfileSummary } from './profile.js';
import type { ClosedLoopResult, Counts, OpenLoopResult } from './protocol.js';
import { fmtMiB, fmtMs, fmtRate, fmtRateShort, type LatencySummary } from './stats.js';
import { runWrk, writeWrkRequestScript } from './wrk.js';

/** The issue's goal: a local hit served at least this many times faster than a miss. */
export const CACHE_GOAL_SPEEDUP = 2;

/** Replaced by a token of its own in every request of a miss phase. */
const UNIQUE = '@@UNIQUE@@';
const HIT_BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 32, temperature: 0 });
const MISS_BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `Say hello ${UNIQUE}` }], max_tokens: 32, temperature: 0 });

const CACHE_YAML = `---
apiVersion: sluice.dev/v1alpha1
kind: LLMCache
metadata: { name: bench-cache }
spec: { match: { models: [${MODEL}] }, exact: true, ttlSeconds: 86400 }
`;

const SIDECAR_A = 'sluice sidecar + LLMCache';
const SIDECAR_B = 'sluice sidecar + LLMCache, local tier off';

export type CacheRowId = 'miss' | 'local' | 'redis';

const ROWS: ReadonlyArray<{ id: CacheRowId; label: string }> = [
  { id: 'miss', label: 'miss (proxied to the zero-latency fake)' },
  { id: 'local', label: 'local hit' },
  { id: 'redis', label: 'Redis hit' },
];

/** Cache lookups counted by a sidecar (sluice_cache_lookups_total) and its Redis errors. */
export interface Lookups {
  local: number;
  redis: number;
  semantic: number;
  miss: number;
  redisErrors: number;
}

export interface CacheRow {
  readonly id: CacheRowId;
  readonly label: string;
  /** The sidecar that served the row. */
  readonly sidecar: string;
  maxRps?: number;
  /** The closed loop's own latency view at max throughput (ms). */
  closedLatency?: { mean: number; p50: number; p99: number; max: number };
  /** At the fixed rate, from the scheduled send time (ms). */
  latency?: LatencySummary;
  sendLag?: LatencySummary;
  achievedRate?: number;
  /** What the sidecar counted during each phase (checked against the row's kind). */
  readonly lookups: Array<{ readonly phase: string; readonly ok: number; readonly counted: Lookups; readonly localEntriesBefore: number | undefined }>;
}

export interface CacheResult {
  /** Requests/s of the fixed-rate phase, per row. */
  readonly rate: number;
  /** Seconds of each max-throughput and fixed-rate phase. */
  readonly durationSec: number;
  readonly rows: CacheRow[];
  redisUrl?: string;
  /** redis-server pinned to the load CPU. */
  redisPinned?: boolean;
  /** Reference: the same fixed rate straight to the fake (no sidecar), measured like the rows. */
  directLatency?: LatencySummary;
  /** What the probe requests saw. */
  readonly probes: string[];
  /** Miss p50 / local-hit p50 at the fixed rate. */
  localSpeedupP50?: number;
  /** Local-hit max req/s / miss max req/s. */
  localRpsRatio?: number;
  redisSpeedupP50?: number;
  redisRpsRatio?: number;
  /** Sidecar A after the case: RSS and its local tier (from /metrics). */
  rssEndKb?: number;
  localEntries?: number;
  localBytes?: number;
  readonly profiles: Array<{ readonly label: string; readonly profile: ProfileSummary }>;
  readonly warnings: string[];
}

export interface CacheCaseOptions {
  readonly fakeUrl: string;
  readonly place: Placement;
  /** Scratch directory (removed by the caller). */
  readonly tmp: string;
  readonly useWrk: boolean;
  readonly connections: number;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly rate: number;
  /** Extra node flags of a sidecar (--cpu-prof), by profile name. */
  readonly nodeFlags: (name: string) => string[];
  /** Reads the CPU profile written under that name, if profiling. */
  readonly readProfile: (name: string) => ProfileSummary | undefined;
  readonly profiling: boolean;
  /** Records a phase's request counters (fails the run beyond 1 % errors). */
  readonly record: (target: string, phase: string, counts: Counts, firstError?: string) => void;
}

export function newCacheResult(rate: number, durationSec: number): CacheResult {
  return {
    rate,
    durationSec,
    rows: ROWS.map((r) => ({ ...r, sidecar: r.id === 'redis' ? SIDECAR_B : SIDECAR_A, lookups: [] })),
    probes: [],
    profiles: [],
    warnings: [],
  };
}

interface Sidecar {
  readonly label: string;
  readonly child: Child;
  readonly url: string;
  readonly adminUrl: string;
  readonly profileName: string;
}

interface Closed {
  readonly counts: Counts;
  readonly rps: number;
  readonly latency: { mean: number; p50: number; p99: number; max: number };
  readonly firstError?: string;
}

export async function runCacheCase(o: CacheCaseOptions, r: CacheResult): Promise<void> {
  let redis: TestRedis | undefined;
  const started: Child[] = [];
  const sidecars: Sidecar[] = [];
  try {
    progress('cache: starting redis-server');
    const redisBin = process.env['SLUICE_REDIS_SERVER'] ?? 'redis-server';
    if (!commandExists(redisBin)) throw new Error(`cache case: ${redisBin} not found; install redis-server (or name the binary in SLUICE_REDIS_SERVER), or pass --no-cache`);
    try {
      redis = await startRedis();
    } catch (e) {
      throw new Error(`cache case: redis-server did not start (${errorText(e)}); install it (or name the binary in SLUICE_REDIS_SERVER), or pass --no-cache`, { cause: e });
    }
    r.redisUrl = redis.url;
    if (o.place.loadCpu !== undefined) {
      const pids = childPids(process.pid, 'redis-server');
      const [pid] = pids;
      r.redisPinned = pids.length === 1 && pid !== undefined && pinPid(pid, o.place.loadCpu);
      if (!r.redisPinned) r.warnings.push(`could not pin redis-server to CPU ${o.place.loadCpu} (found pids: ${pids.join(', ') || 'none'}); it may compete with the sidecars`);
    }
    progress('cache: starting the control plane and two sidecars with an LLMCache policy');
    const cp = await startControlPlane({ tmp: o.tmp, policyYaml: benchPolicyYaml(o.fakeUrl, CACHE_YAML), cpu: o.place.loadCpu, name: 'sluice control plane (cache case)' });
    started.push(cp.child);
    const start = async (label: string, profileName: string, env: Record<string, string>): Promise<Sidecar> => {
      const s = await startSidecar({ name: label, grpcAddress: cp.grpcAddress, cpu: o.place.proxyCpu, nodeFlags: o.nodeFlags(profileName), env: { SLUICE_SIDECAR_CACHE_REDIS_URL: redis?.url ?? '', ...env } });
      started.push(s.child);
      const sc = { label, profileName, ...s };
      sidecars.push(sc);
      return sc;
    };
    const a = await start(SIDECAR_A, 'sidecar-cache', { SLUICE_POD_NAME: 'bench-cache-a', SLUICE_SIDECAR_CACHE_MAX_BYTES: String(64 * 1024 * 1024) });
    const b = await start(SIDECAR_B, 'sidecar-cache-redis', { SLUICE_POD_NAME: 'bench-cache-b', SLUICE_SIDECAR_CACHE_MAX_BYTES: '0' });
    await probe(a, b, r);

    const rowOf = (id: CacheRowId): CacheRow => r.rows.find((x) => x.id === id) as CacheRow;
    const plan: Array<{ row: CacheRow; side: Sidecar; body: string; unique: boolean }> = [
      { row: rowOf('miss'), side: a, body: MISS_BODY, unique: true },
      { row: rowOf('local'), side: a, body: HIT_BODY, unique: false },
      { row: rowOf('redis'), side: b, body: HIT_BODY, unique: false },
    ];
    const warmSec = Math.min(1, o.warmupSec);
    for (const p of plan) {
      if (warmSec > 0) {
        progress(`cache: ${p.row.label}: warm-up ${warmSec}s`);
        await measured(o, p.row, p.side, 'warm-up', () => closedLoop(o, p.side.url, p.body, p.unique, warmSec));
      }
      progress(`cache: ${p.row.label}: max throughput, ${o.durationSec}s`);
      const thr = await measured(o, p.row, p.side, 'max throughput', () => closedLoop(o, p.side.url, p.body, p.unique, o.durationSec));
      p.row.maxRps = thr.rps;
      p.row.closedLatency = thr.latency;
    }
    for (const p of plan) {
      progress(`cache: ${p.row.label}: fixed rate ${o.rate}/s, ${o.durationSec}s`);
      const open = await measured(o, p.row, p.side, `fixed rate ${fmtRateShort(o.rate)}`, async () => {
        const res = await runLoadgen<OpenLoopResult>(
          { mode: 'open', origins: [p.side.url], path: CHAT_PATH, body: p.body, ...(p.unique ? { unique: UNIQUE } : {}), rate: o.rate, durationSec: o.durationSec, warmupSec: 0.5, connections: 128 },
          o.place,
        );
        const s = res.origins[0];
        if (s === undefined) throw new Error('load generator: missing fixed-rate results');
        return s;
      });
      p.row.latency = open.latency;
      p.row.sendLag = open.sendLag;
      p.row.achievedRate = open.achievedRate;
      if (open.achievedRate < o.rate * 0.95) r.warnings.push(`${p.row.label}: completed only ${fmtRate(open.achievedRate)} req/s of the ${o.rate}/s schedule`);
    }
    progress(`cache: direct to the fake (reference): fixed rate ${o.rate}/s, ${o.durationSec}s`);
    const direct = await runLoadgen<OpenLoopResult>(
      { mode: 'open', origins: [o.fakeUrl], path: CHAT_PATH, body: HIT_BODY, rate: o.rate, durationSec: o.durationSec, warmupSec: 0.5, connections: 128 },
      o.place,
    );
    const ds = direct.origins[0];
    if (ds === undefined) throw new Error('load generator: missing fixed-rate results');
    o.record('direct to the fake (cache case reference)', `fixed rate ${fmtRateShort(o.rate)}`, ds.counts, ds.firstError);
    r.directLatency = ds.latency;
    const pid = a.child.pid;
    if (pid !== undefined) r.rssEndKb = memoryOf(pid)?.rssKb;
    const m = await scrape(a.adminUrl);
    r.localEntries = m.get('sluice_cache_local_entries');
    r.localBytes = m.get('sluice_cache_local_bytes');
  } finally {
    // Sidecars first (gracefully: a CPU profile is written at exit), then the control plane and Redis.
    for (const s of sidecars) {
      const exit = await s.child.stop(o.profiling ? 15_000 : 3000);
      if (exit.signal === 'SIGKILL') r.warnings.push(`${s.label} did not stop on SIGTERM within the grace period (killed)`);
      const profile = o.readProfile(s.profileName);
      if (profile !== undefined) r.profiles.push({ label: s.label, profile });
    }
    for (const c of started) await c.stop();
    await redis?.stop();
  }
}

/** Closed loop at max throughput: wrk with a request hook (unique bodies or one), else the Node generator. */
let scriptSeq = 0;
async function closedLoop(o: CacheCaseOptions, url: string, body: string, unique: boolean, durationSec: number): Promise<Closed> {
  if (o.useWrk) {
    const script = writeWrkRequestScript(join(o.tmp, `cache-${++scriptSeq}.lua`), body, unique ? { marker: UNIQUE, nonce: randomUUID() } : undefined);
    return runWrk({ url: url + CHAT_PATH, script, connections: o.connections, durationSec: Math.max(1, Math.round(durationSec)), cpu: o.place.loadCpu });
  }
  const res = await runLoadgen<ClosedLoopResult>(
    { mode: 'closed', origin: url, path: CHAT_PATH, body, ...(unique ? { unique: UNIQUE } : {}), connections: o.connections, durationSec, warmupSec: 0.5 },
    o.place,
  );
  const l = res.latency;
  return { counts: res.counts, rps: res.rps, latency: { mean: l.mean, p50: l.p50, p99: l.p99, max: l.max }, ...(res.firstError === undefined ? {} : { firstError: res.firstError }) };
}

/**
 * Runs one load phase against `side` and checks it against the sidecar's own lookup counters: a
 * miss row must count no hit and a miss per answered request; a hit row nothing but hits of its tier.
 */
async function measured<T extends { readonly counts: Counts; readonly firstError?: string }>(o: CacheCaseOptions, row: CacheRow, side: Sidecar, phase: string, run: () => Promise<T>): Promise<T> {
  const beforeMetrics = await scrape(side.adminUrl);
  const before = lookups(side.adminUrl, beforeMetrics);
  const res = await run();
  // Requests still in flight when the generator stopped are looked up after it returned.
  await sleep(250);
  const after = lookups(side.adminUrl, await scrape(side.adminUrl));
  o.record(row.label, phase, res.counts, res.firstError);
  const d: Lookups = {
    local: after.local - before.local,
    redis: after.redis - before.redis,
    semantic: after.semantic - before.semantic,
    miss: after.miss - before.miss,
    redisErrors: after.redisErrors - before.redisErrors,
  };
  row.lookups.push({ phase, ok: res.counts.ok, counted: d, localEntriesBefore: beforeMetrics.get('sluice_cache_local_entries') });
  const ok = res.counts.ok;
  const wrong =
    row.id === 'miss'
      ? d.local + d.redis + d.semantic > 0 || d.miss < ok
      : row.id === 'local'
        ? d.miss + d.redis + d.semantic > 0 || d.local < ok
        : d.miss + d.local + d.semantic > 0 || d.redis < ok || d.redisErrors > 0;
  if (wrong) {
    throw new Error(
      `cache case: ${row.label} / ${phase}: ${side.label} counted local hits ${d.local}, Redis hits ${d.redis}, semantic hits ${d.semantic}, misses ${d.miss}, Redis errors ${d.redisErrors} for ${ok} answered requests: not a clean ${row.id === 'miss' ? 'miss' : `${row.id} hit`} phase`,
    );
  }
  return res;
}

/** The sidecar's Prometheus text as `name` or `name{labels}` → value. */
async function scrape(adminUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${adminUrl}/metrics answered HTTP ${res.status}`);
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    m.set(line.slice(0, sp).replace(/\s+/g, ''), Number(line.slice(sp + 1)));
  }
  return m;
}

function lookups(adminUrl: string, m: ReadonlyMap<string, number>): Lookups {
  const get = (k: string): number => {
    const v = m.get(k);
    if (v === undefined || !Number.isFinite(v)) throw new Error(`${adminUrl}/metrics has no ${k}; does this sidecar have the response cache?`);
    return v;
  };
  return {
    local: get('sluice_cache_lookups_total{result="hit",tier="local"}'),
    redis: get('sluice_cache_lookups_total{result="hit",tier="redis"}'),
    semantic: get('sluice_cache_lookups_total{result="hit",tier="semantic"}'),
    miss: get('sluice_cache_lookups_total{result="miss",tier=""}'),
    redisErrors: get('sluice_cache_redis_errors_total'),
  };
}

interface Answer {
  readonly status: number;
  readonly cache: string | null;
  readonly tier: string | null;
  readonly route: string | null;
  readonly text: string;
}

async function post(url: string, body: string): Promise<Answer> {
  const res = await fetch(url + CHAT_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, cache: res.headers.get('x-sluice-cache'), tier: res.headers.get('x-sluice-cache-tier'), route: res.headers.get('x-sluice-route'), text };
}

const show = (x: Answer): string => `HTTP ${x.status}, x-sluice-cache: ${x.cache ?? '(none)'}${x.tier === null ? '' : `, tier ${x.tier}`}`;

/** Sends `body` until the answer is a hit of `tier` (stores complete after the answer); throws after `timeoutMs`. */
async function untilHit(s: Sidecar, body: string, tier: string, timeoutMs: number): Promise<{ answer: Answer; tries: number }> {
  const deadline = Date.now() + timeoutMs;
  let last: Answer | undefined;
  for (let tries = 1; ; tries++) {
    last = await post(s.url, body);
    if (last.status !== 200) throw new Error(`cache case: ${s.label} answered HTTP ${last.status}: ${last.text.slice(0, 300)}`);
    if (last.cache === 'hit' && last.tier === tier) return { answer: last, tries };
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  throw new Error(`cache case: ${s.label} never answered a ${tier} hit within ${timeoutMs} ms (last: ${show(last)})`);
}

/** Probe requests: misses miss, hits hit, and B's hits come from Redis. */
async function probe(a: Sidecar, b: Sidecar, r: CacheResult): Promise<void> {
  // A miss on A: a chat completion, routed, and x-sluice-cache: miss.
  const unique = MISS_BODY.replace(UNIQUE, `probe-${randomUUID()}`);
  const m = await post(a.url, unique);
  if (m.status !== 200) throw new Error(`cache case: ${a.label}: probe answered HTTP ${m.status}: ${m.text.slice(0, 300)}`);
  const j = JSON.parse(m.text) as { choices?: Array<{ message?: { content?: unknown } }> };
  if (typeof j.choices?.[0]?.message?.content !== 'string') throw new Error(`cache case: ${a.label}: probe answer is not a chat completion: ${m.text.slice(0, 300)}`);
  if (m.route === null) throw new Error(`cache case: ${a.label}: the answer has no x-sluice-route header; is this the sidecar?`);
  if (m.cache !== 'miss') throw new Error(`cache case: ${a.label}: a new body answered ${show(m)}, expected a miss; is the LLMCache policy applied?`);
  r.probes.push(`${a.label}, new body: ${show(m)}`);
  // The same body again: a local hit (the store works), and another new body: a miss again.
  const again = await untilHit(a, unique, 'local', 2000);
  r.probes.push(`${a.label}, that body again: ${show(again.answer)} (after ${again.tries} tries)`);
  const m2 = await post(a.url, MISS_BODY.replace(UNIQUE, `probe-${randomUUID()}`));
  if (m2.cache !== 'miss') throw new Error(`cache case: ${a.label}: a second new body answered ${show(m2)}, expected a miss`);
  r.probes.push(`${a.label}, another new body: ${show(m2)}`);
  // The hit body, primed on A (its store reaches Redis too).
  const primed = await untilHit(a, HIT_BODY, 'local', 2000);
  r.probes.push(`${a.label}, hit body: ${show(primed.answer)} (after ${primed.tries} tries, the first primes it)`);
  // B finds it in Redis, and only there: with its local tier off, every hit says tier redis.
  const fromRedis = await untilHit(b, HIT_BODY, 'redis', 5000);
  r.probes.push(`${b.label}, hit body: ${show(fromRedis.answer)} (after ${fromRedis.tries} tries)`);
  for (let i = 0; i < 3; i++) {
    const x = await post(b.url, HIT_BODY);
    if (x.status !== 200 || x.cache !== 'hit' || x.tier !== 'redis') {
      throw new Error(`cache case: ${b.label}: a repeated hit answered ${show(x)}, expected tier redis (SLUICE_SIDECAR_CACHE_MAX_BYTES=0 should keep its local tier empty)`);
    }
  }
  r.probes.push(`${b.label}, hit body 3 more times: hit, tier redis each time`);
}

export function finishCacheResult(r: CacheResult): void {
  const row = (id: CacheRowId): CacheRow | undefined => r.rows.find((x) => x.id === id);
  const miss = row('miss');
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a) ? undefined : a / b);
  for (const [id, speed, rps] of [
    ['local', 'localSpeedupP50', 'localRpsRatio'],
    ['redis', 'redisSpeedupP50', 'redisRpsRatio'],
  ] as const) {
    const hit = row(id);
    const s = ratio(miss?.latency?.p50, hit?.latency?.p50);
    const q = ratio(hit?.maxRps, miss?.maxRps);
    if (s !== undefined) r[speed] = s;
    if (q !== undefined) r[rps] = q;
  }
}

export function cacheChecks(r: CacheResult): Check[] {
  const check = (name: string, v: number | undefined, detail: string): Check => ({
    name,
    goal: `≥ ${CACHE_GOAL_SPEEDUP}×`,
    value: v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(2)}× (${detail})`,
    pass: v === undefined || !Number.isFinite(v) ? undefined : v >= CACHE_GOAL_SPEEDUP,
  });
  const miss = r.rows.find((x) => x.id === 'miss');
  const local = r.rows.find((x) => x.id === 'local');
  return [
    check(`local hit p50 ≥ ${CACHE_GOAL_SPEEDUP}× faster than a miss @${fmtRateShort(r.rate)}`, r.localSpeedupP50, `${fmtMs(local?.latency?.p50)} vs ${fmtMs(miss?.latency?.p50)}`),
    check(`local hit max req/s ≥ ${CACHE_GOAL_SPEEDUP}× a miss's`, r.localRpsRatio, `${fmtRate(local?.maxRps)} vs ${fmtRate(miss?.maxRps)}`),
  ];
}

export function renderCacheTable(r: CacheResult, pinned: boolean): string[] {
  const rate = fmtRateShort(r.rate);
  const x = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v.toFixed(2)}×`);
  const lines = [`| case | max req/s (${pinned ? '1 core' : 'unpinned'}) | p50 @${rate} | p99 @${rate} |`, '|---|---|---|---|'];
  for (const row of r.rows) lines.push(`| ${row.label} | ${fmtRate(row.maxRps)} | ${fmtMs(row.latency?.p50)} | ${fmtMs(row.latency?.p99)} |`);
  lines.push(`| reference: direct to the fake, no sidecar | – | ${fmtMs(r.directLatency?.p50)} | ${fmtMs(r.directLatency?.p99)} |`);
  lines.push('');
  lines.push(`local hit p50 vs miss p50: ${x(r.localSpeedupP50)} faster; local hit req/s vs miss req/s: ${x(r.localRpsRatio)}`);
  lines.push(`Redis hit p50 vs miss p50: ${x(r.redisSpeedupP50)} faster; Redis hit req/s vs miss req/s: ${x(r.redisRpsRatio)}`);
  return lines;
}

export function renderCacheDetails(r: CacheResult): string[] {
  const n = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));
  const lines: string[] = [];
  lines.push('cache case details:');
  lines.push(`  miss and local hit: "${SIDECAR_A}" (local tier 64 MiB + Redis); Redis hit: "${SIDECAR_B}" (SLUICE_SIDECAR_CACHE_MAX_BYTES=0, Redis only), primed by the first`);
  lines.push(`  redis-server ${r.redisUrl ?? 'n/a'}${r.redisPinned === true ? ', pinned to the load CPU' : ''}; bodies with temperature 0; miss bodies differ per request`);
  for (const p of r.probes) lines.push(`  probe: ${p}`);
  lines.push(`  ${SIDECAR_A} after the case: RSS ${fmtMiB(r.rssEndKb)}; local tier ${r.localEntries ?? 'n/a'} entries, ${fmtMiB(r.localBytes === undefined ? undefined : r.localBytes / 1024)}`);
  lines.push('');
  lines.push(`latencies in ms: fixed rate ${r.rate}/s per case, one case at a time, ${r.durationSec}s, from the scheduled send time; closed loop: max throughput run`);
  lines.push('| case | p50 | p90 | p99 | p99.9 | max | send lag p50 / p99 | achieved req/s | closed-loop p50 / p99 |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    const l = row.latency;
    lines.push(
      `| ${row.label} | ${n(l?.p50)} | ${n(l?.p90)} | ${n(l?.p99)} | ${n(l?.p999)} | ${n(l?.max)} | ${n(row.sendLag?.p50)} / ${n(row.sendLag?.p99)} | ${fmtRate(row.achievedRate)} | ${n(row.closedLatency?.p50)} / ${n(row.closedLatency?.p99)} |`,
    );
  }
  const d = r.directLatency;
  lines.push(`| direct to the fake (reference) | ${n(d?.p50)} | ${n(d?.p90)} | ${n(d?.p99)} | ${n(d?.p999)} | ${n(d?.max)} | | | |`);
  lines.push('');
  lines.push('cache lookups the sidecar counted per phase (sluice_cache_lookups_total; in-flight and warm-up requests included):');
  lines.push('| case | phase | local tier entries at start | answered 2xx | local hits | Redis hits | misses | Redis errors |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    for (const p of row.lookups) {
      lines.push(`| ${row.label} | ${p.phase} | ${p.localEntriesBefore ?? 'n/a'} | ${p.ok} | ${p.counted.local} | ${p.counted.redis} | ${p.counted.miss} | ${p.counted.redisErrors} |`);
    }
  }
  return lines;
}
