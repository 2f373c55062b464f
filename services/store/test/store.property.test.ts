/**
 * Property: a random sequence of commits, index creations and queries gives the same answers on
 * the store as on a plain in-memory model evaluated by the DQL reference executor.
 */
import { executePlan, MemorySource, parse, planQuery } from '@lattice/dql';
import type { JsonValue, SelectStatement } from '@lattice/dql';
import { DocumentStore } from '@lattice/store';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENGINES, put, tomb } from './helpers.js';

type Doc = { _id: JsonValue } & Record<string, JsonValue>;

const scalar = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom('a', 'b', 'ab', 'B', 'é', '', 'a\u0000b', '\u{1F600}', '\uFFFD'),
  fc.constantFrom(true, false, null),
  fc.double({ min: -10, max: 10, noNaN: true }),
);
const value: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.record({ c: scalar }, { requiredKeys: [] }) },
);
const id = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom('x', 'y', 'z', 'xy'));
const doc = fc.record(
  { _id: id, a: value, b: fc.record({ c: value }, { requiredKeys: [] }) },
  { requiredKeys: ['_id'] },
);

const op = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      docs: fc.array(doc, { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), id }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('evict' as const), id }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('index' as const),
      path: fc.constantFrom(['a'], ['b', 'c']),
    }),
  },
);

const queries = fc.tuple(
  fc.constantFrom(
    'SELECT * FROM c',
    'SELECT * FROM c WHERE a = :v',
    'SELECT * FROM c WHERE a > :v',
    'SELECT * FROM c WHERE a <= :v ORDER BY a DESC',
    'SELECT * FROM c WHERE b.c >= :v ORDER BY b.c',
    'SELECT * FROM c WHERE b.c = :v',
    "SELECT * FROM c WHERE a IN [:v, 1, 'a']",
    'SELECT _id FROM c WHERE a > :v AND b.c < 3 LIMIT 2',
    'SELECT a, count(*) AS n FROM c GROUP BY a',
    'SELECT * FROM c ORDER BY a, _id LIMIT 3 OFFSET 1',
    'SELECT * FROM c WHERE a > :v ORDER BY a',
    'SELECT * FROM c ORDER BY a LIMIT 4',
    'SELECT * FROM c ORDER BY a DESC LIMIT 5 OFFSET 1',
    'SELECT _id, a FROM c WHERE a >= :v AND b.c IS NOT MISSING',
    'SELECT * FROM c WHERE a > :v LIMIT 2 OFFSET 1',
  ),
  scalar,
);

/** The value as the store's encoding gives it back: `-0` becomes `0` (see value-codec.ts). */
function stored(v: JsonValue): JsonValue {
  if (typeof v === 'number') return v === 0 ? 0 : v;
  if (Array.isArray(v)) return v.map(stored);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, stored(x)]));
  }
  return v;
}

function reference(
  model: Map<string, Doc>,
  statement: string,
  args: Record<string, JsonValue>,
): JsonValue[] {
  const source = new MemorySource();
  for (const d of model.values()) source.put('c', stored(d) as Doc);
  const plan = planQuery(parse(statement) as SelectStatement, { args });
  return executePlan(plan, source).items;
}

function sortIfUnordered(statement: string, items: JsonValue[]): JsonValue[] {
  // Without ORDER BY both sides return `_id` order; GROUP BY order is unspecified, so compare sets.
  return statement.includes('GROUP BY')
    ? [...items].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1))
    : items;
}

for (const { name, make } of ENGINES) {
  describe(`store vs model on ${name}`, () => {
    it('answers every query as the model does after any sequence of commits', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { minLength: 1, maxLength: 12 }),
          fc.array(queries, { minLength: 1, maxLength: 6 }),
          async (ops, qs) => {
            const made = await make();
            const store = await DocumentStore.open(made.engine, { sync: false });
            try {
              const model = new Map<string, Doc>();
              let counter = 1;
              for (const o of ops) {
                counter++;
                if (o.kind === 'put') {
                  const unique = new Map(o.docs.map((d) => [JSON.stringify(d._id), d as Doc]));
                  await store.commit({
                    writes: [...unique.values()].map((d) =>
                      put('c', d as Doc & { _id: string | number }, counter),
                    ),
                  });
                  for (const [k, d] of unique) model.set(k, d);
                } else if (o.kind === 'delete') {
                  await store.commit({ writes: [tomb('c', o.id, 1, counter)] });
                  model.delete(JSON.stringify(o.id));
                } else if (o.kind === 'evict') {
                  await store.commit({ writes: [{ kind: 'evict', collection: 'c', id: o.id }] });
                  model.delete(JSON.stringify(o.id));
                } else {
                  await store.createIndex('c', `i_${o.path.join('_')}`, o.path);
                }
              }
              for (const [statement, v] of qs) {
                const args = { v };
                const got = store.select(statement, args);
                const want = reference(model, statement, args);
                expect(sortIfUnordered(statement, got)).toEqual(sortIfUnordered(statement, want));
                // The same through a cursor in small pages (streamed where the plan allows).
                let page = store.query(statement, args, 2);
                const paged = [...page.items];
                while (page.cursor !== undefined) {
                  page = store.nextPage(page.cursor, 3);
                  paged.push(...page.items);
                }
                expect(sortIfUnordered(statement, paged)).toEqual(sortIfUnordered(statement, want));
              }
            } finally {
              await store.close();
              await made.dir?.remove();
            }
          },
        ),
        { numRuns: name === 'memory' ? 150 : 40 },
      );
    }, 120_000);
  });
}
