/**
 * What the store writes under its keys: tombstone keys only where a tombstone exists, index
 * postings that stay exact through updates, deletions, evictions and overflow, and the on-disk
 * format version (an old-format database is upgraded, a newer one refused).
 */
import { encodeDocId } from '@lattice/crdt';
import { hasCode } from '@lattice/errors';
import { DocumentStore } from '@lattice/store';
import type { EngineOp, StorageEngine } from '@lattice/store';
import { afterEach, describe, expect, it } from 'vitest';
import { ENGINES, put, tomb } from './helpers.js';

const T = 0x54; // 'T', the tombstone key tag
const I = 0x49; // 'I', the index key tag
const utf8 = new TextEncoder();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Records every op an engine is asked to write. */
function recording(engine: StorageEngine): StorageEngine & { ops: EngineOp[] } {
  const wrapped = Object.create(engine) as StorageEngine & { ops: EngineOp[] };
  wrapped.ops = [];
  wrapped.write = (ops, o) => {
    wrapped.ops.push(...ops);
    engine.write(ops, o);
  };
  wrapped.getMany = (k) => engine.getMany(k);
  wrapped.entries = (r) => engine.entries(r);
  wrapped.open = () => engine.open();
  wrapped.close = () => engine.close();
  wrapped.sizes = () => engine.sizes();
  wrapped.approximateSize = (gte, lt) => engine.approximateSize(gte, lt);
  wrapped.compactRange = (gte, lt) => engine.compactRange(gte, lt);
  return wrapped;
}

/** Every key of `engine` starting with `tag`. */
function keysOf(engine: StorageEngine, tag: number): Uint8Array[] {
  return [...engine.entries({ gte: Uint8Array.of(tag), lt: Uint8Array.of(tag + 1) })].map(
    ([k]) => k,
  );
}

/** `name` as the store frames names in keys (a length byte, then UTF-8). */
function framed(name: string): number[] {
  const b = utf8.encode(name);
  return [b.length, ...b];
}

for (const { name, make } of ENGINES) {
  describe(`store key layout on ${name}`, () => {
    async function open() {
      const made = await make();
      const engine = recording(made.engine);
      const store = await DocumentStore.open(engine);
      cleanups.push(async () => {
        await store.close();
        await made.dir?.remove();
      });
      const reopen = async (): Promise<DocumentStore> => {
        await store.close();
        const s = await DocumentStore.open(made.reopen());
        cleanups.push(() => s.close());
        return s;
      };
      return { store, engine, made, reopen };
    }

    it('writes a tombstone key only for a tombstone, and a later put removes it', async () => {
      const { store, engine, reopen } = await open();
      await store.commit({ writes: [put('c', { _id: 'a' }), put('c', { _id: 'b' })] });
      // Fresh documents: nothing touches a tombstone key.
      expect(engine.ops.filter((o) => o.key[0] === T)).toEqual([]);
      await store.commit({ writes: [tomb('c', 'a', 1_000)] });
      expect(keysOf(engine, T)).toHaveLength(1);
      engine.ops.length = 0;
      await store.commit({ writes: [put('c', { _id: 'a', back: 1 }, 3)] });
      expect(engine.ops.filter((o) => o.key[0] === T).map((o) => o.type)).toEqual(['del']);
      expect(keysOf(engine, T)).toEqual([]);
      // Rewriting a live document does not delete a tombstone key either.
      engine.ops.length = 0;
      await store.commit({ writes: [put('c', { _id: 'a', again: 1 }, 4)] });
      expect(engine.ops.filter((o) => o.key[0] === T)).toEqual([]);

      // In one commit group, in both orders.
      await Promise.all([
        store.commit({ writes: [tomb('c', 'b', 2_000)] }),
        store.commit({ writes: [put('c', { _id: 'b', back: 1 }, 5)] }),
        store.commit({ writes: [put('c', { _id: 'x' })] }),
        store.commit({ writes: [tomb('c', 'x', 3_000)] }),
      ]);
      expect(store.get('c', ['b', 'x']).map((d) => d.tombstone)).toEqual([false, true]);
      expect(store.stats().collections[0]).toMatchObject({ documents: 2, tombstones: 1 });

      // What a reopened store knows about tombstones comes from the engine.
      const again = await reopen();
      await again.commit({ writes: [put('c', { _id: 'x', back: 1 }, 6)] });
      expect(again.stats().collections[0]).toMatchObject({ documents: 3, tombstones: 0 });
      await again.commit({ writes: [tomb('c', 'a', 4_000, 9)] });
      expect(await again.reapTombstones(5_000)).toBe(1);
      await again.commit({ writes: [put('c', { _id: 'a', reborn: 1 }, 10)] });
      expect(again.stats().collections[0]).toMatchObject({ documents: 3, tombstones: 0 });
    });

    it('keeps index equality and ranges exact through updates, deletes, evictions and overflow', async () => {
      const { store, reopen } = await open();
      await store.createIndex('c', 'by_x', ['x']);
      const model = new Map<number, number | undefined>();
      const write = async (id: number, x: number | undefined, counter: number) => {
        model.set(id, x);
        await store.commit({
          writes: [
            x === undefined ? put('c', { _id: id }, counter) : put('c', { _id: id, x }, counter),
          ],
        });
      };
      const check = (s: DocumentStore) => {
        for (const x of [0, 1, 2, 3]) {
          const want = [...model].filter(([, v]) => v === x).map(([id]) => id);
          want.sort((a, b) => a - b);
          const got = (s.select('SELECT _id FROM c WHERE x = :x', { x }) as { _id: number }[]).map(
            (d) => d._id,
          );
          expect(got, `x = ${x}`).toEqual(want);
        }
        const ranged = [...model]
          .filter(([, v]) => v !== undefined && v >= 1)
          .sort(([a, x], [b, y]) => (y as number) - (x as number) || b - a)
          .map(([id]) => id);
        const got = (
          s.select('SELECT _id FROM c WHERE x >= 1 ORDER BY x DESC, _id DESC') as { _id: number }[]
        ).map((d) => d._id);
        expect(got).toEqual(ranged);
        expect(JSON.stringify(s.select('EXPLAIN SELECT * FROM c WHERE x = 1'))).toContain('by_x');
      };
      // 60 documents with x = 1 (past the inline posting limit), a few with 2.
      await store.commit({
        writes: Array.from({ length: 64 }, (_, i) => put('c', { _id: i, x: i < 60 ? 1 : 2 })),
      });
      for (let i = 0; i < 64; i++) model.set(i, i < 60 ? 1 : 2);
      check(store);
      await write(3, 2, 2); // overflowed → inline
      await write(61, 1, 2); // inline → overflowed
      await write(62, 3, 2); // inline → a new value
      await write(63, undefined, 2); // the path is now MISSING
      check(store);
      await store.commit({ writes: [tomb('c', 5, 1_000), tomb('c', 60, 1_000)] });
      model.delete(5);
      model.delete(60);
      await store.commit({ writes: [{ kind: 'evict', collection: 'c', id: 7 }] });
      model.delete(7);
      check(store);
      // Several changes of one document and of one posting in one commit group.
      await Promise.all([write(62, 0, 3), write(62, 2, 4), write(100, 0, 1), write(101, 0, 1)]);
      await write(100, 2, 2);
      check(store);
      check(await reopen());
    });

    it('recreates an index under the name of one being dropped, without losing entries', async () => {
      const { store } = await open();
      await store.createIndex('c', 'i', ['x']);
      await store.commit({
        writes: Array.from({ length: 3_000 }, (_, i) => put('c', { _id: i, x: i % 3, y: i % 5 })),
      });
      const dropping = store.dropIndex('c', 'i'); // deletes its keys over several turns
      await store.createIndex('c', 'i', ['y']);
      await dropping;
      expect(store.select('SELECT count(*) AS n FROM c WHERE y = 4')).toEqual([{ n: 600 }]);
      expect(store.select('SELECT count(*) AS n FROM c WHERE y >= 0')).toEqual([{ n: 3_000 }]);
      expect(JSON.stringify(store.select('EXPLAIN SELECT * FROM c WHERE y = 4'))).toContain(
        'index i ',
      );
    });

    it('rebuilds the indexes of a format-1 database when it opens, with progress', async () => {
      const { store, made } = await open();
      await store.createIndex('c', 'by_x', ['x']);
      await store.commit({
        writes: [
          put('c', { _id: 'a', x: 'one' }),
          put('c', { _id: 'b', x: 'two' }),
          put('c', { _id: 'c', x: 'one' }),
        ],
      });
      await store.close();
      // Turn it into what format 1 wrote: no format marker, one `I coll name value id` key per
      // document, and (to see that old entries do not survive) a stale one for a value no
      // document has.
      const raw = made.reopen();
      await raw.open();
      const entry = (value: string, id: string): Uint8Array =>
        Uint8Array.of(
          I,
          ...framed('c'),
          ...framed('by_x'),
          0x20,
          ...utf8.encode(value),
          0x00,
          0x01,
          ...encodeDocId(id),
        );
      raw.write(
        [
          ...keysOf(raw, I).map((key): EngineOp => ({ type: 'del', key })),
          { type: 'del', key: Uint8Array.of(0x4d, 0, ...utf8.encode('format')) },
          ...[
            ['one', 'a'],
            ['two', 'b'],
            ['one', 'c'],
            ['ghost', 'a'],
          ].map(([v, id]): EngineOp => ({
            type: 'put',
            key: entry(v as string, id as string),
            value: new Uint8Array(),
          })),
        ],
        { sync: true },
      );
      await raw.close();

      const progress: string[] = [];
      const upgraded = await DocumentStore.open(made.reopen(), {
        onIndexProgress: (p) => progress.push(`${p.name} ${p.done}/${p.total}`),
      });
      cleanups.push(() => upgraded.close());
      expect(progress.at(-1)).toBe('by_x 3/3');
      expect(upgraded.listIndexes('c')).toMatchObject([{ name: 'by_x', ready: true }]);
      expect(upgraded.select("SELECT _id FROM c WHERE x = 'ghost'")).toEqual([]);
      expect(upgraded.select("SELECT _id FROM c WHERE x = 'one'")).toEqual([
        { _id: 'a' },
        { _id: 'c' },
      ]);
      expect(upgraded.select("SELECT _id FROM c WHERE x > 'one'")).toEqual([{ _id: 'b' }]);
      expect(upgraded.select("SELECT count(*) AS n FROM c WHERE x >= 'a'")).toEqual([{ n: 3 }]);
    });

    it('refuses to open a database of a newer format, changing nothing', async () => {
      const { store, made } = await open();
      await store.commit({
        writes: [put('c', { _id: 'a' })],
        meta: { '\u0000format': Uint8Array.of(0, 0, 0, 99) },
      });
      await store.close();
      let error: unknown;
      try {
        await DocumentStore.open(made.reopen());
      } catch (err) {
        error = err;
      }
      expect(hasCode(error, 'STORE_UNSUPPORTED_FORMAT')).toBe(true);
      expect(String(error)).toContain('format 99');
      const raw = made.reopen();
      await raw.open();
      const meta = [...raw.entries({ gte: Uint8Array.of(0x4d), lt: Uint8Array.of(0x4e) })];
      expect(meta.map(([, v]) => [...v])).toEqual([[0, 0, 0, 99]]);
      await raw.close();
    });
  });
}
