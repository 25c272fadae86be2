import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SemanticIndex, entryBytes, normalise, ENTRY_OVERHEAD_BYTES, type SemanticEntry } from './semantic-index.js';

const T0 = 1_800_000_000_000;
const FAR = T0 + 3_600_000;

/** A settable clock. */
function clock(start = T0): { now: () => number; set: (t: number) => void } {
  let t = start;
  return { now: () => t, set: (x) => (t = x) };
}

const vec = (...xs: number[]): Float32Array => Float32Array.from(xs);
/** A unit vector in the plane of axes 0 and 1 at `deg` degrees from axis 0 (cosine to axis 0 = cos(deg)). */
const angle = (deg: number, dims = 4): Float32Array => {
  const v = new Float32Array(dims);
  v[0] = Math.cos((deg * Math.PI) / 180);
  v[1] = Math.sin((deg * Math.PI) / 180);
  return v;
};
const entry = (id: string, scope: string, vector: Float32Array, expiresAtMs = FAR): SemanticEntry => ({ id, scope, vector, expiresAtMs });

/** A deterministic pseudo-random vector (xorshift32). */
function randomVector(dims: number, seed: number): Float32Array {
  let x = seed >>> 0 || 1;
  const v = new Float32Array(dims);
  for (let i = 0; i < dims; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = (x >>> 0) / 0x100000000 - 0.5;
  }
  return v;
}

test('normalise: unit length, direction kept, zero stays zero, input untouched', () => {
  const input = [3, 4];
  const n = normalise(input);
  assert.ok(n instanceof Float32Array);
  assert.deepEqual(Array.from(n), [Math.fround(0.6), Math.fround(0.8)]);
  assert.deepEqual(input, [3, 4]);
  assert.deepEqual(Array.from(normalise([0, 0, 0])), [0, 0, 0]);
  assert.deepEqual(Array.from(normalise([])), []);
  const r = normalise(randomVector(1536, 7));
  let s = 0;
  for (const x of r) s += x * x;
  assert.ok(Math.abs(s - 1) < 1e-5);
});

test('search: scopes are isolated', () => {
  const idx = new SemanticIndex({ maxBytes: 1 << 20, now: clock().now });
  idx.add(entry('a1', 'tenant-a', vec(1, 0, 0)));
  idx.add(entry('b1', 'tenant-b', vec(1, 0, 0)));
  idx.add(entry('b2', 'tenant-b', vec(0, 1, 0)));
  assert.deepEqual(idx.search('tenant-a', vec(1, 0, 0), 0.5), { id: 'a1', similarity: 1 });
  assert.deepEqual(idx.search('tenant-b', vec(1, 0, 0), 0.5), { id: 'b1', similarity: 1 });
  // The only close vector of scope A's query lives in scope B: no hit.
  assert.equal(idx.search('tenant-a', vec(0, 1, 0), 0.5), undefined);
  assert.deepEqual(idx.search('tenant-b', vec(0, 1, 0), 0.5), { id: 'b2', similarity: 1 });
  assert.equal(idx.search('tenant-c', vec(1, 0, 0), -1), undefined);
  // Scope names are compared exactly.
  assert.equal(idx.search('tenant-A', vec(1, 0, 0), 0.5), undefined);
  assert.equal(idx.search('', vec(1, 0, 0), 0.5), undefined);
  idx.delete('a1');
  assert.equal(idx.search('tenant-a', vec(1, 0, 0), 0), undefined, 'no fallback to another scope when a scope is empty');
});

test('search: threshold is inclusive; cosine is independent of vector norms', () => {
  const idx = new SemanticIndex({ maxBytes: 1 << 20, now: clock().now });
  idx.add(entry('e', 's', vec(10, 0, 0, 0))); // stored normalised
  const q = angle(60); // cosine 0.5 exactly up to float32 rounding
  const hit = idx.search('s', q, 0.49);
  assert.equal(hit?.id, 'e');
  assert.ok(Math.abs((hit?.similarity ?? 0) - 0.5) < 1e-6);
  const sim = hit?.similarity ?? NaN;
  assert.deepEqual(idx.search('s', q, sim), { id: 'e', similarity: sim }, 'similarity == threshold is a hit');
  assert.equal(idx.search('s', q, sim + 1e-6), undefined, 'just above the similarity is a miss');
  assert.equal(idx.search('s', q, 0.51), undefined);
  // The query's norm does not matter either.
  assert.deepEqual(idx.search('s', vec(0.001, 0, 0, 0), 1), { id: 'e', similarity: 1 });
  assert.deepEqual(idx.search('s', vec(1e6, 0, 0, 0), 1), { id: 'e', similarity: 1 });
  // Opposite direction: similarity -1.
  assert.equal(idx.search('s', vec(-1, 0, 0, 0), 0), undefined);
  assert.deepEqual(idx.search('s', vec(-1, 0, 0, 0), -1), { id: 'e', similarity: -1 });
});

test('search: returns the best of many, not the first above the threshold', () => {
  const idx = new SemanticIndex({ maxBytes: 1 << 20, now: clock().now });
  const degrees = [40, 25, 5, 30, 15, 50, 20, 35, 10, 45];
  for (const d of degrees) idx.add(entry(`deg${d}`, 's', angle(d)));
  idx.add(entry('other-scope-closer', 'other', angle(1)));
  const hit = idx.search('s', angle(0), 0.5);
  assert.equal(hit?.id, 'deg5');
  assert.ok(Math.abs((hit?.similarity ?? 0) - Math.cos((5 * Math.PI) / 180)) < 1e-6);
  // Query between two entries: the nearer one wins.
  assert.equal(idx.search('s', angle(27), 0.5)?.id, 'deg25');
  assert.equal(idx.search('s', angle(28), 0.5)?.id, 'deg30');
  // Only entries above the threshold count, and the best is still chosen.
  assert.equal(idx.search('s', angle(90), 0.5)?.id, 'deg50');
  assert.equal(idx.search('s', angle(-90), 0.1), undefined);
  // Many random vectors: the hit is the true argmax.
  const big = new SemanticIndex({ maxBytes: 1 << 24, now: clock().now });
  const vs: Float32Array[] = [];
  for (let i = 0; i < 500; i++) {
    const v = randomVector(64, i + 1);
    vs.push(v);
    big.add(entry(`r${i}`, 's', v));
  }
  const q = randomVector(64, 9999);
  const qn = normalise(q);
  let bestI = -1;
  let bestS = -Infinity;
  vs.forEach((v, i) => {
    const n = normalise(v);
    let s = 0;
    for (let k = 0; k < n.length; k++) s += (n[k] as number) * (qn[k] as number);
    if (s > bestS) [bestI, bestS] = [i, s];
  });
  const r = big.search('s', q, -1);
  assert.equal(r?.id, `r${bestI}`);
  assert.ok(Math.abs((r?.similarity ?? 0) - bestS) < 1e-5);
});

test('search: expired entries are skipped and dropped; expired adds are refused', () => {
  const c = clock();
  const idx = new SemanticIndex({ maxBytes: 1 << 20, now: c.now });
  idx.add(entry('short', 's', vec(1, 0), T0 + 1000));
  idx.add(entry('long', 's', angle(30, 2), T0 + 5000));
  idx.add(entry('other', 'o', vec(1, 0), T0 + 1000));
  assert.equal(idx.size, 3);
  c.set(T0 + 999);
  assert.equal(idx.search('s', vec(1, 0), 0.8)?.id, 'short');
  c.set(T0 + 1000); // expiresAtMs is exclusive
  const bytesBefore = idx.bytes;
  assert.equal(idx.search('s', vec(1, 0), 0.8)?.id, 'long', 'the expired better match is skipped');
  assert.equal(idx.size, 2, 'and dropped');
  assert.equal(idx.bytes, bytesBefore - entryBytes('short', 's', 2));
  // Other scopes are not scanned, so their expired entries stay until searched or evicted.
  assert.equal(idx.size, 2);
  assert.equal(idx.search('o', vec(1, 0), 0.8), undefined);
  assert.equal(idx.size, 1);
  c.set(T0 + 5000);
  assert.equal(idx.search('s', vec(1, 0), -1), undefined);
  assert.equal(idx.size, 0);
  assert.equal(idx.bytes, 0);
  assert.equal(idx.add(entry('dead', 's', vec(1, 0), T0 + 5000)), false);
  assert.equal(idx.size, 0);
  assert.equal(idx.add(entry('alive', 's', vec(1, 0), T0 + 5001)), true);
  assert.equal(idx.search('s', vec(1, 0), 0.9)?.id, 'alive');
});

test('add: evicts least recently used entries across scopes when over maxBytes; searched entries survive', () => {
  const dims = 16;
  const per = entryBytes('e0', 's0', dims);
  assert.equal(per, dims * 4 + 8 + ENTRY_OVERHEAD_BYTES);
  const idx = new SemanticIndex({ maxBytes: per * 4, now: clock().now });
  const axis = (i: number): Float32Array => {
    const v = new Float32Array(dims);
    v[i] = 1;
    return v;
  };
  for (let i = 0; i < 4; i++) assert.equal(idx.add(entry(`e${i}`, `s${i % 2}`, axis(i))), true);
  assert.equal(idx.size, 4);
  assert.equal(idx.bytes, per * 4);
  // Use e0 (the oldest): e1 becomes the least recently used.
  assert.equal(idx.search('s0', axis(0), 0.9)?.id, 'e0');
  // A miss is not a use: searching near e1 with a too-high threshold does not save it.
  assert.equal(idx.search('s1', axis(1), 1.5), undefined);
  idx.add(entry('e4', 's0', axis(4)));
  assert.equal(idx.size, 4);
  assert.equal(idx.bytes, per * 4);
  assert.equal(idx.search('s1', axis(1), 0.9), undefined, 'e1 (other scope, least recently used) evicted');
  assert.equal(idx.search('s0', axis(0), 0.9)?.id, 'e0', 'e0 survived because it was searched');
  // LRU order now: e2, e3, e4, e0. A bigger entry evicts as many as needed.
  const wide = new Float32Array(dims * 2);
  wide[5] = 1;
  idx.add(entry('e5', 's1', wide));
  assert.equal(idx.search('s0', axis(2), 0.9), undefined, 'e2 evicted');
  assert.equal(idx.search('s1', axis(3), 0.9), undefined, 'e3 evicted');
  assert.equal(idx.search('s0', axis(4), 0.9)?.id, 'e4');
  assert.equal(idx.search('s0', axis(0), 0.9)?.id, 'e0');
  assert.equal(idx.search('s1', wide, 0.9)?.id, 'e5');
  assert.ok(idx.bytes <= per * 4);
  assert.equal(idx.size, 3);
  // An entry larger than maxBytes is refused without evicting anything.
  assert.equal(idx.add(entry('huge', 's0', new Float32Array(dims * 8).fill(1))), false);
  assert.equal(idx.size, 3);
  // Long ids and scopes count too.
  const longId = 'x'.repeat(200);
  assert.equal(entryBytes(longId, 's0', dims), per + 2 * 198);
});

test('add: the same id replaces the entry (vector, scope, expiry), with the byte count adjusted', () => {
  const c = clock();
  const idx = new SemanticIndex({ maxBytes: 1 << 20, now: c.now });
  idx.add(entry('k', 'a', vec(1, 0, 0), T0 + 1000));
  idx.add(entry('k', 'a', vec(0, 1, 0), T0 + 9000));
  assert.equal(idx.size, 1);
  assert.equal(idx.bytes, entryBytes('k', 'a', 3));
  assert.equal(idx.search('a', vec(1, 0, 0), 0.5), undefined, 'old vector gone');
  c.set(T0 + 2000);
  assert.equal(idx.search('a', vec(0, 1, 0), 0.5)?.id, 'k', 'new expiry applies');
  // Moving to another scope removes it from the old one.
  idx.add(entry('k', 'b', vec(0, 1, 0, 0, 0), T0 + 9000));
  assert.equal(idx.size, 1);
  assert.equal(idx.bytes, entryBytes('k', 'b', 5));
  assert.equal(idx.search('a', vec(0, 1, 0), 0), undefined);
  assert.equal(idx.search('b', vec(0, 1, 0, 0, 0), 0.5)?.id, 'k');
  // Stored vectors are copies: mutating the caller's array changes nothing.
  const v = vec(0, 0, 1);
  idx.add(entry('m', 'b', v));
  v[2] = 0;
  v[0] = 1;
  assert.equal(idx.search('b', vec(0, 0, 1), 0.99)?.id, 'm');
  idx.delete('m');
  idx.delete('k');
  idx.delete('never-added');
  assert.equal(idx.size, 0);
  assert.equal(idx.bytes, 0);
});

test('search: vectors of a different dimension never match; zero vectors never match', () => {
  const idx = new SemanticIndex({ maxBytes: 1 << 20, now: clock().now });
  idx.add(entry('d3', 's', vec(1, 0, 0)));
  idx.add(entry('d4', 's', vec(1, 0, 0, 0)));
  assert.deepEqual(idx.search('s', vec(1, 0, 0), -1), { id: 'd3', similarity: 1 });
  assert.deepEqual(idx.search('s', vec(1, 0, 0, 0), -1), { id: 'd4', similarity: 1 });
  // A prefix-compatible vector of another length still does not match.
  assert.equal(idx.search('s', vec(1, 0), -1), undefined);
  assert.equal(idx.search('s', vec(1, 0, 0, 0, 0), -1), undefined);
  idx.add(entry('zero', 'z', vec(0, 0, 0)));
  assert.equal(idx.search('z', vec(1, 0, 0), -1), undefined, 'zero stored vector');
  assert.equal(idx.search('s', vec(0, 0, 0), -1), undefined, 'zero query');
});

test('constructor: maxBytes must be positive', () => {
  assert.throws(() => new SemanticIndex({ maxBytes: 0 }), RangeError);
  assert.throws(() => new SemanticIndex({ maxBytes: Number.NaN }), RangeError);
  assert.equal(new SemanticIndex({ maxBytes: 1 }).size, 0);
});

test('timing: search over 10,000 entries of 1,536 dims (printed, not asserted)', () => {
  const dims = 1536;
  const n = 10_000;
  const idx = new SemanticIndex({ maxBytes: 1 << 30, now: clock().now });
  const probe = randomVector(dims, 123_456_789); // a seed none of the others uses
  for (let i = 0; i < n; i++) idx.add(entry(`e${i}`, 'tenant', i === 1234 ? probe : randomVector(dims, i + 1)));
  assert.equal(idx.size, n);
  for (let i = 0; i < 5; i++) idx.search('tenant', probe, 0.95); // warm-up
  const runs = 20;
  const t = process.hrtime.bigint();
  let hit;
  for (let i = 0; i < runs; i++) hit = idx.search('tenant', probe, 0.95);
  const ms = Number(process.hrtime.bigint() - t) / 1e6 / runs;
  assert.equal(hit?.id, 'e1234');
  console.log(`semantic-index: search over ${n} x ${dims} dims: ${ms.toFixed(2)} ms (mean of ${runs}); ~${(idx.bytes / 1048576).toFixed(1)} MiB accounted`);
});
