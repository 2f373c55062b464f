import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  compareValues,
  compilePredicate,
  executePlan,
  executePlanAsync,
  explain,
  MemorySource,
  parse,
  planQuery,
} from '@lattice/dql';
import type {
  AsyncDocumentSource,
  Document,
  DocumentSource,
  IndexInfo,
  JsonValue,
  SelectStatement,
} from '@lattice/dql';

/** An async view of a synchronous source, yielding to the event loop between documents. */
function asAsync(src: DocumentSource): AsyncDocumentSource {
  async function* gen(it: Iterable<Document>): AsyncIterable<Document> {
    for (const d of it) {
      await Promise.resolve();
      yield d;
    }
  }
  return {
    capabilities: src.capabilities,
    scan: (c) => gen(src.scan(c)),
    get: (c, ids) => gen(src.get(c, ids)),
    indexScan: (r) => gen(src.indexScan(r)),
  };
}

const sel = (t: string): SelectStatement => parse(t) as SelectStatement;
const idx = (name: string, ...path: string[]): IndexInfo => ({ name, collection: 'c', path });

describe('planner', () => {
  it('uses ids for USE IDS and _id = / _id IN', () => {
    expect(planQuery(sel("SELECT * FROM c WHERE _id = 'x' AND a = 1")).access).toEqual({
      kind: 'ids',
      ids: ['x'],
    });
    const p = planQuery(sel('SELECT * FROM c WHERE _id IN :ids'), {
      args: { ids: ['a', 'b', 'a', null] },
    });
    expect(p.access).toEqual({ kind: 'ids', ids: ['a', 'b'] });
    expect(p.residual).toBeUndefined();
  });
  it('uses an index for equality and ranges on nested paths, keeping the rest as residual', () => {
    const p = planQuery(sel("SELECT * FROM c WHERE m.k.v >= 3 AND 10 > m.k.v AND x LIKE 'a%'"), {
      indexes: [idx('ix', 'm', 'k', 'v')],
    });
    expect(p.access).toEqual({
      kind: 'indexScan',
      index: 'ix',
      path: ['m', 'k', 'v'],
      range: {
        kind: 'range',
        type: 'number',
        lower: { value: 3, inclusive: true },
        upper: { value: 10, inclusive: false },
      },
    });
    expect(p.residual).toEqual({
      kind: 'like',
      not: false,
      caseInsensitive: false,
      operand: { kind: 'ident', name: 'x' },
      pattern: { kind: 'literal', value: 'a%' },
    });
    const q = planQuery(
      sel("SELECT * FROM c WHERE color IN ('red', 'blue') ORDER BY color LIMIT 2"),
      { indexes: [idx('ic', 'color')] },
    );
    expect(q.access).toMatchObject({
      kind: 'indexScan',
      range: { kind: 'eq', values: ['blue', 'red'] },
    });
    expect(q.orderFromAccess).toBe(true);
    expect(explain(q)).toBe(
      [
        'query c',
        "  access: index ic color IN ['blue', 'red']",
        '  project: *',
        '  order: color ASC, _id ASC (from access path)',
        '  offset 0, limit 2 (stops early)',
      ].join('\n'),
    );
  });
  it('plans nothing for comparisons with NULL', () => {
    expect(
      planQuery(sel('SELECT * FROM c WHERE a = NULL'), { indexes: [idx('i', 'a')] }).access.kind,
    ).toBe('empty');
  });
  it('explains aggregation', () => {
    const text = explain(
      planQuery(
        sel(
          'SELECT a, COUNT(*) AS n FROM c WHERE b > 1 GROUP BY a HAVING COUNT(*) > 1 ORDER BY n DESC',
        ),
      ),
    );
    expect(text).toContain('group by: a');
    expect(text).toContain('aggregates: count(*)');
    expect(text).toContain('having: count(*) > 1');
    expect(text).toContain('filter: b > 1');
  });
});

const scalar = fc.oneof(
  fc.integer({ min: 0, max: 6 }),
  fc.constantFrom('a', 'b', 'c'),
  fc.constant(null),
  fc.boolean(),
);
const doc = fc.record(
  { a: scalar, b: fc.record({ c: scalar }, { requiredKeys: [] }), d: scalar },
  { requiredKeys: [] },
);
const docs = fc
  .uniqueArray(fc.record({ id: fc.integer({ min: 0, max: 30 }), d: doc }), {
    selector: (x) => x.id,
    maxLength: 25,
  })
  .map((xs) => xs.map((x): Document => ({ _id: x.id, ...x.d })));
const path = fc.constantFrom('a', 'b.c', 'd', '_id');
const lit = scalar.map((v) => (typeof v === 'string' ? `'${v}'` : String(v).toUpperCase()));
const atom = fc.oneof(
  fc
    .tuple(path, fc.constantFrom('=', '<', '<=', '>', '>=', '!='), lit)
    .map(([p, op, v]) => `${p} ${op} ${v}`),
  fc.tuple(lit, fc.constantFrom('=', '<', '>='), path).map(([v, op, p]) => `${v} ${op} ${p}`),
  fc.tuple(path, fc.array(lit, { maxLength: 3 })).map(([p, vs]) => `${p} IN [${vs.join(', ')}]`),
  fc.tuple(path, lit, lit).map(([p, x, y]) => `${p} BETWEEN ${x} AND ${y}`),
  fc.tuple(path).map(([p]) => `${p} IS MISSING`),
);
const where = fc
  .array(atom, { minLength: 1, maxLength: 3 })
  .chain((as) => fc.constantFrom(as.join(' AND '), as.join(' OR ')));
const order = fc.option(
  fc.tuple(path, fc.constantFrom('ASC', 'DESC')).map(([p, d]) => ` ORDER BY ${p} ${d}`),
  { nil: '' },
);
const window = fc.option(
  fc
    .tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 3 }))
    .map(([l, o]) => ` LIMIT ${l} OFFSET ${o}`),
  { nil: '' },
);
const indexes = fc.subarray([idx('ia', 'a'), idx('ibc', 'b', 'c'), idx('id', 'd')]);

describe('planner result equals a naive full scan', () => {
  test.prop([docs, where, order, window, indexes, fc.boolean()], { numRuns: 300 })(
    'random documents, predicates, orders and indexes',
    async (ds, w, o, lim, ixs, orderedSource) => {
      const stmt = sel(`SELECT * FROM c WHERE ${w}${o}${lim}`);
      const fast = new MemorySource({ orderedScan: orderedSource, orderedIndex: orderedSource });
      const slow = new MemorySource({ orderedScan: false, orderedIndex: false });
      for (const d of ds) {
        fast.put('c', d);
        slow.put('c', d);
      }
      const got = executePlan(planQuery(stmt, { indexes: ixs }), fast).items;
      const want = executePlan(planQuery(stmt), slow).items;
      expect(got).toEqual(want);
      const viaAsync = await executePlanAsync(planQuery(stmt, { indexes: ixs }), asAsync(fast));
      expect(viaAsync.items).toEqual(want);
      if (o === '' && lim === '') {
        const pred = compilePredicate(stmt.where);
        const naive = ds.filter(pred).sort((x, y) => compareValues(x._id, y._id)) as JsonValue[];
        expect(got).toEqual(naive);
      }
    },
  );
});
