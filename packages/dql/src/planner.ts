/**
 * The planner, the document source interface and the reference executor.
 *
 * @remarks
 * A {@link QueryPlan} is plain data: the collection, one access path (ids, an index scan, a full
 * scan, or nothing), the residual filter (the WHERE conjuncts the access path does not already
 * guarantee), grouping, projection, ordering and offset/limit, with every parameter already
 * bound to its value. A store executes it next to the data by implementing
 * {@link DocumentSource} and calling {@link executePlan}, so the store and the tests share one
 * execution semantics.
 *
 * Result order: ORDER BY keys in collation order, ties broken by `_id` in the direction of the
 * last key (so DESC is the exact reverse of ASC); without ORDER BY, ascending `_id`.
 */
import { containsAggregate, walkExpr } from './ast.js';
import type { Expr, OrderKey, ProjectionItem, SelectStatement } from './ast.js';
import { dqlError } from './errors.js';
import { compileExpr, compilePredicate } from './evaluator.js';
import type { Compiled, Row } from './evaluator.js';
import { printExpression, printValue } from './printer.js';
import {
  compareValues,
  getField,
  isObject,
  MISSING,
  typeOf,
  valueAtPath,
  valueKey,
} from './values.js';
import type { Document, JsonValue, Value, ValueType } from './values.js';

/** An index the planner may use: `name` on `collection` over a field path. */
export interface IndexInfo {
  readonly name: string;
  readonly collection: string;
  readonly path: readonly string[];
}

/** One end of an index range. */
export interface IndexBound {
  readonly value: JsonValue;
  readonly inclusive: boolean;
}

/**
 * Which index entries a scan returns.
 * @remarks `eq`: entries whose value equals (collation) one of `values`. `range`: entries whose
 * value has type `type` and lies within the bounds. Documents where the path is MISSING are
 * not in an index.
 */
export type IndexRange =
  | { readonly kind: 'eq'; readonly values: readonly JsonValue[] }
  | {
      readonly kind: 'range';
      readonly type: ValueType;
      readonly lower?: IndexBound;
      readonly upper?: IndexBound;
    };

/** How the executor reaches candidate documents. */
export type AccessPath =
  | { readonly kind: 'fullScan' }
  | { readonly kind: 'ids'; readonly ids: readonly JsonValue[] }
  | {
      readonly kind: 'indexScan';
      readonly index: string;
      readonly path: readonly string[];
      readonly range: IndexRange;
    }
  | { readonly kind: 'empty'; readonly reason: string };

/** Grouping and aggregates of a plan. */
export interface Aggregation {
  readonly groupBy: readonly Expr[];
  /** The aggregate calls, in order; compiled expressions read them by position. */
  readonly aggregates: readonly Expr[];
  readonly having?: Expr;
}

/** An executable SELECT (also the selection of mutations). */
export interface QueryPlan {
  readonly kind: 'query';
  readonly collection: string;
  readonly alias?: string;
  readonly access: AccessPath;
  /** The WHERE conjuncts that remain after the access path. */
  readonly residual?: Expr;
  readonly aggregation?: Aggregation;
  readonly distinct: boolean;
  readonly projection: readonly ProjectionItem[];
  readonly orderBy: readonly OrderKey[];
  /** Whether an ordered source delivers the access path in result order (no sort needed). */
  readonly orderFromAccess: boolean;
  readonly offset: number;
  readonly limit?: number;
}

/** Options of {@link planQuery}. */
export interface PlanOptions {
  readonly args?: Readonly<Record<string, JsonValue>>;
  readonly indexes?: readonly IndexInfo[];
}

/** Replaces every parameter with a literal of its argument. */
export function bindParams(e: Expr, args: Readonly<Record<string, JsonValue>>): Expr {
  const b = (x: Expr): Expr => bindParams(x, args);
  switch (e.kind) {
    case 'param': {
      if (!Object.hasOwn(args, e.name)) {
        throw dqlError('DQL_UNKNOWN_PARAMETER', `no argument for parameter :${e.name}`, {
          name: e.name,
        });
      }
      const v = args[e.name];
      return v === undefined ? { kind: 'missing' } : { kind: 'literal', value: v };
    }
    case 'field':
      return { ...e, object: b(e.object) };
    case 'index':
      return { ...e, object: b(e.object), index: b(e.index) };
    case 'array':
      return { ...e, items: e.items.map(b) };
    case 'object':
      return { ...e, entries: e.entries.map((x) => ({ key: x.key, value: b(x.value) })) };
    case 'unary':
      return { ...e, operand: b(e.operand) };
    case 'binary':
      return { ...e, left: b(e.left), right: b(e.right) };
    case 'in':
      return {
        ...e,
        operand: b(e.operand),
        target:
          e.target.kind === 'list'
            ? { kind: 'list', items: e.target.items.map(b) }
            : { kind: 'expr', expr: b(e.target.expr) },
      };
    case 'between':
      return { ...e, operand: b(e.operand), low: b(e.low), high: b(e.high) };
    case 'like':
      return { ...e, operand: b(e.operand), pattern: b(e.pattern) };
    case 'is':
      return { ...e, operand: b(e.operand) };
    case 'case':
      return {
        kind: 'case',
        ...(e.subject ? { subject: b(e.subject) } : {}),
        whens: e.whens.map((w) => ({ when: b(w.when), then: b(w.then) })),
        ...(e.else ? { else: b(e.else) } : {}),
      };
    case 'quantified':
      return { ...e, source: b(e.source), satisfies: b(e.satisfies) };
    case 'call':
      return { ...e, args: e.args.map(b) };
    default:
      return e;
  }
}

function conjuncts(e: Expr | undefined): Expr[] {
  if (e === undefined) return [];
  if (e.kind === 'binary' && e.op === 'AND') return [...conjuncts(e.left), ...conjuncts(e.right)];
  return [e];
}

function andAll(es: readonly Expr[]): Expr | undefined {
  let out: Expr | undefined;
  for (const e of es)
    out = out === undefined ? e : { kind: 'binary', op: 'AND', left: out, right: e };
  return out;
}

/** The root field path of an expression (`a.b['c']`), or undefined. */
function rootPath(e: Expr, alias: string | undefined): string[] | undefined {
  if (e.kind === 'ident') return e.name === alias ? undefined : [e.name];
  if (e.kind === 'field') {
    if (e.object.kind === 'ident' && e.object.name === alias) return [e.name];
    const p = rootPath(e.object, alias);
    return p && [...p, e.name];
  }
  if (e.kind === 'index' && e.index.kind === 'literal' && typeof e.index.value === 'string') {
    if (e.object.kind === 'ident' && e.object.name === alias) return [e.index.value];
    const p = rootPath(e.object, alias);
    return p && [...p, e.index.value];
  }
  return undefined;
}

function constant(e: Expr): { value: Value } | undefined {
  if (e.kind === 'literal') return { value: e.value };
  if (e.kind === 'missing') return { value: MISSING };
  return undefined;
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

type Candidate =
  | { kind: 'eq'; path: string[]; values: Value[]; conj: Expr }
  | { kind: 'cmp'; path: string[]; op: '<' | '<=' | '>' | '>='; value: Value; conj: Expr };

const FLIP = { '<': '>', '<=': '>=', '>': '<', '>=': '<=' } as const;

function candidate(c: Expr, alias: string | undefined): Candidate | undefined {
  if (c.kind === 'binary' && ['=', '<', '<=', '>', '>='].includes(c.op)) {
    let path = rootPath(c.left, alias);
    let k = constant(c.right);
    let op = c.op as '=' | '<' | '<=' | '>' | '>=';
    if (!path || !k) {
      path = rootPath(c.right, alias);
      k = constant(c.left);
      if (op !== '=') op = FLIP[op];
    }
    if (!path || !k) return undefined;
    return op === '='
      ? { kind: 'eq', path, values: [k.value], conj: c }
      : { kind: 'cmp', path, op, value: k.value, conj: c };
  }
  if (c.kind === 'in' && !c.not) {
    const path = rootPath(c.operand, alias);
    if (!path) return undefined;
    if (c.target.kind === 'list') {
      const vals = c.target.items.map(constant);
      if (vals.some((v) => v === undefined)) return undefined;
      return { kind: 'eq', path, values: vals.map((v) => (v as { value: Value }).value), conj: c };
    }
    const k = constant(c.target.expr);
    if (!k || !Array.isArray(k.value)) return undefined;
    return { kind: 'eq', path, values: [...(k.value as readonly JsonValue[])], conj: c };
  }
  return undefined;
}

function usable(v: Value): v is JsonValue {
  return v !== MISSING && v !== null;
}

/** Plans a SELECT. */
export function planQuery(stmt: SelectStatement, options: PlanOptions = {}): QueryPlan {
  const args = options.args ?? {};
  const alias = stmt.alias;
  const where = stmt.where && bindParams(stmt.where, args);
  // BETWEEN on a path is two range conjuncts for the planner.
  const conj = conjuncts(where).flatMap((c): Expr[] => {
    if (
      c.kind === 'between' &&
      !c.not &&
      rootPath(c.operand, alias) &&
      constant(c.low) &&
      constant(c.high)
    ) {
      return [
        { kind: 'binary', op: '>=', left: c.operand, right: c.low },
        { kind: 'binary', op: '<=', left: c.operand, right: c.high },
      ];
    }
    return [c];
  });
  const indexes = (options.indexes ?? []).filter((i) => i.collection === stmt.from.name);
  let access: AccessPath = { kind: 'fullScan' };
  let consumed: Expr[] = [];

  const intValue = (e: Expr | undefined, what: string): number | undefined => {
    if (e === undefined) return undefined;
    const v = compileExpr(bindParams(e, args))({ doc: {}, vars: [] });
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw dqlError(
        'DQL_INVALID_PARAMETER',
        `${what} must be a non-negative integer, got ${typeOf(v)} ${typeof v === 'number' ? v : ''}`.trim(),
        { clause: what },
      );
    }
    return v;
  };

  if (stmt.useIds) {
    const ids =
      stmt.useIds.kind === 'list'
        ? (() => {
            const v = compileExpr(bindParams(stmt.useIds.expr, args))({ doc: {}, vars: [] });
            if (!Array.isArray(v))
              throw dqlError('DQL_INVALID_PARAMETER', 'USE IDS LIST takes an array of ids', {
                clause: 'USE IDS',
              });
            return v as readonly JsonValue[];
          })()
        : stmt.useIds.ids.map((e) => compileExpr(bindParams(e, args))({ doc: {}, vars: [] }));
    access = { kind: 'ids', ids: dedupe(ids.filter(usable)) };
  } else {
    const cands = conj
      .map((c) => candidate(c, alias))
      .filter((c): c is Candidate => c !== undefined);
    const idEq = cands.find((c) => c.kind === 'eq' && samePath(c.path, ['_id']));
    if (idEq && idEq.kind === 'eq') {
      access = { kind: 'ids', ids: dedupe(idEq.values.filter(usable)) };
      consumed = [idEq.conj];
    } else {
      for (const ix of indexes) {
        const eq = cands.find((c) => c.kind === 'eq' && samePath(c.path, ix.path));
        if (eq && eq.kind === 'eq') {
          const values = dedupe(eq.values.filter(usable)).sort(compareValues);
          access =
            values.length === 0
              ? { kind: 'empty', reason: 'no value can equal NULL or MISSING' }
              : { kind: 'indexScan', index: ix.name, path: ix.path, range: { kind: 'eq', values } };
          consumed = [eq.conj];
          break;
        }
      }
      if (access.kind === 'fullScan') {
        for (const ix of indexes) {
          const rs = cands.filter(
            (c): c is Extract<Candidate, { kind: 'cmp' }> =>
              c.kind === 'cmp' && samePath(c.path, ix.path),
          );
          const first = rs[0];
          if (!first) continue;
          if (!usable(first.value)) {
            access = { kind: 'empty', reason: 'a comparison with NULL or MISSING is never true' };
            consumed = [first.conj];
            break;
          }
          const type = typeOf(first.value);
          let lower: IndexBound | undefined;
          let upper: IndexBound | undefined;
          const used: Expr[] = [];
          for (const r of rs) {
            if (!usable(r.value) || typeOf(r.value) !== type) continue;
            const bound = { value: r.value, inclusive: r.op === '<=' || r.op === '>=' };
            if (r.op === '>' || r.op === '>=') {
              if (
                !lower ||
                compareValues(bound.value, lower.value) > 0 ||
                (compareValues(bound.value, lower.value) === 0 && !bound.inclusive)
              )
                lower = bound;
            } else if (
              !upper ||
              compareValues(bound.value, upper.value) < 0 ||
              (compareValues(bound.value, upper.value) === 0 && !bound.inclusive)
            ) {
              upper = bound;
            }
            used.push(r.conj);
          }
          access = {
            kind: 'indexScan',
            index: ix.name,
            path: ix.path,
            range: {
              kind: 'range',
              type,
              ...(lower ? { lower } : {}),
              ...(upper ? { upper } : {}),
            },
          };
          consumed = used;
          break;
        }
      }
    }
  }

  const residual = andAll(conj.filter((c) => !consumed.includes(c)));
  const projection = stmt.projection.map((p) =>
    p.kind === 'star' ? p : { ...p, expr: bindParams(p.expr, args) },
  );
  // ORDER BY a projection alias means the aliased expression.
  const orderBy = stmt.orderBy.map((k): OrderKey => {
    let expr = bindParams(k.expr, args);
    if (expr.kind === 'ident') {
      const name = expr.name;
      const item = projection.find((p) => p.kind === 'expr' && p.alias === name);
      if (item && item.kind === 'expr') expr = item.expr;
    }
    return { expr, direction: k.direction };
  });
  const having = stmt.having && bindParams(stmt.having, args);
  const grouped =
    stmt.groupBy.length > 0 ||
    having !== undefined ||
    projection.some((p) => p.kind === 'expr' && containsAggregate(p.expr)) ||
    orderBy.some((k) => containsAggregate(k.expr));
  let aggregation: Aggregation | undefined;
  if (grouped) {
    if (projection.some((p) => p.kind === 'star')) {
      throw dqlError(
        'DQL_INVALID_QUERY',
        'SELECT * cannot be combined with GROUP BY or aggregates',
        {},
      );
    }
    const aggregates: Expr[] = [];
    const collect = (e: Expr): void =>
      walkExpr(e, (x) => {
        if (x.kind === 'call' && ['count', 'sum', 'avg', 'min', 'max'].includes(x.name)) {
          aggregates.push(x);
          return false;
        }
        return true;
      });
    for (const p of projection) if (p.kind === 'expr') collect(p.expr);
    if (having) collect(having);
    for (const k of orderBy) collect(k.expr);
    aggregation = {
      groupBy: stmt.groupBy.map((g) => bindParams(g, args)),
      aggregates,
      ...(having ? { having } : {}),
    };
  }

  let orderFromAccess = false;
  if (!aggregation && !stmt.distinct) {
    if (orderBy.length === 0) orderFromAccess = access.kind === 'fullScan';
    else if (orderBy.length === 1 && access.kind === 'indexScan') {
      const p = rootPath((orderBy[0] as OrderKey).expr, alias);
      orderFromAccess =
        p !== undefined &&
        samePath(p, access.path) &&
        (access.range.kind === 'range' ||
          access.range.values.length === 1 ||
          (orderBy[0] as OrderKey).direction === 'ASC');
    }
  }
  const limit = intValue(stmt.limit && bindParams(stmt.limit, args), 'LIMIT');
  return {
    kind: 'query',
    collection: stmt.from.name,
    ...(alias === undefined ? {} : { alias }),
    access,
    ...(residual === undefined ? {} : { residual }),
    ...(aggregation === undefined ? {} : { aggregation }),
    distinct: stmt.distinct,
    projection,
    orderBy,
    orderFromAccess,
    offset: intValue(stmt.offset && bindParams(stmt.offset, args), 'OFFSET') ?? 0,
    ...(limit === undefined ? {} : { limit }),
  };
}

function dedupe(values: readonly JsonValue[]): JsonValue[] {
  const seen = new Set<string>();
  const out: JsonValue[] = [];
  for (const v of values) {
    const k = valueKey(v);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(v);
    }
  }
  return out;
}

// --- the source interface ----------------------------------------------------------------------

/** What a document source promises about order. */
export interface SourceCapabilities {
  /** `scan()` yields documents in ascending `_id` collation order. */
  readonly orderedScan: boolean;
  /** `indexScan()` yields entries in (value, `_id`) collation order, reversed for `desc`. */
  readonly orderedIndex: boolean;
}

/** A request to scan one index. */
export interface IndexScanRequest {
  readonly collection: string;
  readonly index: string;
  readonly path: readonly string[];
  readonly range: IndexRange;
  readonly direction: 'asc' | 'desc';
}

/**
 * The documents of one store, as the executor reads them.
 * @remarks A store implements this over its engine. `get` skips ids that do not exist; every
 * method returns exactly the documents described (no false positives), because the executor
 * does not re-check conditions the access path consumed.
 */
export interface DocumentSource {
  readonly capabilities: SourceCapabilities;
  scan(collection: string): Iterable<Document>;
  get(collection: string, ids: readonly JsonValue[]): Iterable<Document>;
  indexScan(request: IndexScanRequest): Iterable<Document>;
}

/** Whether `v` lies in `range` (the contract of {@link DocumentSource.indexScan}). */
export function inIndexRange(v: Value, range: IndexRange): boolean {
  if (v === MISSING) return false;
  if (range.kind === 'eq') return range.values.some((x) => compareValues(v, x) === 0);
  if (typeOf(v) !== range.type) return false;
  if (range.lower) {
    const c = compareValues(v, range.lower.value);
    if (c < 0 || (c === 0 && !range.lower.inclusive)) return false;
  }
  if (range.upper) {
    const c = compareValues(v, range.upper.value);
    if (c > 0 || (c === 0 && !range.upper.inclusive)) return false;
  }
  return true;
}

/**
 * An in-memory {@link DocumentSource}: the reference implementation for tests and small peers.
 * @remarks Indexes are evaluated by scanning; it is exact, not fast.
 */
export class MemorySource implements DocumentSource {
  readonly capabilities: SourceCapabilities;
  readonly #collections = new Map<string, Map<string, Document>>();

  constructor(capabilities: SourceCapabilities = { orderedScan: true, orderedIndex: true }) {
    this.capabilities = capabilities;
  }

  /** Inserts or replaces a document. */
  put(collection: string, doc: Document): void {
    let c = this.#collections.get(collection);
    if (!c) this.#collections.set(collection, (c = new Map()));
    c.set(valueKey(getField(doc, '_id')), doc);
  }

  /** Removes a document by id. */
  remove(collection: string, id: JsonValue): void {
    this.#collections.get(collection)?.delete(valueKey(id));
  }

  #sorted(collection: string): Document[] {
    const docs = [...(this.#collections.get(collection)?.values() ?? [])];
    docs.sort((a, b) => compareValues(getField(a, '_id'), getField(b, '_id')));
    if (!this.capabilities.orderedScan) docs.reverse();
    return docs;
  }

  scan(collection: string): Iterable<Document> {
    return this.#sorted(collection);
  }

  get(collection: string, ids: readonly JsonValue[]): Iterable<Document> {
    const c = this.#collections.get(collection);
    const out: Document[] = [];
    for (const id of ids) {
      const d = c?.get(valueKey(id));
      if (d) out.push(d);
    }
    return out;
  }

  indexScan(r: IndexScanRequest): Iterable<Document> {
    const hits = this.#sorted(r.collection).filter((d) =>
      inIndexRange(valueAtPath(d, r.path), r.range),
    );
    hits.sort(
      (a, b) =>
        compareValues(valueAtPath(a, r.path), valueAtPath(b, r.path)) ||
        compareValues(getField(a, '_id'), getField(b, '_id')),
    );
    if (r.direction === 'desc' || !this.capabilities.orderedIndex) hits.reverse();
    return hits;
  }
}

// --- execution ---------------------------------------------------------------------------------

/** Options of {@link executePlan}. */
export interface ExecuteOptions {
  readonly now?: () => number;
}

interface Prepared {
  readonly where: (doc: Document) => boolean;
  readonly key: (row: Row) => Value[];
  readonly project: (row: Row) => JsonValue;
  readonly directions: readonly ('ASC' | 'DESC')[];
  readonly groupKeys: readonly Compiled[];
  readonly having?: Compiled;
}

/**
 * The per-document functions of a plan: whether a document is in the result (access path and
 * residual) and its row. Internal: shared with live queries.
 */
export function rowFunctions(
  plan: QueryPlan,
  options: ExecuteOptions = {},
): {
  accepts: (doc: Document) => boolean;
  row: (doc: Document) => OutRow;
  directions: readonly ('ASC' | 'DESC')[];
} {
  const p = prepare(plan, options);
  const a = plan.access;
  const access: (doc: Document) => boolean =
    a.kind === 'fullScan'
      ? () => true
      : a.kind === 'empty'
        ? () => false
        : a.kind === 'ids'
          ? (doc) => a.ids.some((id) => compareValues(id, getField(doc, '_id')) === 0)
          : (doc) => inIndexRange(valueAtPath(doc, a.path), a.range);
  return {
    accepts: (doc) => access(doc) && p.where(doc),
    row: (doc) => {
      const r: Row = { doc, vars: [] };
      return { tie: getField(doc, '_id'), keys: p.key(r), item: p.project(r) };
    },
    directions: p.directions,
  };
}

function prepare(plan: QueryPlan, options: ExecuteOptions): Prepared {
  const base = {
    ...(plan.alias === undefined ? {} : { alias: plan.alias }),
    ...(options.now ? { now: options.now } : {}),
  };
  const eo = plan.aggregation ? { ...base, aggregates: plan.aggregation.aggregates } : base;
  const residual = plan.residual && compilePredicate(plan.residual, base);
  const keys = plan.orderBy.map((k) => compileExpr(k.expr, eo));
  const items = plan.projection.map((p, i) =>
    p.kind === 'star'
      ? undefined
      : { name: p.alias ?? outputName(p.expr, i), f: compileExpr(p.expr, eo) },
  );
  const onlyStar = plan.projection.length === 1 && plan.projection[0]?.kind === 'star';
  return {
    where: residual ?? (() => true),
    key: (row) => keys.map((k) => k(row)),
    project: (row) => {
      if (onlyStar) return row.doc as JsonValue;
      const out: Record<string, JsonValue> = {};
      for (const it of items) {
        if (it === undefined) {
          if (isObject(row.doc)) Object.assign(out, row.doc);
          continue;
        }
        const v = it.f(row);
        if (v !== MISSING)
          Object.defineProperty(out, it.name, {
            value: v,
            enumerable: true,
            writable: true,
            configurable: true,
          });
      }
      return out;
    },
    directions: plan.orderBy.map((k) => k.direction),
    groupKeys: (plan.aggregation?.groupBy ?? []).map((g) => compileExpr(g, base)),
    ...(plan.aggregation?.having ? { having: compileExpr(plan.aggregation.having, eo) } : {}),
  };
}

/** The output field name of a projection expression without alias. */
export function outputName(e: Expr, i: number): string {
  if (e.kind === 'ident') return e.name;
  if (e.kind === 'field') return e.name;
  if (e.kind === 'index' && e.index.kind === 'literal' && typeof e.index.value === 'string')
    return e.index.value;
  return `$${i + 1}`;
}

/** A result row before slicing: its tie-break (`_id` or group key), sort keys and item. */
export interface OutRow {
  readonly tie: Value;
  readonly keys: Value[];
  readonly item: JsonValue;
}

/** Orders rows by sort keys, then by tie-break in the direction of the last key. */
export function compareRows(a: OutRow, b: OutRow, dirs: readonly ('ASC' | 'DESC')[]): number {
  for (let i = 0; i < dirs.length; i++) {
    const c = compareValues(a.keys[i], b.keys[i]);
    if (c !== 0) return dirs[i] === 'DESC' ? -c : c;
  }
  const c = compareValues(a.tie, b.tie);
  return dirs[dirs.length - 1] === 'DESC' ? -c : c;
}

function aggregate(name: string, distinct: boolean, values: Value[], star: boolean): Value {
  if (star) return values.length;
  let vs = values.filter((v) => v !== MISSING && v !== null);
  if (distinct) {
    const seen = new Set<string>();
    vs = vs.filter((v) => (seen.has(valueKey(v)) ? false : (seen.add(valueKey(v)), true)));
  }
  switch (name) {
    case 'count':
      return vs.length;
    case 'sum':
    case 'avg': {
      const nums = vs.filter((v): v is number => typeof v === 'number');
      if (nums.length === 0) return null;
      const s = nums.reduce((a, b) => a + b, 0);
      const r = name === 'sum' ? s : s / nums.length;
      return Number.isFinite(r) ? r : null;
    }
    case 'min':
    case 'max': {
      if (vs.length === 0) return null;
      let best = vs[0] as Value;
      for (const v of vs) {
        const c = compareValues(v, best);
        if (name === 'min' ? c < 0 : c > 0) best = v;
      }
      return best;
    }
    default:
      return null;
  }
}

/** The result of a query: the items, in order. */
export interface QueryResult {
  readonly items: JsonValue[];
}

/**
 * The documents a store reads asynchronously (engines such as RocksDB); same contract as
 * {@link DocumentSource}.
 */
export interface AsyncDocumentSource {
  readonly capabilities: SourceCapabilities;
  scan(collection: string): AsyncIterable<Document> | Iterable<Document>;
  get(collection: string, ids: readonly JsonValue[]): AsyncIterable<Document> | Iterable<Document>;
  indexScan(request: IndexScanRequest): AsyncIterable<Document> | Iterable<Document>;
}

function openAccess<T>(
  plan: QueryPlan,
  source: {
    readonly capabilities: SourceCapabilities;
    scan(c: string): T;
    get(c: string, ids: readonly JsonValue[]): T;
    indexScan(r: IndexScanRequest): T;
  },
): { docs: T | readonly Document[]; ordered: boolean } {
  const access = plan.access;
  switch (access.kind) {
    case 'empty':
      return { docs: [], ordered: false };
    case 'ids':
      return { docs: source.get(plan.collection, access.ids), ordered: false };
    case 'fullScan':
      return {
        docs: source.scan(plan.collection),
        ordered: plan.orderFromAccess && source.capabilities.orderedScan,
      };
    case 'indexScan': {
      const desc = plan.orderBy.length === 1 && plan.orderBy[0]?.direction === 'DESC';
      return {
        docs: source.indexScan({
          collection: plan.collection,
          index: access.index,
          path: access.path,
          range: access.range,
          direction: desc ? 'desc' : 'asc',
        }),
        ordered: plan.orderFromAccess && source.capabilities.orderedIndex,
      };
    }
  }
}

/** How many matching documents the executor needs before it can stop (Infinity: all). */
function needed(plan: QueryPlan, ordered: boolean): number {
  if (!ordered || plan.aggregation || plan.distinct || plan.limit === undefined) return Infinity;
  return plan.offset + plan.limit;
}

/** Runs a plan over a source. */
export function executePlan(
  plan: QueryPlan,
  source: DocumentSource,
  options: ExecuteOptions = {},
): QueryResult {
  const p = prepare(plan, options);
  const { docs, ordered } = openAccess(plan, source);
  const stop = needed(plan, ordered);
  const matched: Document[] = [];
  for (const doc of docs) {
    if (!p.where(doc)) continue;
    matched.push(doc);
    if (matched.length >= stop) break;
  }
  return finish(plan, p, matched, ordered, options);
}

/** Runs a plan over an asynchronous source (stops reading as soon as the result is known). */
export async function executePlanAsync(
  plan: QueryPlan,
  source: AsyncDocumentSource,
  options: ExecuteOptions = {},
): Promise<QueryResult> {
  const p = prepare(plan, options);
  const { docs, ordered } = openAccess(plan, source);
  const stop = needed(plan, ordered);
  const matched: Document[] = [];
  for await (const doc of docs) {
    if (!p.where(doc)) continue;
    matched.push(doc);
    if (matched.length >= stop) break;
  }
  return finish(plan, p, matched, ordered, options);
}

function finish(
  plan: QueryPlan,
  p: Prepared,
  docs: readonly Document[],
  ordered: boolean,
  options: ExecuteOptions,
): QueryResult {
  const end = plan.limit === undefined ? Infinity : plan.offset + plan.limit;
  if (!plan.aggregation) {
    const rows: OutRow[] = docs.map((doc) => {
      const row: Row = { doc, vars: [] };
      return { tie: getField(doc, '_id'), keys: p.key(row), item: p.project(row) };
    });
    if (!ordered) rows.sort((a, b) => compareRows(a, b, p.directions));
    let out = rows;
    if (plan.distinct) {
      const seen = new Set<string>();
      out = rows.filter((r) =>
        seen.has(valueKey(r.item)) ? false : (seen.add(valueKey(r.item)), true),
      );
    }
    return { items: out.slice(plan.offset, end).map((r) => r.item) };
  }
  // Aggregation: groups in order of their keys; the representative is the smallest _id.
  const agg = plan.aggregation;
  const filtered = [...docs]
    .filter(p.where)
    .sort((a, b) => compareValues(getField(a, '_id'), getField(b, '_id')));
  const groups = new Map<string, { key: Value[]; docs: Document[] }>();
  for (const doc of filtered) {
    const key = p.groupKeys.map((g) => g({ doc, vars: [] }));
    const k = valueKey(key.map((v) => (v === MISSING ? null : v)) as JsonValue);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { key, docs: [] }));
    g.docs.push(doc);
  }
  if (groups.size === 0 && agg.groupBy.length === 0) groups.set('', { key: [], docs: [] });
  const aggArgs = agg.aggregates.map((a) =>
    a.kind === 'call' && !a.star && a.args[0]
      ? compileExpr(
          a.args[0],
          options.now
            ? { now: options.now, ...(plan.alias === undefined ? {} : { alias: plan.alias }) }
            : plan.alias === undefined
              ? {}
              : { alias: plan.alias },
        )
      : undefined,
  );
  const rows: OutRow[] = [];
  for (const g of groups.values()) {
    const aggs = agg.aggregates.map((a, i) => {
      if (a.kind !== 'call') return MISSING;
      const f = aggArgs[i];
      const vals = g.docs.map((doc) => (f ? f({ doc, vars: [] }) : true));
      return aggregate(a.name, a.distinct, vals, a.star);
    });
    const row: Row = { doc: g.docs[0] ?? {}, vars: [], aggs };
    if (p.having && p.having(row) !== true) continue;
    rows.push({
      tie: g.key.map((v) => (v === MISSING ? null : v)) as JsonValue,
      keys: p.key(row),
      item: p.project(row),
    });
  }
  rows.sort((a, b) => compareRows(a, b, p.directions));
  let out = rows;
  if (plan.distinct) {
    const seen = new Set<string>();
    out = rows.filter((r) =>
      seen.has(valueKey(r.item)) ? false : (seen.add(valueKey(r.item)), true),
    );
  }
  return { items: out.slice(plan.offset, end).map((r) => r.item) };
}

// --- EXPLAIN -----------------------------------------------------------------------------------

function describeRange(path: readonly string[], r: IndexRange): string {
  const p = path.join('.');
  if (r.kind === 'eq')
    return r.values.length === 1
      ? `${p} = ${printValue(r.values[0] as JsonValue)}`
      : `${p} IN [${r.values.map(printValue).join(', ')}]`;
  const lo = r.lower ? `${printValue(r.lower.value)} ${r.lower.inclusive ? '<=' : '<'} ` : '';
  const hi = r.upper ? ` ${r.upper.inclusive ? '<=' : '<'} ${printValue(r.upper.value)}` : '';
  return `${lo}${p}${hi} (${r.type} values)`;
}

/** A plan as readable text, one step per line (what EXPLAIN returns). */
export function explain(plan: QueryPlan): string {
  const lines = [`query ${plan.collection}${plan.alias === undefined ? '' : ` AS ${plan.alias}`}`];
  const a = plan.access;
  lines.push(
    '  access: ' +
      (a.kind === 'fullScan'
        ? 'full scan'
        : a.kind === 'empty'
          ? `none (${a.reason})`
          : a.kind === 'ids'
            ? `ids [${a.ids.map(printValue).join(', ')}]`
            : `index ${a.index} ${describeRange(a.path, a.range)}`),
  );
  if (plan.residual) lines.push(`  filter: ${printExpression(plan.residual)}`);
  if (plan.aggregation) {
    const g = plan.aggregation;
    lines.push(
      `  group by: ${g.groupBy.length === 0 ? '(all rows)' : g.groupBy.map(printExpression).join(', ')}`,
    );
    if (g.aggregates.length > 0)
      lines.push(`  aggregates: ${g.aggregates.map(printExpression).join(', ')}`);
    if (g.having) lines.push(`  having: ${printExpression(g.having)}`);
  }
  const proj = plan.projection.map((p) =>
    p.kind === 'star'
      ? '*'
      : printExpression(p.expr) + (p.alias === undefined ? '' : ` AS ${p.alias}`),
  );
  lines.push(`  project: ${plan.distinct ? 'DISTINCT ' : ''}${proj.join(', ')}`);
  const order = plan.orderBy.map((k) => `${printExpression(k.expr)} ${k.direction}`);
  const tieDir = plan.orderBy[plan.orderBy.length - 1]?.direction ?? 'ASC';
  lines.push(
    `  order: ${[...order, `_id ${tieDir}`].join(', ')}${plan.orderFromAccess ? ' (from access path)' : ' (sort)'}`,
  );
  if (plan.offset > 0 || plan.limit !== undefined) {
    lines.push(
      `  offset ${plan.offset}${plan.limit === undefined ? '' : `, limit ${plan.limit}`}${plan.orderFromAccess ? ' (stops early)' : ''}`,
    );
  }
  return lines.join('\n');
}
