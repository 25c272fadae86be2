/** Readiness, snapshot application and unbuffered streaming. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeProvider, quietLogger } from '@sluice/testkit';
import { loadSidecarConfig, startSidecar } from '../src/index.js';
import { policy, snapshotFor, startHarness } from './harness.js';

const quiet = quietLogger();

test('not ready until a snapshot is applied; health is always ok', async () => {
  const fake = await startFakeProvider();
  const sc = await startSidecar({ config: loadSidecarConfig({}, { port: 0, adminPort: 0, adminHost: '127.0.0.1' }), logger: quiet });
  try {
    assert.equal((await fetch(`${sc.adminUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${sc.adminUrl}/ready`)).status, 503);
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const r = await fetch(`${sc.url}/v1/chat/completions`, { method: 'POST', body });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('x-sluice-error-code'), 'SLUICE_ERR_NOT_READY');
    const snap = snapshotFor(policy(fake.url));
    sc.applySnapshot(snap);
    const ready = (await (await fetch(`${sc.adminUrl}/ready`)).json()) as { version: string };
    assert.equal(ready.version, snap.version);
    assert.equal(sc.snapshotVersion, snap.version);
    assert.equal((await fetch(`${sc.url}/v1/chat/completions`, { method: 'POST', body })).status, 200);
  } finally {
    await sc.close();
    await fake.close();
  }
});

test('streams are forwarded as they arrive, not buffered', async () => {
  const h = await startHarness();
  try {
    // Four content chunks 250 ms apart: the first must reach the client long before the last is sent.
    h.fake.enqueue({ chunks: 4, chunkIntervalMs: 250 });
    const t0 = Date.now();
    const res = await fetch(`${h.sidecar.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'claude-haiku-4-5', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = '';
    let firstContentAt = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (firstContentAt === 0 && text.includes('"content":"Hello')) firstContentAt = Date.now() - t0;
    }
    const total = Date.now() - t0;
    assert.ok(firstContentAt > 0, 'content arrived');
    assert.ok(total >= 700, `stream took ${total} ms`);
    assert.ok(firstContentAt < total - 500, `first content at ${firstContentAt} ms of ${total} ms`);
  } finally {
    await h.close();
  }
});

test('drain on shutdown: in-flight streams finish, new requests are refused, a deadline cuts the rest', async () => {
  const h = await startHarness();
  try {
    h.fake.enqueue({ chunks: 5, chunkIntervalMs: 100 });
    const res = await fetch(`${h.sidecar.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = res.text();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.sidecar.inFlight, 1);
    const drained = h.sidecar.drain(5000);
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(fetch(`${h.sidecar.url}/v1/models`), 'no new connections while draining');
    assert.ok((await text).includes('data: [DONE]'), 'the stream in flight completed');
    assert.deepEqual(await drained, { finished: 1, cut: 0 });
  } finally {
    await h.close().catch(() => undefined);
  }
  const h2 = await startHarness();
  try {
    h2.fake.enqueue({ chunks: 50, chunkIntervalMs: 100 });
    const res = await fetch(`${h2.sidecar.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = res.text().catch(() => 'cut');
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    assert.deepEqual(await h2.sidecar.drain(200), { finished: 0, cut: 1 });
    assert.ok(Date.now() - t0 < 1000);
    assert.ok(!(await text).includes('[DONE]'));
  } finally {
    await h2.close().catch(() => undefined);
  }
});

test('/metrics on the admin port counts requests, tokens and cost', async () => {
  const h = await startHarness();
  try {
    h.fake.enqueue({ usage: { input: 1000, output: 500 } });
    await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
    await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body: '{"model":' });
    await fetch(`${h.sidecar.url}/nope`);
    h.fake.enqueue({ usage: { input: 10, output: 21 }, chunks: 4 });
    await (await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] }) })).text();
    const res = await fetch(`${h.sidecar.adminUrl}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.ok(text.includes('sluice_requests_total{api="openai-chat",route="default/main#0",backend="default/openai",status="200",code=""} 2'), text);
    assert.ok(text.includes('sluice_requests_total{api="openai-chat",route="",backend="",status="400",code="SLUICE_ERR_REQUEST_MALFORMED_JSON"} 1'));
    assert.ok(text.includes('sluice_requests_total{api="http",route="",backend="",status="404",code="SLUICE_ERR_HTTP_NOT_FOUND"} 1'));
    assert.ok(text.includes('sluice_tokens_total{backend="default/openai",type="input"} 1010'));
    assert.ok(text.includes('sluice_tokens_total{backend="default/openai",type="output"} 521'));
    assert.match(text, /sluice_cost_micros_total\{backend="default\/openai"\} (\d+)/);
    // GenAI semantic conventions, under their Prometheus names.
    assert.ok(text.includes('gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o-mini",error_type=""} 1'), text);
    assert.ok(text.includes('gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_request_model="_unrouted",error_type="SLUICE_ERR_REQUEST_MALFORMED_JSON"} 1'));
    assert.ok(text.includes('gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input"} 1000'));
    assert.ok(text.includes('gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="output",le="1024"} 1'));
    assert.match(text, /# TYPE gen_ai_server_time_to_first_token_seconds histogram/);
    assert.ok(text.includes('gen_ai_server_time_to_first_token_seconds_count{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o"} 1'));
    assert.ok(text.includes('gen_ai_server_time_per_output_token_seconds_count{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o"} 1'));
    assert.ok(text.includes('sluice_usage_dropped_records_total 0'));
    assert.match(text, /sluice_snapshot_info\{version="[0-9a-f]{16}"\} 1/);
  } finally {
    await h.close();
  }
});
