import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRegistry } from './metrics.js';

test('renders counters, gauges and histograms in the Prometheus text format', () => {
  const r = new MetricsRegistry();
  const c = r.counter('sluice_requests_total', 'Requests.', ['route', 'code']);
  c.inc(['a/b', '']);
  c.inc(['a/b', ''], 2);
  c.inc(['x"y', 'E']);
  r.gauge('sluice_inflight', 'In flight.', () => [{ value: 3 }]);
  const h = r.histogram('sluice_seconds', 'Latency.', [0.1, 1]);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const text = r.render();
  assert.match(text, /^# HELP sluice_requests_total Requests\.\n# TYPE sluice_requests_total counter\n/);
  assert.ok(text.includes('sluice_requests_total{route="a/b",code=""} 3\n'));
  assert.ok(text.includes('sluice_requests_total{route="x\\"y",code="E"} 1\n'));
  assert.ok(text.includes('sluice_inflight 3\n'));
  assert.ok(text.includes('sluice_seconds_bucket{le="0.1"} 1\nsluice_seconds_bucket{le="1"} 2\nsluice_seconds_bucket{le="+Inf"} 3\nsluice_seconds_sum 5.55\nsluice_seconds_count 3\n'));
  assert.equal(c.get(['a/b', '']), 3);
});
