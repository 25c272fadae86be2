/**
 * OpenTelemetry traces: a request continues the caller's W3C trace, produces one SERVER span with
 * the GenAI attributes and one CLIENT span per upstream attempt, exported over OTLP/HTTP to a
 * collector (ours, on loopback); the log line carries the trace id.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { quietLogger, waitFor } from '@sluice/testkit';
import { createTracing, type Tracing } from '../src/tracing.js';
import { startHarness, type Harness } from './harness.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }>;
  status?: { code?: number };
}

let collector: Server;
const spans: OtlpSpan[] = [];
let tracing: Tracing;
let h: Harness;

before(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  tracing = await createTracing({ endpoint: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, pod: 'p1', namespace: 'shop', logger: quietLogger() });
  h = await startHarness({}, [], { tracing });
});
after(async () => {
  await tracing.shutdown();
  await h.close();
  collector.close();
});

const attr = (s: OtlpSpan, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : v?.boolValue);
};

test('one server span per request (continuing traceparent) and one client span per upstream attempt', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parent = '00f067aa0ba902b7';
  h.fake.enqueue({ usage: { input: 12, output: 7 } });
  const r = await fetch(`${h.sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${parent}-01` },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(r.status, 200);
  await r.text();
  h.fake.enqueue({ status: 500 });
  assert.equal((await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })).status, 502);
  const [first, second] = await h.waitForRequestLogs(2);
  assert.equal(first?.['traceId'], traceId, 'the log line carries the trace id');
  assert.match(String(second?.['traceId']), /^[0-9a-f]{32}$/);
  await tracing.flush();
  await waitFor('spans exported', () => spans.length >= 4, 5000);
  const server = spans.find((s) => s.traceId === traceId && s.kind === 2);
  assert.ok(server, 'a SERVER span in the caller trace');
  assert.equal(server.parentSpanId, parent, 'parented to the caller span');
  assert.equal(server.name, 'chat gpt-4o-mini');
  assert.equal(attr(server, 'gen_ai.operation.name'), 'chat');
  assert.equal(attr(server, 'gen_ai.provider.name'), 'openai');
  assert.equal(attr(server, 'gen_ai.request.model'), 'gpt-4o-mini');
  assert.equal(attr(server, 'gen_ai.usage.input_tokens'), 12);
  assert.equal(attr(server, 'gen_ai.usage.output_tokens'), 7);
  assert.equal(typeof attr(server, 'sluice.cost_micros'), 'number');
  const client = spans.find((s) => s.traceId === traceId && s.kind === 3);
  assert.ok(client, 'a CLIENT span for the upstream attempt');
  assert.equal(client.parentSpanId, server.spanId);
  assert.equal(attr(client, 'http.response.status_code'), 200);
  assert.equal(attr(client, 'sluice.backend'), 'default/openai');
  const failed = spans.find((s) => s.traceId === second?.['traceId'] && s.kind === 2);
  assert.equal(attr(failed!, 'error.type'), 'SLUICE_ERR_UPSTREAM_SERVER_ERROR');
  assert.equal(failed?.status?.code, 2, 'error status');
  const failedAttempt = spans.find((s) => s.traceId === second?.['traceId'] && s.kind === 3);
  assert.equal(attr(failedAttempt!, 'http.response.status_code'), 500);
});
