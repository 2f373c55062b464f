/**
 * Permissions: what a principal (an app's key, a peer's identity) may read and write.
 *
 * @remarks
 * SEMANTICS.md § Permissions. A permission has the shape of Ditto's authentication webhook
 * answer: for reading and for writing, either `everything`, or per collection a list of DQL
 * conditions on `_id` sub-fields (`_id.region = '1'`), any of which admits a document. Because a
 * condition may only look at `_id`, whether a document is permitted is a function of its
 * collection and id alone: it cannot change when the document is written. System collections
 * (`system:…`) are permitted only by `everything`.
 *
 * The gateway rewrites statements with these conditions; the sync protocol checks every
 * document it sends or receives with {@link permits}.
 */
import { AGGREGATES, walkExpr } from './ast.js';
import type { Expr } from './ast.js';
import { dqlError } from './errors.js';
import { compilePredicate } from './evaluator.js';
import { parseExpression } from './parser.js';
import type { JsonValue } from './values.js';

/** One direction (read or write) of a permission, as configured (Ditto's shape). */
export interface PermissionSpec {
  /** Every document of every collection. */
  readonly everything?: boolean;
  /** Per collection, DQL conditions on `_id`; a document matching any of them is permitted. */
  readonly queriesByCollection?: Readonly<Record<string, readonly string[]>>;
}

/** Both directions of a permission, as configured. */
export interface PermissionsSpec {
  readonly read?: PermissionSpec | undefined;
  readonly write?: PermissionSpec | undefined;
}

/** A compiled {@link PermissionSpec}. */
export interface Access {
  readonly everything: boolean;
  /** Per collection, the OR of its conditions. */
  readonly byCollection: ReadonlyMap<string, Expr>;
}

/** Both directions, compiled. */
export interface Permissions {
  readonly read: Access;
  readonly write: Access;
}

/** Access to every document of every collection. */
export const EVERYTHING: Access = { everything: true, byCollection: new Map() };

/** Conditions per permission list, and characters per condition, a spec may hold. */
export const PERMISSION_LIMITS = { conditions: 1_000, conditionLength: 4_096 } as const;

/**
 * Parses and checks one permission condition.
 * @throws `DQL_*` errors for bad syntax; `DQL_INVALID_PERMISSION` for a condition that looks at
 * anything but `_id` (other fields, parameters, aggregates, quantifiers) or is too long.
 */
export function parseCondition(text: string): Expr {
  if (text.length > PERMISSION_LIMITS.conditionLength) {
    throw dqlError(
      'DQL_INVALID_PERMISSION',
      `a permission condition may be at most ${PERMISSION_LIMITS.conditionLength} characters`,
      { limit: 'conditionLength', max: String(PERMISSION_LIMITS.conditionLength) },
    );
  }
  const expr = parseExpression(text);
  walkExpr(expr, (e) => {
    const bad =
      e.kind === 'param'
        ? `parameter :${e.name}`
        : e.kind === 'quantified'
          ? `${e.quantifier} … SATISFIES`
          : e.kind === 'ident' && e.name !== '_id'
            ? `field ${e.name}`
            : e.kind === 'call' && AGGREGATES.has(e.name)
              ? `aggregate ${e.name}()`
              : undefined;
    if (bad !== undefined) {
      throw dqlError(
        'DQL_INVALID_PERMISSION',
        `a permission condition may only test _id and its sub-fields; found ${bad}`,
        { found: bad },
      );
    }
  });
  return expr;
}

/**
 * Compiles a configured permission direction (undefined: nothing permitted).
 * @throws as {@link parseCondition}; `DQL_INVALID_PERMISSION` beyond {@link PERMISSION_LIMITS}.
 */
export function compileAccess(spec: PermissionSpec | undefined): Access {
  if (spec?.everything === true) return EVERYTHING;
  const byCollection = new Map<string, Expr>();
  let count = 0;
  for (const [collection, queries] of Object.entries(spec?.queriesByCollection ?? {})) {
    count += queries.length;
    if (count > PERMISSION_LIMITS.conditions) {
      throw dqlError(
        'DQL_INVALID_PERMISSION',
        `a permission may hold at most ${PERMISSION_LIMITS.conditions} conditions`,
        { limit: 'conditions', max: String(PERMISSION_LIMITS.conditions) },
      );
    }
    const conds = queries.map(parseCondition);
    const first = conds[0];
    if (first === undefined) continue; // an empty list permits nothing
    byCollection.set(
      collection,
      conds
        .slice(1)
        .reduce<Expr>((left, right) => ({ kind: 'binary', op: 'OR', left, right }), first),
    );
  }
  return { everything: false, byCollection };
}

/** Compiles both directions of a configured permission. */
export function compilePermissions(spec: PermissionsSpec): Permissions {
  return { read: compileAccess(spec.read), write: compileAccess(spec.write) };
}

/** The condition of `access` on `collection`: `true` for all of it, undefined for none. */
export function accessCondition(access: Access, collection: string): Expr | true | undefined {
  if (access.everything) return true;
  if (collection.startsWith('system:')) return undefined;
  return access.byCollection.get(collection);
}

const predicates = new WeakMap<Expr, (doc: { _id: JsonValue }) => boolean>();

/** Whether `access` admits the document `id` of `collection`. */
export function permits(access: Access, collection: string, id: JsonValue): boolean {
  const cond = accessCondition(access, collection);
  if (cond === undefined) return false;
  if (cond === true) return true;
  let test = predicates.get(cond);
  if (test === undefined) {
    test = compilePredicate(cond);
    predicates.set(cond, test);
  }
  return test({ _id: id });
}
