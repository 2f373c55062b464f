// Index unions for OR, index order for ORDER BY alone: plan shapes, EXPLAIN, early stopping,
// and the property that an indexed plan returns exactly what the plain full scan returns.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
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
  IndexScanRequest,
  JsonValue,
  SelectStatement,
  SourceCapabilities,
} from '@lattice/dql';

const sel = (t: string): SelectStatement => parse(t) as SelectStatement;
const idx = (name: string, ...path: string[]): IndexInfo => ({ name, collection: 'c', path });

/** A source that records its calls and how many documents it handed out. */
class RecordingSource implements DocumentSource {
  readonly calls: string[] = [];
  read = 0;
  readonly #inner: MemorySource;
  readonly capabilities: SourceCapabilities;

  constructor(docs: readonly Document[], capabilities?: SourceCapabilities) {
    this.#inner = new MemorySource(capabilities);
    this.capabilities = this.#inner.capabilities;
    for (const d of docs) this.#inner.put('c', d);
  }

  *#count(docs: Iterable<Document>): Iterable<Document> {
    for (const d of docs) {
      this.read++;
      yield d;
    }
  }

  scan(collection: string): Iterable<Document> {
    this.calls.push('scan');
    return this.#count(this.#inner.scan(collection));
  }

  get(collection: string, ids: readonly JsonValue[]): Iterable<Document> {
    this.calls.push('get');
    return this.#count(this.#inner.get(collection, ids));
  }

  indexScan(r: IndexScanRequest): Iterable<Document> {
    this.calls.push(
      `index ${r.index} ${r.range.kind === 'eq' ? 'eq' : r.range.type} ${r.direction}`,
    );
    return this.#count(this.#inner.indexScan(r));
  }
}

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

describe('OR served by an index union', () => {
  const ixs = [idx('ia', 'a'), idx('ib', 'b', 'c')];
  it('unions the branches and consumes the OR when every branch is exact', () => {
    const p = planQuery(sel("SELECT * FROM c WHERE a = 1 OR b.c > 2 OR _id = 'k'"), {
      indexes: ixs,
    });
    expect(p.access).toEqual({
      kind: 'union',
      branches: [
        { kind: 'indexScan', index: 'ia', path: ['a'], range: { kind: 'eq', values: [1] } },
        {
          kind: 'indexScan',
          index: 'ib',
          path: ['b', 'c'],
          range: { kind: 'range', type: 'number', lower: { value: 2, inclusive: false } },
        },
        { kind: 'ids', ids: ['k'] },
      ],
    });
    expect(p.residual).toBeUndefined();
    expect(explain(p)).toBe(
      [
        'query c',
        '  access: union of 3 (each document once, by _id)',
        '    - index ia a = 1',
        '    - index ib 2 < b.c (number values)',
        "    - ids ['k']",
        '  project: *',
        '  order: _id ASC (sort)',
      ].join('\n'),
    );
  });
  it('keeps the OR as the residual when a branch does not cover its whole disjunct', () => {
    const p = planQuery(sel("SELECT * FROM c WHERE (a = 1 AND x LIKE 'q%') OR a IN [3, 4]"), {
      indexes: ixs,
    });
    expect(p.access.kind).toBe('union');
    expect(explain(p)).toContain("filter: a = 1 AND x LIKE 'q%' OR a IN [3, 4]");
  });
  it('falls back to a full scan when one disjunct has no index', () => {
    const p = planQuery(sel('SELECT * FROM c WHERE a = 1 OR z = 2'), { indexes: ixs });
    expect(p.access).toEqual({ kind: 'fullScan' });
    expect(explain(p)).toContain('filter: a = 1 OR z = 2');
  });
  it('plans nothing when no disjunct can be true', () => {
    const p = planQuery(sel('SELECT * FROM c WHERE a = NULL OR b.c < MISSING'), { indexes: ixs });
    expect(p.access.kind).toBe('empty');
  });
  it('returns each matching document once', () => {
    const docs = [
      { _id: 1, a: 1, b: { c: 5 } },
      { _id: 2, a: 1 },
      { _id: 3, b: { c: 3 } },
      { _id: 4, a: 2, b: { c: 1 } },
    ];
    const src = new RecordingSource(docs);
    const p = planQuery(sel('SELECT _id FROM c WHERE a = 1 OR b.c > 2'), { indexes: ixs });
    expect(executePlan(p, src).items).toEqual([{ _id: 1 }, { _id: 2 }, { _id: 3 }]);
    expect(src.calls).toEqual(['index ia eq asc', 'index ib number asc']);
  });
});

describe('ORDER BY served by an ordered index', () => {
  const docs: Document[] = [
    { _id: 1, a: 3 },
    { _id: 2 },
    { _id: 3, a: 'x' },
    { _id: 4, a: null },
    { _id: 5, a: 1 },
    { _id: 6, a: [1] },
    { _id: 7, a: true },
    { _id: 8, a: 1 },
  ];
  const ixs = [idx('ia', 'a')];
  it('plans an index-order access with LIMIT and explains it', () => {
    const p = planQuery(sel("SELECT * FROM c WHERE x != 'no' ORDER BY a LIMIT 3"), {
      indexes: ixs,
    });
    expect(p.access).toEqual({ kind: 'indexOrder', index: 'ia', path: ['a'] });
    expect(p.orderFromAccess).toBe(true);
    expect(explain(p)).toBe(
      [
        'query c',
        '  access: index ia all a values in order ASC, then the documents without a (full scan)',
        "  filter: x != 'no'",
        '  project: *',
        '  order: a ASC, _id ASC (from access path)',
        '  offset 0, limit 3 (stops early)',
      ].join('\n'),
    );
    // Without LIMIT there is nothing to stop early: scan and sort.
    expect(planQuery(sel('SELECT * FROM c ORDER BY a'), { indexes: ixs }).access.kind).toBe(
      'fullScan',
    );
    // A predicate with an access path wins.
    expect(
      planQuery(sel('SELECT * FROM c WHERE a > 1 ORDER BY a LIMIT 1'), { indexes: ixs }).access
        .kind,
    ).toBe('indexScan');
  });
  it('stops reading once LIMIT rows are found (ASC), in collation order across types', () => {
    const src = new RecordingSource(docs);
    const p = planQuery(sel('SELECT _id FROM c ORDER BY a LIMIT 3'), { indexes: ixs });
    expect(executePlan(p, src).items).toEqual([{ _id: 7 }, { _id: 5 }, { _id: 8 }]);
    expect(src.calls).toEqual(['index ia boolean asc', 'index ia number asc']);
    expect(src.read).toBe(3);
  });
  it('puts documents without the field last (first for DESC), ties by _id in the key direction', () => {
    const all = new RecordingSource(docs);
    const asc = executePlan(
      planQuery(sel('SELECT _id FROM c ORDER BY a LIMIT 100'), { indexes: ixs }),
      all,
    ).items;
    expect(asc).toEqual([7, 5, 8, 1, 3, 6, 4, 2].map((_id) => ({ _id })));
    const desc = executePlan(
      planQuery(sel('SELECT _id FROM c ORDER BY a DESC LIMIT 100'), { indexes: ixs }),
      all,
    ).items;
    expect(desc).toEqual([...asc].reverse());
  });
  it('scans and sorts when the source has no ordered index', () => {
    const src = new RecordingSource(docs, { orderedScan: true, orderedIndex: false });
    const p = planQuery(sel('SELECT _id FROM c ORDER BY a LIMIT 2'), { indexes: ixs });
    expect(executePlan(p, src).items).toEqual([{ _id: 7 }, { _id: 5 }]);
    expect(src.calls).toEqual(['scan']);
  });
});

// --- property: indexed plan = plain full scan --------------------------------------------------

const scalar = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom('a', 'b') },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.boolean() },
);
const value: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 8, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 2 }) },
  { weight: 1, arbitrary: fc.record({ k: scalar }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.constantFrom(new Uint8Array([1]), new Uint8Array([0, 2])) },
);
/** A field that is present most of the time (absent: MISSING). */
const field = fc.option(value, { nil: undefined, freq: 5 });
const docs = fc
  .uniqueArray(
    fc.record({
      id: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom('x', 'y', 'z')),
      a: field,
      c: field,
      b: fc.option(fc.constantFrom('scalar', 'empty'), { nil: undefined, freq: 5 }),
      d: field,
    }),
    { selector: (x) => x.id, minLength: 6, maxLength: 30 },
  )
  .map((xs) =>
    xs.map((x): Document => {
      const doc: Record<string, JsonValue> = { _id: x.id };
      if (x.a !== undefined) doc['a'] = x.a;
      if (x.d !== undefined) doc['d'] = x.d;
      // b is an object holding c, an object without c, or a scalar (b.c is MISSING).
      if (x.b === 'empty') doc['b'] = {};
      else if (x.b === 'scalar') doc['b'] = 1;
      else if (x.c !== undefined) doc['b'] = { c: x.c };
      return doc;
    }),
  );
const path = fc.constantFrom('a', 'b.c', 'd', 'a', 'b.c', 'd', '_id');
const lit = fc
  .oneof({ weight: 12, arbitrary: scalar }, { weight: 1, arbitrary: fc.constant('MISSING') })
  .map((v) =>
    v === 'MISSING' ? 'MISSING' : typeof v === 'string' ? `'${v}'` : String(v).toUpperCase(),
  );
/** Atoms an index can serve (on an indexed path) … */
const servable = fc.oneof(
  fc
    .tuple(path, fc.constantFrom('=', '<', '<=', '>', '>='), lit)
    .map(([p, op, v]) => `${p} ${op} ${v}`),
  fc.tuple(lit, fc.constantFrom('=', '<', '>='), path).map(([v, op, p]) => `${v} ${op} ${p}`),
  fc.tuple(path, fc.array(lit, { maxLength: 3 })).map(([p, vs]) => `${p} IN [${vs.join(', ')}]`),
  fc.tuple(path, fc.array(lit, { maxLength: 3 })).map(([p, vs]) => `${p} IN (${vs.join(', ')})`),
  fc.tuple(path, lit, lit).map(([p, x, y]) => `${p} BETWEEN ${x} AND ${y}`),
);
/** … and atoms it cannot. */
const atom = fc.oneof(
  { weight: 4, arbitrary: servable },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.tuple(path, lit).map(([p, v]) => `${p} != ${v}`),
      path.map((p) => `${p} IS MISSING`),
      path.map((p) => `${p} IS NOT NULL`),
    ),
  },
);
/** An OR of ANDs of atoms (the shape the union serves), sometimes inside an outer AND. */
const disjunction = fc
  .array(fc.array(atom, { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 3 })
  .map((ds) =>
    ds.map((as) => (as.length > 1 ? `(${as.join(' AND ')})` : as.join(''))).join(' OR '),
  );
const where = fc.oneof(
  { weight: 3, arbitrary: disjunction },
  { weight: 1, arbitrary: fc.tuple(disjunction, atom).map(([d, a]) => `(${d}) AND ${a}`) },
  {
    weight: 1,
    arbitrary: fc.tuple(disjunction, disjunction).map(([d, e]) => `(${d}) AND (${e})`),
  },
);
const orderKey = fc.tuple(path, fc.constantFrom('ASC', 'DESC'));
const window = fc
  .tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 3 }))
  .map(([l, o]) => ` LIMIT ${l}${o > 0 ? ` OFFSET ${o}` : ''}`);
const indexes = fc.oneof(
  fc.constant([idx('ia', 'a'), idx('ibc', 'b', 'c'), idx('id', 'd')]),
  fc.subarray([idx('ia', 'a'), idx('ibc', 'b', 'c'), idx('id', 'd')]),
);
const caps = fc.record({ orderedScan: fc.boolean(), orderedIndex: fc.boolean() });

async function check(
  ds: readonly Document[],
  text: string,
  ixs: readonly IndexInfo[],
  capabilities: SourceCapabilities,
): Promise<void> {
  const stmt = sel(text);
  const fast = new MemorySource(capabilities);
  const slow = new MemorySource({ orderedScan: false, orderedIndex: false });
  for (const d of ds) {
    fast.put('c', d);
    slow.put('c', d);
  }
  const want = executePlan(planQuery(stmt), slow).items;
  const plan = planQuery(stmt, { indexes: ixs });
  expect(executePlan(plan, fast).items).toEqual(want);
  expect((await executePlanAsync(plan, asAsync(fast))).items).toEqual(want);
}

describe('indexed plans return exactly what the full scan returns', () => {
  test.prop(
    [
      docs,
      where,
      fc.option(orderKey, { nil: undefined }),
      fc.option(window, { nil: '' }),
      indexes,
      caps,
    ],
    {
      numRuns: 400,
    },
  )('WHERE with OR (index unions), optional ORDER BY and LIMIT', async (ds, w, o, lim, ixs, c) => {
    const order = o ? ` ORDER BY ${o[0]} ${o[1]}` : '';
    await check(ds, `SELECT * FROM c WHERE ${w}${order}${lim}`, ixs, c);
  });
  test.prop([docs, orderKey, window, fc.option(atom, { nil: undefined }), indexes, caps], {
    numRuns: 400,
  })(
    'ORDER BY an indexed path alone (index order, early stop)',
    async (ds, [p, dir], lim, a, ixs, c) => {
      const filter = a === undefined ? '' : ` WHERE ${a} OR ${p} IS MISSING`;
      await check(ds, `SELECT * FROM c${filter} ORDER BY ${p} ${dir}${lim}`, ixs, c);
    },
  );
  it('the properties exercise union and index-order plans', () => {
    // Guards against the generators drifting away from the shapes under test.
    const kinds = new Set<string>();
    fc.assert(
      fc.property(where, indexes, (w, ixs) => {
        kinds.add(planQuery(sel(`SELECT * FROM c WHERE ${w}`), { indexes: ixs }).access.kind);
      }),
      { numRuns: 300 },
    );
    expect(kinds).toContain('union');
    expect(
      planQuery(sel('SELECT * FROM c ORDER BY b.c DESC LIMIT 2'), {
        indexes: [idx('ibc', 'b', 'c')],
      }).access.kind,
    ).toBe('indexOrder');
  });
});
