import type { Logger } from '@sluice/core';
import type { RouteCandidate, RouteDecision } from '../router.js';
import { Balancer } from './balancer.js';
import { Breakers, type BreakerOptions } from './breaker.js';
import { RetryBudget } from './retry.js';

export { backendFault, backoffMs, retryable } from './retry.js';

export interface RoutingOptions {
  readonly logger: Logger;
  /** Random source (a seeded one in tests). Default Math.random. */
  readonly random?: () => number;
  readonly breaker?: BreakerOptions;
  readonly now?: () => number;
  /** micro-USD per million tokens (input + output) of a candidate's model; for `strategy: cost`. */
  readonly priceOf?: (c: RouteCandidate) => number | undefined;
}

/** The process's routing state: balancer, per-backend breakers and the retry budget. */
export class Routing {
  readonly balancer: Balancer;
  readonly breakers: Breakers;
  readonly budget = new RetryBudget();
  readonly random: () => number;
  readonly now: () => number;
  readonly counters = { ejections: new Map<string, number>() };

  constructor(o: RoutingOptions) {
    this.random = o.random ?? Math.random;
    this.now = o.now ?? Date.now;
    this.breakers = new Breakers(o.breaker);
    this.balancer = new Balancer({ random: this.random, ejected: (id) => this.breakers.ejected(id, this.now()) });
    this.breakers.onEject = (e) => {
      this.counters.ejections.set(e.backend, (this.counters.ejections.get(e.backend) ?? 0) + 1);
      o.logger.warn({ backend: e.backend, ejectedForMs: e.forMs, ejections: e.ejections, errorRate: Math.round(e.errorRate * 100) / 100, requests: e.requests }, 'backend ejected (circuit open)');
    };
  }

  /** The candidates of a routing decision in the order to try them. */
  order(d: RouteDecision, priceOf: (c: RouteCandidate) => number | undefined): readonly RouteCandidate[] {
    // One backend: nothing to choose (an ejected one is still tried: there is no other).
    if (d.candidates.length === 1) return d.candidates;
    const idx = this.balancer.order(
      d.rule.strategy,
      d.candidates.map((c) => ({ backendId: c.backend.id, weight: c.weight, price: d.rule.strategy === 'cost' ? priceOf(c) : undefined })),
      d.rule.fallback,
    );
    return idx.map((i) => d.candidates[i] as RouteCandidate);
  }
}
