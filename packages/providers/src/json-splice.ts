/**
 * Edit top-level members of a JSON object text without re-serialising the rest: a passthrough keeps
 * the caller's bytes (key order, number formatting, unicode escapes) and changes only what it must
 * (`model`, `stream_options`). The input must already have been validated by JSON.parse.
 */

/** Index just past the JSON value starting at `i` (which must not be whitespace). */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 34 /* " */) {
    for (let j = i + 1; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (d === 92 /* \ */) j++;
      else if (d === 34) return j + 1;
    }
    return s.length;
  }
  if (c === 123 /* { */ || c === 91 /* [ */) {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (d === 34) {
        j = skipValue(s, j) - 1;
      } else if (d === 123 || d === 91) {
        depth++;
      } else if (d === 125 || d === 93) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return s.length;
  }
  let j = i;
  while (j < s.length) {
    const d = s.charCodeAt(j);
    if (d === 44 || d === 125 || d === 93 || d === 32 || d === 10 || d === 13 || d === 9) break;
    j++;
  }
  return j;
}

function skipWs(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) break;
    i++;
  }
  return i;
}

/**
 * Returns `raw` with each top-level member named in `values` set to the given JSON text (replaced
 * where present, appended where absent). Values are raw JSON texts, e.g. `JSON.stringify(model)`.
 */
export function setTopLevelMembers(raw: string, values: Readonly<Record<string, string>>): string {
  const keys = Object.keys(values);
  if (keys.length === 0) return raw;
  const found = new Set<string>();
  const edits: Array<[number, number, string]> = [];
  let i = skipWs(raw, 0);
  if (raw.charCodeAt(i) !== 123) throw new TypeError('not a JSON object');
  i = skipWs(raw, i + 1);
  let close = -1;
  while (i < raw.length) {
    if (raw.charCodeAt(i) === 125) {
      close = i;
      break;
    }
    const keyEnd = skipValue(raw, i);
    const key = JSON.parse(raw.slice(i, keyEnd)) as string;
    i = skipWs(raw, keyEnd);
    i = skipWs(raw, i + 1); // ':'
    const valueEnd = skipValue(raw, i);
    const replacement = Object.hasOwn(values, key) ? values[key] : undefined;
    if (replacement !== undefined) {
      edits.push([i, valueEnd, replacement]);
      found.add(key);
    }
    i = skipWs(raw, valueEnd);
    if (raw.charCodeAt(i) === 44) i = skipWs(raw, i + 1);
  }
  if (close === -1) throw new TypeError('unterminated JSON object');
  const missing = keys.filter((k) => !found.has(k));
  let out = '';
  let last = 0;
  for (const [a, b, v] of edits) {
    out += raw.slice(last, a) + v;
    last = b;
  }
  if (missing.length === 0) return out + raw.slice(last);
  const before = raw.slice(last, close);
  const empty = edits.length === 0 && found.size === 0 && raw.slice(skipWs(raw, 0) + 1, close).trim() === '';
  const added = missing.map((k) => `${JSON.stringify(k)}:${values[k] as string}`).join(',');
  return out + before + (empty ? '' : ',') + added + raw.slice(close);
}

/**
 * The value of the last member named `key` in a JSON object text, parsed, without parsing the rest:
 * providers put `usage` at the end of their answers, so a passthrough reads it from the tail instead
 * of parsing the whole body. Returns undefined when the text does not look like one JSON object or
 * the member is absent or unreadable (the caller then falls back to a full parse).
 */
export function lastMemberValue(raw: string, key: string): unknown {
  let end = raw.length - 1;
  while (end >= 0 && /\s/.test(raw[end] as string)) end--;
  const start = skipWs(raw, 0);
  if (raw.charCodeAt(start) !== 123 || raw.charCodeAt(end) !== 125) return undefined;
  const needle = `"${key}"`;
  const at = raw.lastIndexOf(needle, end);
  if (at <= start) return undefined;
  let i = skipWs(raw, at + needle.length);
  if (raw.charCodeAt(i) !== 58 /* : */) return undefined;
  i = skipWs(raw, i + 1);
  const valueEnd = skipValue(raw, i);
  try {
    return JSON.parse(raw.slice(i, valueEnd));
  } catch {
    return undefined;
  }
}
