import { hasCode } from '@lattice/errors';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import type { CommitEntry, EngineOp, StorageEngine } from '@lattice/store';
import { afterEach, describe, expect, it } from 'vitest';
import { ENGINES, put, tomb, vv } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (!hasCode(err, code)) throw err;
    return;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

/** Counts engine writes (to see group commit) by wrapping an engine. */
function counting(engine: StorageEngine): StorageEngine & { writes: number } {
  const wrapped = Object.create(engine) as StorageEngine & { writes: number };
  wrapped.writes = 0;
  wrapped.write = (ops: readonly EngineOp[], o: { readonly sync: boolean }) => {
    wrapped.writes++;
    engine.write(ops, o);
  };
  wrapped.getMany = (k) => engine.getMany(k);
  wrapped.entries = (r) => engine.entries(r);
  wrapped.open = () => engine.open();
  wrapped.close = () => engine.close();
  return wrapped;
}

/** Counts the document values (`V` keys) a store pulls from an engine, as they are pulled. */
function reading(engine: StorageEngine): StorageEngine & { values: number } {
  const wrapped = Object.create(engine) as StorageEngine & { values: number };
  const V = 0x56;
  wrapped.values = 0;
  wrapped.getMany = (keys) => {
    const got = engine.getMany(keys);
    got.forEach((v, i) => {
      if (v && keys[i]?.[0] === V) wrapped.values++;
    });
    return got;
  };
  wrapped.entries = function* (r) {
    for (const e of engine.entries(r)) {
      if (e[0][0] === V && r.values !== false) wrapped.values++;
      yield e;
    }
  };
  wrapped.write = (ops, o) => engine.write(ops, o);
  wrapped.open = () => engine.open();
  wrapped.close = () => engine.close();
  return wrapped;
}

for (const { name, make } of ENGINES) {
  describe(`DocumentStore on ${name}`, () => {
    async function open(options: Parameters<typeof DocumentStore.open>[1] = {}) {
      const made = await make();
      const store = await DocumentStore.open(made.engine, options);
      cleanups.push(async () => {
        await store.close();
        await made.dir?.remove();
      });
      const reopen = async (o = options): Promise<DocumentStore> => {
        await store.close();
        const s = await DocumentStore.open(made.reopen(), o);
        cleanups.push(() => s.close());
        return s;
      };
      return { store, reopen, engine: made.engine };
    }

    it('commits documents and reads them back with their version', async () => {
      const { store } = await open();
      const r = await store.commit({
        writes: [put('cars', { _id: 'a', make: 'vw', n: 1 }), put('cars', { _id: 2, make: 'bmw' })],
      });
      expect(r.seq).toBe(1);
      const [a, b, missing] = [...store.get('cars', ['a', 2, 'zz']), undefined];
      expect(missing).toBeUndefined();
      expect(a?.value).toEqual({ _id: 'a', make: 'vw', n: 1 });
      expect(a?.seq).toBe(1);
      expect(a?.tombstone).toBe(false);
      expect([...(a?.versionVector ?? [])]).toEqual([['p1', 1]]);
      expect(JSON.parse(new TextDecoder().decode(b?.state))).toEqual({ _id: 2, make: 'bmw' });
      expect(store.get('cars', ['zz'])).toEqual([]);
    });

    it('reads values alone, one key per document, undefined for missing and deleted ones', async () => {
      const made = await make();
      const engine = made.engine;
      // The tags of the keys of each multi-get.
      const reads: string[] = [];
      const spied = Object.create(engine) as StorageEngine;
      spied.getMany = (keys) => {
        reads.push(keys.map((k) => String.fromCharCode(k[0] ?? 0)).join(''));
        return engine.getMany(keys);
      };
      spied.entries = (r) => engine.entries(r);
      spied.write = (ops, o) => engine.write(ops, o);
      spied.open = () => engine.open();
      spied.close = () => engine.close();
      const store = await DocumentStore.open(spied);
      cleanups.push(async () => {
        await store.close();
        await made.dir?.remove();
      });
      await store.commit({
        writes: [put('c', { _id: 'a', n: 1 }), put('c', { _id: 2, n: 2 }), put('c', { _id: 'd' })],
      });
      await store.commit({ writes: [tomb('c', 'd', 5)] });
      reads.length = 0;
      expect(store.getValues('c', [2, 'zz', 'a', 'd', 'a'])).toEqual([
        { _id: 2, n: 2 },
        undefined,
        { _id: 'a', n: 1 },
        undefined,
        { _id: 'a', n: 1 },
      ]);
      expect(reads).toEqual(['VVVVV']);
      expect(store.getValues('c', [])).toEqual([]);
      expect(store.getValues('other', ['a'])).toEqual([undefined]);
      await store.commit({ writes: [put('c', { _id: 'd', back: true }, 3)] }); // revived
      expect(store.getValues('c', ['d'])).toEqual([{ _id: 'd', back: true }]);
      await store.commit({ writes: [{ kind: 'evict', collection: 'c', id: 'a' }] });
      expect(store.getValues('c', ['a'])).toEqual([undefined]);
      await expectCode(() => store.getValues('c', [Number.NaN]), 'STORE_INVALID_ARGUMENT');
      await expectCode(() => store.getValues('', ['a']), 'STORE_INVALID_ARGUMENT');
    });

    it('reads documents as records with an own, enumerable, lazily decoded value', async () => {
      const { store } = await open();
      await store.commit({ writes: [put('c', { _id: 'a', n: 1 }), put('c', { _id: 'b' })] });
      await store.commit({ writes: [tomb('c', 'b', 7)] });
      const [a, b] = store.get('c', ['a', 'b']);
      expect(Object.keys(a ?? {})).toEqual([
        'collection',
        'id',
        'idBytes',
        'seq',
        'state',
        'versionVector',
        'tombstone',
        'value',
      ]);
      expect(a?.value).toBe(a?.value); // decoded once
      expect(JSON.parse(JSON.stringify(a))).toMatchObject({ id: 'a', value: { _id: 'a', n: 1 } });
      expect({ ...a }.value).toEqual({ _id: 'a', n: 1 });
      expect(Object.keys(b ?? {})).toEqual([
        'collection',
        'id',
        'idBytes',
        'seq',
        'state',
        'versionVector',
        'tombstone',
        'deletedAt',
      ]);
      expect(b && 'value' in b).toBe(false);
      expect(b).toMatchObject({ tombstone: true, deletedAt: 7, seq: 2 });
    });

    it('assigns consecutive sequences that continue after a restart', async () => {
      const { store, reopen } = await open();
      for (let i = 0; i < 5; i++) await store.commit({ writes: [put('c', { _id: i })] });
      expect(store.lastSeq).toBe(5);
      const again = await reopen();
      expect(again.lastSeq).toBe(5);
      expect((await again.commit({ writes: [put('c', { _id: 'x' })] })).seq).toBe(6);
      expect(again.get('c', [0, 4, 'x']).map((d) => d.seq)).toEqual([1, 5, 6]);
    });

    it('groups concurrent commits into one engine write', async () => {
      const made = await make();
      const engine = counting(made.engine);
      const store = await DocumentStore.open(engine);
      cleanups.push(async () => {
        await store.close();
        await made.dir?.remove();
      });
      const before = engine.writes;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.commit({ writes: [put('g', { _id: i })] })),
      );
      expect(results.map((r) => r.seq).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      expect(engine.writes - before).toBe(1);
      expect(store.get('g', [0, 49]).length).toBe(2);
    });

    it('refuses a commit whose read versions changed, writing nothing of it', async () => {
      const { store } = await open();
      await store.commit({ writes: [put('c', { _id: 'a', v: 1 })] });
      await expectCode(
        store.commit({
          writes: [put('c', { _id: 'a', v: 2 }), put('c', { _id: 'b', v: 2 })],
          expect: [{ collection: 'c', id: 'a', seq: 0 }],
        }),
        'STORE_CONFLICT',
      );
      expect(store.get('c', ['a'])[0]?.value).toEqual({ _id: 'a', v: 1 });
      expect(store.get('c', ['b'])).toEqual([]);
      expect(store.lastSeq).toBe(1);
      // The right version succeeds; "did not exist" is version 0.
      await store.commit({
        writes: [put('c', { _id: 'a', v: 3 }), put('c', { _id: 'b', v: 3 })],
        expect: [
          { collection: 'c', id: 'a', seq: 1 },
          { collection: 'c', id: 'b', seq: 0 },
        ],
      });
      expect(store.get('c', ['a', 'b']).map((d) => d.value?.['v'])).toEqual([3, 3]);
    });

    it('lets exactly one of two concurrent commits on the same version win', async () => {
      const { store } = await open();
      await store.commit({ writes: [put('c', { _id: 'a', v: 0 })] });
      const attempt = (v: number) =>
        store.commit({
          writes: [put('c', { _id: 'a', v })],
          expect: [{ collection: 'c', id: 'a', seq: 1 }],
        });
      const results = await Promise.allSettled([attempt(1), attempt(2)]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const winner = results[0].status === 'fulfilled' ? 1 : 2;
      expect(store.get('c', ['a'])[0]?.value?.['v']).toBe(winner);
    });

    it('keeps tombstones out of queries, revives them, and reaps them after the TTL', async () => {
      const { store } = await open();
      await store.commit({ writes: [put('c', { _id: 'a' }), put('c', { _id: 'b' })] });
      await store.commit({ writes: [tomb('c', 'a', 1_000)] });
      const [a] = store.get('c', ['a']);
      expect(a?.tombstone).toBe(true);
      expect(a?.deletedAt).toBe(1_000);
      expect(a?.value).toBeUndefined();
      expect(store.select('SELECT * FROM c')).toEqual([{ _id: 'b' }]);
      expect(await store.reapTombstones(1_000)).toBe(0); // not older than the cut-off
      await store.commit({ writes: [tomb('c', 'b', 5_000)] });
      await store.commit({ writes: [put('c', { _id: 'b', back: true }, 3)] }); // revived
      expect(await store.reapTombstones(10_000)).toBe(1);
      expect(store.get('c', ['a'])).toEqual([]);
      expect(store.get('c', ['b'])[0]?.value).toEqual({ _id: 'b', back: true });
      expect(store.stats().collections[0]).toMatchObject({ documents: 1, tombstones: 0 });
    });

    it('asks the engine to compact the ranges reaping emptied, only when it reaped', async () => {
      const made = await make();
      const compacted: string[] = [];
      const engine = Object.create(made.engine) as StorageEngine;
      engine.compactRange = async (gte, lt) => {
        compacted.push(`${String.fromCharCode(gte[0] as number)}..${lt.length}`);
        await made.engine.compactRange(gte, lt);
      };
      for (const m of ['getMany', 'entries', 'write', 'open', 'close', 'sizes'] as const) {
        (engine as unknown as Record<string, unknown>)[m] = (...a: unknown[]) =>
          (made.engine[m] as (...x: unknown[]) => unknown).apply(made.engine, a);
      }
      const store = await DocumentStore.open(engine);
      cleanups.push(async () => {
        await store.close();
        await made.dir?.remove();
      });
      await store.commit({ writes: [put('c', { _id: 'a' }), put('k', { _id: 'b' })] });
      await store.commit({ writes: [tomb('c', 'a', 1_000)] });
      expect(await store.reapTombstones(500)).toBe(0);
      expect(compacted).toEqual([]);
      expect(await store.reapTombstones(2_000)).toBe(1);
      // The tombstone and record ranges of collection `c` (prefix `tag 0x01 'c'`, end 3 bytes).
      expect(compacted).toEqual(['T..3', 'D..3']);
      const sizes = store.stats().engine;
      expect(sizes.liveDataBytes + sizes.memoryBytes).toBeGreaterThan(0);
    });

    it('evicts every trace of a document, index entries included', async () => {
      const { store } = await open();
      await store.createIndex('c', 'by_x', ['x']);
      await store.commit({ writes: [put('c', { _id: 'a', x: 1 }), put('c', { _id: 'b', x: 1 })] });
      await store.commit({ writes: [{ kind: 'evict', collection: 'c', id: 'a' }] });
      expect(store.get('c', ['a'])).toEqual([]);
      expect(store.select('SELECT _id FROM c WHERE x = 1')).toEqual([{ _id: 'b' }]);
    });

    it('answers queries with filters, order, limits and aggregates', async () => {
      const { store } = await open();
      await store.commit({
        writes: [
          put('cars', { _id: 'a', make: 'vw', year: 2001, owner: { name: 'ann' } }),
          put('cars', { _id: 'b', make: 'bmw', year: 2010, owner: { name: 'bob' } }),
          put('cars', { _id: 'c', make: 'vw', year: 2015 }),
        ],
      });
      expect(store.select("SELECT _id FROM cars WHERE make = 'vw' ORDER BY year DESC")).toEqual([
        { _id: 'c' },
        { _id: 'a' },
      ]);
      expect(
        store.select('SELECT make, count(*) AS n FROM cars GROUP BY make ORDER BY make'),
      ).toEqual([
        { make: 'bmw', n: 1 },
        { make: 'vw', n: 2 },
      ]);
      expect(store.select("SELECT owner.name FROM cars WHERE _id = 'b'")).toEqual([
        { name: 'bob' },
      ]);
      expect(store.select('SELECT _id FROM cars ORDER BY _id LIMIT 1 OFFSET 1')).toEqual([
        { _id: 'b' },
      ]);
      expect(store.select('SELECT _id FROM cars WHERE year > :y', { y: 2005 })).toEqual([
        { _id: 'b' },
        { _id: 'c' },
      ]);
      expect(store.select('SELECT * FROM nothing')).toEqual([]);
    });

    it('builds an index over existing documents with progress, and the planner uses it', async () => {
      const { store } = await open();
      const n = 2_500;
      await store.commit({
        writes: Array.from({ length: n }, (_, i) =>
          put('p', { _id: i, g: i % 10, s: `n${i % 7}` }),
        ),
      });
      const progress: number[] = [];
      const def = await store.createIndex('p', 'by_g', ['g'], (p) => {
        expect(p.total).toBe(n);
        progress.push(p.done);
      });
      expect(def.ready).toBe(true);
      expect(progress[0]).toBe(0);
      expect(progress.at(-1)).toBe(n);
      expect(progress.length).toBeGreaterThan(2);
      const explained = store.select('EXPLAIN SELECT * FROM p WHERE g = 3');
      expect(JSON.stringify(explained)).toContain('by_g');
      expect(store.select('SELECT _id FROM p WHERE g = 3').length).toBe(n / 10);
      expect(store.select('SELECT _id FROM p WHERE g >= 8 ORDER BY g DESC, _id LIMIT 3')).toEqual([
        { _id: 9 },
        { _id: 19 },
        { _id: 29 },
      ]);
      // Creating it again is a no-op; another path under the same name is refused.
      expect((await store.createIndex('p', 'by_g', ['g'])).ready).toBe(true);
      await expectCode(store.createIndex('p', 'by_g', ['s']), 'STORE_INDEX_EXISTS');
      await expectCode(store.createIndex('p', 'bad', []), 'STORE_INVALID_INDEX');
      await expectCode(store.createIndex('p', 'bad', ['_id']), 'STORE_INVALID_INDEX');
    });

    it('moves index entries when values change and drops them with the index', async () => {
      const { store } = await open();
      await store.createIndex('c', 'by_tag', ['meta', 'tag']);
      await store.commit({
        writes: [
          put('c', { _id: 1, meta: { tag: 'x' } }),
          put('c', { _id: 2, meta: { tag: 'y' } }),
        ],
      });
      await store.commit({ writes: [put('c', { _id: 1, meta: { tag: 'y' } }, 2)] });
      expect(store.select("SELECT _id FROM c WHERE meta.tag = 'x'")).toEqual([]);
      expect(store.select("SELECT _id FROM c WHERE meta.tag = 'y'")).toEqual([
        { _id: 1 },
        { _id: 2 },
      ]);
      await store.commit({ writes: [put('c', { _id: 2, meta: {} }, 2)] }); // path now MISSING
      expect(store.select("SELECT _id FROM c WHERE meta.tag = 'y'")).toEqual([{ _id: 1 }]);
      await store.dropIndex('c', 'by_tag');
      expect(store.listIndexes('c')).toEqual([]);
      expect(store.stats().collections[0]?.indexes).toBe(0);
      await expectCode(store.dropIndex('c', 'by_tag'), 'STORE_UNKNOWN_INDEX');
      expect(store.select("SELECT _id FROM c WHERE meta.tag = 'y'")).toEqual([{ _id: 1 }]);
    });

    it('keeps an index consistent with commits made while it is being built', async () => {
      const { store } = await open();
      const n = 5_000;
      await store.commit({
        writes: Array.from({ length: n }, (_, i) => put('w', { _id: i, k: i % 100 })),
      });
      const building = store.createIndex('w', 'by_k', ['k']);
      // Rewrite documents on both sides of the build's cursor while it runs.
      const writers: Promise<unknown>[] = [];
      for (let round = 0; round < 20; round++) {
        writers.push(
          store.commit({
            writes: Array.from({ length: 25 }, (_, j) => {
              const id = (round * 250 + j * 7) % n;
              return put('w', { _id: id, k: 1000 + round }, 2 + round);
            }),
          }),
        );
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(writers);
      await building;
      const all = store.select('SELECT _id, k FROM w') as { _id: number; k: number }[];
      const expected = new Map<number, number[]>();
      for (const d of all) expected.set(d.k, [...(expected.get(d.k) ?? []), d._id]);
      for (const [k, ids] of expected) {
        const got = (
          store.select('SELECT _id FROM w WHERE k = :k', { k }) as { _id: number }[]
        ).map((d) => d._id);
        expect(got).toEqual(ids);
      }
      // No stale entries: every indexed hit is a document with that value.
      expect(store.select('SELECT count(*) AS n FROM w WHERE k >= 0')).toEqual([{ n }]);
    });

    it('serves the change log since a commit, by collection, in pages', async () => {
      const { store } = await open();
      await store.commit({ writes: [put('a', { _id: 1 }), put('b', { _id: 1 })] });
      await store.commit({ writes: [put('b', { _id: 2 })] });
      await store.commit({ writes: [put('a', { _id: 3 })] });
      const all = store.changes(0);
      expect(all.commits.map((c) => c.seq)).toEqual([1, 2, 3]);
      expect(all.commits[0]?.collections.map((c) => c.collection).sort()).toEqual(['a', 'b']);
      const onlyA = store.changes(0, { collection: 'a' });
      expect(onlyA.commits.map((c) => c.seq)).toEqual([1, 3]);
      expect(onlyA.commits[0]?.collections).toHaveLength(1);
      const page = store.changes(1, { limit: 1 });
      expect(page.commits.map((c) => c.seq)).toEqual([2]);
      expect(page.more).toBe(true);
      expect(store.changes(3)).toEqual({ commits: [], more: false, lastSeq: 3 });
    });

    it('trims the change log to its limit and says so when asked for older commits', async () => {
      const { store } = await open({ limits: { maxLogCommits: 3 } });
      for (let i = 0; i < 6; i++) await store.commit({ writes: [put('c', { _id: i })] });
      expect(store.oldestLogSeq).toBe(4);
      expect(store.changes(3).commits.map((c) => c.seq)).toEqual([4, 5, 6]);
      await expectCode(() => store.changes(1), 'STORE_LOG_TRUNCATED');
    });

    it('tells listeners about each durable commit, in order', async () => {
      const { store } = await open();
      const seen: CommitEntry[] = [];
      const off = store.onCommitted((e) => seen.push(e));
      await Promise.all([
        store.commit({ writes: [put('c', { _id: 'x' })] }),
        store.commit({ writes: [put('d', { _id: 'y' })] }),
      ]);
      off();
      await store.commit({ writes: [put('c', { _id: 'z' })] });
      expect(seen.map((e) => [e.seq, e.collections[0]?.collection])).toEqual([
        [1, 'c'],
        [2, 'd'],
      ]);
    });

    it('pages large results through a cursor', async () => {
      const { store } = await open({ limits: { maxCursors: 1 } });
      await store.commit({ writes: Array.from({ length: 25 }, (_, i) => put('c', { _id: i })) });
      let page = store.query('SELECT _id FROM c', {}, 10);
      const items = [...page.items];
      expect(page.cursor).toBeDefined();
      await expectCode(() => store.query('SELECT _id FROM c', {}, 10), 'STORE_TOO_MANY_CURSORS');
      while (page.cursor) {
        const cursor: string = page.cursor;
        page = store.nextPage(cursor, 10);
        items.push(...page.items);
      }
      expect(items).toEqual(Array.from({ length: 25 }, (_, i) => ({ _id: i })));
      await expectCode(() => store.nextPage('nope'), 'STORE_CURSOR_EXPIRED');
    });

    it('streams scans and index ranges past maxResultItems, reading a page at a time', async () => {
      const made = await make();
      const engine = reading(made.engine);
      const limits = { maxResultItems: 100, maxPageSize: 50 };
      const store = await DocumentStore.open(engine, { limits });
      cleanups.push(async () => {
        await store.close();
        await made.dir?.remove();
      });
      const total = 3_000;
      const docs = Array.from({ length: total }, (_, i) => ({ _id: i, n: total - i, odd: i % 2 }));
      for (let i = 0; i < total; i += 500)
        await store.commit({ writes: docs.slice(i, i + 500).map((d) => put('c', d)) });
      await store.createIndex('c', 'by_n', ['n']);
      const cases: [string, Record<string, number>[]][] = [
        // Full scan with a residual filter, `_id` order.
        ['SELECT * FROM c WHERE odd = 1', docs.filter((d) => d.odd === 1)],
        // Index range with a residual, in index order, both directions.
        [
          'SELECT _id FROM c WHERE n > 100 AND odd = 0 ORDER BY n',
          docs
            .filter((d) => d.n > 100 && d.odd === 0)
            .reverse()
            .map((d) => ({ _id: d._id })),
        ],
        ['SELECT * FROM c WHERE n >= 10 ORDER BY n DESC', docs.filter((d) => d.n >= 10)],
        // Index range without ORDER BY: `_id` order.
        ['SELECT * FROM c WHERE n <= 2500', docs.filter((d) => d.n <= 2500)],
      ];
      for (const [statement, want] of cases) {
        await expectCode(() => store.select(statement), 'STORE_TOO_LARGE');
        engine.values = 0;
        let page = store.query(statement, {}, 50);
        const items = [...page.items];
        let most = engine.values;
        while (page.cursor !== undefined) {
          engine.values = 0;
          page = store.nextPage(page.cursor, 50);
          items.push(...page.items);
          most = Math.max(most, engine.values);
        }
        expect(items).toEqual(want);
        expect(items.length).toBeGreaterThan(limits.maxResultItems);
        expect(most).toBeGreaterThan(0);
        // A page reads its 50 items' documents (twice as many where the filter drops half), plus
        // at most one engine step of read-ahead: never the whole collection.
        expect(most).toBeLessThanOrEqual(2 * 50 + 2 * 256);
      }
      // A sort the access path does not give is computed in full, so the limit applies.
      await expectCode(() => store.query('SELECT * FROM c ORDER BY odd'), 'STORE_TOO_LARGE');
    });

    it('closes a streamed cursor when it expires or the store closes', async () => {
      let now = 1_000;
      const { store } = await open({ now: () => now, limits: { cursorTtlMs: 10 } });
      await store.commit({ writes: Array.from({ length: 40 }, (_, i) => put('c', { _id: i })) });
      const first = store.query('SELECT * FROM c', {}, 10);
      expect(first.cursor).toBeDefined();
      now += 11;
      await expectCode(() => store.nextPage(first.cursor as string), 'STORE_CURSOR_EXPIRED');
      // Writes after the cursor ended, and one left open when the store closes.
      await store.commit({ writes: [put('c', { _id: 'late' })] });
      expect(store.query('SELECT * FROM c', {}, 10).cursor).toBeDefined();
    });

    it('writes metadata and checkpoints with a commit, without a new sequence when alone', async () => {
      const { store, reopen } = await open();
      await store.commit({ writes: [put('c', { _id: 1 })], meta: { hlc: Uint8Array.of(7) } });
      const r = await store.commit({ writes: [], checkpoints: { peerB: Uint8Array.of(1, 2) } });
      expect(r.seq).toBe(1);
      const again = await reopen();
      expect([...(again.getMeta('hlc') ?? [])]).toEqual([7]);
      expect([...(again.getCheckpoint('peerB') ?? [])]).toEqual([1, 2]);
      expect(again.getCheckpoint('nobody')).toBeUndefined();
      expect(again.changes(0).commits).toHaveLength(1);
    });

    it('pages through every record of a collection, tombstones included, in _id order', async () => {
      const { store } = await open();
      await store.commit({
        writes: Array.from({ length: 7 }, (_, i) => put('c', { _id: i, v: i })),
      });
      await store.commit({ writes: [tomb('c', 3, 9)] });
      const first = store.records('c', { limit: 4 });
      expect(first.map((r) => r.id)).toEqual([0, 1, 2, 3]);
      expect(first[3]).toMatchObject({ tombstone: true, deletedAt: 9, seq: 2 });
      expect(first[3]?.value).toBeUndefined();
      const rest = store.records('c', { after: first[3]?.idBytes as Uint8Array, limit: 4 });
      expect(rest.map((r) => [r.id, r.value?.['v']])).toEqual([
        [4, 4],
        [5, 5],
        [6, 6],
      ]);
      expect(store.records('none')).toEqual([]);
    });

    it('refuses bad input with typed errors and changes nothing', async () => {
      const { store } = await open({ limits: { maxDocumentBytes: 1_000, maxWritesPerCommit: 3 } });
      await store.commit({ writes: [put('c', { _id: 'keep' })] });
      await expectCode(
        store.commit({ writes: [put('c', { _id: 'big', blob: 'x'.repeat(2_000) })] }),
        'STORE_TOO_LARGE',
      );
      await expectCode(
        store.commit({ writes: Array.from({ length: 4 }, (_, i) => put('c', { _id: i })) }),
        'STORE_TOO_LARGE',
      );
      await expectCode(store.commit({ writes: [put('', { _id: 1 })] }), 'STORE_INVALID_ARGUMENT');
      await expectCode(
        store.commit({ writes: [put('x'.repeat(300), { _id: 1 })] }),
        'STORE_INVALID_ARGUMENT',
      );
      await expectCode(
        store.commit({
          writes: [
            {
              collection: 'c',
              id: Number.NaN,
              state: new Uint8Array(),
              versionVector: vv(1),
              value: {},
            },
          ],
        }),
        'STORE_INVALID_ARGUMENT',
      );
      await expectCode(
        store.commit({ writes: [put('c', { _id: 'd' }), put('c', { _id: 'd' })] }),
        'STORE_INVALID_ARGUMENT',
      );
      await expectCode(() => store.select("DELETE FROM c WHERE _id = 'keep'"), 'STORE_NOT_A_QUERY');
      await expectCode(() => store.select('SELEC * FROM c'), 'DQL_SYNTAX');
      expect(store.lastSeq).toBe(1);
      expect(store.select('SELECT * FROM c')).toEqual([{ _id: 'keep' }]);
      await expectCode(() => store.changes(-1), 'STORE_INVALID_ARGUMENT');
    });

    it('refuses results beyond the item limit', async () => {
      const { store } = await open({ limits: { maxResultItems: 5 } });
      await store.commit({ writes: Array.from({ length: 6 }, (_, i) => put('c', { _id: i })) });
      await expectCode(() => store.select('SELECT * FROM c'), 'STORE_TOO_LARGE');
      expect(store.select('SELECT * FROM c LIMIT 5')).toHaveLength(5);
    });

    it('reports counts and sizes per collection', async () => {
      const { store } = await open();
      await store.commit({
        writes: [put('a', { _id: 1 }), put('a', { _id: 2 }), put('b', { _id: 1 })],
      });
      await store.commit({ writes: [tomb('a', 2, 5)] });
      await store.createIndex('a', 'i', ['x']);
      const s = store.stats();
      expect(s.lastSeq).toBe(2);
      expect(
        s.collections.map((c) => [c.collection, c.documents, c.tombstones, c.indexes]),
      ).toEqual([
        ['a', 1, 1, 1],
        ['b', 1, 0, 0],
      ]);
      expect(s.totalBytes).toBeGreaterThan(0);
    });
  });
}

describe('DocumentStore lifecycle', () => {
  it('fails typed after close', async () => {
    const store = await DocumentStore.open(new MemoryEngine());
    await store.close();
    await expectCode(() => store.commit({ writes: [] }), 'STORE_NOT_OPEN');
    await expectCode(() => store.select('SELECT * FROM c'), 'STORE_NOT_OPEN');
  });

  it('finishes queued commits before closing', async () => {
    const store = await DocumentStore.open(new MemoryEngine());
    const pending = store.commit({ writes: [put('c', { _id: 1 })] });
    await store.close();
    expect((await pending).seq).toBe(1);
  });
});
