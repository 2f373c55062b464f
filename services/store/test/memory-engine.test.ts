/**
 * The memory engine's range reads against a brute-force model: any keys, any bounds, either
 * direction, any limit (it reads only what a page needs, so the bounds logic must be exact).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys, MemoryEngine, type EngineRange } from '@lattice/store';

const key = fc.uint8Array({ minLength: 0, maxLength: 3, max: 3 });

describe('MemoryEngine.entries', () => {
  it('yields exactly the model range, in order, up to the limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(key, { selector: (k) => Buffer.from(k).toString('hex'), maxLength: 40 }),
        fc.record(
          {
            gte: key,
            gt: key,
            lt: key,
            lte: key,
            limit: fc.integer({ min: 0, max: 8 }),
            reverse: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
        async (keys, range: EngineRange) => {
          const e = new MemoryEngine();
          await e.open();
          e.write(keys.map((k) => ({ type: 'put' as const, key: k, value: k })));
          const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex');
          let model = [...keys]
            .sort(compareKeys)
            .filter(
              (k) =>
                (!range.gte || compareKeys(k, range.gte) >= 0) &&
                (!range.gt || compareKeys(k, range.gt) > 0) &&
                (!range.lt || compareKeys(k, range.lt) < 0) &&
                (!range.lte || compareKeys(k, range.lte) <= 0),
            );
          if (range.reverse) model.reverse();
          if (range.limit !== undefined) model = model.slice(0, range.limit);
          expect([...e.entries(range)].map(([k]) => hex(k))).toEqual(model.map(hex));
          await e.close();
        },
      ),
      { numRuns: 500 },
    );
  });
});
