/**
 * The two providers' batch APIs as pure data: what the gateway sends (OpenAI: a JSONL input file then
 * a batch naming it; Anthropic: one Message Batch with its requests inline) and how it reads the
 * batch's state and results. No I/O here; the sidecar's batcher does the calls.
 *
 * A result is reduced to the status and body the provider would have answered the same request with
 * in real time, so the gateway reads it with its ordinary response path (translation, usage, errors).
 */

/** One request of a batch: an id unique within the batch and the upstream request body (JSON text). */
export interface BatchLine {
  readonly customId: string;
  /** The request body, already in the provider's format, as JSON text (not re-serialised). */
  readonly body: string;
}

/** Where a batch stands. */
export type BatchState =
  | { readonly state: 'pending'; readonly id: string }
  | { readonly state: 'done'; readonly id: string; readonly outputRef: string | undefined; readonly errorRef: string | undefined }
  | { readonly state: 'failed'; readonly id: string; readonly message: string };

/** One result: the real-time status and body, or a request the provider never ran (`reason`). */
export type BatchResult = { readonly status: number; readonly body: string } | { readonly reason: 'expired' | 'canceled' };

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseObject(text: string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`${what} is not JSON`);
  }
  if (!isObj(v)) throw new Error(`${what} is not a JSON object`);
  return v;
}

function idOf(j: Json, what: string): string {
  const id = j['id'];
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new Error(`${what} has no id`);
  return id;
}

/** Non-empty lines of a JSONL text, each parsed; a line that is not an object is skipped. */
function* jsonLines(text: string): Generator<Json> {
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t.length === 0) continue;
    try {
      const v: unknown = JSON.parse(t);
      if (isObj(v)) yield v;
    } catch {
      // one garbled line loses only its own request (reported as missing)
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// OpenAI Batch API: POST /v1/files (purpose=batch), POST /v1/batches, GET /v1/batches/{id},
// GET /v1/files/{id}/content.

/** The JSONL input file: one `{custom_id, method, url, body}` line per request. */
export function openaiBatchInput(url: string, lines: readonly BatchLine[]): string {
  const head = (id: string): string => `{"custom_id":${JSON.stringify(id)},"method":"POST","url":${JSON.stringify(url)},"body":`;
  return lines.map((l) => `${head(l.customId)}${l.body}}\n`).join('');
}

/** A multipart/form-data body uploading `content` as a file with purpose `batch`. */
export function openaiFileUpload(content: string, filename: string, boundary: string): string {
  return (
    `--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename.replace(/["\r\n]/gu, '')}"\r\ncontent-type: application/jsonl\r\n\r\n` +
    `${content}\r\n--${boundary}--\r\n`
  );
}

/** The file id in the answer to a file upload. */
export function openaiFileId(text: string): string {
  return idOf(parseObject(text, 'The file upload answer'), 'The file upload answer');
}

/** The body creating a batch over an uploaded input file. */
export function openaiBatchCreate(inputFileId: string, endpoint: string, metadata: Readonly<Record<string, string>>): string {
  return JSON.stringify({ input_file_id: inputFileId, endpoint, completion_window: '24h', metadata });
}

/** Reads a batch object (create or retrieve answer). */
export function openaiBatchState(text: string): BatchState {
  const j = parseObject(text, 'The batch object');
  const id = idOf(j, 'The batch object');
  const status = j['status'];
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
  switch (status) {
    case 'validating':
    case 'in_progress':
    case 'finalizing':
    case 'cancelling':
      return { state: 'pending', id };
    case 'completed':
    case 'expired':
    case 'cancelled':
      // Expired and cancelled batches still hand out the results of the requests that ran.
      return { state: 'done', id, outputRef: str(j['output_file_id']), errorRef: str(j['error_file_id']) };
    case 'failed': {
      const errors = j['errors'];
      const data = isObj(errors) && Array.isArray(errors['data']) ? errors['data'] : [];
      const first: unknown = data[0];
      const message = isObj(first) && typeof first['message'] === 'string' ? first['message'] : 'the provider failed the batch';
      return { state: 'failed', id, message: message.slice(0, 500) };
    }
    default:
      throw new Error(`The batch object has an unknown status ${JSON.stringify(status)?.slice(0, 40)}`);
  }
}

/**
 * Reads an output or error file into `into` (custom_id → result). A line with a response gives its
 * status and body; one with only an error (the request never reached the model) reads as a 500 with
 * the provider's message, or as expired when the batch ran out of time.
 */
export function openaiBatchResults(text: string, into: Map<string, BatchResult>): void {
  for (const j of jsonLines(text)) {
    const id = j['custom_id'];
    if (typeof id !== 'string') continue;
    const response = j['response'];
    if (isObj(response) && typeof response['status_code'] === 'number' && response['body'] !== undefined) {
      into.set(id, { status: response['status_code'], body: JSON.stringify(response['body']) });
      continue;
    }
    const error = j['error'];
    const code = isObj(error) ? error['code'] : undefined;
    if (code === 'batch_expired') into.set(id, { reason: 'expired' });
    else if (code === 'batch_cancelled') into.set(id, { reason: 'canceled' });
    else {
      const message = isObj(error) && typeof error['message'] === 'string' ? error['message'] : 'the request failed in the batch';
      into.set(id, { status: 500, body: JSON.stringify({ error: { message, type: 'server_error', code: typeof code === 'string' ? code : null } }) });
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Anthropic Message Batches: POST /v1/messages/batches, GET /v1/messages/batches/{id},
// GET /v1/messages/batches/{id}/results.

/** The body creating a Message Batch: each request's params are the Messages request as sent. */
export function anthropicBatchCreate(lines: readonly BatchLine[]): string {
  return `{"requests":[${lines.map((l) => `{"custom_id":${JSON.stringify(l.customId)},"params":${l.body}}`).join(',')}]}`;
}

/** Reads a Message Batch object. The results are fetched from `{batches path}/{id}/results`. */
export function anthropicBatchState(text: string): BatchState {
  const j = parseObject(text, 'The message batch object');
  const id = idOf(j, 'The message batch object');
  const status = j['processing_status'];
  if (status === 'in_progress' || status === 'canceling') return { state: 'pending', id };
  if (status === 'ended') return { state: 'done', id, outputRef: id, errorRef: undefined };
  throw new Error(`The message batch has an unknown processing_status ${JSON.stringify(status)?.slice(0, 40)}`);
}

const ANTHROPIC_ERROR_STATUS: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

/** Reads the results JSONL of a Message Batch into `into` (custom_id → result). */
export function anthropicBatchResults(text: string, into: Map<string, BatchResult>): void {
  for (const j of jsonLines(text)) {
    const id = j['custom_id'];
    const result = j['result'];
    if (typeof id !== 'string' || !isObj(result)) continue;
    switch (result['type']) {
      case 'succeeded':
        if (isObj(result['message'])) into.set(id, { status: 200, body: JSON.stringify(result['message']) });
        break;
      case 'errored': {
        // `error` is the error response body the Messages API would have answered with.
        const body = isObj(result['error']) ? result['error'] : { type: 'error', error: { type: 'api_error', message: 'the request failed in the batch' } };
        const inner = body['error'];
        const type = isObj(inner) && typeof inner['type'] === 'string' ? inner['type'] : 'api_error';
        into.set(id, { status: ANTHROPIC_ERROR_STATUS[type] ?? 500, body: JSON.stringify(body) });
        break;
      }
      case 'expired':
        into.set(id, { reason: 'expired' });
        break;
      case 'canceled':
        into.set(id, { reason: 'canceled' });
        break;
      default:
        break;
    }
  }
}
