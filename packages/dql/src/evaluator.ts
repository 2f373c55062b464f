/**
 * The DQL evaluator: compiles expressions to closures over a row.
 *
 * @remarks
 * Parameters are bound at compile time (an unknown one is `DQL_UNKNOWN_PARAMETER`), so one
 * compiled predicate runs over many documents without re-walking the tree. Logic is three-valued
 * with MISSING: AND is FALSE if any side is FALSE, else MISSING if any is MISSING, else NULL if
 * any is NULL; OR is TRUE if any is TRUE, else NULL, else MISSING; a non-boolean in a logical
 * position counts as NULL. Arithmetic on MISSING gives MISSING, on NULL or non-numbers NULL, and
 * a non-finite result (division by zero) NULL. Comparisons across types give MISSING.
 *
 * Speed: document paths, comparisons with constants and ranges on one path are specialised
 * closures; predicates additionally use generated code (see `codegen.ts`): a one-path leaf at
 * once, anything else after {@link PREDICATE_TIER_UP} documents. Every mode gives the same
 * results; the evaluator property tests compare them with the general rules.
 */
import { AGGREGATES } from './ast.js';
import type { Expr } from './ast.js';
import { dqlError } from './errors.js';
import {
  CODEGEN_AVAILABLE,
  generateDocPredicate,
  generatePathReader,
  generatePathTest,
  generatePredicate,
} from './codegen.js';
import type { ConstantTest } from './codegen.js';
import { FUNCTIONS } from './functions.js';
import type { FunctionContext } from './functions.js';
import {
  compareForOperator,
  compareStrings,
  getElement,
  getField,
  hasHighUnits,
  MISSING,
  docPathReader,
  valuesEqual,
} from './values.js';
import type { Document, JsonValue, Value } from './values.js';

/** What an expression reads: the document, bound variables, and aggregate results. */
export interface Row {
  readonly doc: Value;
  readonly vars: Value[];
  readonly aggs?: readonly Value[];
}

/** A compiled expression. */
export type Compiled = (row: Row) => Value;

/** Arguments and environment of an evaluation. */
export interface EvalOptions {
  /** Values of `:name` parameters. */
  readonly args?: Readonly<Record<string, JsonValue>>;
  /** The clock `clock()` reads (default `Date.now`). */
  readonly now?: () => number;
  /** The collection alias, which names the whole document. */
  readonly alias?: string;
  /** Aggregate calls, in order, whose values a grouped row carries in `aggs`. */
  readonly aggregates?: readonly Expr[];
  /**
   * Whether hot shapes (path reads, comparisons of a path with constants) are compiled to
   * generated functions (`new Function`, where the runtime allows it) instead of closures.
   * {@link compileExpr}: default `false`. {@link compilePredicate}: default tiered — closures
   * first, generated code after {@link PREDICATE_TIER_UP} documents. Results are the same in
   * every mode; generated code is faster per row and costlier to build.
   */
  readonly codegen?: boolean;
}

function truth(v: Value): boolean | null | typeof MISSING {
  if (v === true || v === false) return v;
  if (v === MISSING) return MISSING;
  return null;
}

function num(v: Value): number | null | typeof MISSING {
  if (v === MISSING) return MISSING;
  if (typeof v === 'number') return v;
  return null;
}

function finite(n: number): Value {
  return Number.isFinite(n) ? n : null;
}

/** Whether `text` matches a LIKE `pattern` (`%` any run, `_` one character, `\` escapes). */
export function likeMatch(text: string, pattern: string, caseInsensitive: boolean): boolean {
  const t = Array.from(caseInsensitive ? text.toLowerCase() : text);
  const raw = Array.from(caseInsensitive ? pattern.toLowerCase() : pattern);
  const p: { ch: string; kind: 'lit' | 'any' | 'one' }[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c === '\\' && i + 1 < raw.length) p.push({ ch: raw[++i] as string, kind: 'lit' });
    else if (c === '%') p.push({ ch: c, kind: 'any' });
    else if (c === '_') p.push({ ch: c, kind: 'one' });
    else p.push({ ch: c, kind: 'lit' });
  }
  // Greedy matching with one backtrack point: O(len(text) * len(pattern)) worst case.
  let ti = 0;
  let pi = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    const q = p[pi];
    if (q !== undefined && (q.kind === 'one' || (q.kind === 'lit' && q.ch === t[ti]))) {
      ti++;
      pi++;
    } else if (q !== undefined && q.kind === 'any') {
      star = pi++;
      mark = ti;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi]?.kind === 'any') pi++;
  return pi === p.length;
}

/** A matcher for a constant LIKE pattern, with fast paths for exact and prefix patterns. */
function likeMatcher(pattern: string, caseInsensitive: boolean): (text: string) => boolean {
  if (!caseInsensitive && !/[_\\]/.test(pattern)) {
    const first = pattern.indexOf('%');
    if (first < 0) return (t) => t === pattern;
    if (first === pattern.length - 1) {
      const prefix = pattern.slice(0, -1);
      return (t) => t.startsWith(prefix);
    }
  }
  return (t) => likeMatch(t, pattern, caseInsensitive);
}

function inList(x: Value, items: readonly Value[]): Value {
  if (x === MISSING) return MISSING;
  if (x === null) return null;
  for (const it of items) if (it !== MISSING && valuesEqual(x, it)) return true;
  return false;
}

const FLIP = { '=': '=', '!=': '!=', '<': '>', '<=': '>=', '>': '<', '>=': '<=' } as const;

type CompareOp = keyof typeof FLIP;

/**
 * `x op k` for a number or string constant `k`, as one closure per operator and type.
 * @remarks The filter hot path: the type test is a `typeof` against a literal and the operator
 * is fixed, so no dispatch happens per row. Same result as the general comparison: a value of
 * another type gives MISSING, NULL gives NULL, MISSING gives MISSING.
 */
function compareWithConstant(
  op: CompareOp,
  x: Expr,
  k: Expr,
  read: Compiled,
  path: readonly string[] | undefined,
  codegen: boolean,
): Compiled | undefined {
  if (k.kind !== 'literal' || x.kind === 'literal') return undefined;
  const c = k.value;
  if (path && codegen && (typeof c === 'number' || (typeof c === 'string' && !hasHighUnits(c)))) {
    const generated = generatePathTest(path, [{ op, value: c }]);
    if (generated) return generated;
  }
  if (typeof c === 'number') {
    switch (op) {
      case '=':
        return (r) => {
          const v = read(r);
          return typeof v === 'number' ? v === c : v === null ? null : MISSING;
        };
      case '!=':
        return (r) => {
          const v = read(r);
          return typeof v === 'number' ? v !== c : v === null ? null : MISSING;
        };
      case '<':
        return (r) => {
          const v = read(r);
          return typeof v === 'number' ? v < c : v === null ? null : MISSING;
        };
      case '<=':
        return (r) => {
          const v = read(r);
          return typeof v === 'number' ? v <= c : v === null ? null : MISSING;
        };
      case '>':
        return (r) => {
          const v = read(r);
          return typeof v === 'number' ? v > c : v === null ? null : MISSING;
        };
      case '>=':
        return (r) => {
          const v = read(r);
          return typeof v === 'number' ? v >= c : v === null ? null : MISSING;
        };
    }
  }
  if (typeof c === 'string' && hasHighUnits(c) && op !== '=' && op !== '!=') {
    // JavaScript's `<` is not code-point order for such a constant: compare exactly.
    const holds = ORDER_TEST[op];
    return (r) => {
      const v = read(r);
      return typeof v === 'string' ? holds(compareStrings(v, c)) : v === null ? null : MISSING;
    };
  }
  if (typeof c === 'string') {
    switch (op) {
      case '=':
        return (r) => {
          const v = read(r);
          return typeof v === 'string' ? v === c : v === null ? null : MISSING;
        };
      case '!=':
        return (r) => {
          const v = read(r);
          return typeof v === 'string' ? v !== c : v === null ? null : MISSING;
        };
      case '<':
        return (r) => {
          const v = read(r);
          return typeof v === 'string' ? v < c : v === null ? null : MISSING;
        };
      case '<=':
        return (r) => {
          const v = read(r);
          return typeof v === 'string' ? v <= c : v === null ? null : MISSING;
        };
      case '>':
        return (r) => {
          const v = read(r);
          return typeof v === 'string' ? v > c : v === null ? null : MISSING;
        };
      case '>=':
        return (r) => {
          const v = read(r);
          return typeof v === 'string' ? v >= c : v === null ? null : MISSING;
        };
    }
  }
  return undefined;
}

/**
 * `lo <(=) x <(=) hi` for number or string constants of one type, as one closure.
 * @remarks A range over one value (`x >= lo AND x < hi`, `x BETWEEN lo AND hi`) reads the value
 * once. Same result as the AND of the two comparisons: both are booleans when `x` has the type
 * of the bounds, both NULL when it is NULL, both MISSING otherwise.
 */
function rangeWithConstants(
  read: Compiled,
  lo: number | string,
  loInclusive: boolean,
  hi: number | string,
  hiInclusive: boolean,
): Compiled {
  if (typeof lo === 'number' && typeof hi === 'number') {
    if (loInclusive && hiInclusive)
      return (r) => {
        const v = read(r);
        return typeof v === 'number' ? v >= lo && v <= hi : v === null ? null : MISSING;
      };
    if (loInclusive)
      return (r) => {
        const v = read(r);
        return typeof v === 'number' ? v >= lo && v < hi : v === null ? null : MISSING;
      };
    if (hiInclusive)
      return (r) => {
        const v = read(r);
        return typeof v === 'number' ? v > lo && v <= hi : v === null ? null : MISSING;
      };
    return (r) => {
      const v = read(r);
      return typeof v === 'number' ? v > lo && v < hi : v === null ? null : MISSING;
    };
  }
  if (hasHighUnits(String(lo)) || hasHighUnits(String(hi))) {
    // JavaScript's `<` is not code-point order for such bounds: compare exactly.
    return (r) => {
      const v = read(r);
      if (typeof v !== 'string') return v === null ? null : MISSING;
      const a = compareStrings(v, lo as string);
      const b = compareStrings(v, hi as string);
      return (loInclusive ? a >= 0 : a > 0) && (hiInclusive ? b <= 0 : b < 0);
    };
  }
  return (r) => {
    const v = read(r);
    if (typeof v !== 'string') return v === null ? null : MISSING;
    return (loInclusive ? v >= lo : v > lo) && (hiInclusive ? v <= hi : v < hi);
  };
}

const ORDER_TEST: Readonly<Record<'<' | '<=' | '>' | '>=', (c: number) => boolean>> = {
  '<': (c) => c < 0,
  '<=': (c) => c <= 0,
  '>': (c) => c > 0,
  '>=': (c) => c >= 0,
};

/** Compiles an expression with bound parameters. */
export function compileExpr(expr: Expr, options: EvalOptions = {}): Compiled {
  const ctx: FunctionContext = { now: options.now ?? Date.now };
  const codegen = options.codegen === true && CODEGEN_AVAILABLE;
  /** A reader of a document path: generated when allowed, else a specialised closure. */
  const readPath = (path: readonly string[]): Compiled =>
    (codegen ? generatePathReader(path) : undefined) ?? docPathReader(path);
  const scope: string[] = [];
  const aggs = options.aggregates ?? [];
  /** The field path of a document (`a.b.c`, not a bound variable or the alias), or undefined. */
  const docPath = (e: Expr): string[] | undefined => {
    if (e.kind === 'ident')
      return scope.includes(e.name) || e.name === options.alias ? undefined : [e.name];
    if (e.kind !== 'field') return undefined;
    const p = docPath(e.object);
    return p && [...p, e.name];
  };
  /** `x >= lo AND x < hi` on one document path with constants of one type, fused. */
  const fusedRange = (e: Expr): Compiled | undefined => {
    if (e.kind !== 'binary' || e.op !== 'AND') return undefined;
    const bounds: { path: string; value: number | string; lower: boolean; inclusive: boolean }[] =
      [];
    let path: string[] | undefined;
    for (const x of [e.left, e.right]) {
      if (x.kind !== 'binary' || !(x.op === '<' || x.op === '<=' || x.op === '>' || x.op === '>='))
        return undefined;
      const flip = x.left.kind === 'literal';
      const k = flip ? x.left : x.right;
      const p = docPath(flip ? x.right : x.left);
      if (
        k.kind !== 'literal' ||
        (typeof k.value !== 'number' && typeof k.value !== 'string') ||
        !p
      )
        return undefined;
      const op = flip ? FLIP[x.op] : x.op;
      path = p;
      bounds.push({
        path: JSON.stringify(p),
        value: k.value,
        lower: op[0] === '>',
        inclusive: op.length === 2,
      });
    }
    const [a, b] = bounds;
    if (
      !a ||
      !b ||
      !path ||
      a.path !== b.path ||
      typeof a.value !== typeof b.value ||
      a.lower === b.lower
    )
      return undefined;
    const [lo, hi] = a.lower ? [a, b] : [b, a];
    const generated =
      codegen &&
      generatePathTest(path, [
        { op: lo.inclusive ? '>=' : '>', value: lo.value },
        { op: hi.inclusive ? '<=' : '<', value: hi.value },
      ]);
    return (
      generated ||
      rangeWithConstants(readPath(path), lo.value, lo.inclusive, hi.value, hi.inclusive)
    );
  };
  const c = (e: Expr): Compiled => {
    switch (e.kind) {
      case 'literal': {
        const v = e.value;
        return () => v;
      }
      case 'missing':
        return () => MISSING;
      case 'param': {
        const args = options.args ?? {};
        if (!Object.hasOwn(args, e.name)) {
          throw dqlError('DQL_UNKNOWN_PARAMETER', `no argument for parameter :${e.name}`, {
            name: e.name,
          });
        }
        const v = args[e.name] as JsonValue;
        const value: Value = v === undefined ? MISSING : v;
        return () => value;
      }
      case 'ident': {
        const slot = scope.lastIndexOf(e.name);
        if (slot >= 0) return (r) => r.vars[slot] ?? MISSING;
        if (options.alias !== undefined && e.name === options.alias) return (r) => r.doc;
        return readPath([e.name]);
      }
      case 'field': {
        // A chain of fields from a document field (`a.b.c`) reads in one loop.
        const names: string[] = [e.name];
        let base: Expr = e.object;
        while (base.kind === 'field') {
          names.unshift(base.name);
          base = base.object;
        }
        if (
          base.kind === 'ident' &&
          scope.lastIndexOf(base.name) < 0 &&
          base.name !== options.alias
        ) {
          names.unshift(base.name);
          return readPath(names);
        }
        const o = c(e.object);
        const name = e.name;
        return (r) => getField(o(r), name);
      }
      case 'index': {
        const o = c(e.object);
        const ix = c(e.index);
        return (r) => {
          const base = o(r);
          const k = ix(r);
          if (typeof k === 'number') return getElement(base, k);
          if (typeof k === 'string') return getField(base, k);
          return MISSING;
        };
      }
      case 'array': {
        const items = e.items.map(c);
        return (r) => items.map((f) => f(r)).filter((v): v is JsonValue => v !== MISSING);
      }
      case 'object': {
        const entries = e.entries.map((x) => [x.key, c(x.value)] as const);
        return (r) => {
          const out: Record<string, JsonValue> = {};
          for (const [k, f] of entries) {
            const v = f(r);
            if (v !== MISSING)
              Object.defineProperty(out, k, {
                value: v,
                enumerable: true,
                writable: true,
                configurable: true,
              });
          }
          return out;
        };
      }
      case 'unary': {
        const o = c(e.operand);
        if (e.op === 'NOT') {
          return (r) => {
            const v = truth(o(r));
            return typeof v === 'boolean' ? !v : v;
          };
        }
        return (r) => {
          const v = num(o(r));
          return typeof v === 'number' ? (v === 0 ? 0 : -v) : v;
        };
      }
      case 'binary': {
        const l = c(e.left);
        const rt = c(e.right);
        switch (e.op) {
          case 'AND':
            return (
              fusedRange(e) ??
              ((r) => {
                const x = l(r);
                if (x === false) return false;
                const y = rt(r);
                if (x === true && y === true) return true;
                const a = truth(x);
                const b = truth(y);
                if (b === false) return false;
                if (a === MISSING || b === MISSING) return MISSING;
                if (a === null || b === null) return null;
                return true;
              })
            );
          case 'OR':
            return (r) => {
              const a = truth(l(r));
              if (a === true) return true;
              const b = truth(rt(r));
              if (b === true) return true;
              if (a === null || b === null) return null;
              if (a === MISSING || b === MISSING) return MISSING;
              return false;
            };
          case '=':
          case '!=':
          case '<':
          case '<=':
          case '>':
          case '>=': {
            const op = e.op;
            const fast =
              compareWithConstant(e.op, e.left, e.right, l, docPath(e.left), codegen) ??
              compareWithConstant(FLIP[e.op], e.right, e.left, rt, docPath(e.right), codegen);
            if (fast) return fast;
            return (r) => {
              const cmp = compareForOperator(l(r), rt(r));
              if (typeof cmp !== 'number') return cmp;
              switch (op) {
                case '=':
                  return cmp === 0;
                case '!=':
                  return cmp !== 0;
                case '<':
                  return cmp < 0;
                case '<=':
                  return cmp <= 0;
                case '>':
                  return cmp > 0;
                default:
                  return cmp >= 0;
              }
            };
          }
          case '||':
            return (r) => {
              const a = l(r);
              const b = rt(r);
              if (a === MISSING || b === MISSING) return MISSING;
              return typeof a === 'string' && typeof b === 'string' ? a + b : null;
            };
          default: {
            const op = e.op;
            return (r) => {
              const a = num(l(r));
              const b = num(rt(r));
              if (a === MISSING || b === MISSING) return MISSING;
              if (a === null || b === null) return null;
              switch (op) {
                case '+':
                  return finite(a + b);
                case '-':
                  return finite(a - b);
                case '*':
                  return finite(a * b);
                case '/':
                  return finite(a / b);
                default:
                  return finite(a % b);
              }
            };
          }
        }
      }
      case 'in': {
        const x = c(e.operand);
        const not = e.not;
        const apply = (v: Value): Value => (not && typeof v === 'boolean' ? !v : v);
        if (e.target.kind === 'list') {
          const items = e.target.items.map(c);
          return (r) =>
            apply(
              inList(
                x(r),
                items.map((f) => f(r)),
              ),
            );
        }
        const t = c(e.target.expr);
        return (r) => {
          const xv = x(r);
          const arr = t(r);
          if (arr === MISSING) return MISSING;
          if (!Array.isArray(arr)) return xv === MISSING ? MISSING : null;
          return apply(inList(xv, arr as readonly JsonValue[]));
        };
      }
      case 'between': {
        const x = c(e.operand);
        const lo = c(e.low);
        const hi = c(e.high);
        const not = e.not;
        const kl = e.low.kind === 'literal' ? e.low.value : undefined;
        const kh = e.high.kind === 'literal' ? e.high.value : undefined;
        if ((typeof kl === 'number' || typeof kl === 'string') && typeof kl === typeof kh) {
          const path = docPath(e.operand);
          const generated =
            path &&
            codegen &&
            generatePathTest(path, [
              { op: '>=', value: kl },
              { op: '<=', value: kh as number | string },
            ]);
          const range = generated || rangeWithConstants(x, kl, true, kh as number | string, true);
          if (!not) return range;
          return (r) => {
            const v = range(r);
            return typeof v === 'boolean' ? !v : v;
          };
        }
        return (r) => {
          const v = x(r);
          const a = compareForOperator(v, lo(r));
          const b = compareForOperator(v, hi(r));
          const p = typeof a === 'number' ? a >= 0 : a;
          const q = typeof b === 'number' ? b <= 0 : b;
          let res: Value;
          if (p === false || q === false) res = false;
          else if (p === MISSING || q === MISSING) res = MISSING;
          else if (p === null || q === null) res = null;
          else res = true;
          return not && typeof res === 'boolean' ? !res : res;
        };
      }
      case 'like': {
        const x = c(e.operand);
        const p = c(e.pattern);
        const { not, caseInsensitive } = e;
        if (e.pattern.kind === 'literal' && typeof e.pattern.value === 'string') {
          const match = likeMatcher(e.pattern.value, caseInsensitive);
          return (r) => {
            const v = x(r);
            if (v === MISSING) return MISSING;
            return typeof v === 'string' ? match(v) !== not : null;
          };
        }
        return (r) => {
          const v = x(r);
          const pat = p(r);
          if (v === MISSING || pat === MISSING) return MISSING;
          if (typeof v !== 'string' || typeof pat !== 'string') return null;
          return likeMatch(v, pat, caseInsensitive) !== not;
        };
      }
      case 'is': {
        const x = c(e.operand);
        const { not, test } = e;
        if (test === 'MISSING') return (r) => (x(r) === MISSING) !== not;
        return (r) => {
          const v = x(r);
          if (v === MISSING) return MISSING;
          return (v === null) !== not;
        };
      }
      case 'case': {
        const subject = e.subject ? c(e.subject) : undefined;
        const whens = e.whens.map((w) => [c(w.when), c(w.then)] as const);
        const otherwise = e.else ? c(e.else) : () => null;
        return (r) => {
          const s = subject?.(r);
          for (const [w, t] of whens) {
            const v = w(r);
            if (subject ? compareForOperator(s as Value, v) === 0 : v === true) return t(r);
          }
          return otherwise(r);
        };
      }
      case 'quantified': {
        const source = c(e.source);
        scope.push(e.variable);
        const slot = scope.length - 1;
        const cond = c(e.satisfies);
        scope.pop();
        const every = e.quantifier === 'EVERY';
        return (r) => {
          const arr = source(r);
          if (arr === MISSING) return MISSING;
          if (!Array.isArray(arr)) return null;
          const saved = r.vars[slot];
          try {
            for (const item of arr as readonly JsonValue[]) {
              r.vars[slot] = item;
              const ok = cond(r) === true;
              if (every && !ok) return false;
              if (!every && ok) return true;
            }
          } finally {
            r.vars[slot] = saved ?? MISSING;
          }
          return every;
        };
      }
      case 'call': {
        if (AGGREGATES.has(e.name)) {
          const i = aggs.indexOf(e);
          if (i < 0) {
            throw dqlError('DQL_INVALID_QUERY', `aggregate ${e.name}() is not allowed here`, {
              name: e.name,
            });
          }
          return (r) => r.aggs?.[i] ?? MISSING;
        }
        const f = FUNCTIONS.get(e.name);
        if (!f)
          throw dqlError('DQL_UNKNOWN_FUNCTION', `unknown function ${e.name}()`, { name: e.name });
        const args = e.args.map(c);
        const fn = f.fn;
        return (r) =>
          fn(
            args.map((a) => a(r)),
            ctx,
          );
      }
    }
  };
  return c(expr);
}

/** Evaluates an expression against one document (or any value bound as the document). */
export function evaluate(expr: Expr, doc: Value = {}, options: EvalOptions = {}): Value {
  return compileExpr(expr, options)({ doc, vars: [] });
}

/**
 * A WHERE clause that is only tests of the value at one document path against constants of one
 * type: `a = 1`, `1 < a.b`, `a >= 1 AND a < 5`, `a BETWEEN 'x' AND 'y'`, `a LIKE 'x%'`.
 * @remarks For predicates only: each test is TRUE exactly when the value has the constants'
 * type and the JavaScript comparison holds (LIKE without wildcards but a final `%` is
 * `startsWith`), so the clause is TRUE exactly when all are. (Their NULL/MISSING results differ —
 * LIKE on a number is NULL, `<` MISSING — but a predicate only asks for TRUE.)
 */
function predicateLeaf(
  e: Expr,
  alias: string | undefined,
): { path: string[]; tests: ConstantTest[] } | undefined {
  const pathOf = (x: Expr): string[] | undefined => {
    if (x.kind === 'ident') return x.name === alias ? undefined : [x.name];
    if (x.kind !== 'field') return undefined;
    if (x.object.kind === 'ident' && x.object.name === alias) return [x.name];
    const p = pathOf(x.object);
    return p && [...p, x.name];
  };
  const constant = (x: Expr): number | string | undefined =>
    x.kind === 'literal' && (typeof x.value === 'number' || typeof x.value === 'string')
      ? x.value
      : undefined;
  const leaf = (path: string[] | undefined, tests: ConstantTest[]) =>
    path && tests.every((t) => t.value !== undefined) ? { path, tests } : undefined;
  switch (e.kind) {
    case 'binary': {
      if (e.op === 'AND') {
        const a = predicateLeaf(e.left, alias);
        const b = predicateLeaf(e.right, alias);
        if (!a || !b || a.path.length !== b.path.length) return undefined;
        if (a.path.some((n, i) => n !== b.path[i])) return undefined;
        return { path: a.path, tests: [...a.tests, ...b.tests] };
      }
      if (!(e.op in FLIP)) return undefined;
      const op = e.op as CompareOp;
      const right = constant(e.right);
      if (right !== undefined) return leaf(pathOf(e.left), [{ op, value: right }]);
      const left = constant(e.left);
      if (left !== undefined) return leaf(pathOf(e.right), [{ op: FLIP[op], value: left }]);
      return undefined;
    }
    case 'between': {
      const lo = constant(e.low);
      const hi = constant(e.high);
      if (e.not || lo === undefined || hi === undefined) return undefined;
      return leaf(pathOf(e.operand), [
        { op: '>=', value: lo },
        { op: '<=', value: hi },
      ]);
    }
    case 'like': {
      const pattern = constant(e.pattern);
      if (e.not || e.caseInsensitive || typeof pattern !== 'string' || /[_\\]/.test(pattern))
        return undefined;
      const first = pattern.indexOf('%');
      if (first < 0) return leaf(pathOf(e.operand), [{ op: '=', value: pattern }]);
      if (first !== pattern.length - 1) return undefined;
      return leaf(pathOf(e.operand), [{ op: 'prefix', value: pattern.slice(0, -1) }]);
    }
    default:
      return undefined;
  }
}

/**
 * How many documents a predicate evaluates with closures before it is compiled to generated
 * code: generating costs tens of microseconds, which only pays off over thousands of rows.
 */
export const PREDICATE_TIER_UP = 1024;

/**
 * Compiles a predicate: true only when the expression is TRUE (not FALSE, NULL or MISSING).
 * @remarks With `codegen` unset the predicate starts as closures and, after
 * {@link PREDICATE_TIER_UP} calls, switches to generated code where the runtime allows it (a
 * short query never pays for code generation; a scan gets the fast version). `true` generates
 * at once, `false` never. Results are the same in every mode.
 */
export function compilePredicate(
  expr: Expr | undefined,
  options: EvalOptions = {},
): (doc: Document) => boolean {
  if (expr === undefined) return () => true;
  if (options.codegen !== false && CODEGEN_AVAILABLE) {
    // A single leaf becomes one generated function (its factory is cached per shape, so this
    // is cheap after the first query of that shape).
    const leaf = predicateLeaf(expr, options.alias);
    const generated = leaf && generateDocPredicate(leaf.path, leaf.tests);
    if (generated) return generated;
  }
  if (options.codegen === true && CODEGEN_AVAILABLE) {
    const f = compileExpr(expr, options);
    const generated = generatePredicate(f);
    if (generated) return generated;
  }
  let f = compileExpr(expr, { ...options, codegen: false });
  let calls = options.codegen === undefined && CODEGEN_AVAILABLE ? 0 : PREDICATE_TIER_UP;
  // One row object reused per call: predicates run over many documents.
  const row: { doc: Value; vars: Value[] } = { doc: {}, vars: [] };
  return (doc) => {
    if (calls < PREDICATE_TIER_UP && ++calls === PREDICATE_TIER_UP)
      f = compileExpr(expr, { ...options, codegen: true });
    row.doc = doc;
    return f(row) === true;
  };
}
