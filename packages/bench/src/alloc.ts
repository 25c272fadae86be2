/**
 * Where a proxied request's memory goes: the sidecar (production shape: policy from the control plane
 * binary) runs under the inspector; after a warm-up at 2,000 req/s, V8's sampling heap profiler
 * records every allocation of a fixed number of requests — objects the garbage collector has freed
 * included, so the figures are allocation per request, not what stays — and prints the top sites.
 * `promoted` instead keeps only what survived the young generation (what drives old-space GC).
 *
 *   node packages/bench/dist/src/alloc.js [all|promoted] [requests=10000] [top=30]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '@sluice/testkit';
import { benchPolicyYaml, CHAT_PATH, HERE, MODEL, NODE, runLoadgen, startControlPlane, startSidecar } from './harness.js';
import { Child, LineHub, stopAll, waitForLine } from './procs.js';
import type { OpenLoopResult } from './protocol.js';

interface ProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly ProfileNode[];
}

const [modeArg, requestsArg, topArg] = process.argv.slice(2);
const promotedOnly = modeArg === 'promoted';
const requests = Number(requestsArg ?? 10_000);
const top = Number(topArg ?? 30);
const place = { proxyCpu: 0, loadCpu: 1 };
const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 32 });

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function devtools(port: number): Promise<{ call(method: string, params?: object): Promise<Record<string, unknown>>; close(): void }> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((ok, fail) => {
    ws.addEventListener('open', ok);
    ws.addEventListener('error', fail);
  });
  let seq = 0;
  const pending = new Map<number, (m: Record<string, unknown>) => void>();
  ws.addEventListener('message', (ev) => {
    const m = JSON.parse(String(ev.data)) as { id?: number; result?: Record<string, unknown> };
    if (m.id !== undefined) pending.get(m.id)?.(m.result ?? {});
    if (m.id !== undefined) pending.delete(m.id);
  });
  return {
    call: (method, params = {}) =>
      new Promise((ok) => {
        const id = ++seq;
        pending.set(id, ok);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

try {
  const hub = new LineHub();
  const fake = new Child('fake-provider', NODE, [join(HERE, 'fake-main.js'), '--script', JSON.stringify({ chunks: 8, chunkIntervalMs: 1 })], { cpu: place.loadCpu, stdout: 'lines', onStdoutLine: hub.push, stdinPipe: true, critical: true });
  const fakeUrl = await waitForLine(fake, hub.subscribe, (l) => /listening on (http:\/\/\S+)/u.exec(l)?.[1], 10_000);
  const { grpcAddress } = await startControlPlane({ tmp: mkdtempSync(join(tmpdir(), 'sluice-alloc-')), policyYaml: benchPolicyYaml(fakeUrl), cpu: place.loadCpu });
  const [inspectPort] = await freePorts(1);
  const { url } = await startSidecar({ name: 'sluice sidecar', grpcAddress, cpu: place.proxyCpu, nodeFlags: [`--inspect=127.0.0.1:${inspectPort!}`] });
  const open = (durationSec: number, warmupSec: number): Promise<OpenLoopResult> => runLoadgen<OpenLoopResult>({ mode: 'open', origins: [url], path: CHAT_PATH, body, rate: 2000, durationSec, warmupSec, connections: 128 }, place);
  await open(3, 1);
  const dt = await devtools(inspectPort!);
  await dt.call('HeapProfiler.enable');
  await dt.call('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !promotedOnly });
  const r = await open(requests / 2000, 0);
  const profile = (await dt.call('HeapProfiler.stopSampling'))['profile'] as { head: ProfileNode };
  dt.close();
  const n = r.origins[0]?.counts.ok ?? requests;
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (node: ProfileNode): void => {
    const f = node.callFrame;
    const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/.*\/(node_modules|packages)\//u, '$1/')}:${f.lineNumber + 1}`;
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const c of node.children) walk(c);
  };
  walk(profile.head);
  process.stdout.write(`${promotedOnly ? 'promoted' : 'allocated'} bytes per request (sampled, ${n} requests at 2,000 req/s): ${Math.round(total / n)}\n`);
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${String(Math.round(bytes / n)).padStart(7)}  ${site}\n`);
} finally {
  await stopAll();
}
