/**
 * The Node load generator, run as a child process (pinned by the orchestrator to the load core):
 *
 *   node loadgen.js '<LoadJob JSON>'
 *
 * Prints one LoadResult JSON line on stdout and exits. Modes:
 * - open:   fixed-rate schedule (open loop); each latency runs from the request's scheduled send
 *           time, so a slow target cannot slow the schedule down (no coordinated omission).
 * - closed: N connections each sending its next request when the previous one is answered.
 * - ttfb:   sequential streaming requests; time to the first body byte.
 */
import { Worker } from 'node:worker_threads';
import { Client, Pool } from 'undici';
import { emptyCounts, type ClosedLoopJob, type ClosedLoopResult, type Counts, type LoadJob, type LoadResult, type OpenLoopJob, type OpenLoopResult, type PacerData, type TtfbJob, type TtfbResult } from './protocol.js';
import { summarize } from './stats.js';

const HEADERS = Object.freeze({ 'content-type': 'application/json' });
/** How long the open loop waits for answers still outstanding once the schedule is over. */
const DRAIN_TIMEOUT_MS = 10_000;

const nowNs = (): number => Number(process.hrtime.bigint());

function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return `${e.name}${typeof code === 'string' ? ` ${code}` : ''}: ${e.message}`;
  }
  return String(e);
}

async function openLoop(job: OpenLoopJob): Promise<OpenLoopResult> {
  const pool = new Pool(job.origin, { connections: job.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const intervalNs = 1e9 / job.rate;
  const warmN = Math.round(job.rate * job.warmupSec);
  const measN = Math.max(1, Math.round(job.rate * job.durationSec));
  const total = warmN + measN;
  const latency = new Float64Array(measN).fill(NaN);
  const lag = new Float64Array(measN).fill(NaN);
  const counts: Counts = emptyCounts();
  let firstError: string | undefined;
  let outstanding = 0;
  let firstEnd = Infinity;
  let lastEnd = 0;
  let onIdle: (() => void) | undefined;

  // Starts 50 ms from now, so the worker is up before the first request is due.
  const t0Ns = nowNs() + 50e6;

  const settle = (): void => {
    outstanding--;
    if (outstanding === 0 && onIdle !== undefined) onIdle();
  };

  const fire = (i: number): void => {
    const sched = t0Ns + i * intervalNs;
    const measured = i >= warmN;
    const k = i - warmN;
    if (measured) lag[k] = (nowNs() - sched) / 1e6;
    outstanding++;
    pool.request({ method: 'POST', path: job.path, headers: HEADERS, body: job.body }).then(
      async (r) => {
        await r.body.dump();
        const end = nowNs();
        if (measured) {
          counts.requests++;
          if (r.statusCode >= 200 && r.statusCode < 300) {
            counts.ok++;
            latency[k] = (end - sched) / 1e6;
          } else {
            counts.non2xx++;
            firstError ??= `HTTP ${r.statusCode}`;
          }
          if (end < firstEnd) firstEnd = end;
          lastEnd = end;
        }
        settle();
      },
      (e: unknown) => {
        if (measured) {
          counts.requests++;
          counts.errors++;
          firstError ??= describe(e);
        }
        settle();
      },
    );
  };

  let sent = 0;
  const data: PacerData = { t0Ns, intervalNs, total };
  const worker = new Worker(new URL('./pacer.js', import.meta.url), { workerData: data });
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (due: number) => {
      while (sent < due) fire(sent++);
    });
    worker.on('error', reject);
    worker.on('exit', () => resolve());
  });
  // Everything scheduled has been sent; wait for the answers.
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, DRAIN_TIMEOUT_MS);
      onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  if (outstanding > 0) {
    counts.requests += outstanding;
    counts.errors += outstanding;
    firstError ??= `${outstanding} requests unanswered ${DRAIN_TIMEOUT_MS} ms after the schedule ended`;
  }
  await pool.destroy();
  const okLat = latency.filter((v) => !Number.isNaN(v));
  const windowSec = Math.max(1e-9, (lastEnd - Math.max(firstEnd, t0Ns + warmN * intervalNs)) / 1e9);
  return {
    mode: 'open',
    counts,
    latency: summarize(okLat),
    sendLag: summarize(lag.filter((v) => !Number.isNaN(v))),
    achievedRate: counts.ok / windowSec,
    ...(firstError === undefined ? {} : { firstError }),
  };
}

async function closedLoop(job: ClosedLoopJob): Promise<ClosedLoopResult> {
  const pool = new Pool(job.origin, { connections: job.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const counts: Counts = emptyCounts();
  let firstError: string | undefined;
  const start = nowNs();
  const measureFrom = start + job.warmupSec * 1e9;
  const end = measureFrom + job.durationSec * 1e9;
  const lat: number[] = [];
  let lastEnd = measureFrom;

  const loop = async (): Promise<void> => {
    for (;;) {
      const t = nowNs();
      if (t >= end) return;
      const recorded = t >= measureFrom;
      try {
        const r = await pool.request({ method: 'POST', path: job.path, headers: HEADERS, body: job.body });
        await r.body.dump();
        const done = nowNs();
        if (recorded) {
          counts.requests++;
          if (r.statusCode >= 200 && r.statusCode < 300) {
            counts.ok++;
            lat.push((done - t) / 1e6);
          } else {
            counts.non2xx++;
            firstError ??= `HTTP ${r.statusCode}`;
          }
          lastEnd = Math.max(lastEnd, done);
        }
      } catch (e) {
        if (recorded) {
          counts.requests++;
          counts.errors++;
          firstError ??= describe(e);
        }
        // Do not spin on a dead target.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: job.connections }, loop));
  await pool.destroy();
  const windowSec = Math.max(1e-9, (lastEnd - measureFrom) / 1e9);
  return {
    mode: 'closed',
    counts,
    rps: counts.ok / windowSec,
    latency: summarize(lat),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

async function ttfb(job: TtfbJob): Promise<TtfbResult> {
  const client = new Client(job.origin, { pipelining: 1, keepAliveTimeout: 60_000 });
  const counts: Counts = emptyCounts();
  let firstError: string | undefined;
  const first: number[] = [];
  const head: number[] = [];
  const total: number[] = [];
  for (let i = 0; i < job.warmup + job.requests; i++) {
    const recorded = i >= job.warmup;
    const t0 = nowNs();
    try {
      const r = await client.request({ method: 'POST', path: job.path, headers: HEADERS, body: job.body });
      const th = nowNs();
      let tf = NaN;
      let text = '';
      for await (const chunk of r.body) {
        if (Number.isNaN(tf)) tf = nowNs();
        text += (chunk as Buffer).toString('utf8');
      }
      const te = nowNs();
      if (!recorded) continue;
      counts.requests++;
      if (r.statusCode < 200 || r.statusCode >= 300) {
        counts.non2xx++;
        firstError ??= `HTTP ${r.statusCode}`;
      } else if (!text.includes('data: [DONE]') || Number.isNaN(tf)) {
        counts.errors++;
        firstError ??= `stream did not end with data: [DONE] (${text.length} chars)`;
      } else {
        counts.ok++;
        first.push((tf - t0) / 1e6);
        head.push((th - t0) / 1e6);
        total.push((te - t0) / 1e6);
      }
    } catch (e) {
      if (recorded) {
        counts.requests++;
        counts.errors++;
      }
      firstError ??= describe(e);
    }
  }
  await client.destroy();
  return {
    mode: 'ttfb',
    counts,
    ttfb: summarize(first),
    headers: summarize(head),
    total: summarize(total),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

function run(job: LoadJob): Promise<LoadResult> {
  switch (job.mode) {
    case 'open':
      return openLoop(job);
    case 'closed':
      return closedLoop(job);
    case 'ttfb':
      return ttfb(job);
  }
}

// The orchestrator holds our stdin open: when it goes away, so do we.
process.stdin.on('end', () => process.exit(1));
process.stdin.on('error', () => process.exit(1));
process.stdin.resume();

const arg = process.argv[2];
if (arg === undefined) {
  process.stderr.write("usage: loadgen.js '<job JSON>'\n");
  process.exit(2);
}
run(JSON.parse(arg) as LoadJob).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  },
  (e: unknown) => {
    process.stderr.write(`loadgen: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
