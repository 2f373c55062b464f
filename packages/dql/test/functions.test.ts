import { describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import { evaluate, FUNCTIONS, likeMatch, MISSING, parseExpression } from '@lattice/dql';
import type { Value } from '@lattice/dql';

const now = () => Date.UTC(2026, 10, 20, 10, 0, 0, 0);
const ev = (s: string, doc = {}): Value => evaluate(parseExpression(s), doc, { now });

// [expression, expected]; each function with a normal case and MISSING/NULL arguments.
const cases: [string, Value][] = [
  ['coalesce(MISSING, NULL, 2, 3)', 2],
  ['coalesce(MISSING, NULL)', null],
  ['ifmissing(MISSING, NULL, 1)', null],
  ['ifmissing(MISSING)', MISSING],
  ['ifnull(NULL, MISSING, 1)', MISSING],
  ['ifnull(NULL)', null],
  ['nvl(MISSING, 1)', 1],
  ['nvl(NULL, 1)', 1],
  ['nvl(0, 1)', 0],
  ['type(1)', 'number'],
  ['type(MISSING)', 'missing'],
  ['type(NULL)', 'null'],
  ["type({'a': 1})", 'object'],
  ["length('héllo')", 5],
  ['length(MISSING)', MISSING],
  ['length(NULL)', null],
  ['length(1)', null],
  ['array_length([1, 2])', 2],
  ['array_length(MISSING)', MISSING],
  ['array_length(NULL)', null],
  ["array_length('x')", null],
  ["array_contains([1, {'a': 2}], {'a': 2})", true],
  ['array_contains([1], 2)', false],
  ['array_contains(MISSING, 1)', MISSING],
  ['array_contains(NULL, 1)', null],
  ["object_keys({'b': 1, 'a': 2})", ['a', 'b']],
  ['object_keys(MISSING)', MISSING],
  ['object_keys(NULL)', null],
  ["object_values({'b': 1, 'a': 2})", [2, 1]],
  ['object_values(NULL)', null],
  ["object_length({'b': 1, 'a': 2})", 2],
  ['object_length(MISSING)', MISSING],
  ["lower('AbC')", 'abc'],
  ['lower(NULL)', null],
  ["upper('AbC')", 'ABC'],
  ['upper(MISSING)', MISSING],
  ["trim('  a ')", 'a'],
  ["trim('xxaxx', 'x')", 'a'],
  ['trim(NULL)', null],
  ["substr('hello', 1, 3)", 'ell'],
  ["substr('hello', -2)", 'lo'],
  ['substr(MISSING, 1)', MISSING],
  ["substr('x', NULL)", null],
  ["regexp_like('abc123', '^[a-z]+[0-9]+$')", true],
  ["regexp_like('abc', '^[0-9]+$')", false],
  ["regexp_like(MISSING, 'a')", MISSING],
  ["regexp_like(NULL, 'a')", null],
  ['clock()', '2026-11-20T10:00:00.000Z'],
  ["date_add('2026-01-31T00:00:00Z', 1, 'month')", '2026-02-28T00:00:00.000Z'],
  ["date_add('2026-01-01', 2, 'day')", '2026-01-03T00:00:00.000Z'],
  ["date_sub('2026-01-01T00:00:00+01:00', 1, 'hour')", '2025-12-31T22:00:00.000Z'],
  ["date_diff('2026-03-01', '2026-01-15', 'day')", 45],
  ["date_diff('2026-03-01', '2025-01-15', 'month')", 14],
  ["date_part('2026-11-20T10:30:00Z', 'minute')", 30],
  ["date_part('2026-11-20', 'year')", 2026],
  ["date_trunc('2026-11-20T10:30:00Z', 'month')", '2026-11-01T00:00:00.000Z'],
  ["date_trunc('2026-11-20T10:30:45.5Z', 'hour')", '2026-11-20T10:00:00.000Z'],
  ["date_part('not a date', 'day')", null],
  ["date_add(MISSING, 1, 'day')", MISSING],
  ["date_diff(NULL, '2026-01-01', 'day')", null],
  ["date_to_millis('1970-01-01T00:00:01Z')", 1000],
  ['millis_to_date(0)', '1970-01-01T00:00:00.000Z'],
  ['abs(-2)', 2],
  ['round(2.345, 2)', 2.35],
  ['floor(NULL)', null],
  ["contains('abc', 'b')", true],
  ['ifmissingornull(MISSING, NULL, 0)', 0],
  ['ifmissingornull(MISSING, NULL)', null],
  ["ltrim('  a ')", 'a '],
  ["ltrim('xxa', 'x')", 'a'],
  ["rtrim('  a ')", '  a'],
  ["rtrim('axx', 'x')", 'a'],
  ['ceil(1.2)', 2],
  ['ceil(-1.2)', -1],
  // array_contains looks for a NULL element rather than propagating NULL (stated in the README).
  ['array_contains([1, NULL], NULL)', true],
  ['array_contains([1], NULL)', false],
];

// One valid call per function with arguments; each argument in turn replaced by MISSING must
// give MISSING and by NULL must give NULL (the rule of the README), except where listed.
const D = "'2026-01-01T00:00:00Z'";
const calls: Record<string, string[]> = {
  length: ["'abc'"],
  array_length: ['[1]'],
  array_contains: ['[1]', '1'],
  object_keys: ["{'a': 1}"],
  object_values: ["{'a': 1}"],
  object_length: ["{'a': 1}"],
  lower: ["'A'"],
  upper: ["'a'"],
  trim: ["' a '", "' '"],
  ltrim: ["' a'", "' '"],
  rtrim: ["'a '", "' '"],
  substr: ["'abc'", '1', '1'],
  contains: ["'abc'", "'b'"],
  regexp_like: ["'abc'", "'b'"],
  abs: ['-1'],
  ceil: ['1.5'],
  floor: ['1.5'],
  round: ['1.25', '1'],
  date_add: [D, '1', "'day'"],
  date_sub: [D, '1', "'day'"],
  date_diff: ["'2026-01-02T00:00:00Z'", D, "'day'"],
  date_part: [D, "'year'"],
  date_trunc: [D, "'month'"],
  date_to_millis: [D],
  millis_to_date: ['0'],
};
/** `function/argument index` whose NULL result is not NULL, with the result. */
const nullExceptions: Record<string, Value> = { 'array_contains/1': false };

describe('MISSING and NULL arguments, every function', () => {
  it('covers every function of the registry', () => {
    const own = ['coalesce', 'ifmissing', 'ifnull', 'ifmissingornull', 'nvl', 'type', 'clock'];
    expect([...FUNCTIONS.keys()].sort()).toEqual([...own, ...Object.keys(calls)].sort());
  });
  const rows = Object.entries(calls).flatMap(([f, args]) =>
    args.map((_, i) => [f, i, args] as const),
  );
  it.each(rows)('%s argument %i', (f, i, args) => {
    const call = (x: string): string => `${f}(${args.map((a, j) => (j === i ? x : a)).join(', ')})`;
    expect(ev(call(args[i] as string))).not.toBe(null);
    expect(ev(call('MISSING'))).toBe(MISSING);
    const key = `${f}/${i}`;
    expect(ev(call('NULL'))).toBe(key in nullExceptions ? nullExceptions[key] : null);
  });
});

describe('functions', () => {
  it.each(cases)('%s', (text, want) => {
    expect(ev(text)).toEqual(want);
  });
  it('refuses catastrophic and invalid regular expressions with a typed error', () => {
    for (const p of ['(a+)+$', '(a|aa)*b', '(.*)*x', '(a)\\1', '(?=a)', '[', 'a'.repeat(300)]) {
      let err: unknown;
      try {
        ev(`regexp_like('aaaa', '${p.replaceAll('\\', '\\\\')}')`);
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'DQL_INVALID_REGEX'), p).toBe(true);
    }
  });
  it('LIKE is linear-ish on adversarial patterns', () => {
    const t0 = performance.now();
    expect(likeMatch('a'.repeat(5000), '%a%a%a%a%a%b', false)).toBe(false);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(likeMatch('50%', '50\\%', false)).toBe(true);
    expect(likeMatch('ab', 'a_', false)).toBe(true);
  });
});
