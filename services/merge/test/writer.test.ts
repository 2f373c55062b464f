import { hasCode } from '@lattice/errors';
import { MergeEngine } from '@lattice/merge';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { describe, expect, it } from 'vitest';
import { peer } from './helpers.js';

async function expectCode(p: Promise<unknown>, code: string): Promise<unknown> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(hasCode(err, code), String(err)).toBe(true);
  return err;
}

describe('local writes', () => {
  it('inserts documents, reports mutated ids and the commit, and reads them back', async () => {
    const a = await peer('a');
    const r = await a.execute(
      "INSERT INTO cars DOCUMENTS ({'_id': 'c1', 'make': 'vw', 'tags': {'x': 1}}), (:d)",
      {
        d: { _id: 'c2', make: 'bmw' },
      },
    );
    expect(r.mutatedIds).toEqual(['c1', 'c2']);
    expect(r.commitSeq).toBe(1);
    expect((await a.execute('SELECT * FROM cars ORDER BY _id')).items).toEqual([
      { _id: 'c1', make: 'vw', tags: { x: 1 } },
      { _id: 'c2', make: 'bmw' },
    ]);
    const [stored] = a.store.get('cars', ['c1']);
    expect(stored?.versionVector.get(a.peerId)).toBeGreaterThan(0);
  });

  it('gives documents without _id a generated one', async () => {
    let n = 0;
    const a = await peer('a', { newId: () => `gen-${++n}` });
    const r = await a.execute("INSERT INTO notes DOCUMENTS ({'text': 'hi'})");
    expect(r.mutatedIds).toEqual(['gen-1']);
    expect((await a.execute('SELECT * FROM notes')).items).toEqual([{ _id: 'gen-1', text: 'hi' }]);
  });

  it('applies each ON ID CONFLICT mode, atomically for multi-document inserts', async () => {
    const a = await peer('a');
    await a.execute("INSERT INTO c DOCUMENTS ({'_id': 1, 'a': 1, 'b': 1})");
    const err = await expectCode(
      a.execute("INSERT INTO c DOCUMENTS ({'_id': 2}), ({'_id': 1, 'a': 9})"),
      'CRDT_ID_CONFLICT',
    );
    expect(String(err)).toContain('1');
    expect(a.store.get('c', [2])).toEqual([]); // the whole statement failed
    expect(
      (await a.execute("INSERT INTO c DOCUMENTS ({'_id': 1, 'a': 5}) ON ID CONFLICT DO NOTHING"))
        .mutatedIds,
    ).toEqual([]);
    await a.execute("INSERT INTO c DOCUMENTS ({'_id': 1, 'a': 2}) ON ID CONFLICT DO UPDATE");
    expect((await a.execute('SELECT * FROM c')).items).toEqual([{ _id: 1, a: 2, b: 1 }]);
    const same = await a.execute(
      "INSERT INTO c DOCUMENTS ({'_id': 1, 'a': 2, 'b': 1}) ON ID CONFLICT DO UPDATE_LOCAL_DIFF",
    );
    expect(same.mutatedIds).toEqual([]);
    const before = a.store.get('c', [1])[0]?.seq;
    expect(before).toBe(2);
    await a.execute(
      "INSERT INTO c DOCUMENTS ({'_id': 1, 'a': 2, 'b': 3}) ON ID CONFLICT DO UPDATE_LOCAL_DIFF",
    );
    expect((await a.execute('SELECT b FROM c')).items).toEqual([{ b: 3 }]);
    await a.execute("INSERT INTO c INITIAL DOCUMENTS ({'_id': 1, 'a': 100})");
    expect((await a.execute('SELECT a FROM c')).items).toEqual([{ a: 2 }]);
  });

  it('updates with APPLY, SET and UNSET on the documents WHERE selects', async () => {
    const a = await peer('a');
    await a.execute(
      "INSERT INTO c (n COUNTER) DOCUMENTS ({'_id': 1, 'n': 0, 'k': 'x', 'm': {'p': 1, 'q': 2}}), ({'_id': 2, 'n': 0, 'k': 'y'})",
    );
    const r = await a.execute(
      "UPDATE COLLECTION c (n COUNTER) APPLY n INCREMENT BY 5 SET m.r = 3 UNSET m.p WHERE k = 'x'",
    );
    expect(r.mutatedIds).toEqual([1]);
    expect((await a.execute('SELECT * FROM c ORDER BY _id')).items).toEqual([
      { _id: 1, k: 'x', m: { q: 2, r: 3 }, n: 5 },
      { _id: 2, k: 'y', n: 0 },
    ]);
    expect((await a.execute("UPDATE c SET z = 1 WHERE k = 'none'")).mutatedIds).toEqual([]);
    await expectCode(a.execute('UPDATE c SET _id = 3'), 'DQL_IMMUTABLE_ID');
  });

  it('loses no update under concurrent increments of one document', async () => {
    const a = await peer('a');
    await a.execute("INSERT INTO c (n COUNTER) DOCUMENTS ({'_id': 1, 'n': 0})");
    await Promise.all(
      Array.from({ length: 25 }, () =>
        a.execute('UPDATE COLLECTION c (n COUNTER) APPLY n INCREMENT BY 1'),
      ),
    );
    expect((await a.execute('SELECT n FROM c')).items).toEqual([{ n: 25 }]);
  });

  it('deletes into tombstones and evicts without a trace', async () => {
    const a = await peer('a');
    await a.execute(
      "INSERT INTO c DOCUMENTS ({'_id': 1, 'k': 1}), ({'_id': 2, 'k': 2}), ({'_id': 3, 'k': 3})",
    );
    expect((await a.execute('DELETE FROM c WHERE k = 1')).mutatedIds).toEqual([1]);
    expect((await a.execute('EVICT FROM c WHERE k = 2')).mutatedIds).toEqual([2]);
    expect((await a.execute('SELECT _id FROM c')).items).toEqual([{ _id: 3 }]);
    expect(a.store.get('c', [1])[0]?.tombstone).toBe(true);
    expect(a.store.get('c', [2])).toEqual([]);
  });

  it('creates and drops indexes through DQL', async () => {
    const a = await peer('a');
    await a.execute("INSERT INTO c DOCUMENTS ({'_id': 1, 'k': 1})");
    await a.execute('CREATE INDEX by_k ON c (k)');
    await a.execute('CREATE INDEX IF NOT EXISTS by_k ON c (k)');
    expect(
      JSON.stringify((await a.execute('EXPLAIN SELECT * FROM c WHERE k = 1')).items),
    ).toContain('by_k');
    await a.execute('DROP INDEX by_k');
    await a.execute('DROP INDEX IF EXISTS by_k');
    await expectCode(a.execute('DROP INDEX by_k'), 'STORE_UNKNOWN_INDEX');
  });

  it('keeps its clock monotonic across a restart', async () => {
    const store = await DocumentStore.open(new MemoryEngine());
    let wall = 1_000_000;
    const a = MergeEngine.open({ peerId: 'a', store, now: () => wall });
    await a.execute("INSERT INTO c DOCUMENTS ({'_id': 1, 'v': 1})");
    const high = a.clock.highWaterMark;
    wall = 10; // the wall clock went backwards while the peer was down
    const again = MergeEngine.open({ peerId: 'a', store, now: () => wall });
    expect(again.clock.highWaterMark).toBeGreaterThanOrEqual(high);
    await again.execute('UPDATE c SET v = 2');
    expect((await again.execute('SELECT v FROM c')).items).toEqual([{ v: 2 }]);
  });
});
