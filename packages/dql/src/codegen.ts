/**
 * Generated code for the evaluator's hottest shapes: reading a document path, and comparing the
 * value at a path with constants (`a.b = 'x'`, `year >= 2000 AND year < 2010`).
 *
 * @remarks
 * Why generate code: a closure-compiled predicate reads fields with `obj[name]` at a load site
 * that every compiled predicate shares, so once a process has compiled a few predicates over
 * different fields that site is megamorphic and each read goes through V8's stub cache. A
 * function made with `new Function` has its own inline caches and names the field as a literal
 * (`v["year"]`), so the read is as fast as in a hand-written filter.
 *
 * Safety: only field names that {@link isPlainFieldName} accepts are generated (so one property
 * load reads exactly the own field: no prototype members, array or binary indexes), and they
 * enter the source only through `JSON.stringify`, which yields a valid JavaScript string
 * literal. Constants are passed as arguments, operators come from a fixed table. Where
 * `new Function` is refused (a Content-Security-Policy without `unsafe-eval`) the evaluator
 * keeps its closures; {@link CODEGEN_AVAILABLE} says which. Results equal the closures'
 * exactly — the evaluator property tests run both.
 */
import { hasHighUnits, isPlainFieldName, MISSING } from './values.js';
import type { Value } from './values.js';

/** What a generated function reads: a row or any holder of the document. */
type Reader = (holder: { readonly doc: Value }) => Value;

/** Whether this runtime evaluates generated code. */
export const CODEGEN_AVAILABLE: boolean = (() => {
  try {
    return (new Function('return true') as () => unknown)() === true;
  } catch {
    // EvalError under a Content-Security-Policy: the evaluator uses closures instead.
    return false;
  }
})();

/** One test of a value against a constant: a comparison, or `prefix` (a string starts with). */
export interface ConstantTest {
  readonly op: '=' | '!=' | '<' | '<=' | '>' | '>=' | 'prefix';
  readonly value: number | string;
}

const JS_OP = { '=': '===', '!=': '!==', '<': '<', '<=': '<=', '>': '>', '>=': '>=' } as const;

function condition(tests: readonly ConstantTest[]): string {
  return tests
    .map((t, i) => (t.op === 'prefix' ? `v.startsWith(k${i})` : `v ${JS_OP[t.op]} k${i}`))
    .join(' && ');
}

/** Statements that leave the value at `path` below `root` in `v`, or return `early`. */
function walk(root: string, path: readonly string[], early: string): string {
  let src = `let v = ${root};\n`;
  for (const name of path)
    src += `if (typeof v !== 'object' || v === null) return ${early};\nv = v[${JSON.stringify(name)}];\n`;
  return src;
}

/**
 * Compiled factories by source text. Constants are arguments, so one factory serves every
 * predicate of the same shape (same path, operators and type): only the first one pays for
 * compiling. Functions a factory makes share their inline caches, which is what we want: they
 * read the same fields. Bounded: cleared when full.
 */
const FACTORIES = new Map<string, (...args: unknown[]) => unknown>();
const MAX_FACTORIES = 512;

function make<F>(params: readonly string[], body: string, args: readonly unknown[]): F {
  const key = `${params.join(',')}\n${body}`;
  let factory = FACTORIES.get(key);
  if (factory === undefined) {
    if (FACTORIES.size >= MAX_FACTORIES) FACTORIES.clear();
    factory = new Function('M', ...params, `'use strict';\n${body}`) as (
      ...a: unknown[]
    ) => unknown;
    FACTORIES.set(key, factory);
  }
  return factory(MISSING, ...args) as F;
}

/**
 * A generated reader of `path` below `holder.doc` (same result as `valueAtPath`), or undefined
 * when code cannot be generated for it.
 */
export function generatePathReader(path: readonly string[]): Reader | undefined {
  if (!CODEGEN_AVAILABLE || path.length === 0 || !path.every(isPlainFieldName)) return undefined;
  return make<Reader>(
    [],
    `return function (h) {\n${walk('h.doc', path, 'M')}return v === undefined || typeof v === 'function' ? M : v;\n};`,
    [],
  );
}

/** The type of the constants when code can be generated for these tests, else undefined. */
function generable(path: readonly string[], tests: readonly ConstantTest[]): string | undefined {
  const first = tests[0];
  if (!CODEGEN_AVAILABLE || first === undefined || !path.every(isPlainFieldName)) return undefined;
  const type = typeof first.value;
  if (tests.some((t) => typeof t.value !== type || (t.op === 'prefix' && type !== 'string')))
    return undefined;
  // Generated code compares strings with JavaScript's `<`, which is code-point order unless the
  // constant holds units at or above U+D800 (see compareStrings): leave those to the closures.
  const ordered = (t: ConstantTest): boolean => t.op !== '=' && t.op !== '!=' && t.op !== 'prefix';
  if (type === 'string' && tests.some((t) => ordered(t) && hasHighUnits(t.value as string)))
    return undefined;
  return type;
}

/**
 * A generated `(x op1 k1) AND (x op2 k2) …` for the value `x` at `path` and constants of one
 * type (number or string), or undefined when code cannot be generated for it.
 * @remarks Three-valued like the general comparison: when `x` has the constants' type, the AND
 * of the booleans; NULL when `x` is NULL; MISSING for MISSING or any other type (every test
 * then yields the same NULL or MISSING, and their AND is that value).
 */
export function generatePathTest(
  path: readonly string[],
  tests: readonly ConstantTest[],
): Reader | undefined {
  const type = generable(path, tests);
  if (type === undefined) return undefined;
  return make<Reader>(
    tests.map((_, i) => `k${i}`),
    `return function (h) {\n${walk('h.doc', path, 'M')}if (typeof v === '${type}') return ${condition(tests)};\nreturn v === null ? null : M;\n};`,
    tests.map((t) => t.value),
  );
}

/**
 * The predicate "every test of the value at `path` is TRUE" over a document, generated whole,
 * or undefined when code cannot be generated for it.
 * @remarks For WHERE clauses that are one such leaf (`a = 1`, `a.b >= 1 AND a.b < 5`,
 * `a LIKE 'x%'`): a filter then calls the generated function itself, with no closure layer in
 * between. TRUE only when the value has the constants' type and every test holds.
 */
export function generateDocPredicate(
  path: readonly string[],
  tests: readonly ConstantTest[],
): ((doc: Value) => boolean) | undefined {
  const type = generable(path, tests);
  if (type === undefined) return undefined;
  return make<(doc: Value) => boolean>(
    tests.map((_, i) => `k${i}`),
    `return function (doc) {\n${walk('doc', path, 'false')}return typeof v === '${type}' && ${condition(tests)};\n};`,
    tests.map((t) => t.value),
  );
}

/**
 * `(doc) => f({ doc, vars: [] }) === true` as a function of its own, or undefined when code
 * cannot be generated.
 * @remarks A shared wrapper's call `f(row)` sees every compiled predicate of the process and
 * stops being inlined; a generated wrapper calls one target only. The row object is reused per
 * call (a predicate is not re-entrant).
 */
export function generatePredicate(
  f: (row: { doc: Value; vars: Value[] }) => Value,
): ((doc: Value) => boolean) | undefined {
  if (!CODEGEN_AVAILABLE) return undefined;
  // Not through the factory cache: the point is a call site of its own.
  const factory = new Function(
    'f',
    `'use strict';\nconst row = { doc: null, vars: [] };\nreturn function (doc) {\nrow.doc = doc;\nreturn f(row) === true;\n};`,
  );
  return (factory as (g: typeof f) => (doc: Value) => boolean)(f);
}
