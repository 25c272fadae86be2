import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotLimit } from '@sluice/policy';
import { LocalLimiter, type Amounts, type WindowFn } from './local.js';

// Epoch-aligned fixed windows (the real `windowOf` lives in @sluice/policy and is tested there).
const LEN: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 2_592_000_000 };
const fixed: WindowFn = (window, _cal, _tz, now) => {
  const len = LEN[window] ?? 1000;
  const i = Math.floor(now / len);
  return { startMs: i * len, endMs: (i + 1) * len, id: `${len / 1000}:${i}` };
};

const limit = (id: string, unit: string, max: number, over: Partial<SnapshotLimit> = {}): SnapshotLimit => ({
  id,
  unit,
  window: 'minute',
  calendarAligned: false,
  timeZone: 'UTC',
  max,
  key: [],
  scope: 'local',
  failureMode: 'FailClosed',
  mode: 'enforce',
  routes: [],
  models: [],
  ...over,
});
const amt = (inputTokens: number, outputTokens: number, microUSD = 0): Amounts => ({ requests: 1, inputTokens, outputTokens, microUSD });
const T0 = 1_800_000_000_000; // a minute boundary

test('local: requests limit denies the (max+1)th request with retry-after to the window end', () => {
  const l = new LocalLimiter(fixed);
  const rpm = limit('ns/rpm', 'requests', 3);
  for (let i = 0; i < 3; i++) assert.equal(l.reserve([{ limit: rpm, key: 'u=a' }], amt(1, 1), T0 + 1000).ok, true);
  const r = l.reserve([{ limit: rpm, key: 'u=a' }], amt(1, 1), T0 + 15_000);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.limitId, 'ns/rpm');
  assert.equal(r.retryAfterMs, 45_000);
  assert.equal(r.remaining, 0);
  assert.equal(r.limit, 3);
  assert.equal(l.reserve([{ limit: rpm, key: 'u=b' }], amt(1, 1), T0 + 15_000).ok, true, 'other keys have their own counter');
  assert.equal(l.reserve([{ limit: rpm, key: 'u=a' }], amt(1, 1), T0 + 60_000).ok, true, 'next window');
});

test('local: all-or-nothing across hierarchical limits', () => {
  const l = new LocalLimiter(fixed);
  const team = limit('ns/team', 'tokens', 1000);
  const user = limit('ns/user', 'tokens', 300);
  const both = (key: string) => [{ limit: team, key: 'team=s' }, { limit: user, key }];
  assert.equal(l.reserve(both('u=a'), amt(100, 200), T0).ok, true);
  const denied = l.reserve(both('u=a'), amt(100, 200), T0);
  assert.equal(denied.ok, false);
  assert.equal(!denied.ok && denied.limitId, 'ns/user');
  assert.deepEqual(l.remaining(team, 'team=s', T0), { limit: 1000, remaining: 700, resetMs: T0 + 60_000 }, 'the team limit was not charged for the denied request');
  assert.equal(l.reserve(both('u=b'), amt(100, 200), T0).ok, true);
  assert.equal(l.reserve(both('u=c'), amt(100, 200), T0).ok, true);
  const teamDenied = l.reserve(both('u=d'), amt(100, 200), T0);
  assert.equal(!teamDenied.ok && teamDenied.limitId, 'ns/team');
  assert.equal(l.remaining(user, 'u=d', T0).remaining, 300);
});

test('local: settle replaces the reservation; undercount becomes debt; never negative', () => {
  const l = new LocalLimiter(fixed);
  const tok = limit('ns/tok', 'outputTokens', 1000);
  const usd = limit('ns/usd', 'microUSD', 5000);
  const rpm = limit('ns/rpm', 'requests', 10);
  const m = [{ limit: tok, key: '' }, { limit: usd, key: '' }, { limit: rpm, key: '' }];
  const r = l.reserve(m, amt(10, 800, 4000), T0);
  assert.ok(r.ok);
  assert.equal(l.remaining(tok, '', T0).remaining, 200);
  l.settle(r.reservation, { inputTokens: 10, outputTokens: 50, microUSD: 300 });
  assert.equal(l.remaining(tok, '', T0).remaining, 950);
  assert.equal(l.remaining(usd, '', T0).remaining, 4700);
  assert.equal(l.remaining(rpm, '', T0).remaining, 9, 'requests stay counted');
  l.settle(r.reservation, { inputTokens: 0, outputTokens: 0, microUSD: 0 });
  assert.equal(l.remaining(tok, '', T0).remaining, 950, 'settle is idempotent');
  // Undercount: reserved 100, used 1200 → debt; the window is exhausted and stays so.
  const r2 = l.reserve(m, amt(0, 100, 10), T0);
  assert.ok(r2.ok);
  l.settle(r2.reservation, { inputTokens: 0, outputTokens: 1200, microUSD: 10 });
  assert.equal(l.remaining(tok, '', T0).remaining, 0);
  const r3 = l.reserve(m, amt(0, 0, 0), T0);
  assert.equal(!r3.ok && r3.limitId, 'ns/tok', 'exhausted credit denies even a zero-sized reservation');
  // Cancel returns everything, requests included.
  const before = l.remaining(rpm, '', T0).remaining;
  const r4 = l.reserve([{ limit: rpm, key: '' }, { limit: usd, key: '' }], amt(0, 0, 100), T0);
  assert.ok(r4.ok);
  l.cancel(r4.reservation);
  assert.equal(l.remaining(rpm, '', T0).remaining, before);
  // Settling after the window rolled over is a no-op (and never negative).
  const r5 = l.reserve([{ limit: usd, key: 'k' }], amt(0, 0, 100), T0 + 59_000);
  assert.ok(r5.ok);
  assert.equal(l.reserve([{ limit: usd, key: 'k' }], amt(0, 0, 1), T0 + 60_000).ok, true);
  l.settle(r5.reservation, { inputTokens: 0, outputTokens: 0, microUSD: 0 });
  assert.equal(l.remaining(usd, 'k', T0 + 60_000).remaining, 4999);
});

test('local: shadow limits count and report but never deny', () => {
  const l = new LocalLimiter(fixed);
  const shadow = limit('ns/shadow', 'requests', 1, { mode: 'shadow' });
  const real = limit('ns/real', 'requests', 100);
  const m = [{ limit: shadow, key: '' }, { limit: real, key: '' }];
  const a = l.reserve(m, amt(0, 0), T0);
  assert.ok(a.ok);
  assert.deepEqual(a.shadowDenied, []);
  const b = l.reserve(m, amt(0, 0), T0);
  assert.ok(b.ok);
  assert.deepEqual(b.shadowDenied.map((d) => d.limitId), ['ns/shadow']);
  assert.equal(l.remaining(real, '', T0).remaining, 98);
});

test('local: maxOutputTokens when only the reserved output tokens deny', () => {
  const l = new LocalLimiter(fixed);
  const tok = limit('ns/tok', 'tokens', 1000);
  const out = limit('ns/out', 'outputTokens', 700);
  const m = [{ limit: tok, key: '' }, { limit: out, key: '' }];
  const r = l.reserve(m, amt(400, 4096), T0);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.maxOutputTokens, 600);
  const clamped = l.reserve(m, amt(400, 600), T0);
  assert.equal(clamped.ok, true);
  const none = l.reserve(m, amt(400, 10), T0);
  assert.equal(!none.ok && none.maxOutputTokens, undefined, 'input alone does not fit');
  const rpm = limit('ns/rpm', 'requests', 0);
  const byRequests = new LocalLimiter(fixed).reserve([{ limit: rpm, key: '' }, { limit: tok, key: '' }], amt(1, 5000), T0);
  assert.equal(!byRequests.ok && byRequests.maxOutputTokens, undefined, 'a non-token denial cannot be clamped away');
});

test('local: the denial with the longest wait is reported', () => {
  const l = new LocalLimiter(fixed);
  const perMinute = limit('ns/m', 'requests', 0);
  const perHour = limit('ns/h', 'requests', 0, { window: 'hour' });
  const r = l.reserve([{ limit: perMinute, key: '' }, { limit: perHour, key: '' }], amt(0, 0), T0 + 1000);
  assert.equal(!r.ok && r.limitId, 'ns/h');
  assert.equal(!r.ok && r.denials.length, 2);
});

test('local: a changed window spec starts a fresh counter', () => {
  const l = new LocalLimiter(fixed);
  assert.ok(l.reserve([{ limit: limit('ns/x', 'requests', 1), key: '' }], amt(0, 0), T0).ok);
  assert.ok(l.reserve([{ limit: limit('ns/x', 'requests', 1, { window: 'hour' }), key: '' }], amt(0, 0), T0).ok);
});

test('local: rejects non-integer amounts', () => {
  const l = new LocalLimiter(fixed);
  assert.throws(() => l.reserve([], amt(1.5, 0), T0), RangeError);
  assert.throws(() => l.reserve([], amt(-1, 0), T0), RangeError);
});

test('local: memory stays bounded with many keys over many windows', () => {
  const l = new LocalLimiter(fixed);
  const perSecond = limit('ns/s', 'requests', 5, { window: 'second' });
  const perMinute = limit('ns/m', 'tokens', 1_000_000);
  let peak = 0;
  for (let w = 0; w < 200; w++) {
    for (let k = 0; k < 500; k++) {
      const now = T0 + w * 1000 + k;
      const r = l.reserve([{ limit: perSecond, key: `u=${w}-${k}` }, { limit: perMinute, key: `t=${k % 10}` }], amt(1, 1), now);
      assert.ok(r.ok);
    }
    peak = Math.max(peak, l.size);
  }
  assert.ok(peak <= 500 + 10, `peak ${peak}`);
  l.prune(T0 + 10 * 60_000);
  assert.equal(l.size, 0);
});
