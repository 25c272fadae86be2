/**
 * Fixed limit windows (pure). Two kinds:
 *
 * - not calendar-aligned: windows are epoch multiples of the length (`second` 1 s, `minute` 60 s,
 *   `hour` 3600 s, `day` 86400 s, `month` 30 days); id `<seconds>:<index>` (e.g. `60:29630000`).
 * - calendar-aligned in an IANA zone: `day` runs from local midnight to the next local midnight
 *   (23 or 25 hours on DST days; when midnight itself is skipped the day starts at the first local
 *   instant after the gap), `month` from the 1st 00:00 local to the next 1st; ids `d:2026-11-23`,
 *   `m:2026-11` (local dates). `second`/`minute`/`hour` are always exactly that long and aligned to
 *   the zone's standard-time offset (the lesser of its offsets on 1 January and 1 July of the UTC
 *   year), so they tile time even where DST shifts by 30 minutes (Australia/Lord_Howe); this only
 *   differs from epoch alignment in zones with non-whole-hour offsets (Asia/Kolkata); ids
 *   `<s|min|h>:<startMs>`.
 *
 * Ids are stable across processes (same limit, same instant → same id), so they are used in counter
 * keys. Throws a RangeError on an unknown window or time zone (`checkSnapshot` refuses those).
 */
export type WindowName = 'second' | 'minute' | 'hour' | 'day' | 'month';

export interface WindowSpan {
  readonly startMs: number;
  readonly endMs: number;
  readonly id: string;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Fixed (not calendar-aligned) window lengths in milliseconds. */
export const WINDOW_MS: Readonly<Record<WindowName, number>> = { second: SECOND, minute: MINUTE, hour: HOUR, day: DAY, month: 30 * DAY };

const SUBDAY_PREFIX: Readonly<Record<string, string>> = { second: 's', minute: 'min', hour: 'h' };

export function isWindowName(w: string): w is WindowName {
  return Object.prototype.hasOwnProperty.call(WINDOW_MS, w);
}

export function windowOf(window: WindowName, calendarAligned: boolean, timeZone: string, nowMs: number): WindowSpan {
  if (!isWindowName(window)) throw new RangeError(`unknown limit window ${JSON.stringify(window)}`);
  if (!Number.isFinite(nowMs)) throw new RangeError(`invalid time ${nowMs}`);
  const len = WINDOW_MS[window];
  if (!calendarAligned) {
    const index = Math.floor(nowMs / len);
    return { startMs: index * len, endMs: (index + 1) * len, id: `${len / SECOND}:${index}` };
  }
  const tz = timeZone === '' ? 'UTC' : timeZone;
  if (window === 'second' || window === 'minute' || window === 'hour') {
    const local = nowMs + standardOffsetMs(tz, nowMs);
    const startMs = nowMs - mod(local, len);
    return { startMs, endMs: startMs + len, id: `${SUBDAY_PREFIX[window] ?? window}:${startMs}` };
  }
  const p = localParts(tz, nowMs);
  if (window === 'day') {
    return {
      startMs: zonedToUtc(tz, Date.UTC(p.year, p.month - 1, p.day)),
      endMs: zonedToUtc(tz, Date.UTC(p.year, p.month - 1, p.day + 1)),
      id: `d:${pad(p.year, 4)}-${pad(p.month, 2)}-${pad(p.day, 2)}`,
    };
  }
  return {
    startMs: zonedToUtc(tz, Date.UTC(p.year, p.month - 1, 1)),
    endMs: zonedToUtc(tz, Date.UTC(p.year, p.month, 1)),
    id: `m:${pad(p.year, 4)}-${pad(p.month, 2)}`,
  };
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    if (formatters.size > 1000) formatters.clear();
    formatters.set(tz, f);
  }
  return f;
}

function localParts(tz: string, t: number): Parts {
  const out: Parts = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  let bc = false;
  for (const part of formatter(tz).formatToParts(t)) {
    switch (part.type) {
      case 'year':
      case 'month':
      case 'day':
      case 'hour':
      case 'minute':
      case 'second':
        out[part.type] = Number(part.value);
        break;
      case 'era':
        bc = part.value === 'BC' || part.value === 'B';
        break;
      default:
        break;
    }
  }
  if (bc) out.year = 1 - out.year;
  if (out.hour === 24) out.hour = 0;
  return out;
}

/** The zone's offset from UTC at instant `t` (local wall clock − UTC), in milliseconds. */
export function offsetMs(tz: string, t: number): number {
  const s = Math.floor(t / SECOND) * SECOND;
  const p = localParts(tz, s);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - s;
}

function standardOffsetMs(tz: string, t: number): number {
  const year = new Date(t).getUTCFullYear();
  return Math.min(offsetMs(tz, Date.UTC(year, 0, 1)), offsetMs(tz, Date.UTC(year, 6, 1)));
}

/**
 * The first UTC instant whose local wall time in `tz` is `wall` (a wall-clock time encoded as if it
 * were UTC). Ambiguous (repeated) times resolve to the earlier instant; skipped times (DST gap)
 * resolve to the end of the gap. Assumes at most one offset change within ±1 day of `wall`.
 */
function zonedToUtc(tz: string, wall: number): number {
  const before = offsetMs(tz, wall - DAY);
  const after = offsetMs(tz, wall + DAY);
  const candidates = before === after ? [wall - before] : [wall - before, wall - after];
  const exact = candidates.filter((t) => t + offsetMs(tz, t) === wall);
  if (exact.length > 0) return Math.min(...exact);
  // A gap: the wall time does not exist; the pre-transition offset maps it to the transition instant.
  return wall - before;
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}
