/**
 * wrk as the closed-loop load generator: a Lua script sets the POST body and prints wrk's summary
 * as one JSON line from its `done` hook (no per-response Lua, which would slow wrk down).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Child, LineHub } from './procs.js';
import type { Counts } from './protocol.js';

const MARK = 'SLUICE_BENCH_WRK ';

export interface WrkResult {
  readonly counts: Counts;
  readonly rps: number;
  /** wrk's own latency view of the closed loop, in ms. */
  readonly latency: { mean: number; p50: number; p99: number; max: number };
  readonly firstError?: string;
}

/** A Lua string literal. */
export function luaString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
}

/** wrk's `done` hook: its summary as one JSON line. */
const DONE_HOOK = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${MARK}{"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"meanUs":%.1f,"p50Us":%d,"p99Us":%d,"maxUs":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
`;

/** Writes the Lua script for `body` into `dir`; returns its path. */
export function writeWrkScript(dir: string, body: string): string {
  const path = join(dir, 'post.lua');
  writeFileSync(
    path,
    `wrk.method = "POST"
wrk.body = ${luaString(body)}
wrk.headers["Content-Type"] = "application/json"

${DONE_HOOK}`,
  );
  return path;
}

/**
 * Writes a script whose `request` hook builds every request (one Lua call per request, so the
 * generator's cost is the same whether the bodies differ or not): with `unique`, the marker in
 * `body` becomes `nonce-N` (N counts the requests of the thread; wrk runs one), so every request
 * of the run, and of any run with another nonce, is a different body; without, the same request
 * every time.
 */
export function writeWrkRequestScript(path: string, body: string, unique?: { marker: string; nonce: string }): string {
  let hook: string;
  if (unique === undefined) {
    hook = `local req
init = function(args)
  req = wrk.format(nil, nil, nil, ${luaString(body)})
end
request = function()
  return req
end`;
  } else {
    const at = body.indexOf(unique.marker);
    if (at < 0) throw new Error(`the body has no ${unique.marker} marker`);
    hook = `local pre, post = ${luaString(`${body.slice(0, at)}${unique.nonce}-`)}, ${luaString(body.slice(at + unique.marker.length))}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, pre .. n .. post)
end`;
  }
  writeFileSync(
    path,
    `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
${hook}

${DONE_HOOK}`,
  );
  return path;
}

interface WrkSummary {
  requests: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

/** Runs `wrk -t1 -cN -dSs -s script url` (pinned when `cpu` is set) and parses its summary. */
export async function runWrk(o: { url: string; script: string; connections: number; durationSec: number; cpu: number | undefined }): Promise<WrkResult> {
  const out = new LineHub();
  let summary: WrkSummary | undefined;
  const other: string[] = [];
  out.subscribe((line) => {
    if (line.startsWith(MARK)) summary = JSON.parse(line.slice(MARK.length)) as WrkSummary;
    else other.push(line);
  });
  const child = new Child('wrk', 'wrk', ['-t1', `-c${o.connections}`, `-d${o.durationSec}s`, '--timeout', '5s', '-s', o.script, o.url], {
    cpu: o.cpu,
    stdout: 'lines',
    onStdoutLine: out.push,
  });
  const exit = await child.exited;
  // Let readline deliver the last lines.
  await new Promise((r) => setImmediate(r));
  if (exit.code !== 0 || summary === undefined) {
    throw new Error(`wrk failed: ${child.describeExit()}\n  stdout:\n    ${other.join('\n    ')}`);
  }
  const s = summary;
  const socketErrors = s.connect + s.read + s.write + s.timeout;
  // wrk counts a request that failed on the socket in neither `requests` nor `status`.
  const counts: Counts = { requests: s.requests + socketErrors, ok: s.requests - s.status, non2xx: s.status, errors: socketErrors };
  let firstError: string | undefined;
  if (s.status > 0) firstError = `${s.status} non-2xx/3xx responses`;
  if (socketErrors > 0) firstError = `socket errors: connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}`;
  return {
    counts,
    rps: (s.requests - s.status) / (s.durationUs / 1e6),
    latency: { mean: s.meanUs / 1000, p50: s.p50Us / 1000, p99: s.p99Us / 1000, max: s.maxUs / 1000 },
    ...(firstError === undefined ? {} : { firstError }),
  };
}
