/**
 * Answers of batched requests whose caller was given a 202 and a poll URL: pending until the batch
 * finishes, then the whole answer (status, headers, body) as the caller would have got it, kept
 * `ttlMs` after it arrived and within `maxBytes` (oldest first out). In memory: a sidecar restart forgets them.
 */
export interface StoredAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | number>>;
  readonly body: string | Buffer;
}

export type BatchRequestState =
  | { readonly state: 'pending'; readonly batchId: string | undefined; readonly pollMs: number }
  | { readonly state: 'done'; readonly answer: StoredAnswer };

interface Entry {
  readonly pending: { readonly batchId: () => string | undefined; readonly pollMs: number } | undefined;
  readonly answer: StoredAnswer | undefined;
  readonly bytes: number;
  /** When it was opened (pending) or answered. */
  readonly at: number;
}

/** A place the handler writes a non-streamed answer to, in place of the HTTP response (a subset of ServerResponse). */
export interface ResponseSink {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(body?: string | Buffer): unknown;
  destroy(): unknown;
}

export class BatchResults {
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Registers a pending request; returns the id to poll with (`wanted`, or a fresh one if taken). */
  open(wanted: string, fresh: () => string, batchId: () => string | undefined, pollMs: number): string {
    this.#evict();
    let id = wanted;
    while (this.#entries.has(id)) id = fresh();
    this.#entries.set(id, { pending: { batchId, pollMs }, answer: undefined, bytes: 256, at: this.now() });
    this.#bytes += 256;
    return id;
  }

  /** A sink whose answer (written once) completes entry `id`. */
  sink(id: string): ResponseSink {
    let status = 0;
    let headers: Record<string, string | number> = {};
    let sent = false;
    let ended = false;
    return {
      get headersSent() {
        return sent;
      },
      get destroyed() {
        return ended;
      },
      writeHead: (s, h) => {
        status = s;
        headers = h;
        sent = true;
      },
      end: (body) => {
        if (ended) return;
        ended = true;
        this.#complete(id, { status, headers, body: body ?? '' });
      },
      destroy: () => {
        if (ended) return;
        ended = true;
        // Nothing was answered (the request died without an answer): forget it.
        this.#drop(id);
      },
    };
  }

  get(id: string): BatchRequestState | undefined {
    this.#evict();
    const e = this.#entries.get(id);
    if (e === undefined) return undefined;
    if (e.answer !== undefined) return { state: 'done', answer: e.answer };
    return { state: 'pending', batchId: e.pending?.batchId(), pollMs: e.pending?.pollMs ?? 1000 };
  }

  #complete(id: string, answer: StoredAnswer): void {
    const e = this.#entries.get(id);
    if (e === undefined) return;
    const size = 512 + (typeof answer.body === 'string' ? Buffer.byteLength(answer.body) : answer.body.length);
    this.#bytes += size - e.bytes;
    // Re-inserted: answers are kept `ttlMs` from completion, and the map stays in completion order.
    this.#entries.delete(id);
    this.#entries.set(id, { pending: undefined, answer, bytes: size, at: this.now() });
    this.#evict();
  }

  #drop(id: string): void {
    const e = this.#entries.get(id);
    if (e === undefined) return;
    this.#bytes -= e.bytes;
    this.#entries.delete(id);
  }

  /**
   * Drops answers past their TTL, then the oldest answers while over the byte bound. Pending entries
   * (their batch still runs) go only when the entry bound forces them out.
   */
  #evict(): void {
    const cutoff = this.now() - this.ttlMs;
    for (const [id, e] of this.#entries) {
      const full = this.#entries.size > this.maxEntries;
      if (e.answer === undefined) {
        if (!full) continue;
      } else if (e.at > cutoff && this.#bytes <= this.maxBytes && !full) {
        break;
      }
      this.#bytes -= e.bytes;
      this.#entries.delete(id);
    }
  }
}
