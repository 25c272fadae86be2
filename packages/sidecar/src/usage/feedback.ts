/**
 * `POST /v1/feedback`: a score and/or label about an earlier request, by its id (the `x-request-id`
 * of its answer). The feedback is logged with the request's attribution and counted in usage under
 * the same attribution (count and score sum), so spend and quality join by any dimension.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@sluice/core';
import { SluiceError } from '@sluice/core';
import { readBody, sendError } from '../http-util.js';
import { attributionValue, type Attribution } from './aggregate.js';
import type { UsageSink } from '../handler.js';

interface Recent {
  readonly route: string | undefined;
  readonly backend: string | undefined;
  readonly model: string | undefined;
  readonly attribution: Attribution;
  answered: boolean;
}

/**
 * The last requests' attribution, for feedback about them: two generations of `max / 2` entries
 * (the older one dropped whole when the newer fills), so remembering is O(1) with no per-entry
 * eviction; between `max / 2` and `max` recent requests are remembered.
 */
export class RecentRequests {
  #current = new Map<string, Recent>();
  #previous = new Map<string, Recent>();
  constructor(readonly max = 10_000) {}

  remember(id: string, r: Omit<Recent, 'answered'>): void {
    if (this.#current.size >= this.max / 2) {
      this.#previous = this.#current;
      this.#current = new Map();
    }
    this.#current.set(id, { route: r.route, backend: r.backend, model: r.model, attribution: r.attribution, answered: false });
  }

  get(id: string): Recent | undefined {
    return this.#current.get(id) ?? this.#previous.get(id);
  }
}

const MAX_FEEDBACK_BYTES = 16 * 1024;

export async function handleFeedback(d: { recent: RecentRequests; usage: () => UsageSink | undefined; logger: Logger; bodyTimeoutMs: number }, req: IncomingMessage, res: ServerResponse, id: string): Promise<{ status: number; code: string | undefined }> {
  try {
    let body: Record<string, unknown>;
    try {
      const raw = (await readBody(req, MAX_FEEDBACK_BYTES, d.bodyTimeoutMs)).toString('utf8');
      const parsed: unknown = JSON.parse(raw);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'feedback must be a JSON object');
      body = parsed as Record<string, unknown>;
    } catch (e) {
      if (e instanceof SluiceError) throw e;
      throw new SluiceError('SLUICE_ERR_REQUEST_MALFORMED_JSON', 'feedback is not valid JSON');
    }
    const requestId = body['request_id'];
    if (typeof requestId !== 'string' || requestId === '' || requestId.length > 128) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'request_id must be the x-request-id of an answer', { param: 'request_id' });
    const score = body['score'];
    const label = body['label'];
    if (score !== undefined && (typeof score !== 'number' || !Number.isFinite(score) || score < 0 || score > 1)) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'score must be a number from 0 to 1', { param: 'score' });
    if (label !== undefined && (typeof label !== 'string' || label.length === 0 || label.length > 64)) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'label must be a string of 1 to 64 characters', { param: 'label' });
    if (score === undefined && label === undefined) throw new SluiceError('SLUICE_ERR_REQUEST_INVALID', 'feedback needs a score (0 to 1) or a label', { param: 'score' });
    const comment = body['comment'];
    const r = d.recent.get(requestId);
    if (r === undefined) throw new SluiceError('SLUICE_ERR_FEEDBACK_UNKNOWN_REQUEST', `No recent request ${JSON.stringify(requestId)} on this sidecar (feedback is accepted for its last ${d.recent.max} requests)`, { param: 'request_id' });
    if (r.answered) throw new SluiceError('SLUICE_ERR_FEEDBACK_DUPLICATE', `Request ${requestId} already has feedback`, { param: 'request_id' });
    r.answered = true;
    const scoreMilli = typeof score === 'number' ? Math.round(score * 1000) : undefined;
    d.logger.info(
      {
        id,
        requestId,
        score: score ?? null,
        label: typeof label === 'string' ? attributionValue(label) : null,
        commentLength: typeof comment === 'string' ? comment.length : 0,
        route: r.route,
        backend: r.backend,
        model: r.model,
        ...r.attribution,
      },
      'feedback',
    );
    // Counted only with a score: the count is the denominator of the average score.
    if (scoreMilli !== undefined) d.usage()?.recordFeedback(r, r.attribution, scoreMilli);
    const out = JSON.stringify({ status: 'recorded', request_id: requestId });
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out), 'x-request-id': id });
    res.end(out);
    return { status: 202, code: undefined };
  } catch (e) {
    const err = e instanceof SluiceError ? e : new SluiceError('SLUICE_ERR_INTERNAL', undefined, { cause: e });
    sendError(res, 'openai', err, id);
    return { status: err.status, code: err.code };
  }
}
