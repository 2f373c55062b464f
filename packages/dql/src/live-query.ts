/**
 * Live queries: maintain the result of a SELECT incrementally as documents change.
 *
 * @remarks
 * A {@link LiveQuery} keeps the current result window (after ORDER BY, OFFSET and LIMIT) and,
 * for each changed document (before and after, either absent), says how the result changes:
 * items inserted, removed, updated in place or moved, with indexes. It never guesses: when a
 * change cannot be resolved from the window alone — a row leaves a full LIMIT window and the
 * next row is unknown, a change happens before an OFFSET window, or the query aggregates or is
 * DISTINCT — it answers `requery`, and the caller runs {@link LiveQuery.load} again, which
 * returns the changes between the old and the new result.
 *
 * Change indexes: `removed` indexes refer to the old result, `inserted` and `updated` to the new
 * one, `moved` gives both.
 */
import { executePlan, compareRows, rowFunctions } from './planner.js';
import type { DocumentSource, ExecuteOptions, OutRow, QueryPlan } from './planner.js';
import { getField, valueKey, valuesEqual } from './values.js';
import type { Document, JsonValue } from './values.js';

/** One document's change: its state before and after (absent: did not / does not exist). */
export interface DocumentChange {
  readonly before?: Document;
  readonly after?: Document;
}

/** A change to the items of a result. */
export type ItemChange =
  | { readonly kind: 'inserted'; readonly index: number; readonly item: JsonValue }
  | { readonly kind: 'removed'; readonly index: number; readonly item: JsonValue }
  | { readonly kind: 'updated'; readonly index: number; readonly item: JsonValue }
  | {
      readonly kind: 'moved';
      readonly from: number;
      readonly to: number;
      readonly item: JsonValue;
    };

/** What a document change does to a live query. */
export type LiveUpdate =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'changed'; readonly changes: readonly ItemChange[] }
  | { readonly kind: 'requery'; readonly reason: string };

interface LiveRow extends OutRow {
  readonly id: string;
}

/** Ids on a longest subsequence whose old positions increase (those need not move). */
function stayingIds(rows: readonly (readonly [string, number])[]): Set<string> {
  const tails: number[] = [];
  const prev: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const v = (rows[i] as readonly [string, number])[1];
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((rows[tails[mid] as number] as readonly [string, number])[1] < v) lo = mid + 1;
      else hi = mid;
    }
    prev[i] = lo > 0 ? (tails[lo - 1] as number) : -1;
    tails[lo] = i;
  }
  const out = new Set<string>();
  for (
    let k = tails.length > 0 ? (tails[tails.length - 1] as number) : -1;
    k >= 0;
    k = prev[k] as number
  ) {
    out.add((rows[k] as readonly [string, number])[0]);
  }
  return out;
}

/** The changes that turn `before` into `after` (rows identified by id). */
function diff(before: readonly LiveRow[], after: readonly LiveRow[]): ItemChange[] {
  const oldIndex = new Map(before.map((r, i) => [r.id, i]));
  const newIndex = new Map(after.map((r, i) => [r.id, i]));
  const changes: ItemChange[] = [];
  before.forEach((r, i) => {
    if (!newIndex.has(r.id)) changes.push({ kind: 'removed', index: i, item: r.item });
  });
  // Rows present in both that are outside a longest increasing run of old positions moved.
  const stay = stayingIds(
    after
      .filter((r) => oldIndex.has(r.id))
      .map((r) => [r.id, oldIndex.get(r.id) as number] as const),
  );
  after.forEach((r, i) => {
    const o = oldIndex.get(r.id);
    if (o === undefined) {
      changes.push({ kind: 'inserted', index: i, item: r.item });
      return;
    }
    const old = before[o] as LiveRow;
    if (!stay.has(r.id)) changes.push({ kind: 'moved', from: o, to: i, item: r.item });
    else if (!valuesEqual(old.item, r.item))
      changes.push({ kind: 'updated', index: i, item: r.item });
  });
  // A move that also changed the item reports both.
  for (const c of changes) {
    if (c.kind === 'moved' && !valuesEqual((before[c.from] as LiveRow).item, c.item)) {
      changes.push({ kind: 'updated', index: c.to, item: c.item });
    }
  }
  return changes;
}

/** An incrementally maintained SELECT result. */
export class LiveQuery {
  readonly #plan: QueryPlan;
  readonly #options: ExecuteOptions;
  readonly #fns: ReturnType<typeof rowFunctions>;
  readonly #incremental: boolean;
  #rows: LiveRow[] = [];
  /** Whether rows may exist after the window (only when the window is full). */
  #more = false;

  constructor(plan: QueryPlan, options: ExecuteOptions = {}) {
    this.#plan = plan;
    this.#options = options;
    this.#fns = rowFunctions(plan, options);
    this.#incremental = plan.aggregation === undefined && !plan.distinct;
  }

  /** The current items. */
  get items(): JsonValue[] {
    return this.#rows.map((r) => r.item);
  }

  /** (Re-)runs the query over `source`; returns the changes from the previous result. */
  load(source: DocumentSource): readonly ItemChange[] {
    const old = this.#rows;
    if (!this.#incremental) {
      const items = executePlan(this.#plan, source, this.#options).items;
      this.#rows = items.map((item, i) => ({
        id: `#${i}:${valueKey(item)}`,
        tie: i,
        keys: [],
        item,
      }));
    } else {
      const limit = this.#plan.limit;
      const docs = executePlan(
        {
          ...this.#plan,
          projection: [{ kind: 'star' }],
          ...(limit === undefined ? {} : { limit: limit + 1 }),
        },
        source,
        this.#options,
      ).items as Document[];
      this.#more = limit !== undefined && docs.length > limit;
      this.#rows = docs.slice(0, limit ?? docs.length).map((d) => this.#row(d));
    }
    return diff(old, this.#rows);
  }

  #row(doc: Document): LiveRow {
    return { ...this.#fns.row(doc), id: valueKey(getField(doc, '_id')) };
  }

  #cmp(a: OutRow, b: OutRow): number {
    return compareRows(a, b, this.#fns.directions);
  }

  /** What one document change does to the result; applies it unless the answer is `requery`. */
  apply(change: DocumentChange): LiveUpdate {
    const b =
      change.before && this.#fns.accepts(change.before) ? this.#row(change.before) : undefined;
    const a = change.after && this.#fns.accepts(change.after) ? this.#row(change.after) : undefined;
    if (!a && !b) return { kind: 'unchanged' };
    if (!this.#incremental) return { kind: 'requery', reason: 'aggregate or DISTINCT query' };
    const id = a?.id ?? (b as LiveRow).id;
    const rows = this.#rows;
    const at = rows.findIndex((r) => r.id === id);
    const limit = this.#plan.limit ?? Infinity;
    if (this.#plan.offset > 0) {
      const first = rows[0];
      if (!first) return { kind: 'requery', reason: 'change near an OFFSET window with no rows' };
      const bLow = b !== undefined && at < 0 && this.#cmp(b, first) < 0;
      const aLow = a !== undefined && this.#cmp(a, first) < 0;
      if (bLow && aLow) return { kind: 'unchanged' };
      if (bLow || aLow) return { kind: 'requery', reason: 'change before the OFFSET window' };
    }
    const next = rows.slice();
    if (at >= 0) next.splice(at, 1);
    let more = this.#more;
    if (a) {
      const last = next[next.length - 1];
      const fits = !more || (last !== undefined && this.#cmp(a, last) < 0);
      if (fits && limit > 0) {
        let i = 0;
        while (i < next.length && this.#cmp(next[i] as LiveRow, a) < 0) i++;
        next.splice(i, 0, a);
      } else {
        more = true;
      }
    }
    if (next.length > limit) {
      next.pop();
      more = true;
    }
    if (next.length < rows.length && more)
      return { kind: 'requery', reason: 'a row left a full LIMIT window' };
    this.#rows = next;
    this.#more = more && next.length === limit;
    const changes = diff(rows, next);
    return changes.length === 0 ? { kind: 'unchanged' } : { kind: 'changed', changes };
  }
}
