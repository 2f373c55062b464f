/**
 * The memory engine's paged key index against a sorted-map model: random batches of puts and
 * deletes (tiny pages, so pages split, merge and empty out), then point and range reads.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys, MemoryEngine, type EngineOp, type EngineRange } from '@lattice/store';

const key = fc.uint8Array({ minLength: 0, maxLength: 3, max: 5 });
const op = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key, value: fc.uint8Array({ maxLength: 2 }) }),
  fc.record({ type: fc.constant('del' as const), key }),
);
const range = fc.record(
  {
    gte: key,
    gt: key,
    lt: key,
    lte: key,
    limit: fc.integer({ min: 0, max: 12 }),
    reverse: fc.boolean(),
  },
  { requiredKeys: [] },
);

const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex');

describe('MemoryEngine against a sorted-map model', () => {
  it('reads what the model holds after any batches of puts and deletes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.array(op, { maxLength: 40 }), { maxLength: 12 }),
        fc.array(range, { minLength: 1, maxLength: 6 }),
        async (pageEntries, batches: EngineOp[][], ranges: EngineRange[]) => {
          const e = new MemoryEngine({ pageEntries });
          await e.open();
          const model = new Map<string, { key: Uint8Array; value: Uint8Array }>();
          for (const batch of batches) {
            e.write(batch);
            for (const o of batch) {
              if (o.type === 'put') model.set(hex(o.key), { key: o.key, value: o.value });
              else model.delete(hex(o.key));
            }
            const sorted = [...model.values()].sort((a, b) => compareKeys(a.key, b.key));
            // Every key in order, with its value.
            expect([...e.entries({})].map(([k, v]) => [hex(k), hex(v)])).toEqual(
              sorted.map((m) => [hex(m.key), hex(m.value)]),
            );
            for (const r of ranges) {
              let want = sorted.filter(
                ({ key: k }) =>
                  (!r.gte || compareKeys(k, r.gte) >= 0) &&
                  (!r.gt || compareKeys(k, r.gt) > 0) &&
                  (!r.lt || compareKeys(k, r.lt) < 0) &&
                  (!r.lte || compareKeys(k, r.lte) <= 0),
              );
              if (r.reverse) want.reverse();
              if (r.limit !== undefined) want = want.slice(0, r.limit);
              expect([...e.entries(r)].map(([k]) => hex(k))).toEqual(want.map((m) => hex(m.key)));
            }
            const probes = batch.map((o) => o.key);
            expect(e.getMany(probes).map((v) => (v === undefined ? undefined : hex(v)))).toEqual(
              probes.map((k) => {
                const m = model.get(hex(k));
                return m === undefined ? undefined : hex(m.value);
              }),
            );
          }
          const size = [...model.values()].reduce((s, m) => s + m.key.length + m.value.length, 0);
          expect(e.sizes().liveDataBytes).toBe(size);
          await e.close();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps its own copy of a written value', async () => {
    const e = new MemoryEngine();
    await e.open();
    const value = Uint8Array.of(1, 2, 3);
    e.write([{ type: 'put', key: Uint8Array.of(7), value }]);
    value[0] = 9;
    expect([...(e.getMany([Uint8Array.of(7)])[0] ?? [])]).toEqual([1, 2, 3]);
    await e.close();
  });
});
