/**
 * Head to head: this build's sidecar against another build's (for instance a git worktree of an
 * older commit, built), behind the same fake provider and the same control plane, each pinned to
 * the proxy core in turn, closed-loop max throughput in alternating rounds. The bench's ratio to the
 * bare pipe moves with the pipe's own noise; this compares two sidecars on the same machine moments.
 *
 *   node packages/bench/dist/src/ab.js <other packages/sidecar/dist/src/main.js> [rounds] [seconds]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchPolicyYaml, CHAT_PATH, HERE, MODEL, NODE, runLoadgen, SIDECAR_MAIN, startControlPlane, startSidecar } from './harness.js';
import { Child, LineHub, stopAll, waitForLine } from './procs.js';
import type { ClosedLoopResult } from './protocol.js';

const [other, roundsArg, secondsArg] = process.argv.slice(2);
if (other === undefined) {
  process.stderr.write('usage: ab.js <other sidecar main.js> [rounds=4] [seconds=5]\n');
  process.exit(2);
}
const rounds = Number(roundsArg ?? 4);
const seconds = Number(secondsArg ?? 5);
const place = { proxyCpu: 0, loadCpu: 1 };
const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 32 });

try {
  const hub = new LineHub();
  const fake = new Child('fake-provider', NODE, [join(HERE, 'fake-main.js'), '--script', JSON.stringify({ chunks: 8, chunkIntervalMs: 1 })], { cpu: place.loadCpu, stdout: 'lines', onStdoutLine: hub.push, stdinPipe: true, critical: true });
  const fakeUrl = await waitForLine(fake, hub.subscribe, (l) => /listening on (http:\/\/\S+)/u.exec(l)?.[1], 10_000);
  const { grpcAddress } = await startControlPlane({ tmp: mkdtempSync(join(tmpdir(), 'sluice-ab-')), policyYaml: benchPolicyYaml(fakeUrl), cpu: place.loadCpu });
  const builds = { this: SIDECAR_MAIN, other };
  const urls: Record<string, string> = {};
  for (const [name, main] of Object.entries(builds)) urls[name] = (await startSidecar({ name: `sidecar (${name})`, grpcAddress, cpu: place.proxyCpu, main })).url;
  const closed = (origin: string, durationSec: number): Promise<ClosedLoopResult> => runLoadgen<ClosedLoopResult>({ mode: 'closed', origin, path: CHAT_PATH, body, connections: 64, durationSec, warmupSec: 0.5 }, place);
  for (const url of Object.values(urls)) await closed(url, 3); // warm-up
  const rps: Record<string, number[]> = { this: [], other: [] };
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 === 0 ? ['this', 'other'] : ['other', 'this']) rps[name]!.push(Math.round((await closed(urls[name]!, seconds)).rps));
  }
  const mean = (xs: readonly number[]): number => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  process.stdout.write(`req/s per round: this ${rps['this']!.join(', ')}; other ${rps['other']!.join(', ')}\n`);
  process.stdout.write(`mean: this ${mean(rps['this']!)}, other ${mean(rps['other']!)} (${((mean(rps['this']!) / mean(rps['other']!) - 1) * 100).toFixed(1)} %)\n`);
} finally {
  await stopAll();
}
