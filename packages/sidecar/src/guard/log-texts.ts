import { compileScanner, type Finding, type Scanner } from './detectors.js';
import { redact, visitTexts, type CompiledGuardrail, type Placeholders } from './index.js';

/**
 * Opt-in prompt logging (a route rule's `logging`): the texts of a request and of its answer in the
 * request's log line, never raw. They pass through the same redaction as the guardrails: the
 * detectors of every guardrail of the route (whatever its direction and action, so a `log` or
 * `block` guardrail's findings are not written either), with the request's placeholders, so the
 * log says `[EMAIL_1]` where the provider saw `[EMAIL_1]`. A route without guardrails gets the
 * default PII detectors. Texts are cut to the rule's `maxChars`.
 */

const DEFAULT_LOG_DETECTORS = ['email', 'phone', 'ssn', 'creditCard', 'iban', 'ip', 'secret'].map((kind) => ({ kind, values: [], name: '' }));
let defaultScanner: Scanner | undefined;

/** The scanners whose findings are redacted from logged texts: the route's guardrails' (with detectors), else the default PII set. */
export function logScanners(detecting: readonly CompiledGuardrail[]): Scanner[] {
  if (detecting.length > 0) return detecting.map((g) => g.scanner);
  defaultScanner ??= compileScanner(DEFAULT_LOG_DETECTORS);
  return [defaultScanner];
}

/** The texts of a request or answer body (caller shape), in order, joined by blank lines. */
export function bodyText(body: Record<string, unknown>): string {
  const texts: string[] = [];
  visitTexts(body, (t) => {
    if (t !== '') texts.push(t);
    return t;
  });
  return texts.join('\n\n');
}

/** Look-ahead past the cut: longer than any match a scanner can produce (private key blocks, 4,200). */
export const CUT_LOOKAHEAD = 4608;

/**
 * `text` redacted by `scanners` and cut to about `maxChars` characters (with a note of how much
 * was cut). The cut never splits a match: a match that starts before it is redacted whole.
 */
export function loggable(text: string, scanners: readonly Scanner[], names: Placeholders, maxChars: number): string {
  const scanned = text.length > maxChars + CUT_LOOKAHEAD ? text.slice(0, maxChars + CUT_LOOKAHEAD) : text;
  const all: Finding[] = [];
  for (const s of scanners) all.push(...s.scan(scanned));
  all.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: Finding[] = [];
  for (const f of all) if (kept.length === 0 || f.start >= kept[kept.length - 1]!.end) kept.push(f);
  let cut = Math.min(text.length, maxChars);
  for (const f of kept) if (f.start < cut && f.end > cut) cut = f.end;
  const shown = redact(text.slice(0, cut), kept.filter((f) => f.end <= cut), names);
  return cut < text.length ? `${shown}…[${text.length - cut} more chars]` : shown;
}
