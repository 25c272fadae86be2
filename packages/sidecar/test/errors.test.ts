/** Every bad input and every provider failure is answered in the caller's API shape with a stable code. */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createSseParser } from '@sluice/providers';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
before(async () => {
  h = await startHarness({ maxBodyBytes: 64 * 1024, bodyTimeoutMs: 300 });
});
after(() => h.close());
beforeEach(() => h.fake.reset());

async function post(path: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; code: string | null; json: Record<string, unknown>; headers: Headers; text: string }> {
  const res = await fetch(`${h.sidecar.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // stream bodies are checked by the caller
  }
  return { status: res.status, code: res.headers.get('x-sluice-error-code'), json, headers: res.headers, text };
}

function assertOpenAIError(r: { json: Record<string, unknown> }, code: string): void {
  const e = r.json['error'] as Record<string, unknown>;
  assert.equal(e['code'], code);
  assert.equal(typeof e['message'], 'string');
  assert.equal(typeof e['type'], 'string');
}

function assertAnthropicError(r: { json: Record<string, unknown> }, type: string): void {
  assert.equal(r.json['type'], 'error');
  const e = r.json['error'] as Record<string, unknown>;
  assert.equal(e['type'], type);
  assert.equal(typeof e['message'], 'string');
}

const chat = (extra: object = {}): object => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra });
const msg = (extra: object = {}): object => ({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], ...extra });

describe('bad requests', () => {
  test('malformed JSON, both shapes', async () => {
    const a = await post('/v1/chat/completions', '{"model": "gpt-4o-mini", ');
    assert.equal(a.status, 400);
    assert.equal(a.code, 'SLUICE_ERR_REQUEST_MALFORMED_JSON');
    assertOpenAIError(a, 'SLUICE_ERR_REQUEST_MALFORMED_JSON');
    const b = await post('/v1/messages', 'not json');
    assert.equal(b.status, 400);
    assert.equal(b.code, 'SLUICE_ERR_REQUEST_MALFORMED_JSON');
    assertAnthropicError(b, 'invalid_request_error');
  });

  test('body that is not an object, missing model, wrong types', async () => {
    assert.equal((await post('/v1/chat/completions', '[1,2]')).code, 'SLUICE_ERR_REQUEST_INVALID');
    assert.equal((await post('/v1/chat/completions', { messages: [] })).code, 'SLUICE_ERR_REQUEST_MODEL_MISSING');
    assert.equal((await post('/v1/chat/completions', { model: 42 })).code, 'SLUICE_ERR_REQUEST_INVALID');
    assert.equal((await post('/v1/chat/completions', chat({ stream: 'yes' }))).code, 'SLUICE_ERR_REQUEST_INVALID');
    const t = await post('/v1/chat/completions', { model: 'claude-haiku-4-5', messages: 'hello' });
    assert.equal(t.status, 400);
    assert.equal(t.code, 'SLUICE_ERR_REQUEST_INVALID');
    assert.equal(h.fake.requests.length, 0, 'nothing invalid reaches the provider');
  });

  test('unknown model', async () => {
    const a = await post('/v1/chat/completions', chat({ model: 'llama-9000' }));
    assert.equal(a.status, 404);
    assertOpenAIError(a, 'SLUICE_ERR_ROUTE_MODEL_UNKNOWN');
    const b = await post('/v1/messages', msg({ model: 'llama-9000' }));
    assert.equal(b.status, 404);
    assertAnthropicError(b, 'not_found_error');
  });

  test('embeddings on a backend without an embeddings API', async () => {
    const r = await post('/v1/embeddings', { model: 'claude-haiku-4-5', input: 'x' });
    assert.equal(r.status, 400);
    assert.equal(r.code, 'SLUICE_ERR_ROUTE_UNSUPPORTED');
  });

  test('wrong method and wrong path', async () => {
    const a = await fetch(`${h.sidecar.url}/v1/chat/completions`);
    assert.equal(a.status, 405);
    assert.equal(a.headers.get('x-sluice-error-code'), 'SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED');
    const b = await post('/v2/nothing', chat());
    assert.equal(b.status, 404);
    assertOpenAIError(b, 'SLUICE_ERR_HTTP_NOT_FOUND');
    const c = await post('/v1/messages/batches', msg());
    assert.equal(c.status, 404);
    assertAnthropicError(c, 'not_found_error');
  });

  test('body over the configured limit gets 413 (declared and streamed sizes)', async () => {
    const big = JSON.stringify(chat({ messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }));
    const a = await post('/v1/chat/completions', big);
    assert.equal(a.status, 413);
    assertOpenAIError(a, 'SLUICE_ERR_REQUEST_TOO_LARGE');
    // Chunked upload without content-length.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${h.sidecar.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(10 * 1024));
      req.end();
    });
    assert.equal(status, 413);
  });

  test('slow body gets 408', async () => {
    const r = await new Promise<{ status: number; code: string | undefined }>((resolve, reject) => {
      const req = httpRequest(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '100' } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, code: res.headers['x-sluice-error-code'] as string | undefined });
      });
      req.on('error', reject);
      req.write('{"model":');
    });
    assert.equal(r.status, 408);
    assert.equal(r.code, 'SLUICE_ERR_REQUEST_BODY_TIMEOUT');
  });
});

describe('provider failures', () => {
  test('connection refused → 502', async () => {
    const r = await post('/v1/chat/completions', chat({ model: 'dead-model' }));
    assert.equal(r.status, 502);
    assertOpenAIError(r, 'SLUICE_ERR_UPSTREAM_CONNECT');
  });

  test('provider 4xx keeps its status and message', async () => {
    h.fake.enqueue({ status: 400, errorMessage: 'context too long' });
    const r = await post('/v1/chat/completions', chat());
    assert.equal(r.status, 400);
    assertOpenAIError(r, 'SLUICE_ERR_UPSTREAM_CLIENT_ERROR');
    assert.match(String((r.json['error'] as Record<string, unknown>)['message']), /context too long/);
  });

  test('provider 401 is the gateway credential problem → 502', async () => {
    h.fake.enqueue({ status: 401, errorType: 'authentication_error' });
    const r = await post('/v1/messages', msg());
    assert.equal(r.status, 502);
    assert.equal(r.code, 'SLUICE_ERR_UPSTREAM_AUTH');
    assertAnthropicError(r, 'api_error');
  });

  test('provider 429 forwards retry-after', async () => {
    h.fake.enqueue({ status: 429, errorType: 'rate_limit_error', headers: { 'retry-after': '7' } });
    const r = await post('/v1/chat/completions', chat());
    assert.equal(r.status, 429);
    assert.equal(r.code, 'SLUICE_ERR_UPSTREAM_RATE_LIMITED');
    assert.equal(r.headers.get('retry-after'), '7');
  });

  test('provider 5xx and Anthropic 529', async () => {
    h.fake.enqueue({ status: 500 });
    const a = await post('/v1/chat/completions', chat());
    assert.equal(a.status, 502);
    assert.equal(a.code, 'SLUICE_ERR_UPSTREAM_SERVER_ERROR');
    h.fake.enqueue({ status: 529, errorType: 'overloaded_error' });
    const b = await post('/v1/chat/completions', chat({ model: 'claude-haiku-4-5' }));
    assert.equal(b.status, 529);
    assertOpenAIError(b, 'SLUICE_ERR_UPSTREAM_OVERLOADED');
  });

  test('provider garbage: non-JSON body, HTML, bad SSE', async () => {
    h.fake.enqueue({ garbage: 'json' });
    assert.equal((await post('/v1/chat/completions', chat())).code, 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
    h.fake.enqueue({ garbage: 'html' });
    assert.equal((await post('/v1/messages', msg({ stream: true }))).code, 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
    h.fake.enqueue({ garbage: 'sse' });
    const r = await post('/v1/chat/completions', chat({ model: 'claude-haiku-4-5', stream: true }));
    assert.equal(r.status, 200);
    const events = createSseParser().push(r.text);
    const last = JSON.parse(events[events.length - 1]?.data ?? '{}') as { error?: { code?: string } };
    assert.equal(last.error?.code, 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
  });

  test('reset mid-stream → one terminal error event in the caller shape', async () => {
    h.fake.enqueue({ chunks: 6, resetAfterChunks: 2 });
    const r = await post('/v1/messages', msg({ stream: true }));
    assert.equal(r.status, 200);
    const events = createSseParser().push(r.text);
    const errors = events.filter((e) => e.event === 'error');
    assert.equal(errors.length, 1);
    assert.equal(events[events.length - 1]?.event, 'error');
    const body = JSON.parse(errors[0]?.data ?? '{}') as { type: string; error: { type: string } };
    assert.equal(body.type, 'error');
    const log = (await h.waitForRequestLogs(1)).at(-1);
    assert.equal(log?.['code'], 'SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED');
  });

  test('in-stream provider error event is relayed as one terminal event', async () => {
    h.fake.enqueue({ midStreamError: true });
    const r = await post('/v1/chat/completions', chat({ model: 'claude-haiku-4-5', stream: true }));
    const events = createSseParser().push(r.text);
    const last = JSON.parse(events[events.length - 1]?.data ?? '{}') as { error?: { code?: string } };
    assert.ok(last.error?.code?.startsWith('SLUICE_ERR_UPSTREAM_'));
    assert.ok(!r.text.includes('[DONE]'));
  });

  test('client disconnect mid-stream aborts the upstream request and logs partial usage', async () => {
    h.fake.enqueue({ chunks: 50, chunkIntervalMs: 20 });
    const before = h.requestLogs().length;
    const ac = new AbortController();
    const res = await fetch(`${h.sidecar.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat({ stream: true })), signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    ac.abort();
    const logs = await h.waitForRequestLogs(before + 1);
    const log = logs.at(-1);
    assert.equal(log?.['status'], 499);
    assert.equal(log?.['code'], 'SLUICE_ERR_REQUEST_ABORTED');
    const until = Date.now() + 3000;
    while (h.fake.aborted === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(h.fake.aborted, 1, 'the provider saw the request go away');
  });
});

describe('logging and ids', () => {
  test('one line per request, client request id kept, no prompt text, no keys', async () => {
    const before = h.requestLogs().length;
    const secret = 'TOP-SECRET-PROMPT-TEXT';
    const r = await post('/v1/chat/completions', chat({ messages: [{ role: 'user', content: secret }] }), { 'x-request-id': 'req-abc-123', authorization: 'Bearer sk-client' });
    assert.equal(r.headers.get('x-request-id'), 'req-abc-123');
    const logs = await h.waitForRequestLogs(before + 1);
    assert.equal(logs.length, before + 1);
    const line = logs.at(-1)!;
    assert.equal(line['id'], 'req-abc-123');
    for (const k of ['route', 'backend', 'model', 'status', 'inputTokens', 'outputTokens', 'cachedInputTokens', 'reasoningTokens', 'costMicros', 'ttfbMs', 'durMs', 'stream']) {
      assert.ok(k in line, `log line has ${k}`);
    }
    const all = JSON.stringify(h.logs);
    assert.ok(!all.includes(secret));
    assert.ok(!all.includes('sk-client'));
    assert.ok(!all.includes('sk-upstream'));
  });
});
