import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import type { Snapshot, Workload } from '@sluice/policy';
import { fromWire, preEncoded, sluice, toWire } from '@sluice/protocol';
import type { Authenticator } from './auth.js';
import type { PolicyEngine, WorkloadSnapshot } from './engine.js';
import type { ProgrammedCounts } from './status-view.js';
import { decide, INITIAL_STATE, markSent, type StreamEvent, type StreamState } from './stream-state.js';

import v1 = sluice.v1;

/** What `sluice status` shows of one connected sidecar. */
export interface SidecarInfo {
  readonly id: string;
  readonly pod: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly instanceId: string;
  readonly sidecarVersion: string;
  readonly connectedSince: string;
  readonly versionSent: string;
  readonly versionAcked: string;
  readonly lastNack: { readonly version: string; readonly message: string; readonly resources: readonly { resource: string; code: string; message: string }[]; readonly at: string } | null;
}

interface Conn {
  readonly id: string;
  readonly connectedSince: Date;
  node: v1.Node | undefined;
  workload: Workload | undefined;
  state: StreamState;
  target: WorkloadSnapshot | undefined;
  blocked: boolean;
  lastNack: SidecarInfo['lastNack'];
  /** Feeds an event to the stream's state machine (and sends when it says so). */
  step: (e: StreamEvent) => void;
}

let nonceCounter = 0;
const noncePrefix = randomBytes(4).toString('hex');
const newNonce = (): string => `${noncePrefix}-${(++nonceCounter).toString(36)}`;

/**
 * The StreamPolicy side of the control plane: one state machine per connected sidecar (see
 * stream-state.ts), fed by its requests and by policy changes from the engine. Snapshots are
 * converted to wire messages once per version, not once per stream.
 */
export class PolicyStreams {
  readonly #engine: PolicyEngine;
  readonly #logger: Logger;
  readonly #conns = new Map<string, Conn>();
  /** Per snapshot: its PolicyResponse `snapshot` field, encoded once, sent on every stream. */
  readonly #encoded = new WeakMap<Snapshot, Uint8Array>();
  readonly #onAck = new Set<() => void>();
  #nextId = 0;
  /** Totals for /metrics. */
  readonly counters = { sent: 0, acks: 0, nacks: 0, rejected: 0 };

  readonly #auth: Authenticator | undefined;

  /** Without an authenticator streams are trusted (one-process mode over loopback only). */
  constructor(engine: PolicyEngine, logger: Logger, authenticator?: Authenticator) {
    this.#engine = engine;
    this.#logger = logger;
    this.#auth = authenticator;
    engine.subscribe(() => {
      for (const c of this.#conns.values()) this.#retarget(c);
    });
  }

  /** Listener for ACK/NACK events (status writer, tests, benchmark). */
  onAnswer(listener: () => void): () => void {
    this.#onAck.add(listener);
    return () => this.#onAck.delete(listener);
  }

  /**
   * Per object key: how many connected sidecars the object applies to, how many of those run the
   * current snapshot (ACKed), and the last NACK among them. The status writer turns this into the
   * `Programmed` condition.
   */
  programmed(): ProgrammedCounts {
    const out: ProgrammedCounts = new Map();
    for (const c of this.#conns.values()) {
      const t = c.target;
      if (t === undefined) continue;
      const acked = c.state.ackedVersion === t.snapshot.version;
      const nack = c.state.nackedVersion === t.snapshot.version ? c.state.nackMessage : undefined;
      for (const key of t.objects) {
        const e = out.get(key) ?? { selected: 0, acked: 0, nack: undefined };
        e.selected++;
        if (acked) e.acked++;
        if (nack !== undefined) e.nack = nack;
        out.set(key, e);
      }
    }
    return out;
  }

  sidecars(): SidecarInfo[] {
    return [...this.#conns.values()]
      .filter((c) => c.node !== undefined)
      .map((c) => ({
        id: c.id,
        pod: c.node?.pod ?? '',
        namespace: c.node?.namespace ?? '',
        serviceAccount: c.node?.serviceAccount ?? '',
        instanceId: c.node?.instanceId ?? '',
        sidecarVersion: c.node?.sidecarVersion ?? '',
        connectedSince: c.connectedSince.toISOString(),
        versionSent: c.state.sentVersion,
        versionAcked: c.state.ackedVersion,
        lastNack: c.lastNack,
      }));
  }

  /** The grpc-js handler for `StreamPolicy`. */
  readonly handle = (call: grpc.ServerDuplexStream<v1.PolicyRequest, v1.PolicyResponse>): void => {
    const conn: Conn = { id: String(++this.#nextId), connectedSince: new Date(), node: undefined, workload: undefined, state: INITIAL_STATE, target: undefined, blocked: false, lastNack: null, step: () => undefined };
    this.#conns.set(conn.id, conn);
    const send = (): void => {
      const t = conn.target;
      if (t === undefined || conn.blocked) return;
      let body = this.#encoded.get(t.snapshot);
      if (body === undefined) {
        body = v1.PolicyResponse.encode({ snapshot: toWire(v1.Snapshot, t.snapshot) }).finish();
        this.#encoded.set(t.snapshot, body);
      }
      const nonce = newNonce();
      conn.state = markSent(conn.state, t.snapshot.version, nonce);
      this.counters.sent++;
      const head = v1.PolicyResponse.encode({ version: t.snapshot.version, nonce }).finish();
      const ok = call.write(preEncoded<v1.PolicyResponse>(Buffer.concat([head, body])));
      if (!ok) {
        // Flow control: nothing more is written to this stream until the transport drains; then
        // the state machine is asked again (a send it wanted meanwhile happens now).
        conn.blocked = true;
        call.once('drain', () => {
          conn.blocked = false;
          conn.step({ type: 'target' });
        });
      }
    };
    const step = (e: StreamEvent): void => {
      const d = decide(conn.state, e, conn.target?.snapshot.version ?? '');
      conn.state = d.state;
      if (d.send) send();
    };
    conn.step = step;
    let rejected = false;
    const reject = (code: GrpcStatus, message: string): void => {
      rejected = true;
      this.counters.rejected++;
      this.#logger.warn({ conn: conn.id, code: GrpcStatus[code] }, `policy stream rejected: ${message}`);
      // grpc-js ends a server stream with this status when 'error' is emitted on the call.
      call.emit('error', Object.assign(new Error(message), { code, details: message }));
      this.#conns.delete(conn.id);
    };
    // Requests are handled in order; the first one may wait for token verification.
    let chain: Promise<void> = Promise.resolve();
    call.on('data', (req: v1.PolicyRequest) => {
      chain = chain
        .then(() => (rejected ? undefined : this.#onRequest(call, conn, req, reject, step)))
        .catch((e: unknown) => this.#logger.error({ err: e, conn: conn.id }, 'policy stream failure'));
    });
    const done = (): void => {
      if (!this.#conns.delete(conn.id)) return;
      if (conn.node) this.#logger.info({ conn: conn.id, pod: conn.node.pod }, 'sidecar disconnected');
      for (const l of this.#onAck) l();
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  };

  async #onRequest(
    call: grpc.ServerDuplexStream<v1.PolicyRequest, v1.PolicyResponse>,
    conn: Conn,
    req: v1.PolicyRequest,
    reject: (code: GrpcStatus, message: string) => void,
    step: (e: StreamEvent) => void,
  ): Promise<void> {
    const first = conn.node === undefined;
    if (first) {
      const node = req.node;
      if (node === null || node === undefined || !node.namespace) {
        reject(GrpcStatus.INVALID_ARGUMENT, 'the first PolicyRequest must carry node with a namespace');
        return;
      }
      const serviceAccount = node.serviceAccount || 'default';
      if (this.#auth !== undefined) {
        const header = call.metadata.get('authorization')[0];
        const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;
        const r = await this.#auth.authenticate(token, { namespace: node.namespace, serviceAccount, pod: node.pod ?? '' });
        if (!r.ok) {
          reject(r.reason === 'denied' ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.UNAUTHENTICATED, r.message);
          return;
        }
      }
      conn.node = node as v1.Node;
      const workload: Workload = { namespace: node.namespace, serviceAccount, labels: { ...node.labels } };
      conn.workload = workload;
      conn.target = this.#engine.snapshotFor(workload);
      this.#logger.info({ conn: conn.id, pod: node.pod, namespace: node.namespace, version: req.versionInfo }, 'sidecar connected');
    }
    const err = req.errorDetail;
    const nack = err !== null && err !== undefined;
    if (nack && !first && req.responseNonce === conn.state.sentNonce) {
      const detail = fromWire<{ message: string; resources: { resource: string; code: string; message: string }[] }>(v1.PolicyError, err);
      conn.lastNack = { version: conn.state.sentVersion, message: detail.message, resources: detail.resources, at: new Date().toISOString() };
      this.counters.nacks++;
      this.#logger.warn({ conn: conn.id, pod: conn.node?.pod, version: conn.state.sentVersion, resources: detail.resources }, `sidecar NACKed policy: ${detail.message}`);
    }
    if (!first && !nack && req.responseNonce === conn.state.sentNonce) this.counters.acks++;
    step({ type: 'request', first, versionInfo: req.versionInfo, nonce: req.responseNonce, error: nack ? err.message || 'NACK' : undefined });
    if (!first) for (const l of this.#onAck) l();
  }

  #retarget(c: Conn): void {
    if (c.workload === undefined) return;
    c.target = this.#engine.snapshotFor(c.workload);
    c.step({ type: 'target' });
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    this.#conns.clear();
  }
}
