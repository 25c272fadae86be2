/**
 * What the orchestrator (cp-case.ts) and the sidecar simulator child (cp-sim.ts) tell each other:
 * the job as argv[2] (JSON), commands as JSON lines on the simulator's stdin, events as JSON lines
 * on its stdout.
 */

export interface SimJob {
  /** Control plane gRPC `host:port`. */
  readonly address: string;
  /** Simulated sidecars, one StreamPolicy stream each. */
  readonly streams: number;
  /** Streams multiplexed on one gRPC channel (one TCP connection, HTTP/2 streams). */
  readonly perChannel: number;
  /** Give up on the initial convergence after this long. */
  readonly initialTimeoutMs: number;
}

/** Publish `content` as `file` atomically (write `tmpFile`, rename), then time every stream's next ACK. */
export interface ChangeCommand {
  readonly type: 'change';
  readonly file: string;
  /** Same filesystem as `file`, outside the watched directory. */
  readonly tmpFile: string;
  readonly content: string;
  readonly timeoutMs: number;
}

export type SimCommand = ChangeCommand;

/** Every stream ACKed its first snapshot (or the initial timeout passed). */
export interface InitialEvent {
  readonly type: 'initial';
  readonly streams: number;
  readonly channels: number;
  /** Streams that ACKed a snapshot. */
  readonly acked: number;
  readonly timedOut: boolean;
  /** Per stream, ms from opening the streams to sending its first ACK (ascending). */
  readonly ackMs: number[];
  /** Distinct snapshot versions received, with their encoded size. */
  readonly versions: Array<{ readonly version: string; readonly bytes: number; readonly streams: number }>;
  readonly streamErrors: number;
  readonly firstError?: string;
}

/** Result of one ChangeCommand. */
export interface ChangeEvent {
  readonly type: 'change';
  /** performance.timeOrigin + performance.now() right before the rename (epoch ms, sub-ms). */
  readonly t0EpochMs: number;
  readonly streams: number;
  /** Streams that ACKed a version other than the one they ran at t0. */
  readonly converged: number;
  readonly timedOut: boolean;
  /** Per converged stream, ms from t0 to sending the ACK of its new version (ascending). */
  readonly ackMs: number[];
  /** ms from t0 to the first new PolicyResponse received. */
  readonly firstResponseMs: number;
  /** Distinct new versions received. */
  readonly versions: number;
  /** CPU time the simulator used between t0 and the last ACK (ms). */
  readonly simCpuMs: number;
  readonly streamErrors: number;
  readonly firstError?: string;
}

export type SimEvent = InitialEvent | ChangeEvent;
