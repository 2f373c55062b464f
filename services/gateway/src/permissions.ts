/**
 * Permissions of a bearer token, and their enforcement on DQL statements.
 *
 * @remarks
 * Permissions themselves (Ditto's shape: `everything`, or per collection DQL conditions on
 * `_id`) are compiled by `@lattice/dql` (`compileAccess`); because a condition may only look at
 * `_id`, an INSERT can be checked before it runs, and `SET _id` is an error anyway.
 *
 * Enforcement rewrites the statement's syntax tree (parsed with `@lattice/dql`, printed back
 * with its printer), never its text:
 * - SELECT (also EXPLAIN SELECT, observers, subscriptions): `WHERE (read) AND (where)`; a
 *   collection without read permission is refused.
 * - INSERT: every document's `_id` must satisfy the write condition (a document without `_id`
 *   gets a random id, which no condition can promise: refused unless writing everything).
 *   One refused document refuses the whole statement, before anything is written. Documents are
 *   object literals or arguments, and the checked `_id` replaces its expression in the literal,
 *   so the peer inserts the id that was checked.
 * - UPDATE, DELETE, EVICT: `WHERE (write) AND (where)` — they change only permitted documents
 *   (and report only those as mutated); a collection without write permission is refused.
 * - CREATE INDEX: write permission on the whole collection; DROP INDEX (whose statement names
 *   no collection): write permission on everything.
 * - System collections (`system:…`): read with read-everything only; writes are left to the
 *   peer (which refuses them) only for write-everything, refused otherwise.
 */
import {
  accessCondition,
  compileMutation,
  EVERYTHING,
  evaluate,
  parse,
  print,
  printExpression,
} from '@lattice/dql';
import type {
  Access,
  Expr,
  JsonValue,
  PermissionsSpec,
  SelectStatement,
  Statement,
} from '@lattice/dql';
import { gatewayError } from './errors.js';

/** Who a request comes from and what it may do. */
export interface Principal {
  /** The key's name (for messages and logs; never the token). */
  readonly name: string;
  readonly read: Access;
  readonly write: Access;
  /** When the token stops being accepted (ms since the epoch); undefined: never. */
  readonly expiresAt: number | undefined;
  /**
   * The permission as configured, for a peer that syncs under this key (the sync protocol
   * enforces it); undefined for full access.
   */
  readonly spec?: PermissionsSpec;
}

/** A principal that may do everything (plain API keys, playground mode). */
export function fullAccess(name: string, expiresAt?: number): Principal {
  return { name, read: EVERYTHING, write: EVERYTHING, expiresAt };
}

/** Whether `p` may read and write everything (statements then run unchanged). */
export function isFullAccess(p: Principal): boolean {
  return p.read.everything && p.write.everything;
}

function denied(p: Principal, what: string, collection?: string): Error {
  return gatewayError('GATEWAY_PERMISSION_DENIED', `key "${p.name}" may not ${what}`, {
    key: p.name,
    ...(collection === undefined ? {} : { collection }),
  });
}

/** `_id` in `cond` qualified with the statement's alias (which may itself be named `_id`). */
function qualify(cond: Expr, alias: string | undefined): Expr {
  if (alias === undefined) return cond;
  const go = (e: Expr): Expr => {
    switch (e.kind) {
      case 'ident':
        return e.name === '_id'
          ? { kind: 'field', object: { kind: 'ident', name: alias }, name: '_id' }
          : e;
      case 'field':
        return { ...e, object: go(e.object) };
      case 'index':
        return { ...e, object: go(e.object), index: go(e.index) };
      case 'array':
        return { ...e, items: e.items.map(go) };
      case 'object':
        return { ...e, entries: e.entries.map((x) => ({ key: x.key, value: go(x.value) })) };
      case 'unary':
        return { ...e, operand: go(e.operand) };
      case 'binary':
        return { ...e, left: go(e.left), right: go(e.right) };
      case 'in':
        return {
          ...e,
          operand: go(e.operand),
          target:
            e.target.kind === 'list'
              ? { kind: 'list', items: e.target.items.map(go) }
              : { kind: 'expr', expr: go(e.target.expr) },
        };
      case 'between':
        return { ...e, operand: go(e.operand), low: go(e.low), high: go(e.high) };
      case 'like':
        return { ...e, operand: go(e.operand), pattern: go(e.pattern) };
      case 'is':
        return { ...e, operand: go(e.operand) };
      case 'case':
        return {
          kind: 'case',
          ...(e.subject === undefined ? {} : { subject: go(e.subject) }),
          whens: e.whens.map((w) => ({ when: go(w.when), then: go(w.then) })),
          ...(e.else === undefined ? {} : { else: go(e.else) }),
        };
      case 'call':
        return { ...e, args: e.args.map(go) };
      default:
        // literal, missing (param and quantified never pass parseCondition)
        return e;
    }
  };
  return go(cond);
}

/** `cond AND where`, unless `where` already starts with exactly `cond` (idempotent). */
function restrictWhere(cond: Expr, where: Expr | undefined): Expr {
  if (where === undefined) return cond;
  const c = printExpression(cond);
  if (printExpression(where) === c) return where;
  if (where.kind === 'binary' && where.op === 'AND' && printExpression(where.left) === c) {
    return where;
  }
  return { kind: 'binary', op: 'AND', left: cond, right: where };
}

function restrictSelect(p: Principal, s: SelectStatement): SelectStatement {
  const cond = accessCondition(p.read, s.from.name);
  if (cond === undefined) throw denied(p, `read ${s.from.name}`, s.from.name);
  if (cond === true) return s;
  return { ...s, where: restrictWhere(qualify(cond, s.alias), s.where) };
}

function idOf(doc: JsonValue): JsonValue | undefined {
  return doc !== null && typeof doc === 'object' && !Array.isArray(doc) && '_id' in doc
    ? doc['_id']
    : undefined;
}

function containsBinary(v: JsonValue): boolean {
  if (v instanceof Uint8Array) return true;
  if (Array.isArray(v)) return v.some(containsBinary);
  if (v !== null && typeof v === 'object') return Object.values(v).some(containsBinary);
  return false;
}

function restrict(
  p: Principal,
  s: Statement,
  args: Readonly<Record<string, JsonValue>>,
): Statement {
  switch (s.kind) {
    case 'select':
      return restrictSelect(p, s);
    case 'insert': {
      const collection = s.into.name;
      const cond = accessCondition(p.write, collection);
      if (cond === undefined) throw denied(p, `write ${collection}`, collection);
      if (cond === true) return s;
      const intent = compileMutation(s, { args });
      if (intent.kind !== 'insert') return s; // not reached: an INSERT compiles to an insert
      const documents = s.documents.map((expr, i): Expr => {
        const id = idOf(intent.documents[i] as JsonValue);
        // The peer evaluates the documents again: what it inserts must be what was checked.
        // Arguments are fixed values; in an object literal the checked _id replaces its
        // expression (which could call clock()); other expressions are refused.
        if (expr.kind === 'param') return expr;
        if (expr.kind !== 'object' || id === undefined || containsBinary(id)) return expr;
        return {
          kind: 'object',
          entries: expr.entries.map((x) =>
            x.key === '_id' ? { key: '_id', value: { kind: 'literal', value: id } } : x,
          ),
        };
      });
      s.documents.forEach((expr, i) => {
        if (expr.kind !== 'param' && expr.kind !== 'object') {
          throw denied(
            p,
            `insert document ${i + 1} as a ${expr.kind} expression (give an object literal or an :argument)`,
            collection,
          );
        }
      });
      for (const doc of intent.documents) {
        const id = idOf(doc);
        if (id === undefined) {
          throw denied(
            p,
            `insert into ${collection} without an _id (only keys that may write everything may)`,
            collection,
          );
        }
        if (containsBinary(id) || evaluate(cond, { _id: id }) !== true) {
          throw denied(p, `write ${collection} document ${JSON.stringify(id)}`, collection);
        }
      }
      return { ...s, documents };
    }
    case 'update': {
      const cond = accessCondition(p.write, s.collection.name);
      if (cond === undefined) throw denied(p, `write ${s.collection.name}`, s.collection.name);
      return cond === true ? s : { ...s, where: restrictWhere(cond, s.where) };
    }
    case 'delete':
    case 'evict': {
      const cond = accessCondition(p.write, s.collection);
      if (cond === undefined) throw denied(p, `write ${s.collection}`, s.collection);
      return cond === true ? s : { ...s, where: restrictWhere(cond, s.where) };
    }
    case 'createIndex':
      if (accessCondition(p.write, s.collection) !== true) {
        throw denied(p, `create an index on ${s.collection} (needs write on all of it)`);
      }
      return s;
    case 'dropIndex':
      if (!p.write.everything) throw denied(p, 'drop an index (needs write on everything)');
      return s;
    case 'explain':
      return { kind: 'explain', statement: restrict(p, s.statement, args) as typeof s.statement };
  }
}

/**
 * The statement `p` may run in place of `statement`: unchanged for full access, else restricted
 * as the module comment says.
 * @throws `GATEWAY_PERMISSION_DENIED`; DQL errors for a statement that does not parse.
 */
export function authorizeStatement(
  p: Principal,
  statement: string,
  args: Readonly<Record<string, JsonValue>>,
): string {
  if (isFullAccess(p)) return statement;
  const stmt = parse(statement);
  const out = restrict(p, stmt, args);
  return out === stmt ? statement : print(out);
}

/**
 * Whether a SELECT (a subscription's statement) lies within what `p` may read: restricting it
 * changes nothing. Statements that do not parse or are not SELECTs are not.
 */
export function withinRead(p: Principal, statement: string): boolean {
  if (p.read.everything) return true;
  try {
    const stmt = parse(statement);
    if (stmt.kind !== 'select') return false;
    return print(restrictSelect(p, stmt)) === print(stmt);
  } catch {
    // Unparsable or unreadable: not within the permission; nothing to report to the caller.
    return false;
  }
}
