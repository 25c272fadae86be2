import { test } from 'node:test';
import assert from 'node:assert/strict';
import type LongClass from 'long';
import protobuf from 'protobufjs/minimal.js';
import { sluice } from '#gen/sluice.js';
import { fromWire, toWire } from './convert.js';
import { sampleSnapshot } from '../test/sample-snapshot.js';

// The Long implementation protobufjs uses at runtime (the `long` package), typed as such.
const Long = protobuf.util.Long as unknown as typeof LongClass;
const { Snapshot, ModelPrice, Target, PolicyRequest, QuotaRequest, UsageBatch } = sluice.v1;

test('a Snapshot plain object round-trips through encode → decode → plain', () => {
  const plain = sampleSnapshot();
  const bytes = Snapshot.encode(toWire(Snapshot, plain)).finish();
  const back = fromWire(Snapshot, Snapshot.decode(bytes));
  assert.deepStrictEqual(back, plain);
});

test('proto3 optional fields: unset reads back as undefined, set-to-empty as ""', () => {
  const back = fromWire<ReturnType<typeof sampleSnapshot>>(Snapshot, Snapshot.decode(Snapshot.encode(toWire(Snapshot, sampleSnapshot())).finish()));
  const targets = back.rules[0]?.targets as Array<{ backend: string; modelOverride?: string }> | undefined;
  assert.ok(targets);
  assert.equal(targets[0]?.modelOverride, undefined);
  assert.equal(Object.hasOwn(targets[0] ?? {}, 'modelOverride'), false);
  assert.equal(targets[1]?.modelOverride, 'claude-sonnet-4-5');
  assert.equal(targets[2]?.modelOverride, '');
  // And directly on a Target message.
  assert.deepStrictEqual(fromWire(Target, Target.decode(Target.encode({ backend: 'b' }).finish())), { backend: 'b', weight: 0 });
});

test('unset fields come back as defaults; unset messages as null; unset oneof members are absent', () => {
  assert.deepStrictEqual(fromWire(Snapshot, Snapshot.decode(new Uint8Array())), {
    version: '',
    backends: [],
    rules: [],
    limits: [],
    caches: [],
    guardrails: [],
  });
  assert.deepStrictEqual(fromWire(PolicyRequest, PolicyRequest.decode(new Uint8Array())), {
    node: null,
    versionInfo: '',
    responseNonce: '',
    errorDetail: null,
  });
  const quota = fromWire(QuotaRequest, QuotaRequest.decode(QuotaRequest.encode({ release: { leaseId: 'l1', unused: 3 } }).finish()));
  assert.deepStrictEqual(quota, { release: { leaseId: 'l1', unused: 3, limitId: '', key: '', windowId: '' } });
});

test('int64/uint64 become exact JS numbers; values beyond Number.MAX_SAFE_INTEGER throw', () => {
  const safe = ModelPrice.decode(ModelPrice.encode(toWire(ModelPrice, { input: Number.MAX_SAFE_INTEGER, output: Number.MIN_SAFE_INTEGER })).finish());
  assert.deepStrictEqual(fromWire(ModelPrice, safe), {
    input: Number.MAX_SAFE_INTEGER,
    cachedInput: 0,
    cacheWrite: 0,
    output: Number.MIN_SAFE_INTEGER,
    reasoning: 0,
  });

  // Values a peer with real 64-bit integers may send.
  const tooBig = ModelPrice.decode(ModelPrice.encode({ cachedInput: Long.fromString('9007199254740993') }).finish());
  assert.throws(() => fromWire(ModelPrice, tooBig), (err: unknown) => {
    assert.ok(err instanceof RangeError);
    assert.match(err.message, /sluice\.v1\.ModelPrice\.cachedInput: 64-bit value 9007199254740993/);
    return true;
  });
  const tooSmall = ModelPrice.decode(ModelPrice.encode({ output: -(2 ** 53) }).finish());
  assert.throws(() => fromWire(ModelPrice, tooSmall), RangeError);

  // uint64 at the top of its range; int64 above 2^32 inside a repeated message.
  const batch = UsageBatch.decode(UsageBatch.encode({ reporterEpoch: 'e', seq: Long.MAX_UNSIGNED_VALUE }).finish());
  assert.throws(() => fromWire(UsageBatch, batch), /UsageBatch\.seq: 64-bit value 18446744073709551615/);
  const usage = UsageBatch.decode(UsageBatch.encode(toWire(UsageBatch, { reporterEpoch: 'e', seq: 7, records: [{ costMicros: 2 ** 40 }] })).finish());
  assert.equal(fromWire<{ seq: number; records: { costMicros: number }[] }>(UsageBatch, usage).records[0]?.costMicros, 2 ** 40);
});

test('toWire refuses wrongly typed fields instead of coercing them', () => {
  assert.throws(() => toWire(Snapshot, { limits: [{ max: '10' }] }), /sluice\.v1\.Snapshot: limits\.max: integer\|Long expected/);
  assert.throws(() => toWire(ModelPrice, { input: 1.5 }), TypeError);
  assert.throws(() => toWire(Target, { backend: 1 }), /backend: string expected/);
  assert.throws(() => toWire(Snapshot, { backends: [{ headers: { a: 1 } }] }), TypeError);
});

test('pre-encoded parts concatenate into one valid PolicyResponse', async () => {
  const { sluice: s } = await import('./index.js');
  const body = s.v1.PolicyResponse.encode({ snapshot: { version: 'v9', backends: [{ id: 'ns/b', provider: 'openai' }] } }).finish();
  const head = s.v1.PolicyResponse.encode({ version: 'v9', nonce: 'n1' }).finish();
  const decoded = s.v1.PolicyResponse.decode(Buffer.concat([head, body]));
  assert.equal(decoded.version, 'v9');
  assert.equal(decoded.nonce, 'n1');
  assert.equal(decoded.snapshot?.backends?.[0]?.id, 'ns/b');
});
