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
import { Client, Pool, type Dispatcher } from 'undici';
import { emptyCounts, type ClosedLoopJob, type ClosedLoopResult, type Counts, type LoadJob, type LoadResult, type OpenLoopJob, type OpenLoopResult, type PacerData, type RequestSpec, type TtfbJob, type TtfbResult } from './protocol.js';
import { summarize } from './stats.js';

const HEADERS = Object.freeze({ 'content-type': 'application/json' });

/** Called once per exchange: the status (0 when it failed) and the error, if any. */
type Done = (status: number, err: Error | undefined) => void;

/**
 * The cheapest way through undici: a raw dispatch handler that keeps only the status (no body
 * stream, no promise), so the generator allocates and collects little, and its GC pauses stay out
 * of the latencies it reports.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private status = 0;
  constructor(private readonly done: Done) {}
  onRequestStart(): void {}
  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }
  onResponseData(): void {}
  onResponseEnd(): void {
    this.done(this.status, undefined);
  }
  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.done(0, err);
  }
}

function dispatcher(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
}

function send(pool: Pool, path: string, body: Buffer, done: Done): void {
  pool.dispatch({ method: 'POST', path, headers: HEADERS, body }, new Exchange(done));
}

/** The body of each request: always the same, or (`unique`) the marker replaced by a nonce and a counter. */
function bodies(spec: RequestSpec): () => Buffer {
  if (spec.unique === undefined) {
    const body = Buffer.from(spec.body);
    return () => body;
  }
  const at = spec.body.indexOf(spec.unique);
  if (at < 0) throw new Error(`the body has no ${spec.unique} marker`);
  const pre = `${spec.body.slice(0, at)}${process.pid.toString(36)}${Date.now().toString(36)}-`;
  const post = spec.body.slice(at + spec.unique.length);
  let n = 0;
  return () => Buffer.from(`${pre}${n++}${post}`);
}
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

/** Per-origin state of an open-loop run. */
interface Stream {
  readonly origin: string;
  readonly pool: Pool;
  readonly latency: Float64Array;
  readonly lag: Float64Array;
  readonly counts: Counts;
  firstError: string | undefined;
  firstEnd: number;
  lastEnd: number;
}

async function openLoop(job: OpenLoopJob): Promise<OpenLoopResult> {
  const body = bodies(job);
  const k = job.origins.length;
  // One schedule of k * rate ticks; tick j goes to origin j % k, so each origin gets `rate`.
  const intervalNs = 1e9 / (job.rate * k);
  const warmTicks = Math.round(job.rate * job.warmupSec) * k;
  const measPerOrigin = Math.max(1, Math.round(job.rate * job.durationSec));
  const total = warmTicks + measPerOrigin * k;
  const streams: Stream[] = job.origins.map((origin) => ({
    origin,
    pool: dispatcher(origin, job.connections),
    latency: new Float64Array(measPerOrigin).fill(NaN),
    lag: new Float64Array(measPerOrigin).fill(NaN),
    counts: emptyCounts(),
    firstError: undefined,
    firstEnd: Infinity,
    lastEnd: 0,
  }));
  let outstanding = 0;
  let onIdle: (() => void) | undefined;

  // Starts 50 ms from now, so the worker is up before the first request is due.
  const t0Ns = nowNs() + 50e6;

  const fire = (j: number): void => {
    const sched = t0Ns + j * intervalNs;
    const s = streams[j % k] as Stream;
    const measured = j >= warmTicks;
    const i = Math.floor((j - warmTicks) / k);
    if (measured) s.lag[i] = (nowNs() - sched) / 1e6;
    outstanding++;
    send(s.pool, job.path, body(), (status, err) => {
      if (measured) {
        const end = nowNs();
        s.counts.requests++;
        if (err !== undefined) {
          s.counts.errors++;
          s.firstError ??= describe(err);
        } else if (status >= 200 && status < 300) {
          s.counts.ok++;
          s.latency[i] = (end - sched) / 1e6;
        } else {
          s.counts.non2xx++;
          s.firstError ??= `HTTP ${status}`;
        }
        if (end < s.firstEnd) s.firstEnd = end;
        s.lastEnd = end;
      }
      outstanding--;
      if (outstanding === 0 && onIdle !== undefined) onIdle();
    });
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
  await Promise.all(streams.map((s) => s.pool.destroy()));
  const measureFrom = t0Ns + warmTicks * intervalNs;
  return {
    mode: 'open',
    origins: streams.map((s) => {
      // Requests never answered (destroyed above) count as errors.
      const unanswered = measPerOrigin - s.counts.requests;
      if (unanswered > 0) {
        s.counts.requests += unanswered;
        s.counts.errors += unanswered;
        s.firstError ??= `${unanswered} requests unanswered ${DRAIN_TIMEOUT_MS} ms after the schedule ended`;
      }
      const windowSec = Math.max(1e-9, (s.lastEnd - Math.max(s.firstEnd, measureFrom)) / 1e9);
      return {
        origin: s.origin,
        counts: s.counts,
        latency: summarize(s.latency.filter((v) => !Number.isNaN(v))),
        sendLag: summarize(s.lag.filter((v) => !Number.isNaN(v))),
        achievedRate: s.counts.ok / windowSec,
        ...(s.firstError === undefined ? {} : { firstError: s.firstError }),
      };
    }),
  };
}

async function closedLoop(job: ClosedLoopJob): Promise<ClosedLoopResult> {
  const pool = dispatcher(job.origin, job.connections);
  const body = bodies(job);
  const counts: Counts = emptyCounts();
  let firstError: string | undefined;
  const start = nowNs();
  const measureFrom = start + job.warmupSec * 1e9;
  const end = measureFrom + job.durationSec * 1e9;
  const lat: number[] = [];
  let lastEnd = measureFrom;
  let running = 0;
  let finished: (() => void) | undefined;

  // Each of the `connections` virtual clients sends its next request when its answer is complete.
  const next = (): void => {
    const t = nowNs();
    if (t >= end) {
      running--;
      if (running === 0) finished?.();
      return;
    }
    const recorded = t >= measureFrom;
    send(pool, job.path, body(), (status, err) => {
      const done = nowNs();
      if (recorded) {
        counts.requests++;
        if (err !== undefined) {
          counts.errors++;
          firstError ??= describe(err);
        } else if (status >= 200 && status < 300) {
          counts.ok++;
          lat.push((done - t) / 1e6);
        } else {
          counts.non2xx++;
          firstError ??= `HTTP ${status}`;
        }
        lastEnd = Math.max(lastEnd, done);
      }
      // Do not spin on a dead target.
      if (err !== undefined) setTimeout(next, 10);
      else next();
    });
  };
  await new Promise<void>((resolve) => {
    finished = resolve;
    running = job.connections;
    for (let c = 0; c < job.connections; c++) next();
  });
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
  const streams = job.origins.map((origin) => ({
    origin,
    client: new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000 }),
    counts: emptyCounts(),
    firstError: undefined as string | undefined,
    first: [] as number[],
    head: [] as number[],
    total: [] as number[],
  }));
  const rounds = job.warmup + job.requests;
  // Round-robin: one request to each origin per round, so they share the same moments.
  for (let round = 0; round < rounds; round++) {
    const recorded = round >= job.warmup;
    for (const s of streams) {
      const t0 = nowNs();
      try {
        const r = await s.client.request({ method: 'POST', path: job.path, headers: HEADERS, body: job.body });
        const th = nowNs();
        let tf = NaN;
        let text = '';
        for await (const chunk of r.body) {
          if (Number.isNaN(tf)) tf = nowNs();
          text += (chunk as Buffer).toString('utf8');
        }
        const te = nowNs();
        if (!recorded) continue;
        s.counts.requests++;
        if (r.statusCode < 200 || r.statusCode >= 300) {
          s.counts.non2xx++;
          s.firstError ??= `HTTP ${r.statusCode}`;
        } else if (!text.includes('data: [DONE]') || Number.isNaN(tf)) {
          s.counts.errors++;
          s.firstError ??= `stream did not end with data: [DONE] (${text.length} chars)`;
        } else {
          s.counts.ok++;
          s.first.push((tf - t0) / 1e6);
          s.head.push((th - t0) / 1e6);
          s.total.push((te - t0) / 1e6);
        }
      } catch (e) {
        if (recorded) {
          s.counts.requests++;
          s.counts.errors++;
        }
        s.firstError ??= describe(e);
      }
    }
  }
  await Promise.all(streams.map((s) => s.client.destroy()));
  return {
    mode: 'ttfb',
    origins: streams.map((s) => ({
      origin: s.origin,
      counts: s.counts,
      ttfb: summarize(s.first),
      headers: summarize(s.head),
      total: summarize(s.total),
      ...(s.firstError === undefined ? {} : { firstError: s.firstError }),
    })),
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
