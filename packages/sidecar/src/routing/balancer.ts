/**
 * Orders a rule's backends for one request: the strategy picks the first, the others follow in
 * declared order as fallbacks (when the rule allows fallback), and ejected backends go last. Keeps
 * what the strategies need: in-flight requests and an EWMA of time to first byte per backend. The
 * random source is injected (`seededRandom` from @sluice/core in tests: weighted choice is
 * deterministic then).
 */
export interface Candidate {
  readonly backendId: string;
  readonly weight: number;
  /** Input + output price per million tokens (micro-USD) of the model it would be sent; undefined = unknown. */
  readonly price: number | undefined;
}

export interface BalancerDeps {
  readonly random: () => number;
  readonly ejected: (backendId: string) => boolean;
}

/** EWMA weight of a new observation. */
const ALPHA = 0.3;

export class Balancer {
  readonly #inFlight = new Map<string, number>();
  readonly #ewmaMs = new Map<string, number>();
  constructor(private readonly deps: BalancerDeps) {}

  /** Indexes into `candidates`, in the order to try them. */
  order(strategy: string, candidates: readonly Candidate[], fallback: boolean): number[] {
    const n = candidates.length;
    if (n === 0) return [];
    const first = n === 1 ? 0 : this.#pick(strategy, candidates);
    const rest: number[] = [];
    if (fallback) for (let i = 0; i < n; i++) if (i !== first) rest.push(i);
    const all = [first, ...rest];
    // Ejected backends last (still tried when nothing else is left), order otherwise kept.
    const healthy = all.filter((i) => !this.deps.ejected((candidates[i] as Candidate).backendId));
    if (healthy.length === all.length) return all;
    return [...healthy, ...all.filter((i) => !healthy.includes(i))];
  }

  #pick(strategy: string, c: readonly Candidate[]): number {
    const live = c.map((_, i) => i).filter((i) => !this.deps.ejected((c[i] as Candidate).backendId));
    const pool = live.length > 0 ? live : c.map((_, i) => i);
    switch (strategy) {
      case 'weighted': {
        const total = pool.reduce((a, i) => a + (c[i] as Candidate).weight, 0);
        if (total <= 0) return pool[0] as number;
        let r = this.deps.random() * total;
        for (const i of pool) {
          r -= (c[i] as Candidate).weight;
          if (r < 0) return i;
        }
        return pool[pool.length - 1] as number;
      }
      case 'least-busy': {
        let best = pool[0] as number;
        for (const i of pool) if (this.inFlight((c[i] as Candidate).backendId) < this.inFlight((c[best] as Candidate).backendId)) best = i;
        return best;
      }
      case 'latency': {
        // Power of two choices on the EWMA of time to first byte (unknown = 0: tried early).
        if (pool.length === 1) return pool[0] as number;
        const ai = Math.floor(this.deps.random() * pool.length);
        let bi = Math.floor(this.deps.random() * (pool.length - 1));
        if (bi >= ai) bi++;
        const a = pool[ai] as number;
        const b = pool[bi] as number;
        const ea = this.#ewmaMs.get((c[a] as Candidate).backendId) ?? 0;
        const eb = this.#ewmaMs.get((c[b] as Candidate).backendId) ?? 0;
        return eb < ea ? b : a;
      }
      case 'cost': {
        let best = pool[0] as number;
        for (const i of pool) {
          const p = (c[i] as Candidate).price;
          const bp = (c[best] as Candidate).price;
          if (p !== undefined && (bp === undefined || p < bp)) best = i;
        }
        return best;
      }
      default:
        return pool[0] as number;
    }
  }

  inFlight(backendId: string): number {
    return this.#inFlight.get(backendId) ?? 0;
  }

  /** A request to `backendId` starts; call the returned function when it ends. */
  begin(backendId: string): () => void {
    this.#inFlight.set(backendId, this.inFlight(backendId) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight.set(backendId, Math.max(0, this.inFlight(backendId) - 1));
    };
  }

  /** Time to first byte of a successful attempt. */
  observeLatency(backendId: string, ms: number): void {
    const prev = this.#ewmaMs.get(backendId);
    this.#ewmaMs.set(backendId, prev === undefined ? ms : prev + ALPHA * (ms - prev));
  }

  latencyMs(backendId: string): number | undefined {
    return this.#ewmaMs.get(backendId);
  }
}
