/**
 * A memory-bounded nearest-neighbour index for the semantic response cache: embedding vectors with
 * an id (the key of the cached response), a scope (the tenant/cache partition) and an expiry. Pure:
 * no I/O, no timers; time comes from `now`.
 *
 * - Scopes are isolated: entries are grouped per scope and a search scans only its own scope, so it
 *   can never return another scope's entry.
 * - Search is an exact linear scan of the scope (cosine similarity as a dot product of L2-normalised
 *   Float32Arrays, no allocation per comparison). That is a few milliseconds for 10,000 entries of
 *   1,536 dimensions — enough for a per-pod cache bounded by `maxBytes`; an approximate index would
 *   only pay off for much larger scopes.
 * - Memory is bounded by `maxBytes` (an estimate, see {@link entryBytes}): adding evicts the least
 *   recently used entries of all scopes. Adding or a search hit counts as a use.
 * - Expired entries are dropped when a search of their scope meets them (and by eviction).
 */

/** An entry as given to {@link SemanticIndex.add}. */
export interface SemanticEntry {
  /** Unique across all scopes; adding an existing id replaces that entry (even in another scope). */
  readonly id: string;
  readonly scope: string;
  /** Any length and norm; the index stores an L2-normalised copy. */
  readonly vector: Float32Array;
  /** The entry is expired from this time on (`now() >= expiresAtMs`). */
  readonly expiresAtMs: number;
}

/** A search result: the matching entry's id and its cosine similarity to the query. */
export interface SemanticHit {
  readonly id: string;
  readonly similarity: number;
}

export interface SemanticIndexOptions {
  /** Upper bound of {@link SemanticIndex.bytes}; a positive number. */
  readonly maxBytes: number;
  /** Clock in milliseconds; default Date.now. */
  readonly now?: () => number;
}

/** Fixed per-entry overhead counted in the byte estimate (object, map slots, typed-array header). */
export const ENTRY_OVERHEAD_BYTES = 64;

/** The bytes an entry is accounted for: vector bytes + 2 bytes per id/scope character + {@link ENTRY_OVERHEAD_BYTES}. */
export function entryBytes(id: string, scope: string, dims: number): number {
  return dims * Float32Array.BYTES_PER_ELEMENT + (id.length + scope.length) * 2 + ENTRY_OVERHEAD_BYTES;
}

/** L2 normalisation into a new Float32Array; a zero (or non-finite) vector gives all zeros. */
export function normalise(v: ArrayLike<number>): Float32Array {
  const n = v.length;
  const out = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = v[i] as number;
    sum += x * x;
  }
  if (!(sum > 0) || !Number.isFinite(sum)) return out;
  const inv = 1 / Math.sqrt(sum);
  for (let i = 0; i < n; i++) out[i] = (v[i] as number) * inv;
  return out;
}

interface Node {
  readonly id: string;
  readonly scope: string;
  /** L2-normalised; all zeros for a zero input vector. */
  readonly vector: Float32Array;
  /** False for a zero vector, which never matches. */
  readonly unit: boolean;
  readonly expiresAtMs: number;
  readonly bytes: number;
  /** Position in its scope's array. */
  pos: number;
}

/** Dot product of two vectors of the same length. Four accumulators break the add dependency chain. */
function dot(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  const m = n - (n % 4);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i < m; i += 4) {
    s0 += (a[i] as number) * (b[i] as number);
    s1 += (a[i + 1] as number) * (b[i + 1] as number);
    s2 += (a[i + 2] as number) * (b[i + 2] as number);
    s3 += (a[i + 3] as number) * (b[i + 3] as number);
  }
  for (; i < n; i++) s0 += (a[i] as number) * (b[i] as number);
  return s0 + s1 + s2 + s3;
}

export class SemanticIndex {
  readonly #maxBytes: number;
  readonly #now: () => number;
  /** Entries per scope, in no particular order (swap-remove). */
  readonly #scopes = new Map<string, Node[]>();
  /** All entries by id; iteration order is least recently used first. */
  readonly #lru = new Map<string, Node>();
  #bytes = 0;

  constructor(opts: SemanticIndexOptions) {
    if (!(opts.maxBytes > 0)) throw new RangeError(`maxBytes must be a positive number, got ${opts.maxBytes}`);
    this.#maxBytes = opts.maxBytes;
    this.#now = opts.now ?? Date.now;
  }

  /** Number of entries (expired ones included until they are dropped). */
  get size(): number {
    return this.#lru.size;
  }

  /** Estimated bytes of all entries (see {@link entryBytes}); at most `maxBytes`. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Adds an entry, replacing any entry with the same id, as the most recently used; then evicts
   * least recently used entries (of any scope) while over `maxBytes`. Returns false, storing nothing
   * (and still removing the old entry of that id), when the entry alone exceeds `maxBytes` or is
   * already expired.
   */
  add(e: SemanticEntry): boolean {
    this.delete(e.id);
    const bytes = entryBytes(e.id, e.scope, e.vector.length);
    if (bytes > this.#maxBytes || !(e.expiresAtMs > this.#now())) return false;
    const vector = normalise(e.vector);
    const node: Node = { id: e.id, scope: e.scope, vector, unit: vector.some((x) => x !== 0), expiresAtMs: e.expiresAtMs, bytes, pos: 0 };
    let list = this.#scopes.get(e.scope);
    if (list === undefined) {
      list = [];
      this.#scopes.set(e.scope, list);
    }
    node.pos = list.length;
    list.push(node);
    this.#lru.set(e.id, node);
    this.#bytes += bytes;
    for (const victim of this.#lru.values()) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#remove(victim);
    }
    return true;
  }

  /**
   * The entry of `scope` most similar to `query` (cosine similarity; ties: any of them), if its
   * similarity is at least `threshold`; a hit counts as a use. Never returns another scope's entry.
   * Entries whose dimension differs from the query's, and zero vectors, never match. Expired entries
   * of the scope are dropped on the way.
   */
  search(scope: string, query: ArrayLike<number>, threshold: number): SemanticHit | undefined {
    const list = this.#scopes.get(scope);
    if (list === undefined) return undefined;
    const q = normalise(query);
    const dims = q.length;
    const qUnit = q.some((x) => x !== 0);
    const now = this.#now();
    let best: Node | undefined;
    let bestSim = -Infinity;
    // Backwards, so that removing (swap with the last element) does not skip anything.
    for (let i = list.length - 1; i >= 0; i--) {
      const node = list[i] as Node;
      if (node.expiresAtMs <= now) {
        this.#remove(node);
        continue;
      }
      if (!qUnit || !node.unit || node.vector.length !== dims) continue;
      const sim = dot(q, node.vector);
      if (sim > bestSim) {
        bestSim = sim;
        best = node;
      }
    }
    if (best === undefined || !(bestSim >= threshold)) return undefined;
    this.#lru.delete(best.id);
    this.#lru.set(best.id, best);
    // Float32 rounding can push a self-match slightly above 1.
    return { id: best.id, similarity: Math.min(1, bestSim) };
  }

  /** Removes the entry with this id, if any. */
  delete(id: string): void {
    const node = this.#lru.get(id);
    if (node !== undefined) this.#remove(node);
  }

  #remove(node: Node): void {
    this.#lru.delete(node.id);
    this.#bytes -= node.bytes;
    const list = this.#scopes.get(node.scope);
    if (list === undefined) return;
    const last = list.pop() as Node;
    if (last !== node) {
      list[node.pos] = last;
      last.pos = node.pos;
    }
    if (list.length === 0) this.#scopes.delete(node.scope);
  }
}
