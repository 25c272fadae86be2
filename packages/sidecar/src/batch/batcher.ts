import { randomBytes } from 'node:crypto';
import { SluiceError, toSluiceError, type Logger } from '@sluice/core';
import {
  anthropicBatchCreate,
  anthropicBatchResults,
  anthropicBatchState,
  openaiBatchCreate,
  openaiBatchInput,
  openaiBatchResults,
  openaiBatchState,
  openaiFileId,
  openaiFileUpload,
  type BatchLine,
  type BatchResult,
  type BatchState,
} from '@sluice/providers';
import type { SnapshotBackend } from '@sluice/policy';
import { callUpstream, upstreamStatusError, type UpstreamPools } from '../upstream.js';

/** The batch API a backend offers, from its paths: OpenAI Batch (files + batches) or Anthropic Message Batches. */
export type BatchApi = 'openai' | 'anthropic';

export function batchApiOf(backend: SnapshotBackend): BatchApi | undefined {
  if (backend.paths['batches'] === undefined) return undefined;
  if (backend.schema === 'anthropic') return 'anthropic';
  return backend.paths['files'] === undefined ? undefined : 'openai';
}

/** A rule's batching parameters. */
export interface BatchSpec {
  readonly windowMs: number;
  readonly maxRequests: number;
  readonly pollMs: number;
}

/**
 * What became of a batched request: the provider's result (the status and body it would have
 * answered in real time, or expired/canceled); `fallback` when the batch could not be submitted or
 * the provider failed it as a whole (the caller is then served in real time); `abandoned` when the
 * sidecar stopped first.
 */
export type BatchOutcome =
  | { readonly kind: 'result'; readonly batchId: string; readonly result: BatchResult }
  | { readonly kind: 'fallback'; readonly batchId: string | undefined; readonly error: SluiceError }
  | { readonly kind: 'abandoned' };

export interface BatchTicket {
  readonly customId: string;
  /** The provider's batch id once the batch is submitted. */
  readonly batchId: string | undefined;
  readonly outcome: Promise<BatchOutcome>;
  /** Takes the request back while its batch is still being collected (true); false once submitted. */
  withdraw(): boolean;
}

export interface BatcherStats {
  /** Requests collected, not submitted yet. */
  readonly queued: number;
  /** Requests in submitted batches, waiting for results. */
  readonly waiting: number;
  /** Batches submitted and not finished. */
  readonly openBatches: number;
}

export interface BatcherOptions {
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  /** Called per batch event (submitted, completed, failed, submit_failed). */
  readonly onBatch?: (backend: string, outcome: 'submitted' | 'completed' | 'failed' | 'submit_failed', requests: number) => void;
  /** A batch not finished this long after submission is given up (default 25 h; providers expire at 24 h). */
  readonly giveUpMs?: number;
  /** Timeout of one batch API call (default 60 s). */
  readonly callTimeoutMs?: number;
}

interface Item {
  readonly customId: string;
  readonly body: string;
  readonly settle: (o: BatchOutcome) => void;
  batchId: string | undefined;
  done: boolean;
}

interface Collecting {
  readonly key: string;
  readonly backend: SnapshotBackend;
  readonly api: BatchApi;
  /** The upstream endpoint path every request of the batch goes to. */
  readonly path: string;
  readonly spec: BatchSpec;
  readonly items: Item[];
  bytes: number;
  timer: NodeJS.Timeout | undefined;
}

interface Open {
  readonly id: string;
  readonly backend: SnapshotBackend;
  readonly api: BatchApi;
  readonly items: Map<string, Item>;
  readonly giveUpAt: number;
  readonly pollMs: number;
  timer: NodeJS.Timeout | undefined;
  failures: number;
}

/** The providers' limits are 200–256 MB per batch; a batch is submitted before it holds this much. */
const MAX_BATCH_BYTES = 96 * 1024 * 1024;
/** Largest batch object / results file read. */
const MAX_ANSWER_BYTES = 512 * 1024 * 1024;

/**
 * Batch routing: collects latency-tolerant requests per (backend, endpoint, model), submits them
 * through the provider's batch API when the rule's window ends or the batch is full, polls the batch,
 * and hands each caller its own result. Everything is in memory: a sidecar restart loses the batches
 * in flight (their callers get `abandoned`).
 */
export class Batcher {
  readonly #collecting = new Map<string, Collecting>();
  readonly #open = new Set<Open>();
  readonly #prefix = randomBytes(4).toString('hex');
  readonly #giveUpMs: number;
  readonly #callTimeoutMs: number;
  #seq = 0;
  #closed = false;

  constructor(private readonly options: BatcherOptions) {
    this.#giveUpMs = options.giveUpMs ?? 25 * 3_600_000;
    this.#callTimeoutMs = options.callTimeoutMs ?? 60_000;
  }

  get stats(): BatcherStats {
    let queued = 0;
    for (const c of this.#collecting.values()) queued += c.items.length;
    let waiting = 0;
    for (const o of this.#open) for (const i of o.items.values()) if (!i.done) waiting++;
    return { queued, waiting, openBatches: this.#open.size };
  }

  /** Adds a request (its upstream body, JSON text) to the batch being collected for its backend, endpoint and model. */
  enqueue(backend: SnapshotBackend, api: BatchApi, path: string, model: string, body: string, spec: BatchSpec): BatchTicket {
    const key = `${backend.id}|${path}|${model}`;
    let c = this.#collecting.get(key);
    if (c === undefined) {
      c = { key, backend, api, path, spec, items: [], bytes: 0, timer: undefined };
      this.#collecting.set(key, c);
      const coll = c;
      c.timer = setTimeout(() => this.#submit(coll), spec.windowMs);
      c.timer.unref();
    }
    let settle!: (o: BatchOutcome) => void;
    const outcome = new Promise<BatchOutcome>((resolve) => (settle = resolve));
    const item: Item = { customId: `${this.#prefix}_${(this.#seq++).toString(36)}`, body, settle, batchId: undefined, done: false };
    if (this.#closed) {
      item.done = true;
      settle({ kind: 'abandoned' });
    } else {
      c.items.push(item);
      c.bytes += body.length + 128;
      if (c.items.length >= c.spec.maxRequests || c.bytes >= MAX_BATCH_BYTES) this.#submit(c);
    }
    const coll = c;
    return {
      customId: item.customId,
      get batchId() {
        return item.batchId;
      },
      outcome,
      withdraw: () => {
        const at = coll.items.indexOf(item);
        if (at === -1 || this.#collecting.get(coll.key) !== coll) return false;
        coll.items.splice(at, 1);
        coll.bytes -= body.length + 128;
        this.#settle(item, { kind: 'abandoned' });
        if (coll.items.length === 0) {
          clearTimeout(coll.timer);
          this.#collecting.delete(coll.key);
        }
        return true;
      },
    };
  }

  /** Submits every batch being collected now (shutdown). */
  flushAll(): void {
    for (const c of [...this.#collecting.values()]) this.#submit(c);
  }

  /** Stops polling; every request still waiting gets `abandoned`. */
  close(): void {
    this.#closed = true;
    for (const c of this.#collecting.values()) {
      clearTimeout(c.timer);
      for (const i of c.items) this.#settle(i, { kind: 'abandoned' });
    }
    this.#collecting.clear();
    for (const o of this.#open) {
      clearTimeout(o.timer);
      for (const i of o.items.values()) this.#settle(i, { kind: 'abandoned' });
    }
    this.#open.clear();
  }

  #settle(item: Item, o: BatchOutcome): void {
    if (item.done) return;
    item.done = true;
    item.settle(o);
  }

  #submit(c: Collecting): void {
    if (this.#collecting.get(c.key) !== c) return;
    this.#collecting.delete(c.key);
    clearTimeout(c.timer);
    const items = c.items.filter((i) => !i.done);
    if (items.length === 0) return;
    const lines: BatchLine[] = items.map((i) => ({ customId: i.customId, body: i.body }));
    this.#create(c, lines).then(
      (state) => {
        const open: Open = { id: state.id, backend: c.backend, api: c.api, items: new Map(items.map((i) => [i.customId, i])), giveUpAt: Date.now() + this.#giveUpMs, pollMs: c.spec.pollMs, timer: undefined, failures: 0 };
        for (const i of items) i.batchId = state.id;
        this.options.onBatch?.(c.backend.id, 'submitted', items.length);
        this.options.logger.info({ backend: c.backend.id, batch: state.id, requests: items.length }, 'batch submitted');
        if (this.#closed) {
          for (const i of items) this.#settle(i, { kind: 'abandoned' });
          return;
        }
        this.#open.add(open);
        this.#onState(open, state);
      },
      (e: unknown) => {
        const error = toSluiceError(e);
        this.options.onBatch?.(c.backend.id, 'submit_failed', items.length);
        this.options.logger.warn({ backend: c.backend.id, requests: items.length, code: error.code, err: error.message }, 'batch submission failed; its requests are served in real time');
        for (const i of items) this.#settle(i, { kind: 'fallback', batchId: undefined, error });
      },
    );
  }

  /** Uploads (OpenAI) and creates the batch; its first state. */
  async #create(c: Collecting, lines: BatchLine[]): Promise<BatchState> {
    const b = c.backend;
    const batches = b.paths['batches'] as string;
    if (c.api === 'anthropic') {
      return anthropicBatchState(await this.#call(b, 'POST', batches, anthropicBatchCreate(lines)));
    }
    const boundary = `sluice-${randomBytes(12).toString('hex')}`;
    const upload = openaiFileUpload(openaiBatchInput(c.path, lines), `sluice-${this.#prefix}-${lines[0]?.customId ?? ''}.jsonl`, boundary);
    const fileId = openaiFileId(await this.#call(b, 'POST', b.paths['files'] as string, upload, `multipart/form-data; boundary=${boundary}`));
    return openaiBatchState(await this.#call(b, 'POST', batches, openaiBatchCreate(fileId, c.path, { created_by: 'sluice' })));
  }

  /** One batch API call; a non-2xx answer throws the provider's error as a stable gateway error. */
  async #call(backend: SnapshotBackend, method: 'GET' | 'POST', path: string, body?: string, contentType?: string): Promise<string> {
    const r = await callUpstream(this.options.pools, backend, { method, path, body, contentType, timeoutMs: this.#callTimeoutMs, maxBytes: MAX_ANSWER_BYTES });
    if (r.status >= 300) throw upstreamStatusError(r.status, {}, r.text);
    return r.text;
  }

  #schedulePoll(open: Open): void {
    if (this.#closed) return;
    // Failed polls back off (doubling, at most 10 poll periods).
    const wait = open.pollMs * Math.min(10, 2 ** open.failures);
    open.timer = setTimeout(() => void this.#poll(open), wait);
    open.timer.unref();
  }

  async #poll(open: Open): Promise<void> {
    open.timer = undefined;
    if (!this.#open.has(open)) return;
    let state: BatchState;
    try {
      const path = `${open.backend.paths['batches'] as string}/${encodeURIComponent(open.id)}`;
      const text = await this.#call(open.backend, 'GET', path);
      state = open.api === 'anthropic' ? anthropicBatchState(text) : openaiBatchState(text);
    } catch (e) {
      const err = toSluiceError(e);
      // The provider no longer knows the batch: nothing will come.
      if (err.code === 'SLUICE_ERR_UPSTREAM_CLIENT_ERROR' && err.status === 404) return this.#fail(open, err);
      open.failures++;
      if (Date.now() >= open.giveUpAt) return this.#finish(open, new Map());
      this.options.logger.warn({ backend: open.backend.id, batch: open.id, code: err.code, err: err.message }, 'batch poll failed; polling again');
      return this.#schedulePoll(open);
    }
    open.failures = 0;
    this.#onState(open, state);
  }

  #onState(open: Open, state: BatchState): void {
    if (state.state === 'pending') {
      if (Date.now() >= open.giveUpAt) return this.#finish(open, new Map());
      return this.#schedulePoll(open);
    }
    if (state.state === 'failed') return this.#fail(open, new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', `The provider failed batch ${open.id}: ${state.message}`));
    void this.#collect(open, state.outputRef, state.errorRef);
  }

  /** Reads the results (output and error files) and answers every request of the batch. */
  async #collect(open: Open, outputRef: string | undefined, errorRef: string | undefined): Promise<void> {
    const results = new Map<string, BatchResult>();
    try {
      if (open.api === 'anthropic') {
        anthropicBatchResults(await this.#call(open.backend, 'GET', `${open.backend.paths['batches'] as string}/${encodeURIComponent(open.id)}/results`), results);
      } else {
        const files = open.backend.paths['files'] as string;
        for (const ref of [outputRef, errorRef]) {
          if (ref !== undefined) openaiBatchResults(await this.#call(open.backend, 'GET', `${files}/${encodeURIComponent(ref)}/content`), results);
        }
      }
    } catch (e) {
      const err = toSluiceError(e);
      open.failures++;
      if (Date.now() < open.giveUpAt) {
        this.options.logger.warn({ backend: open.backend.id, batch: open.id, code: err.code, err: err.message }, 'reading batch results failed; trying again');
        // Poll again: the batch is done, so the next poll comes straight back here.
        return this.#schedulePoll(open);
      }
    }
    this.#finish(open, results);
  }

  #finish(open: Open, results: ReadonlyMap<string, BatchResult>): void {
    this.#open.delete(open);
    clearTimeout(open.timer);
    let missing = 0;
    for (const [id, item] of open.items) {
      const result = results.get(id);
      if (result === undefined) missing++;
      // A request the results do not mention (or a batch given up on) did not run in time.
      this.#settle(item, { kind: 'result', batchId: open.id, result: result ?? { reason: 'expired' } });
    }
    this.options.onBatch?.(open.backend.id, 'completed', open.items.size);
    this.options.logger.info({ backend: open.backend.id, batch: open.id, requests: open.items.size, missing }, 'batch finished');
  }

  #fail(open: Open, error: SluiceError): void {
    this.#open.delete(open);
    clearTimeout(open.timer);
    this.options.onBatch?.(open.backend.id, 'failed', open.items.size);
    this.options.logger.warn({ backend: open.backend.id, batch: open.id, code: error.code, err: error.message }, 'batch failed; its requests are served in real time');
    for (const item of open.items.values()) this.#settle(item, { kind: 'fallback', batchId: open.id, error });
  }
}
