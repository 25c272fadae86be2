/**
 * The fake provider's batch APIs, in the providers' real wire formats:
 * - OpenAI: `POST /v1/files` (multipart, purpose=batch), `GET /v1/files/{id}/content`,
 *   `POST /v1/batches`, `GET /v1/batches/{id}`;
 * - Anthropic: `POST /v1/messages/batches`, `GET /v1/messages/batches/{id}`,
 *   `GET /v1/messages/batches/{id}/results`.
 * A batch is processed when it is first read after `processMs`: each request is answered exactly as
 * the real-time endpoint would answer it (same scripts, one-shot scripts included), so the tests
 * drive per-request errors the same way.
 */
import { randomBytes } from 'node:crypto';

/** How the fake treats batches (`FakeProvider.setBatchBehaviour`). */
export interface FakeBatchBehaviour {
  /** Time from creation until a batch is done (default 0: done when first read). */
  processMs?: number;
  /** Creating a batch (and uploading its file) answers this error status. */
  createStatus?: number;
  /** The whole batch fails (OpenAI status `failed`; Anthropic: every request `errored`). */
  fail?: boolean;
  /** The batch expires before any request ran. */
  expire?: boolean;
  /** Reading a batch's state answers this error status (a poll fault). */
  pollStatus?: number;
}

/** A batch the fake received. */
export interface FakeBatchRecord {
  readonly id: string;
  readonly api: 'openai' | 'anthropic';
  readonly customIds: readonly string[];
  readonly models: readonly string[];
  /** OpenAI: the batch's endpoint. */
  readonly endpoint: string;
  processed: boolean;
}

/** Answers one request of a batch as the real-time endpoint would (`endpoint`: chat, embeddings, messages). */
export type OfflineAnswer = (endpoint: 'chat' | 'embeddings' | 'messages', body: Record<string, unknown>) => { status: number; body: string };

interface OpenAIBatch {
  readonly record: FakeBatchRecord;
  readonly createdAt: number;
  readonly inputFileId: string;
  readonly lines: readonly { customId: string; url: string; body: Record<string, unknown> }[];
  status: string;
  outputFileId: string | null;
  errorFileId: string | null;
  counts: { total: number; completed: number; failed: number };
}

interface AnthropicBatch {
  readonly record: FakeBatchRecord;
  readonly createdAt: number;
  readonly requests: readonly { customId: string; params: Record<string, unknown> }[];
  results: string | undefined;
  counts: { processing: number; succeeded: number; errored: number; canceled: number; expired: number };
}

export interface BatchAnswer {
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const id = (prefix: string): string => `${prefix}${randomBytes(12).toString('hex')}`;
const json = (status: number, v: unknown): BatchAnswer => ({ status, body: JSON.stringify(v) });
const openaiError = (status: number, message: string, type = 'invalid_request_error'): BatchAnswer => json(status, { error: { message, type, param: null, code: null } });
const anthropicError = (status: number, message: string, type = 'invalid_request_error'): BatchAnswer => json(status, { type: 'error', error: { type, message } });
const ENDPOINTS: Readonly<Record<string, 'chat' | 'embeddings'>> = { '/v1/chat/completions': 'chat', '/v1/embeddings': 'embeddings' };

/** The `file` part of a multipart/form-data body (and the `purpose` field). */
function multipartFile(body: string, contentType: string): { purpose: string | undefined; filename: string; content: string } | undefined {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/iu.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (boundary === undefined) return undefined;
  let purpose: string | undefined;
  let file: { filename: string; content: string } | undefined;
  for (const part of body.split(`--${boundary}`)) {
    const sep = part.indexOf('\r\n\r\n');
    if (sep === -1) continue;
    const head = part.slice(0, sep);
    const value = part.slice(sep + 4).replace(/\r\n$/u, '');
    const name = /name="([^"]*)"/iu.exec(head)?.[1];
    if (name === 'purpose') purpose = value;
    if (name === 'file') file = { filename: /filename="([^"]*)"/iu.exec(head)?.[1] ?? 'file', content: value };
  }
  return file === undefined ? undefined : { purpose, ...file };
}

export class FakeBatches {
  readonly records: FakeBatchRecord[] = [];
  behaviour: FakeBatchBehaviour = {};
  readonly #files = new Map<string, { filename: string; purpose: string; content: string; createdAt: number }>();
  readonly #openai = new Map<string, OpenAIBatch>();
  readonly #anthropic = new Map<string, AnthropicBatch>();

  constructor(private readonly answer: OfflineAnswer) {}

  reset(): void {
    this.records.length = 0;
    this.behaviour = {};
    this.#files.clear();
    this.#openai.clear();
    this.#anthropic.clear();
  }

  /** Whether `path` belongs to a batch API. */
  static owns(path: string): boolean {
    return path === '/v1/files' || path.startsWith('/v1/files/') || path === '/v1/batches' || path.startsWith('/v1/batches/') || path === '/v1/messages/batches' || path.startsWith('/v1/messages/batches/');
  }

  handle(method: string, path: string, contentType: string, body: string, baseUrl: string): BatchAnswer {
    const parts = path.split('/').slice(1); // ['v1', ...]
    if (parts[1] === 'messages') return this.#anthropicRoute(method, parts.slice(3), body, baseUrl);
    if (parts[1] === 'files') {
      if (method === 'POST' && parts.length === 2) return this.#upload(contentType, body);
      if (method === 'GET' && parts.length === 4 && parts[3] === 'content') {
        const f = this.#files.get(parts[2] ?? '');
        return f === undefined ? openaiError(404, `No such File object: ${parts[2] ?? ''}`) : { status: 200, body: f.content, contentType: 'application/octet-stream' };
      }
      if (method === 'GET' && parts.length === 3) {
        const f = this.#files.get(parts[2] ?? '');
        return f === undefined ? openaiError(404, `No such File object: ${parts[2] ?? ''}`) : json(200, this.#fileObject(parts[2] ?? '', f));
      }
      return openaiError(404, `Invalid URL (${method} ${path})`);
    }
    if (method === 'POST' && parts.length === 2) return this.#createOpenAI(body);
    if (method === 'GET' && parts.length === 3) {
      const b = this.#openai.get(parts[2] ?? '');
      if (this.behaviour.pollStatus !== undefined) return openaiError(this.behaviour.pollStatus, 'The server had an error while processing your request.', 'server_error');
      return b === undefined ? openaiError(404, `No batch found with id '${parts[2] ?? ''}'.`) : json(200, this.#openaiObject(b));
    }
    return openaiError(404, `Invalid URL (${method} ${path})`);
  }

  #fileObject(fileId: string, f: { filename: string; purpose: string; content: string; createdAt: number }): Record<string, unknown> {
    return { id: fileId, object: 'file', bytes: Buffer.byteLength(f.content), created_at: f.createdAt, filename: f.filename, purpose: f.purpose };
  }

  #upload(contentType: string, body: string): BatchAnswer {
    if (this.behaviour.createStatus !== undefined) return openaiError(this.behaviour.createStatus, 'The server had an error while processing your request.', 'server_error');
    const f = multipartFile(body, contentType);
    if (f === undefined) return openaiError(400, "Missing required parameter: 'file'.");
    if (f.purpose !== 'batch') return openaiError(400, `'${f.purpose ?? ''}' is not one of the supported purposes.`);
    const fileId = id('file-');
    const rec = { filename: f.filename, purpose: 'batch', content: f.content, createdAt: Math.floor(Date.now() / 1000) };
    this.#files.set(fileId, rec);
    return json(200, this.#fileObject(fileId, rec));
  }

  #createOpenAI(text: string): BatchAnswer {
    if (this.behaviour.createStatus !== undefined) return openaiError(this.behaviour.createStatus, 'The server had an error while processing your request.', 'server_error');
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch {
      return openaiError(400, 'We could not parse the JSON body of your request.');
    }
    if (!isObject(req)) return openaiError(400, 'The body must be a JSON object.');
    const endpoint = req['endpoint'];
    if (typeof endpoint !== 'string' || ENDPOINTS[endpoint] === undefined) return openaiError(400, `Invalid endpoint ${JSON.stringify(endpoint)}.`);
    if (req['completion_window'] !== '24h') return openaiError(400, "completion_window must be '24h'.");
    const file = this.#files.get(typeof req['input_file_id'] === 'string' ? req['input_file_id'] : '');
    if (file === undefined) return openaiError(400, `Invalid input_file_id.`);
    const lines: { customId: string; url: string; body: Record<string, unknown> }[] = [];
    const seen = new Set<string>();
    for (const raw of file.content.split('\n')) {
      if (raw.trim() === '') continue;
      let l: unknown;
      try {
        l = JSON.parse(raw);
      } catch {
        return openaiError(400, 'The input file has a line that is not valid JSON.');
      }
      if (!isObject(l) || typeof l['custom_id'] !== 'string' || l['method'] !== 'POST' || typeof l['url'] !== 'string' || !isObject(l['body'])) {
        return openaiError(400, 'Each line must have custom_id, method POST, url and body.');
      }
      if (l['url'] !== endpoint) return openaiError(400, `Every request must go to the batch endpoint ${endpoint}.`);
      if (seen.has(l['custom_id'])) return openaiError(400, `Duplicate custom_id ${l['custom_id']}.`);
      seen.add(l['custom_id']);
      lines.push({ customId: l['custom_id'], url: l['url'], body: l['body'] });
    }
    if (lines.length === 0) return openaiError(400, 'The input file is empty.');
    const models = [...new Set(lines.map((l) => String(l.body['model'])))];
    if (models.length > 1) return openaiError(400, 'A batch must use a single model.');
    const record: FakeBatchRecord = { id: id('batch_'), api: 'openai', customIds: lines.map((l) => l.customId), models, endpoint, processed: false };
    this.records.push(record);
    const b: OpenAIBatch = { record, createdAt: Date.now(), inputFileId: req['input_file_id'] as string, lines, status: 'validating', outputFileId: null, errorFileId: null, counts: { total: lines.length, completed: 0, failed: 0 } };
    this.#openai.set(record.id, b);
    return json(200, this.#openaiObject(b, true));
  }

  #openaiObject(b: OpenAIBatch, creating = false): Record<string, unknown> {
    // The creation answer says `validating`; reads after it move on (and process once it is time).
    if (!creating) {
      if (b.status === 'validating') b.status = 'in_progress';
      if (!b.record.processed && Date.now() - b.createdAt >= (this.behaviour.processMs ?? 0)) this.#processOpenAI(b);
    }
    return {
      id: b.record.id,
      object: 'batch',
      endpoint: b.record.endpoint,
      errors: b.status === 'failed' ? { object: 'list', data: [{ code: 'invalid_request', message: 'The batch failed (scripted).', param: null, line: null }] } : null,
      input_file_id: b.inputFileId,
      completion_window: '24h',
      status: b.status,
      output_file_id: b.outputFileId,
      error_file_id: b.errorFileId,
      created_at: Math.floor(b.createdAt / 1000),
      request_counts: b.counts,
      metadata: null,
    };
  }

  #processOpenAI(b: OpenAIBatch): void {
    b.record.processed = true;
    if (this.behaviour.fail === true) {
      b.status = 'failed';
      return;
    }
    const out: string[] = [];
    const errors: string[] = [];
    for (const l of b.lines) {
      if (this.behaviour.expire === true) {
        errors.push(JSON.stringify({ id: id('batch_req_'), custom_id: l.customId, response: null, error: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' } }));
        continue;
      }
      const a = this.answer(ENDPOINTS[l.url] ?? 'chat', l.body);
      const line = JSON.stringify({ id: id('batch_req_'), custom_id: l.customId, response: { status_code: a.status, request_id: id('req_'), body: JSON.parse(a.body) as unknown }, error: null });
      if (a.status < 300) out.push(line);
      else errors.push(line);
    }
    b.counts = { total: b.lines.length, completed: out.length, failed: errors.length };
    const now = Math.floor(Date.now() / 1000);
    if (out.length > 0) {
      b.outputFileId = id('file-');
      this.#files.set(b.outputFileId, { filename: 'batch_output.jsonl', purpose: 'batch_output', content: out.join('\n') + '\n', createdAt: now });
    }
    if (errors.length > 0) {
      b.errorFileId = id('file-');
      this.#files.set(b.errorFileId, { filename: 'batch_errors.jsonl', purpose: 'batch_output', content: errors.join('\n') + '\n', createdAt: now });
    }
    b.status = this.behaviour.expire === true ? 'expired' : 'completed';
  }

  #anthropicRoute(method: string, rest: string[], text: string, baseUrl: string): BatchAnswer {
    if (method === 'POST' && rest.length === 0) return this.#createAnthropic(text);
    const b = this.#anthropic.get(rest[0] ?? '');
    if (method === 'GET' && rest.length === 1) {
      if (this.behaviour.pollStatus !== undefined) return anthropicError(this.behaviour.pollStatus, 'Internal server error', 'api_error');
      return b === undefined ? anthropicError(404, 'Message batch not found', 'not_found_error') : json(200, this.#anthropicObject(b, baseUrl));
    }
    if (method === 'GET' && rest.length === 2 && rest[1] === 'results') {
      if (b === undefined) return anthropicError(404, 'Message batch not found', 'not_found_error');
      if (b.results === undefined) return anthropicError(400, 'Message batch is still in progress', 'invalid_request_error');
      return { status: 200, body: b.results, contentType: 'application/binary' };
    }
    return anthropicError(404, 'Not found', 'not_found_error');
  }

  #createAnthropic(text: string): BatchAnswer {
    if (this.behaviour.createStatus !== undefined) return anthropicError(this.behaviour.createStatus, 'Internal server error', this.behaviour.createStatus === 529 ? 'overloaded_error' : 'api_error');
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch {
      return anthropicError(400, 'There was an error parsing the body of your request: the body is not valid JSON.');
    }
    const list = isObject(req) ? req['requests'] : undefined;
    if (!Array.isArray(list) || list.length === 0) return anthropicError(400, 'requests: Field required');
    const requests: { customId: string; params: Record<string, unknown> }[] = [];
    const seen = new Set<string>();
    for (const r of list) {
      if (!isObject(r) || typeof r['custom_id'] !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/u.test(r['custom_id']) || !isObject(r['params'])) {
        return anthropicError(400, 'requests: each request needs a custom_id (1-64 of [a-zA-Z0-9_-]) and params');
      }
      if (r['params']['stream'] === true) return anthropicError(400, 'requests: streaming is not supported in batches');
      if (seen.has(r['custom_id'])) return anthropicError(400, `Duplicate custom_id ${r['custom_id']}`);
      seen.add(r['custom_id']);
      requests.push({ customId: r['custom_id'], params: r['params'] });
    }
    const record: FakeBatchRecord = { id: id('msgbatch_'), api: 'anthropic', customIds: requests.map((r) => r.customId), models: [...new Set(requests.map((r) => String(r.params['model'])))], endpoint: '/v1/messages', processed: false };
    this.records.push(record);
    const b: AnthropicBatch = { record, createdAt: Date.now(), requests, results: undefined, counts: { processing: requests.length, succeeded: 0, errored: 0, canceled: 0, expired: 0 } };
    this.#anthropic.set(record.id, b);
    return json(200, this.#anthropicObject(b, ''));
  }

  #anthropicObject(b: AnthropicBatch, baseUrl: string): Record<string, unknown> {
    if (!b.record.processed && baseUrl !== '' && Date.now() - b.createdAt >= (this.behaviour.processMs ?? 0)) this.#processAnthropic(b);
    const ended = b.results !== undefined;
    const iso = (ms: number): string => new Date(ms).toISOString();
    return {
      id: b.record.id,
      type: 'message_batch',
      processing_status: ended ? 'ended' : 'in_progress',
      request_counts: b.counts,
      ended_at: ended ? iso(Date.now()) : null,
      created_at: iso(b.createdAt),
      expires_at: iso(b.createdAt + 86_400_000),
      archived_at: null,
      cancel_initiated_at: null,
      results_url: ended ? `${baseUrl}/v1/messages/batches/${b.record.id}/results` : null,
    };
  }

  #processAnthropic(b: AnthropicBatch): void {
    b.record.processed = true;
    const lines: string[] = [];
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 };
    for (const r of b.requests) {
      let result: Record<string, unknown>;
      if (this.behaviour.expire === true) {
        result = { type: 'expired' };
        counts.expired++;
      } else if (this.behaviour.fail === true) {
        result = { type: 'errored', error: { type: 'error', error: { type: 'api_error', message: 'Internal server error (scripted batch failure)' } } };
        counts.errored++;
      } else {
        const a = this.answer('messages', r.params);
        if (a.status < 300) {
          result = { type: 'succeeded', message: JSON.parse(a.body) as unknown };
          counts.succeeded++;
        } else {
          result = { type: 'errored', error: JSON.parse(a.body) as unknown };
          counts.errored++;
        }
      }
      lines.push(JSON.stringify({ custom_id: r.customId, result }));
    }
    b.counts = counts;
    b.results = lines.join('\n') + '\n';
  }
}
