/**
 * Sidecar simulator of the control-plane case: N StreamPolicy streams in one process, each speaking
 * the sidecar's side of the protocol (packages/sidecar/src/control-client.ts) without building a
 * runtime: first request with `node` and an empty `versionInfo`, then an ACK {version, nonce} for
 * every PolicyResponse. grpc-js decodes each response (protobuf) before it is handed over; the
 * simulator checks the snapshot is there and carries the announced version.
 *
 *   node cp-sim.js '<SimJob JSON>'
 *
 * Streams are spread over ceil(N / perChannel) gRPC channels, each with its own TCP connection
 * (local subchannel pool). Commands arrive as JSON lines on stdin (see cp-protocol.ts); events leave
 * as JSON lines on stdout. Exits when stdin closes (the orchestrator went away) or on SIGTERM.
 *
 * Timing: the simulator itself publishes each change (rename into the policy directory), so t0 and
 * every ACK time come from the same clock (performance.now()).
 */
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { ControlClient, sluice, type ControlCall } from '@sluice/protocol';
import type { ChangeCommand, ChangeEvent, InitialEvent, SimCommand, SimEvent, SimJob } from './cp-protocol.js';
import { podIdentity } from './cp-policy.js';

import v1 = sluice.v1;

const job = JSON.parse(process.argv[2] ?? '{}') as SimJob;
if (!(job.streams > 0) || !(job.perChannel > 0) || typeof job.address !== 'string') {
  process.stderr.write('usage: cp-sim.js \'{"address":"127.0.0.1:PORT","streams":1000,"perChannel":100,"initialTimeoutMs":30000}\'\n');
  process.exit(2);
}

function emit(e: SimEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

const round2 = (ms: number): number => Math.round(ms * 100) / 100;

interface SimStream {
  readonly call: ControlCall<v1.PolicyRequest.$Properties, v1.PolicyResponse>;
  /** Version last ACKed ('' = none). */
  version: string;
  /** ms from opening to the first ACK; NaN until then. */
  firstAckMs: number;
  /** Version at the start of the current change, and ms from t0 to the ACK of the next one. */
  baseVersion: string;
  changeAckMs: number;
}

interface Measure {
  readonly t0: number;
  readonly t0EpochMs: number;
  readonly cpu0: NodeJS.CpuUsage;
  readonly timer: NodeJS.Timeout;
  readonly versions: Set<string>;
  converged: number;
  firstResponseMs: number;
}

let stopping = false;
let streamErrors = 0;
let firstError: string | undefined;
const noteError = (msg: string): void => {
  streamErrors++;
  firstError ??= msg;
};

const channels = Math.ceil(job.streams / job.perChannel);
const clients = Array.from(
  { length: channels },
  () =>
    new ControlClient(job.address, grpc.credentials.createInsecure(), {
      // Own TCP connection per channel (grpc-js would otherwise share one subchannel per address).
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    }),
);

const streams: SimStream[] = [];
/** version → encoded size and how many streams first ACKed it. */
const initialVersions = new Map<string, { bytes: number; streams: number }>();
let initialAcked = 0;
let initialDone = false;
let measure: Measure | undefined;
const openedAt = performance.now();

function finishInitial(timedOut: boolean): void {
  if (initialDone) return;
  initialDone = true;
  clearTimeout(initialTimer);
  const ackMs = streams.map((s) => s.firstAckMs).filter((x) => !Number.isNaN(x));
  ackMs.sort((a, b) => a - b);
  const e: InitialEvent = {
    type: 'initial',
    streams: job.streams,
    channels,
    acked: initialAcked,
    timedOut,
    ackMs: ackMs.map(round2),
    versions: [...initialVersions].map(([version, v]) => ({ version, bytes: v.bytes, streams: v.streams })),
    streamErrors,
    ...(firstError === undefined ? {} : { firstError }),
  };
  emit(e);
}

function finishChange(timedOut: boolean): void {
  const m = measure;
  if (m === undefined) return;
  measure = undefined;
  clearTimeout(m.timer);
  const cpu = process.cpuUsage(m.cpu0);
  const ackMs = streams.map((s) => s.changeAckMs).filter((x) => !Number.isNaN(x));
  ackMs.sort((a, b) => a - b);
  const e: ChangeEvent = {
    type: 'change',
    t0EpochMs: m.t0EpochMs,
    streams: job.streams,
    converged: m.converged,
    timedOut,
    ackMs: ackMs.map(round2),
    firstResponseMs: round2(m.firstResponseMs),
    versions: m.versions.size,
    simCpuMs: round2((cpu.user + cpu.system) / 1000),
    streamErrors,
    ...(firstError === undefined ? {} : { firstError }),
  };
  emit(e);
}

function onResponse(s: SimStream, res: v1.PolicyResponse): void {
  const snap = res.snapshot;
  if (snap === null || snap === undefined || snap.version !== res.version) {
    // What a sidecar would NACK; the benchmark's policy never produces it.
    noteError(`response ${res.version} without a matching snapshot`);
    s.call.write({ versionInfo: s.version, responseNonce: res.nonce, errorDetail: { message: 'snapshot missing or version mismatch' } });
    return;
  }
  s.call.write({ versionInfo: res.version, responseNonce: res.nonce });
  const now = performance.now();
  s.version = res.version;
  if (Number.isNaN(s.firstAckMs)) {
    s.firstAckMs = now - openedAt;
    const v = initialVersions.get(res.version);
    if (v === undefined) initialVersions.set(res.version, { bytes: v1.Snapshot.encode(snap).finish().length, streams: 1 });
    else v.streams++;
    initialAcked++;
    if (initialAcked === job.streams) finishInitial(false);
  }
  const m = measure;
  if (m !== undefined && Number.isNaN(s.changeAckMs) && res.version !== s.baseVersion) {
    s.changeAckMs = now - m.t0;
    if (m.versions.size === 0) m.firstResponseMs = now - m.t0;
    m.versions.add(res.version);
    m.converged++;
    if (m.converged === job.streams) finishChange(false);
  }
}

for (let i = 0; i < job.streams; i++) {
  const client = clients[Math.floor(i / job.perChannel)];
  if (client === undefined) throw new Error('channel index out of range');
  const call = client.streamPolicy();
  const s: SimStream = { call, version: '', firstAckMs: NaN, baseVersion: '', changeAckMs: NaN };
  streams.push(s);
  const id = podIdentity(i);
  call.write({
    node: { ...id, instanceId: randomBytes(8).toString('hex'), sidecarVersion: '0.1.0' },
    versionInfo: '',
    responseNonce: '',
  });
  call.on('data', (res: v1.PolicyResponse) => onResponse(s, res));
  call.on('error', (e: Error) => {
    if (!stopping) noteError(`stream ${i}: ${e.message}`);
  });
  call.on('end', () => {
    if (!stopping) noteError(`stream ${i}: ended by the control plane`);
  });
}

const initialTimer = setTimeout(() => finishInitial(true), job.initialTimeoutMs);

function startChange(cmd: ChangeCommand): void {
  if (measure !== undefined) finishChange(true);
  for (const s of streams) {
    s.baseVersion = s.version;
    s.changeAckMs = NaN;
  }
  writeFileSync(cmd.tmpFile, cmd.content);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measure = {
    t0,
    t0EpochMs: performance.timeOrigin + t0,
    cpu0,
    timer: setTimeout(() => finishChange(true), cmd.timeoutMs),
    versions: new Set(),
    converged: 0,
    firstResponseMs: NaN,
  };
  renameSync(cmd.tmpFile, cmd.file);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  const cmd = JSON.parse(line) as SimCommand;
  if (cmd.type === 'change') startChange(cmd);
});

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const s of streams) s.call.cancel();
  for (const c of clients) c.close();
  setTimeout(() => process.exit(code), 200).unref();
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
process.stdin.on('end', () => stop(0));
process.stdin.on('error', () => stop(1));
