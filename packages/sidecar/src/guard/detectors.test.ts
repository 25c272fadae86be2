import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compileScanner, type DetectorSpec, type Finding } from './detectors.js';

const BUILT_IN = ['email', 'phone', 'ssn', 'creditCard', 'iban', 'ip', 'secret', 'injection'] as const;
const ALL: DetectorSpec[] = BUILT_IN.map((kind) => ({ kind, values: [], name: '' }));

interface Row {
  kind: string;
  label: 'pos' | 'neg';
  text: string;
  line: number;
}

function loadCorpus(): Row[] {
  const raw = readFileSync(new URL('../../../test/fixtures/guardrails/corpus.tsv', import.meta.url), 'utf8');
  const rows: Row[] = [];
  raw.split('\n').forEach((l, i) => {
    if (l === '' || l.startsWith('#')) return;
    const [kind, label, ...rest] = l.split('\t');
    assert.ok(kind && (label === 'pos' || label === 'neg') && rest.length > 0, `corpus line ${i + 1} is malformed`);
    rows.push({ kind, label, text: rest.join('\t').replaceAll('\\n', '\n'), line: i + 1 });
  });
  return rows;
}

const texts = (text: string, fs: Finding[]) => fs.map((f) => `${f.kind}:${JSON.stringify(text.slice(f.start, f.end))}`);

/** Thresholds met by the current detectors on the corpus (line level). Injection is heuristic: lower bars. */
const MIN: Record<string, { precision: number; recall: number }> = {
  email: { precision: 0.95, recall: 0.9 },
  phone: { precision: 0.95, recall: 0.9 },
  ssn: { precision: 0.95, recall: 0.9 },
  creditCard: { precision: 0.95, recall: 0.9 },
  iban: { precision: 0.95, recall: 0.9 },
  ip: { precision: 0.95, recall: 0.9 },
  secret: { precision: 0.95, recall: 0.9 },
  injection: { precision: 0.9, recall: 0.8 },
};

test('corpus: per-kind precision / recall (line level) meet the stated thresholds', () => {
  const rows = loadCorpus();
  assert.ok(rows.length >= 300, `corpus has ${rows.length} lines`);
  const scanner = compileScanner(ALL);
  const table = ['| kind | pos | neg | precision | recall |', '|---|---:|---:|---:|---:|'];
  const misses: string[] = [];
  for (const kind of BUILT_IN) {
    const mine = rows.filter((r) => r.kind === kind);
    let tp = 0;
    let fp = 0;
    let pos = 0;
    let neg = 0;
    for (const r of mine) {
      const found = scanner.scan(r.text);
      const hit = found.some((f) => f.kind === kind);
      if (r.label === 'pos') {
        pos++;
        if (hit) tp++;
        else misses.push(`  miss  ${kind} line ${r.line}: ${JSON.stringify(r.text)} → ${texts(r.text, found).join(', ') || '(nothing)'}`);
      } else {
        neg++;
        if (hit) {
          fp++;
          misses.push(`  false ${kind} line ${r.line}: ${texts(r.text, found.filter((f) => f.kind === kind)).join(', ')}`);
        }
      }
    }
    // Precision over the kind's own lines: true positives among all lines where the kind fired.
    const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
    const recall = pos === 0 ? 1 : tp / pos;
    table.push(`| ${kind} | ${pos} | ${neg} | ${precision.toFixed(3)} | ${recall.toFixed(3)} |`);
    assert.ok(pos >= 20 && neg >= 20, `${kind}: corpus needs ≥20 pos and ≥20 neg lines (has ${pos}/${neg})`);
    const min = MIN[kind]!;
    assert.ok(precision >= min.precision, `${kind}: precision ${precision.toFixed(3)} < ${min.precision}\n${misses.join('\n')}`);
    assert.ok(recall >= min.recall, `${kind}: recall ${recall.toFixed(3)} < ${min.recall}\n${misses.join('\n')}`);
  }
  console.log(table.join('\n'));
  if (misses.length) console.log(`corpus errors:\n${misses.join('\n')}`);
});

test('credit cards: Luhn and issuer checked, separators allowed', () => {
  const s = compileScanner([{ kind: 'creditCard', values: [], name: '' }]);
  assert.equal(s.scan('4111 1111 1111 1111').length, 1);
  assert.equal(s.scan('4111-1111-1111-1111').length, 1);
  assert.equal(s.scan('4111 1111 1111 1112').length, 0); // Luhn fails
  assert.equal(s.scan('1234567890123452').length, 0); // Luhn-valid, no issuer starts with 1
  assert.equal(s.scan('378282246310005').length, 1); // Amex, 15 digits
  assert.equal(s.scan('3782822463100050').length, 0); // Amex prefix with 16 digits
});

test('IBAN: mod-97 and country length; a match running on is cut back to the country length', () => {
  const s = compileScanner([{ kind: 'iban', values: [], name: '' }]);
  assert.equal(s.scan('GB82 WEST 1234 5698 7654 32').length, 1);
  assert.equal(s.scan('GB82WEST12345698765432').length, 1);
  assert.equal(s.scan('GB83 WEST 1234 5698 7654 32').length, 0);
  const text = 'to NO93 8601 1117 947 ABCD';
  const [f] = s.scan(text);
  assert.equal(text.slice(f!.start, f!.end), 'NO93 8601 1117 947');
});

test('IP: octets ≤ 255, IPv6 forms, no versions or C++ paths', () => {
  const s = compileScanner([{ kind: 'ip', values: [], name: '' }]);
  const got = (t: string) => s.scan(t).map((f) => t.slice(f.start, f.end));
  assert.deepEqual(got('a 10.1.2.3 b 256.1.1.1 c'), ['10.1.2.3']);
  assert.deepEqual(got('2001:db8::1 and ::1 and fe80::1%eth0'), ['2001:db8::1', '::1', 'fe80::1']);
  assert.deepEqual(got('version 1.2.3.4, std::vector, 12:30:45, 00:1A:2B:3C:4D:5E'), []);
});

test('overlaps: longer finding wins; results sorted and non-overlapping', () => {
  const s = compileScanner([
    ...ALL,
    { kind: 'denyList', values: ['example'], name: 'WORD' },
  ]);
  const text = 'mail bob@example.com, jwt Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIz end';
  const fs = s.scan(text);
  assert.deepEqual(
    fs.map((f) => [f.label, text.slice(f.start, f.end)]),
    [
      ['email', 'bob@example.com'],
      ['secret', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIz'],
    ],
  );
  for (let i = 1; i < fs.length; i++) assert.ok(fs[i]!.start >= fs[i - 1]!.end);
  // A shorter SSN inside a longer custom match loses.
  const s2 = compileScanner([
    { kind: 'ssn', values: [], name: '' },
    { kind: 'regex', values: ['ID: \\d{3}-\\d{2}-\\d{4}'], name: 'EMP_ID' },
  ]);
  assert.deepEqual(s2.scan('x ID: 123-45-6789'), [{ label: 'EMP_ID', kind: 'regex', start: 2, end: 17 }]);
});

test('denyList: case-insensitive, whole words only, label from name', () => {
  const s = compileScanner([{ kind: 'denyList', values: ['Project Falcon', 'acme', 'c++'], name: 'CODENAME' }]);
  const text = 'PROJECT   falcon at ACME; acmeCorp, subacme, Acme. C++ rocks';
  const got = s.scan(text).map((f) => [f.label, text.slice(f.start, f.end)]);
  assert.deepEqual(got, [
    ['CODENAME', 'PROJECT   falcon'],
    ['CODENAME', 'ACME'],
    ['CODENAME', 'Acme'],
    ['CODENAME', 'C++'],
  ]);
  // Non-ASCII case folding and word boundaries.
  const u = compileScanner([{ kind: 'denyList', values: ['ÉCOLE'], name: '' }]);
  assert.deepEqual(u.scan('une école, écoles').map((f) => [f.label, f.start, f.end]), [['denyList', 4, 9]]);
});

test('custom regex: u flag, case-sensitive, label from name; backreferences still work', () => {
  const s = compileScanner([
    { kind: 'regex', values: ['EMP-\\d{6}', '\\p{Lu}{3}-\\d+'], name: 'EMPLOYEE' },
    { kind: 'regex', values: ['(["\'])secret\\1'], name: 'QUOTED' },
    { kind: 'email', values: [], name: '' },
  ]);
  const text = 'EMP-123456 emp-123456 ÄÖÜ-7 "secret" \'secret" a@b.io';
  assert.deepEqual(
    s.scan(text).map((f) => [f.label, text.slice(f.start, f.end)]),
    [
      ['EMPLOYEE', 'EMP-123456'],
      ['EMPLOYEE', 'ÄÖÜ-7'],
      ['QUOTED', '"secret"'],
      ['email', 'a@b.io'],
    ],
  );
  assert.equal(s.maxMatchChars >= 256, true);
});

test('invalid custom regex: throws an Error naming the pattern; unknown kinds throw', () => {
  assert.throws(() => compileScanner([{ kind: 'regex', values: ['ok', 'bad(['], name: 'MINE' }]), (e: Error) => {
    assert.match(e.message, /MINE/);
    assert.match(e.message, /bad\(\[/);
    return true;
  });
  assert.throws(() => compileScanner([{ kind: 'nope', values: [], name: '' }]), /nope/);
});

test('offsets are UTF-16 offsets into the original text (emoji, accents, CJK)', () => {
  const s = compileScanner(ALL);
  const text = '😀 héllo 你好 jane@example.com 🇫🇷 +33 6 12 34 56 78 — 🎉 4111 1111 1111 1111';
  const fs = s.scan(text);
  assert.deepEqual(
    fs.map((f) => [f.kind, text.slice(f.start, f.end)]),
    [
      ['email', 'jane@example.com'],
      ['phone', '+33 6 12 34 56 78'],
      ['creditCard', '4111 1111 1111 1111'],
    ],
  );
  assert.equal(fs[0]!.start, text.indexOf('jane'));
  const hidden = 'a' + String.fromCodePoint(0xe0069, 0xe0067, 0xe006e) + 'b';
  const [h] = s.scan(hidden);
  assert.deepEqual([h!.kind, h!.start, h!.end], ['injection', 1, 7]);
});

test('empty scanner and empty text', () => {
  assert.deepEqual(compileScanner([]).scan('anything 4111 1111 1111 1111'), []);
  assert.deepEqual(compileScanner(ALL).scan(''), []);
  assert.equal(compileScanner([]).maxMatchChars, 0);
});

test('maxMatchChars bounds the detectors used', () => {
  assert.ok(compileScanner([{ kind: 'ssn', values: [], name: '' }]).maxMatchChars <= 16);
  const pii = compileScanner(ALL.filter((d) => d.kind !== 'secret'));
  assert.ok(pii.maxMatchChars <= 512, String(pii.maxMatchChars));
  const all = compileScanner(ALL);
  assert.ok(all.maxMatchChars >= 4096); // private key blocks
  const longKey = `-----BEGIN PRIVATE KEY-----\n${'QUFB'.repeat(1500)}\n-----END PRIVATE KEY-----`;
  const [f] = all.scan(longKey);
  assert.ok(f && f.kind === 'secret' && f.end - f.start <= all.maxMatchChars); // BEGIN line alone
});

test('timing: scan 100 KB of mixed text (printed, not asserted)', () => {
  const s = compileScanner([...ALL, { kind: 'denyList', values: ['falcon', 'acme corp'], name: '' }, { kind: 'regex', values: ['EMP-\\d{6}'], name: 'EMP' }]);
  const rows = loadCorpus().map((r) => r.text);
  const filler = 'The quick brown fox jumps over the lazy dog while the build runs version 1.2.3 on 2024-01-15. ';
  let text = '';
  for (let i = 0; text.length < 100_000; i++) text += (i % 3 === 0 ? rows[i % rows.length] : filler) + '\n';
  s.scan(text); // warm-up
  const runs = 5;
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (let i = 0; i < runs; i++) n = s.scan(text).length;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / runs;
  const plain = filler.repeat(Math.ceil(100_000 / filler.length));
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) s.scan(plain);
  const msPlain = Number(process.hrtime.bigint() - t1) / 1e6 / runs;
  console.log(
    `scan of ${(text.length / 1024).toFixed(0)} KB mixed text: ${ms.toFixed(1)} ms (${n} findings); ` +
      `${(plain.length / 1024).toFixed(0)} KB plain prose: ${msPlain.toFixed(1)} ms`,
  );
});
