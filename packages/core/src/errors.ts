/**
 * The one error table of Sluice. Every error a caller can see has a stable code here, an HTTP status,
 * the error `type` it gets in the OpenAI and the Anthropic error shapes, and whether retrying the same
 * request elsewhere can help. Codes are API: never rename one, add new ones.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly openaiType: string;
  readonly anthropicType: string;
  readonly retryable: boolean;
  readonly message: string;
}

function spec(status: number, openaiType: string, anthropicType: string, retryable: boolean, message: string): ErrorSpec {
  return Object.freeze({ status, openaiType, anthropicType, retryable, message });
}

export const ERRORS = Object.freeze({
  SLUICE_ERR_HTTP_NOT_FOUND: spec(404, 'invalid_request_error', 'not_found_error', false, 'No such endpoint'),
  SLUICE_ERR_HTTP_METHOD_NOT_ALLOWED: spec(405, 'invalid_request_error', 'invalid_request_error', false, 'Method not allowed on this endpoint'),
  SLUICE_ERR_HTTP_BAD_REQUEST: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'Malformed HTTP request'),
  SLUICE_ERR_REQUEST_MALFORMED_JSON: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'Request body is not valid JSON'),
  SLUICE_ERR_REQUEST_INVALID: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'Request body is invalid'),
  SLUICE_ERR_REQUEST_MODEL_MISSING: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'Request has no model'),
  SLUICE_ERR_REQUEST_TOO_LARGE: spec(413, 'invalid_request_error', 'request_too_large', false, 'Request body exceeds the size limit'),
  SLUICE_ERR_REQUEST_BODY_TIMEOUT: spec(408, 'invalid_request_error', 'timeout_error', false, 'Request body was not received in time'),
  SLUICE_ERR_REQUEST_ABORTED: spec(499, 'invalid_request_error', 'invalid_request_error', false, 'Client closed the request'),
  SLUICE_ERR_ROUTE_MODEL_UNKNOWN: spec(404, 'invalid_request_error', 'not_found_error', false, 'No route serves this model'),
  SLUICE_ERR_ROUTE_UNSUPPORTED: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'The backend chosen for this model cannot serve this API'),
  SLUICE_ERR_LIMIT_EXCEEDED: spec(429, 'rate_limit_error', 'rate_limit_error', true, 'A rate limit of this gateway is exhausted'),
  SLUICE_ERR_LIMIT_BUDGET_EXHAUSTED: spec(429, 'insufficient_quota', 'rate_limit_error', false, 'A spending budget of this gateway is exhausted'),
  SLUICE_ERR_LIMIT_UNAVAILABLE: spec(503, 'api_error', 'api_error', true, 'The shared credit of a global limit cannot be reached (failure mode FailClosed)'),
  SLUICE_ERR_UPSTREAM_CONNECT: spec(502, 'api_error', 'api_error', true, 'Could not connect to the provider'),
  SLUICE_ERR_UPSTREAM_TIMEOUT: spec(504, 'api_error', 'timeout_error', true, 'The provider did not answer in time'),
  SLUICE_ERR_UPSTREAM_AUTH: spec(502, 'api_error', 'api_error', false, 'The provider rejected the gateway credentials'),
  SLUICE_ERR_UPSTREAM_RATE_LIMITED: spec(429, 'rate_limit_error', 'rate_limit_error', true, 'The provider is rate limiting'),
  SLUICE_ERR_UPSTREAM_CLIENT_ERROR: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'The provider rejected the request'),
  SLUICE_ERR_UPSTREAM_SERVER_ERROR: spec(502, 'api_error', 'api_error', true, 'The provider failed'),
  SLUICE_ERR_UPSTREAM_OVERLOADED: spec(529, 'api_error', 'overloaded_error', true, 'The provider is overloaded'),
  SLUICE_ERR_UPSTREAM_BAD_RESPONSE: spec(502, 'api_error', 'api_error', true, 'The provider sent a response the gateway cannot read'),
  SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED: spec(502, 'api_error', 'api_error', false, 'The provider stream ended abruptly'),
  SLUICE_ERR_NOT_READY: spec(503, 'api_error', 'api_error', true, 'The gateway has no policy yet'),
  SLUICE_ERR_FEEDBACK_UNKNOWN_REQUEST: spec(404, 'invalid_request_error', 'not_found_error', false, 'Feedback names a request this sidecar does not know (or no longer remembers)'),
  SLUICE_ERR_GUARDRAIL_BLOCKED: spec(400, 'invalid_request_error', 'invalid_request_error', false, 'An LLMGuardrail blocked the request or its answer'),
  SLUICE_ERR_GUARDRAIL_UNAVAILABLE: spec(503, 'api_error', 'api_error', true, 'The external classifier of an LLMGuardrail failed or timed out (onError: block)'),
  SLUICE_ERR_BATCH_UNKNOWN_REQUEST: spec(404, 'invalid_request_error', 'not_found_error', false, 'No batched request with this id (unknown, expired, or the sidecar restarted)'),
  SLUICE_ERR_BATCH_ABANDONED: spec(503, 'api_error', 'api_error', true, 'The sidecar stopped before the batch this request was in finished'),
  SLUICE_ERR_FEEDBACK_DUPLICATE: spec(409, 'invalid_request_error', 'invalid_request_error', false, 'That request already has feedback'),
  SLUICE_ERR_INTERNAL: spec(500, 'api_error', 'api_error', false, 'Internal gateway error'),
} satisfies Record<string, ErrorSpec>);

export type ErrorCode = keyof typeof ERRORS;

/** A failure with a stable code. `status` defaults to the table's; upstream errors may carry their own. */
export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra headers the caller should get (e.g. `retry-after` forwarded from a provider). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Parameter the error is about (OpenAI `param`). */
  readonly param: string | undefined;

  constructor(code: ErrorCode, message?: string, options?: { status?: number; headers?: Record<string, string>; param?: string; cause?: unknown }) {
    const s = ERRORS[code];
    super(message ?? s.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SluiceError';
    this.code = code;
    this.status = options?.status ?? s.status;
    this.headers = options?.headers;
    this.param = options?.param;
  }

  get spec(): ErrorSpec {
    return ERRORS[this.code];
  }
}

/** Anything thrown, as a SluiceError (unknown failures become SLUICE_ERR_INTERNAL). */
export function toSluiceError(e: unknown): SluiceError {
  if (e instanceof SluiceError) return e;
  return new SluiceError('SLUICE_ERR_INTERNAL', undefined, { cause: e });
}

/** The API shape a caller speaks; errors are rendered in it. */
export type ApiShape = 'openai' | 'anthropic';

/** Error body in the OpenAI shape: `{"error":{message,type,param,code}}`. */
export function openaiErrorBody(err: SluiceError): string {
  return JSON.stringify({ error: { message: err.message, type: err.spec.openaiType, param: err.param ?? null, code: err.code } });
}

/** Error body in the Anthropic shape: `{"type":"error","error":{type,message}}`. */
export function anthropicErrorBody(err: SluiceError, requestId?: string): string {
  const body: Record<string, unknown> = { type: 'error', error: { type: err.spec.anthropicType, message: err.message } };
  if (requestId !== undefined) body['request_id'] = requestId;
  return JSON.stringify(body);
}

export function errorBody(shape: ApiShape, err: SluiceError, requestId?: string): string {
  return shape === 'anthropic' ? anthropicErrorBody(err, requestId) : openaiErrorBody(err);
}

/**
 * The one terminal SSE event that ends a stream which already started: OpenAI clients read a data
 * line whose JSON has `error`; Anthropic clients read an `event: error`.
 */
export function errorEvent(shape: ApiShape, err: SluiceError, requestId?: string): string {
  return shape === 'anthropic'
    ? `event: error\ndata: ${anthropicErrorBody(err, requestId)}\n\n`
    : `data: ${openaiErrorBody(err)}\n\n`;
}
