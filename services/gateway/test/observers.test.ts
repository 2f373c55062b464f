import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import type { ItemChange, JsonValue } from '@lattice/dql';
import { InProcessPeer, ObserverHub, sequential } from '@lattice/gateway';
import type { ObserveBatch, Observer } from '@lattice/gateway';
import { openPeer } from './helpers.js';

function applySequential(items: JsonValue[], changes: readonly ItemChange[]): JsonValue[] {
  const out = items.slice();
  for (const c of changes) {
    if (c.kind === 'removed') out.splice(c.index, 1);
    else if (c.kind === 'inserted') out.splice(c.index, 0, c.item);
    else if (c.kind === 'updated') out[c.index] = c.item;
    else {
      out.splice(c.from, 1);
      out.splice(c.to, 0, c.item);
    }
  }
  return out;
}

function drain(o: Observer, items: JsonValue[]): JsonValue[] {
  let out = items;
  for (let b: ObserveBatch | undefined = o.take(); b; b = o.take()) {
    out = b.kind === 'changes' ? applySequential(out, b.changes) : [...b.items];
  }
  return out;
}

const QUERIES = [
  'SELECT * FROM c WHERE a > 1 ORDER BY a LIMIT 3',
  'SELECT _id, a FROM c ORDER BY a DESC, _id',
  'SELECT * FROM c ORDER BY _id LIMIT 2 OFFSET 1',
  'SELECT COUNT(*) AS n FROM c WHERE b = true',
  'SELECT DISTINCT a FROM c ORDER BY a',
  'SELECT a FROM c WHERE b = false',
];

const op = fc.oneof(
  fc.record({
    kind: fc.constant('upsert' as const),
    id: fc.integer({ min: 0, max: 7 }),
    a: fc.integer({ min: 0, max: 5 }),
    b: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant('many' as const),
    ids: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 2, maxLength: 5 }),
    a: fc.integer({ min: 0, max: 5 }),
  }),
);

describe('observers', () => {
  it('sequential() turns a LiveQuery diff into in-order steps', () => {
    const old: JsonValue[] = ['a', 'b', 'c', 'd'];
    // b removed, e inserted at 1, d moved to the front (old/new index semantics).
    const diff: ItemChange[] = [
      { kind: 'removed', index: 1, item: 'b' },
      { kind: 'moved', from: 3, to: 0, item: 'd' },
      { kind: 'inserted', index: 2, item: 'e' },
    ];
    expect(applySequential(old, sequential(diff))).toEqual(['d', 'a', 'e', 'c']);
  });

  test.prop([fc.array(op, { minLength: 1, maxLength: 25 })], { numRuns: 40 })(
    'every observer, applying its batches, holds the SELECT result after every commit',
    async (ops) => {
      const engine = await openPeer('p');
      const hub = new ObserverHub(new InProcessPeer(engine), { maxQueued: 1_000 });
      try {
        const observers = QUERIES.map((q) =>
          hub.observe(
            q,
            {},
            {
              onReadable: () => undefined,
              onError: (e) => {
                throw e;
              },
            },
          ),
        );
        let copies = observers.map((o) => drain(o, []));
        for (const o of ops) {
          if (o.kind === 'upsert') {
            await engine.execute('INSERT INTO c DOCUMENTS (:d) ON ID CONFLICT DO UPDATE', {
              d: { _id: o.id, a: o.a, b: o.b },
            });
          } else if (o.kind === 'delete') {
            await engine.execute('DELETE FROM c WHERE _id = :id', { id: o.id });
          } else {
            await engine.execute('UPDATE c SET a = :a WHERE _id IN :ids', { a: o.a, ids: o.ids });
          }
          copies = observers.map((ob, i) => drain(ob, copies[i] as JsonValue[]));
          QUERIES.forEach((q, i) => {
            expect(copies[i], q).toEqual(engine.store.select(q));
          });
        }
        // Incremental queries did not re-run on every change.
        const stats = hub.stats();
        expect(stats[0]?.requeries).toBeLessThanOrEqual(ops.length);
      } finally {
        hub.close();
        await engine.close();
        await engine.store.close();
      }
    },
  );

  it('maintains a plain filter without re-running it', async () => {
    const engine = await openPeer('p');
    const hub = new ObserverHub(new InProcessPeer(engine));
    try {
      const o = hub.observe(
        'SELECT * FROM c WHERE a > 0',
        {},
        {
          onReadable: () => undefined,
          onError: () => undefined,
        },
      );
      for (let i = 0; i < 20; i++) {
        await engine.execute('INSERT INTO c DOCUMENTS (:d)', { d: { _id: i, a: i % 3 } });
      }
      await engine.execute('DELETE FROM c WHERE a = 1');
      expect(drain(o, [])).toEqual(engine.store.select('SELECT * FROM c WHERE a > 0'));
      expect(o.stats().requeries).toBe(0);
    } finally {
      hub.close();
      await engine.close();
      await engine.store.close();
    }
  });
});
