/**
 * The DQL abstract syntax tree: discriminated unions on `kind`.
 *
 * @remarks
 * Nodes hold no positions, so two parses of equivalent text are deeply equal and
 * `parse(print(ast))` equals `ast`; positions for error messages are kept beside the tree (see
 * `positionOf`). Function names are lower case; identifiers keep their case.
 */
import type { JsonValue } from './values.js';

/** A literal scalar (`null`, booleans, finite numbers, strings), or a bound argument value. */
export interface LiteralExpr {
  readonly kind: 'literal';
  readonly value: JsonValue;
}
/** The `MISSING` literal. */
export interface MissingExpr {
  readonly kind: 'missing';
}
/** A named parameter `:name` (case-sensitive). */
export interface ParamExpr {
  readonly kind: 'param';
  readonly name: string;
}
/** A root identifier: a field of the document, a bound variable, or the collection alias. */
export interface IdentExpr {
  readonly kind: 'ident';
  readonly name: string;
}
/** `object.name`. */
export interface FieldExpr {
  readonly kind: 'field';
  readonly object: Expr;
  readonly name: string;
}
/** `object[index]`: an array element (number) or a field (string). */
export interface IndexExpr {
  readonly kind: 'index';
  readonly object: Expr;
  readonly index: Expr;
}
/** `[a, b, …]`. */
export interface ArrayExpr {
  readonly kind: 'array';
  readonly items: readonly Expr[];
}
/** `{'k': v, …}`. */
export interface ObjectExpr {
  readonly kind: 'object';
  readonly entries: readonly { readonly key: string; readonly value: Expr }[];
}
/** `NOT x`, `-x`. */
export interface UnaryExpr {
  readonly kind: 'unary';
  readonly op: 'NOT' | '-';
  readonly operand: Expr;
}
/** Binary operators, including comparison and logic. */
export interface BinaryExpr {
  readonly kind: 'binary';
  readonly op: BinaryOp;
  readonly left: Expr;
  readonly right: Expr;
}
/** The binary operators. `!=` is also written `<>`; `||` concatenates strings. */
export type BinaryOp =
  'OR' | 'AND' | '=' | '!=' | '<' | '<=' | '>' | '>=' | '||' | '+' | '-' | '*' | '/' | '%';
/**
 * `x [NOT] IN (a, b)` (a list of expressions) or `x [NOT] IN arr` (an array-valued expression).
 * @remarks `IN :arr` tests membership in the argument; `IN (:arr)` in a one-element list
 * holding the argument, which is what Ditto does too.
 */
export interface InExpr {
  readonly kind: 'in';
  readonly not: boolean;
  readonly operand: Expr;
  readonly target: InTarget;
}
/** The right side of IN. */
export type InTarget =
  | { readonly kind: 'list'; readonly items: readonly Expr[] }
  | { readonly kind: 'expr'; readonly expr: Expr };
/** `x [NOT] BETWEEN low AND high`. */
export interface BetweenExpr {
  readonly kind: 'between';
  readonly not: boolean;
  readonly operand: Expr;
  readonly low: Expr;
  readonly high: Expr;
}
/** `x [NOT] LIKE p`, `x [NOT] ILIKE p`. */
export interface LikeExpr {
  readonly kind: 'like';
  readonly not: boolean;
  readonly caseInsensitive: boolean;
  readonly operand: Expr;
  readonly pattern: Expr;
}
/** `x IS [NOT] NULL`, `x IS [NOT] MISSING`. */
export interface IsExpr {
  readonly kind: 'is';
  readonly not: boolean;
  readonly test: 'NULL' | 'MISSING';
  readonly operand: Expr;
}
/** `CASE [subject] WHEN … THEN … [ELSE …] END`. */
export interface CaseExpr {
  readonly kind: 'case';
  readonly subject?: Expr;
  readonly whens: readonly { readonly when: Expr; readonly then: Expr }[];
  readonly else?: Expr;
}
/** `ANY v IN source SATISFIES cond END`, `EVERY …`. */
export interface QuantifiedExpr {
  readonly kind: 'quantified';
  readonly quantifier: 'ANY' | 'EVERY';
  readonly variable: string;
  readonly source: Expr;
  readonly satisfies: Expr;
}
/** A function call; `star` for `COUNT(*)`, `distinct` for `COUNT(DISTINCT x)`. */
export interface CallExpr {
  readonly kind: 'call';
  readonly name: string;
  readonly args: readonly Expr[];
  readonly distinct: boolean;
  readonly star: boolean;
}

/** Any expression. */
export type Expr =
  | LiteralExpr
  | MissingExpr
  | ParamExpr
  | IdentExpr
  | FieldExpr
  | IndexExpr
  | ArrayExpr
  | ObjectExpr
  | UnaryExpr
  | BinaryExpr
  | InExpr
  | BetweenExpr
  | LikeExpr
  | IsExpr
  | CaseExpr
  | QuantifiedExpr
  | CallExpr;

/** The CRDT types a COLLECTION declaration can give a field. */
export const FieldType = {
  MAP: 'MAP',
  REGISTER: 'REGISTER',
  COUNTER: 'COUNTER',
  PN_COUNTER: 'PN_COUNTER',
  ATTACHMENT: 'ATTACHMENT',
} as const;
/** One declared field type. */
export type FieldType = (typeof FieldType)[keyof typeof FieldType];

/** `path TYPE` in `COLLECTION c (path TYPE, …)`. */
export interface TypeDef {
  readonly path: readonly string[];
  readonly type: FieldType;
}

/** A collection reference with optional type declarations. */
export interface CollectionRef {
  readonly name: string;
  readonly typedefs: readonly TypeDef[];
}

/** One projection item: `*` or an expression with an optional alias. */
export type ProjectionItem =
  | { readonly kind: 'star' }
  | { readonly kind: 'expr'; readonly expr: Expr; readonly alias?: string };

/** One ORDER BY key. */
export interface OrderKey {
  readonly expr: Expr;
  readonly direction: 'ASC' | 'DESC';
}

/** `USE IDS a, b` or `USE IDS LIST :ids`. */
export type UseIds =
  | { readonly kind: 'ids'; readonly ids: readonly Expr[] }
  | { readonly kind: 'list'; readonly expr: Expr };

/** SELECT. */
export interface SelectStatement {
  readonly kind: 'select';
  readonly distinct: boolean;
  readonly projection: readonly ProjectionItem[];
  readonly from: CollectionRef;
  readonly alias?: string;
  readonly useIds?: UseIds;
  readonly where?: Expr;
  readonly groupBy: readonly Expr[];
  readonly having?: Expr;
  readonly orderBy: readonly OrderKey[];
  readonly limit?: Expr;
  readonly offset?: Expr;
}

/** The ON ID CONFLICT modes; FAIL is the default. */
export const ConflictMode = {
  FAIL: 'FAIL',
  DO_NOTHING: 'DO_NOTHING',
  DO_UPDATE: 'DO_UPDATE',
  DO_UPDATE_LOCAL_DIFF: 'DO_UPDATE_LOCAL_DIFF',
} as const;
/** One ON ID CONFLICT mode. */
export type ConflictMode = (typeof ConflictMode)[keyof typeof ConflictMode];

/** INSERT [INITIAL] DOCUMENTS. */
export interface InsertStatement {
  readonly kind: 'insert';
  readonly into: CollectionRef;
  readonly initial: boolean;
  readonly documents: readonly Expr[];
  readonly onConflict?: ConflictMode;
}

/** One APPLY operation. */
export type ApplyOp =
  | { readonly op: 'INCREMENT'; readonly path: readonly string[]; readonly by: Expr }
  | { readonly op: 'PN_INCREMENT'; readonly path: readonly string[]; readonly by: Expr }
  | { readonly op: 'RESTART'; readonly path: readonly string[]; readonly with?: Expr };

/** `path = value` in SET. */
export interface SetItem {
  readonly path: readonly string[];
  readonly value: Expr;
}

/** UPDATE … APPLY … SET … UNSET … WHERE. */
export interface UpdateStatement {
  readonly kind: 'update';
  readonly collection: CollectionRef;
  readonly apply: readonly ApplyOp[];
  readonly set: readonly SetItem[];
  readonly unset: readonly (readonly string[])[];
  readonly where?: Expr;
}

/** DELETE FROM / EVICT FROM. */
export interface RemoveStatement {
  readonly kind: 'delete' | 'evict';
  readonly collection: string;
  readonly where?: Expr;
}

/** CREATE INDEX [IF NOT EXISTS] name ON coll (path). */
export interface CreateIndexStatement {
  readonly kind: 'createIndex';
  readonly name: string;
  readonly collection: string;
  readonly path: readonly string[];
  readonly ifNotExists: boolean;
}

/** DROP INDEX [IF EXISTS] name. */
export interface DropIndexStatement {
  readonly kind: 'dropIndex';
  readonly name: string;
  readonly ifExists: boolean;
}

/** EXPLAIN statement. */
export interface ExplainStatement {
  readonly kind: 'explain';
  readonly statement: ExplainableStatement;
}

/** What EXPLAIN accepts. */
export type ExplainableStatement =
  SelectStatement | InsertStatement | UpdateStatement | RemoveStatement;

/** Any statement. */
export type Statement =
  | SelectStatement
  | InsertStatement
  | UpdateStatement
  | RemoveStatement
  | CreateIndexStatement
  | DropIndexStatement
  | ExplainStatement;

/** The aggregate function names. */
export const AGGREGATES: ReadonlySet<string> = new Set(['count', 'sum', 'avg', 'min', 'max']);

/** Calls `visit` on `e` and every sub-expression, outermost first; `false` stops descent. */
export function walkExpr(e: Expr, visit: (e: Expr) => boolean | void): void {
  if (visit(e) === false) return;
  switch (e.kind) {
    case 'field':
      walkExpr(e.object, visit);
      return;
    case 'index':
      walkExpr(e.object, visit);
      walkExpr(e.index, visit);
      return;
    case 'array':
      for (const x of e.items) walkExpr(x, visit);
      return;
    case 'object':
      for (const x of e.entries) walkExpr(x.value, visit);
      return;
    case 'unary':
      walkExpr(e.operand, visit);
      return;
    case 'binary':
      walkExpr(e.left, visit);
      walkExpr(e.right, visit);
      return;
    case 'in':
      walkExpr(e.operand, visit);
      if (e.target.kind === 'list') for (const x of e.target.items) walkExpr(x, visit);
      else walkExpr(e.target.expr, visit);
      return;
    case 'between':
      walkExpr(e.operand, visit);
      walkExpr(e.low, visit);
      walkExpr(e.high, visit);
      return;
    case 'like':
      walkExpr(e.operand, visit);
      walkExpr(e.pattern, visit);
      return;
    case 'is':
      walkExpr(e.operand, visit);
      return;
    case 'case':
      if (e.subject) walkExpr(e.subject, visit);
      for (const w of e.whens) {
        walkExpr(w.when, visit);
        walkExpr(w.then, visit);
      }
      if (e.else) walkExpr(e.else, visit);
      return;
    case 'quantified':
      walkExpr(e.source, visit);
      walkExpr(e.satisfies, visit);
      return;
    case 'call':
      for (const x of e.args) walkExpr(x, visit);
      return;
    default:
      return;
  }
}

/** Whether `e` contains an aggregate call. */
export function containsAggregate(e: Expr): boolean {
  let found = false;
  walkExpr(e, (x) => {
    if (x.kind === 'call' && AGGREGATES.has(x.name)) found = true;
    return !found;
  });
  return found;
}
