import { test } from 'node:test';
import assert from 'node:assert/strict';
import { windowOf, type WindowName } from './window.js';

const t = (iso: string): number => Date.parse(iso);
const H = 3600_000;

const table: Array<{ name: string; window: WindowName; cal: boolean; tz: string; now: string; start: string; end: string; id: string; hours?: number }> = [
  // fixed, epoch-aligned
  { name: 'fixed second', window: 'second', cal: false, tz: 'UTC', now: '2026-11-23T10:11:12.345Z', start: '2026-11-23T10:11:12.000Z', end: '2026-11-23T10:11:13.000Z', id: `1:${Math.floor(t('2026-11-23T10:11:12.345Z') / 1000)}` },
  { name: 'fixed minute', window: 'minute', cal: false, tz: 'UTC', now: '2026-05-03T09:20:00.000Z', start: '2026-05-03T09:20:00.000Z', end: '2026-05-03T09:21:00.000Z', id: '60:29630000' },
  { name: 'fixed hour ignores the zone', window: 'hour', cal: false, tz: 'Asia/Kolkata', now: '2026-11-23T10:59:59.999Z', start: '2026-11-23T10:00:00.000Z', end: '2026-11-23T11:00:00.000Z', id: `3600:${Math.floor(t('2026-11-23T10:00:00Z') / H)}` },
  { name: 'fixed day is a UTC day', window: 'day', cal: false, tz: 'Europe/Paris', now: '2026-11-23T23:30:00.000Z', start: '2026-11-23T00:00:00.000Z', end: '2026-11-24T00:00:00.000Z', id: `86400:${Math.floor(t('2026-11-23T00:00:00Z') / 86400_000)}` },
  { name: 'fixed month is 30 days', window: 'month', cal: false, tz: 'UTC', now: '1970-01-31T00:00:00.000Z', start: '1970-01-31T00:00:00.000Z', end: '1970-03-02T00:00:00.000Z', id: '2592000:1' },
  { name: 'fixed before the epoch', window: 'minute', cal: false, tz: 'UTC', now: '1969-12-31T23:59:30.000Z', start: '1969-12-31T23:59:00.000Z', end: '1970-01-01T00:00:00.000Z', id: '60:-1' },
  // calendar-aligned days
  { name: 'UTC day', window: 'day', cal: true, tz: 'UTC', now: '2026-11-23T12:00:00.000Z', start: '2026-11-23T00:00:00.000Z', end: '2026-11-24T00:00:00.000Z', id: 'd:2026-11-23', hours: 24 },
  { name: 'empty zone means UTC', window: 'day', cal: true, tz: '', now: '2026-11-23T12:00:00.000Z', start: '2026-11-23T00:00:00.000Z', end: '2026-11-24T00:00:00.000Z', id: 'd:2026-11-23', hours: 24 },
  { name: 'Paris day, winter', window: 'day', cal: true, tz: 'Europe/Paris', now: '2026-11-23T23:30:00.000Z', start: '2026-11-23T23:00:00.000Z', end: '2026-11-24T23:00:00.000Z', id: 'd:2026-11-24', hours: 24 },
  { name: 'Paris spring-forward day is 23 h', window: 'day', cal: true, tz: 'Europe/Paris', now: '2026-03-29T12:00:00.000Z', start: '2026-03-28T23:00:00.000Z', end: '2026-03-29T22:00:00.000Z', id: 'd:2026-03-29', hours: 23 },
  { name: 'Paris fall-back day is 25 h', window: 'day', cal: true, tz: 'Europe/Paris', now: '2026-10-25T01:30:00.000Z', start: '2026-10-24T22:00:00.000Z', end: '2026-10-25T23:00:00.000Z', id: 'd:2026-10-25', hours: 25 },
  { name: 'Paris fall-back day, last instant', window: 'day', cal: true, tz: 'Europe/Paris', now: '2026-10-25T22:59:59.999Z', start: '2026-10-24T22:00:00.000Z', end: '2026-10-25T23:00:00.000Z', id: 'd:2026-10-25', hours: 25 },
  { name: 'New York spring-forward day is 23 h', window: 'day', cal: true, tz: 'America/New_York', now: '2026-03-08T06:59:59.000Z', start: '2026-03-08T05:00:00.000Z', end: '2026-03-09T04:00:00.000Z', id: 'd:2026-03-08', hours: 23 },
  { name: 'New York fall-back day is 25 h', window: 'day', cal: true, tz: 'America/New_York', now: '2026-11-01T05:30:00.000Z', start: '2026-11-01T04:00:00.000Z', end: '2026-11-02T05:00:00.000Z', id: 'd:2026-11-01', hours: 25 },
  { name: 'New York day before the local midnight', window: 'day', cal: true, tz: 'America/New_York', now: '2026-11-24T04:59:59.999Z', start: '2026-11-23T05:00:00.000Z', end: '2026-11-24T05:00:00.000Z', id: 'd:2026-11-23', hours: 24 },
  { name: 'Tokyo day (ahead of UTC)', window: 'day', cal: true, tz: 'Asia/Tokyo', now: '2026-11-23T15:00:00.000Z', start: '2026-11-23T15:00:00.000Z', end: '2026-11-24T15:00:00.000Z', id: 'd:2026-11-24', hours: 24 },
  // calendar-aligned months
  { name: 'UTC month', window: 'month', cal: true, tz: 'UTC', now: '2026-02-15T00:00:00.000Z', start: '2026-02-01T00:00:00.000Z', end: '2026-03-01T00:00:00.000Z', id: 'm:2026-02' },
  { name: 'UTC leap February', window: 'month', cal: true, tz: 'UTC', now: '2028-02-29T23:59:59.999Z', start: '2028-02-01T00:00:00.000Z', end: '2028-03-01T00:00:00.000Z', id: 'm:2028-02' },
  { name: 'Paris month spanning fall-back', window: 'month', cal: true, tz: 'Europe/Paris', now: '2026-10-31T22:59:59.999Z', start: '2026-09-30T22:00:00.000Z', end: '2026-10-31T23:00:00.000Z', id: 'm:2026-10' },
  { name: 'Paris month starts at local midnight', window: 'month', cal: true, tz: 'Europe/Paris', now: '2026-10-31T23:00:00.000Z', start: '2026-10-31T23:00:00.000Z', end: '2026-11-30T23:00:00.000Z', id: 'm:2026-11' },
  { name: 'Paris year boundary', window: 'month', cal: true, tz: 'Europe/Paris', now: '2026-12-31T23:30:00.000Z', start: '2026-12-31T23:00:00.000Z', end: '2027-01-31T23:00:00.000Z', id: 'm:2027-01' },
  { name: 'New York month spanning spring-forward', window: 'month', cal: true, tz: 'America/New_York', now: '2026-03-31T12:00:00.000Z', start: '2026-03-01T05:00:00.000Z', end: '2026-04-01T04:00:00.000Z', id: 'm:2026-03' },
  { name: 'New York still the previous month in UTC terms', window: 'month', cal: true, tz: 'America/New_York', now: '2026-12-01T04:59:59.999Z', start: '2026-11-01T04:00:00.000Z', end: '2026-12-01T05:00:00.000Z', id: 'm:2026-11' },
  // calendar-aligned sub-day windows
  { name: 'Kolkata hour is aligned to :30 UTC', window: 'hour', cal: true, tz: 'Asia/Kolkata', now: '2026-11-23T10:15:00.000Z', start: '2026-11-23T09:30:00.000Z', end: '2026-11-23T10:30:00.000Z', id: `h:${t('2026-11-23T09:30:00.000Z')}` },
  { name: 'Paris hour during the repeated hour', window: 'hour', cal: true, tz: 'Europe/Paris', now: '2026-10-25T01:10:00.000Z', start: '2026-10-25T01:00:00.000Z', end: '2026-10-25T02:00:00.000Z', id: `h:${t('2026-10-25T01:00:00.000Z')}` },
  { name: 'calendar minute', window: 'minute', cal: true, tz: 'Asia/Kathmandu', now: '2026-11-23T10:15:30.000Z', start: '2026-11-23T10:15:00.000Z', end: '2026-11-23T10:16:00.000Z', id: `min:${t('2026-11-23T10:15:00.000Z')}` },
];

for (const row of table) {
  test(`window: ${row.name}`, () => {
    const w = windowOf(row.window, row.cal, row.tz, t(row.now));
    assert.equal(new Date(w.startMs).toISOString(), row.start);
    assert.equal(new Date(w.endMs).toISOString(), row.end);
    assert.equal(w.id, row.id);
    assert.ok(w.startMs <= t(row.now) && t(row.now) < w.endMs);
    if (row.hours !== undefined) assert.equal((w.endMs - w.startMs) / H, row.hours);
  });
}

test('window: consecutive calendar windows tile time with no gap or overlap', () => {
  for (const tz of ['Europe/Paris', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago', 'UTC']) {
    for (const window of ['day', 'month', 'hour'] as const) {
      let w = windowOf(window, true, tz, t('2026-01-01T00:00:00Z'));
      const seen = new Set<string>();
      while (w.startMs < t('2027-01-01T00:00:00Z')) {
        assert.ok(!seen.has(w.id), `${tz} ${window} duplicate id ${w.id}`);
        seen.add(w.id);
        assert.ok(w.endMs > w.startMs);
        const next = windowOf(window, true, tz, w.endMs);
        assert.equal(next.startMs, w.endMs, `${tz} ${window} after ${w.id}`);
        assert.deepEqual(windowOf(window, true, tz, w.endMs - 1), w);
        w = next;
      }
    }
  }
});

test('window: a skipped local midnight starts the day at the end of the gap', () => {
  // Santiago moves clocks from 00:00 to 01:00 on the first Sunday of September (2026-09-06).
  const w = windowOf('day', true, 'America/Santiago', t('2026-09-06T12:00:00Z'));
  assert.equal(w.id, 'd:2026-09-06');
  assert.equal((w.endMs - w.startMs) / H, 23);
  const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'America/Santiago', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(w.startMs);
  assert.equal(local, '01:00');
});

test('window: unknown window or zone throws', () => {
  assert.throws(() => windowOf('week' as WindowName, false, 'UTC', 0), RangeError);
  assert.throws(() => windowOf('day', true, 'Mars/Olympus', 0), RangeError);
});
