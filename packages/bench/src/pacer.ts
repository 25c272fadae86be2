/**
 * Worker thread of the open-loop generator: wakes up at each request's scheduled time (Atomics.wait
 * sleeps with sub-millisecond precision, unlike timers, without spinning) and tells the main thread
 * how many requests are due. The main thread only sends; it never waits on a timer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PacerData } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('pacer.js must run as a worker thread');
const { t0Ns, intervalNs, total } = workerData as PacerData;
const cell = new Int32Array(new SharedArrayBuffer(4));
const now = (): number => Number(process.hrtime.bigint());

let posted = 0;
while (posted < total) {
  // Every request whose scheduled time has come: index i is due at t0 + i * interval.
  const due = Math.min(total, Math.floor((now() - t0Ns) / intervalNs) + 1);
  if (due > posted) {
    port.postMessage(due);
    posted = due;
    continue;
  }
  const waitMs = (t0Ns + posted * intervalNs - now()) / 1e6;
  if (waitMs > 0) Atomics.wait(cell, 0, 0, waitMs);
}
port.close();
