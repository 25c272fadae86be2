/**
 * Tokenizer-free token estimate, used for models whose tokenizer is not available (Anthropic's
 * Claude tokenizer is not public) or not known. One pass over UTF-16 code units with a class table,
 * no regex, no allocation. The weights are calibrated against exact o200k_base / cl100k_base counts
 * on the corpus in test/fixtures/tokens/ (see ./accuracy.test.ts for the printed error table) so that
 * English, code and JSON come out 10–25 % high on average and no sample comes out more than a few
 * percent low.
 *
 * Model of a BPE tokenizer:
 *  - a "word" is a maximal run of ASCII letters and digits, priced at its end:
 *      all digits → one token per 3 digits;
 *      a plain word (lowercase, Capitalised, ≤ 3 capitals) → 1, plus one per `letterExtra` letters
 *        beyond `lettersFree` (long or rare words split);
 *      camelCase → one piece per case change, each priced like a plain word;
 *      letters mixed with digits, or many scattered capitals (hashes, base64, ids) → len / `blobChars`;
 *  - a run of ASCII punctuation costs `punct` for its first character and `punctNext` for each
 *    further one (BPE merges runs like `":"`, `");` or `=>`);
 *  - a single space is free (it merges into the next word); a longer whitespace run or one holding a
 *    line break costs one token;
 *  - non-ASCII per code point: 2-byte UTF-8 (accented Latin, Greek, Cyrillic, Hebrew, Arabic)
 *    `nonAscii2` (inside an ASCII word, e.g. `café`, it adds that and keeps the word); CJK ideographs,
 *    kana, Hangul and full-width forms `cjk`; general punctuation, arrows, maths, dingbats and
 *    variation selectors `symbol`; other 3-byte (Indic, Thai) `nonAscii3`; astral (emoji) `astral`. These are deliberately
 *    heavier than o200k (which is very efficient on these scripts) and close to cl100k, since an
 *    unknown tokenizer is more likely to resemble the latter.
 * The sum is scaled by `safety` and rounded up.
 */

export interface HeuristicWeights {
  readonly lettersFree: number;
  readonly letterExtra: number;
  readonly blobChars: number;
  readonly punct: number;
  readonly punctNext: number;
  readonly symbol: number;
  readonly nonAscii2: number;
  readonly nonAscii3: number;
  readonly cjk: number;
  readonly astral: number;
  readonly safety: number;
}

export const HEURISTIC_WEIGHTS: HeuristicWeights = {
  lettersFree: 7,
  letterExtra: 6,
  blobChars: 1.6,
  punct: 0.9,
  punctNext: 0.25,
  symbol: 1.3,
  nonAscii2: 0.35,
  nonAscii3: 0.5,
  cjk: 0.9,
  astral: 1.3,
  safety: 1.24,
};

// Character classes of ASCII code units (plain numbers: isolated-module safe, no enum emit).
const LOWER = 1;
const UPPER = 2;
const DIGIT = 3;
const SPACE = 4;
const NEWLINE = 5;
const PUNCT = 6;

const ASCII_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  ASCII_CLASS[c] =
    c >= 97 && c <= 122 ? LOWER
    : c >= 65 && c <= 90 ? UPPER
    : c >= 48 && c <= 57 ? DIGIT
    : c === 32 || c === 9 ? SPACE
    : c === 10 || c === 13 || c === 11 || c === 12 ? NEWLINE
    : PUNCT;
}

function isCjk(c: number): boolean {
  return (
    (c >= 0x2e80 && c <= 0x9fff) || // CJK radicals, punctuation, kana, ideographs
    (c >= 0xac00 && c <= 0xd7af) || // Hangul syllables
    (c >= 0xf900 && c <= 0xfaff) || // CJK compatibility ideographs
    (c >= 0xff00 && c <= 0xffef) || // half/full-width forms
    (c >= 0x1100 && c <= 0x11ff) // Hangul jamo
  );
}

/** Cost of one alphanumeric word (see the header). A plain function: no closure over loop state. */
function wordCost(len: number, digits: number, uppers: number, pieces: number, w: HeuristicWeights): number {
  if (digits === len) return Math.ceil(len / 3);
  if (digits > 0 || uppers > 3 + pieces) return Math.max(1, len / w.blobChars);
  const avg = len / pieces;
  return pieces * (1 + (avg > w.lettersFree ? (avg - w.lettersFree) / w.letterExtra : 0));
}

/** Heuristic token estimate of `text` (an integer ≥ 0). */
export function heuristicTokens(text: string, w: HeuristicWeights = HEURISTIC_WEIGHTS): number {
  const n = text.length;
  if (n === 0) return 0;
  let tokens = 0;
  // Current alphanumeric word.
  let len = 0;
  let digits = 0;
  let uppers = 0;
  let pieces = 0; // camelCase pieces (lower→Upper changes + 1)
  let prev = 0;
  // Current punctuation run length.
  let puncts = 0;
  // Current whitespace run.
  let spaces = 0;
  let newline = false;

  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const k = c < 128 ? (ASCII_CLASS[c] ?? PUNCT) : 0;
    if (k !== PUNCT) puncts = 0;
    if (k === LOWER || k === UPPER || k === DIGIT) {
      if (spaces > 0) {
        if (spaces > 1 || newline) tokens += 1;
        spaces = 0;
        newline = false;
      }
      if (len === 0) pieces = 1;
      else if (k === UPPER && prev === LOWER) pieces++;
      len++;
      if (k === DIGIT) digits++;
      else if (k === UPPER) uppers++;
      prev = k;
      continue;
    }
    if (k === 0 && (c < 0x800 || (c >= 0x1e00 && c <= 0x1eff)) && len > 0) {
      // Accented Latin (and other 2-byte letters) inside an ASCII word: extra cost, same word.
      tokens += w.nonAscii2;
      len++;
      continue;
    }
    if (len > 0) {
      tokens += wordCost(len, digits, uppers, pieces, w);
      len = digits = uppers = pieces = 0;
    }
    prev = k;
    if (k === SPACE || k === NEWLINE) {
      spaces++;
      if (k === NEWLINE) newline = true;
      continue;
    }
    if (spaces > 0) {
      if (spaces > 1 || newline) tokens += 1;
      spaces = 0;
      newline = false;
    }
    if (k === PUNCT) tokens += puncts++ === 0 ? w.punct : w.punctNext;
    else if (c < 0x800 || (c >= 0x1e00 && c <= 0x1eff)) tokens += w.nonAscii2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // High surrogate: the pair is one astral code point (emoji, rare CJK).
      tokens += w.astral;
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    } else if (isCjk(c)) tokens += w.cjk;
    else if ((c >= 0x2000 && c <= 0x2bff) || (c >= 0xfe00 && c <= 0xfe0f)) tokens += w.symbol;
    else tokens += w.nonAscii3;
  }
  if (len > 0) tokens += wordCost(len, digits, uppers, pieces, w);
  if (spaces > 1 || newline) tokens += 1;
  return Math.ceil(tokens * w.safety);
}
