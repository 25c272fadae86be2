/**
 * The control-plane case of `npm run bench`: N simulated sidecars (one process, cp-sim.ts) hold
 * StreamPolicy streams to the control plane binary (its own process); one policy file changes; how
 * long until every stream has ACKed its new snapshot, and how much memory the control plane uses.
 *
 * Sequence: write the policy (cp-policy.ts) → start the control plane (first CPU) → start the
 * simulator (second CPU), which opens every stream at once → wait until all ACKed their first
 * snapshot (initial convergence) → settle, read the control plane's RSS (idle) → `changes` times:
 * the simulator renames a new version of the root namespace's file into the policy directory (t0)
 * and times each stream's ACK of its new version, while the orchestrator samples the control
 * plane's RSS every 20 ms → settle → next change (alternating two file contents).
 *
 * The control plane logs "policy compiled" (info level) with its wall-clock time and compile
 * duration, which splits each change into "t0 → compiled" (file event + 100 ms debounce + reload +
 * compile) and "compiled → ACKed" (snapshot builds, encoding, the push and the ACKs).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Child, LineHub, memoryOf, sampleRss, waitForLine } from './procs.js';
import { CHANGED_FILE, KEY_ENV, policyFiles, rootPolicy, ROOT_NAMESPACE, WORKLOADS } from './cp-policy.js';
import type { ChangeCommand, ChangeEvent, InitialEvent, SimJob } from './cp-protocol.js';
import type { ProfileSummary } from './profile.js';
import { fmtMiB, median, summarize, type LatencySummary } from './stats.js';

/** The control plane's debounce: a compile starts after this much quiet (engine.ts default). */
export const CP_DEBOUNCE_MS = 100;
/** The file source's safety-net poll interval (file-source.ts). */
export const CP_POLL_MS = 2000;
export const CP_GOAL_P99_MS = 1000;

export interface CpCaseOptions {
  readonly streams: number;
  readonly perChannel: number;
  readonly changes: number;
  /** CPU of the control plane and of the simulator (undefined: not pinned). */
  readonly cpCpu: number | undefined;
  readonly simCpu: number | undefined;
  /** Scratch directory (removed by the caller). */
  readonly tmp: string;
  readonly node: string;
  readonly cpMain: string;
  readonly simMain: string;
  /** Extra node flags of the control plane (--cpu-prof). */
  readonly cpNodeFlags: readonly string[];
  readonly progress: (msg: string) => void;
}

export interface CpChange {
  readonly index: number;
  /** What the change did. */
  readonly description: string;
  readonly streams: number;
  readonly converged: number;
  readonly timedOut: boolean;
  /** ms from t0 (the rename) to each stream's ACK of its new version. */
  readonly ack: LatencySummary;
  /** ms from t0 to the first new PolicyResponse the simulator received. */
  readonly firstResponseMs: number;
  /** ms from t0 to the control plane's "policy compiled" line (ms resolution, cross-process clock). */
  readonly compiledAfterMs?: number;
  /** Compile duration the control plane logged (ms). */
  readonly compileMs?: number;
  /** How the file source most likely saw the change: t0 → compiled below 1 s is fs.watch. */
  readonly seenVia: 'fs.watch' | 'poll' | 'unknown';
  readonly versions: number;
  readonly rssPeakKb: number;
  readonly simCpuMs: number;
  /** CPU time the control plane used from t0 until every stream had ACKed (ms, clock-tick resolution). */
  readonly cpCpuMs: number;
}

export interface CpResult {
  readonly streams: number;
  readonly channels: number;
  readonly perChannel: number;
  readonly workloads: number;
  readonly objects: number;
  readonly debounceMs: number;
  readonly pollMs: number;
  grpcAddress?: string;
  cpPid?: number;
  /** Encoded snapshot sizes of the initial versions (bytes). */
  snapshotBytes?: { min: number; max: number; versions: number };
  /** ms from opening every stream at once to each stream's first ACK. */
  initial?: LatencySummary;
  initialAcked?: number;
  rssStartKb?: number;
  rssIdleKb?: number;
  /** CPU time the control plane used for the initial convergence (ms). */
  initialCpCpuMs?: number;
  /** Largest RSS sampled during the changes. */
  rssPeakKb?: number;
  /** VmHWM at the end: the kernel's peak since start (includes the initial connection storm). */
  rssHwmKb?: number;
  changes: CpChange[];
  /** Medians over the changes. */
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** Sidecars the admin API listed at the end, and how many of them had ACKed what was sent. */
  adminSidecars?: number;
  adminAcked?: number;
  check?: { goal: string; value: string; pass: boolean | undefined };
  /** With --cpu-prof: the control plane's hottest functions. */
  profile?: ProfileSummary;
  warnings: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let clockTicks: number | undefined;
/** User + system CPU time of a process in ms (/proc/PID/stat, clock-tick resolution), NaN if unknown. */
function cpuTimeMs(pid: number): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / clockTicks;
  } catch {
    return NaN;
  }
}

interface CompiledLine {
  readonly time: number;
  readonly ms: number;
  readonly generation: number;
  readonly issues: number;
}

/** Runs the case; throws when a process fails to start or dies (the caller records it). */
export async function runControlPlaneCase(o: CpCaseOptions, r: CpResult): Promise<void> {
  const dir = join(o.tmp, 'cp-policy');
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of policyFiles(0)) writeFileSync(join(dir, name), text);

  // The control plane at info level: its start line names the ports, and "policy compiled" lines
  // time each compile. Per-stream lines are only written on connect and disconnect.
  const compiled: CompiledLine[] = [];
  const cpWarnings: string[] = [];
  const cpHub = new LineHub();
  cpHub.subscribe((line) => {
    if (!line.startsWith('{')) return;
    let j: { level?: number; msg?: string; time?: string | number; ms?: number; generation?: number; issues?: number };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      return;
    }
    // pino's time: ISO string (the core logger's format) or epoch ms (pino's default).
    const time = typeof j.time === 'string' ? Date.parse(j.time) : (j.time ?? NaN);
    if (j.msg === 'policy compiled' && Number.isFinite(time)) {
      compiled.push({ time, ms: j.ms ?? NaN, generation: j.generation ?? 0, issues: j.issues ?? 0 });
      if ((j.issues ?? 0) > 0) cpWarnings.push(`control plane: policy compiled with ${j.issues} issue(s)`);
    } else if ((j.level ?? 0) >= 40 && cpWarnings.length < 5) {
      cpWarnings.push(`control plane logged: ${j.msg ?? line.slice(0, 200)}`);
    }
  });
  o.progress(`control plane: starting (policy: ${r.objects} objects, ${r.workloads} workloads)`);
  const cp = new Child('sluice control plane (control-plane case)', o.node, [...o.cpNodeFlags, o.cpMain], {
    cpu: o.cpCpu,
    env: {
      ...process.env,
      ...KEY_ENV,
      SLUICE_CP_SOURCE: 'files',
      SLUICE_CP_POLICY_DIR: dir,
      SLUICE_CP_GRPC_ADDRESS: '127.0.0.1:0',
      SLUICE_CP_ADMIN_HOST: '127.0.0.1',
      SLUICE_CP_ADMIN_PORT: '0',
      SLUICE_CP_ROOT_NAMESPACE: ROOT_NAMESPACE,
      SLUICE_LOG_LEVEL: 'info',
    },
    stdout: 'lines',
    onStdoutLine: cpHub.push,
    critical: true,
  });
  const started = await waitForLine(
    cp,
    cpHub.subscribe,
    (l) => {
      if (!l.includes('"control plane started"')) return undefined;
      const grpc = /"grpc":"([^"]+)"/.exec(l)?.[1];
      const admin = /"admin":"([^"]+)"/.exec(l)?.[1];
      return grpc === undefined || admin === undefined ? undefined : { grpc, admin };
    },
    30_000,
  );
  const cpPid = cp.pid;
  if (cpPid === undefined) throw new Error('control plane: no pid');
  r.grpcAddress = started.grpc;
  r.cpPid = cpPid;
  await sleep(500);
  r.rssStartKb = memoryOf(cpPid)?.rssKb;

  // The simulator; every stream opens at once (a control plane restart looks like this).
  o.progress(`control plane: ${o.streams} simulated sidecars on ${r.channels} channels, waiting for every first ACK`);
  const cpuBeforeInitial = cpuTimeMs(cpPid);
  const simHub = new LineHub();
  const job: SimJob = { address: started.grpc, streams: o.streams, perChannel: o.perChannel, initialTimeoutMs: 60_000 };
  const sim = new Child('sidecar simulator', o.node, [o.simMain, JSON.stringify(job)], {
    cpu: o.simCpu,
    stdout: 'lines',
    onStdoutLine: simHub.push,
    stdinPipe: true,
    critical: true,
  });
  const event = <T extends { type: string }>(type: T['type'], timeoutMs: number): Promise<T> =>
    waitForLine(
      sim,
      simHub.subscribe,
      (l) => {
        if (!l.startsWith('{')) return undefined;
        const e = JSON.parse(l) as T;
        return e.type === type ? e : undefined;
      },
      timeoutMs,
    );
  const init = await event<InitialEvent>('initial', 70_000);
  r.initialCpCpuMs = cpuTimeMs(cpPid) - cpuBeforeInitial;
  r.initial = summarize(init.ackMs);
  r.initialAcked = init.acked;
  if (init.versions.length > 0) {
    const sizes = init.versions.map((v) => v.bytes);
    r.snapshotBytes = { min: Math.min(...sizes), max: Math.max(...sizes), versions: init.versions.length };
  }
  if (init.versions.length !== r.workloads) r.warnings.push(`control plane: ${init.versions.length} distinct initial snapshots for ${r.workloads} workloads`);
  if (init.acked < o.streams) {
    throw new Error(`control plane: only ${init.acked} of ${o.streams} streams ACKed a first snapshot within ${job.initialTimeoutMs} ms${init.firstError === undefined ? '' : ` (first error: ${init.firstError})`}`);
  }
  if (init.streamErrors > 0) r.warnings.push(`control plane: ${init.streamErrors} stream errors during the initial convergence (first: ${init.firstError ?? '?'})`);

  await sleep(2000);
  r.rssIdleKb = memoryOf(cpPid)?.rssKb;

  const stdin = sim.proc.stdin;
  if (stdin === null) throw new Error('simulator: no stdin pipe');
  for (let k = 1; k <= o.changes; k++) {
    const variant: 0 | 1 = k % 2 === 1 ? 1 : 0;
    const description = `${CHANGED_FILE}: "fast" → ${variant === 1 ? 'openai/gpt-4o-mini' : 'anthropic/claude-haiku-4-5'}`;
    o.progress(`control plane: change ${k}/${o.changes} (${description})`);
    const cmd: ChangeCommand = { type: 'change', file: join(dir, CHANGED_FILE), tmpFile: join(o.tmp, `cp-change-${k}.tmp`), content: rootPolicy(variant), timeoutMs: 10_000 };
    const compiledBefore = compiled.length;
    const done = event<ChangeEvent>('change', 20_000);
    const sampler = sampleRss(cpPid, 20);
    const cpu0 = cpuTimeMs(cpPid);
    stdin.write(`${JSON.stringify(cmd)}\n`);
    let ch: ChangeEvent;
    try {
      ch = await done;
    } catch (e) {
      sampler.stop();
      throw e;
    }
    const cpCpuMs = cpuTimeMs(cpPid) - cpu0;
    const peak = sampler.stop();
    if (!(peak <= (r.rssPeakKb ?? 0))) r.rssPeakKb = peak;
    // The control plane writes "policy compiled" before the push starts; give the pipe a moment.
    await sleep(50);
    const line = compiled.slice(compiledBefore).find((c) => c.time >= Math.floor(ch.t0EpochMs) - 1);
    r.changes.push(changeRecord(k, description, ch, line, peak, cpCpuMs));
    if (ch.converged < ch.streams) r.warnings.push(`control plane: change ${k}: only ${ch.converged} of ${ch.streams} streams ACKed the new version within ${cmd.timeoutMs} ms`);
    if (ch.versions !== r.workloads) r.warnings.push(`control plane: change ${k}: ${ch.versions} new versions for ${r.workloads} workloads`);
    if (compiled.length - compiledBefore > 1) r.warnings.push(`control plane: change ${k} was compiled ${compiled.length - compiledBefore} times`);
    await sleep(1000);
  }
  r.rssHwmKb = memoryOf(cpPid)?.hwmKb;

  // Cross-check with the control plane's own view (after the measurements: it allocates).
  try {
    const res = await fetch(`http://${started.admin}/v1/sidecars`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { sidecars?: Array<{ versionSent: string; versionAcked: string }> };
    const list = body.sidecars ?? [];
    r.adminSidecars = list.length;
    r.adminAcked = list.filter((s) => s.versionSent !== '' && s.versionSent === s.versionAcked).length;
    if (r.adminSidecars !== o.streams || r.adminAcked !== o.streams) {
      r.warnings.push(`control plane admin API lists ${r.adminSidecars} sidecars, ${r.adminAcked} of them ACKed what was sent (expected ${o.streams})`);
    }
  } catch (e) {
    r.warnings.push(`control plane admin API: ${e instanceof Error ? e.message : String(e)}`);
  }
  r.warnings.push(...cpWarnings);

  o.progress('control plane: stopping');
  await sim.stop();
  const exit = await cp.stop(o.cpNodeFlags.length > 0 ? 15_000 : 3000);
  if (exit.signal === 'SIGKILL') r.warnings.push('control plane did not stop on SIGTERM within the grace period (killed)');
}

function changeRecord(index: number, description: string, ch: ChangeEvent, c: CompiledLine | undefined, rssPeakKb: number, cpCpuMs: number): CpChange {
  const compiledAfterMs = c === undefined ? undefined : c.time - ch.t0EpochMs;
  return {
    index,
    description,
    streams: ch.streams,
    converged: ch.converged,
    timedOut: ch.timedOut,
    ack: summarize(ch.ackMs),
    firstResponseMs: ch.firstResponseMs,
    ...(compiledAfterMs === undefined ? {} : { compiledAfterMs }),
    ...(c === undefined ? {} : { compileMs: c.ms }),
    seenVia: compiledAfterMs === undefined ? 'unknown' : compiledAfterMs < CP_POLL_MS / 2 ? 'fs.watch' : 'poll',
    versions: ch.versions,
    rssPeakKb,
    simCpuMs: ch.simCpuMs,
    cpCpuMs,
  };
}

/** An empty result with the case's constants filled in. */
export function newCpResult(streams: number, perChannel: number): CpResult {
  const objects = [...policyFiles(0).values()].reduce((n, text) => n + (text.match(/^kind: /gm)?.length ?? 0), 0);
  return {
    streams,
    channels: Math.ceil(streams / perChannel),
    perChannel,
    workloads: WORKLOADS.length,
    objects,
    debounceMs: CP_DEBOUNCE_MS,
    pollMs: CP_POLL_MS,
    changes: [],
    warnings: [],
  };
}

/** Medians over the changes and the goal check. */
export function finishCpResult(r: CpResult): void {
  const ok = r.changes.filter((c) => c.ack.count > 0);
  if (ok.length > 0) {
    r.p50Ms = median(ok.map((c) => c.ack.p50));
    r.p99Ms = median(ok.map((c) => c.ack.p99));
    r.maxMs = median(ok.map((c) => c.ack.max));
  }
  const allConverged = r.changes.length > 0 && r.changes.every((c) => c.converged === c.streams && c.streams > 0);
  const worst = ok.length > 0 ? Math.max(...ok.map((c) => c.ack.p99)) : NaN;
  r.check = {
    goal: `< ${CP_GOAL_P99_MS} ms`,
    value:
      r.p99Ms === undefined
        ? 'n/a'
        : `${fmtWhole(r.p99Ms)} (median of ${ok.length} change${ok.length === 1 ? '' : 's'}; worst ${fmtWhole(worst)}${allConverged ? '' : '; NOT every stream converged'})`,
    pass: r.p99Ms === undefined ? undefined : allConverged && r.p99Ms < CP_GOAL_P99_MS,
  };
}

/** Milliseconds without decimals ("n/a" for NaN / undefined). */
function fmtWhole(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? 'n/a' : `${Math.round(v)} ms`;
}

/** The control-plane table and its check line. */
export function renderCpTable(r: CpResult): string[] {
  const lines: string[] = [];
  lines.push('| control plane | streams | initial convergence | change → all ACKed p50 | p99 | max | CP RSS idle | CP RSS peak |');
  lines.push('|---|---|---|---|---|---|---|---|');
  lines.push(
    `| sluice control plane (files; ${r.workloads} workloads, ${r.objects} objects) | ${r.streams.toLocaleString('en-US')} on ${r.channels} channel${r.channels === 1 ? '' : 's'} | ${fmtWhole(r.initial?.max)} | ${fmtWhole(r.p50Ms)} | ${fmtWhole(r.p99Ms)} | ${fmtWhole(r.maxMs)} | ${fmtMiB(r.rssIdleKb)} | ${fmtMiB(r.rssPeakKb)} |`,
  );
  lines.push('');
  const c = r.check;
  if (c !== undefined) lines.push(`${c.pass === undefined ? 'N/A ' : c.pass ? 'PASS' : 'MISS'}  control plane: change → all ACKed p99 ${c.value} (goal ${c.goal})`);
  return lines;
}

/** Per-change details. */
export function renderCpDetails(r: CpResult): string[] {
  const lines: string[] = [];
  const n = (v: number | undefined, digits = 1): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
  lines.push(
    `control plane: ${r.streams} StreamPolicy streams from one simulator process over ${r.channels} gRPC channel(s) (${r.perChannel} streams each, one TCP connection per channel), pods spread over ${r.workloads} workloads (5 namespaces × 2 apps)` +
      (r.snapshotBytes === undefined ? '' : `; ${r.snapshotBytes.versions} snapshots of ${r.snapshotBytes.min}–${r.snapshotBytes.max} bytes`),
  );
  lines.push(
    `  initial convergence (every stream opened at once → its first ACK): p50 ${fmtWhole(r.initial?.p50)}, p99 ${fmtWhole(r.initial?.p99)}, all ${fmtWhole(r.initial?.max)} (CP CPU ${fmtWhole(r.initialCpCpuMs)}); CP RSS at start ${fmtMiB(r.rssStartKb)}, idle with ${r.streams} streams ${fmtMiB(r.rssIdleKb)}, peak during the changes ${fmtMiB(r.rssPeakKb)} (VmHWM since start ${fmtMiB(r.rssHwmKb)})`,
  );
  lines.push(
    `  every change includes the control plane's ${r.debounceMs} ms debounce (compile after ${r.debounceMs} ms without a further file event) and the file event itself (fs.watch, else the ${r.pollMs / 1000} s poll);`,
  );
  lines.push(`  "→ compiled" is the control plane's own log time (ms resolution); "compiled → all ACKed" is the push: ${r.workloads} snapshot builds, encoding, ${r.streams} writes, decoding and the ACKs`);
  lines.push('| change | seen via | t0 → compiled (incl. debounce) | compile | t0 → first response | p50 | p99 | max | compiled → all ACKed | converged | new versions | CP RSS peak | CP CPU | simulator CPU |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of r.changes) {
    const push = c.compiledAfterMs === undefined ? undefined : c.ack.max - c.compiledAfterMs;
    lines.push(
      `| ${c.index}: ${c.description} | ${c.seenVia} | ${n(c.compiledAfterMs, 0)} ms | ${n(c.compileMs, 0)} ms | ${n(c.firstResponseMs)} ms | ${n(c.ack.p50)} ms | ${n(c.ack.p99)} ms | ${n(c.ack.max)} ms | ${n(push, 0)} ms | ${c.converged}/${c.streams}${c.timedOut ? ' (timed out)' : ''} | ${c.versions} | ${fmtMiB(c.rssPeakKb)} | ${n(c.cpCpuMs, 0)} ms | ${n(c.simCpuMs, 0)} ms |`,
    );
  }
  if (r.p99Ms !== undefined) {
    lines.push(`  without the ${r.debounceMs} ms debounce the median p99 would be about ${fmtWhole(r.p99Ms - r.debounceMs)}`);
  }
  if (r.adminSidecars !== undefined) lines.push(`  control plane admin API at the end: ${r.adminSidecars} sidecars listed, ${r.adminAcked ?? 0} ACKed the version sent`);
  return lines;
}
