/**
 * The pure detector core of the guardrails: PII, secrets, prompt-injection heuristics, deny-lists and
 * custom patterns, compiled once per snapshot into one combined RegExp.
 *
 * How a scan works:
 *  - Every detector contributes one or more regular-expression sources. All of them are joined into ONE
 *    global RegExp (`gu` flags, no `i`: case-insensitive detectors fold their letters into `[xX]` classes at
 *    compile time so the union stays exact). That single RegExp walks the text and finds each position where
 *    some detector can start.
 *  - At such a candidate position only (rare in ordinary text), each detector's own sticky RegExp is tried
 *    and its validator (Luhn, IBAN mod-97 + country length, IP forms, card issuer ranges, …) is applied. All
 *    valid candidates are collected, then overlaps are resolved: on overlap the longer finding wins (ties go to
 *    the more specific kind: secret > creditCard > iban > ssn > email > ip > phone > injection > custom).
 *  - Offsets are UTF-16 code-unit offsets (what `String.prototype.slice` takes), so `text.slice(start, end)`
 *    is the matched text whatever the script or emoji in it.
 *
 * Custom `regex` values (case-sensitive; valid when the policy validator's `u`-mode compile accepts them) are
 * not spliced into the combined RegExp: each scans the text on its own, compiled without the `u` flag unless
 * it needs it (property or code point escapes), so that a pattern prone to catastrophic backtracking stays
 * confined to its own scan and V8 can switch it to its linear-time engine (which has no `u` mode) when the
 * sidecar runs with --enable-experimental-regexp-engine-on-excessive-backtracks, as it is started.
 *
 * Streaming look-behind (`maxMatchChars`): each detector has a character bound. Custom regexes cannot be
 * bounded in general; {@link CUSTOM_REGEX_BOUND} is assumed. Private key blocks are capped at
 * {@link PEM_MAX_CHARS} (BEGIN line to END line, about a 4096-bit RSA key); a longer block is still caught by
 * its BEGIN line alone. JWTs and bearer tokens are capped at about 2.6 KB and 1 KB. Runs of invisible characters
 * (zero-width, tag characters) are not capped: a run split by a streaming window is reported piecewise.
 */

export type DetectorKind = 'email' | 'phone' | 'ssn' | 'creditCard' | 'iban' | 'ip' | 'secret' | 'injection' | 'denyList' | 'regex';

export interface DetectorSpec {
  readonly kind: DetectorKind | string;
  readonly values: readonly string[];
  readonly name: string;
}

/** One match: [start, end) offsets into the scanned text, the detector's label (the kind, or `name` when set — used for placeholders like [EMAIL_1] / [MY_NAME_1]), and its kind. */
export interface Finding {
  readonly label: string;
  readonly kind: string;
  readonly start: number;
  readonly end: number;
}

export interface Scanner {
  /** Non-overlapping findings sorted by start (on overlap, the longer one wins). Validators (Luhn, IBAN mod-97, IP ranges) are applied. */
  scan(text: string): Finding[];
  /** The longest match any detector of this scanner can produce that matters for streaming look-behind (a bound in characters, e.g. 256; private key blocks may be longer: cap and document). */
  readonly maxMatchChars: number;
}

/** Longest private key block (BEGIN line … END line) matched as one finding. */
const PEM_MAX_CHARS = 4200;
/** Assumed longest match of a custom `regex` value (not boundable in general). */
const CUSTOM_REGEX_BOUND = 256;

/** Returns the (possibly shortened) end of a valid match, or -1 to reject it. */
type Validator = (text: string, start: number, end: number) => number;

interface Part {
  readonly source: string;
  readonly validate?: Validator;
}

interface BuiltIn {
  readonly parts: readonly Part[];
  readonly maxChars: number;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

/**
 * Makes the ASCII letters of a pattern source case-insensitive by turning `a` into `[aA]`. Escapes (`\s`,
 * `\b`, `\p{L}`, `\u{…}`) and character classes are copied unchanged, so sources given to it must not rely on
 * letters inside classes being folded, and must not use named groups.
 */
function fold(src: string): string {
  let out = '';
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1] ?? '';
      if ((n === 'p' || n === 'P' || n === 'u' || n === 'x') && src[i + 2] === '{') {
        const close = src.indexOf('}', i);
        out += src.slice(i, close + 1);
        i = close;
      } else {
        out += c + n;
        i++;
      }
    } else if (c === '[') {
      let j = i + 1;
      while (j < src.length && src[j] !== ']') j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j;
    } else if (/[a-z]/i.test(c)) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
    } else {
      out += c;
    }
  }
  return out;
}

/** Escapes a literal for use in a RegExp source, folding case per code point (full Unicode, not just ASCII). */
function literalFolded(s: string): string {
  let out = '';
  for (const ch of s.trim()) {
    if (/\s/u.test(ch)) {
      if (!out.endsWith('\\s+')) out += '\\s+';
      continue;
    }
    const lo = ch.toLowerCase();
    const up = ch.toUpperCase();
    if (lo !== up && [...lo].length === 1 && [...up].length === 1) out += `[${lo}${up}]`;
    else out += ch.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  }
  return out;
}

function digitsOf(s: string): string {
  return s.replace(/\D/g, '');
}

function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/** Luhn (mod 10) check of a digit string. */
function luhnValid(digits: string): boolean {
  let sum = 0;
  let dbl = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** Issuer ranges and lengths of the major card networks (the IIN check keeps random Luhn-valid numbers out). */
function cardIssuerOk(d: string): boolean {
  const n = d.length;
  const p2 = Number(d.slice(0, 2));
  const p3 = Number(d.slice(0, 3));
  const p4 = Number(d.slice(0, 4));
  switch (d[0]) {
    case '4':
      return n === 13 || n === 16 || n === 19; // Visa
    case '5':
      if (p2 >= 51 && p2 <= 55) return n === 16; // Mastercard
      return p2 === 50 || (p2 >= 56 && p2 <= 58); // Maestro (lengths 13–19 already enforced)
    case '2':
      return p4 >= 2221 && p4 <= 2720 && n === 16; // Mastercard 2-series
    case '3':
      if (p2 === 34 || p2 === 37) return n === 15; // Amex
      if ((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) return n >= 14; // Diners
      if (p4 >= 3528 && p4 <= 3589) return n >= 16; // JCB
      return false;
    case '6':
      return n >= 13; // Discover, UnionPay, Maestro, RuPay…
    default:
      return false;
  }
}

/** IBAN lengths per country (ISO 13616 registry). Unknown country codes are accepted on the checksum alone. */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28,
  CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18,
  GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32,
  LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24,
  PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28,
  TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};

/** ISO 7064 mod 97-10 check of a compact IBAN (letters and digits, no spaces). */
function ibanChecksumOk(iban: string): boolean {
  const moved = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const c = ch.charCodeAt(0);
    if (c >= 48 && c <= 57) rem = (rem * 10 + (c - 48)) % 97;
    else if (c >= 65 && c <= 90) rem = (rem * 100 + (c - 55)) % 97;
    else return false;
  }
  return rem === 1;
}

// ---------------------------------------------------------------------------------------------------------
// Validators

const validateCard: Validator = (text, start, end) => {
  const d = digitsOf(text.slice(start, end));
  if (d.length < 13 || d.length > 19) return -1;
  if (/^(\d)\1+$/.test(d)) return -1;
  return cardIssuerOk(d) && luhnValid(d) ? end : -1;
};

const validateIban: Validator = (text, start, end) => {
  // Walk the match, keeping the offset after each alphanumeric, so a match that ran on into following
  // text can be cut back to the country's IBAN length.
  const ends: number[] = [];
  let compact = '';
  for (let i = start; i < end; i++) {
    const c = text[i]!;
    if (c !== ' ') {
      compact += c;
      ends.push(i + 1);
    }
  }
  const want = IBAN_LENGTHS[compact.slice(0, 2)];
  if (want !== undefined) {
    if (compact.length < want) return -1;
    const cut = compact.slice(0, want);
    return ibanChecksumOk(cut) ? ends[want - 1]! : -1;
  }
  return compact.length >= 15 && compact.length <= 34 && ibanChecksumOk(compact) ? end : -1;
};

const validatePhone: Validator = (text, start, end) => {
  const s = text.slice(start, end);
  const n = countDigits(s);
  const max = s.includes('(0)') ? 16 : 15;
  if (n < 8 || n > max) return -1;
  if (/^\+?(\d)[\d\s().-]*$/.test(s) && /^(\d)\1+$/.test(digitsOf(s))) return -1; // 0000 0000, 1111-1111…
  return end;
};

const VERSION_BEFORE = /(?:\bversion|\bver\.?|\bv|\brelease|\bbuild|\bfirmware|\bsdk|\bapi)\s*[:=]?\s*$/i;

const validateIpv4: Validator = (text, start, end) => {
  if (VERSION_BEFORE.test(text.slice(Math.max(0, start - 16), start))) return -1;
  return end;
};

const validateIpv6: Validator = (text, start, end) => {
  const s = text.slice(start, end);
  let head = s;
  let v4Groups = 0;
  const v4 = /(?:^|:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(s);
  if (v4) {
    if (!v4[1]!.split('.').every((o) => Number(o) <= 255 && (o === '0' || !o.startsWith('0')))) return -1;
    head = s.slice(0, s.length - v4[1]!.length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
    v4Groups = 2;
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return -1;
  const groupsOf = (x: string): string[] | null => {
    if (x === '') return [];
    const g = x.split(':');
    return g.every((h) => /^[0-9a-fA-F]{1,4}$/.test(h)) ? g : null;
  };
  const left = groupsOf(dbl[0]!);
  const right = dbl.length === 2 ? groupsOf(dbl[1]!) : [];
  if (!left || !right) return -1;
  const groups = left.length + right.length + v4Groups;
  if (dbl.length === 2 ? groups > 7 : groups !== 8) return -1;
  // `a::b`, `ab::cd` (code, C++/Rust paths) are syntactically IPv6; demand a digit or three groups.
  if (!/\d/.test(head) && !v4 && groups < 3) return -1;
  if (dbl.length === 2 && groups === 0 && !v4) return -1; // bare `::`
  if (head.startsWith('::') && groups === 1 && !v4 && head !== '::1') return -1; // `[::2]` slices; keep loopback
  return end;
};

/** Tokens must look random: at least one digit (kebab/snake-case words after `sk-`, `Bearer` are not keys). */
const validateTokenish: Validator = (text, start, end) => {
  const m = /[\s:=]+/.exec(text.slice(start, end)); // skip `Bearer ` / `AccountKey=` prefixes
  const token = m ? text.slice(start + m.index + m[0].length, end) : text.slice(start, end);
  return /\d/.test(token) && /[A-Za-z]/.test(token) ? end : -1;
};

const validateTagRun: Validator = (text, start, end) => {
  // Emoji subdivision flags (🏴 + tag letters + cancel tag) use tag characters legitimately.
  const prev = text.codePointAt(start - 2);
  if (prev === 0x1f3f4 && end - start <= 16) return -1;
  return end;
};

// ---------------------------------------------------------------------------------------------------------
// Built-in detectors

const W = '\\p{L}\\p{N}_'; // "word" characters, Unicode-aware

const EMAIL: BuiltIn = {
  maxChars: 320,
  parts: [
    {
      source:
        `(?<![${W}.%+\\-@])[${W}%+\\-](?:[${W}.%+\\-]{0,63})@` +
        `(?:[\\p{L}\\p{N}](?:[\\p{L}\\p{N}\\-]{0,61}[\\p{L}\\p{N}])?\\.){1,8}` +
        `(?!(?:png|jpe?g|gif|svg|webp|ico|css|js|ts|json|html?|pdf)(?![\\p{L}]))\\p{L}{2,24}(?![${W}\\-@]|\\.[\\p{L}\\p{N}])`,
    },
  ],
};

const PHONE_L = '(?<![\\w+.\\-/:@#=]|\\d[ ,])';
const PHONE_R = '(?![\\w@]|[.\\-/:]\\d| \\d)';
const PHONE: BuiltIn = {
  maxChars: 32,
  parts: [
    // +CC then separated groups, optionally with an area code in parentheses: +44 (0)20 7946 0958, +1-202-555-0173
    { source: `(?<![\\w+])\\+[1-9]\\d{0,3}(?:[ .\\-]?\\(\\d{1,4}\\)[ .\\-]?\\d{1,8})?(?:[ .\\-]\\d{1,8}){1,6}${PHONE_R}`, validate: validatePhone },
    // +CC run (E.164): +442079460958
    { source: `(?<![\\w+])\\+[1-9]\\d{7,14}${PHONE_R}`, validate: validatePhone },
    // +CC (area) number: +1(202)555-0173
    { source: `(?<![\\w+])\\+[1-9]\\d{0,3}[ .\\-]?\\(\\d{1,4}\\)[ .\\-]?\\d{1,8}(?:[ .\\-]\\d{1,8}){0,5}${PHONE_R}`, validate: validatePhone },
    // US: (202) 555-0173, 202-555-0173, 202.555.0173, 1-202-555-0173
    { source: `${PHONE_L}(?:1[ .\\-]?)?\\(\\d{3}\\)[ .\\-]?\\d{3}[ .\\-]\\d{4}${PHONE_R}`, validate: validatePhone },
    { source: `${PHONE_L}(?:1-)?\\d{3}-\\d{3}-\\d{4}${PHONE_R}`, validate: validatePhone },
    { source: `${PHONE_L}(?:1\\.)?\\d{3}\\.\\d{3}\\.\\d{4}${PHONE_R}`, validate: validatePhone },
    // National trunk-prefixed formats: 020 7946 0958, 06 12 34 56 78, 030-1234-5678 (not the SSN shape)
    {
      source: `${PHONE_L}(?!\\d{3}-\\d{2}-\\d{4}(?!\\d))0\\d{1,4}(?:[ .\\-]\\d{2,4}){2,4}${PHONE_R}`,
      validate: (t, s, e) => (countDigits(t.slice(s, e)) >= 9 ? validatePhone(t, s, e) : -1),
    },
  ],
};

const SSN: BuiltIn = {
  maxChars: 11,
  parts: [{ source: '(?<![\\w\\-.]|\\d[ ])(?!000|666|9\\d\\d)\\d{3}-(?!00)\\d{2}-(?!0000)\\d{4}(?![\\w]|-\\d)' }],
};

const CREDIT_CARD: BuiltIn = {
  maxChars: 40,
  parts: [{ source: '(?<![\\w\\-.]|\\d[ \\-])\\d(?:[ \\-]?\\d){12,18}(?![\\w]|[ \\-.]\\d)', validate: validateCard }],
};

const IBAN: BuiltIn = {
  maxChars: 44,
  parts: [{ source: '(?<![\\w])[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\\w])', validate: validateIban }],
};

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const HEX = '[0-9a-fA-F]';
const IP: BuiltIn = {
  maxChars: 45,
  parts: [
    { source: `(?<![\\w.]|\\d\\.)${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, validate: validateIpv4 },
    {
      source: `(?<![\\w:.])(?:${HEX}{0,4}:){2,7}(?:\\d{1,3}(?:\\.\\d{1,3}){3}|${HEX}{0,4})(?![\\w:]|\\.\\d)`,
      validate: validateIpv6,
    },
  ],
};

const TOK = 'A-Za-z0-9';
const SECRET: BuiltIn = {
  maxChars: PEM_MAX_CHARS,
  parts: [
    // AWS access key ids
    { source: `(?<![${TOK}])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![${TOK}])` },
    // AWS secret access key in assignments
    { source: `${fold('aws_?secret_?access_?key')}["']?\\s*[:=]\\s*["']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])` },
    // OpenAI / Anthropic style keys: sk-…, sk-ant-…, sk-proj-…
    { source: `(?<![\\w\\-])sk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_\\-]{20,200}(?![\\w\\-])`, validate: validateTokenish },
    // Stripe secret / restricted keys
    { source: `(?<![\\w])[sr]k_(?:live|test)_[A-Za-z0-9]{16,200}(?![\\w])`, validate: validateTokenish },
    // GitHub tokens
    { source: `(?<![\\w])gh[pousr]_[A-Za-z0-9]{36,251}(?![\\w])` },
    { source: `(?<![\\w])github_pat_[A-Za-z0-9_]{22,255}(?![\\w])` },
    // Slack tokens
    { source: `(?<![\\w\\-])xox[baprs]-[A-Za-z0-9\\-]{10,250}(?![\\w\\-])`, validate: validateTokenish },
    // Google API keys
    { source: `(?<![\\w\\-])AIza[0-9A-Za-z_\\-]{35}(?![\\w\\-])` },
    // Azure storage account keys in connection strings
    { source: `AccountKey=[A-Za-z0-9+/]{86}==` },
    // JWTs
    { source: `(?<![\\w\\-.])eyJ[A-Za-z0-9_\\-]{8,512}\\.eyJ[A-Za-z0-9_\\-]{8,1536}\\.[A-Za-z0-9_\\-]{0,512}(?![\\w\\-])` },
    // Bearer <token>
    { source: `(?<![\\w])[Bb]earer[ \\t]+[A-Za-z0-9\\-._~+/]{16,1024}=*(?![\\w\\-.~+/=])`, validate: validateTokenish },
    // Private key blocks, up to the END line (or the BEGIN line alone when the END is too far / missing)
    {
      source:
        `-----BEGIN[ A-Z0-9]{0,24} PRIVATE KEY(?: BLOCK)?-----` +
        `(?:[\\s\\S]{0,${PEM_MAX_CHARS - 70}}?-----END[ A-Z0-9]{0,24} PRIVATE KEY(?: BLOCK)?-----)?`,
    },
  ],
};

const SP = '\\s+';
const OPT = (s: string) => `(?:${s}${SP})?`;
const NOT_NEGATED = `(?<!\\b(?:not${SP}to|don'?t|never|do${SP}not|shouldn'?t|should${SP}not)${SP})`;
const INJECTION_SOURCES: readonly string[] = [
  // ignore (all) (of) (the) previous/prior/above instructions
  `${NOT_NEGATED}\\b(?:ignore|disregard|forget|override|bypass|skip)${SP}${OPT('(?:all|any|every)')}${OPT('of')}${OPT('(?:the|your|my|these|those|any)')}` +
    `(?:previous|prior|above|preceding|earlier|original|initial|foregoing)${SP}${OPT('(?:system|developer)')}` +
    `(?:instructions?|prompts?|directions|rules|guidelines|commands|directives|guidance)\\b`,
  // ignore (all) your instructions / programming / guidelines …
  `${NOT_NEGATED}\\b(?:ignore|disregard|forget|override|bypass)${SP}${OPT('(?:all|any)')}${OPT('of')}your${SP}` +
    `${OPT('(?:previous|prior|original|initial|current|safety|ethical|content)')}` +
    `(?:instructions|programming|guidelines|rules|system${SP}(?:prompt|message)|training|restrictions|guardrails|filters|polic(?:y|ies))\\b`,
  // ignore the system prompt / ignore everything above
  `\\b(?:ignore|disregard|forget)${SP}(?:the${SP})?system${SP}(?:prompt|message|instructions)\\b`,
  `\\b(?:ignore|disregard|forget)${SP}(?:everything|all${SP}(?:of${SP})?(?:the${SP})?(?:text|content))${SP}(?:above|before${SP}this|so${SP}far)\\b`,
  // you are now DAN / in developer mode / unrestricted
  `\\byou${SP}are${SP}now${SP}(?:DAN|STAN|DUDE|AIM|an?${SP}(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)|in${SP}(?:developer|dev|god|jailbreak|unrestricted)${SP}mode|free${SP}(?:from|of)${SP}(?:all${SP})?(?:restrictions|rules|limitations))\\b`,
  `\\b(?:DAN${SP}mode|do${SP}anything${SP}now)\\b`,
  `\\b(?:developer|god|jailbreak|DAN)${SP}mode${SP}(?:(?:is${SP})?(?:now${SP})?(?:enabled|activated)|is${SP}(?:now${SP})?on)\\b`,
  `\\b(?:act|respond|answer|behave)${SP}(?:as${SP}if${SP}you${SP}(?:are|were)${SP}in|in)${SP}(?:developer|god|jailbreak|unrestricted)${SP}mode\\b`,
  `\\b(?:simulate|enable|activate|enter)${SP}(?:the${SP})?(?:jailbreak|god|DAN)${SP}mode\\b`,
  // pretend you have no restrictions
  `\\b(?:pretend|imagine|act${SP}as${SP}if|assume|suppose|behave${SP}as${SP}if)${SP}(?:that${SP})?you${SP}(?:have|had|are${SP}under|were${SP}under)${SP}no${SP}` +
    `(?:restrictions|rules|limits|limitations|guidelines|filters|content${SP}polic(?:y|ies)|ethical${SP}(?:guidelines|constraints)|morals|boundaries)\\b`,
  `\\b(?:pretend|imagine)${SP}(?:that${SP})?you${SP}are${SP}(?:an?${SP})?(?:unrestricted|unfiltered|uncensored|jailbroken)\\b`,
  `\\b(?:you${SP}are${SP})?no${SP}longer${SP}(?:bound|restricted|constrained|limited)${SP}by${SP}(?:any${SP}|your${SP}|the${SP})?(?:rules|guidelines|restrictions|policies|openai|anthropic|content${SP}polic(?:y|ies)|safety)\\b`,
  // reveal your system prompt
  `\\b(?:reveal|leak|dump|print|repeat|output|display|expose|disclose|show${SP}me|tell${SP}me|give${SP}me|what${SP}(?:is|are|was|were))${SP}` +
    `your${SP}(?:full${SP}|entire${SP}|exact${SP}|original${SP}|hidden${SP}|initial${SP}|secret${SP}|complete${SP})?(?:system${SP}(?:prompt|message|instructions)|initial${SP}instructions|hidden${SP}instructions|instructions${SP}verbatim|prompt${SP}verbatim)\\b`,
  `\\b(?:reveal|leak|dump|print|repeat|output|disclose)${SP}(?:the${SP})?(?:full${SP}|entire${SP}|exact${SP}|original${SP}|hidden${SP})?(?:system${SP}prompt|hidden${SP}instructions|initial${SP}instructions)${SP}(?:verbatim|word${SP}for${SP}word|above|you${SP}(?:were|have${SP}been)${SP}given)\\b`,
  `\\brepeat${SP}(?:all${SP})?(?:of${SP})?(?:the${SP})?(?:words|text|everything)${SP}above\\b`,
  // role-play jailbreaks
  `\\b(?:let'?s${SP}play${SP}a${SP}game|from${SP}now${SP}on|for${SP}the${SP}rest${SP}of${SP}this${SP}conversation)\\b[^\\n]{0,100}?\\b(?:you${SP}(?:are|will${SP}be|will${SP}act${SP}as|must${SP}act${SP}as)|act${SP}as|pretend|roleplay${SP}as|play${SP}the${SP}role${SP}of)\\b[^\\n]{0,100}?` +
    `(?:\\bno${SP}(?:rules|restrictions|limits|filters|morals|ethics|guidelines|boundaries)\\b|\\b(?:unfiltered|uncensored|unrestricted|amoral|jailbroken)\\b|\\bwithout${SP}(?:any${SP})?(?:restrictions|rules|limits|filters|censorship|ethics)\\b|\\banything${SP}now\\b|\\bnever${SP}refuses?\\b)`,
  `\\b(?:act|roleplay|role-play|pose)${SP}as${SP}(?:an?${SP})?(?:unfiltered|uncensored|unrestricted|amoral|jailbroken|evil)${SP}(?:AI|assistant|chatbot|model|version)\\b`,
  `\\byou${SP}(?:are|will)${SP}(?:going${SP}to${SP})?(?:act|pretend|roleplay)${SP}as${SP}(?:DAN|STAN|DUDE|AIM|Mongo${SP}Tom)\\b`,
  `\\bstay${SP}in${SP}character${SP}(?:no${SP}matter${SP}what|at${SP}all${SP}costs)\\b[^\\n]{0,80}?\\b(?:rules|restrictions|guidelines|refuse|policy|policies|filters)\\b`,
  `\\b(?:never|don'?t|do${SP}not)${SP}(?:ever${SP})?(?:refuse|decline)${SP}(?:a${SP}|any${SP})?(?:request|question|prompt)s?\\b[^\\n]{0,60}?\\b(?:illegal|unethical|harmful|dangerous|rules|guidelines|policy|policies)\\b`,
  // chat-template token smuggling
  `<\\|(?:im_start|im_end|system|endoftext)\\|>`,
  `\\[/?INST\\]|<<\\/?SYS>>`,
];

const INJECTION: BuiltIn = {
  maxChars: 400,
  parts: [
    ...INJECTION_SOURCES.map((s) => ({ source: fold(s) })),
    // hidden text: runs of zero-width / invisible formatting characters
    // (left boundary: one finding per run, not one candidate per character; runs are not length-capped)
    { source: '(?<![\\u200B-\\u200F\\u2060\\uFEFF])[\\u200B-\\u200F\\u2060\\uFEFF]{2,}' },
    // a zero-width space / word joiner / BOM hidden inside a Latin word (ig\u200Bnore)
    { source: '(?<=[A-Za-z])[\\u200B\\u2060\\uFEFF](?=[A-Za-z])' },
    // Unicode tag characters (invisible ASCII smuggling)
    { source: '(?<![\\u{E0000}-\\u{E007F}])[\\u{E0000}-\\u{E007F}]+', validate: validateTagRun },
  ],
};

const BUILT_INS: Readonly<Record<string, BuiltIn>> = {
  email: EMAIL,
  phone: PHONE,
  ssn: SSN,
  creditCard: CREDIT_CARD,
  iban: IBAN,
  ip: IP,
  secret: SECRET,
  injection: INJECTION,
};

/** Tie-break on equal-length overlapping findings: lower wins. */
const PRIORITY: Readonly<Record<string, number>> = {
  secret: 0, creditCard: 1, iban: 2, ssn: 3, email: 4, ip: 5, phone: 6, injection: 7, denyList: 8, regex: 9,
};

// ---------------------------------------------------------------------------------------------------------
// Compilation

interface Compiled {
  readonly label: string;
  readonly kind: string;
  readonly priority: number;
  /** Sticky RegExp, tried at candidate positions. */
  readonly sticky: RegExp;
  readonly validate: Validator | undefined;
}

interface Candidate {
  label: string;
  kind: string;
  start: number;
  end: number;
  priority: number;
}

/** True when a pattern cannot be spliced into an alternation unchanged (numbered/named backrefs, named groups). */
/** Whether a custom pattern needs the `u` flag to mean what it says (property escapes, code point escapes, astral characters). */
function needsUnicode(src: string): boolean {
  return /\\[pP]\{|\\u\{|[\uD800-\uDFFF]/u.test(src);
}

/**
 * A custom pattern compiled for its own scan. Without the `u` flag when the pattern does not need it:
 * V8's linear-time engine (which takes over from backtracking after too many backtracks when the
 * sidecar runs with --enable-experimental-regexp-engine-on-excessive-backtracks) does not support
 * `u`, so such a pattern cannot backtrack catastrophically on hostile text.
 */
function customRegExp(src: string, flags: 'g' | 'y'): RegExp {
  if (!needsUnicode(src)) {
    try {
      return new RegExp(src, flags);
    } catch {
      // valid only in unicode mode: below
    }
  }
  return new RegExp(src, `u${flags}`);
}

/** Compiles the detectors once: ONE combined RegExp for the built-in kinds and deny-lists (case-insensitive, on word boundaries) plus per-kind validators; each custom regex value its own scan (invalid ones throw an Error naming the pattern). */
export function compileScanner(detectors: readonly DetectorSpec[]): Scanner {
  const parts: Compiled[] = [];
  const combined: string[] = [];
  const separate: RegExp[] = []; // custom patterns that need their own scan
  let maxMatchChars = 0;

  const add = (label: string, kind: string, source: string, validate?: Validator) => {
    parts.push({ label, kind, priority: PRIORITY[kind] ?? 9, sticky: new RegExp(source, 'uy'), validate });
    combined.push(source);
  };

  for (const d of detectors) {
    const label = d.name || d.kind;
    const builtIn = BUILT_INS[d.kind];
    if (builtIn) {
      for (const p of builtIn.parts) add(label, d.kind, p.source, p.validate);
      maxMatchChars = Math.max(maxMatchChars, builtIn.maxChars);
    } else if (d.kind === 'denyList') {
      const words = [...new Set(d.values.map((v) => v.trim()).filter((v) => v !== ''))].sort((a, b) => b.length - a.length);
      if (words.length === 0) continue;
      add(label, d.kind, `(?<![\\p{L}\\p{N}_])(?:${words.map(literalFolded).join('|')})(?![\\p{L}\\p{N}_])`);
      // A run of spaces inside a phrase may be longer than in the policy; allow some slack.
      maxMatchChars = Math.max(maxMatchChars, Math.min(words[0]!.length * 2 + 16, 2048));
    } else if (d.kind === 'regex') {
      for (const v of d.values) {
        try {
          new RegExp(v, 'u'); // what the policy validator accepts
        } catch (e) {
          throw new Error(`detector ${label}: invalid regex ${JSON.stringify(v)}: ${(e as Error).message}`, { cause: e });
        }
        // Each custom pattern scans on its own (never inside the combined RegExp): a pattern that
        // backtracks badly then stays confined to itself, and can fall back to the linear engine.
        parts.push({ label, kind: d.kind, priority: PRIORITY.regex!, sticky: customRegExp(v, 'y'), validate: undefined });
        separate.push(customRegExp(v, 'g'));
      }
      if (d.values.length > 0) maxMatchChars = Math.max(maxMatchChars, CUSTOM_REGEX_BOUND);
    } else {
      throw new Error(`unknown detector kind ${JSON.stringify(d.kind)}${d.name ? ` (detector ${d.name})` : ''}`);
    }
  }

  const finder = combined.length > 0 ? new RegExp(combined.map((s) => `(?:${s})`).join('|'), 'gu') : null;

  const collectAt = (text: string, pos: number, out: Candidate[]) => {
    for (const p of parts) {
      p.sticky.lastIndex = pos;
      const m = p.sticky.exec(text);
      if (!m || m[0].length === 0) continue;
      let end = pos + m[0].length;
      if (p.validate) {
        end = p.validate(text, pos, end);
        if (end <= pos) continue;
      }
      out.push({ label: p.label, kind: p.kind, start: pos, end, priority: p.priority });
    }
  };

  const scan = (text: string): Finding[] => {
    const cands: Candidate[] = [];
    const positions: number[] = [];
    if (finder) {
      finder.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = finder.exec(text)) !== null) {
        positions.push(m.index);
        // Resume one code point later so overlapping candidates (and other detectors' starts) are seen.
        const cp = text.codePointAt(m.index) ?? 0;
        finder.lastIndex = m.index + (cp > 0xffff ? 2 : 1);
      }
    }
    for (const re of separate) {
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(text)) !== null) {
        positions.push(m.index);
        re.lastIndex = m.index + 1;
      }
    }
    if (separate.length > 0) positions.sort((a, b) => a - b);
    let last = -1;
    for (const pos of positions) {
      if (pos === last) continue;
      last = pos;
      collectAt(text, pos, cands);
    }
    return resolve(cands);
  };

  return { scan, maxMatchChars };
}

/** Non-overlapping findings sorted by start; on overlap the longer wins, on equal length the more specific kind. */
function resolve(cands: Candidate[]): Finding[] {
  cands.sort((a, b) => a.start - b.start || b.end - b.start - (a.end - a.start) || a.priority - b.priority);
  const kept: Candidate[] = [];
  for (const c of cands) {
    const prev = kept[kept.length - 1];
    if (!prev || c.start >= prev.end) {
      kept.push(c);
      continue;
    }
    const lc = c.end - c.start;
    const lp = prev.end - prev.start;
    if (lc > lp || (lc === lp && c.priority < prev.priority)) {
      kept[kept.length - 1] = c;
    }
  }
  return kept.map(({ label, kind, start, end }) => ({ label, kind, start, end }));
}
