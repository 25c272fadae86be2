/**
 * Debounced, single-flight work: `trigger()` asks for a run; the run starts after `quietMs` without
 * a new trigger, but no later than `maxMs` after the first trigger of a burst; only one run is in
 * flight, and triggers during a run cause exactly one more run after it.
 */
export class Debouncer {
  readonly #run: () => Promise<void>;
  readonly #quietMs: number;
  readonly #maxMs: number;
  readonly #onError: (e: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #burstStart = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(run: () => Promise<void>, opts: { quietMs?: number; maxMs?: number; onError?: (e: unknown) => void } = {}) {
    this.#run = run;
    this.#quietMs = opts.quietMs ?? 100;
    this.#maxMs = opts.maxMs ?? 5000;
    this.#onError = opts.onError ?? (() => undefined);
  }

  trigger(): void {
    if (this.#closed) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    const now = Date.now();
    if (this.#timer === undefined) this.#burstStart = now;
    else clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(this.#quietMs, this.#burstStart + this.#maxMs - now));
    this.#timer = setTimeout(() => this.#fire(), wait);
  }

  /** Runs now (skipping the quiet period); resolves when that run is done. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#running) await this.#running;
    await this.#start();
  }

  #fire(): void {
    this.#timer = undefined;
    void this.#start();
  }

  async #start(): Promise<void> {
    if (this.#closed) return;
    this.#again = false;
    this.#running = this.#run().catch(this.#onError);
    await this.#running;
    this.#running = undefined;
    if (this.#again) this.trigger();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}
