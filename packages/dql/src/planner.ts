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
import type { Compiled, EvalOptions, Row } from './evaluator.js';
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
 * value has type `type` and lies within the bounds; a missing bound is open, so a `range` with
 * neither bound is every entry of that type. Documents where the path is MISSING are not in an
 * index. To read a whole index in order (ORDER BY an indexed path without a predicate on it),
 * the executor requests `{ kind: 'range', type }` with no bounds for each indexed type in
 * collation order — `boolean`, `number`, `binary`, `string`, `array`, `object`, `null` (the
 * reverse for `desc`) — so an implementation needs nothing beyond this contract; it must not
 * treat an unbounded range as an error or as empty.
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
  | { readonly kind: 'empty'; readonly reason: string }
  | {
      /**
       * `a OR b OR …` where every disjunct has an access path: the union of the branches,
       * each document once (de-duplicated by `_id`); not in result order.
       */
      readonly kind: 'union';
      readonly branches: readonly UnionBranch[];
    }
  | {
      /**
       * Every document, in the order of the index on `path` (for `ORDER BY path` without a
       * predicate on it): the index over all value types in collation order, then the documents
       * where `path` is MISSING (they sort last) — reversed for DESC. Executed as a full scan
       * when the source has no ordered index.
       */
      readonly kind: 'indexOrder';
      readonly index: string;
      readonly path: readonly string[];
    };

/** One branch of a `union` access path: an id lookup or an index scan. */
export type UnionBranch = Extract<AccessPath, { readonly kind: 'ids' | 'indexScan' }>;

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
  if (e.kind === 'array') {
    // An array constructor of constants (`[1, 2]`) is a constant; it drops MISSING elements.
    const items: JsonValue[] = [];
    for (const x of e.items) {
      const k = constant(x);
      if (!k) return undefined;
      if (k.value !== MISSING) items.push(k.value);
    }
    return { value: items };
  }
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

/** The top-level AND conjuncts of a condition; `x BETWEEN lo AND hi` on a path as two ranges. */
function plannerConjuncts(where: Expr | undefined, alias: string | undefined): Expr[] {
  return conjuncts(where).flatMap((c): Expr[] => {
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
}

function disjuncts(e: Expr): Expr[] {
  if (e.kind === 'binary' && e.op === 'OR') return [...disjuncts(e.left), ...disjuncts(e.right)];
  return [e];
}

/** The access path for a list of AND conjuncts and the conjuncts it makes true exactly. */
function chooseAccess(
  conj: readonly Expr[],
  indexes: readonly IndexInfo[],
  alias: string | undefined,
): { access: AccessPath; consumed: readonly Expr[] } {
  const cands = conj.map((c) => candidate(c, alias)).filter((c): c is Candidate => c !== undefined);
  const idEq = cands.find((c) => c.kind === 'eq' && samePath(c.path, ['_id']));
  if (idEq && idEq.kind === 'eq')
    return {
      access: { kind: 'ids', ids: dedupe(idEq.values.filter(usable)) },
      consumed: [idEq.conj],
    };
  for (const ix of indexes) {
    const eq = cands.find((c) => c.kind === 'eq' && samePath(c.path, ix.path));
    if (eq && eq.kind === 'eq') {
      const values = dedupe(eq.values.filter(usable)).sort(compareValues);
      return {
        access:
          values.length === 0
            ? { kind: 'empty', reason: 'no value can equal NULL or MISSING' }
            : { kind: 'indexScan', index: ix.name, path: ix.path, range: { kind: 'eq', values } },
        consumed: [eq.conj],
      };
    }
  }
  for (const ix of indexes) {
    const rs = cands.filter(
      (c): c is Extract<Candidate, { kind: 'cmp' }> =>
        c.kind === 'cmp' && samePath(c.path, ix.path),
    );
    const first = rs[0];
    if (!first) continue;
    if (!usable(first.value)) {
      return {
        access: { kind: 'empty', reason: 'a comparison with NULL or MISSING is never true' },
        consumed: [first.conj],
      };
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
    return {
      access: {
        kind: 'indexScan',
        index: ix.name,
        path: ix.path,
        range: { kind: 'range', type, ...(lower ? { lower } : {}), ...(upper ? { upper } : {}) },
      },
      consumed: used,
    };
  }
  // An OR conjunct whose every disjunct has an access path: the union of those paths. The OR
  // is consumed only when each branch makes its whole disjunct true exactly; otherwise it stays
  // in the residual, which then filters the union's candidates exactly.
  for (const c of conj) {
    if (c.kind !== 'binary' || c.op !== 'OR') continue;
    const branches: UnionBranch[] = [];
    let exact = true;
    let servable = true;
    for (const d of disjuncts(c)) {
      const dc = plannerConjuncts(d, alias);
      const sub = chooseAccess(dc, indexes, alias);
      if (sub.access.kind === 'fullScan' || sub.access.kind === 'indexOrder') {
        servable = false;
        break;
      }
      if (dc.some((x) => !sub.consumed.includes(x))) exact = false;
      if (sub.access.kind === 'union') branches.push(...sub.access.branches);
      else if (sub.access.kind !== 'empty') branches.push(sub.access);
    }
    if (!servable) continue;
    return {
      access:
        branches.length === 0
          ? { kind: 'empty', reason: 'no disjunct can be true' }
          : branches.length === 1
            ? (branches[0] as UnionBranch)
            : { kind: 'union', branches },
      consumed: exact ? [c] : [],
    };
  }
  return { access: { kind: 'fullScan' }, consumed: [] };
}

/** Plans a SELECT. */
export function planQuery(stmt: SelectStatement, options: PlanOptions = {}): QueryPlan {
  const args = options.args ?? {};
  const alias = stmt.alias;
  const where = stmt.where && bindParams(stmt.where, args);
  const conj = plannerConjuncts(where, alias);
  const indexes = (options.indexes ?? []).filter((i) => i.collection === stmt.from.name);
  let access: AccessPath;
  let consumed: readonly Expr[] = [];

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
    ({ access, consumed } = chooseAccess(conj, indexes, alias));
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

  const limit = intValue(stmt.limit && bindParams(stmt.limit, args), 'LIMIT');
  let orderFromAccess = false;
  if (!aggregation && !stmt.distinct) {
    // ORDER BY an indexed path with LIMIT and no better access path: read the index in order
    // and stop early. Without LIMIT a scan and a sort do less work (the index read still has to
    // be completed by a scan for the documents the index does not hold).
    const key = orderBy.length === 1 ? (orderBy[0] as OrderKey) : undefined;
    const keyPath = key && rootPath(key.expr, alias);
    const ix = keyPath && indexes.find((i) => samePath(i.path, keyPath));
    if (access.kind === 'fullScan' && ix && limit !== undefined)
      access = { kind: 'indexOrder', index: ix.name, path: ix.path };
    if (orderBy.length === 0) orderFromAccess = access.kind === 'fullScan';
    else if (access.kind === 'indexOrder') orderFromAccess = true;
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

/**
 * A request to scan one index.
 * @remarks Unions (OR) send one request per branch, always `asc`, and de-duplicate by `_id`
 * themselves; index order sends one unbounded `range` per value type (see {@link IndexRange}).
 */
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
  const access = accessAccepts(plan.access);
  return {
    accepts: (doc) => access(doc) && p.where(doc),
    row: (doc) => {
      const r: Row = { doc, vars: [] };
      return { tie: getField(doc, '_id'), keys: p.key(r), item: p.project(r) };
    },
    directions: p.directions,
  };
}

/** Whether an access path yields a document (before the residual filter). */
function accessAccepts(a: AccessPath): (doc: Document) => boolean {
  switch (a.kind) {
    case 'fullScan':
    case 'indexOrder':
      return () => true;
    case 'empty':
      return () => false;
    case 'ids':
      return (doc) => a.ids.some((id) => compareValues(id, getField(doc, '_id')) === 0);
    case 'indexScan':
      return (doc) => inIndexRange(valueAtPath(doc, a.path), a.range);
    case 'union': {
      const branches = a.branches.map(accessAccepts);
      return (doc) => branches.some((b) => b(doc));
    }
  }
}

/**
 * A SELECT's projection as a function of a row: `*` is the document itself, other items are
 * named by their alias or {@link outputName}, and MISSING values are left out.
 */
export function compileProjection(
  projection: readonly ProjectionItem[],
  options: EvalOptions,
): (row: Row) => JsonValue {
  if (projection.length === 1 && projection[0]?.kind === 'star')
    return (row) => row.doc as JsonValue;
  const items = projection.map((p, i) =>
    p.kind === 'star'
      ? undefined
      : { name: p.alias ?? outputName(p.expr, i), f: compileExpr(p.expr, options) },
  );
  return (row) => {
    const out: Record<string, JsonValue> = {};
    for (const it of items) {
      if (it === undefined) {
        if (isObject(row.doc)) Object.assign(out, row.doc);
        continue;
      }
      const v = it.f(row);
      // defineProperty: a field named `__proto__` is a field, not the prototype.
      if (v !== MISSING)
        Object.defineProperty(out, it.name, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    return out;
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
  return {
    where: residual ?? (() => true),
    key: (row) => keys.map((k) => k(row)),
    project: compileProjection(plan.projection, eo),
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

/** One stretch of an access path: a source call, optionally filtered and ordered by `_id`. */
interface AccessPart<T> {
  readonly open: () => T | readonly Document[];
  /** Keep only the documents for which this holds. */
  readonly keep?: (doc: Document) => boolean;
  /** Read the whole stretch, then yield it in this `_id` order. */
  readonly sortById?: 'ASC' | 'DESC';
}

/** The value types an index holds, in collation order (MISSING is never indexed). */
const INDEXED_TYPES: readonly ValueType[] = [
  'boolean',
  'number',
  'binary',
  'string',
  'array',
  'object',
  'null',
];

function openAccess<T>(
  plan: QueryPlan,
  source: {
    readonly capabilities: SourceCapabilities;
    scan(c: string): T;
    get(c: string, ids: readonly JsonValue[]): T;
    indexScan(r: IndexScanRequest): T;
  },
): { parts: readonly AccessPart<T>[]; dedupe: boolean; ordered: boolean } {
  const access = plan.access;
  const collection = plan.collection;
  const caps = source.capabilities;
  const one = (open: () => T | readonly Document[], ordered: boolean) => ({
    parts: [{ open }],
    dedupe: false,
    ordered,
  });
  const scanIndex = (
    a: { readonly index: string; readonly path: readonly string[] },
    range: IndexRange,
    direction: 'asc' | 'desc',
  ) => source.indexScan({ collection, index: a.index, path: a.path, range, direction });
  switch (access.kind) {
    case 'empty':
      return one(() => [], false);
    case 'ids':
      return one(() => source.get(collection, access.ids), false);
    case 'fullScan':
      return one(() => source.scan(collection), plan.orderFromAccess && caps.orderedScan);
    case 'indexScan': {
      const desc = plan.orderBy.length === 1 && plan.orderBy[0]?.direction === 'DESC';
      return one(
        () => scanIndex(access, access.range, desc ? 'desc' : 'asc'),
        plan.orderFromAccess && caps.orderedIndex,
      );
    }
    case 'union':
      return {
        parts: access.branches.map((b) => ({
          open: () =>
            b.kind === 'ids' ? source.get(collection, b.ids) : scanIndex(b, b.range, 'asc'),
        })),
        dedupe: true,
        ordered: false,
      };
    case 'indexOrder': {
      // Without an ordered index the index brings nothing: scan and sort.
      if (!caps.orderedIndex || !plan.orderFromAccess)
        return one(() => source.scan(collection), false);
      const desc = plan.orderBy[0]?.direction === 'DESC';
      const path = access.path;
      // One unbounded range per type, in collation order: together, every indexed value.
      const indexed = INDEXED_TYPES.map((type): AccessPart<T> => ({
        open: () => scanIndex(access, { kind: 'range', type }, desc ? 'desc' : 'asc'),
      }));
      // Documents without the field are not in the index and sort after every value.
      const missing: AccessPart<T> = {
        open: () => source.scan(collection),
        keep: (doc) => valueAtPath(doc, path) === MISSING,
        ...(!desc && caps.orderedScan ? {} : { sortById: desc ? 'DESC' : 'ASC' }),
      };
      return {
        parts: desc ? [missing, ...indexed.reverse()] : [...indexed, missing],
        dedupe: false,
        ordered: true,
      };
    }
  }
}

function sortById(docs: Document[], direction: 'ASC' | 'DESC'): Document[] {
  docs.sort((a, b) => compareValues(getField(a, '_id'), getField(b, '_id')));
  return direction === 'DESC' ? docs.reverse() : docs;
}

/** The documents of an access path's parts, in order, each once when `dedupe`. */
function* chainParts(
  parts: readonly AccessPart<Iterable<Document>>[],
  dedupe: boolean,
): Generator<Document> {
  const seen = new Set<string>();
  for (const part of parts) {
    let docs = part.open();
    const keep = part.keep;
    if (part.sortById) {
      const all: Document[] = [];
      for (const doc of docs) if (!keep || keep(doc)) all.push(doc);
      docs = sortById(all, part.sortById);
    }
    for (const doc of docs) {
      if (keep && !part.sortById && !keep(doc)) continue;
      if (dedupe) {
        const k = valueKey(getField(doc, '_id'));
        if (seen.has(k)) continue;
        seen.add(k);
      }
      yield doc;
    }
  }
}

/** {@link chainParts} over an asynchronous source. */
async function* chainPartsAsync(
  parts: readonly AccessPart<AsyncIterable<Document> | Iterable<Document>>[],
  dedupe: boolean,
): AsyncGenerator<Document> {
  const seen = new Set<string>();
  for (const part of parts) {
    let docs = part.open();
    const keep = part.keep;
    if (part.sortById) {
      const all: Document[] = [];
      for await (const doc of docs) if (!keep || keep(doc)) all.push(doc);
      docs = sortById(all, part.sortById);
    }
    for await (const doc of docs) {
      if (keep && !part.sortById && !keep(doc)) continue;
      if (dedupe) {
        const k = valueKey(getField(doc, '_id'));
        if (seen.has(k)) continue;
        seen.add(k);
      }
      yield doc;
    }
  }
}

/** The documents of a plain access path directly; others through a chaining generator. */
function accessDocs<T>(
  opened: { parts: readonly AccessPart<T>[]; dedupe: boolean },
  chain: (parts: readonly AccessPart<T>[], dedupe: boolean) => T,
): T | readonly Document[] {
  const [first, ...rest] = opened.parts;
  if (first && rest.length === 0 && !opened.dedupe && !first.keep && !first.sortById)
    return first.open();
  return chain(opened.parts, opened.dedupe);
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
  const opened = openAccess(plan, source);
  const ordered = opened.ordered;
  const docs = accessDocs(opened, chainParts);
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
  const opened = openAccess(plan, source);
  const ordered = opened.ordered;
  const docs = accessDocs(opened, chainPartsAsync);
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
  const describe = (x: AccessPath): string => {
    switch (x.kind) {
      case 'fullScan':
        return 'full scan';
      case 'empty':
        return `none (${x.reason})`;
      case 'ids':
        return `ids [${x.ids.map(printValue).join(', ')}]`;
      case 'indexScan':
        return `index ${x.index} ${describeRange(x.path, x.range)}`;
      case 'union':
        return `union of ${x.branches.length} (each document once, by _id)`;
      case 'indexOrder': {
        const p = x.path.join('.');
        return plan.orderBy[0]?.direction === 'DESC'
          ? `index ${x.index} all ${p} values in order DESC, after the documents without ${p} (full scan)`
          : `index ${x.index} all ${p} values in order ASC, then the documents without ${p} (full scan)`;
      }
    }
  };
  lines.push(`  access: ${describe(a)}`);
  if (a.kind === 'union') for (const b of a.branches) lines.push(`    - ${describe(b)}`);
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
