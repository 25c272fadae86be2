/**
 * Hostile input: thousands of malformed requests (random bytes, truncated HTTP, mutated JSON, wrong
 * field types, huge and repeated headers, slow bodies). Every answer is a 4xx in the caller's shape
 * (or a normal answer when a mutation happens to stay valid), never a 5xx from the gateway itself;
 * memory stays bounded and the server keeps serving.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { seededRandom } from '@sluice/core';
import type { AnyPolicyObject } from '@sluice/policy';
import { startHarness, type Harness } from './harness.js';

const obj = (kind: string, name: string, spec: unknown): AnyPolicyObject => ({ apiVersion: 'sluice.dev/v1alpha1', kind, metadata: { name }, spec }) as unknown as AnyPolicyObject;
// A route with everything that walks the body: guardrails (redact, block), the response cache, prompt logging.
const GUARDED = [
  obj('LLMRoute', 'guarded', { rules: [{ match: { models: ['fuzz-guarded'] }, backends: [{ name: 'openai', modelOverride: 'gpt-4o-mini' }], retry: { attempts: 1 }, logging: { prompts: true, completions: true, maxChars: 200 } }] }),
  obj('LLMGuardrail', 'pii', { match: { routes: ['guarded'] }, direction: 'both', action: 'redact', detectors: [{ kind: 'email' }, { kind: 'creditCard' }, { kind: 'secret' }] }),
  obj('LLMGuardrail', 'injection', { match: { routes: ['guarded'] }, direction: 'input', action: 'block', detectors: [{ kind: 'injection' }] }),
  obj('LLMCache', 'cache', { match: { routes: ['guarded'] }, exact: true, cacheNonDeterministic: true }),
];

let h: Harness;
let port = 0;
before(async () => {
  h = await startHarness({ maxBodyBytes: 256 * 1024, bodyTimeoutMs: 200 }, GUARDED);
  port = Number(new URL(h.sidecar.url).port);
});
after(() => h.close());

const SEED = Number(process.env['SLUICE_FUZZ_SEED'] ?? 20261123);
// Seeded, so a failure can be replayed.
const rand = seededRandom(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;

/** Sends raw bytes and returns the status line's code (0 if the server just closed). */
function raw(bytes: Buffer | string, waitMs = 300): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text });
    };
    const timer = setTimeout(done, waitMs);
    s.on('data', (d) => {
      text += d.toString('latin1');
    });
    s.on('close', done);
    s.on('error', done);
    s.write(bytes);
  });
}

const VALID: Array<[string, Record<string, unknown>]> = [
  ['/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }],
  ['/v1/chat/completions', { model: 'claude-haiku-4-5', messages: [{ role: 'system', content: 's' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }], stream: true }],
  ['/v1/messages', { model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }],
  ['/v1/messages', { model: 'gpt-4o-mini', max_tokens: 5, system: [{ type: 'text', text: 's' }], messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], stream: true }],
  ['/v1/embeddings', { model: 'text-embedding-3-small', input: ['a'] }],
  ['/v1/responses', { model: 'claude-haiku-4-5', instructions: 's', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }, { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 'c', output: 'x' }], tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }], stream: true }],
  ['/v1/responses', { model: 'gpt-4o-mini', input: 'hi' }],
  ['/v1/chat/completions', { model: 'fuzz-guarded', messages: [{ role: 'user', content: 'mail a@example.com' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"to":"b@example.com"}' } }] }, { role: 'tool', tool_call_id: 'c', content: 'ok' }] }],
  ['/v1/messages', { model: 'fuzz-guarded', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'text', text: 'card 4111 1111 1111 1111' }] }, { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: { q: 'x@example.com' } }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'r' }] }], stream: true }],
  ['/v1/responses', { model: 'fuzz-guarded', instructions: 'be nice', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi a@example.com' }] }] }],
];
const WEIRD: unknown[] = [null, 0, -1, 1e308, true, '', 'x'.repeat(300), [], [null], {}, { type: 'nope' }, [{ role: 7 }], [{ role: 'tool' }], [{ type: 'image_url', image_url: 7 }], [{ role: 'assistant', tool_calls: [{ function: { arguments: '{bad' } }] }]];

function mutate(obj: Record<string, unknown>): string {
  const o = structuredClone(obj);
  const json = JSON.stringify(o);
  switch (int(8)) {
    case 0:
      return json.slice(0, int(json.length));
    case 1: {
      const chars = [...json];
      for (let i = 0; i < 1 + int(5); i++) chars[int(chars.length)] = pick(['{', '}', '"', ',', ':', '\\', '\u0000', 'é', '[', ']']);
      return chars.join('');
    }
    case 2: {
      const keys = Object.keys(o);
      o[pick(keys)] = pick(WEIRD);
      return JSON.stringify(o);
    }
    case 3: {
      const msgs = o['messages'];
      if (Array.isArray(msgs) && msgs.length > 0) {
        const m = msgs[int(msgs.length)] as Record<string, unknown>;
        m[pick(['role', 'content', 'tool_calls', 'tool_call_id', 'name'])] = pick(WEIRD);
      }
      return JSON.stringify(o);
    }
    case 4:
      return '['.repeat(5000 + int(50000));
    case 5:
      return pick(['', 'null', '"str"', '123', 'true', '{"model":{}}', '{"model":"gpt-4o-mini","messages":[]}']);
    case 6: {
      // Valid JSON nested deep inside a field (deeper than any walk over the body may recurse).
      const n = 50 + int(5000);
      const key = pick(['messages', 'input', 'tools', 'system', 'metadata']);
      const text = JSON.stringify(o);
      return `${text.slice(0, -1)},"${key}":${'['.repeat(n)}"x"${']'.repeat(n)}}`;
    }
    default:
      o[pick(['tools', 'tool_choice', 'stop', 'stream_options', 'max_tokens', 'system', 'temperature', 'input'])] = pick(WEIRD);
      return JSON.stringify(o);
  }
}

async function fuzzJson(n: number, failures: string[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const [path, body] = pick(VALID);
    const text = mutate(body);
    let res: Response;
    try {
      res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body: text, headers: { 'content-type': 'application/json' } });
    } catch (e) {
      failures.push(`${path} ${text.slice(0, 80)}: fetch failed ${(e as Error).message}`);
      continue;
    }
    const out = await res.text();
    if (res.status >= 500) failures.push(`${path} ${text.slice(0, 120)} → ${res.status} ${out.slice(0, 200)}`);
    if (res.status >= 400) {
      const j = JSON.parse(out) as Record<string, unknown>;
      const ok = path === '/v1/messages' ? j['type'] === 'error' : typeof (j['error'] as Record<string, unknown> | undefined)?.['code'] === 'string';
      if (!ok || res.headers.get('x-sluice-error-code') === null) failures.push(`${path}: wrong error shape ${out.slice(0, 200)}`);
    }
  }
}

test('thousands of malformed requests get 4xx answers in the caller shape', async () => {
  const failures: string[] = [];
  const heapBefore = process.memoryUsage().heapUsed;
  // Mutated JSON bodies, 8 concurrent clients.
  await Promise.all(Array.from({ length: 8 }, () => fuzzJson(250, failures)));
  // Random bytes and broken HTTP framing on raw sockets.
  for (let i = 0; i < 400; i++) {
    const kind = int(4);
    let bytes: Buffer | string;
    if (kind === 0) bytes = Buffer.from(Array.from({ length: 1 + int(2048) }, () => int(256)));
    else if (kind === 1) bytes = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${int(100)}\r\n\r\n{"mo`;
    else if (kind === 2) bytes = `POST /v1/messages HTTP/1.1\r\nHost: x\r\n${'X-Big: ' + 'a'.repeat(20_000)}\r\n\r\n`;
    else bytes = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 2000 }, (_, j) => `x-r: ${j}`).join('\r\n')}\r\n\r\n`;
    const { status, text } = await raw(bytes, kind === 1 ? 400 : 200);
    if (status !== 0 && (status < 400 || status >= 500)) failures.push(`raw kind ${kind} → ${status} ${text.slice(0, 200)}`);
    if (kind >= 2 && status !== 431 && status !== 400) failures.push(`huge/repeated headers → ${status}`);
  }
  assert.deepEqual(failures.slice(0, 20), [], `seed ${SEED}: ${failures.length} failures`);
  // Still serving.
  const ok = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(VALID[0]?.[1]) });
  assert.equal(ok.status, 200);
  global.gc?.();
  const growthMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
  assert.ok(growthMb < 100, `heap grew by ${growthMb.toFixed(1)} MB`);
});
