/**
 * Mutation intents and subscriptions: what the merge service consumes.
 *
 * @remarks
 * The DQL package knows nothing of CRDT internals. An INSERT becomes the documents to write and
 * the conflict mode; UPDATE, DELETE and EVICT become a selection plan (a SELECT * with the
 * WHERE) plus, for UPDATE, the APPLY, SET and UNSET operations whose values are evaluated per
 * selected document with {@link resolveUpdate}. The merge service turns them into operations.
 */
import type { ApplyOp, ConflictMode, Expr, SelectStatement, Statement, TypeDef } from './ast.js';
import { dqlError } from './errors.js';
import { compileExpr, compilePredicate } from './evaluator.js';
import { parse } from './parser.js';
import { bindParams, explain, planQuery } from './planner.js';
import type { IndexInfo, QueryPlan } from './planner.js';
import { isObject, isValidId, MISSING } from './values.js';
import type { Document, JsonValue } from './values.js';

/** Deepest nesting of a value inserted or assigned (objects and arrays). */
export const MAX_VALUE_DEPTH = 128;

/** INSERT: write these documents. */
export interface InsertIntent {
  readonly kind: 'insert';
  readonly collection: string;
  readonly typedefs: readonly TypeDef[];
  /** Documents as written; one without `_id` gets one from the merge service. */
  readonly documents: readonly Document[];
  /** The ON ID CONFLICT mode (FAIL when not given). */
  readonly conflict: ConflictMode;
  /** INITIAL DOCUMENTS: seed data that never overrides existing data. */
  readonly initial: boolean;
}

/** UPDATE: for every selected document, APPLY, then SET, then UNSET. */
export interface UpdateIntent {
  readonly kind: 'update';
  readonly collection: string;
  readonly typedefs: readonly TypeDef[];
  readonly selection: QueryPlan;
  readonly apply: readonly ApplyOp[];
  readonly set: readonly { readonly path: readonly string[]; readonly value: Expr }[];
  readonly unset: readonly (readonly string[])[];
}

/** DELETE (tombstones that sync) or EVICT (local removal only). */
export interface RemoveIntent {
  readonly kind: 'delete' | 'evict';
  readonly collection: string;
  readonly selection: QueryPlan;
}

/** Any mutation intent. */
export type MutationIntent = InsertIntent | UpdateIntent | RemoveIntent;

/** The concrete changes of an UPDATE to one document. */
export interface ResolvedUpdate {
  readonly apply: readonly (
    | {
        readonly op: 'INCREMENT' | 'PN_INCREMENT';
        readonly path: readonly string[];
        readonly by: number;
      }
    | { readonly op: 'RESTART'; readonly path: readonly string[]; readonly with: number }
  )[];
  /** Values to write; MISSING results are left out. */
  readonly set: readonly { readonly path: readonly string[]; readonly value: JsonValue }[];
  readonly unset: readonly (readonly string[])[];
}

function checkDepth(v: JsonValue, depth = 0): void {
  if (depth > MAX_VALUE_DEPTH) {
    throw dqlError('DQL_LIMIT', `value nested deeper than ${MAX_VALUE_DEPTH}`, {
      limit: 'valueDepth',
      max: String(MAX_VALUE_DEPTH),
    });
  }
  if (Array.isArray(v)) for (const x of v as readonly JsonValue[]) checkDepth(x, depth + 1);
  else if (isObject(v)) for (const x of Object.values(v)) checkDepth(x, depth + 1);
}

function overlap(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function selectAll(collection: string, where: Expr | undefined): SelectStatement {
  return {
    kind: 'select',
    distinct: false,
    projection: [{ kind: 'star' }],
    from: { name: collection, typedefs: [] },
    ...(where === undefined ? {} : { where }),
    groupBy: [],
    orderBy: [],
  };
}

/** Options of {@link compileMutation}. */
export interface MutationOptions {
  readonly args?: Readonly<Record<string, JsonValue>>;
  readonly indexes?: readonly IndexInfo[];
  readonly now?: () => number;
}

/** Compiles INSERT, UPDATE, DELETE or EVICT (text or AST) to an intent. */
export function compileMutation(
  statement: Statement | string,
  options: MutationOptions = {},
): MutationIntent {
  const s = typeof statement === 'string' ? parse(statement) : statement;
  const args = options.args ?? {};
  switch (s.kind) {
    case 'insert': {
      const documents = s.documents.map((e, i) => {
        const v = compileExpr(e, { args, ...(options.now ? { now: options.now } : {}) })({
          doc: {},
          vars: [],
        });
        if (!isObject(v)) {
          throw dqlError('DQL_INVALID_DOCUMENT', `document ${i + 1} is not an object`, {
            index: String(i),
          });
        }
        if (Object.hasOwn(v, '_id') && !isValidId(v['_id'])) {
          throw dqlError(
            'DQL_INVALID_DOCUMENT',
            `document ${i + 1}: _id must be a string, number or object`,
            { index: String(i) },
          );
        }
        checkDepth(v);
        return v;
      });
      return {
        kind: 'insert',
        collection: s.into.name,
        typedefs: s.into.typedefs,
        documents,
        conflict: s.initial ? 'DO_NOTHING' : (s.onConflict ?? 'FAIL'),
        initial: s.initial,
      };
    }
    case 'update': {
      const paths = [...s.apply.map((a) => a.path), ...s.set.map((x) => x.path), ...s.unset];
      for (let i = 0; i < paths.length; i++) {
        for (let j = i + 1; j < paths.length; j++) {
          if (overlap(paths[i] as string[], paths[j] as string[])) {
            throw dqlError(
              'DQL_INVALID_UPDATE',
              `UPDATE touches ${(paths[i] as string[]).join('.')} and ${(paths[j] as string[]).join('.')}, which overlap`,
              {
                path: (paths[j] as string[]).join('.'),
              },
            );
          }
        }
      }
      return {
        kind: 'update',
        collection: s.collection.name,
        typedefs: s.collection.typedefs,
        selection: planQuery(selectAll(s.collection.name, s.where), options),
        apply: s.apply.map((a): ApplyOp =>
          a.op === 'RESTART'
            ? a.with
              ? { ...a, with: bindParams(a.with, args) }
              : a
            : { ...a, by: bindParams(a.by, args) },
        ),
        set: s.set.map((x) => ({ path: x.path, value: bindParams(x.value, args) })),
        unset: s.unset,
      };
    }
    case 'delete':
    case 'evict':
      return {
        kind: s.kind,
        collection: s.collection,
        selection: planQuery(selectAll(s.collection, s.where), options),
      };
    default:
      throw dqlError('DQL_INVALID_QUERY', `${s.kind} is not a mutation`, { statement: s.kind });
  }
}

/** Evaluates an update intent's values against one selected document. */
export function resolveUpdate(
  intent: UpdateIntent,
  doc: Document,
  options: { readonly now?: () => number } = {},
): ResolvedUpdate {
  const eo = options.now ? { now: options.now } : {};
  const ev = (e: Expr) => compileExpr(e, eo)({ doc, vars: [] });
  const amount = (e: Expr, what: string): number => {
    const v = ev(e);
    if (typeof v !== 'number')
      throw dqlError('DQL_INVALID_UPDATE', `${what} needs a number`, { clause: 'APPLY' });
    return v;
  };
  const set: { path: readonly string[]; value: JsonValue }[] = [];
  for (const x of intent.set) {
    const v = ev(x.value);
    if (v === MISSING) continue;
    checkDepth(v);
    set.push({ path: x.path, value: v });
  }
  return {
    apply: intent.apply.map((a) =>
      a.op === 'RESTART'
        ? {
            op: 'RESTART' as const,
            path: a.path,
            with: a.with ? amount(a.with, 'RESTART WITH') : 0,
          }
        : { op: a.op, path: a.path, by: amount(a.by, `${a.op} BY`) },
    ),
    set,
    unset: intent.unset,
  };
}

/** A validated subscription: which documents of a collection it replicates. */
export interface Subscription {
  readonly collection: string;
  /** The WHERE with arguments bound, if any. */
  readonly where?: Expr;
  readonly matches: (doc: Document) => boolean;
}

function refuse(reason: string, message: string): never {
  throw dqlError('DQL_INVALID_SUBSCRIPTION', `not a valid subscription: ${message}`, { reason });
}

/**
 * Validates a subscription (`SELECT * FROM c [WHERE …]`) and returns its matcher.
 * @remarks Refused, each with its own `reason`: non-SELECT (`statement`), projections
 * (`projection`), DISTINCT (`distinct`), GROUP BY/HAVING/aggregates (`group_by`), USE IDS
 * (`use_ids`), ORDER BY/LIMIT/OFFSET (`order_limit`: what a peer receives is the union of
 * what matches, which has no order or window), and system collections (`system`: computed by
 * each peer, never synced). Joins do not parse (`DQL_UNSUPPORTED`).
 */
export function validateSubscription(
  statement: Statement | string,
  args: Readonly<Record<string, JsonValue>> = {},
): Subscription {
  const s = typeof statement === 'string' ? parse(statement) : statement;
  if (s.kind !== 'select')
    refuse('statement', `only SELECT can be a subscription, got ${s.kind.toUpperCase()}`);
  if (s.from.name.startsWith('system:'))
    refuse('system', `${s.from.name} is a system collection: it is local to each peer`);
  if (s.distinct) refuse('distinct', 'DISTINCT is not allowed');
  if (s.projection.length !== 1 || s.projection[0]?.kind !== 'star')
    refuse('projection', 'subscriptions select whole documents: use SELECT *');
  if (s.groupBy.length > 0 || s.having) refuse('group_by', 'GROUP BY and HAVING are not allowed');
  if (s.useIds) refuse('use_ids', 'USE IDS is not allowed; use WHERE _id IN …');
  if (s.orderBy.length > 0 || s.limit || s.offset)
    refuse('order_limit', 'ORDER BY, LIMIT and OFFSET are not allowed');
  const where = s.where && bindParams(s.where, args);
  return {
    collection: s.from.name,
    ...(where === undefined ? {} : { where }),
    matches: compilePredicate(where, s.alias === undefined ? {} : { alias: s.alias }),
  };
}

/** Options of {@link explainStatement}. */
export type ExplainOptions = MutationOptions;

/**
 * The EXPLAIN text of a statement (or of the statement inside `EXPLAIN …`).
 * @remarks SELECT prints its plan; UPDATE, DELETE and EVICT print their selection plan under a
 * line naming the mutation; INSERT names the collection, document count and conflict mode.
 */
export function explainStatement(
  statement: Statement | string,
  options: ExplainOptions = {},
): string {
  const parsed = typeof statement === 'string' ? parse(statement) : statement;
  const s = parsed.kind === 'explain' ? parsed.statement : parsed;
  switch (s.kind) {
    case 'select':
      return explain(planQuery(s, options));
    case 'insert': {
      const i = compileMutation(s, options) as InsertIntent;
      return `insert ${i.collection}: ${i.documents.length} document(s), on id conflict ${i.conflict}${i.initial ? ' (initial)' : ''}`;
    }
    case 'update': {
      const u = compileMutation(s, options) as UpdateIntent;
      const ops = [
        ...u.apply.map((a) => `apply ${a.path.join('.')} ${a.op}`),
        ...u.set.map((x) => `set ${x.path.join('.')}`),
        ...u.unset.map((p) => `unset ${p.join('.')}`),
      ];
      return `update ${u.collection}: ${ops.join(', ')}\n` + indent(explain(u.selection));
    }
    case 'delete':
    case 'evict': {
      const r = compileMutation(s, options) as RemoveIntent;
      return `${r.kind} ${r.collection}\n` + indent(explain(r.selection));
    }
    default:
      throw dqlError('DQL_UNSUPPORTED', `EXPLAIN does not apply to ${s.kind}`, {
        statement: s.kind,
      });
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n');
}
