#!/usr/bin/env node
/**
 * `npm run bench`: one run on loopback measuring a bare `node:http` pipe proxy, the Sluice sidecar,
 * and the sidecar with a global token limit active (every request reserves and settles credit leased
 * from the control plane), all in front of the same fake LLM provider, each in its own process.
 *
 * Placement (when taskset works and two CPUs are allowed): the proxies under test on the first CPU
 * (only one of them under load at a time); the fake provider, the load generator and this
 * orchestrator on the second.
 *
 * Sequence: the direct-to-fake ceiling; the proxies started, RSS at start, warm-up, RSS idle; max
 * throughput in rounds (bare, sidecar, limited; limited, sidecar, bare; ...) with RSS sampled every 100 ms;
 * fixed-rate latency with the proxied and the direct schedule interleaved in one run; streaming time
 * to first byte with proxied and direct requests taking turns. "Added" is proxied minus direct.
 *
 * Then the cache case (cache-case.ts; `--cache-only` runs only it, `--no-cache` skips it): a
 * sidecar with an LLMCache policy and a Redis tier, measured on a proxied miss, a local hit and (a
 * second sidecar with its local tier off) a Redis hit: max req/s and p50/p99 at a fixed rate.
 *
 * Then the control-plane case (cp-case.ts; `--cp-only` runs only it, `--no-cp` skips it): the
 * control plane binary on the first CPU, 1,000 simulated sidecar streams (cp-sim.ts) on the second,
 * one policy change at a time, time until every stream ACKed it, and the control plane's RSS.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheChecks, finishCacheResult, newCacheResult, renderCacheDetails, renderCacheTable, runCacheCase, type CacheResult } from './cache-case.js';
import { finishCpResult, newCpResult, renderCpDetails, renderCpTable, runControlPlaneCase, type CpResult } from './cp-case.js';
import {
  assertNoCrash,
  benchPolicyYaml,
  CHAT_PATH,
  CP_MAIN,
  errorText,
  HERE,
  MODEL,
  NODE,
  progress,
  REPO_ROOT,
  runLoadgen,
  SIDECAR_MAIN,
  sleep,
  startControlPlane,
  startSidecar,
  type Check,
  type Placement,
} from './harness.js';
import { summarizeProfile, type ProfileSummary } from './profile.js';
import {
  allowedCpus,
  Child,
  commandExists,
  cpuModel,
  crashed,
  killAllNow,
  LineHub,
  memoryOf,
  pinSelf,
  sampleRss,
  stopAll,
  tasksetWorks,
  waitForLine,
} from './procs.js';
import type { ClosedLoopResult, Counts, OpenLoopResult, TtfbResult } from './protocol.js';
import { fmtMiB, fmtMs, fmtRate, fmtRateShort, median, type LatencySummary } from './stats.js';
import { runWrk, writeWrkScript } from './wrk.js';

const JSON_BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 32 });
const STREAM_BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 32, stream: true });
/** The fake's answer: 8 stream deltas, 1 ms apart (non-streamed answers are immediate). */
const FAKE_SCRIPT = { chunks: 8, chunkIntervalMs: 1 };

/** Targets the sidecar is measured against (the check list). */
const GOALS = { guardRatio: 0.5, ratio: 0.7, addedP50Ms: 0.3, addedP99Ms: 3, ttfbAddedMs: 0.5, rssIdleMiB: 60 };
const MAX_ERROR_SHARE = 0.01;

const USAGE = `usage: node packages/bench/dist/src/main.js [options]

  --duration S         seconds of each max-throughput round and of the fixed-rate run (default 5; env SLUICE_BENCH_DURATION)
  --rate N             requests/s of the fixed-rate latency run (default 2000; env SLUICE_BENCH_RATE)
  --connections N      closed-loop connections (default 64)
  --warmup S           closed-loop warm-up seconds per target (default 2)
  --rounds N           paired max-throughput rounds (bare, sidecar, sidecar, bare, ...; default 3)
  --stream-requests N  sequential streaming requests for time to first byte (default 200)
  --loadgen auto|wrk|node   closed-loop generator (default auto: wrk when installed)
  --cp-streams N       simulated sidecar streams of the control-plane case (default 1000)
  --cp-streams-per-channel N   streams per gRPC channel / TCP connection (default 100)
  --cp-changes N       policy changes measured in the control-plane case (default 3)
  --cache-rate N       requests/s of the cache case's fixed-rate runs (default 1000)
  --cache-duration S   seconds of each cache-case max-throughput and fixed-rate run (default 3, or --duration when smaller)
  --cache-only         run only the cache case
  --no-cache           skip the cache case
  --cp-only            run only the control-plane case
  --no-cp              skip the control-plane case
  --cpu-prof           run the proxies, the cache case's sidecars and the control plane under node --cpu-prof and list their hottest functions (slows them)
  --json               print the result as JSON instead of the tables
  -h, --help`;

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  durationSec: number;
  rate: number;
  connections: number;
  warmupSec: number;
  rounds: number;
  streamRequests: number;
  loadgen: 'auto' | 'wrk' | 'node';
  cpStreams: number;
  cpPerChannel: number;
  cpChanges: number;
  cacheRate: number;
  cacheDurationSec: number;
  /** Run the sidecar case / the cache case / the control-plane case. */
  sidecarCase: boolean;
  cacheCase: boolean;
  cpCase: boolean;
  cpuProf: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      rate: { type: 'string' },
      connections: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      'stream-requests': { type: 'string' },
      loadgen: { type: 'string' },
      'cp-streams': { type: 'string' },
      'cp-streams-per-channel': { type: 'string' },
      'cp-changes': { type: 'string' },
      'cache-rate': { type: 'string' },
      'cache-duration': { type: 'string' },
      'cache-only': { type: 'boolean' },
      'no-cache': { type: 'boolean' },
      'cp-only': { type: 'boolean' },
      'no-cp': { type: 'boolean' },
      'cpu-prof': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: string, raw: string | undefined, def: number, min: number, max: number): number => {
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`${name} must be a number from ${min} to ${max} (got ${raw})`);
    return n;
  };
  const loadgen = values.loadgen ?? 'auto';
  if (loadgen !== 'auto' && loadgen !== 'wrk' && loadgen !== 'node') throw new UsageError(`--loadgen must be auto, wrk or node (got ${loadgen})`);
  if (values['cp-only'] === true && values['no-cp'] === true) throw new UsageError('--cp-only and --no-cp exclude each other');
  if (values['cache-only'] === true && values['no-cache'] === true) throw new UsageError('--cache-only and --no-cache exclude each other');
  if (values['cache-only'] === true && values['cp-only'] === true) throw new UsageError('--cache-only and --cp-only exclude each other');
  const durationSec = num('--duration', values.duration ?? process.env['SLUICE_BENCH_DURATION'], 5, 1, 600);
  const only = values['cp-only'] === true || values['cache-only'] === true;
  return {
    durationSec,
    rate: num('--rate', values.rate ?? process.env['SLUICE_BENCH_RATE'], 2000, 1, 100_000),
    connections: Math.round(num('--connections', values.connections, 64, 1, 4096)),
    warmupSec: num('--warmup', values.warmup, 2, 0, 600),
    rounds: Math.round(num('--rounds', values.rounds, 3, 1, 100)),
    streamRequests: Math.round(num('--stream-requests', values['stream-requests'], 200, 1, 100_000)),
    loadgen,
    cpStreams: Math.round(num('--cp-streams', values['cp-streams'], 1000, 1, 100_000)),
    cpPerChannel: Math.round(num('--cp-streams-per-channel', values['cp-streams-per-channel'], 100, 1, 100_000)),
    cpChanges: Math.round(num('--cp-changes', values['cp-changes'], 3, 1, 50)),
    cacheRate: num('--cache-rate', values['cache-rate'], 1000, 1, 100_000),
    cacheDurationSec: Math.round(num('--cache-duration', values['cache-duration'], Math.min(3, durationSec), 1, 600)),
    sidecarCase: !only,
    cacheCase: values['no-cache'] !== true && (!only || values['cache-only'] === true),
    cpCase: values['no-cp'] !== true && (!only || values['cp-only'] === true),
    cpuProf: values['cpu-prof'] === true,
    json: values.json === true,
  };
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------------
// Results

type TargetId = 'bare' | 'sidecar' | 'sidecar-limit' | 'sidecar-guard';

const TARGET_LABELS: Record<TargetId, string> = {
  bare: 'bare node:http pipe',
  sidecar: 'sluice sidecar',
  'sidecar-limit': 'sluice sidecar + global token limit',
  'sidecar-guard': 'sluice sidecar + PII guardrail (input and output)',
};

/**
 * The global limit of the `sidecar-limit` target: tokens per minute on the benchmark model, far
 * above what the run can use (never denies), so every request reserves and settles credit leased
 * from the control plane (in-memory quota store) through StreamQuota.
 */
const BENCH_LIMIT_MAX = 1_000_000_000_000;
const LIMIT_YAML = `---
apiVersion: sluice.dev/v1alpha1
kind: LLMLimit
metadata: { name: bench-tokens }
spec: { unit: tokens, window: minute, max: ${BENCH_LIMIT_MAX}, scope: global, failureMode: FailClosed, match: { models: [${MODEL}] } }
`;

/**
 * The guardrail of the `sidecar-guard` target: the default PII detectors, redacting, on the request
 * and on the answer (streams through the look-behind window) — every text is scanned.
 */
const GUARD_YAML = `---
apiVersion: sluice.dev/v1alpha1
kind: LLMGuardrail
metadata: { name: bench-pii }
spec: { direction: both, action: redact, detectors: [{ kind: email }, { kind: phone }, { kind: ssn }, { kind: creditCard }, { kind: iban }, { kind: ip }] }
`;

interface PhaseRecord {
  readonly target: string;
  readonly phase: string;
  readonly counts: Counts;
  readonly firstError?: string;
}

interface TargetResult {
  readonly id: TargetId;
  readonly label: string;
  url?: string;
  pid?: number;
  /** Median of the rounds. */
  maxRps?: number;
  /** Max req/s of each throughput round. */
  roundsRps: number[];
  /** Closed-loop latency seen by the generator at max throughput (ms). */
  closedLatency?: { mean: number; p50: number; p99: number; max: number };
  latency?: LatencySummary;
  directLatency?: LatencySummary;
  addedP50Ms?: number;
  addedP99Ms?: number;
  achievedRate?: number;
  /** When the generator actually sent, relative to the schedule (ms). */
  sendLag?: LatencySummary;
  ttfb?: LatencySummary;
  directTtfb?: LatencySummary;
  ttfbAddedP50Ms?: number;
  /** Right after start (1 s settle), before any load. */
  rssStartKb?: number;
  /** After the warm-up and 1 s of settling. */
  rssIdleKb?: number;
  rssPeakKb?: number;
  /** VmHWM at the end of the throughput run: the kernel's own peak since start. */
  rssHwmKb?: number;
  rssSamples?: number;
  profile?: ProfileSummary;
}

interface BenchResult {
  node: string;
  cpu: string;
  cpus: number;
  pinning: { proxyCpu: number; loadCpu: number } | null;
  loadGenerator: string;
  config: Options;
  fakeCeilingRps?: number;
  targets: TargetResult[];
  /** Median of roundRatios. */
  ratio?: number;
  /** sidecar / bare max req/s in each paired round. */
  roundRatios: number[];
  /** Median of limitRoundRatios. */
  limitRatio?: number;
  /** sidecar with the PII guardrail / bare, each round, and their median. */
  guardRoundRatios: number[];
  guardRatio?: number;
  /** sidecar with a global token limit / bare, each round. */
  limitRoundRatios: number[];
  checks: Check[];
  /** The cache case (absent with --no-cache). */
  cache?: CacheResult;
  /** The control-plane case (absent with --no-cp). */
  controlPlane?: CpResult;
  phases: PhaseRecord[];
  warnings: string[];
  failures: string[];
  profileDir?: string;
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/** packages/<dir> → its package.json name. */
function workspacePackages(): Map<string, string> {
  const m = new Map<string, string>();
  const dir = join(REPO_ROOT, 'packages');
  for (const d of existsSync(dir) ? readdirSync(dir) : []) {
    try {
      const name = (JSON.parse(readFileSync(join(dir, d, 'package.json'), 'utf8')) as { name?: unknown }).name;
      if (typeof name === 'string') m.set(d, name);
    } catch {
      // not a package
    }
  }
  return m;
}

async function httpSanity(origin: string, what: string): Promise<Record<string, string>> {
  const post = (body: string): Promise<Response> =>
    fetch(origin + CHAT_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
  const r = await post(JSON_BODY);
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${what}: sanity request answered HTTP ${r.status}: ${text.slice(0, 500)}`);
  const j = JSON.parse(text) as { choices?: Array<{ message?: { content?: unknown } }> };
  if (typeof j.choices?.[0]?.message?.content !== 'string') throw new Error(`${what}: sanity answer is not a chat completion: ${text.slice(0, 500)}`);
  const s = await post(STREAM_BODY);
  const st = await s.text();
  if (s.status !== 200 || !st.includes('data: [DONE]')) throw new Error(`${what}: sanity stream answered HTTP ${s.status}: ${st.slice(0, 500)}`);
  return Object.fromEntries(r.headers);
}

// ---------------------------------------------------------------------------------------------------
// The run

class Bench {
  readonly result: BenchResult;
  private readonly tmp: string;
  private readonly place: Placement;
  private readonly useWrk: boolean;
  private wrkScript: string | undefined;
  private fakeUrl = '';
  private readonly live = new Map<TargetId, { t: TargetResult; child: Child; url: string; pid: number }>();

  constructor(private readonly o: Options) {
    this.tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
    const allowed = allowedCpus();
    const nCpus = allowed.length > 0 ? allowed.length : cpus().length;
    const warnings: string[] = [];
    let place: Placement = { proxyCpu: undefined, loadCpu: undefined };
    const [a, b] = allowed;
    if (a !== undefined && b !== undefined && commandExists('taskset') && tasksetWorks(a) && tasksetWorks(b)) {
      place = { proxyCpu: a, loadCpu: b };
      if (!pinSelf(b)) warnings.push(`could not pin the orchestrator to CPU ${b}`);
    } else if (a !== undefined && b !== undefined) {
      warnings.push('taskset is missing or not permitted: processes are not pinned; "1 core" numbers are not per core');
    } else {
      warnings.push(`only ${nCpus} CPU allowed: proxy, fake and load generator share it; numbers are not comparable to a 2-CPU run`);
    }
    this.place = place;
    const hasWrk = commandExists('wrk');
    if (o.loadgen === 'wrk' && !hasWrk) throw new UsageError('--loadgen wrk: wrk is not installed');
    this.useWrk = o.loadgen === 'wrk' || (o.loadgen === 'auto' && hasWrk);
    if (this.useWrk) this.wrkScript = writeWrkScript(this.tmp, JSON_BODY);
    this.result = {
      node: process.version,
      cpu: cpuModel(cpus()[0]?.model ?? 'unknown'),
      cpus: nCpus,
      pinning: place.proxyCpu === undefined || place.loadCpu === undefined ? null : { proxyCpu: place.proxyCpu, loadCpu: place.loadCpu },
      loadGenerator: this.useWrk
        ? `wrk -t1 -c${o.connections} (closed loop) + Node/undici open loop (fixed rate, TTFB)`
        : `Node/undici closed loop (${o.connections} connections; ${hasWrk ? 'wrk not used' : 'wrk not installed'}) + Node/undici open loop (fixed rate, TTFB)`,
      config: o,
      targets: [],
      roundRatios: [],
      limitRoundRatios: [],
      guardRoundRatios: [],
      checks: [],
      phases: [],
      warnings,
      failures: [],
    };
    if (o.cpuProf) {
      this.result.profileDir = mkdtempSync(join(tmpdir(), 'sluice-bench-prof-'));
      warnings.push('--cpu-prof: the proxies and the control plane run under the profiler; their numbers are lower than usual');
    }
  }

  /** Removes the temporary files (safe to call more than once, and from the 'exit' handler). */
  cleanup(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Records a phase's counters; more than 1 % failed requests (or none at all) fails the run. */
  private record(target: string, phase: string, counts: Counts, firstError?: string): void {
    this.result.phases.push({ target, phase, counts, ...(firstError === undefined ? {} : { firstError }) });
    const bad = counts.non2xx + counts.errors;
    if (counts.requests === 0) {
      this.result.failures.push(`${target} / ${phase}: no request completed${firstError === undefined ? '' : ` (${firstError})`}`);
    } else if (bad / counts.requests > MAX_ERROR_SHARE) {
      this.result.failures.push(
        `${target} / ${phase}: ${bad} of ${counts.requests} requests failed (${counts.non2xx} non-2xx, ${counts.errors} socket/other errors)${firstError === undefined ? '' : `; first: ${firstError}`}`,
      );
    }
    assertNoCrash();
  }

  private async closedLoop(origin: string, durationSec: number): Promise<{ counts: Counts; rps: number; latency: { mean: number; p50: number; p99: number; max: number }; firstError?: string }> {
    if (this.useWrk && this.wrkScript !== undefined) {
      return runWrk({ url: origin + CHAT_PATH, script: this.wrkScript, connections: this.o.connections, durationSec: Math.max(1, Math.round(durationSec)), cpu: this.place.loadCpu });
    }
    const r = await runLoadgen<ClosedLoopResult>(
      { mode: 'closed', origin, path: CHAT_PATH, body: JSON_BODY, connections: this.o.connections, durationSec, warmupSec: 0.5 },
      this.place,
    );
    return { counts: r.counts, rps: r.rps, latency: { mean: r.latency.mean, p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max }, ...(r.firstError === undefined ? {} : { firstError: r.firstError }) };
  }

  /** Fixed rate to each origin, interleaved in one run. */
  private openLoop(origins: string[]): Promise<OpenLoopResult> {
    return runLoadgen<OpenLoopResult>(
      { mode: 'open', origins, path: CHAT_PATH, body: JSON_BODY, rate: this.o.rate, durationSec: this.o.durationSec, warmupSec: 1, connections: 128 },
      this.place,
    );
  }

  /** Sequential streams, taking turns between the origins. */
  private ttfb(origins: string[]): Promise<TtfbResult> {
    return runLoadgen<TtfbResult>({ mode: 'ttfb', origins, path: CHAT_PATH, body: STREAM_BODY, requests: this.o.streamRequests, warmup: 20 }, this.place);
  }

  private nodeFlags(name: string): string[] {
    const dir = this.result.profileDir;
    return dir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.cpuprofile`];
  }

  async startFake(): Promise<void> {
    const hub = new LineHub();
    const child = new Child('fake-provider', NODE, [join(HERE, 'fake-main.js'), '--script', JSON.stringify(FAKE_SCRIPT)], {
      cpu: this.place.loadCpu,
      stdout: 'lines',
      onStdoutLine: hub.push,
      stdinPipe: true,
      critical: true,
    });
    this.fakeUrl = await waitForLine(child, hub.subscribe, (l) => /listening on (http:\/\/\S+)/.exec(l)?.[1], 10_000);
    await httpSanity(this.fakeUrl, 'fake provider');
    progress(`fake provider at ${this.fakeUrl} (pid ${child.pid})`);
  }

  /** Direct-to-fake max throughput: what the load CPU can drive at all (the ceiling of any proxy). */
  async fakeCeiling(): Promise<void> {
    progress('direct to fake: closed-loop ceiling');
    const warm = await this.closedLoop(this.fakeUrl, 1);
    this.record('direct', 'ceiling warm-up', warm.counts, warm.firstError);
    const r = await this.closedLoop(this.fakeUrl, this.o.durationSec);
    this.record('direct', 'ceiling', r.counts, r.firstError);
    this.result.fakeCeilingRps = r.rps;
  }

  private async startTarget(id: TargetId): Promise<{ child: Child; url: string }> {
    const hub = new LineHub();
    if (id === 'bare') {
      const child = new Child('bare-proxy', NODE, [...this.nodeFlags('bare'), join(HERE, 'bare-proxy.js'), '--upstream', this.fakeUrl], {
        cpu: this.place.proxyCpu,
        stdout: 'lines',
        onStdoutLine: hub.push,
        stdinPipe: true,
        critical: true,
      });
      const url = await waitForLine(child, hub.subscribe, (l) => /listening on (http:\/\/\S+)/.exec(l)?.[1], 10_000);
      return { child, url };
    }
    for (const f of [SIDECAR_MAIN, CP_MAIN]) if (!existsSync(f)) throw new Error(`${f} is missing: build first (npm run bench builds)`);
    // The production shape: the control plane binary (on the load core) pushes the policy over
    // gRPC to the sidecar binary (on the proxy core); only the sidecar is measured.
    const { grpcAddress } = await startControlPlane({ tmp: this.tmp, policyYaml: benchPolicyYaml(this.fakeUrl, id === 'sidecar-limit' ? LIMIT_YAML : id === 'sidecar-guard' ? GUARD_YAML : ''), cpu: this.place.loadCpu });
    const { child, url } = await startSidecar({ name: TARGET_LABELS[id], grpcAddress, cpu: this.place.proxyCpu, nodeFlags: this.nodeFlags(id) });
    return { child, url };
  }

  /** Starts both proxies (each idle while the other is measured), checks them, warms them up. */
  async startTargets(): Promise<void> {
    for (const id of ['bare', 'sidecar', 'sidecar-limit', 'sidecar-guard'] as const) {
      const label = TARGET_LABELS[id];
      const t: TargetResult = { id, label, roundsRps: [] };
      this.result.targets.push(t);
      progress(`${label}: starting`);
      const { child, url } = await this.startTarget(id);
      const pid = child.pid;
      if (pid === undefined) throw new Error(`${label}: no pid`);
      this.live.set(id, { t, child, url, pid });
      t.url = url;
      t.pid = pid;
      const headers = await httpSanity(url, label);
      if (id !== 'bare' && headers['x-sluice-route'] === undefined) throw new Error(`${label}: the answer has no x-sluice-route header; is this the sidecar?`);
      if (id === 'sidecar-limit' && headers['x-ratelimit-limit-tokens'] !== String(BENCH_LIMIT_MAX)) throw new Error(`${label}: the answer has no x-ratelimit-limit-tokens header; is the global limit applied?`);
    }
    await sleep(1000);
    for (const { t, pid } of this.live.values()) t.rssStartKb = memoryOf(pid)?.rssKb;
    if (this.o.warmupSec > 0) {
      for (const { t, url } of this.live.values()) {
        progress(`${t.label}: warm-up ${this.o.warmupSec}s`);
        const w = await this.closedLoop(url, this.o.warmupSec);
        this.record(t.label, 'warm-up', w.counts, w.firstError);
      }
    }
    await sleep(1000);
    for (const { t, pid } of this.live.values()) t.rssIdleKb = memoryOf(pid)?.rssKb;
  }

  /**
   * Max throughput in rounds (bare, sidecar, limited; then reversed; ...): all meet the same
   * machine within a round, so the per-round ratio is robust to whatever else the host is doing.
   */
  async throughput(): Promise<void> {
    const order: TargetId[] = ['bare', 'sidecar', 'sidecar-limit', 'sidecar-guard'];
    for (let round = 1; round <= this.o.rounds; round++) {
      const ids = round % 2 === 1 ? order : [...order].reverse();
      const got: Partial<Record<TargetId, number>> = {};
      for (const id of ids) {
        const l = this.live.get(id);
        if (l === undefined) continue;
        progress(`${l.t.label}: max throughput, round ${round}/${this.o.rounds}, ${this.o.durationSec}s`);
        const sampler = sampleRss(l.pid, 100);
        const thr = await this.closedLoop(l.url, this.o.durationSec);
        const peak = sampler.stop();
        l.t.rssSamples = (l.t.rssSamples ?? 0) + sampler.samples;
        if (!(peak <= (l.t.rssPeakKb ?? 0))) l.t.rssPeakKb = peak;
        l.t.rssHwmKb = memoryOf(l.pid)?.hwmKb;
        this.record(l.t.label, `max throughput #${round}`, thr.counts, thr.firstError);
        l.t.roundsRps.push(thr.rps);
        if (round === 1) l.t.closedLatency = thr.latency;
        got[id] = thr.rps;
        await sleep(300);
      }
      const b = got.bare;
      const sc = got.sidecar;
      const sl = got['sidecar-limit'];
      if (b !== undefined && sc !== undefined && b > 0) this.result.roundRatios.push(sc / b);
      if (b !== undefined && sl !== undefined && b > 0) this.result.limitRoundRatios.push(sl / b);
      const sg = got['sidecar-guard'];
      if (b !== undefined && sg !== undefined && b > 0) this.result.guardRoundRatios.push(sg / b);
    }
    for (const { t } of this.live.values()) t.maxRps = median(t.roundsRps);
  }

  async latency(): Promise<void> {
    for (const { t, url } of this.live.values()) {
      // The proxied and the direct schedule interleaved in one run (each at the full rate), so both
      // meet the same generator pauses and stolen CPU time; "added" is their difference.
      progress(`${t.label}: fixed rate ${this.o.rate}/s, proxied and direct interleaved`);
      const open = await this.openLoop([url, this.fakeUrl]);
      const [prox, direct] = open.origins;
      if (prox === undefined || direct === undefined) throw new Error('load generator: missing fixed-rate results');
      this.record(t.label, `fixed rate ${this.o.rate}/s`, prox.counts, prox.firstError);
      this.record(`direct (with ${t.label})`, `fixed rate ${this.o.rate}/s`, direct.counts, direct.firstError);
      t.directLatency = direct.latency;
      t.latency = prox.latency;
      t.addedP50Ms = prox.latency.p50 - direct.latency.p50;
      t.addedP99Ms = prox.latency.p99 - direct.latency.p99;
      t.achievedRate = prox.achievedRate;
      t.sendLag = prox.sendLag;
      if (prox.achievedRate < this.o.rate * 0.95) this.result.warnings.push(`${t.label}: completed only ${fmtRate(prox.achievedRate)} req/s of the ${this.o.rate}/s schedule`);
    }
  }

  async streamTtfb(): Promise<void> {
    for (const { t, url } of this.live.values()) {
      progress(`${t.label}: stream time to first byte, ${this.o.streamRequests} sequential each, proxied and direct taking turns`);
      const tt = await this.ttfb([url, this.fakeUrl]);
      const [pt, dt] = tt.origins;
      if (pt === undefined || dt === undefined) throw new Error('load generator: missing TTFB results');
      this.record(t.label, 'stream TTFB', pt.counts, pt.firstError);
      this.record(`direct (with ${t.label})`, 'stream TTFB', dt.counts, dt.firstError);
      t.directTtfb = dt.ttfb;
      t.ttfb = pt.ttfb;
      t.ttfbAddedP50Ms = pt.ttfb.p50 - dt.ttfb.p50;
    }
  }

  /** Stops the proxies (gracefully: a CPU profile is written at exit) and reads their profiles. */
  async stopTargets(): Promise<void> {
    for (const { t, child } of this.live.values()) {
      progress(`${t.label}: stopping`);
      const exit = await child.stop(this.result.profileDir === undefined ? 3000 : 15_000);
      if (exit.signal === 'SIGKILL') this.result.warnings.push(`${t.label} did not stop on SIGTERM within the grace period (killed)`);
      const profile = this.readProfile(t.id);
      if (profile !== undefined) t.profile = profile;
    }
  }

  /**
   * The cache case (cache-case.ts): its own fake provider, redis-server, control plane and two
   * sidecars with an LLMCache policy; miss, local hit and Redis hit.
   */
  async cacheCase(): Promise<void> {
    const c = newCacheResult(this.o.cacheRate, this.o.cacheDurationSec);
    this.result.cache = c;
    for (const f of [SIDECAR_MAIN, CP_MAIN]) if (!existsSync(f)) throw new Error(`${f} is missing: build first (npm run bench builds)`);
    await this.startFake();
    await runCacheCase(
      {
        fakeUrl: this.fakeUrl,
        place: this.place,
        tmp: this.tmp,
        useWrk: this.useWrk,
        connections: this.o.connections,
        durationSec: this.o.cacheDurationSec,
        warmupSec: this.o.warmupSec,
        rate: this.o.cacheRate,
        nodeFlags: (name) => this.nodeFlags(name),
        readProfile: (name) => this.readProfile(name),
        profiling: this.result.profileDir !== undefined,
        record: (target, phase, counts, firstError) => this.record(target, phase, counts, firstError),
      },
      c,
    );
  }

  /** The summary of the CPU profile `name` (--cpu-prof), if one was written. */
  private readProfile(name: string): ProfileSummary | undefined {
    const dir = this.result.profileDir;
    if (dir === undefined) return undefined;
    const file = join(dir, `${name}.cpuprofile`);
    if (existsSync(file)) return summarizeProfile(file, 15, REPO_ROOT, workspacePackages());
    this.result.warnings.push(`${name}: no CPU profile written (${readdirSync(dir).join(', ') || 'directory empty'})`);
    return undefined;
  }

  /**
   * The control-plane case (cp-case.ts): the control plane binary on the first CPU, N simulated
   * sidecars in one process on the second, one policy change at a time.
   */
  async controlPlaneCase(): Promise<void> {
    const cp = newCpResult(this.o.cpStreams, this.o.cpPerChannel);
    this.result.controlPlane = cp;
    if (!existsSync(CP_MAIN)) throw new Error(`${CP_MAIN} is missing: build first (npm run bench builds)`);
    try {
      await runControlPlaneCase(
        {
          streams: this.o.cpStreams,
          perChannel: this.o.cpPerChannel,
          changes: this.o.cpChanges,
          cpCpu: this.place.proxyCpu,
          simCpu: this.place.loadCpu,
          tmp: this.tmp,
          node: NODE,
          cpMain: CP_MAIN,
          simMain: join(HERE, 'cp-sim.js'),
          cpNodeFlags: this.nodeFlags('control-plane'),
          progress,
        },
        cp,
      );
    } finally {
      const dir = this.result.profileDir;
      if (dir !== undefined) {
        const file = join(dir, 'control-plane.cpuprofile');
        if (existsSync(file)) cp.profile = summarizeProfile(file, 15, REPO_ROOT, workspacePackages());
      }
    }
  }

  finish(): void {
    const r = this.result;
    if (r.controlPlane !== undefined) finishCpResult(r.controlPlane);
    if (r.cache !== undefined) finishCacheResult(r.cache);
    r.checks = [...(this.o.sidecarCase ? this.sidecarChecks() : []), ...(r.cache === undefined ? [] : cacheChecks(r.cache))];
  }

  private sidecarChecks(): Check[] {
    const r = this.result;
    const bare = r.targets.find((t) => t.id === 'bare');
    const side = r.targets.find((t) => t.id === 'sidecar');
    if (r.roundRatios.length > 0) r.ratio = median(r.roundRatios);
    if (r.limitRoundRatios.length > 0) r.limitRatio = median(r.limitRoundRatios);
    if (r.guardRoundRatios.length > 0) r.guardRatio = median(r.guardRoundRatios);
    if (bare?.maxRps !== undefined && r.fakeCeilingRps !== undefined && bare.maxRps > r.fakeCeilingRps * 0.85) {
      r.warnings.push(
        `the bare pipe (${fmtRate(bare.maxRps)} req/s) is close to the direct-to-fake ceiling (${fmtRate(r.fakeCeilingRps)} req/s): the baseline may be limited by the load CPU, which flatters the ratio`,
      );
    }
    const check = (name: string, goal: string, v: number | undefined, ok: (v: number) => boolean, fmt: (v: number) => string): Check => ({
      name,
      goal,
      value: v === undefined || !Number.isFinite(v) ? 'n/a' : fmt(v),
      pass: v === undefined || !Number.isFinite(v) ? undefined : ok(v),
    });
    return [
      check('ratio sidecar/bare-pipe (max req/s)', `≥ ${GOALS.ratio}`, r.ratio, (v) => v >= GOALS.ratio, (v) => v.toFixed(3)),
      check('ratio sidecar with a global token limit/bare-pipe', `≥ ${GOALS.ratio}`, r.limitRatio, (v) => v >= GOALS.ratio, (v) => v.toFixed(3)),
      check('ratio sidecar with the PII guardrail/bare-pipe', `≥ ${GOALS.guardRatio}`, r.guardRatio, (v) => v >= GOALS.guardRatio, (v) => v.toFixed(3)),
      check(`added p50 @${fmtRateShort(this.o.rate)}`, `≤ ${GOALS.addedP50Ms} ms`, side?.addedP50Ms, (v) => v <= GOALS.addedP50Ms, (v) => fmtMs(v)),
      check(`added p99 @${fmtRateShort(this.o.rate)}`, `≤ ${GOALS.addedP99Ms} ms`, side?.addedP99Ms, (v) => v <= GOALS.addedP99Ms, (v) => fmtMs(v)),
      check('stream TTFB added p50', `≤ ${GOALS.ttfbAddedMs} ms`, side?.ttfbAddedP50Ms, (v) => v <= GOALS.ttfbAddedMs, (v) => fmtMs(v)),
      check('RSS idle (started, before load)', `≤ ${GOALS.rssIdleMiB} MiB`, side?.rssStartKb, (v) => v / 1024 <= GOALS.rssIdleMiB, (v) => fmtMiB(v)),
    ];
  }
}

// ---------------------------------------------------------------------------------------------------
// Output

function renderText(r: BenchResult): string {
  const o = r.config;
  const lines: string[] = [];
  const cp = r.controlPlane;
  const cache = r.cache;
  if (o.sidecarCase) renderSidecarTables(r, lines);
  if (cache !== undefined) {
    lines.push(...renderCacheTable(cache, r.pinning !== null));
    lines.push('');
  }
  if (cp !== undefined) {
    lines.push(...renderCpTable(cp));
    lines.push('');
  }
  if (o.sidecarCase || cache !== undefined) lines.push(`load generator: ${r.loadGenerator}`);
  lines.push(`node: ${r.node}`);
  lines.push(`cpu: ${r.cpu} (${r.cpus} allowed)`);
  if (r.pinning === null) lines.push('placement: not pinned');
  else {
    if (o.sidecarCase) lines.push(`placement: proxy under test on CPU ${r.pinning.proxyCpu}; fake provider, load generator and orchestrator on CPU ${r.pinning.loadCpu}`);
    if (cache !== undefined) {
      lines.push(`placement, cache case: both sidecars on CPU ${r.pinning.proxyCpu} (one under load at a time); redis-server, control plane, fake provider, load generator and orchestrator on CPU ${r.pinning.loadCpu}`);
    }
    if (cp !== undefined) lines.push(`placement, control-plane case: control plane on CPU ${r.pinning.proxyCpu}; sidecar simulator and orchestrator on CPU ${r.pinning.loadCpu}`);
  }
  if (r.checks.length > 0) {
    lines.push('');
    lines.push('checks:');
    for (const c of r.checks) lines.push(`  ${c.pass === undefined ? 'N/A ' : c.pass ? 'PASS' : 'MISS'}  ${c.name}: ${c.value} (goal ${c.goal})`);
  }
  if (o.sidecarCase) renderSidecarDetails(r, lines);
  if (cache !== undefined) {
    lines.push('');
    lines.push(...renderCacheDetails(cache));
  }
  if (r.phases.length > 0) {
    lines.push('');
    lines.push('requests per phase:');
    lines.push('| target | phase | requests | ok | non-2xx | socket/other errors |');
    lines.push('|---|---|---|---|---|---|');
    for (const p of r.phases) {
      lines.push(`| ${p.target} | ${p.phase} | ${p.counts.requests} | ${p.counts.ok} | ${p.counts.non2xx} | ${p.counts.errors} |`);
    }
  }
  for (const t of r.targets) {
    if (t.profile !== undefined) renderProfile(lines, t.label, t.profile);
  }
  for (const p of cache?.profiles ?? []) renderProfile(lines, p.label, p.profile);
  if (cp !== undefined) {
    lines.push('');
    lines.push(...renderCpDetails(cp));
    if (cp.profile !== undefined) renderProfile(lines, 'sluice control plane', cp.profile);
  }
  const warnings = [...r.warnings, ...(cache?.warnings ?? []), ...(cp?.warnings ?? [])];
  if (warnings.length > 0) {
    lines.push('');
    for (const w of warnings) lines.push(`warning: ${w}`);
  }
  if (r.failures.length > 0) {
    lines.push('');
    for (const f of r.failures) lines.push(`FAILED: ${f}`);
  }
  return `${lines.join('\n')}\n`;
}

function renderProfile(lines: string[], label: string, p: ProfileSummary): void {
  lines.push('');
  lines.push(`hottest functions, ${label} (self time, share of busy time; ${p.file}):`);
  for (const f of p.top) lines.push(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name}  ${f.where}`);
  lines.push(`  by package (native and node-core work charged to the package that called it):`);
  for (const x of p.byPackage.slice(0, 10)) lines.push(`  ${(x.share * 100).toFixed(1).padStart(5)}%  ${x.selfMs.toFixed(0).padStart(6)} ms  ${x.name}`);
}

function renderSidecarTables(r: BenchResult, lines: string[]): void {
  const o = r.config;
  const rate = fmtRateShort(o.rate);
  const core = r.pinning === null ? 'unpinned' : '1 core';
  const n = (v: number | undefined, digits = 3): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
  lines.push(`| target | max req/s (${core}) | added p50 @${rate} | added p99 @${rate} | stream TTFB added p50 | RSS idle | RSS after warm-up | RSS peak |`);
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const t of r.targets) {
    lines.push(
      `| ${t.label} | ${fmtRate(t.maxRps)} | ${fmtMs(t.addedP50Ms)} | ${fmtMs(t.addedP99Ms)} | ${fmtMs(t.ttfbAddedP50Ms)} | ${fmtMiB(t.rssStartKb)} | ${fmtMiB(t.rssIdleKb)} | ${fmtMiB(t.rssPeakKb)} |`,
    );
  }
  lines.push('');
  const rounds = r.roundRatios.map((x) => x.toFixed(3)).join(', ');
  lines.push(`ratio sidecar/bare-pipe (max req/s): ${n(r.ratio, 3)}${r.roundRatios.length > 1 ? ` (median of ${r.roundRatios.length} rounds: ${rounds})` : ''}`);
  const limitRounds = r.limitRoundRatios.map((x) => x.toFixed(3)).join(', ');
  lines.push(
    `ratio sidecar with a global token limit (leases over StreamQuota)/bare-pipe: ${n(r.limitRatio, 3)}${r.limitRoundRatios.length > 1 ? ` (median of ${r.limitRoundRatios.length} rounds: ${limitRounds})` : ''}`,
  );
  const guardRounds = r.guardRoundRatios.map((x) => x.toFixed(3)).join(', ');
  lines.push(`ratio sidecar with the PII guardrail (input and output)/bare-pipe: ${n(r.guardRatio, 3)}${r.guardRoundRatios.length > 1 ? ` (median of ${r.guardRoundRatios.length} rounds: ${guardRounds})` : ''}`);
  lines.push('');
}

function renderSidecarDetails(r: BenchResult, lines: string[]): void {
  const o = r.config;
  const n = (v: number | undefined, digits = 3): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
  lines.push('');
  lines.push('details:');
  lines.push(`  direct-to-fake ceiling (closed loop, same generator): ${fmtRate(r.fakeCeilingRps)} req/s`);
  for (const t of r.targets) {
    lines.push(
      `  ${t.label}: max req/s per round ${t.roundsRps.map((x) => fmtRate(x)).join(', ')}; RSS at start ${fmtMiB(t.rssStartKb)}, after warm-up ${fmtMiB(t.rssIdleKb)}, peak ${fmtMiB(t.rssPeakKb)} (${t.rssSamples ?? 0} samples; VmHWM ${fmtMiB(t.rssHwmKb)})`,
    );
  }
  lines.push('');
  lines.push(`latencies in ms: fixed rate ${o.rate}/s to the proxy and ${o.rate}/s directly to the fake, interleaved, ${o.durationSec}s, from the scheduled send time;`);
  lines.push(`stream: ${o.streamRequests} sequential requests each, proxied and direct taking turns, time to the first body byte`);
  lines.push('| target | p50 | p99 | p99.9 | max | direct p50 | direct p99 | generator send lag p50 / p99 | TTFB p50 | direct TTFB p50 | closed-loop p50 / p99 (round 1) |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const t of r.targets) {
    lines.push(
      `| ${t.label} | ${n(t.latency?.p50)} | ${n(t.latency?.p99)} | ${n(t.latency?.p999)} | ${n(t.latency?.max)} | ${n(t.directLatency?.p50)} | ${n(t.directLatency?.p99)} | ${n(t.sendLag?.p50)} / ${n(t.sendLag?.p99)} | ${n(t.ttfb?.p50)} | ${n(t.directTtfb?.p50)} | ${n(t.closedLatency?.p50)} / ${n(t.closedLatency?.p99)} |`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Entry point

/** Run at exit, whatever the way out (end of run, failure, signal). */
const atExit: Array<() => void> = [killAllNow];
process.on('exit', () => {
  for (const f of atExit) {
    try {
      f();
    } catch {
      // best effort
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`bench: ${sig}, stopping children\n`);
    void stopAll(1000).finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${errorText(e)}\n${USAGE}\n`);
    return 2;
  }
  const bench = new Bench(o);
  atExit.push(() => bench.cleanup());
  const r = bench.result;
  const started = Date.now();
  const reported = new Set<Child>();
  /** Runs one case; a failure is recorded and the next case still runs. */
  const runCase = async (run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (e) {
      // A crashed server child is the cause; what failed next (a load generator) is the symptom.
      const dead = crashed().filter((c) => !reported.has(c));
      for (const c of dead) {
        reported.add(c);
        r.failures.push(`child process crashed: ${c.describeExit()}`);
      }
      const msg = errorText(e);
      if (!dead.some((c) => msg.includes(c.name))) r.failures.push(msg);
    } finally {
      await stopAll();
    }
  };
  try {
    if (o.sidecarCase) {
      await runCase(async () => {
        await bench.startFake();
        await bench.fakeCeiling();
        await bench.startTargets();
        await bench.throughput();
        await bench.latency();
        await bench.streamTtfb();
        await bench.stopTargets();
      });
    }
    if (o.cacheCase) await runCase(() => bench.cacheCase());
    if (o.cpCase) await runCase(() => bench.controlPlaneCase());
  } finally {
    await stopAll();
    bench.cleanup();
  }
  bench.finish();
  progress(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : renderText(r));
  return r.failures.length > 0 ? 1 : 0;
}

// Exit explicitly once stdout is flushed: idle keep-alive sockets must not hold the process.
const exitWith = (code: number): void => {
  process.stdout.write('', () => process.exit(code));
};
main().then(exitWith, (e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  exitWith(1);
});
