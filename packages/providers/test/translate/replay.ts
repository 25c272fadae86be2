/**
 * Test support for the format translators: golden fixtures and SSE replay (whole, and split into two
 * byte chunks at every offset so multi-byte characters and event boundaries are cut everywhere).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { seededRandom, SluiceError } from '@sluice/core';
import { createSseParser } from '../../src/sse.js';
import type { StreamTranslator } from '../../src/translate/stream.js';

/** Compiled, this file is packages/providers/dist/test/translate/replay.js. */
export const FIXTURES = new URL('../../../test/fixtures/translate/', import.meta.url);

/** Set SLUICE_UPDATE_GOLDEN=1 to (re)write the expected-output fixtures instead of comparing. */
const UPDATE = process.env['SLUICE_UPDATE_GOLDEN'] === '1';

export function fixtureNames(dir: string, suffix: string): string[] {
  return readdirSync(new URL(`${dir}/`, FIXTURES))
    .filter((f) => f.endsWith(suffix))
    .map((f) => f.slice(0, -suffix.length))
    .sort();
}

export function readBytes(dir: string, file: string): Buffer {
  return readFileSync(new URL(`${dir}/${file}`, FIXTURES));
}

export function readJson(dir: string, file: string): Record<string, unknown> {
  return JSON.parse(readBytes(dir, file).toString('utf8')) as Record<string, unknown>;
}

/** Compare `actual` with the golden file, or write it when updating. */
export function assertGolden(dir: string, file: string, actual: string): void {
  const url = new URL(`${dir}/${file}`, FIXTURES);
  if (UPDATE || !existsSync(url)) {
    if (!UPDATE) assert.fail(`golden fixture ${dir}/${file} is missing (run with SLUICE_UPDATE_GOLDEN=1)`);
    writeFileSync(url, actual);
    return;
  }
  assert.equal(actual, readFileSync(url, 'utf8'), `${dir}/${file}`);
}

export function assertGoldenJson(dir: string, file: string, actual: unknown): void {
  assertGolden(dir, file, `${JSON.stringify(actual, null, 2)}\n`);
}

/** Feed `chunks` through a fresh SSE parser and translator; returns the client-bound text. */
export function replay(chunks: Uint8Array[], tr: StreamTranslator): string {
  const parser = createSseParser();
  let out = '';
  for (const c of chunks) for (const ev of parser.push(c)) out += tr.push(ev);
  for (const ev of parser.end()) out += tr.push(ev);
  return out + tr.end();
}

/** Replays the whole input, then split at every byte offset; every run must give the same text. */
export function replayEverySplit(bytes: Uint8Array, make: () => StreamTranslator): { out: string; tr: StreamTranslator } {
  const tr = make();
  const out = replay([bytes], tr);
  for (let i = 0; i <= bytes.length; i++) {
    const split = replay([bytes.subarray(0, i), bytes.subarray(i)], make());
    if (split !== out) assert.equal(split, out, `output differs when split at byte ${i}`);
  }
  return { out, tr };
}

/** A small deterministic PRNG (the core's mulberry32). */
export const rng = seededRandom;

const SCALARS: unknown[] = [
  null, undefined, 0, -1, 1, 2, 1.5, 1e308, -0, NaN, '', 'x', 'text', 'image_url', 'tool_use', 'function', 'user', 'assistant',
  'tool', 'system', 'constructor', '__proto__', 'toString', 'data:', 'data:image/png;base64,AA', 'https://x', '{', '[DONE]', true, false,
];

function randomValue(r: () => number, depth: number): unknown {
  const k = r();
  if (depth <= 0 || k < 0.6) return SCALARS[Math.floor(r() * SCALARS.length)];
  if (k < 0.8) return Array.from({ length: Math.floor(r() * 3) }, () => randomValue(r, depth - 1));
  const o: Record<string, unknown> = {};
  const keys = ['type', 'text', 'content', 'role', 'id', 'name', 'index', 'function', 'arguments', 'input', 'source', 'url', 'delta', 'usage', 'message', 'choices'];
  for (let i = Math.floor(r() * 3); i > 0; i--) o[keys[Math.floor(r() * keys.length)] ?? 'type'] = randomValue(r, depth - 1);
  return o;
}

/** A deep copy of `value` with one to three random nodes replaced, deleted or added. */
export function mutate(value: unknown, r: () => number): unknown {
  const copy = structuredClone(value) as unknown;
  const holders: Array<Record<string, unknown> | unknown[]> = [];
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) return;
    holders.push(v as Record<string, unknown>);
    for (const c of Object.values(v)) walk(c);
  };
  walk(copy);
  for (let n = 1 + Math.floor(r() * 3); n > 0 && holders.length > 0; n--) {
    const h = holders[Math.floor(r() * holders.length)];
    if (h === undefined) continue;
    const keys = Object.keys(h);
    const key = keys.length === 0 || r() < 0.15 ? 'type' : keys[Math.floor(r() * keys.length)] ?? 'type';
    if (r() < 0.2) delete (h as Record<string, unknown>)[key];
    else (h as Record<string, unknown>)[key] = randomValue(r, 2);
  }
  return copy;
}

/** Runs `fn`; anything it throws must be a SluiceError. */
export function onlySluiceErrors(fn: () => unknown, input: unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof SluiceError)) {
      assert.fail(`non-SluiceError ${String(e)} for input ${JSON.stringify(input)?.slice(0, 2000)}`);
    }
  }
}
