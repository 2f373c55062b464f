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
 */
import { AGGREGATES } from './ast.js';
import type { Expr } from './ast.js';
import { dqlError } from './errors.js';
import { FUNCTIONS } from './functions.js';
import type { FunctionContext } from './functions.js';
import { compareForOperator, getElement, getField, MISSING, valuesEqual } from './values.js';
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

/** Compiles an expression with bound parameters. */
export function compileExpr(expr: Expr, options: EvalOptions = {}): Compiled {
  const ctx: FunctionContext = { now: options.now ?? Date.now };
  const scope: string[] = [];
  const aggs = options.aggregates ?? [];
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
        const name = e.name;
        return (r) => getField(r.doc, name);
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
          return (r) => {
            let v = r.doc;
            for (let i = 0; i < names.length && v !== MISSING; i++)
              v = getField(v, names[i] as string);
            return v;
          };
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
            return (r) => {
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
            };
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
            const k = e.right.kind === 'literal' ? e.right.value : undefined;
            if (typeof k === 'number' || typeof k === 'string') {
              // Fast path: a field compared with a number or string constant.
              const kt = typeof k;
              return (r) => {
                const v = l(r);
                if (typeof v !== kt) return v === null ? null : MISSING;
                const x = v as number | string;
                switch (op) {
                  case '=':
                    return x === k;
                  case '!=':
                    return x !== k;
                  case '<':
                    return x < k;
                  case '<=':
                    return x <= k;
                  case '>':
                    return x > k;
                  default:
                    return x >= k;
                }
              };
            }
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

/** Compiles a predicate: true only when the expression is TRUE (not FALSE, NULL or MISSING). */
export function compilePredicate(
  expr: Expr | undefined,
  options: EvalOptions = {},
): (doc: Document) => boolean {
  if (expr === undefined) return () => true;
  const f = compileExpr(expr, options);
  // One row object reused per call: predicates run over many documents.
  const row: { doc: Value; vars: Value[] } = { doc: {}, vars: [] };
  return (doc) => {
    row.doc = doc;
    return f(row) === true;
  };
}
