/**
 * Streaming query execution: the plans whose result order is the order the store reads
 * documents in, executed lazily, so a cursor pages through the engine instead of holding the
 * whole result.
 *
 * @remarks
 * Streamed (the items and their order are exactly those of `executePlan`, which the property
 * tests check):
 * - a full scan without ORDER BY (`_id` order, the value keys' order);
 * - an index scan or an index-ordered scan whose ORDER BY the index serves (index order, ties in
 *   `_id` order in the sort's direction, as index keys end with the `_id`);
 * - an index scan without ORDER BY (`_id` order): the matching `_id`s are read from the index
 *   keys (keys only), sorted, and the documents fetched a chunk at a time. This one holds every
 *   matching `_id` (tens of bytes each) for the life of the cursor, not the documents.
 *
 * Anything that must see every document before it can answer (GROUP BY, aggregates, DISTINCT, a
 * sort the access path does not give, `USE IDS`, OR-unions) is not streamed: the store executes
 * it in full, bounded by `maxResultItems`. The residual filter, projection, OFFSET and LIMIT
 * apply per document, as in `executePlan`.
 */
import { compilePredicate, compileProjection, MISSING, valueAtPath } from '@lattice/dql';
import type { Document, EvalOptions, IndexScanRequest, JsonValue, QueryPlan } from '@lattice/dql';

/** The reads a streamed query needs from the store. */
export interface StreamSource {
  /** Live documents of a collection in `_id` order (descending when `reverse`). */
  scan(collection: string, reverse: boolean): Iterable<Document>;
  /** Documents in an index range, in index order (`direction`). */
  indexScan(request: IndexScanRequest): Iterable<Document>;
  /** Documents in an index range, in ascending `_id` order. */
  indexScanById(request: IndexScanRequest): Iterable<Document>;
  /** Every document an index holds, in index order (descending when `reverse`). */
  indexAll(collection: string, index: string, reverse: boolean): Iterable<Document>;
}

/** The lazily computed items of `plan`, or undefined when it cannot be streamed. */
export function streamPlan(
  plan: QueryPlan,
  source: StreamSource,
  options: { readonly now?: () => number } = {},
): Generator<JsonValue> | undefined {
  if (plan.aggregation || plan.distinct) return undefined;
  const docs = orderedDocs(plan, source);
  return docs && pipeline(plan, docs, options);
}

function orderedDocs(plan: QueryPlan, source: StreamSource): Iterable<Document> | undefined {
  const a = plan.access;
  const collection = plan.collection;
  const desc = plan.orderBy.length === 1 && plan.orderBy[0]?.direction === 'DESC';
  switch (a.kind) {
    case 'fullScan':
      return plan.orderFromAccess ? source.scan(collection, false) : undefined;
    case 'indexScan': {
      const request: IndexScanRequest = {
        collection,
        index: a.index,
        path: a.path,
        range: a.range,
        direction: desc ? 'desc' : 'asc',
      };
      if (plan.orderFromAccess) return source.indexScan(request);
      return plan.orderBy.length === 0 ? source.indexScanById(request) : undefined;
    }
    case 'indexOrder': {
      if (!plan.orderFromAccess) return undefined;
      // Every indexed value in collation order, then the documents without the field (MISSING
      // sorts last); descending: the reverse, those without the field first.
      const path = a.path;
      const missing = (reverse: boolean): Iterable<Document> =>
        filter(source.scan(collection, reverse), (d) => valueAtPath(d, path) === MISSING);
      return desc
        ? concat(missing(true), source.indexAll(collection, a.index, true))
        : concat(source.indexAll(collection, a.index, false), missing(false));
    }
    default:
      return undefined;
  }
}

function* pipeline(
  plan: QueryPlan,
  docs: Iterable<Document>,
  options: { readonly now?: () => number },
): Generator<JsonValue> {
  const base: EvalOptions = {
    ...(plan.alias === undefined ? {} : { alias: plan.alias }),
    ...(options.now ? { now: options.now } : {}),
  };
  const where = compilePredicate(plan.residual, base);
  const project = projector(plan, base);
  let skip = plan.offset;
  let left = plan.limit ?? Infinity;
  if (left <= 0) return;
  for (const doc of docs) {
    if (!where(doc)) continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    yield project(doc);
    if (--left <= 0) return;
  }
}

/** A document's result item (as `executePlan` projects it). */
function projector(plan: QueryPlan, base: EvalOptions): (doc: Document) => JsonValue {
  const project = compileProjection(plan.projection, base);
  return (doc) => project({ doc, vars: [] });
}

function* filter<T>(items: Iterable<T>, keep: (item: T) => boolean): Generator<T> {
  for (const item of items) if (keep(item)) yield item;
}

function* concat<T>(...parts: Iterable<T>[]): Generator<T> {
  for (const p of parts) yield* p;
}
