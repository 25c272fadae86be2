import { bucketEnd, cellsOf, checkRecord, incrementsOf, RETENTION_MS, type Granularity, type UsageCell, type UsageRecordIn } from './model.js';

/**
 * Where usage batches land, exactly once: `apply` adds a batch's records to the minute, hour, day
 * and month buckets of its namespace atomically, unless `(namespace, epoch, seq)` is not above the
 * epoch's high-water mark (a resend of a batch already applied: `duplicate`, nothing changes).
 * Sidecars send a stream's batches in order and resend every unacknowledged one in order, so a
 * high-water mark is enough.
 */
export interface UsageStore {
  apply(namespace: string, epoch: string, seq: number, records: readonly UsageRecordIn[]): Promise<'applied' | 'duplicate'>;
  /** The cells of the given buckets, for the namespaces given (all known when undefined). */
  read(g: Granularity, buckets: readonly string[], namespaces?: readonly string[]): Promise<UsageCell[]>;
  /** Namespaces that reported usage. */
  namespaces(): Promise<string[]>;
  close(): Promise<void>;
}

/** How long an epoch's high-water mark is kept after its last batch (a sidecar resending later would double count). */
export const SEQ_TTL_MS = 7 * 86_400_000;

export function checkBatch(epoch: string, seq: number, records: readonly UsageRecordIn[]): void {
  if (epoch === '') throw new RangeError('a usage batch needs a reporter epoch');
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`seq must be a positive integer, got ${seq}`);
  for (const r of records) checkRecord(r);
}

/** The one-process store (`sluice dev`, tests): the same semantics as Redis, in memory. */
export class MemoryUsageStore implements UsageStore {
  private readonly hashes = new Map<string, { fields: Map<string, number>; expiresMs: number }>();
  private readonly seqs = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async apply(namespace: string, epoch: string, seq: number, records: readonly UsageRecordIn[]): Promise<'applied' | 'duplicate'> {
    checkBatch(epoch, seq, records);
    const sk = `${namespace}\u0000${epoch}`;
    if (seq <= (this.seqs.get(sk) ?? 0)) return 'duplicate';
    this.seqs.set(sk, seq);
    for (const [k, fields] of incrementsOf(records)) {
      const [g, bucket] = k.split('\u0000') as [Granularity, string];
      const id = `${namespace}\u0000${k}`;
      let h = this.hashes.get(id);
      if (h === undefined) {
        h = { fields: new Map(), expiresMs: bucketEnd(g, bucket) * 1000 + RETENTION_MS[g] };
        this.hashes.set(id, h);
      }
      for (const [f, v] of fields) h.fields.set(f, (h.fields.get(f) ?? 0) + v);
    }
    return 'applied';
  }

  async read(g: Granularity, buckets: readonly string[], namespaces?: readonly string[]): Promise<UsageCell[]> {
    const now = this.now();
    const nsList = namespaces ?? (await this.namespaces());
    const out: UsageCell[] = [];
    for (const ns of nsList) {
      for (const b of buckets) {
        const h = this.hashes.get(`${ns}\u0000${g}\u0000${b}`);
        if (h === undefined || h.expiresMs <= now) continue;
        out.push(...cellsOf(ns, b, Object.fromEntries(h.fields)));
      }
    }
    return out;
  }

  async namespaces(): Promise<string[]> {
    const s = new Set<string>();
    for (const k of this.hashes.keys()) s.add(k.slice(0, k.indexOf('\u0000')));
    return [...s].sort();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
