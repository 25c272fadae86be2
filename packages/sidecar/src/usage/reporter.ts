import { randomBytes } from 'node:crypto';
import type { Logger } from '@sluice/core';
import { sluice, type ControlCall, type ControlClient } from '@sluice/protocol';
import type { NodeIdentity } from '../control-client.js';
import { UsageAggregator, type Attribution, type FeedbackTarget, type UsageRow, type UsageSource } from './aggregate.js';

import v1 = sluice.v1;

/** gRPC status INVALID_ARGUMENT. */
const INVALID_ARGUMENT = 3;

export interface UsageReporterOptions {
  /** The control plane client (shared with the policy stream: one connection). */
  readonly client: ControlClient;
  readonly node: NodeIdentity;
  readonly logger: Logger;
  /** Random per process unless given (tests). */
  readonly epoch?: string;
  /** Seal the aggregate into a batch this often. Default 1 s. */
  readonly flushIntervalMs?: number;
  /** Unacknowledged records kept at most; the oldest batches are dropped (and counted) beyond. Default 200,000. */
  readonly maxQueuedRecords?: number;
  /** A batch unacknowledged this long is sent again on the same stream. Default 5 s. */
  readonly resendAfterMs?: number;
}

/**
 * Rows are written as `UsageRecord`s as they are (same field names: `cacheHits` → `cache_hits`,
 * `cacheSavedMicros` → `cache_saved_micros`, …). A row field the proto lacks fails the build here.
 */
type RowFieldsNotInProto = Exclude<keyof UsageRow, keyof v1.IUsageRecord>;
const _rowFieldsAreProtoFields: [RowFieldsNotInProto] extends [never] ? true : RowFieldsNotInProto = true;

interface Batch {
  readonly seq: number;
  readonly records: readonly UsageRow[];
  /** Stream generation it was last written to (0 = never), and when. */
  gen: number;
  sentAtMs: number;
}

/**
 * The sidecar end of StreamUsage. Requests are aggregated per minute and attribution key; every
 * second the aggregate becomes a batch `(epoch, seq)` in a bounded queue, and every unacknowledged
 * batch is sent in order until the control plane acknowledges it (it applies each `(epoch, seq)` at
 * most once, so resending is always safe). A broken stream is reopened on the next tick and the
 * whole queue resent; a batch left unacknowledged on a live stream (the control plane could not
 * reach Redis) is resent after `resendAfterMs`. Beyond `maxQueuedRecords` the oldest batches are
 * dropped, counted in `stats.droppedRecords` and logged. `close()` seals the last records and waits
 * for the acknowledgements (SIGTERM).
 */
export class UsageReporter {
  readonly #o: UsageReporterOptions;
  readonly epoch: string;
  readonly #agg = new UsageAggregator();
  readonly #queue: Batch[] = [];
  #queuedRecords = 0;
  #seq = 0;
  #call: ControlCall<v1.UsageBatch.$Properties, v1.UsageAck> | undefined;
  #gen = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #drainWaiters = new Set<() => void>();
  readonly stats = { batches: 0, acked: 0, duplicates: 0, resent: 0, droppedBatches: 0, droppedRecords: 0 };

  constructor(o: UsageReporterOptions) {
    this.#o = o;
    this.epoch = o.epoch ?? randomBytes(8).toString('hex');
    this.#timer = setInterval(() => this.tick(), o.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  /** Batches waiting for an acknowledgement. */
  get queued(): number {
    return this.#queue.length;
  }

  /** For the sidecar's /metrics. */
  get usageStats(): { queued: number; stats: UsageReporter['stats'] } {
    return { queued: this.#queue.length, stats: this.stats };
  }

  /** Counts one finished request. */
  record(r: UsageSource, a: Attribution, endMs = Date.now()): void {
    if (this.#closed) return;
    this.#agg.add(r, a, endMs);
  }

  /** Counts a scored feedback about a request. */
  recordFeedback(r: FeedbackTarget, a: Attribution, scoreMilli: number, endMs = Date.now()): void {
    if (this.#closed) return;
    this.#agg.addFeedback(r, a, scoreMilli, endMs);
  }

  /** Seals the aggregate into a batch and sends whatever is due. Runs every `flushIntervalMs`. */
  tick(nowMs = Date.now()): void {
    const rows = this.#agg.drain();
    if (rows.length > 0) this.#enqueue(rows);
    if (this.#queue.length === 0) return;
    let call: ControlCall<v1.UsageBatch.$Properties, v1.UsageAck>;
    try {
      call = this.#stream();
    } catch (e) {
      this.#o.logger.warn({ err: (e as Error).message }, 'usage stream could not be opened');
      return;
    }
    const resendAfter = this.#o.resendAfterMs ?? 5000;
    for (const b of this.#queue) {
      if (b.gen === this.#gen && nowMs - b.sentAtMs < resendAfter) continue;
      if (b.gen !== 0) this.stats.resent++;
      b.gen = this.#gen;
      b.sentAtMs = nowMs;
      call.write({ reporterEpoch: this.epoch, seq: b.seq, records: b.records as v1.IUsageRecord[] });
    }
  }

  #enqueue(records: UsageRow[]): void {
    const b: Batch = { seq: ++this.#seq, records, gen: 0, sentAtMs: 0 };
    this.#queue.push(b);
    this.#queuedRecords += records.length;
    this.stats.batches++;
    const max = this.#o.maxQueuedRecords ?? 200_000;
    let dropped = 0;
    while (this.#queuedRecords > max && this.#queue.length > 1) {
      const old = this.#queue.shift() as Batch;
      this.#queuedRecords -= old.records.length;
      dropped += old.records.length;
      this.stats.droppedBatches++;
    }
    if (dropped > 0) {
      this.stats.droppedRecords += dropped;
      this.#o.logger.warn({ droppedRecords: dropped, totalDropped: this.stats.droppedRecords, queued: this.#queuedRecords }, 'usage queue full: oldest unacknowledged usage dropped');
    }
  }

  #stream(): ControlCall<v1.UsageBatch.$Properties, v1.UsageAck> {
    if (this.#call !== undefined) return this.#call;
    const call = this.#o.client.streamUsage();
    this.#gen++;
    const n = this.#o.node;
    // The first message of a stream carries the node (an empty batch: seq 0 is never applied).
    call.write({ reporterEpoch: this.epoch, seq: 0, records: [], node: { pod: n.pod, namespace: n.namespace, serviceAccount: n.serviceAccount, labels: { ...n.labels }, instanceId: n.instanceId, sidecarVersion: n.sidecarVersion } });
    call.on('data', (ack: v1.UsageAck) => this.#onAck(ack));
    const lost = (why: string): void => {
      if (this.#call !== call) return;
      this.#call = undefined;
      if (!this.#closed) this.#o.logger.warn({ why, queued: this.#queue.length }, 'usage stream lost; resending on the next tick');
    };
    call.on('error', (e: Error & { code?: number }) => {
      // INVALID_ARGUMENT: the control plane refused the oldest unacknowledged batch as malformed.
      // Resending it would block every later batch, so it is dropped (counted and logged).
      if (e.code === INVALID_ARGUMENT && this.#call === call) this.#dropHead(e.message);
      lost(e.message);
    });
    call.on('end', () => lost('stream ended'));
    this.#call = call;
    return call;
  }

  #dropHead(why: string): void {
    const head = this.#queue.shift();
    if (head === undefined) return;
    this.#queuedRecords -= head.records.length;
    this.stats.droppedBatches++;
    this.stats.droppedRecords += head.records.length;
    this.#o.logger.error({ seq: head.seq, records: head.records.length, why }, 'usage batch refused by the control plane: dropped');
  }

  #onAck(ack: v1.UsageAck): void {
    if (ack.reporterEpoch !== this.epoch) return;
    const seq = Number(ack.seq);
    const i = this.#queue.findIndex((b) => b.seq === seq);
    if (i < 0) return;
    const [b] = this.#queue.splice(i, 1);
    this.#queuedRecords -= (b as Batch).records.length;
    this.stats.acked++;
    if (ack.duplicate) this.stats.duplicates++;
    if (this.#queue.length === 0) for (const w of this.#drainWaiters) w();
  }

  /** Seals the last records and waits (at most `timeoutMs`) until every batch is acknowledged. True when all were. */
  async close(timeoutMs = 5000): Promise<boolean> {
    this.tick();
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    let ok = this.#queue.length === 0;
    if (!ok) {
      // Keep resending while waiting (the stream may need to be reopened).
      const retry = setInterval(() => this.tick(), Math.min(500, this.#o.flushIntervalMs ?? 1000));
      ok = await new Promise<boolean>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#drainWaiters.delete(done);
          resolve(true);
        };
        const timer = setTimeout(() => {
          this.#drainWaiters.delete(done);
          resolve(false);
        }, timeoutMs);
        this.#drainWaiters.add(done);
      });
      clearInterval(retry);
    }
    if (!ok) this.#o.logger.warn({ queued: this.#queue.length, records: this.#queuedRecords }, 'usage not acknowledged before shutdown');
    this.#call?.end();
    this.#call = undefined;
    return ok;
  }
}

export type { Attribution } from './aggregate.js';
