import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '@sluice/core';
import { Balancer, type Candidate } from './balancer.js';
import { Breakers } from './breaker.js';
import { backoffMs, durationMs, retryable, RetryBudget } from './retry.js';

const c = (backendId: string, weight = 1, price?: number): Candidate => ({ backendId, weight, price });

test('weighted: deterministic under a seed and close to the weights; fallbacks follow in declared order', () => {
  const b = new Balancer({ random: seededRandom(42), ejected: () => false });
  const cands = [c('a', 3), c('b', 1), c('zero', 0)];
  const counts: Record<string, number> = { a: 0, b: 0, zero: 0 };
  for (let i = 0; i < 4000; i++) counts[(cands[b.order('weighted', cands, true)[0] as number] as Candidate).backendId]! += 1;
  assert.equal(counts['zero'], 0, 'weight 0 is fallback only');
  assert.ok(Math.abs(counts['a']! / 4000 - 0.75) < 0.03, JSON.stringify(counts));
  const again = new Balancer({ random: seededRandom(42), ejected: () => false });
  const first = new Balancer({ random: seededRandom(42), ejected: () => false });
  assert.deepEqual(
    Array.from({ length: 20 }, () => again.order('weighted', cands, true)),
    Array.from({ length: 20 }, () => first.order('weighted', cands, true)),
  );
  assert.deepEqual(new Balancer({ random: () => 0.99, ejected: () => false }).order('weighted', cands, true), [1, 0, 2]);
  assert.deepEqual(new Balancer({ random: () => 0.99, ejected: () => false }).order('weighted', cands, false), [1], 'no fallback: one attempt target');
});

test('least-busy, latency (power of two choices on EWMA), cost, and ejected backends last', () => {
  const b = new Balancer({ random: seededRandom(1), ejected: (id) => id === 'sick' });
  const cands = [c('a', 1, 900), c('b', 1, 300), c('sick', 1, 1)];
  const endA = b.begin('a');
  b.begin('a');
  assert.deepEqual(b.order('least-busy', cands, true), [1, 0, 2], 'b has fewer in flight; the ejected one last');
  endA();
  endA();
  assert.equal(b.inFlight('a'), 1, 'ending twice counts once');
  assert.equal(b.order('cost', cands, true)[0], 1, 'cheapest healthy backend (the ejected one is cheaper but sick)');
  b.observeLatency('a', 100);
  b.observeLatency('b', 900);
  b.observeLatency('b', 900);
  const firsts = new Set(Array.from({ length: 50 }, () => b.order('latency', [c('a'), c('b')], true)[0]));
  assert.deepEqual([...firsts], [0], 'with two candidates the faster always wins');
  assert.equal(Math.round(b.latencyMs('a') ?? 0), 100);
  assert.deepEqual(b.order('ordered', cands, true), [0, 1, 2]);
});

test('breaker: ejects at the error rate, grows the ejection, half-open probe closes or re-ejects', () => {
  const br = new Breakers({ windowMs: 10_000, minRequests: 4, errorRate: 0.5, baseEjectMs: 1000, maxEjectMs: 8000 });
  const ejections: number[] = [];
  br.onEject = (e) => ejections.push(e.forMs);
  let t = 1_000_000;
  br.record('x', false, t);
  br.record('x', true, t);
  br.record('x', false, t);
  assert.equal(br.ejected('x', t), false, 'below the minimum of requests');
  br.record('x', true, t);
  assert.equal(br.ejected('x', t), true, '2 of 4 failed');
  assert.equal(br.allow('x', t + 999), false);
  assert.equal(br.allow('x', t + 1000), true, 'half-open: one probe');
  assert.equal(br.allow('x', t + 1000), false, 'only one probe at a time');
  br.record('x', true, t + 1100);
  assert.deepEqual(ejections, [1000, 2000], 'the failed probe ejects again, twice as long');
  t += 1100 + 2000;
  assert.equal(br.allow('x', t), true);
  br.record('x', false, t);
  assert.equal(br.ejected('x', t), false, 'a good probe closes it');
  assert.equal(br.allow('x', t), true);
  br.record('y', false, t);
  assert.deepEqual(br.ejectedNow(t), []);
  // A probe that ends without an outcome (caller gone) lets the next request probe.
  const z = new Breakers({ minRequests: 1, errorRate: 0.5, baseEjectMs: 100 });
  z.record('z', true, t);
  assert.equal(z.allow('z', t + 100), true);
  assert.equal(z.allow('z', t + 100), false);
  z.release('z');
  assert.equal(z.allow('z', t + 100), true, 'released: probe again');
});

test('retry: what is retried, how long to wait, and the budget', () => {
  assert.equal(retryable('SLUICE_ERR_UPSTREAM_SERVER_ERROR'), true);
  assert.equal(retryable('SLUICE_ERR_UPSTREAM_RATE_LIMITED'), true);
  assert.equal(retryable('SLUICE_ERR_UPSTREAM_CLIENT_ERROR'), false, '400/404/422 and content filters');
  assert.equal(retryable('SLUICE_ERR_UPSTREAM_AUTH'), false);
  const now = Date.UTC(2026, 10, 23, 12);
  const half = (): number => 0.5;
  assert.equal(backoffMs('SLUICE_ERR_UPSTREAM_RATE_LIMITED', { 'retry-after': '2' }, 1, 250, 10_000, now, half), 2000);
  assert.equal(backoffMs('SLUICE_ERR_UPSTREAM_RATE_LIMITED', { 'retry-after': new Date(now + 3000).toUTCString() }, 1, 250, 10_000, now, half), 3000);
  assert.equal(backoffMs('SLUICE_ERR_UPSTREAM_RATE_LIMITED', { 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '6m0s' }, 1, 250, 600_000, now, half), 360_000);
  assert.equal(backoffMs('SLUICE_ERR_UPSTREAM_RATE_LIMITED', { 'retry-after': '60' }, 1, 250, 10_000, now, half), undefined, 'longer than allowed: give the 429 back');
  assert.equal(backoffMs('SLUICE_ERR_UPSTREAM_SERVER_ERROR', undefined, 3, 100, 10_000, now, half), 300, 'exponential with jitter: ceiling 400, half + half of random');
  assert.equal(backoffMs('SLUICE_ERR_UPSTREAM_OVERLOADED', undefined, 1, 100, 10_000, now, () => 1), 400, '529 waits 4x');
  assert.equal(durationMs('1h2m3.5s'), 3_723_500);
  assert.equal(durationMs('20ms'), 20);
  assert.equal(durationMs('soon'), undefined);
  const budget = new RetryBudget(0.1, 1, 3);
  let t = 1000;
  const granted = [budget.tryRetry(t), budget.tryRetry(t), budget.tryRetry(t)];
  assert.deepEqual(granted, [true, false, false], 'starts with one second of the floor');
  for (let i = 0; i < 10; i++) budget.onRequest(t);
  assert.equal(budget.tryRetry(t), true, '10 requests × 0.1 = one more retry');
  t += 2000;
  assert.equal(budget.tryRetry(t), true, 'the floor refills with time');
});
