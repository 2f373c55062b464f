/**
 * The scalar functions of DQL and their arities.
 *
 * @remarks
 * Unless a function says otherwise: a MISSING argument gives MISSING, a NULL argument gives NULL,
 * and an argument of the wrong type gives NULL (never an exception), so one odd document does
 * not fail a whole query. Date functions read and write ISO-8601 strings in UTC; an unparsable
 * date gives NULL. `regexp_like` is the one function that throws, for a pattern that does not
 * compile or that is refused as potentially catastrophic.
 */
import { dqlError } from './errors.js';
import { compareStrings, isObject, MISSING, typeOf, valuesEqual } from './values.js';
import type { JsonObject, JsonValue, Value } from './values.js';

/** What functions may read from the outside world. */
export interface FunctionContext {
  /** Milliseconds since the epoch; `clock()` formats it as ISO-8601. */
  readonly now: () => number;
}

/** A scalar function over evaluated arguments. */
export type ScalarFunction = (args: readonly Value[], ctx: FunctionContext) => Value;

/** Minimum and maximum argument counts (`max` Infinity for variadic). */
export interface Arity {
  readonly min: number;
  readonly max: number;
}

/** Longest regular expression pattern `regexp_like` accepts. */
export const MAX_REGEX_PATTERN = 256;
/** Longest string `regexp_like` matches against; longer input gives NULL. */
export const MAX_REGEX_INPUT = 64 * 1024;

/** Returns the first MISSING or NULL among `args`, or undefined when all are valued. */
function propagate(args: readonly Value[]): Value | undefined {
  let sawNull = false;
  for (const a of args) {
    if (a === MISSING) return MISSING;
    if (a === null) sawNull = true;
  }
  return sawNull ? null : undefined;
}

function strict1<T>(check: (v: Value) => v is T & Value, f: (v: T) => Value): ScalarFunction {
  return (args) => {
    const p = propagate(args);
    if (p !== undefined) return p;
    const v = args[0] as Value;
    return check(v) ? f(v) : null;
  };
}

const isString = (v: Value): v is string => typeof v === 'string';
const isArray = (v: Value): v is readonly JsonValue[] => Array.isArray(v);
const isObj = (v: Value): v is JsonObject => isObject(v);
const isNumber = (v: Value): v is number => typeof v === 'number';

function finite(n: number): Value {
  return Number.isFinite(n) ? n : null;
}

function sortedKeys(o: JsonObject): string[] {
  return Object.keys(o).sort(compareStrings);
}

function trimWith(s: string, chars: string | undefined, left: boolean, right: boolean): string {
  if (chars === undefined) {
    return left && right ? s.trim() : left ? s.trimStart() : s.trimEnd();
  }
  const set = new Set(Array.from(chars));
  const cps = Array.from(s);
  let a = 0;
  let b = cps.length;
  if (left) while (a < b && set.has(cps[a] ?? '')) a++;
  if (right) while (b > a && set.has(cps[b - 1] ?? '')) b--;
  return cps.slice(a, b).join('');
}

function trimFunction(left: boolean, right: boolean): ScalarFunction {
  return (args) => {
    const p = propagate(args);
    if (p !== undefined) return p;
    const [s, chars] = args;
    if (typeof s !== 'string' || (chars !== undefined && typeof chars !== 'string')) return null;
    return trimWith(s, chars, left, right);
  };
}

// --- regular expressions ---------------------------------------------------------------------

const regexCache = new Map<string, RegExp>();

/**
 * Refuses patterns that can backtrack catastrophically on short input.
 * @remarks A heuristic (JavaScript has no linear-time engine built in): no back-references, no
 * lookaround, and no quantified group that itself contains a quantifier or an alternation —
 * the shapes of `(a+)+`, `(a|aa)*`, `(.*)*`. Together with the pattern and input length caps this
 * bounds the work of one match for the patterns that remain.
 */
function checkRegexSafety(pattern: string): string | undefined {
  if (/\\[1-9]|\\k</.test(pattern)) return 'back-references are not allowed';
  if (/\(\?<?[=!]/.test(pattern)) return 'lookaround is not allowed';
  // Track, per open group, whether it holds a quantifier or alternation.
  const stack: boolean[] = [];
  let risky = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      // skip a character class
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      while (i < pattern.length && pattern[i] !== ']') {
        if (pattern[i] === '\\') i++;
        i++;
      }
      continue;
    }
    if (c === '(') {
      stack.push(false);
      continue;
    }
    if (c === ')') {
      const inner = stack.pop() ?? false;
      const next = pattern[i + 1];
      const quantified = next === '*' || next === '+' || next === '?' || next === '{';
      if (inner && quantified && next !== '?') risky = true;
      if (stack.length > 0 && (inner || quantified)) stack[stack.length - 1] = true;
      continue;
    }
    if (c === '*' || c === '+' || c === '?' || c === '{' || c === '|') {
      if (stack.length > 0) stack[stack.length - 1] = true;
    }
  }
  return risky ? 'nested quantifiers can take exponential time' : undefined;
}

function compileRegex(pattern: string): RegExp {
  const cached = regexCache.get(pattern);
  if (cached) return cached;
  if (pattern.length > MAX_REGEX_PATTERN) {
    throw dqlError(
      'DQL_INVALID_REGEX',
      `regular expression is ${pattern.length} characters long; the limit is ${MAX_REGEX_PATTERN}`,
      { pattern: pattern.slice(0, 64), reason: 'too long' },
    );
  }
  const unsafe = checkRegexSafety(pattern);
  if (unsafe !== undefined) {
    throw dqlError('DQL_INVALID_REGEX', `regular expression refused: ${unsafe}`, {
      pattern,
      reason: unsafe,
    });
  }
  let re: RegExp;
  try {
    re = new RegExp(pattern, 'u');
  } catch (cause) {
    throw dqlError(
      'DQL_INVALID_REGEX',
      `invalid regular expression: ${(cause as Error).message}`,
      { pattern, reason: 'syntax' },
      cause,
    );
  }
  if (regexCache.size > 256) regexCache.clear();
  regexCache.set(pattern, re);
  return re;
}

// --- dates -----------------------------------------------------------------------------------

const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Milliseconds since the epoch of an ISO-8601 date string, or undefined. */
export function parseIsoDate(s: string): number | undefined {
  const m = ISO_DATE.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const ms = frac === undefined ? 0 : Number((frac + '00').slice(0, 3));
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h ?? 0);
  const minute = Number(mi ?? 0);
  const second = Number(sec ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  let t = Date.UTC(Number(y), month - 1, day, hour, minute, second, ms);
  const check = new Date(t);
  if (check.getUTCDate() !== day) return undefined;
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const off = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4));
    t -= sign * off * 60_000;
  }
  return Number.isFinite(t) ? t : undefined;
}

function formatDate(t: number): Value {
  if (!Number.isFinite(t) || Math.abs(t) > 8.64e15) return null;
  return new Date(t).toISOString();
}

const DATE_PARTS = [
  'millisecond',
  'second',
  'minute',
  'hour',
  'day',
  'week',
  'month',
  'year',
] as const;
type DatePart = (typeof DATE_PARTS)[number];
const FIXED_MS: Partial<Record<DatePart, number>> = {
  millisecond: 1,
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 7 * 86_400_000,
};

function datePart(v: Value): DatePart | undefined {
  if (typeof v !== 'string') return undefined;
  let p = v.toLowerCase();
  if (p.endsWith('s')) p = p.slice(0, -1);
  return (DATE_PARTS as readonly string[]).includes(p) ? (p as DatePart) : undefined;
}

function addMonths(t: number, months: number): number {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const targetY = y + Math.floor(m / 12);
  const targetM = ((m % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(targetY, targetM + 1, 0)).getUTCDate();
  const day = Math.min(d.getUTCDate(), lastDay);
  return Date.UTC(
    targetY,
    targetM,
    day,
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    d.getUTCMilliseconds(),
  );
}

function dateArgs(args: readonly Value[]): Value | undefined {
  return propagate(args);
}

const dateAdd =
  (sign: 1 | -1): ScalarFunction =>
  (args) => {
    const p = dateArgs(args);
    if (p !== undefined) return p;
    const [d, n, part] = args;
    const unit = datePart(part as Value);
    if (typeof d !== 'string' || typeof n !== 'number' || !Number.isInteger(n) || !unit)
      return null;
    const t = parseIsoDate(d);
    if (t === undefined) return null;
    if (unit === 'month') return formatDate(addMonths(t, sign * n));
    if (unit === 'year') return formatDate(addMonths(t, sign * n * 12));
    return formatDate(t + sign * n * (FIXED_MS[unit] ?? 0));
  };

const dateDiff: ScalarFunction = (args) => {
  const p = dateArgs(args);
  if (p !== undefined) return p;
  const [a, b, part] = args;
  const unit = datePart(part as Value);
  if (typeof a !== 'string' || typeof b !== 'string' || !unit) return null;
  const ta = parseIsoDate(a);
  const tb = parseIsoDate(b);
  if (ta === undefined || tb === undefined) return null;
  if (unit === 'month' || unit === 'year') {
    const da = new Date(ta);
    const db = new Date(tb);
    const months =
      (da.getUTCFullYear() - db.getUTCFullYear()) * 12 + (da.getUTCMonth() - db.getUTCMonth());
    return unit === 'month' ? months : Math.trunc(months / 12);
  }
  return Math.trunc((ta - tb) / (FIXED_MS[unit] ?? 1));
};

const datePartFn: ScalarFunction = (args) => {
  const p = dateArgs(args);
  if (p !== undefined) return p;
  const [d, part] = args;
  const unit = datePart(part as Value);
  if (typeof d !== 'string' || !unit) return null;
  const t = parseIsoDate(d);
  if (t === undefined) return null;
  const x = new Date(t);
  switch (unit) {
    case 'millisecond':
      return x.getUTCMilliseconds();
    case 'second':
      return x.getUTCSeconds();
    case 'minute':
      return x.getUTCMinutes();
    case 'hour':
      return x.getUTCHours();
    case 'day':
      return x.getUTCDate();
    case 'week':
      return Math.floor((t - Date.UTC(x.getUTCFullYear(), 0, 1)) / FIXED_MS.week!) + 1;
    case 'month':
      return x.getUTCMonth() + 1;
    case 'year':
      return x.getUTCFullYear();
  }
};

const dateTrunc: ScalarFunction = (args) => {
  const p = dateArgs(args);
  if (p !== undefined) return p;
  const [d, part] = args;
  const unit = datePart(part as Value);
  if (typeof d !== 'string' || !unit || unit === 'week') return null;
  const t = parseIsoDate(d);
  if (t === undefined) return null;
  const x = new Date(t);
  switch (unit) {
    case 'month':
      return formatDate(Date.UTC(x.getUTCFullYear(), x.getUTCMonth(), 1));
    case 'year':
      return formatDate(Date.UTC(x.getUTCFullYear(), 0, 1));
    default: {
      const size = FIXED_MS[unit] ?? 1;
      return formatDate(Math.floor(t / size) * size);
    }
  }
};

// --- the table -------------------------------------------------------------------------------

function lengthOf(v: Value): Value {
  if (typeof v === 'string') {
    let n = 0;
    for (const _ of v) n++;
    return n;
  }
  if (v instanceof Uint8Array) return v.length;
  return null;
}

function substr(args: readonly Value[]): Value {
  const p = propagate(args);
  if (p !== undefined) return p;
  const [s, start, len] = args;
  if (typeof s !== 'string' || typeof start !== 'number' || !Number.isInteger(start)) return null;
  if (len !== undefined && (typeof len !== 'number' || !Number.isInteger(len) || len < 0))
    return null;
  const cps = Array.from(s);
  const from = start < 0 ? Math.max(0, cps.length + start) : start;
  if (from > cps.length) return null;
  return cps.slice(from, len === undefined ? undefined : from + len).join('');
}

function firstWhere(pred: (v: Value) => boolean, fallback: Value): ScalarFunction {
  return (args) => {
    for (const a of args) if (pred(a)) return a;
    return fallback;
  };
}

function round(args: readonly Value[]): Value {
  const p = propagate(args);
  if (p !== undefined) return p;
  const [x, digits] = args;
  if (typeof x !== 'number') return null;
  const d = digits === undefined ? 0 : digits;
  if (typeof d !== 'number' || !Number.isInteger(d) || d < -15 || d > 15) return null;
  const f = 10 ** d;
  return finite(Math.round(x * f) / f);
}

/** The scalar functions by lower-case name. */
export const FUNCTIONS: ReadonlyMap<
  string,
  { readonly arity: Arity; readonly fn: ScalarFunction }
> = new Map<string, { arity: Arity; fn: ScalarFunction }>([
  [
    'coalesce',
    { arity: { min: 1, max: Infinity }, fn: firstWhere((v) => v !== MISSING && v !== null, null) },
  ],
  [
    'ifmissing',
    { arity: { min: 1, max: Infinity }, fn: firstWhere((v) => v !== MISSING, MISSING) },
  ],
  ['ifnull', { arity: { min: 1, max: Infinity }, fn: firstWhere((v) => v !== null, null) }],
  [
    'ifmissingornull',
    { arity: { min: 1, max: Infinity }, fn: firstWhere((v) => v !== MISSING && v !== null, null) },
  ],
  [
    'nvl',
    {
      arity: { min: 2, max: 2 },
      fn: (args) => {
        const [a, b] = args;
        return a === MISSING || a === null || a === undefined ? (b ?? MISSING) : a;
      },
    },
  ],
  ['type', { arity: { min: 1, max: 1 }, fn: (args) => typeOf(args[0]) }],
  [
    'length',
    {
      arity: { min: 1, max: 1 },
      fn: (args) => propagate(args) ?? lengthOf(args[0] as Value),
    },
  ],
  ['array_length', { arity: { min: 1, max: 1 }, fn: strict1(isArray, (a) => a.length) }],
  [
    'array_contains',
    {
      arity: { min: 2, max: 2 },
      fn: (args) => {
        const [a, v] = args;
        if (a === MISSING) return MISSING;
        if (a === null) return null;
        if (!Array.isArray(a)) return null;
        if (v === MISSING || v === undefined) return MISSING;
        return (a as readonly JsonValue[]).some((x) => valuesEqual(x, v));
      },
    },
  ],
  ['object_keys', { arity: { min: 1, max: 1 }, fn: strict1(isObj, (o) => sortedKeys(o)) }],
  [
    'object_values',
    {
      arity: { min: 1, max: 1 },
      fn: strict1(isObj, (o) => sortedKeys(o).map((k) => o[k] as JsonValue)),
    },
  ],
  [
    'object_length',
    { arity: { min: 1, max: 1 }, fn: strict1(isObj, (o) => Object.keys(o).length) },
  ],
  ['lower', { arity: { min: 1, max: 1 }, fn: strict1(isString, (s) => s.toLowerCase()) }],
  ['upper', { arity: { min: 1, max: 1 }, fn: strict1(isString, (s) => s.toUpperCase()) }],
  ['trim', { arity: { min: 1, max: 2 }, fn: trimFunction(true, true) }],
  ['ltrim', { arity: { min: 1, max: 2 }, fn: trimFunction(true, false) }],
  ['rtrim', { arity: { min: 1, max: 2 }, fn: trimFunction(false, true) }],
  ['substr', { arity: { min: 2, max: 3 }, fn: substr }],
  [
    'contains',
    {
      arity: { min: 2, max: 2 },
      fn: (args) => {
        const p = propagate(args);
        if (p !== undefined) return p;
        const [s, t] = args;
        return typeof s === 'string' && typeof t === 'string' ? s.includes(t) : null;
      },
    },
  ],
  [
    'regexp_like',
    {
      arity: { min: 2, max: 2 },
      fn: (args) => {
        const p = propagate(args);
        if (p !== undefined) return p;
        const [s, pattern] = args;
        if (typeof pattern !== 'string') return null;
        const re = compileRegex(pattern);
        if (typeof s !== 'string' || s.length > MAX_REGEX_INPUT) return null;
        return re.test(s);
      },
    },
  ],
  ['abs', { arity: { min: 1, max: 1 }, fn: strict1(isNumber, (x) => Math.abs(x)) }],
  ['ceil', { arity: { min: 1, max: 1 }, fn: strict1(isNumber, (x) => Math.ceil(x)) }],
  ['floor', { arity: { min: 1, max: 1 }, fn: strict1(isNumber, (x) => Math.floor(x)) }],
  ['round', { arity: { min: 1, max: 2 }, fn: round }],
  ['clock', { arity: { min: 0, max: 0 }, fn: (_args, ctx) => formatDate(ctx.now()) }],
  ['date_add', { arity: { min: 3, max: 3 }, fn: dateAdd(1) }],
  ['date_sub', { arity: { min: 3, max: 3 }, fn: dateAdd(-1) }],
  ['date_diff', { arity: { min: 3, max: 3 }, fn: dateDiff }],
  ['date_part', { arity: { min: 2, max: 2 }, fn: datePartFn }],
  ['date_trunc', { arity: { min: 2, max: 2 }, fn: dateTrunc }],
  [
    'date_to_millis',
    {
      arity: { min: 1, max: 1 },
      fn: strict1(isString, (s) => parseIsoDate(s) ?? null),
    },
  ],
  ['millis_to_date', { arity: { min: 1, max: 1 }, fn: strict1(isNumber, (t) => formatDate(t)) }],
]);

/** Arities of the aggregate functions (COUNT also takes `*`). */
export const AGGREGATE_ARITY: Readonly<Record<string, Arity>> = {
  count: { min: 1, max: 1 },
  sum: { min: 1, max: 1 },
  avg: { min: 1, max: 1 },
  min: { min: 1, max: 1 },
  max: { min: 1, max: 1 },
};
