import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, INITIAL_STATE, markSent, type StreamEvent, type StreamState } from './stream-state.js';

const req = (versionInfo: string, nonce: string, error?: string, first = false): StreamEvent => ({ type: 'request', first, versionInfo, nonce, error });
const first = (versionInfo = ''): StreamEvent => req(versionInfo, '', undefined, true);
const target: StreamEvent = { type: 'target' };
const sent = (v: string, n: string, base: Partial<StreamState> = {}): StreamState => markSent({ ...INITIAL_STATE, ...base }, v, n);

const table: Array<{ name: string; state: StreamState; event: StreamEvent; target: string; send: boolean; expect?: Partial<StreamState> }> = [
  { name: 'first request, snapshot ready', state: INITIAL_STATE, event: first(), target: 'v1', send: true },
  { name: 'first request, no snapshot yet', state: INITIAL_STATE, event: first(), target: '', send: false },
  { name: 'reconnect with the current version', state: INITIAL_STATE, event: first('v1'), target: 'v1', send: false, expect: { ackedVersion: 'v1' } },
  { name: 'reconnect with an old version', state: INITIAL_STATE, event: first('v0'), target: 'v1', send: true, expect: { ackedVersion: 'v0' } },
  { name: 'first request resets an old stream state', state: sent('v1', 'n1'), event: first('v1'), target: 'v2', send: true, expect: { awaiting: false, sentNonce: '' } },
  { name: 'ACK of the outstanding response', state: sent('v1', 'n1'), event: req('v1', 'n1'), target: 'v1', send: false, expect: { ackedVersion: 'v1', awaiting: false } },
  { name: 'ACK while the target moved on: send the new one', state: sent('v1', 'n1'), event: req('v1', 'n1'), target: 'v2', send: true, expect: { ackedVersion: 'v1' } },
  { name: 'stale nonce is ignored', state: sent('v2', 'n2', { ackedVersion: 'v1' }), event: req('v1', 'n1'), target: 'v2', send: false, expect: { awaiting: true, ackedVersion: 'v1' } },
  { name: 'answer with no response outstanding is ignored', state: { ...INITIAL_STATE, ackedVersion: 'v1' }, event: req('v1', 'n9'), target: 'v1', send: false },
  { name: 'NACK keeps the old version and is not resent', state: sent('v2', 'n2', { ackedVersion: 'v1' }), event: req('v1', 'n2', 'bad regex'), target: 'v2', send: false, expect: { ackedVersion: 'v1', nackedVersion: 'v2', nackMessage: 'bad regex', awaiting: false } },
  { name: 'NACK while the target moved on: send the new one', state: sent('v2', 'n2', { ackedVersion: 'v1' }), event: req('v1', 'n2', 'bad'), target: 'v3', send: true },
  { name: 'ACK clears an earlier NACK', state: sent('v3', 'n3', { nackedVersion: 'v2', nackMessage: 'bad' }), event: req('v3', 'n3'), target: 'v3', send: false, expect: { nackedVersion: '', nackMessage: '' } },
  { name: 'target change while a response is outstanding is coalesced', state: sent('v1', 'n1'), event: target, target: 'v2', send: false },
  { name: 'target change when idle', state: { ...INITIAL_STATE, ackedVersion: 'v1' }, event: target, target: 'v2', send: true },
  { name: 'target change back to the acked version', state: { ...INITIAL_STATE, ackedVersion: 'v1' }, event: target, target: 'v1', send: false },
  { name: 'target change to the NACKed version is not resent', state: { ...INITIAL_STATE, ackedVersion: 'v1', nackedVersion: 'v2' }, event: target, target: 'v2', send: false },
];

for (const row of table) {
  test(row.name, () => {
    const d = decide(row.state, row.event, row.target);
    assert.equal(d.send, row.send, d.reason);
    for (const [k, v] of Object.entries(row.expect ?? {})) assert.equal(d.state[k as keyof StreamState], v, k);
  });
}
