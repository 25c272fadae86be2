/**
 * Passive health per backend: outcomes of the last `windowMs` in one-second buckets; when the error
 * rate over the window reaches `errorRate` with at least `minRequests` requests, the backend is
 * ejected for `baseEjectMs × 2^(ejections − 1)` (at most `maxEjectMs`). When that time is up one probe
 * request is let through (half-open): success closes the breaker (and forgets the ejection count
 * after a quiet window), failure ejects it again, longer. Pure: time is passed in.
 */
export interface BreakerOptions {
  readonly windowMs?: number;
  readonly minRequests?: number;
  readonly errorRate?: number;
  readonly baseEjectMs?: number;
  readonly maxEjectMs?: number;
}

type State = 'closed' | 'open' | 'half-open';

interface Health {
  state: State;
  /** [second, ok, failed] ring, oldest first. */
  buckets: Array<{ sec: number; ok: number; failed: number }>;
  ejections: number;
  openUntilMs: number;
  /** A half-open probe is in flight. */
  probing: boolean;
  lastEjectMs: number;
}

export interface Ejection {
  readonly backend: string;
  readonly forMs: number;
  readonly ejections: number;
  readonly errorRate: number;
  readonly requests: number;
}

export class Breakers {
  readonly #o: Required<BreakerOptions>;
  readonly #h = new Map<string, Health>();
  /** Called when a backend is ejected (log line, metric). */
  onEject: ((e: Ejection) => void) | undefined;

  constructor(o: BreakerOptions = {}) {
    this.#o = { windowMs: o.windowMs ?? 10_000, minRequests: o.minRequests ?? 5, errorRate: o.errorRate ?? 0.5, baseEjectMs: o.baseEjectMs ?? 5_000, maxEjectMs: o.maxEjectMs ?? 300_000 };
  }

  #get(backend: string): Health {
    let h = this.#h.get(backend);
    if (h === undefined) {
      h = { state: 'closed', buckets: [], ejections: 0, openUntilMs: 0, probing: false, lastEjectMs: 0 };
      this.#h.set(backend, h);
    }
    return h;
  }

  /** Whether a request may go to `backend` now (a half-open backend admits one probe at a time). */
  allow(backend: string, nowMs: number): boolean {
    const h = this.#h.get(backend);
    if (h === undefined || h.state === 'closed') return true;
    if (h.state === 'open') {
      if (nowMs < h.openUntilMs) return false;
      h.state = 'half-open';
      h.probing = false;
    }
    if (h.probing) return false;
    h.probing = true;
    return true;
  }

  /** An allowed request ended without telling anything about the backend (aborted, never sent): a pending probe may go again. */
  release(backend: string): void {
    const h = this.#h.get(backend);
    if (h !== undefined && h.state === 'half-open') h.probing = false;
  }

  /** True while the backend is ejected (for ordering: ejected backends go last). */
  ejected(backend: string, nowMs: number): boolean {
    const h = this.#h.get(backend);
    return h !== undefined && ((h.state === 'open' && nowMs < h.openUntilMs) || (h.state === 'half-open' && h.probing));
  }

  /** Records an attempt's outcome: `failed` = the backend's fault (5xx, connect, timeout, overload). */
  record(backend: string, failed: boolean, nowMs: number): void {
    const h = this.#get(backend);
    const sec = Math.floor(nowMs / 1000);
    const from = sec - Math.ceil(this.#o.windowMs / 1000) + 1;
    while (h.buckets.length > 0 && (h.buckets[0] as { sec: number }).sec < from) h.buckets.shift();
    let b = h.buckets[h.buckets.length - 1];
    if (b === undefined || b.sec !== sec) {
      b = { sec, ok: 0, failed: 0 };
      h.buckets.push(b);
    }
    if (failed) b.failed++;
    else b.ok++;
    if (h.state === 'half-open') {
      h.probing = false;
      if (failed) this.#eject(backend, h, nowMs, 1, 1);
      else {
        h.state = 'closed';
        h.buckets = [];
      }
      return;
    }
    if (h.state === 'open') return;
    if (h.ejections > 0 && nowMs - h.lastEjectMs > this.#o.maxEjectMs) h.ejections = 0;
    let ok = 0;
    let bad = 0;
    for (const x of h.buckets) {
      ok += x.ok;
      bad += x.failed;
    }
    if (failed && ok + bad >= this.#o.minRequests && bad / (ok + bad) >= this.#o.errorRate) this.#eject(backend, h, nowMs, bad / (ok + bad), ok + bad);
  }

  #eject(backend: string, h: Health, nowMs: number, errorRate: number, requests: number): void {
    h.ejections++;
    const forMs = Math.min(this.#o.maxEjectMs, this.#o.baseEjectMs * 2 ** (h.ejections - 1));
    h.state = 'open';
    h.openUntilMs = nowMs + forMs;
    h.lastEjectMs = nowMs;
    h.buckets = [];
    this.onEject?.({ backend, forMs, ejections: h.ejections, errorRate, requests });
  }

  /** Backends ejected now (for the /metrics gauge). */
  ejectedNow(nowMs: number): string[] {
    return [...this.#h.keys()].filter((b) => this.ejected(b, nowMs));
  }
}
