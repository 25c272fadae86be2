/**
 * The per-stream state of a StreamPolicy connection and the pure decision of what to do on each
 * event. State of the world: every response carries the whole snapshot for the sidecar's workload,
 * its version (content hash) and a fresh nonce; the sidecar answers with an ACK (version + nonce) or
 * a NACK (nonce + error). One response is outstanding at a time per stream; changes that happen
 * meanwhile are coalesced into the next response.
 */
export interface StreamState {
  /** Version last sent, and its nonce; '' before the first send. */
  readonly sentVersion: string;
  readonly sentNonce: string;
  /** A response is outstanding (sent, not yet ACKed/NACKed). */
  readonly awaiting: boolean;
  /** Version the sidecar reports it runs ('' = none). */
  readonly ackedVersion: string;
  /** Last version refused by the sidecar and why (not sent again). */
  readonly nackedVersion: string;
  readonly nackMessage: string;
}

export const INITIAL_STATE: StreamState = Object.freeze({ sentVersion: '', sentNonce: '', awaiting: false, ackedVersion: '', nackedVersion: '', nackMessage: '' });

export type StreamEvent =
  /** A request from the sidecar. `first`: the first request of this stream. */
  | { readonly type: 'request'; readonly first: boolean; readonly versionInfo: string; readonly nonce: string; readonly error: string | undefined }
  /** The snapshot for this stream's workload changed (or was computed). */
  | { readonly type: 'target' };

export interface Decision {
  readonly state: StreamState;
  /** Send the current target snapshot now (with a fresh nonce, recorded by `markSent`). */
  readonly send: boolean;
  /** Why: for logs and table tests. */
  readonly reason: string;
}

function wantsSend(s: StreamState, target: string): boolean {
  return target !== '' && !s.awaiting && target !== s.ackedVersion && target !== s.nackedVersion && target !== s.sentVersion;
}

/**
 * Pure: given the stream's state, an event, and the version the stream should run (`target`, ''
 * when no snapshot is ready yet), returns the new state and whether to send.
 */
export function decide(s: StreamState, e: StreamEvent, target: string): Decision {
  if (e.type === 'target') {
    if (s.awaiting) return { state: s, send: false, reason: 'coalesced: a response is outstanding' };
    if (target === '' || target === s.ackedVersion) return { state: s, send: false, reason: 'sidecar already runs the target' };
    if (target === s.nackedVersion) return { state: s, send: false, reason: 'target was NACKed; waiting for a change' };
    return { state: s, send: target !== s.sentVersion, reason: 'new target' };
  }
  if (e.first) {
    // (Re)connect: the sidecar tells which version it still runs (from memory or disk).
    const state: StreamState = { ...INITIAL_STATE, ackedVersion: e.versionInfo };
    if (target === '') return { state, send: false, reason: 'first request: no snapshot yet' };
    if (e.versionInfo === target) return { state, send: false, reason: 'reconnect: sidecar already runs the target' };
    return { state, send: true, reason: 'first request' };
  }
  if (!s.awaiting || e.nonce !== s.sentNonce) return { state: s, send: false, reason: 'stale nonce: ignored' };
  if (e.error !== undefined) {
    const state: StreamState = { ...s, awaiting: false, nackedVersion: s.sentVersion, nackMessage: e.error, ackedVersion: e.versionInfo };
    return { state, send: wantsSend(state, target), reason: 'NACK' };
  }
  const state: StreamState = { ...s, awaiting: false, ackedVersion: e.versionInfo, nackedVersion: '', nackMessage: '' };
  return { state, send: wantsSend(state, target), reason: 'ACK' };
}

/** State after sending `version` with `nonce`. */
export function markSent(s: StreamState, version: string, nonce: string): StreamState {
  return { ...s, sentVersion: version, sentNonce: nonce, awaiting: true };
}
