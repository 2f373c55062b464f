// The evaluator's fast paths (specialised path reads, comparisons with constants, fused ranges)
// against a reference built from the general rules: valueAtPath, compareForOperator and the
// three-valued AND.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  compareForOperator,
  compareValues,
  compileExpr,
  compilePredicate,
  likeMatch,
  MISSING,
  parseExpression,
  PREDICATE_TIER_UP,
  valueAtPath,
} from '@lattice/dql';
import type { Document, Expr, JsonValue, Value } from '@lattice/dql';

// Names that arrays, binary and Object.prototype answer to, beside ordinary ones.
const NAMES = ['a', 'b', 'length', 'toString', '__proto__', '0', 'constructor', 'buffer', '-0'];
const name = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'b') },
  { weight: 1, arbitrary: fc.constantFrom(...NAMES) },
);

/** An object with own fields, `__proto__` included, built without touching prototypes. */
function object(entries: readonly (readonly [string, JsonValue])[]): JsonValue {
  const o: Record<string, JsonValue> = {};
  for (const [k, v] of entries)
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const scalar = fc.oneof(
  fc.integer({ min: -2, max: 3 }),
  fc.constantFrom('a', 'b', '', 'ab', 'ba'),
  fc.constant(null),
  fc.boolean(),
);
const value: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('v'), { maxLength: 2 }),
    fc.constantFrom(new Uint8Array([1, 2]), new Uint8Array(0)),
    fc.array(fc.tuple(name, tie('v')), { maxLength: 3 }).map(object),
  ),
})).v;
const doc = fc
  .array(
    fc.tuple(name, fc.oneof({ weight: 3, arbitrary: scalar }, { weight: 1, arbitrary: value })),
    {
      maxLength: 4,
    },
  )
  .map(object);
const path = fc.oneof(
  { weight: 3, arbitrary: fc.array(name, { minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.array(name, { minLength: 2, maxLength: 4 }) },
);
const constant = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 2 }) },
  { weight: 1, arbitrary: fc.constantFrom('a', 'b', 'ab', 'ba') },
);
const op = fc.constantFrom('=', '!=', '<', '<=', '>', '>=' as const);
const rangeOp = fc.constantFrom('<', '<=', '>', '>=' as const);
/** A document and a path, where the path often leads to a number or a string. */
/** `d` with `v` placed at path `p` (other fields of `d` kept). */
function place(d: JsonValue, p: readonly string[], v: JsonValue): JsonValue {
  let x: JsonValue = v;
  for (const n of [...p].reverse()) x = object([[n, x]]);
  return object([...Object.entries(d as object), ...Object.entries(x as object)]);
}
/** A document and a path; the path often leads to the values of `at`. */
const docAndPathTo = (at: fc.Arbitrary<JsonValue>) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.tuple(doc, path) },
    {
      weight: 3,
      arbitrary: fc.tuple(doc, path, at).map(([d, p, v]) => [place(d, p, v), p] as const),
    },
  );
const docAndPath = docAndPathTo(
  fc.oneof({ weight: 4, arbitrary: constant }, { weight: 1, arbitrary: value }),
);
type Op = '=' | '!=' | '<' | '<=' | '>' | '>=';

function pathExpr(p: readonly string[]): Expr {
  let e: Expr = { kind: 'ident', name: p[0] as string };
  for (const n of p.slice(1)) e = { kind: 'field', object: e, name: n };
  return e;
}
const lit = (value: JsonValue): Expr => ({ kind: 'literal', value });

function cmp(op: Op, a: Value, b: Value): Value {
  const c = compareForOperator(a, b);
  if (typeof c !== 'number') return c;
  return { '=': c === 0, '!=': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[op];
}
function and(a: Value, b: Value): Value {
  if (a === false || b === false) return false;
  if (a === MISSING || b === MISSING) return MISSING;
  if (a === null || b === null) return null;
  return true;
}
/** Evaluates with generated code and with closures only; both must agree. */
const run = (e: Expr, d: JsonValue): Value => {
  const generated = compileExpr(e, { codegen: true })({ doc: d, vars: [] });
  const closures = compileExpr(e, { codegen: false })({ doc: d, vars: [] });
  expect(closures).toEqual(generated);
  for (const codegen of [true, false])
    expect(compilePredicate(e, { codegen })(d as Document)).toBe(generated === true);
  return generated;
};

describe('evaluator fast paths equal the general rules', () => {
  test.prop([doc, path])('path reads', (d, p) => {
    expect(run(pathExpr(p), d)).toEqual(valueAtPath(d, p));
  });
  test.prop([docAndPath, op, constant, fc.boolean()], { numRuns: 300 })(
    'path op constant, constant op path',
    ([d, p], o, k, flip) => {
      const v = valueAtPath(d, p);
      const e: Expr = flip
        ? { kind: 'binary', op: o, left: lit(k), right: pathExpr(p) }
        : { kind: 'binary', op: o, left: pathExpr(p), right: lit(k) };
      expect(run(e, d)).toBe(flip ? cmp(o, k, v) : cmp(o, v, k));
    },
  );
  test.prop([docAndPath, rangeOp, constant, rangeOp, constant], { numRuns: 500 })(
    'two comparisons of one path under AND (fused ranges)',
    ([d, p], o1, k1, o2, k2) => {
      const v = valueAtPath(d, p);
      const e: Expr = {
        kind: 'binary',
        op: 'AND',
        left: { kind: 'binary', op: o1, left: pathExpr(p), right: lit(k1) },
        right: { kind: 'binary', op: o2, left: lit(k2), right: pathExpr(p) },
      };
      expect(run(e, d)).toBe(and(cmp(o1, v, k1), cmp(o2, k2, v)));
    },
  );
  test.prop([docAndPath, constant, constant, fc.boolean()], { numRuns: 300 })(
    '[NOT] BETWEEN constants',
    ([d, p], lo, hi, not) => {
      const v = valueAtPath(d, p);
      const e: Expr = { kind: 'between', not, operand: pathExpr(p), low: lit(lo), high: lit(hi) };
      const want = and(cmp('>=', v, lo), cmp('<=', v, hi));
      expect(run(e, d)).toBe(not && typeof want === 'boolean' ? !want : want);
    },
  );
  test.prop(
    [fc.array(docAndPath, { minLength: 1, maxLength: 8 }), rangeOp, constant, op, constant],
    {
      numRuns: 20,
    },
  )(
    'a predicate answers the same before and after it tiers up to generated code',
    (dps, o1, k1, o2, k2) => {
      const p = dps[0]?.[1] ?? ['a'];
      const e: Expr = {
        kind: 'binary',
        op: 'OR',
        left: {
          kind: 'binary',
          op: 'AND',
          left: { kind: 'binary', op: o1, left: pathExpr(p), right: lit(k1) },
          right: { kind: 'binary', op: o2, left: pathExpr(p), right: lit(k2) },
        },
        right: { kind: 'between', not: false, operand: pathExpr(p), low: lit(k1), high: lit(k2) },
      };
      const tiered = compilePredicate(e);
      const closures = compilePredicate(e, { codegen: false });
      for (let i = 0; i < 2 * PREDICATE_TIER_UP; i++) {
        const d = (dps[i % dps.length] as readonly [JsonValue, string[]])[0] as Document;
        expect(tiered(d)).toBe(closures(d));
      }
    },
  );
  test.prop(
    [
      docAndPathTo(fc.constantFrom('a', 'ab', 'ba', 'b', '', 'a%', 1, null)),
      fc.constantFrom('a%', 'a', '', '%', 'b_', 'ab%', '%a', 'a\\%'),
      fc.boolean(),
    ],
    { numRuns: 1000 },
  )('[NOT] LIKE constant patterns', ([d, p], pattern, not) => {
    const v = valueAtPath(d, p);
    const e: Expr = {
      kind: 'like',
      not,
      caseInsensitive: false,
      operand: pathExpr(p),
      pattern: lit(pattern),
    };
    const want =
      v === MISSING ? MISSING : typeof v === 'string' ? likeMatch(v, pattern, false) !== not : null;
    expect(run(e, d)).toBe(want);
  });
  it('does not read prototype members, array or binary indexes as fields', () => {
    const d = object([
      ['a', [1, 2]],
      ['b', new Uint8Array([7])],
    ]);
    for (const p of [
      ['a', 'length'],
      ['a', '0'],
      ['b', '0'],
      ['b', 'buffer'],
      ['toString'],
      ['__proto__'],
    ])
      expect(run(pathExpr(p), d)).toBe(MISSING);
    expect(run(pathExpr(['__proto__']), object([['__proto__', 1]]))).toBe(1);
  });
});

describe('string order is by code point', () => {
  const emoji = '\u{1F600}'; // a surrogate pair in UTF-16
  const high = '\uFFFD'; // a BMP unit above the surrogates
  it('puts astral characters after every BMP character, as UTF-8 bytes do', () => {
    expect(compareValues(emoji, high)).toBe(1);
    expect(compareValues(high, emoji)).toBe(-1);
    expect(compareValues('a' + emoji, 'a' + high)).toBe(1);
    expect(compareValues('b', 'a' + emoji)).toBe(1);
    expect(compareValues(emoji, emoji)).toBe(0);
    const sorted = [emoji, high, 'z', 'a'].sort(compareValues);
    expect(sorted).toEqual(['a', 'z', high, emoji]);
    const utf8 = [emoji, high, 'z', 'a'].sort((x, y) =>
      Buffer.compare(Buffer.from(x), Buffer.from(y)),
    );
    expect(sorted).toEqual(utf8);
  });

  it('filters with that order in closures and in generated code', () => {
    const docs = [
      { _id: 1, s: emoji },
      { _id: 2, s: high },
      { _id: 3, s: 'a' },
    ];
    for (const codegen of [false, true]) {
      const lt = compilePredicate(parseExpression(`s < '${high}'`), { codegen });
      expect(docs.filter(lt).map((d) => d._id)).toEqual([3]);
      const gt = compilePredicate(parseExpression(`s > '${high}'`), { codegen });
      expect(docs.filter(gt).map((d) => d._id)).toEqual([1]);
      const between = compilePredicate(parseExpression(`s BETWEEN 'a' AND '${high}'`), { codegen });
      expect(docs.filter(between).map((d) => d._id)).toEqual([2, 3]);
    }
  });
});
