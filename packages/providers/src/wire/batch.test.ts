import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  anthropicBatchCreate,
  anthropicBatchResults,
  anthropicBatchState,
  openaiBatchInput,
  openaiBatchResults,
  openaiBatchState,
  openaiFileUpload,
  type BatchResult,
} from './batch.js';

test('OpenAI batch input: one JSONL line per request, bodies kept byte for byte', () => {
  const body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"héllo \\u2028"}]}';
  const text = openaiBatchInput('/v1/chat/completions', [
    { customId: 'a_1', body },
    { customId: 'a_2', body: '{"model":"gpt-4o-mini","messages":[]}' },
  ]);
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0] ?? '') as { custom_id: string; method: string; url: string; body: unknown };
  assert.deepEqual({ ...first, body: undefined }, { custom_id: 'a_1', method: 'POST', url: '/v1/chat/completions', body: undefined });
  assert.ok(lines[0]?.endsWith(`"body":${body}}`));
  const upload = openaiFileUpload(text, 'in"put.jsonl', 'XYZ');
  assert.match(upload, /^--XYZ\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--XYZ\r\n/u);
  assert.match(upload, /filename="input\.jsonl"/u, 'quotes cannot break the header');
  assert.ok(upload.endsWith('\r\n--XYZ--\r\n'));
});

test('OpenAI batch states and results, garbage lines skipped', () => {
  assert.deepEqual(openaiBatchState('{"id":"batch_1","status":"in_progress"}'), { state: 'pending', id: 'batch_1' });
  assert.deepEqual(openaiBatchState('{"id":"batch_1","status":"completed","output_file_id":"file-o","error_file_id":null}'), { state: 'done', id: 'batch_1', outputRef: 'file-o', errorRef: undefined });
  const failed = openaiBatchState('{"id":"batch_1","status":"failed","errors":{"data":[{"message":"bad file"}]}}');
  assert.deepEqual(failed, { state: 'failed', id: 'batch_1', message: 'bad file' });
  assert.throws(() => openaiBatchState('{"id":"batch_1","status":"weird"}'), /unknown status/u);
  assert.throws(() => openaiBatchState('<html>'), /not JSON/u);
  assert.throws(() => openaiBatchState('{"status":"completed"}'), /no id/u);
  const out = new Map<string, BatchResult>();
  openaiBatchResults(
    [
      '{"id":"r1","custom_id":"a","response":{"status_code":200,"body":{"id":"chatcmpl-1"}},"error":null}',
      'not json at all',
      '{"id":"r2","custom_id":"b","response":{"status_code":400,"body":{"error":{"message":"no"}}},"error":null}',
      '{"id":"r3","custom_id":"c","response":null,"error":{"code":"batch_expired","message":"late"}}',
      '{"id":"r4","custom_id":"d","response":null,"error":{"code":"server_error","message":"boom"}}',
    ].join('\n'),
    out,
  );
  assert.deepEqual(out.get('a'), { status: 200, body: '{"id":"chatcmpl-1"}' });
  assert.equal((out.get('b') as { status: number }).status, 400);
  assert.deepEqual(out.get('c'), { reason: 'expired' });
  assert.equal((out.get('d') as { status: number }).status, 500);
  assert.match((out.get('d') as { body: string }).body, /boom/u);
  assert.equal(out.size, 4);
});

test('Anthropic Message Batches: create body, states, results by type', () => {
  const create = JSON.parse(anthropicBatchCreate([{ customId: 'x_1', body: '{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}' }])) as { requests: Array<{ custom_id: string; params: { model: string } }> };
  assert.equal(create.requests[0]?.custom_id, 'x_1');
  assert.equal(create.requests[0]?.params.model, 'claude-haiku-4-5');
  assert.deepEqual(anthropicBatchState('{"id":"msgbatch_1","processing_status":"in_progress"}'), { state: 'pending', id: 'msgbatch_1' });
  assert.deepEqual(anthropicBatchState('{"id":"msgbatch_1","processing_status":"ended"}'), { state: 'done', id: 'msgbatch_1', outputRef: 'msgbatch_1', errorRef: undefined });
  const out = new Map<string, BatchResult>();
  anthropicBatchResults(
    [
      '{"custom_id":"a","result":{"type":"succeeded","message":{"id":"msg_1","type":"message"}}}',
      '{"custom_id":"b","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"no"}}}}',
      '{"custom_id":"c","result":{"type":"expired"}}',
      '{"custom_id":"d","result":{"type":"canceled"}}',
      '{"custom_id":"e","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"busy"}}}}',
      '{"custom_id":"f"}',
    ].join('\n'),
    out,
  );
  assert.deepEqual(out.get('a'), { status: 200, body: '{"id":"msg_1","type":"message"}' });
  assert.equal((out.get('b') as { status: number }).status, 400);
  assert.deepEqual(out.get('c'), { reason: 'expired' });
  assert.deepEqual(out.get('d'), { reason: 'canceled' });
  assert.equal((out.get('e') as { status: number }).status, 529);
  assert.equal(out.has('f'), false);
});
