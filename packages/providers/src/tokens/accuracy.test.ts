import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { countTextTokens, estimateRequest } from './index.js';

/** Heuristic (non-OpenAI model) vs exact BPE on the fixture corpus. */

interface Sample {
  readonly kind: string;
  readonly name: string;
  readonly text: string;
}

const CORPUS = new URL('../../../test/fixtures/tokens/corpus.txt', import.meta.url);

function loadCorpus(): Sample[] {
  const samples: Sample[] = [];
  let current: { kind: string; name: string; lines: string[] } | undefined;
  const flush = (): void => {
    if (current === undefined) return;
    while (current.lines.length > 0 && current.lines[current.lines.length - 1] === '') current.lines.pop();
    samples.push({ kind: current.kind, name: current.name, text: current.lines.join('\n') });
  };
  for (const line of readFileSync(CORPUS, 'utf8').split('\n')) {
    if (line.startsWith('### ')) {
      flush();
      const colon = line.indexOf(':');
      current = { kind: line.slice(4, colon).trim(), name: line.slice(colon + 1).trim(), lines: [] };
    } else if (current !== undefined) {
      current.lines.push(line);
    }
  }
  flush();
  return samples;
}

const HEURISTIC_MODEL = 'claude-sonnet-4-5';

function count(sample: Sample, model: string): number {
  if (sample.kind === 'chat') {
    const body = JSON.parse(sample.text) as Record<string, unknown>;
    return estimateRequest('openai-chat', body, model).promptTokens;
  }
  return countTextTokens(sample.text, model).tokens;
}

interface Stats {
  readonly mean: number;
  readonly meanAbs: number;
  readonly p5: number;
  readonly p95: number;
  readonly worstUnder: number;
  readonly worstOver: number;
  readonly n: number;
}

function stats(errors: readonly number[]): Stats {
  const sorted = [...errors].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const sum = sorted.reduce((s, e) => s + e, 0);
  const abs = sorted.reduce((s, e) => s + Math.abs(e), 0);
  return {
    mean: sum / sorted.length,
    meanAbs: abs / sorted.length,
    p5: at(0.05),
    p95: at(0.95),
    worstUnder: Math.min(0, sorted[0] ?? 0),
    worstOver: Math.max(0, sorted[sorted.length - 1] ?? 0),
    n: sorted.length,
  };
}

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`;

test('heuristic vs exact BPE on the fixture corpus', () => {
  const samples = loadCorpus();
  assert.ok(samples.length >= 60, `corpus has ${samples.length} samples`);
  const rows: { sample: Sample; h: number; o200k: number; cl100k: number; e: number; ecl: number }[] = [];
  for (const sample of samples) {
    const h = count(sample, HEURISTIC_MODEL);
    const o200k = count(sample, 'gpt-4o');
    const cl100k = count(sample, 'gpt-4');
    rows.push({ sample, h, o200k, cl100k, e: ((h - o200k) / o200k) * 100, ecl: ((h - cl100k) / cl100k) * 100 });
  }
  const groups = new Map<string, number[]>();
  for (const r of rows) {
    const k = r.sample.kind;
    groups.set(k, [...(groups.get(k) ?? []), r.e]);
  }
  const table: Record<string, Record<string, string | number>> = {};
  const line = (s: Stats): Record<string, string | number> => ({
    n: s.n,
    'mean err': pct(s.mean),
    'mean |err|': `${s.meanAbs.toFixed(1)}%`,
    p5: pct(s.p5),
    p95: pct(s.p95),
    'worst under': pct(s.worstUnder),
    'worst over': pct(s.worstOver),
  });
  const all = stats(rows.map((r) => r.e));
  const allCl = stats(rows.map((r) => r.ecl));
  table['ALL vs o200k'] = line(all);
  table['ALL vs cl100k'] = line(allCl);
  for (const [k, errs] of groups) table[`${k} vs o200k`] = line(stats(errs));
  console.log(`heuristic (${HEURISTIC_MODEL}) vs exact counts, ${rows.length} samples:`);
  console.table(table);
  const extremes = [...rows].sort((a, b) => a.e - b.e);
  console.log('largest undercounts / overcounts vs o200k:');
  console.table(
    [...extremes.slice(0, 4), ...extremes.slice(-4)].map((r) => ({ sample: `${r.sample.kind}: ${r.sample.name}`, heuristic: r.h, o200k: r.o200k, cl100k: r.cl100k, err: pct(r.e) })),
  );

  // Bounds: conservative on average, never much below the exact o200k count, not wildly above it.
  assert.ok(all.worstUnder >= -5, `worst undercount vs o200k ${pct(all.worstUnder)}`);
  assert.ok(all.mean >= 10 && all.mean <= 40, `mean error vs o200k ${pct(all.mean)}`);
  assert.ok(all.p95 <= 90, `p95 vs o200k ${pct(all.p95)}`);
  assert.ok(all.worstOver <= 120, `worst overcount vs o200k ${pct(all.worstOver)}`);
  for (const kind of ['prose', 'code', 'json', 'chat']) {
    const s = stats(groups.get(kind) ?? []);
    assert.ok(s.mean >= 10 && s.mean <= 40, `${kind}: mean error ${pct(s.mean)}`);
  }
  // cl100k is much less efficient than o200k on non-Latin scripts (Hebrew, Greek, Hindi…), and the
  // heuristic is calibrated on o200k there; on Latin-script text the two agree closely.
  const latinCl = rows.filter((r) => r.sample.kind !== 'intl' && r.sample.kind !== 'cjk' && r.sample.kind !== 'emoji');
  assert.ok(stats(latinCl.map((r) => r.ecl)).worstUnder >= -15, 'worst undercount vs cl100k on Latin-script samples');
});
