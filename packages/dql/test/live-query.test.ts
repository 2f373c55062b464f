import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { executePlan, LiveQuery, MemorySource, parse, planQuery } from '@lattice/dql';
import type { Document, ItemChange, JsonValue, SelectStatement } from '@lattice/dql';

/** Applies a batch of changes to the old items the way an observer would. */
function applyChanges(old: readonly JsonValue[], changes: readonly ItemChange[]): JsonValue[] {
  const drop = new Set<number>();
  const put: { index: number; item: JsonValue }[] = [];
  for (const c of changes) {
    if (c.kind === 'removed') drop.add(c.index);
    if (c.kind === 'moved') {
      drop.add(c.from);
      put.push({ index: c.to, item: c.item });
    }
    if (c.kind === 'inserted') put.push({ index: c.index, item: c.item });
  }
  const out = old.filter((_, i) => !drop.has(i));
  put.sort((a, b) => a.index - b.index);
  for (const p of put) out.splice(p.index, 0, p.item);
  for (const c of changes) if (c.kind === 'updated') out[c.index] = c.item;
  return out;
}

const plan = (t: string) =>
  planQuery(parse(t) as SelectStatement, {
    indexes: [{ name: 'ia', collection: 'c', path: ['a'] }],
  });

describe('live query', () => {
  it('reports inserted, updated, moved and removed with indexes', () => {
    const src = new MemorySource();
    src.put('c', { _id: 1, a: 1 });
    src.put('c', { _id: 2, a: 2 });
    const lq = new LiveQuery(plan('SELECT _id, a FROM c WHERE a > 0 ORDER BY a'));
    lq.load(src);
    expect(lq.items).toEqual([
      { _id: 1, a: 1 },
      { _id: 2, a: 2 },
    ]);
    expect(lq.apply({ after: { _id: 3, a: 0.5 } })).toEqual({
      kind: 'changed',
      changes: [{ kind: 'inserted', index: 0, item: { _id: 3, a: 0.5 } }],
    });
    expect(lq.apply({ before: { _id: 3, a: 0.5 }, after: { _id: 3, a: 5 } })).toEqual({
      kind: 'changed',
      changes: [
        { kind: 'moved', from: 0, to: 2, item: { _id: 3, a: 5 } },
        { kind: 'updated', index: 2, item: { _id: 3, a: 5 } },
      ],
    });
    expect(lq.apply({ before: { _id: 1, a: 1 }, after: { _id: 1, a: 1, z: 1 } })).toEqual({
      kind: 'unchanged',
    });
    expect(lq.apply({ before: { _id: 2, a: 2 } })).toEqual({
      kind: 'changed',
      changes: [{ kind: 'removed', index: 1, item: { _id: 2, a: 2 } }],
    });
    expect(lq.apply({ after: { _id: 9, a: -1 } })).toEqual({ kind: 'unchanged' });
  });
  it('asks for a requery when a removal leaves a full LIMIT window', () => {
    const src = new MemorySource();
    for (let i = 0; i < 5; i++) src.put('c', { _id: i, a: i });
    const lq = new LiveQuery(plan('SELECT * FROM c ORDER BY a LIMIT 2'));
    lq.load(src);
    src.remove('c', 0);
    expect(lq.apply({ before: { _id: 0, a: 0 } })).toMatchObject({ kind: 'requery' });
    expect(lq.load(src)).toEqual([
      { kind: 'removed', index: 0, item: { _id: 0, a: 0 } },
      { kind: 'inserted', index: 1, item: { _id: 2, a: 2 } },
    ]);
  });
});

const docArb = fc.record(
  {
    a: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant('s'), fc.constant(null)),
    b: fc.integer({ min: 0, max: 3 }),
  },
  { requiredKeys: ['b'] },
);
const changeArb = fc.record({
  id: fc.integer({ min: 0, max: 12 }),
  doc: fc.option(docArb, { nil: undefined }),
});
const queries = fc.constantFrom(
  'SELECT * FROM c',
  'SELECT * FROM c WHERE a > 1 ORDER BY a DESC',
  'SELECT _id, b FROM c WHERE b < 3 ORDER BY b, a LIMIT 3',
  'SELECT * FROM c ORDER BY a LIMIT 4 OFFSET 2',
  'SELECT * FROM c WHERE a IN [1, 2, 3] ORDER BY b DESC LIMIT 2',
  'SELECT a FROM c WHERE b >= 1 LIMIT 0',
  'SELECT b, COUNT(*) AS n FROM c GROUP BY b',
  'SELECT DISTINCT b FROM c ORDER BY b',
);

describe('incremental maintenance equals re-running the query', () => {
  test.prop(
    [
      queries,
      fc.array(changeArb, { maxLength: 8 }),
      fc.array(changeArb, { minLength: 1, maxLength: 30 }),
    ],
    { numRuns: 250 },
  )('random changes', (q, initial, changes) => {
    const src = new MemorySource();
    const current = new Map<number, Document>();
    const write = (id: number, doc: Record<string, JsonValue> | undefined) => {
      if (doc === undefined) {
        src.remove('c', id);
        current.delete(id);
      } else {
        const d = { _id: id, ...doc };
        src.put('c', d);
        current.set(id, d);
      }
    };
    for (const c of initial) write(c.id, c.doc);
    const p = plan(q);
    const lq = new LiveQuery(p);
    lq.load(src);
    for (const c of changes) {
      const before = current.get(c.id);
      write(c.id, c.doc);
      const after = current.get(c.id);
      const old = lq.items;
      const u = lq.apply({ ...(before ? { before } : {}), ...(after ? { after } : {}) });
      if (u.kind === 'requery') {
        const changesFromLoad = lq.load(src);
        expect(applyChanges(old, changesFromLoad)).toEqual(lq.items);
      } else if (u.kind === 'changed') {
        expect(applyChanges(old, u.changes)).toEqual(lq.items);
      } else {
        expect(lq.items).toEqual(old);
      }
      expect(lq.items).toEqual(executePlan(p, src).items);
    }
  });
});
